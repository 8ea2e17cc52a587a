"""Supernet ranking quality per path/data sampler: Kendall tau-b of supernet accuracy against
NAS-Bench-201's 200-epoch CIFAR-10 test accuracy, side by side in one run.

CPU protocol (the defaults; ``protocol_text`` writes the exact text into the results):
NB201 supernet C=8, N=1 (BN without affine parameters, batch statistics), CIFAR-10 train subset
of the first 1,000 images of each class (10,000), 5 epochs, batch 256, SGD lr 0.05 momentum 0.9
wd 2.5e-4, cosine per epoch, grad-clip 5, random crop + flip; one torch thread.  Ranking: a fixed
sample of 200 functional classes, stratified by the NB201 CIFAR-10 accuracy of each class's first
cell (classes sorted by it, split into 200 equal strata, one class drawn per stratum with seed 0);
every cell of the sampled classes is ranked through the equivalence cache (one charged evaluation
per class), each scored on the first 50 CIFAR-10 test images of each class (500), evaluation batch
500.  Samplers: spos, fairnas, pada-path, pada-data, pada (both), class-uniform; seeds 0, 1, 2.
tau = Kendall tau-b over the ranked classes, each scored by its first cell in NB201 order and
compared with that cell's accuracy; tau_cells = the same over every cell of those classes.
Overhead = median train-step time / SPOS median with all samplers' steps interleaved round-robin in
one process (FairNAS runs 5 paths per step); the ratio of the training runs' mean step times and
the time spent inside the samplers per step are reported too.

Runs are resumable: each (sampler, seed) trains into WORKDIR/<sampler>-s<seed> and its ranking is
appended to WORKDIR/runs.jsonl, so re-running the same command skips finished work.

    nice -n 10 python benchmarks/supernet_ranking.py --data /work/shared/data/cifar10/cifar10_uint8.npz
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SAMPLERS = {"spos": ("spos", "uniform"), "fairnas": ("fairnas", "uniform"), "pada-path": ("pada", "uniform"),
            "pada-data": ("spos", "pada"), "pada": ("pada", "pada"), "class-uniform": ("class-uniform", "uniform")}
DEFAULT_DATA = "/work/shared/data/cifar10/cifar10_uint8.npz"


def run_key(a) -> str:
    """What one (sampler, seed) run depends on; finished runs with this key are reused."""
    return (f"NB201 supernet C={a.channels}, N={a.cells} (BN affine=False, batch statistics); data {a.data_name}; "
            f"train subset first {a.train_per_class}/class; {a.epochs} epochs, batch {a.batch_size}, SGD lr 0.05 "
            f"momentum 0.9 wd 2.5e-4, cosine per epoch, grad-clip 5, crop+flip; device {a.device}, "
            f"{a.threads} torch thread(s). Ranking: {a.classes} functional classes (NB201 functional digest) "
            f"stratified by CIFAR-10 accuracy of each class's first cell (seed 0), every cell of them ranked "
            f"through the equivalence cache, scored on the first {a.test_per_class}/class test images, eval batch "
            f"{a.eval_batch}.")


def protocol_text(a) -> str:
    return (run_key(a) + " tau = Kendall tau-b vs NB201 CIFAR-10 test accuracy @200 epochs over the ranked "
            "classes (each class scored by its first cell in NB201 index order, compared with that cell's accuracy); "
            "tau_cells = the same over every cell of those classes (a class's cells share its score). Overhead = "
            f"median train-step time / SPOS median, all samplers timed round-robin in one process ({a.overhead_steps} "
            "steps each after 2 warm-up, fresh supernets, same data); overhead_training_runs = ratio of the mean "
            f"step times of the training runs. Seeds {','.join(map(str, a.seeds))}.")


def measure_overhead(a, names, images) -> dict:
    """Median train-step seconds per sampler, the samplers' steps interleaved round-robin so that
    load changes on a shared machine hit all of them alike."""
    import torch

    from evaluators.supernet.spaces import build_space
    from evaluators.supernet.trainer import (STEP_RULES, Batcher, TrainConfig, init_model, make_samplers,
                                             resolve_device, train_step)

    torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    sub = images.train_subset(a.train_per_class)
    batcher = Batcher(sub.x_train, sub.y_train, sub.mean, sub.std, dev, True)
    run = {}
    for n in names:
        path, data = SAMPLERS[n]
        cfg = TrainConfig(channels=a.channels, cells=a.cells, path_sampler=path, data_sampler=data, epochs=a.epochs,
                          batch_size=a.batch_size, seed=0, data=a.data, train_per_class=a.train_per_class)
        task = build_space(cfg.space_config(sub.num_classes))
        model = init_model(task, 0).to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        ps, ds = make_samplers(cfg, task, len(sub.y_train))
        run[n] = (cfg, task, model, opt, list(model.parameters()), ps, ds, ds.epoch_order(0, np.random.default_rng(0)))
    times = {n: [] for n in names}
    for s in range(a.overhead_steps + 2):
        for n in names[s % len(names):] + names[:s % len(names)]:
            cfg, task, model, opt, params, ps, ds, order = run[n]
            idx = np.asarray(order, dtype=np.int64)[(s * cfg.batch_size + np.arange(cfg.batch_size)) % len(order)]
            t0 = time.perf_counter()
            train_step(cfg, task, model, opt, params, ps, ds, STEP_RULES[cfg.step_rule], batcher, idx, 0, s,
                       sub.num_classes)
            if s >= 2:
                times[n].append(time.perf_counter() - t0)
    med = {n: float(np.median(t)) for n, t in times.items()}
    return {"median_step_s": med, "ratio": {n: med[n] / med["spos"] for n in names}}


def sample_classes(task, k: int, seed: int = 0) -> list[list[tuple[int, ...]]]:
    """``k`` functional classes, stratified by the NB201 CIFAR-10 accuracy of each class's first cell."""
    from evaluators.tabular.tables import nb201_table

    table = nb201_table()
    classes = task.classes()
    acc = [table.acc[table.row(str(task.genome_of(c[0]))), 0] for c in classes]
    order = sorted(range(len(classes)), key=lambda i: (acc[i], i))
    if k <= 0 or k >= len(classes):
        return list(classes)  # every class: all cells of the space are ranked
    rng = np.random.default_rng(seed)
    picked = [int(s[rng.integers(0, len(s))]) for s in np.array_split(np.array(order), k)]
    return [classes[i] for i in sorted(picked)]


