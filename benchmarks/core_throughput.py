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
  * optimizer programs are timed the way a search meets them: realistic 25-statement descendants
    of AdamW (``mutation.descendant``, at least 12 live statements), each hashed once, *cold*
    (every memo cleared before every call), by the compiled probe kernel (numba; lowering
    included) and by the numpy fallback (what a machine without numba runs: cold, and with the
    static-value memo -- ``0.9 ** t``, ``g * g`` -- warm from the other descendants, as in a
    search); sampled 2-8 statement programs are reported beside them.
  * the per-call cost of each deterministic probe function beside numpy's own (SIMD) ufunc, compiled
    (numba, loaded at the start; ``AUTOML_PROBE_NUMBA=0`` measures without it) and as numpy passes;
  * with ``--reference-programs DIR`` (DIR holding ``search_spaces/programs`` of another
    version, e.g. ``git archive main search_spaces/programs | tar -x -C DIR``), the same
    descendants are also hashed by that version's probe, interleaved with this one, each cold
    and timed as the minimum of 5 calls: the ratio is measured side by side, in one run, under
    the same load (the machine's load average is recorded too).
Prints a table and writes benchmarks/results/core_throughput.json.  Goals from the issues:
<= 50 us median per functional hash of a small candidate, <= 100 us for a realistic program
(cold), >= 5,000 candidates/s.

    python benchmarks/core_throughput.py [--candidates 20000] [--reference-programs DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
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


def _median_us(fn, items, repeat=3, before=None):
    """Median over ``items`` of the mean time of ``repeat`` calls; ``before()`` runs untimed before
    each call (to clear memos: a cold measurement)."""
    times = []
    for x in items:
        total = 0.0
        for _ in range(repeat):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn(x)
            total += time.perf_counter() - t0
        times.append(total / repeat * 1e6)
    return statistics.median(times)


def realistic_programs(n: int, statements: int = 25, seed: int = 0) -> list:
    """``n`` realistic search-time programs: descendants of AdamW (see the module docstring)."""
    from search_spaces.programs import ProgramSpace
    from search_spaces.programs.classic import ADAMW
    from search_spaces.programs.mutation import descendant
    from search_spaces.programs.parser import parse

    space, rng = ProgramSpace(), np.random.default_rng(seed)
    return [descendant(parse(ADAMW), rng, space.config, statements, min_live=12) for _ in range(n)]


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
        label = name + (" (sampled 2-8 stmts)" if name == "optimizer-programs" else "")
        rows.append({"representation": label, "structural_us": _median_us(h.structural, genomes),
                     "functional_us": _median_us(h.functional, genomes)})
        if name == "optimizer-programs":
            from search_spaces.programs import interp

            progs = realistic_programs(min(n, 500))
            path = "compiled kernel" if interp._jit() is not None else "numpy interpreter"
            rows.append({"representation": f"optimizer-programs (AdamW descendants, 25 stmts, cold; {path})",
                         "structural_us": _median_us(h.structural, progs, 1, interp.clear_memos),
                         "functional_us": _median_us(h.functional, progs, 1, interp.clear_memos)})

            def compile_cold():  # the static-value memo stays warm from the other descendants
                interp._compile_batched.cache_clear()
                interp._compile.cache_clear()

            with numpy_fallback():
                rows.append({"representation": "optimizer-programs (AdamW descendants, cold; numpy fallback)",
                             "structural_us": _median_us(h.structural, progs, 1, interp.clear_memos),
                             "functional_us": _median_us(h.functional, progs, 1, interp.clear_memos)})
                interp.clear_memos()
                rows.append({"representation": "optimizer-programs (AdamW descendants, static memo warm; numpy "
                                               "fallback)",
                             "structural_us": _median_us(h.structural, progs, 1, compile_cold),
                             "functional_us": _median_us(h.functional, progs, 1, compile_cold)})
    return rows


@contextlib.contextmanager
def numpy_fallback():
    """What a machine without numba runs: numpy probe math, the numpy program interpreter and
    the numpy quantizer (the same digests)."""
    from automl import hashing, probe_math as pm
    from search_spaces.programs import interp

    saved = pm._JIT_CORES, interp._JIT_MODULE, hashing._QUANTIZER
    pm._JIT_CORES, interp._JIT_MODULE, hashing._QUANTIZER = {}, False, False
    try:
        yield
    finally:
        pm._JIT_CORES, interp._JIT_MODULE, hashing._QUANTIZER = saved


def _load_programs_package(root: str):
    """``search_spaces/programs`` under ``root`` imported as a private package (another version)."""
    pkg = os.path.join(root, "search_spaces", "programs")
    if not os.path.isfile(os.path.join(pkg, "__init__.py")):
        raise SystemExit(f"--reference-programs: no search_spaces/programs package under {root!r}")
    name = "_reference_programs"
    spec = importlib.util.spec_from_file_location(name, os.path.join(pkg, "__init__.py"),
                                                  submodule_search_locations=[pkg])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod, sys.modules[name + ".interp"]


def reference_ratio(root: str, n: int, repeat: int = 5) -> dict:
    """This version's cold functional hash of ``n`` AdamW descendants vs another version's, on the
    same program texts, interleaved; per program the minimum of ``repeat`` cold calls."""
    from search_spaces.programs import ProgramSpace, interp
    from search_spaces.programs.ir import to_text

    ref_pkg, ref_interp = _load_programs_package(root)
    progs = realistic_programs(n)
    ref_space = ref_pkg.ProgramSpace()
    ref_progs = [ref_space.from_text(to_text(p)) for p in progs]
    h, h_ref = automl.Hasher(ProgramSpace()), automl.Hasher(ref_space)

    def ref_cold():
        for memo in ("_compile_batched", "_compile"):
            if hasattr(ref_interp, memo):
                getattr(ref_interp, memo).cache_clear()
        if hasattr(ref_interp, "clear_memos"):
            ref_interp.clear_memos()

    def best(fn, g, cold):
        t = []
        for _ in range(repeat):
            cold()
            t0 = time.perf_counter()
            fn(g)
            t.append(time.perf_counter() - t0)
        return min(t) * 1e6

    load0 = os.getloadavg()[0]
    ours, ours_numpy, ref = [], [], []
    for p, q in zip(progs, ref_progs):
        ours.append(best(h.functional, p, interp.clear_memos))
        with numpy_fallback():  # this version without numba
            ours_numpy.append(best(h.functional, p, interp.clear_memos))
        ref.append(best(h_ref.functional, q, ref_cold))
    return {"reference": root, "programs": n, "timing": f"min of {repeat} cold calls per program",
            "this_us": statistics.median(ours), "this_numpy_math_us": statistics.median(ours_numpy),
            "reference_us": statistics.median(ref),
            "ratio_median": statistics.median(a / b for a, b in zip(ours, ref)),
            "numpy_math_ratio_median": statistics.median(a / b for a, b in zip(ours_numpy, ref)),
            "load_average": [load0, os.getloadavg()[0]]}


def math_costs() -> list[dict]:
    """Per-call cost of each deterministic probe function (``probe_math.KERNELS``, as the probe
    calls them) beside numpy's SIMD ufunc, on one 9 x 128 lane array (the programs probe's
    tensor shape); minimum over repeats, so the least disturbed timing on a shared machine."""
    import timeit

    from automl import probe_math as pm

    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 128)) * 10.0 ** rng.uniform(-3, 1, (9, 128))
    rows = []
    with np.errstate(all="ignore"):
        for name in sorted(pm.KERNELS):
            x = np.abs(a) if name in ("log", "log1p") else np.clip(a, -0.99, 0.99) if name in (
                "arctanh", "arcsin", "arccos") else a
            args = (x, np.float64(1.7)) if name == "power" else (x,)
            ref, fn = getattr(np, name), pm.KERNELS[name]
            row = {"function": name + (" (x ** 1.7)" if name == "power" else ""),
                   "numpy_us": min(timeit.repeat(lambda ref=ref, args=args: ref(*args), number=100, repeat=7)) * 1e4,
                   "probe_math_us": min(timeit.repeat(lambda fn=fn, args=args: fn(*args), number=100, repeat=7)) * 1e4}
            jit, pm._JIT_CORES = pm._JIT_CORES, {}  # the numpy fallback beside the compiled kernel
            try:
                row["probe_math_numpy_us"] = min(timeit.repeat(lambda fn=fn, args=args: fn(*args), number=100, repeat=7)) * 1e4
            finally:
                pm._JIT_CORES = jit
            rows.append(row)
    return rows


