"""NAS-Bench-201 CIFAR-10 search, side by side in one run, on the real table (15,625 cells).

Configurations (budget counted in *charged* evaluations: a cache hit is not an evaluation):
  re+cache       our regularized evolution, functional equivalence cache (the default engine)
  re+cache+fcm   the same with functional-change mutation
  re+canonical   the same evolution deduplicated by NB201's own canonical string
  re-nocache     the same evolution, every proposal evaluated
  random+cache   our random search with the cache
  tpe+cache      Optuna TPE driven through the engine, the cache in front of it
  optuna-tpe     Optuna TPE as its users run it: study.optimize over the six categorical edges
  optuna-random  Optuna's random sampler, the same way
Reports, over seeds: mean best test accuracy vs charged evaluations (PNG + JSON), and the median
number of charged evaluations needed to reach the optimum and to come within 0.1 of it.

    python benchmarks/nb201_search.py [--seeds 20] [--budget 500] [--configs re+cache,optuna-tpe]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import automl
from automl import registry
from automl.api import read_run

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CONFIGS = ["re+cache", "re+cache+fcm", "re+canonical", "re-nocache", "random+cache", "tpe+cache", "optuna-tpe",
           "optuna-random"]
RE_OPTIONS = {"population_size": 50, "tournament_size": 10}


def _canonical_space():
    """NB201 space whose structural key is NB201's canonical string (the benchmark's own dedupe)."""
    from evaluators.tabular import nb201_table
    from search_spaces.cells import NB201Space

    table = nb201_table()

    class CanonicalNB201(NB201Space):
        def structural_key(self, genome):
            return table.unique[table.row(self.to_text(genome))]

    return CanonicalNB201


def _engine_curve(config: str, seed: int, budget: int, workdir: str) -> list[float]:
    """Best accuracy after each charged evaluation (index i = i+1 evaluations)."""
    kw = dict(space="nb201", evaluator="nb201-tabular", budget=budget, seed=seed,
              out=os.path.join(workdir, f"{config}-{seed}"))
    if config.startswith("re"):
        kw.update(strategy="evolution", strategy_options=dict(RE_OPTIONS, fcm=config.endswith("fcm")))
    elif config == "random+cache":
        kw.update(strategy="random")
    elif config == "tpe+cache":
        kw.update(strategy="tpe")
    if config == "re-nocache":
        kw.update(use_cache=False)
    if config == "re+canonical":
        kw.update(space="nb201-canonical", dedupe="structural")
    s = automl.search(**kw)
    _, recs = read_run(s["run_dir"])
    curve, best = [], -np.inf
    for r in recs:
        if r["status"] == "ok":
            best = max(best, r["objectives"]["cifar10"])
        if r["charged"]:
            curve.append(best)
    return curve


def _optuna_curve(sampler_name: str, seed: int, budget: int) -> list[float]:
    import optuna

    from evaluators.tabular import nb201_table
    from search_spaces.cells import NB201Space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, table = NB201Space(), nb201_table()
    choices = {k: list(v.choices) for k, v in space.param_space().items()}

    def objective(trial):
        params = {k: trial.suggest_categorical(k, c) for k, c in choices.items()}
        return float(table.acc[table.row(space.to_text(space.from_params(params))), 0])

    sampler = optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=budget)
    return list(np.maximum.accumulate([t.value for t in study.trials]))


def _reach(curve: list[float], target: float) -> int | None:
    for i, v in enumerate(curve):
        if v >= target - 1e-9:
            return i + 1
    return None


def _median_reach(values: list[int | None], budget: int) -> str | float:
    """Median with runs that never reached the target counted as > budget."""
    vals = sorted(v if v is not None else budget + 1 for v in values)
    med = statistics.median(vals)
    return f">{budget}" if med > budget else med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=500, help="charged evaluations per run")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    ap.add_argument("--output", default=os.path.join(RESULTS, "nb201_search"), help="path prefix for .json/.png")
    a = ap.parse_args(argv)
    configs = [c for c in a.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown configs: {', '.join(sorted(unknown))}")
    registry.register_space("nb201-canonical", _canonical_space())
    from evaluators.tabular import nb201_table

    optimum = float(nb201_table().acc[:, 0].max())
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for config in configs:
            t0 = time.perf_counter()
            curves = []
            for seed in range(a.seeds):
                if config.startswith("optuna-"):
                    curves.append(_optuna_curve(config.split("-", 1)[1], seed, a.budget))
                else:
                    curves.append(_engine_curve(config, seed, a.budget, workdir))
            # a run that stopped early (converged: only cache hits left) keeps its best to the budget
            padded = [c + [c[-1]] * (a.budget - len(c)) for c in curves]
            mean_curve = np.mean(padded, axis=0)
            results[config] = {
                "seconds": time.perf_counter() - t0,
                "reach_optimum": [_reach(c, optimum) for c in curves],
                "reach_within_0.1": [_reach(c, optimum - 0.1) for c in curves],
                "final_best": [c[-1] for c in curves],
                "evaluations_per_run": [len(c) for c in curves],
                "mean_curve": mean_curve.tolist(),
            }
            r = results[config]
            print(f"{config:14s} done in {r['seconds']:6.1f}s", file=sys.stderr)

    base = results.get("optuna-tpe")
    print(f"\nNAS-Bench-201 CIFAR-10, optimum {optimum:.2f}, {a.seeds} seeds, budget {a.budget} charged evaluations")
    print(f"{'config':14s} {'median evals':>13s} {'reached':>8s} {'median evals':>13s} {'mean best':>10s} {'vs optuna-tpe':>14s}")
    print(f"{'':14s} {'to optimum':>13s} {'optimum':>8s} {'to opt-0.1':>13s} {'at budget':>10s} {'(evals ratio)':>14s}")
    for r in results.values():
        r["median_reach_optimum"] = _median_reach(r["reach_optimum"], a.budget)
        r["median_reach_within_0.1"] = _median_reach(r["reach_within_0.1"], a.budget)
    for config, r in results.items():
        med = r["median_reach_optimum"]
        reached = sum(v is not None for v in r["reach_optimum"])
        ratio = ""
        if base is not None and isinstance(med, (int, float)) and isinstance(base.get("median_reach_optimum"), (int, float)):
            ratio = f"{med / base['median_reach_optimum']:.2f}"
        print(f"{config:14s} {str(med):>13s} {reached:>5d}/{a.seeds:<2d} {str(r['median_reach_within_0.1']):>13s} "
              f"{np.mean(r['final_best']):10.3f} {ratio:>14s}")

    os.makedirs(os.path.dirname(a.output), exist_ok=True)
    with open(a.output + ".json", "w") as f:
        json.dump({"optimum": optimum, "seeds": a.seeds, "budget": a.budget, "re_options": RE_OPTIONS,
                   "results": results, "versions": automl.log.versions()}, f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for config, r in results.items():
        ax.plot(np.arange(1, len(r["mean_curve"]) + 1), r["mean_curve"], label=config)
    ax.axhline(optimum, color="k", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_ylim(optimum - 3, optimum + 0.2)
    ax.set_xlabel("charged evaluations")
    ax.set_ylabel(f"mean best CIFAR-10 test accuracy over {a.seeds} seeds (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.output + ".png", dpi=100)
    print(f"\nwrote {a.output}.json and {a.output}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
