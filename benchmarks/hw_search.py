"""Hardware-aware sub-network search on OFA MobileNetV3, side by side with DyNAS-T's own logs.

Protocol (fixed):
  * Oracle: RBF kernel ridge (gamma 0.01, alpha 0.1) on config features, fitted on all 2,373 real
    ImageNet top-1 evaluations DyNAS-T logged (evaluators/hardware/data); its 5-fold held-out error
    is reported.  MACs: our analytic counter (equal to DyNAS-T's MACs column on every row).
  * Hypervolume of (top-1 maximised, MACs minimised) over *all* evaluated points, reference point
    (top-1 70 %, 600 M MACs); MACs in millions, so HV is in %·MMACs.
  * Ours, through the engine (ofa-mbv3 space, ofa-hw evaluator, equivalence cache on): linas
    (10 random + the 2 extreme sub-networks, then loops of 5 real evaluations; ridge alpha 3 on the
    space's features; inner NSGA-II 200 x 100 = 20,000 predicted evaluations per loop),
    nsga2-native (population 50), nsga2 (Optuna's NSGAIISampler), random; seeds 0..S-1, budget 500
    charged evaluations; HV after N in {50, 100, 200, 300, 500}.
  * DyNAS-T: its logged runs replayed row by row (LINAS-NSGA-II, NSGA-II, and the others for
    context), every row scored by the same oracle and counter.
  * Latency predictors: every HELP device x batch table, 4,000 train / 1,000 held out (seed 0):
    per-layer LUT (least squares) and MLP (one seed, --mlp-epochs), Spearman and MAPE.
  * Measured latency on this CPU: 50 random sub-networks extracted from the random-init supernet,
    r=160, batch 1, float32, 1 thread, 5 warm-up, 11 repeats x 3 forwards; the machine's load is
    reported next to the coefficient of variation.

    python benchmarks/hw_search.py [--seeds 5] [--budget 500] [--methods linas,nsga2-native,nsga2,random]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import automl
from automl.hypervolume import hypervolume
from automl.api import read_run
from evaluators.hardware.latency import machine_load

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REF = (70.0, 600.0)  # top-1 %, MMACs
DIRS = ("max", "min")
CHECKPOINTS = (50, 100, 200, 300, 500)
METHODS = {"linas": {"initial": 10, "batch": 5, "alpha": 3.0, "inner_population": 200, "inner_generations": 100},
           "nsga2-native": {"population_size": 50}, "nsga2": {}, "random": {}}


def hv_at(points: np.ndarray, ns) -> dict[str, float]:
    return {str(n): hypervolume(points[:n], REF, DIRS) for n in ns if n <= len(points)}


def run_ours(method: str, seed: int, budget: int, workdir: str, evaluator_options=None) -> dict:
    out = os.path.join(workdir, f"{method}-{seed}")
    t0 = time.perf_counter()
    automl.search(space="ofa-mbv3", evaluator="ofa-hw", strategy=method, budget=budget, seed=seed, out=out,
                  strategy_options=METHODS.get(method, {}), evaluator_options=evaluator_options or {})
    wall = time.perf_counter() - t0
    _, recs = read_run(out)
    charged = [r for r in recs if r.get("charged") and r["status"] == "ok"]
    pts = np.array([[r["objectives"]["top1"], r["objectives"]["macs"] / 1e6] for r in charged])
    state = json.load(open(os.path.join(out, "state.json")))["strategy"]
    return {"points": pts, "records": recs, "hits": sum(r.get("cache") == "hit" for r in recs),
            "candidates": len(recs), "loop_seconds": state.get("loop_seconds", []), "wall_s": wall}


def dynast_runs() -> dict:
    from evaluators.hardware.evaluators import accuracy_oracle
    from evaluators.hardware.predictors import config_features
    from evaluators.hardware.tables import DYNAST_RUNS, load_dynast
    from search_spaces.ofa import OFASpace

    space = OFASpace()
    oracle = accuracy_oracle()
    out = {}
    for name in DYNAST_RUNS:
        t = load_dynast(name)
        top1 = oracle.predict(config_features(t.ks, t.e, t.d))
        keys = [space.structural_key(space.from_text(x)) for x in t.texts]
        seen_key, seen_text, dup_func, dup_text = set(), set(), 0, 0
        for k, x in zip(keys, t.texts):
            if x in seen_text:
                dup_text += 1
            elif k in seen_key:
                dup_func += 1
            seen_key.add(k)
            seen_text.add(x)
        out[name] = {"points": np.c_[top1, t.columns["macs"] / 1e6],
                     "logged_points": np.c_[t.columns["top1"], t.columns["macs"] / 1e6], "n": len(t),
                     "repeat_identical": dup_text, "repeat_functionally_identical": dup_func}
    return out


def oracle_error(folds: int = 5) -> dict:
    from scipy.stats import kendalltau

    from evaluators.hardware.predictors import KernelRidge, config_features
    from evaluators.hardware.tables import load_dynast

    t = load_dynast()
    F, y = config_features(t.ks, t.e, t.d), t.columns["top1"]
    perm = np.random.default_rng(0).permutation(len(y))
    pred = np.zeros_like(y)
    for f in np.array_split(perm, folds):
        tr = np.setdiff1d(perm, f)
        pred[f] = KernelRidge().fit(F[tr], y[tr]).predict(F[f])
    return {"folds": folds, "rmse_pp": float(np.sqrt(np.mean((pred - y) ** 2))),
            "mae_pp": float(np.mean(np.abs(pred - y))), "kendall_tau": float(kendalltau(pred, y).statistic)}


def latency_predictors(mlp_epochs: int) -> dict:
    from evaluators.hardware.predictors import LatencyLUT, MLPRegressor, config_features, mape, spearman
    from evaluators.hardware.tables import load_help

    h = load_help()
    perm = np.random.default_rng(0).permutation(len(h))
    a, b = h.take(perm[:4000]), h.take(perm[4000:])
    Fa, Fb = config_features(a.ks, a.e, a.d, a.r, True), config_features(b.ks, b.e, b.d, b.r, True)
    out = {}
    for col in sorted(h.columns):
        y, yt = a.columns[col], b.columns[col]
        lut = LatencyLUT().fit(a.ks, a.e, a.d, a.r, y).predict(b.ks, b.e, b.d, b.r)
        mlp = MLPRegressor(epochs=mlp_epochs, ensemble=1).fit(Fa, y).predict(Fb)
        out[col] = {"lut_spearman": spearman(lut, yt), "lut_mape": mape(lut, yt),
                    "mlp_spearman": spearman(mlp, yt), "mlp_mape": mape(mlp, yt)}
    return out


def measured_cpu_latency(n: int = 50, resolution: int = 160) -> dict:
    import torch

    from evaluators.hardware.latency import LatencySetting, machine_load, measure
    from search_spaces.ofa import OFASpace
    from search_spaces.ofa.supernet import OFAMobileNetV3, extract

    torch.manual_seed(0)
    sup = OFAMobileNetV3().eval()
    space = OFASpace()
    rng = np.random.default_rng(0)
    setting = LatencySetting("cpu", 1, "float32", 1, 5, 11, 3)
    load_before = machine_load()
    rows = []
    t0 = time.perf_counter()
    for _ in range(n):
        g = space.sample(rng)
        rows.append(measure(extract(sup, g), resolution, setting))
    load_after = machine_load()
    cv = np.array([r["latency_cv"] for r in rows])
    mad = np.array([r["latency_mad_rel"] for r in rows])
    lat = np.array([r["latency_ms"] for r in rows])
    return {"n": n, "resolution": resolution, "batch": 1, "threads": 1, "dtype": "float32", "repeats": 11,
            "inner": 3, "warmup": 5, "cv_median": float(np.median(cv)), "cv_p90": float(np.percentile(cv, 90)),
            "cv_max": float(cv.max()), "share_cv_le_5pct": float((cv <= 0.05).mean()),
            "mad_rel_median": float(np.median(mad)), "min_over_median_ms": float(np.median(
                [r["latency_min_ms"] / r["latency_ms"] for r in rows])),
            "latency_ms_median": float(np.median(lat)), "latency_ms_range": [float(lat.min()), float(lat.max())],
            "loadavg_before": load_before, "loadavg_after": load_after, "seconds": time.perf_counter() - t0}


def constrained_check(workdir: str, budget: int, seed: int = 0) -> dict:
    """LINAS with a predicted-latency budget (v100 batch-1 LUT <= 9 ms): the reported front must be
    feasible."""
    from automl.objectives import feasible
    from automl.report import summarize

    opts = {"latency": "lut", "latency_table": "v100_bs1", "max_latency_ms": 9.0}
    r = run_ours("linas", seed, budget, workdir + "/constrained", opts)
    s = summarize(os.path.join(workdir + "/constrained", f"linas-{seed}"))
    front = s.get("pareto_front", [])
    return {"budget": budget, "max_latency_ms": 9.0, "front_size": len(front),
            "front_max_latency_ms": max(p["objectives"]["latency_ms"] for p in front) if front else None,
            "infeasible_evaluated": int(sum(not feasible(rec) for rec in r["records"] if rec["status"] == "ok"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--mlp-epochs", type=int, default=60)
    ap.add_argument("--skip-latency", action="store_true", help="skip the HELP predictors and CPU measurement")
    ap.add_argument("--out", default=os.path.join(RESULTS, "hw_search.json"))
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    ns = [n for n in CHECKPOINTS if n <= args.budget]

    load_start = machine_load()
    t_start = time.perf_counter()
    dyn = dynast_runs()
    result = {"protocol": {"reference_point": {"top1_pct": REF[0], "macs_M": REF[1]}, "hv_units": "%*MMACs",
                           "seeds": args.seeds, "budget": args.budget, "methods": {m: METHODS.get(m, {}) for m in methods}},
              "hv": {}, "dynast": {}, "dynast_logged_top1": {}, "duplicates": {}, "dynast_duplicates": {}}
    for name, d in dyn.items():
        result["dynast"][name] = hv_at(d["points"], [n for n in CHECKPOINTS if n <= d["n"]] + [d["n"]])
        result["dynast_logged_top1"][name] = hv_at(d["logged_points"], [n for n in CHECKPOINTS if n <= d["n"]] + [d["n"]])
        result["dynast_duplicates"][name] = {"evaluations": d["n"], "repeat_identical": d["repeat_identical"],
                                             "repeat_functionally_identical": d["repeat_functionally_identical"]}

    linas_loops = []
    curves, points = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for m in methods:
            result["hv"][m] = {str(n): [] for n in ns}
            result["duplicates"][m] = []
            curves[m], points[m] = [], []
            walls = []
            for seed in range(args.seeds):
                r = run_ours(m, seed, args.budget, work)
                for n, v in hv_at(r["points"], ns).items():
                    result["hv"][m][n].append(v)
                result["duplicates"][m].append({"candidates": r["candidates"], "cache_hits": r["hits"]})
                curves[m].append([hypervolume(r["points"][:n], REF, DIRS) for n in range(10, args.budget + 1, 10)])
                points[m].append(r["points"])
                walls.append(r["wall_s"])
                if m == "linas":
                    linas_loops += r["loop_seconds"]
                print(f"{m:14s} seed {seed}: HV@{ns[-1]} {result['hv'][m][str(ns[-1])][-1]:9.1f}  "
                      f"hits {r['hits']:3d}  {r['wall_s']:.1f}s", flush=True)
            result.setdefault("wall_s_per_run", {})[m] = float(np.mean(walls))
        result["constrained"] = constrained_check(work, min(args.budget, 150))

    if linas_loops:  # per loop: [ridge fit, inner NSGA-II, greedy batch choice] seconds
        loops = np.array(linas_loops)
        result["linas_loop_s"] = float(loops[:, :2].sum(1).mean())
        result["linas_loop_s_max"] = float(loops[:, :2].sum(1).max())
        result["linas_loop_parts_s"] = {"fit": float(loops[:, 0].mean()), "inner_nsga2": float(loops[:, 1].mean()),
                                        "batch_choice": float(loops[:, 2].mean())}
        result["linas_loops"] = len(loops)
    # evaluations our methods need to reach DyNAS-T LINAS-NSGA-II's final HV
    target_run = "linas-nsga2"
    final = hypervolume(dyn[target_run]["points"], REF, DIRS)
    result["reach_dynast_final"] = {"dynast_run": target_run, "dynast_evaluations": dyn[target_run]["n"],
                                    "dynast_final_hv": final, "ours": {}}
    for m in methods:  # exact: the first N whose HV reaches the target
        result["reach_dynast_final"]["ours"][m] = [
            next((n for n in range(1, len(p) + 1) if hypervolume(p[:n], REF, DIRS) >= final), None)
            for p in points[m]]
    result["oracle_heldout"] = oracle_error()
    if not args.skip_latency:
        lp = latency_predictors(args.mlp_epochs)
        result["latency_predictors"] = lp
        result["latency_spearman"] = {k: v["lut_spearman"] for k, v in lp.items()}
        result["latency_mape"] = {k: v["lut_mape"] for k, v in lp.items()}
        result["cpu_latency"] = measured_cpu_latency()

    # --- table ---------------------------------------------------------------------------------------
    print(f"\nHV (top-1 max, MACs min; ref {REF[0]} %, {REF[1]:.0f} MMACs), mean over {args.seeds} seeds:")
    print(f"{'N':>5s} " + " ".join(f"{m:>13s}" for m in methods) + "  dynast-linas-nsga2  dynast-nsga2  ratio(best/linas-nsga2)")
    for n in ns:
        means = [np.mean(result["hv"][m][str(n)]) for m in methods]
        dl, dn = result["dynast"]["linas-nsga2"].get(str(n)), result["dynast"]["nsga2"].get(str(n))
        print(f"{n:5d} " + " ".join(f"{v:13.1f}" for v in means) + f"  {dl:18.1f}  {dn:12.1f}  {max(means) / dl:6.3f}")
    print(f"DyNAS-T LINAS-NSGA-II final HV {final:.1f} after {dyn[target_run]['n']} evaluations; ours reach it after:")
    for m in methods:
        print(f"  {m:14s} {result['reach_dynast_final']['ours'][m]}")
    if linas_loops:
        print(f"LINAS loop (ridge fit + 20,000 predicted evaluations): mean {result['linas_loop_s']:.3f} s, "
              f"max {result['linas_loop_s_max']:.3f} s over {len(linas_loops)} loops; parts {result['linas_loop_parts_s']}")
    print("oracle held-out:", result["oracle_heldout"])
    print("duplicates answered by our hash (cache hits per run):",
          {m: [d["cache_hits"] for d in v] for m, v in result["duplicates"].items()})
    print("DyNAS-T paid evaluations of repeated networks:", result["dynast_duplicates"])
    print("constrained LINAS:", result["constrained"])
    if "latency_predictors" in result:
        print(f"\n{'table':16s} {'LUT rho':>8s} {'LUT MAPE':>9s} {'MLP rho':>8s} {'MLP MAPE':>9s}")
        for k, v in result["latency_predictors"].items():
            print(f"{k:16s} {v['lut_spearman']:8.3f} {v['lut_mape']:8.1f}% {v['mlp_spearman']:8.3f} {v['mlp_mape']:8.1f}%")
        print("CPU latency:", result["cpu_latency"])

    result["machine"] = {"loadavg_start": load_start, "loadavg_end": machine_load(),
                         "seconds": time.perf_counter() - t_start}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    _plot(curves, dyn, os.path.splitext(args.out)[0] + ".png", args.budget)
    print("wrote", args.out)
    return 0


def _plot(curves: dict, dyn: dict, path: str, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.arange(10, budget + 1, 10)
    for m, cs in curves.items():
        c = np.array(cs)
        ax.plot(xs, c.mean(0), label=f"{m} (ours, mean of {len(cs)})")
        ax.fill_between(xs, c.min(0), c.max(0), alpha=0.15)
    for name, style in (("linas-nsga2", "k--"), ("nsga2", "k:")):
        p = dyn[name]["points"]
        dx = np.arange(10, len(p) + 1, 10)
        ax.plot(dx, [hypervolume(p[:n], REF, DIRS) for n in dx], style, label=f"DyNAS-T {name} (logged)")
    ax.set_xlabel("real evaluations")
    ax.set_ylabel(f"hypervolume (top-1 %, MMACs; ref {REF})")
    ax.set_title("OFA MobileNetV3 on the DyNAS-T oracle")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
