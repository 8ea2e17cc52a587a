"""Population-batched evaluation of optimizer programs (issue 15): throughput, divergence
screening and the driver's rate, side by side in one run.

Protocol (fixed; ``--quick`` shrinks every count for a smoke run, and says so in the JSON):

* **Throughput** (``cpu``): the optimizer-proxy evaluator at its default fidelity (80 steps, lr
  0.01, seed 0), one torch thread, on two task sets: ``mlp`` alone (the issue's small-MLP
  protocol; the headline) and the default search fitness ``mlp, mlp_wide, charlm``.  Three
  populations of P = 256: *mixed* (``search_spaces.programs.batched.mixed_population(256, 0)``:
  classic programs, their mutants, 30 % fresh random programs), *descendants* (256 realistic
  25-statement AdamW descendants, as benchmarks/core_throughput.py builds them) and *same*
  (256 copies of AdamW).  Batched: ``OptimizerProxy(batch=256).evaluate_batch`` on the whole
  population; one-at-a-time: ``OptimizerProxy()`` (the reference path) on the whole population
  too on the CPU (``--serial`` k: k programs spread evenly over it; the default 48 on a GPU).
  Rates are candidates per wall second, the best of ``--repeats`` interleaved rounds (the machine
  may be shared; the load average is recorded).
* **Divergence** (``diverged_charged_fraction``): regularized evolution from AdamW (population
  64, tournament 8), default fitness tasks, batched evaluator with P = 64, seeds 0, 1, 2.
  *before*: a budget of ``--budget`` charged evaluations, no screen; *after*: screen = 8 steps
  per task and a budget of evaluator-seconds equal to what *before* spent with the same seed.
  Reported: the share of charged evaluations that diverged (an evaluation-count budget: what
  divergence costs today), the share of charged evaluator-seconds spent on diverging programs,
  and the best val_loss found.
* **Driver** (``driver``): the same search loop (ask, mutate, validate, hash, cache, log, tell;
  serial runner; evolution, population 64, tournament 8, seed 0) with the zero-cost evaluator
  answering generations of P (``batch=P``) on the optimizer-program space: candidates per wall
  second (the best of ``--repeats`` by CPU time, core_throughput's loop measurement), against the
  batched evaluator's rate on the *mixed* population (``mlp``) and its
  charged evaluations per evaluator-second inside the *after* searches.

Writes benchmarks/results/batched_programs.json: ``{"cpu": {"P", "batched_per_s",
"serial_per_s", ...}, "gpu": null (no GPU here; see benchmarks/gpu_check.sh),
"diverged_charged_fraction", "divergence": {...}, "driver": {...}, "discovery": null}``.

    nice -n 10 python benchmarks/batched_programs.py            # the full protocol (~15 min here)
    python benchmarks/batched_programs.py --quick --output /tmp/q.json
    python benchmarks/batched_programs.py --only throughput --late-from runs/opt-batched   # + a search's programs
    python benchmarks/batched_programs.py --device cuda --only throughput   # on a GPU machine
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")


def populations(P: int, only: tuple[str, ...] = ("mixed", "descendants", "same")) -> dict[str, list]:
    from search_spaces.programs import CLASSIC_PROGRAMS, parse
    from search_spaces.programs.batched import mixed_population
    from search_spaces.programs.mutation import descendant
    from search_spaces.programs.space import ProgramSpace
    import numpy as np

    out: dict[str, list] = {}
    if "mixed" in only:
        out["mixed"] = mixed_population(P, 0)
    if "descendants" in only:
        rng, cfg = np.random.default_rng(0), ProgramSpace().config
        adamw = parse(CLASSIC_PROGRAMS["adamw"])
        out["descendants"] = [descendant(adamw, rng, cfg, 25, min_live=12) for _ in range(P)]
    if "same" in only:
        out["same"] = [parse(CLASSIC_PROGRAMS["adamw"])] * P
    return out


def late_population(run_dir: str, P: int) -> list:
    """The last ``P`` charged (evaluated, not cache-hit) programs of a search's log: what a long
    search evaluates (longer, grown programs; most with a whole-model reduction)."""
    from automl.api import read_run
    from search_spaces.programs import parse

    _, recs = read_run(run_dir)
    texts = [r["candidate"] for r in recs if r.get("charged") and r.get("cache") == "miss"]
    if len(texts) < P:
        raise SystemExit(f"--late-from {run_dir}: {len(texts)} charged programs, need {P}")
    return [parse(t) for t in texts[-P:]]


def structure_calls(pop: list) -> int:
    """torch calls per step if the population were grouped by *structure* instead (one call per
    live statement of each distinct program with its constants as per-program columns): the
    alternative design, counted rather than built (the per-call overhead is the same)."""
    shapes = {}
    for p in pop:
        key = (tuple((ins.op, tuple(a if type(a) is int else "c" for a in ins.args))
                     for ins, live in zip(p.instrs, p.info.live) if live), p.outputs)
        shapes[key] = sum(p.info.live)
    return sum(shapes.values())


def sample(pop: list, n: int) -> list:
    """``n`` programs spread evenly over ``pop`` (all of it when n >= len(pop)): the population's
    head is its classic programs, which never diverge, so timing the first n would make the
    one-at-a-time rate slower than the population's (measured: 34.9/s on the first 48 of the mixed
    population vs 45.2/s on all 256)."""
    if n >= len(pop):
        return list(pop)
    step = len(pop) / n
    return [pop[int(k * step)] for k in range(n)]


def throughput(tasks: list[str], pops: dict[str, list], n_serial: int, repeats: int, device: str) -> dict:
    import torch

    from evaluators.optimizer_proxy import OptimizerProxy
    from search_spaces.programs.batched import BatchedPrograms

    torch.set_num_threads(1)
    P = len(next(iter(pops.values())))
    # the batched path's program interpreters, side by side: the op-grouped torch one and the
    # compiled numba one (the default on the CPU), one thread each; and the compiled one with
    # every core (``threads``), as a search running alone on the machine would use it
    variants = {"torch": OptimizerProxy(tasks=tasks, batch=P, device=device, backend="torch")}
    if device == "cpu":
        from search_spaces.programs.batched import compiled_available

        if compiled_available():
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            variants["numba"] = OptimizerProxy(tasks=tasks, batch=P, backend="numba")
            if cores > 1:
                variants[f"numba_{cores}_threads"] = OptimizerProxy(tasks=tasks, batch=P, backend="numba",
                                                                    threads=cores)
    head = "numba" if "numba" in variants else "torch"  # the default backend, one thread: the headline
    serial = OptimizerProxy(tasks=tasks, device=device)
    for t in tasks:  # AdamW baselines (once per process), outside the timings
        for ev in variants.values():
            ev.baseline(t)
        serial.baseline(t)
    rows: dict[str, dict] = {}
    for name, pop in pops.items():
        best = {k: 0.0 for k in variants}
        best_s = 0.0
        div = 0
        timed = sample(pop, n_serial)
        for _ in range(repeats):
            for k, ev in variants.items():
                t0 = time.perf_counter()
                res = ev.evaluate_batch(pop)
                best[k] = max(best[k], len(pop) / (time.perf_counter() - t0))
                if k == head:
                    div = sum(1 for r in res if r.info and r.info.get("diverged"))
            if name == "same":
                continue  # the one-at-a-time rate of one program says nothing new
            t0 = time.perf_counter()
            for g in timed:
                serial.evaluate(g)
            best_s = max(best_s, len(timed) / (time.perf_counter() - t0))
        best_b = best[head]
        rows[name] = {"batched_per_s": best_b, "backend": head, "serial_per_s": best_s or None,
                      "ratio": best_b / best_s if best_s else None, "diverged": div,
                      "by_backend": {k: {"per_s": r, "ratio": r / best_s if best_s else None}
                                     for k, r in best.items()},
                      "serial_programs": len(timed) if best_s else None,
                      "torch_calls_per_step": BatchedPrograms(pop, 1).calls_per_step,
                      "by_structure_calls_per_step": structure_calls(pop),
                      "live_statements": sum(sum(p.info.live) for p in pop)}
        others = "  ".join(f"{k} {r:8.1f}/s" for k, r in best.items() if k != head)
        print(f"  {','.join(tasks):22s} {name:12s} batched ({head}) {best_b:8.1f}/s  one-at-a-time "
              f"{best_s:7.1f}/s  ratio {rows[name]['ratio'] or float('nan'):6.2f}x  diverged {div}/{len(pop)}  "
              f"[{others}]  torch calls/step {rows[name]['torch_calls_per_step']} (by structure: "
              f"{rows[name]['by_structure_calls_per_step']})", flush=True)
    if "same" in rows and "mixed" in rows:
        rows["mixed"]["vs_same"] = rows["mixed"]["batched_per_s"] / rows["same"]["batched_per_s"]
    return {"tasks": tasks, "P": P, "serial_programs": n_serial, "repeats": repeats, "device": device,
            "populations": rows}


def _diverged(r: dict) -> bool:
    return r["status"] != "ok" and bool((r.get("info") or {}).get("diverged"))


def search_run(seed: int, budget: int | None, seconds: float | None, screen: int, tasks: list[str], P: int) -> dict:
    import automl
    from automl.api import read_run

    with tempfile.TemporaryDirectory() as d:
        opts = {"tasks": tasks, "batch": P}
        if screen:
            opts["screen"] = screen
        t0 = time.perf_counter()
        automl.search(space="optimizer-programs", evaluator="optimizer-proxy", seed=seed,
                      out=os.path.join(d, "run"), budget=budget, evaluator_seconds=seconds,
                      evaluator_options=opts, strategy_options={"population_size": 64, "tournament_size": 8})
        wall = time.perf_counter() - t0
        _, recs = read_run(os.path.join(d, "run"))
    real = [r for r in recs if r["charged"]]
    spent = sum(r["cost_s"] for r in real)
    div = [r for r in real if _diverged(r)]
    best = min((r["objectives"]["val_loss"] for r in real if r["status"] == "ok"), default=math.nan)
    return {"seed": seed, "screen": screen, "budget_evaluations": budget, "budget_evaluator_seconds": seconds,
            "candidates": len(recs), "charged": len(real), "evaluator_seconds": spent, "wall_s": wall,
            "diverged": len(div), "screened": sum(1 for r in div if r["info"].get("screened")),
            "diverged_count_fraction": len(div) / len(real) if real else math.nan,
            "diverged_seconds_fraction": sum(r["cost_s"] for r in div) / spent if spent else math.nan,
            "best": best, "evals_per_evaluator_s": len(real) / spent if spent else math.nan}


def divergence(seeds: list[int], budget: int, tasks: list[str], P: int, screen: int) -> dict:
    rows = []
    for seed in seeds:
        before = search_run(seed, budget, None, 0, tasks, P)
        after = search_run(seed, None, before["evaluator_seconds"], screen, tasks, P)
        rows.append({"before": before, "after": after})
        for k, r in (("before", before), ("after", after)):
            print(f"  seed {seed} {k:6s}: {r['charged']:5d} charged, {r['evaluator_seconds']:7.2f} evaluator-s, "
                  f"diverged {100 * r['diverged_count_fraction']:5.1f}% of evaluations / "
                  f"{100 * r['diverged_seconds_fraction']:5.1f}% of evaluator-s (screened {r['screened']}), "
                  f"best {r['best']:.4f}", flush=True)

    def mean(side, key):
        return sum(r[side][key] for r in rows) / len(rows)

    return {"protocol": {"seeds": seeds, "tasks": tasks, "batch": P, "population": 64, "tournament": 8,
                         "before": f"budget {budget} charged evaluations, no screen",
                         "after": f"screen {screen} steps per task, budget = before's evaluator-seconds"},
            "runs": rows,
            "before_diverged_count_fraction": mean("before", "diverged_count_fraction"),
            "before_diverged_seconds_fraction": mean("before", "diverged_seconds_fraction"),
            "after_diverged_seconds_fraction": mean("after", "diverged_seconds_fraction"),
            "after_diverged_count_fraction": mean("after", "diverged_count_fraction"),
            "best_not_worse_seeds": sum(1 for r in rows if r["after"]["best"] <= r["before"]["best"]),
            "evals_per_evaluator_s_after": mean("after", "evals_per_evaluator_s")}


def driver(candidates: int, repeats: int, batch: int) -> dict:
    from core_throughput import throughput as loop_rate  # the engine-loop measurement of core_throughput

    row = loop_rate("optimizer-programs", candidates, True, repeats=repeats, evaluator_options={"batch": batch},
                    strategy_options={"population_size": 64, "tournament_size": 8})
    row["charged_per_s"] = row["charged"] / row["seconds"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny counts (a smoke run, not the protocol)")
    ap.add_argument("--P", type=int, default=256, help="population size of the throughput measurement")
    ap.add_argument("--serial", type=int, default=0,
                    help="programs timed one at a time, spread over the population (default: all of it on "
                         "the CPU, 48 on a GPU)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds per rate (best kept)")
    ap.add_argument("--budget", type=int, default=768, help="charged evaluations of a 'before' search")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--screen", type=int, default=8, help="screen steps per task of the 'after' searches")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", help="comma-separated sections to run: throughput, divergence, driver (default all)")
    ap.add_argument("--late-from", metavar="RUN",
                    help="also time population 'late': the last P programs a search evaluated (its run folder), "
                         "on the default fitness tasks")
    ap.add_argument("--output", default=os.path.join(RESULTS, "batched_programs.json"))
    a = ap.parse_args(argv)
    sections = set(a.only.split(",")) if a.only else {"throughput", "divergence", "driver"}
    if sections - {"throughput", "divergence", "driver"}:
        ap.error(f"--only: unknown sections {sorted(sections - {'throughput', 'divergence', 'driver'})}")
    if a.quick:
        a.P, a.serial, a.repeats, a.budget, a.seeds = 32, 4, 1, 64, "0"
    if not a.serial:
        a.serial = a.P if a.device == "cpu" else 48
    seeds = [int(s) for s in a.seeds.split(",")]
    fitness = ["mlp", "mlp_wide", "charlm"]
    load0 = os.getloadavg()
    out: dict = {"protocol": {"quick": a.quick, "P": a.P, "serial_programs": a.serial, "repeats": a.repeats,
                              "torch_threads": 1, "steps": 80, "lr": 0.01}}
    if not a.only:
        out.update(gpu=None, discovery=None)  # (filled by gpu_check.sh / benchmarks/discovery.py)
    if "throughput" in sections:
        print(f"throughput, P = {a.P}, {a.device}, one torch thread (best of {a.repeats}):")
        pops = populations(a.P, ("mixed", "descendants", "same") if a.device == "cpu" else ("mixed", "same"))
        small = throughput(["mlp"], pops, a.serial, a.repeats, a.device)
        # the default fitness tasks: on the CPU only (on a GPU at P = 16384 their register files
        # would take tens of GiB; the GPU protocol is the small MLP)
        fpops = {"mixed": pops["mixed"]}
        if a.late_from:
            fpops["late"] = late_population(a.late_from, a.P)
        full = (throughput(fitness, fpops, a.serial, a.repeats, a.device)
                if a.device == "cpu" else None)
        mixed = small["populations"]["mixed"]
        if a.device == "cpu":
            out["cpu"] = {"P": a.P, "batched_per_s": mixed["batched_per_s"], "serial_per_s": mixed["serial_per_s"],
                          "ratio": mixed["ratio"], "protocol": "mixed population, task mlp, 80 steps",
                          "mlp": small, "default_tasks": full}
        else:
            out["gpu"] = {"P": a.P, "hetero_per_s": mixed["batched_per_s"],
                          "same_per_s": small["populations"]["same"]["batched_per_s"],
                          "serial_per_s": mixed["serial_per_s"], "device": a.device, "mlp": small}
    if "divergence" in sections:
        print(f"divergence: evolution, tasks {fitness}, batch 64, seeds {seeds}:")
        dv = divergence(seeds, a.budget, fitness, 64, a.screen)
        out["divergence"] = dv
        out["diverged_charged_fraction"] = dv["after_diverged_seconds_fraction"]
    if "driver" in sections:
        n = 500 if a.quick else 5000
        print(f"driver: {n} candidates, zero-cost evaluator, optimizer-programs:")
        dr = driver(n, a.repeats, a.P)
        ev_rate = out.get("cpu", {}).get("batched_per_s")
        in_search = out.get("divergence", {}).get("evals_per_evaluator_s_after")
        dr.update({"batched_evaluator_per_s": ev_rate, "in_search_evals_per_evaluator_s": in_search,
                   "ratio_vs_batched": dr["candidates_per_s"] / ev_rate if ev_rate else None,
                   "ratio_vs_in_search": dr["charged_per_s"] / in_search if in_search else None})
        out["driver"] = dr
        print(f"  driver {dr['candidates_per_s']:.0f} candidates/s ({dr['charged_per_s']:.0f} charged/s); "
              f"batched evaluator {ev_rate or float('nan'):.0f}/s -> ratio "
              f"{dr['ratio_vs_batched'] or float('nan'):.1f}x")
    out["load_average"] = {"before": list(load0), "after": list(os.getloadavg()), "cpus": os.cpu_count()}
    from automl.log import versions

    out["versions"] = versions()
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    if os.path.exists(a.output):  # keep the sections this run did not measure (gpu, discovery, ...)
        with open(a.output) as f:
            prev = json.load(f)
        prev.update({k: v for k, v in out.items() if v is not None or k not in prev})
        out = prev
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
