"""Where the time of a batched proxy evaluation goes (issue 15), phase by phase, and of the
one-at-a-time reference path beside it, in one run.

Protocol (fixed): task ``mlp`` at the evaluator's default fidelity (80 steps, lr 0.01, seed 0),
one torch thread, populations of P = 256 (``--P``): *mixed*
(``search_spaces.programs.batched.mixed_population(P, 0)``) and *same* (P copies of AdamW).
Batched: ``OptimizerProxy(tasks=["mlp"], batch=P).evaluate_batch`` once to warm up, then
``--repeats`` timed calls; each phase is timed by wrapping the function that does it
(single-threaded CPU: calls are synchronous, so wall time per call is the phase's time):

* ``model``: forward, loss and backward of the P model copies (``chain_loss_and_grad``, the
  hand-written backward; or the autograd path for tasks without a chain);
* ``programs``: the batched program interpreter (``step`` of the evaluator's backend:
  ``CompiledPrograms`` on the CPU with numba, else ``BatchedPrograms``);
* ``plans``: building program plans (``__init__`` + ``precompute``: at the start and whenever
  diverged programs leave the batch; the compiled backend selects rows of its plan instead);
* ``validation``: ``TaskRun.finish`` minus the steps it runs;
* ``other``: the rest (divergence checks, cost accounting, ``w -= update``, evaluator glue).

One at a time: ``OptimizerProxy(tasks=["mlp"])`` on the whole mixed population, with
``ProgramOptimizer.step`` timed the same way (``optimizer``), the rest being the model and loop.
Reported: seconds per batch (median of repeats) and the share of each phase, and per
candidate-step for both paths.  Measures, never asserts; prints a table and writes
benchmarks/results/batched_profile.json.

    nice -n 10 python benchmarks/batched_profile.py
    python benchmarks/batched_profile.py --P 32 --repeats 1 --output /tmp/p.json    # smoke
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")


class Timers:
    def __init__(self):
        self.s: dict[str, float] = {}
        self.depth = 0

    def wrap(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)
        timers = self

        @functools.wraps(fn)
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers.s[phase] = timers.s.get(phase, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--P", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", default=os.path.join(RESULTS, "batched_profile.json"))
    a = ap.parse_args(argv)
    import torch

    from evaluators.optimizer_proxy import OptimizerProxy
    from evaluators.optimizer_proxy import batched as EB
    from search_spaces.programs import CLASSIC_PROGRAMS, parse
    from search_spaces.programs import batched as SB
    from search_spaces.programs.optim import ProgramOptimizer

    torch.set_num_threads(1)
    timers = Timers()
    timers.wrap(EB, "chain_loss_and_grad", "model")
    timers.wrap(torch.autograd, "grad", "model")  # tasks without a chain (not mlp)
    for cls in (SB.BatchedPrograms, SB.CompiledPrograms):  # whichever backend the evaluator runs
        timers.wrap(cls, "step", "programs")
        timers.wrap(cls, "__init__", "plans")
        timers.wrap(cls, "precompute", "plans")
    timers.wrap(EB.TaskRun, "finish", "finish")
    timers.wrap(EB.TaskRun, "advance", "advance")
    timers.wrap(ProgramOptimizer, "step", "optimizer")
    pops = {"mixed": SB.mixed_population(a.P, 0), "same": [parse(CLASSIC_PROGRAMS["adamw"])] * a.P}
    ev = OptimizerProxy(tasks=["mlp"], batch=a.P)
    ev.baseline("mlp")
    out: dict = {"protocol": {"task": "mlp", "steps": 80, "P": a.P, "repeats": a.repeats, "torch_threads": 1,
                              "backend": ev.backend},
                 "batched": {}, "load_average_before": list(os.getloadavg())}
    for name, pop in pops.items():
        ev.evaluate_batch(pop)  # warm
        runs = []
        for _ in range(a.repeats):
            timers.s = {}
            t0 = time.perf_counter()
            res = ev.evaluate_batch(pop)
            total = time.perf_counter() - t0
            s = dict(timers.s)
            phases = {"model": s.get("model", 0.0), "programs": s.get("programs", 0.0), "plans": s.get("plans", 0.0)}
            # no screen: finish() runs every step through advance(), then validates
            phases["validation"] = s.get("finish", 0.0) - s.get("advance", 0.0)
            phases["other"] = total - sum(phases.values())
            runs.append((total, phases, sum(1 for r in res if r.info and r.info.get("diverged"))))
        total, phases, div = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        out["batched"][name] = {"seconds": total, "per_s": a.P / total, "diverged": div,
                                "phases_s": phases, "phases_share": {k: v / total for k, v in phases.items()}}
    # one at a time, the whole mixed population
    serial = OptimizerProxy(tasks=["mlp"])
    serial.baseline("mlp")
    timers.s = {}
    t0 = time.perf_counter()
    for g in pops["mixed"]:
        serial.evaluate(g)
    total = time.perf_counter() - t0
    opt = timers.s.get("optimizer", 0.0)
    out["serial"] = {"seconds": total, "per_s": a.P / total, "programs": a.P,
                     "phases_s": {"optimizer": opt, "model_and_loop": total - opt},
                     "phases_share": {"optimizer": opt / total, "model_and_loop": 1 - opt / total}}
    out["ratio_mixed"] = out["batched"]["mixed"]["per_s"] / out["serial"]["per_s"]
    out["load_average_after"] = list(os.getloadavg())
    print(f"task mlp, 80 steps, P = {a.P}, one torch thread; batched: median of {a.repeats} timed batches")
    print(f"  {'':22s}{'s/batch':>9}{'cand/s':>9}  " + "  ".join(f"{k:>10}" for k in
                                                                   ("model", "programs", "plans", "validation", "other")))
    for name, r in out["batched"].items():
        print(f"  batched {name:14s}{r['seconds']:9.3f}{r['per_s']:9.1f}  " + "  ".join(
            f"{100 * r['phases_share'][k]:9.1f}%" for k in ("model", "programs", "plans", "validation", "other")))
    sr = out["serial"]
    print(f"  one at a time (mixed){sr['seconds']:9.3f}{sr['per_s']:9.1f}  optimizer step "
          f"{100 * sr['phases_share']['optimizer']:.1f}%, model and loop {100 * sr['phases_share']['model_and_loop']:.1f}%")
    print(f"  batched / one at a time (mixed): {out['ratio_mixed']:.2f}x")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