def run_one(a, name: str, seed: int, images, cells) -> dict:
    from evaluators.supernet import kendall_tau, rank, train
    from evaluators.supernet.trainer import TrainConfig

    path, data = SAMPLERS[name]
    cfg = TrainConfig(channels=a.channels, cells=a.cells, path_sampler=path, data_sampler=data, epochs=a.epochs,
                      batch_size=a.batch_size, seed=seed, data=a.data, train_per_class=a.train_per_class)
    folder = os.path.join(a.workdir, f"{name}-s{seed}")
    t0 = time.perf_counter()
    summary = train(folder, cfg, device=a.device, images=images, threads=a.threads, progress=a.progress)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = rank(folder, cells, data=a.data, test_per_class=a.test_per_class, batch_size=a.eval_batch,
             device=a.device, threads=a.threads, progress=a.progress)
    t_rank = time.perf_counter() - t0
    firsts = {}
    for text, score in r["scores"].items():
        firsts.setdefault(r["digest_of"][text], (text, score))
    tau_cells = kendall_tau(r["scores"])
    tau_classes = kendall_tau(dict(firsts.values()))
    return {"sampler": name, "seed": seed, "tau": tau_classes, "tau_cells": tau_cells,
            "step_s": summary["timing"]["step_s"], "sampling_s": summary["timing"]["sampling_s"],
            "steps_timed": summary["timing"]["steps"], "train_s": t_train, "rank_s": t_rank,
            "charged": r["charged"], "cells": r["cells"], "classes": r["classes"],
            "final_train_acc": summary["history"][-1]["train_acc"], "op_probs": summary["history"][-1]["op_probs"],
            "weights_digest": summary["weights_digest"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="protocol: see the module docstring (python -m pydoc benchmarks/supernet_ranking.py)")
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 npz (uint8 N x32x32x3), or synthetic:N:M:SIZE:SEED")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--classes", type=int, default=200,
                   help="functional classes ranked (stratified sample); 0: all classes, i.e. every cell")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "supernet_ranking"))
    p.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "supernet_ranking.json"))
    p.add_argument("--plot", default=None, help="PNG path (default: OUTPUT with .png)")
    p.add_argument("--overhead-steps", type=int, default=15, help="timed steps per sampler for the overhead")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--assemble-only", action="store_true",
                   help="train nothing: write the results of the runs finished so far (marked incomplete if any is missing)")
    a = p.parse_args(argv)
    a.seeds = [int(s) for s in a.seeds.split(",")]
    names = a.samplers.split(",")
    bad = [n for n in names if n not in SAMPLERS]
    if bad:
        p.error(f"unknown sampler(s) {', '.join(bad)}; choose from {', '.join(SAMPLERS)}")
    if "spos" not in names:
        p.error("spos must be among the samplers (overheads are ratios to it)")

    from evaluators.supernet import data as _data
    from evaluators.supernet.spaces import NB201Supernet

    if not a.data.startswith("synthetic") and not os.path.exists(a.data):
        p.error(f"data file not found: {a.data} (pass --data PATH to CIFAR-10 as a uint8 npz)")
    images = _data.resolve(a.data)
    a.data_name = images.name
    task = NB201Supernet(a.channels, a.cells, images.num_classes)
    classes = sample_classes(task, a.classes)
    cells = sorted((task.genome_of(pth) for c in classes for pth in c), key=lambda g: g.codes)
    os.makedirs(a.workdir, exist_ok=True)
    log = os.path.join(a.workdir, "runs.jsonl")
    done = {}
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                r = json.loads(line)
                if r.get("protocol", "").split(" tau = ")[0] == run_key(a):
                    if "tau_cells" not in r:  # written before tau meant the class-level tau
                        r["tau_cells"], r["tau"] = r["tau"], r.pop("tau_classes")
                    done[(r["sampler"], r["seed"])] = r
    print(protocol_text(a), flush=True)
    print(f"{len(classes)} classes, {len(cells)} cells to rank", flush=True)
    for seed in a.seeds:
        for name in names:
            if (name, seed) in done or a.assemble_only:
                continue
            r = run_one(a, name, seed, images, cells)
            r["protocol"] = protocol_text(a)
            with open(log, "a") as f:
                f.write(json.dumps(r) + "\n")
            done[(name, seed)] = r
            print(f"  {name:14s} seed {seed}: tau {r['tau']:+.3f} (cells {r['tau_cells']:+.3f})  "
                  f"step {1000 * r['step_s']:.0f} ms  train {r['train_s']:.0f} s  rank {r['rank_s']:.0f} s  "
                  f"charged {r['charged']}/{r['cells']}", flush=True)

    ov_path = os.path.join(a.workdir, "overhead.json")
    overhead = None
    if os.path.exists(ov_path):
        with open(ov_path) as f:
            saved = json.load(f)
        if saved.get("key") == run_key(a) and set(saved["ratio"]) >= set(names):
            overhead = saved
    if overhead is None:
        overhead = {"key": run_key(a), **measure_overhead(a, names, images)}
        with open(ov_path, "w") as f:
            json.dump(overhead, f, indent=1)
    rows = {n: [done[(n, s)] for s in a.seeds if (n, s) in done] for n in names}
    missing = [f"{n}-s{s}" for n in names for s in a.seeds if (n, s) not in done]
    rows = {n: rs for n, rs in rows.items() if rs}
    if "spos" not in rows:
        print("no finished SPOS run yet: nothing to assemble", file=sys.stderr)
        return 1
    names = [n for n in names if n in rows]
    spos_step = float(np.mean([r["step_s"] for r in rows["spos"]]))
    res = {"protocol": protocol_text(a) + (f" INCOMPLETE: runs missing: {', '.join(missing)}." if missing else ""),
           "tau": {n: [r["tau"] for r in rs] for n, rs in rows.items()},
           "overhead": {n: overhead["ratio"][n] for n in names},
           "overhead_training_runs": {n: float(np.mean([r["step_s"] for r in rs])) / spos_step
                                      for n, rs in rows.items()},
           "charged_rank_evaluations": int(rows["spos"][0]["charged"]),
           "cells_ranked": int(rows["spos"][0]["cells"]),
           "tau_cells": {n: [r["tau_cells"] for r in rs] for n, rs in rows.items()},
           "sampling_fraction": {n: float(np.mean([r["sampling_s"] / r["step_s"] for r in rs])) for n, rs in rows.items()},
           "step_ms": {n: 1000 * overhead["median_step_s"][n] for n in names},
           "train_s": {n: float(np.mean([r["train_s"] for r in rs])) for n, rs in rows.items()},
           "rank_s": {n: float(np.mean([r["rank_s"] for r in rs])) for n, rs in rows.items()},
           "final_train_acc": {n: [r["final_train_acc"] for r in rs] for n, rs in rows.items()},
           "classes_ranked": int(rows["spos"][0]["classes"]),
           "seeds_done": {n: [r["seed"] for r in rs] for n, rs in rows.items()}, "missing_runs": missing}
    if "pada" in rows and min(len(rows["pada"]), len(rows["spos"])) > 1:
        sd = max(float(np.std(res["tau"]["spos"], ddof=1)), float(np.std(res["tau"]["pada"], ddof=1)))
        diff = float(np.mean(res["tau"]["pada"]) - np.mean(res["tau"]["spos"]))
        res["pada_vs_spos"] = {"mean_difference": diff, "larger_seed_sd": sd, "pada_better_by_more_than_sd": diff > sd}
    print(f"\n{'sampler':14s} {'tau-b mean':>10s} {'sd':>6s} {'per seed':>24s} {'tau(cells)':>12s} "
          f"{'step ms':>8s} {'x SPOS':>7s} {'sampling %':>10s}")
    for n in names:
        t = res["tau"][n]
        print(f"{n:14s} {np.mean(t):10.3f} {np.std(t, ddof=1) if len(t) > 1 else 0:6.3f} "
              f"{' '.join(f'{v:+.3f}' for v in t):>24s} {np.mean(res['tau_cells'][n]):12.3f} "
              f"{res['step_ms'][n]:8.0f} {res['overhead'][n]:7.3f} {100 * res['sampling_fraction'][n]:10.2f}")
    print(f"ranked {res['cells_ranked']} cells with {res['charged_rank_evaluations']} charged evaluations "
          f"({res['classes_ranked']} functional classes)")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(res, f, indent=1)
    png = a.plot or os.path.splitext(a.output)[0] + ".png"
    _plot(res, names, png)
    print(f"wrote {a.output} and {png}")
    return 0


def _plot(res, names, png) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, n in enumerate(names):
        t = np.array(res["tau"][n])
        ax.scatter(np.full(len(t), i), t, color="0.6", s=14, zorder=2)
        ax.errorbar(i, t.mean(), yerr=t.std(ddof=1) if len(t) > 1 else 0, fmt="o", color="C0", capsize=4, zorder=3,
                    label="over classes (headline)" if i == 0 else None)
        c = np.array(res["tau_cells"][n])
        ax.errorbar(i + 0.18, c.mean(), yerr=c.std(ddof=1) if len(c) > 1 else 0, fmt="s", mfc="none", color="C1",
                    capsize=3, zorder=3, label="over all cells of those classes" if i == 0 else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("Kendall tau-b vs NB201 CIFAR-10")
    ax.set_title("supernet ranking per sampler (mean ± sd over seeds; dots: seeds)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
