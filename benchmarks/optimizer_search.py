"""Optimizer discovery at equal evaluation budget, and the cost of running a program as an optimizer.

Measures, on this machine:
  * three ways to spend the same number of proxy evaluations (OptimizerProxy at its default
    fidelity: tasks mlp, mlp_wide, charlm, 80 steps, cosine LR from 0.01; fitness = mean over
    tasks of loss / AdamW's loss),
    over several seeds:
      - program search: automl regularized evolution over "optimizer-programs" from the AdamW
        warm start (the cache makes repeats free, so the budget counts charged evaluations);
      - AdamW tuning: Optuna TPE over AdamW's constants (lr, beta1, beta2, weight decay), written
        as programs and scored by the same proxy, with optuna used directly as a user would;
      - random programs: automl's random strategy over the same space;
    then each approach's best program on the held-out tasks (conv, regress, autoenc; never part
    of the fitness), as loss / AdamW's loss (< 1 beats AdamW);
  * ProgramOptimizer step time (the Lion program) against lion_pytorch.Lion on the same ~1M
    parameter MLP (median of many interleaved steps; goal <= 1.2x), and the AdamW program
    against torch.optim.AdamW for reference.
Measures, never asserts.  Prints a table and writes benchmarks/results/optimizer_search.json.

    python benchmarks/optimizer_search.py            # 3 seeds x 300 evaluations per approach
    python benchmarks/optimizer_search.py --quick    # a smoke run (~1 minute)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

import automl
from automl.api import read_run
from evaluators.optimizer_proxy.funnel import jsonable

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def adamw_program(lr: float, beta1: float, beta2: float, weight_decay: float, base_lr: float) -> str:
    """AdamW with these constants as a program; ``lr`` becomes a multiplier of the scheduled base lr."""
    from search_spaces.programs.classic import adam_text

    return adam_text(beta1, beta2, weight_decay=weight_decay, lr_scale=float(lr) / base_lr)


def _best_of_run(run_dir: str) -> tuple[float, str | None]:
    _, recs = read_run(run_dir)
    ok = [r for r in recs if r["status"] == "ok" and math.isfinite(r["objectives"].get("val_loss", math.nan))]
    if not ok:
        return math.nan, None
    b = min(ok, key=lambda r: (r["objectives"]["val_loss"], r["id"]))
    return b["objectives"]["val_loss"], b["candidate"]


def run_programs(strategy: str, budget: int, seed: int, ev_opts: dict, strategy_opts: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        t0 = time.perf_counter()
        s = automl.search(space="optimizer-programs", evaluator="optimizer-proxy", strategy=strategy, budget=budget,
                          seed=seed, out=out, evaluator_options=ev_opts, strategy_options=strategy_opts)
        wall = time.perf_counter() - t0
        best, text = _best_of_run(out)
        _, recs = read_run(out)
    n = len(recs)
    return {"best": best, "program": text, "seconds": wall, "candidates": n,
            "charged": s["charged_evaluations"], "cache_hit_rate": s["cache"]["hit_rate"],
            "invalid_or_failed": sum(1 for r in recs if r["status"] != "ok") / max(n, 1)}


def run_tpe(budget: int, seed: int, ev_opts: dict) -> dict:
    import optuna

    from evaluators.optimizer_proxy import OptimizerProxy
    from search_spaces.programs import ProgramSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev, space = OptimizerProxy(**ev_opts), ProgramSpace()
    base_lr = ev.lr

    def objective(trial):
        text = adamw_program(trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                             trial.suggest_float("beta1", 0.5, 0.99),
                             trial.suggest_float("beta2", 0.9, 0.9999),
                             trial.suggest_float("weight_decay", 1e-5, 1.0, log=True), base_lr)
        v = ev.evaluate(space.from_text(text))["val_loss"]
        trial.set_user_attr("program", text)
        return v if math.isfinite(v) else float("inf")  # diverged: worst

    t0 = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=budget)
    best = study.best_trial
    return {"best": best.value if math.isfinite(best.value) else math.nan, "program": best.user_attrs["program"],
            "params": best.params, "seconds": time.perf_counter() - t0, "candidates": budget, "charged": budget,
            "cache_hit_rate": 0.0,
            "invalid_or_failed": sum(1 for t in study.trials if not math.isfinite(t.value)) / budget}


# --- step time ---------------------------------------------------------------------------------------

def step_time(steps: int, threads: int, device: str = "cpu") -> dict:
    import torch
    from lion_pytorch import Lion

    from search_spaces.programs.optim import ProgramOptimizer
    from search_spaces.programs import CLASSIC_PROGRAMS

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        sizes = [(1024, 784), (1024,), (256, 1024), (256,), (10, 256), (10,)]  # an MLP 784-1024-256-10

        def params():
            ps = [(torch.randn(s, generator=gen) * 0.01).to(device).requires_grad_(True) for s in sizes]
            for p in ps:
                p.grad = torch.randn(p.shape, generator=gen).to(device)
            return ps

        n_params = sum(math.prod(s) for s in sizes)
        pairs = {
            "lion": (lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["lion"], lr=1e-4),
                     lambda ps: Lion(ps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.01), "lion_pytorch.Lion"),
            "adamw": (lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adamw"], lr=1e-4),
                      lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01), "torch.optim.AdamW"),
        }
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        out = {"params": n_params, "threads": threads, "device": device, "steps": steps}
        for name, (mk_prog, mk_ref, ref_name) in pairs.items():
            opts = {"program": mk_prog(params()), "reference": mk_ref(params())}
            times: dict[str, list[float]] = {k: [] for k in opts}
            for k, o in opts.items():  # warm up (state allocation)
                for _ in range(5):
                    o.step()
            sync()
            for _ in range(steps):  # interleaved, so drifting machine load hits both alike
                for k, o in opts.items():
                    t0 = time.perf_counter()
                    o.step()
                    sync()
                    times[k].append(time.perf_counter() - t0)
            prog, ref = statistics.median(times["program"]), statistics.median(times["reference"])
            out[name] = {"program_ms": prog * 1e3, "reference_ms": ref * 1e3, "reference": ref_name,
                         "ratio": prog / ref}
        return out
    finally:
        torch.set_num_threads(old)


def _ms(values: list[float]) -> str:
    """mean ± stdev of the finite values; "[k/n]" when only k of n are finite."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "n/a"
    s = f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"
    return s if len(v) == len(values) else f"{s} [{len(v)}/{len(values)}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=300, help="proxy evaluations per approach and seed (default 300)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per approach (default 3)")
    ap.add_argument("--population", type=int, default=50, help="program search population (default 50)")
    ap.add_argument("--tournament", type=int, default=5, help="program search tournament size (default 5)")
    ap.add_argument("--steps", type=int, help="proxy training steps per task (default: the evaluator's)")
    ap.add_argument("--step-time-steps", type=int, default=300, help="optimizer steps timed per optimizer")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the step-time measurement")
    ap.add_argument("--device", default="cpu", help="device for the step-time measurement (cpu, cuda)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds x 30 evaluations, 30 proxy steps")
    ap.add_argument("--output", help="JSON path (default benchmarks/results/optimizer_search.json, "
                    "or optimizer_search_quick.json with --quick)")
    a = ap.parse_args(argv)
    if a.quick:
        a.budget, a.seeds, a.steps, a.step_time_steps, a.population = 30, 2, 30, 50, 10
        a.tournament = min(a.tournament, a.population)
    if a.output is None:
        a.output = os.path.join(RESULTS, "optimizer_search_quick.json" if a.quick else "optimizer_search.json")
    ev_opts = {"steps": a.steps} if a.steps else {}
    t_start = time.perf_counter()

    from evaluators.optimizer_proxy import heldout_score

    approaches = {
        "program search (RE from AdamW)": lambda s: run_programs(
            "evolution", a.budget, s, ev_opts, {"population_size": a.population, "tournament_size": a.tournament}),
        "AdamW constants (Optuna TPE)": lambda s: run_tpe(a.budget, s, ev_opts),
        "random programs": lambda s: run_programs("random", a.budget, s, ev_opts, {}),
    }
    results: dict[str, list[dict]] = {}
    for name, fn in approaches.items():
        results[name] = []
        for seed in range(a.seeds):
            r = fn(seed)
            r["seed"] = seed
            if r["program"] is not None:
                h = heldout_score(r["program"])
                r["heldout"], r["heldout_same_lr"] = h["score"], h["score_same_lr"]
                r["heldout_tasks"] = {t: {k: d[k] for k in ("ratio", "lr", "adamw_lr", "ratio_same_lr")}
                                      for t, d in h["tasks"].items()}
            else:
                r["heldout"] = r["heldout_same_lr"] = math.nan
            results[name].append(r)
            print(f"  {name} seed {seed}: best {r['best']:.4f}  held-out {r['heldout']:.4f} "
                  f"(same lr {r['heldout_same_lr']:.4f})  "
                  f"({r['seconds']:.0f} s, {r['candidates']} candidates)", file=sys.stderr, flush=True)

    st = step_time(a.step_time_steps, a.threads, a.device)

    from evaluators.optimizer_proxy import OptimizerProxy

    fid = OptimizerProxy(**ev_opts).options()
    print(f"\nOptimizer discovery at equal budget: {a.budget} proxy evaluations x {a.seeds} seeds "
          f"(tasks {' + '.join(fid['tasks'])}, {fid['steps']} steps, lr {fid['lr']:g}; values are loss / AdamW's "
          f"loss, lower is better; AdamW = 1.0)")
    print(f"{'approach':31s} {'best proxy fitness':>17s} {'held-out, lr tuned':>18s} {'held-out, lr 0.01':>18s} "
          f"{'hits':>6s} {'invalid':>7s} {'s/seed':>6s}")
    summary = {}
    for name, rs in results.items():
        summary[name] = {"best_mean": _mean([r["best"] for r in rs]), "heldout_mean": _mean([r["heldout"] for r in rs]),
                         "heldout_same_lr_mean": _mean([r["heldout_same_lr"] for r in rs]),
                         "heldout_diverged": sum(1 for r in rs if not math.isfinite(r["heldout"])),
                         "hit_rate_mean": _mean([r["cache_hit_rate"] for r in rs])}
        print(f"{name:31s} {_ms([r['best'] for r in rs]):>17s} {_ms([r['heldout'] for r in rs]):>18s} "
              f"{_ms([r['heldout_same_lr'] for r in rs]):>18s} "
              f"{100 * summary[name]['hit_rate_mean']:5.1f}% "
              f"{100 * _mean([r['invalid_or_failed'] for r in rs]):6.1f}% "
              f"{_mean([r['seconds'] for r in rs]):6.1f}")
    print("(held-out: conv, regress, autoenc; best program's loss / AdamW's, both with base lr tuned over "
          "0.001..0.1, or both at 0.01; '[k/n]': only k seeds' programs did not diverge)")
    print(f"\nStep time on {st['device']} ({st['threads']} thread(s)), MLP with {st['params']:,} parameters, median of "
          f"{st['steps']} interleaved steps:")
    for name in ("lion", "adamw"):
        d = st[name]
        print(f"  ProgramOptimizer({name} program) {d['program_ms']:.3f} ms  vs  {d['reference']} "
              f"{d['reference_ms']:.3f} ms  -> ratio {d['ratio']:.2f}x")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")
    out = {"config": {"budget": a.budget, "seeds": a.seeds, "evaluator_options": fid,
                      "population": a.population, "tournament": a.tournament, "quick": a.quick},
           "results": results, "summary": summary, "step_time": st, "seconds": total,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w", encoding="utf-8") as f:
        json.dump(jsonable(out), f, indent=1)
    print(f"wrote {a.output}")
    return 0


def _mean(v: list[float]) -> float:
    v = [x for x in v if x is not None and math.isfinite(x)]
    return statistics.mean(v) if v else math.nan


if __name__ == "__main__":
    sys.exit(main())