def throughput(space: str, candidates: int, use_cache: bool, strategy: str = "evolution", repeats: int = 3,
               evaluator_options: dict | None = None, strategy_options: dict | None = None) -> dict:
    best = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            s = automl.search(space=space, evaluator="zero-cost", strategy=strategy, max_candidates=candidates,
                              out=os.path.join(d, "run"), use_cache=use_cache, seed=0,
                              evaluator_options=evaluator_options, strategy_options=strategy_options)
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
    ap.add_argument("--reference-programs", metavar="DIR", help="time another version's optimizer-programs "
                    "probe on the same descendants (DIR/search_spaces/programs)")
    a = ap.parse_args(argv)
    registry.register_space(CounterSpace.name, CounterSpace)
    from automl import probe_math as pm

    # compiled probe math from the start (a search switches after probe_math.AUTO_AFTER_CALLS calls);
    # AUTOML_PROBE_NUMBA=0 measures the numpy fallback throughout
    compiled = pm.enable_compiled()
    print(f"probe math: {'compiled (numba)' if compiled else 'numpy'}")
    load_before = os.getloadavg()

    hashes = hash_costs(a.hash_samples)
    print(f"{'representation':56s} {'structural us':>14s} {'functional us':>14s}   (median per candidate)")
    for r in hashes:
        print(f"{r['representation']:56s} {r['structural_us']:14.1f} {r['functional_us']:14.1f}")

    maths = math_costs()
    print(f"\n{'probe_math function (9 x 128)':32s} {'numpy us':>9s} {'probe_math us':>14s} {'(numpy fallback)':>17s}")
    for r in maths:
        print(f"{r['function']:32s} {r['numpy_us']:9.1f} {r['probe_math_us']:14.1f} {r['probe_math_numpy_us']:17.1f}")

    runs = [throughput(sp, a.candidates, cache, repeats=a.repeats)
            for sp in (CounterSpace.name, "expressions", "nb201", "optimizer-programs") for cache in (True, False)]
    print(f"\n{'space':20s} {'cache':>5s} {'candidates':>10s} {'charged':>8s} {'cand/s CPU':>10s} {'cand/s wall':>11s}")
    for r in runs:
        print(f"{r['space']:20s} {str(r['cache']):>5s} {r['candidates']:10d} {r['charged']:8d} "
              f"{r['candidates_per_cpu_s']:10.0f} {r['candidates_per_s']:11.0f}")
    ref = None
    if a.reference_programs:
        ref = reference_ratio(a.reference_programs, min(a.hash_samples, 200))
        print(f"\nAdamW descendants, cold, min of 5 per program: this {ref['this_us']:.0f} us "
              f"(numpy fallback {ref['this_numpy_math_us']:.0f} us), reference ({ref['reference']}) "
              f"{ref['reference_us']:.0f} us, median ratio {ref['ratio_median']:.2f}x "
              f"(numpy fallback {ref['numpy_math_ratio_median']:.2f}x)")
    load = {"before": list(load_before), "after": list(os.getloadavg()), "cpus": os.cpu_count()}
    print(f"load average (1, 5, 15 min) before {load['before']}, after {load['after']}, {load['cpus']} CPUs")
    out = a.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"hash_cost": hashes, "probe_math_cost": maths, "throughput": runs, "reference": ref, "load_average": load,
                   "probe_math_compiled": compiled,
                   "versions": automl.log.versions()}, f, indent=1)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
