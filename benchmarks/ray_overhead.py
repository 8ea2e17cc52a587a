"""What running on Ray costs: dispatch overhead per evaluation, Tune's trial overhead, scaling.

Measures, in one run on this machine (a local Ray instance started here):
  * dispatch overhead per evaluation through the engine: the same search (expressions space,
    zero-cost evaluator, cache off so every candidate is evaluated) on the serial runner and on
    the ray runner with several actors in flight; seconds per evaluation in steady state, from
    the run log's timestamps once every actor has delivered (actor start-up is a one-off cost,
    reported as the wall time).  The overhead is ray minus serial.  Goal from the issue: <= 1 ms
    per evaluation.
  * Ray Tune's own per-trial overhead: a Tuner with a trivial function trainable
    (reuse_actors=True), in steady state from the trials' end times, and over the whole fit.
  * throughput with the "sleep" evaluator (0.1 s per evaluation) against the number of actors,
    as a fraction of linear scaling (n_actors / 0.1 s evaluations per second).
Prints a table and writes benchmarks/results/ray_overhead.json.  Benchmarks measure; they do
not assert.

    python benchmarks/ray_overhead.py [--evals 4000] [--trials 200] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _search(tmp: str, tag: str, n: int, runner: str, runner_options: dict, evaluator: str = "zero-cost",
            evaluator_options: dict | None = None, actors: int = 0) -> dict:
    """One search (cache off: every candidate is evaluated); the steady-state seconds per
    evaluation come from the log's timestamps, after every actor has delivered a result (so
    actor start-up is not counted), else after the first tenth."""
    import automl
    from automl.log import read_records

    out = os.path.join(tmp, f"{tag}-{n}")
    t0 = time.perf_counter()
    s = automl.search(space="expressions", evaluator=evaluator, strategy="evolution", budget=n, seed=0, out=out,
                      runner=runner, runner_options=runner_options, use_cache=False,
                      evaluator_options=evaluator_options or {})
    wall = time.perf_counter() - t0
    assert s["charged_evaluations"] == n, s
    recs = [r for r in read_records(out) if r["charged"]]
    shutil.rmtree(out, ignore_errors=True)
    start = max(len(recs) // 10, 1)
    if actors:
        seen = set()
        for i, r in enumerate(recs):
            seen.add(r.get("worker"))
            if len(seen) >= actors:
                start = max(start, i)
                break
    span = recs[-1]["t"] - recs[start]["t"]
    return {"per_eval_s": span / (len(recs) - 1 - start), "wall_s": wall, "measured_evals": len(recs) - 1 - start}


def dispatch(tmp: str, n: int, actor_counts: list[int]) -> list[dict]:
    base = _search(tmp, "serial", n, "serial", {})
    rows = [{"runner": "serial", "actors": 0, "tasks_per_actor": 1, "ms_per_eval": base["per_eval_s"] * 1e3,
             "overhead_ms": 0.0,
             "evals": n, "measured_evals": base["measured_evals"], "wall_s": base["wall_s"]}]
    for a, depth in [(a, 1) for a in actor_counts] + [(actor_counts[0], 2)]:
        opts = {"num_actors": a, "num_cpus_per_actor": 2.0 / a, "tasks_per_actor": depth}
        r = _search(tmp, f"ray{a}-{depth}", n, "ray", opts, actors=a)
        rows.append({"runner": "ray", "actors": a, "tasks_per_actor": depth, "ms_per_eval": r["per_eval_s"] * 1e3,
                     "overhead_ms": (r["per_eval_s"] - base["per_eval_s"]) * 1e3, "evals": n,
                     "measured_evals": r["measured_evals"], "wall_s": r["wall_s"]})
    return rows


def tune_overhead(tmp: str, n: int) -> dict:
    """Seconds per trial of a Tuner whose trainable does nothing, in steady state (from the trials'
    own end times, after the first tenth), and the whole fit's wall time."""
    from ray import tune

    def trivial(config):
        return {"x": config["i"], "t_end": time.time()}

    t0 = time.perf_counter()
    tuner = tune.Tuner(trivial, param_space={"i": tune.grid_search(list(range(n)))},
                       tune_config=tune.TuneConfig(reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=os.path.join(tmp, "tune"), name="trivial", verbose=0))
    res = tuner.fit()
    wall = time.perf_counter() - t0
    assert len(res) == n and not res.errors
    ends = sorted(r.metrics["t_end"] for r in res)
    start = max(n // 10, 1)
    return {"trials": n, "ms_per_trial": (ends[-1] - ends[start]) / (n - 1 - start) * 1e3, "wall_s": wall,
            "wall_ms_per_trial": wall / n * 1e3}


def scaling(tmp: str, actor_counts: list[int], seconds: float = 0.1, per_actor: int = 30) -> list[dict]:
    rows = []
    for a in actor_counts:
        r = _search(tmp, f"sleep{a}", per_actor * a, "ray", {"num_actors": a, "num_cpus_per_actor": 2.0 / a},
                    "sleep", {"seconds": seconds}, actors=a)
        thr = 1.0 / r["per_eval_s"]
        rows.append({"actors": a, "evals_per_s": thr, "linear_evals_per_s": a / seconds,
                     "fraction_of_linear": thr / (a / seconds), "evals": per_actor * a,
                     "measured_evals": r["measured_evals"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=4000, help="evaluations of the long dispatch run")
    ap.add_argument("--trials", type=int, default=200, help="trials of the long Tune run")
    ap.add_argument("--actors", default="2,4,8", help="actor counts for the dispatch measurement")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.evals, a.trials = 400, 20
    import ray

    from automl.runners.ray import connect

    connect(None, {"num_cpus": 2, "log_to_driver": False})
    tmp = tempfile.mkdtemp(prefix="ray-overhead-")
    try:
        d = dispatch(tmp, a.evals, [int(x) for x in a.actors.split(",")])
        tn = tune_overhead(tmp, a.trials)
        sc = scaling(tmp, [1, 2], per_actor=12 if a.quick else 30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"dispatch through the engine (expressions + zero-cost, cache off, {a.evals} evaluations; steady state)")
    print(f"{'runner':8s} {'actors':>6s} {'per actor':>9s} {'ms/eval':>9s} {'overhead ms':>12s} {'wall s':>8s}")
    for r in d:
        print(f"{r['runner']:8s} {r['actors']:6d} {r['tasks_per_actor']:9d} {r['ms_per_eval']:9.3f} "
              f"{r['overhead_ms']:12.3f} {r['wall_s']:8.2f}")
    print(f"\nRay Tune, trivial trainable, {tn['trials']} trials: {tn['ms_per_trial']:.1f} ms per trial in steady "
          f"state; {tn['wall_ms_per_trial']:.1f} ms per trial counting the whole fit ({tn['wall_s']:.1f} s)")
    print("\nsleep evaluator (0.1 s), ray runner")
    print(f"{'actors':>6s} {'evals/s':>8s} {'linear':>7s} {'of linear':>10s}")
    for r in sc:
        print(f"{r['actors']:6d} {r['evals_per_s']:8.2f} {r['linear_evals_per_s']:7.1f} "
              f"{100 * r['fraction_of_linear']:9.1f}%")
    os.makedirs(RESULTS, exist_ok=True)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                       "platform": platform.platform()},
           "dispatch": d, "tune": tn, "scaling": sc,
           "argv": sys.argv[1:]}
    path = os.path.join(RESULTS, "ray_overhead.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
