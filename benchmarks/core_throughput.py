"""Hash cost per candidate and engine throughput with a zero-cost evaluator.

Measures, in one run on this machine:
  * median microseconds per structural and functional digest of small candidates of every
    registered representation (plain lambdas, expressions, and whatever other spaces are
    installed), via automl.Hasher (namespaces built once, as the engine does);
  * candidates per second through the engine's dispatch loop (ask -> hash -> cache -> evaluate
    -> log -> tell, serial runner, regularized evolution, seed 0) with the zero-cost evaluator, on
    a minimal space (engine overhead alone) and on the expressions, NAS-Bench-201 and
    optimizer-program spaces (mutation, printing and hashing included), cache on and off.  Each
    figure is the best of --repeats runs; candidates/s is given per CPU second of this process
    (the machine may be shared: CPU time is what the loop costs) and per wall second.
Prints a table and writes benchmarks/results/core_throughput.json.  Goals from the issue:
<= 50 us median per functional hash of a small candidate, >= 5,000 candidates/s.

    python benchmarks/core_throughput.py [--candidates 20000]
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
from automl.space import SearchSpace

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class CounterSpace(SearchSpace):
    """Integers; mutation adds a random step.  As cheap as a space can be: measures the engine."""

    name = "bench-counter"
    probe_spec = "identity"

    def sample(self, rng):
        return int(rng.integers(0, 1 << 30))

    def mutate(self, g, rng):
        return g + int(rng.integers(1, 1000))

    def to_text(self, g):
        return str(g)

    def from_text(self, t):
        return int(t)

    def structural_key(self, g):
        return str(g)

    def probe(self, g, seed):
        return np.array([float(g % 1_000_003), float(g // 1_000_003)])  # exact in 24 bits


def _median_us(fn, items, repeat=3):
    times = []
    for x in items:
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn(x)
        times.append((time.perf_counter() - t0) / repeat * 1e6)
    return statistics.median(times)


def hash_costs(n: int) -> list[dict]:
    rows = []
    lambdas = [lambda x: x * 2, lambda x: x + x, lambda x: (x + 1) ** 2, lambda x: np.sin(x) ** 2 + 1]
    h = automl.Hasher()
    rows.append({"representation": "python lambda", "structural_us": _median_us(h.structural, lambdas * (n // 4)),
                 "functional_us": _median_us(h.functional, lambdas * (n // 4))})
    for name in registry.names("space"):
        try:
            space = registry.get_space(name)
        except Exception as exc:  # a space whose optional pieces are missing: report, go on
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        rng = np.random.default_rng(0)
        genomes = [space.sample(rng) for _ in range(n)]
        h = automl.Hasher(space)
        rows.append({"representation": name, "structural_us": _median_us(h.structural, genomes),
                     "functional_us": _median_us(h.functional, genomes)})
    return rows


def throughput(space: str, candidates: int, use_cache: bool, strategy: str = "evolution", repeats: int = 3) -> dict:
    best = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            s = automl.search(space=space, evaluator="zero-cost", strategy=strategy, max_candidates=candidates,
                              out=os.path.join(d, "run"), use_cache=use_cache, seed=0)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"space": space, "strategy": strategy, "cache": use_cache, "candidates": s["candidates"],
               "charged": s["charged_evaluations"], "seconds": dt, "cpu_seconds": cpu,
               "candidates_per_s": s["candidates"] / dt, "candidates_per_cpu_s": s["candidates"] / cpu}
        if best is None or row["candidates_per_cpu_s"] > best["candidates_per_cpu_s"]:
            best = row
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=20000, help="candidates per throughput run")
    ap.add_argument("--hash-samples", type=int, default=2000, help="candidates per hash-cost measurement")
    ap.add_argument("--repeats", type=int, default=3, help="runs per throughput figure (the best is kept)")
    ap.add_argument("--output", default=os.path.join(RESULTS, "core_throughput.json"), help="JSON file to write")
    a = ap.parse_args(argv)
    registry.register_space(CounterSpace.name, CounterSpace)

    hashes = hash_costs(a.hash_samples)
    print(f"{'representation':22s} {'structural us':>14s} {'functional us':>14s}   (median per candidate)")
    for r in hashes:
        print(f"{r['representation']:22s} {r['structural_us']:14.1f} {r['functional_us']:14.1f}")

    runs = [throughput(sp, a.candidates, cache, repeats=a.repeats)
            for sp in (CounterSpace.name, "expressions", "nb201", "optimizer-programs") for cache in (True, False)]
    print(f"\n{'space':20s} {'cache':>5s} {'candidates':>10s} {'charged':>8s} {'cand/s CPU':>10s} {'cand/s wall':>11s}")
    for r in runs:
        print(f"{r['space']:20s} {str(r['cache']):>5s} {r['candidates']:10d} {r['charged']:8d} "
              f"{r['candidates_per_cpu_s']:10.0f} {r['candidates_per_s']:11.0f}")
    out = a.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"hash_cost": hashes, "throughput": runs, "versions": automl.log.versions()}, f, indent=1)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
