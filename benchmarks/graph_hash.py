"""Graph hashing on NAS cells: partitions of all 15,625 NB201 cells and hashing time.

    python benchmarks/graph_hash.py                      # NB201 table + a 1% NB101 enumeration sample
    python benchmarks/graph_hash.py --nb101-enumerate    # also enumerate all NB101 graphs (long)

Functional soundness (schema v2): for NB201 the functional partition under 3 probe seeds and a
sweep of the probe's spatial size (6, 8, 10, 12: class counts, classes mixing live-parameter
counts).  For NB101, each structural class of the enumeration (one representative each) gets
its functional digest; every functional class that merges several structural classes is checked
against a *ground truth*: the same cell run on a much larger probe (16 x 16 pixels) under two
other seeds, quantized to 24 bits.  A merge whose members differ there is a false merge
(non-equivalent cells sharing a digest).  The size sweep repeats this on the sample.

For NB201 it reports the number of classes of three partitions -- structural digest, functional
digest, NB201's own canonical string (``UniqueString``) -- the CPU time to hash all cells on one
core (fresh caches), and for each partition how many classes mix cells with different live
trainable-parameter counts.  For NB101 it enumerates labelled graphs the way nasbench's
``generate_graphs.py`` does (2..7 vertices, every vertex on an input->output path, <= 9 edges,
3 interior ops) and counts distinct structural keys (the published count is 423,624).

Writes benchmarks/results/graph_hash.json.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import automl  # noqa: E402
from evaluators.tabular import nb201_table  # noqa: E402
from search_spaces.cells import nb101, nb201  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED_NB101_UNIQUE = 423_624
SWEEP_SIZES = (6, 8, 10, 12)
TRUTH_SIZE, TRUTH_SEEDS = 16, (101, 202)


def _size_digest(outs) -> str:
    return automl.hashing.mix(automl.hashing.quantize(outs))


def _truth(cell, probe) -> str:
    """Ground-truth key: the cell on a 16 x 16 probe under two other seeds."""
    return automl.hashing.mix(*(automl.hashing.quantize(probe(cell, s, TRUTH_SIZE)) for s in TRUTH_SEEDS))


def nb101_merges(reps: list, size: int | None = None) -> dict:
    """Functional classes over structural-class representatives ``reps``; merges checked against
    the ground truth (see the module docstring).  ``size=None``: the real digests (default probe)."""
    space = nb101.NB101Space()
    h = automl.Hasher(space)
    t0 = time.process_time()
    if size is None:
        keys = [h.functional(c) for c in reps]
    else:
        keys = [_size_digest(nb101.probe_outputs(c, automl.hashing.PROBE_SEED, size)) for c in reps]
    seconds = time.process_time() - t0
    groups = defaultdict(list)
    for c, k in zip(reps, keys):
        groups[k].append(c)
    merged = [g for g in groups.values() if len(g) > 1]
    false, examples = 0, []
    for g in merged:
        truths = {_truth(c, nb101.probe_outputs) for c in g}
        if len(truths) > 1:
            false += 1
            if len(examples) < 5:
                examples.append([nb101.to_text(c) for c in g[:2]])
    params = [nb101.live_param_count(c) for c in reps]
    return {"structural_classes": len(reps), "functional_classes": len(groups),
            "functional_classes_merging_structural": len(merged),
            "false_merges_vs_ground_truth": false, "false_merge_examples": examples,
            "classes_mixing_param_counts": _mixing(keys, params), "seconds_one_core": seconds}


def _clear_nb201_caches() -> None:
    nb201.live_edges.cache_clear()
    nb201.pruned.cache_clear()
    nb201._structural.cache_clear()
    nb201.symbolic_output.cache_clear()
    nb201._VALUES.clear()


def _mixing(keys, params) -> int:
    seen: dict = defaultdict(set)
    for k, p in zip(keys, params):
        seen[k].add(p)
    return sum(1 for v in seen.values() if len(v) > 1)


def nb201_section(repeats: int = 3) -> dict:
    table = nb201_table()
    space = nb201.NB201Space()
    cells = [space.from_text(a) for a in table.arch]
    t_struct, t_func = [], []
    for _ in range(repeats):  # best of a few runs, each from cold caches
        _clear_nb201_caches()
        h = automl.Hasher(space)
        t0 = time.process_time()
        s = [h.structural(c) for c in cells]
        t1 = time.process_time()
        f = [h.functional(c) for c in cells]
        t2 = time.process_time()
        t_struct.append(t1 - t0)
        t_func.append(t2 - t1)
    f2 = [automl.Hasher(space, seed=12345).functional(c) for c in cells]
    f3 = [automl.Hasher(space, seed=777).functional(c) for c in cells]
    params = [nb201.live_param_count(c) for c in cells]
    sweep = {}
    for size in SWEEP_SIZES:
        d = [_size_digest(nb201.probe_outputs(c, automl.hashing.PROBE_SEED, size)) for c in cells]
        sweep[str(size)] = {"classes": len(set(d)), "classes_mixing_param_counts": _mixing(d, params)}

    def partition(keys):
        groups = defaultdict(list)
        for i, k in enumerate(keys):
            groups[k].append(i)
        return sorted(map(tuple, groups.values()))

    u = list(table.unique)
    return {
        "cells": len(cells),
        "classes": {"structural": len(set(s)), "functional": len(set(f)), "nb201_canonical_string": len(set(u))},
        "classes_mixing_param_counts": {"structural": _mixing(s, params), "functional": _mixing(f, params),
                                        "nb201_canonical_string": _mixing(u, params)},
        "seconds_all_cells_one_core": {"structural": min(t_struct), "functional": min(t_func)},
        "seconds_first_run_in_process": {"structural": t_struct[0], "functional": t_func[0]},
        "functional_partition_same_under_second_seed": partition(f) == partition(f2),
        "functional_partition_same_under_3_seeds": partition(f) == partition(f2) == partition(f3),
        "probe_size_sweep": sweep,
    }


# --- NB101 enumeration ---------------------------------------------------------------------------

def _matrices(v: int, fraction: float, rng: random.Random):
    """Upper-triangular v x v matrices (as bit patterns) that are 'full DAGs' with <= 9 edges."""
    pairs = [(i, j) for j in range(v) for i in range(j)]
    n_bits = len(pairs)
    patterns = range(2 ** n_bits)
    if fraction < 1.0:
        k = max(1, round(len(patterns) * fraction))
        patterns = sorted(rng.sample(patterns, k))
    last = v - 1
    for bits in patterns:
        if bin(bits).count("1") > nb101.MAX_EDGES:
            continue
        out_deg = [0] * v
        in_deg = [0] * v
        edges = []
        for b, (i, j) in enumerate(pairs):
            if bits >> b & 1:
                out_deg[i] += 1
                in_deg[j] += 1
                edges.append((i, j))
        if all(out_deg[i] for i in range(last)) and all(in_deg[j] for j in range(1, v)):
            yield edges


def nb101_enumerate(fraction: float = 1.0, seed: int = 0) -> dict:
    """Hash every valid labelled NB101 graph (or a random ``fraction`` of the adjacency patterns of
    each size, with all their labelings).  Uses the structural key of the space (exact)."""
    from search_spaces.cells.canon import canonical_string

    rng = random.Random(seed)
    codes = [nb101.OP_CODES[o] for o in nb101.OPS]
    keys: dict[str, tuple] = {}
    total = 0
    t0 = time.process_time()
    for v in range(2, nb101.MAX_VERTICES + 1):
        for edges in _matrices(v, fraction, rng):
            for lab in itertools.product(codes, repeat=v - 2):
                keys.setdefault(canonical_string((0,) + lab + (1,), edges), (v, edges, lab))
                total += 1
    seconds = time.process_time() - t0
    return {"fraction_of_adjacency_patterns": fraction, "labelled_graphs": total, "unique": len(keys),
            "seconds_one_core": seconds,
            "estimated_full_seconds": seconds / fraction if fraction < 1.0 else seconds,
            "_reps": [_cell(*r) for r in keys.values()]}


def _cell(v: int, edges, lab) -> "nb101.NB101Cell":
    names = {nb101.OP_CODES[o]: o for o in nb101.OPS}
    m = [[0] * v for _ in range(v)]
    for i, j in edges:
        m[i][j] = 1
    return nb101.NB101Cell.make(m, [nb101.INPUT, *(names[c] for c in lab), nb101.OUTPUT])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nb101-enumerate", action="store_true", help="enumerate all NB101 graphs (minutes)")
    ap.add_argument("--nb101-fraction", type=float, default=0.01, help="sample fraction for the quick NB101 run")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    ap.add_argument("--out", type=Path, default=RESULTS / "graph_hash.json")
    args = ap.parse_args(argv)

    res: dict = {"python": platform.python_version(), "machine": platform.machine(),
                 "nb201": nb201_section(args.repeats)}
    res["nb101_sample"] = nb101_enumerate(args.nb101_fraction)
    reps = res["nb101_sample"].pop("_reps")
    res["nb101_sample"]["functional"] = nb101_merges(reps)
    if args.nb101_enumerate:
        full = nb101_enumerate(1.0)
        full["published_unique"] = PUBLISHED_NB101_UNIQUE
        reps = full.pop("_reps")
        full["functional"] = nb101_merges(reps)
        res["nb101_full"] = full
    # the size sweep runs where saturation can happen: classes with >= 3 max-pool vertices
    at_risk = [c for c in reps if c.pruned[1].count(nb101.MAXPOOL) >= 3]
    res["nb101_probe_size_sweep"] = {"population": f"{len(at_risk)} structural classes with >= 3 max-pools "
                                                   f"({'full enumeration' if args.nb101_enumerate else 'sample'})",
                                     **{str(s): nb101_merges(at_risk, s) for s in SWEEP_SIZES}}

    n = res["nb201"]
    print(f"NB201, all {n['cells']} cells")
    print(f"{'partition':<26}{'classes':>9}{'mixing param counts':>22}{'hash all (s, 1 core)':>23}")
    for name in ("structural", "functional", "nb201_canonical_string"):
        t = n["seconds_all_cells_one_core"].get(name)
        print(f"{name:<26}{n['classes'][name]:>9}{n['classes_mixing_param_counts'][name]:>22}"
              f"{('%.3f' % t) if t is not None else '-':>23}")
    print(f"functional partition identical under 3 probe seeds: {n['functional_partition_same_under_3_seeds']}")
    print("probe size sweep (NB201 classes / mixing param counts; NB101 functional classes / false merges over "
          f"{res['nb101_probe_size_sweep']['population']}):")
    for size in SWEEP_SIZES:
        a, b = n["probe_size_sweep"][str(size)], res["nb101_probe_size_sweep"][str(size)]
        print(f"  {size:>2}x{size:<2}  NB201 {a['classes']:>5} / {a['classes_mixing_param_counts']}   "
              f"NB101 {b['functional_classes']:>6} / {b['false_merges_vs_ground_truth']}")
    for key in ("nb101_sample", "nb101_full"):
        if key in res:
            r = res[key]
            print(f"NB101 {key.split('_')[1]}: {r['labelled_graphs']} labelled graphs -> {r['unique']} unique "
                  f"in {r['seconds_one_core']:.1f} s (fraction {r['fraction_of_adjacency_patterns']}; "
                  f"estimated full run {r['estimated_full_seconds']:.0f} s)"
                  + (f"; published {PUBLISHED_NB101_UNIQUE}" if key == "nb101_full" else ""))
            f = r["functional"]
            print(f"  functional: {f['functional_classes']} classes, {f['functional_classes_merging_structural']} "
                  f"merge several structural classes, {f['false_merges_vs_ground_truth']} false merges vs the "
                  f"{TRUTH_SIZE}x{TRUTH_SIZE} two-seed ground truth, {f['classes_mixing_param_counts']} mixing "
                  f"param counts ({f['seconds_one_core']:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
