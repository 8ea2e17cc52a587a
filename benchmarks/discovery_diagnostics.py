"""Why program search did not beat a tuned AdamW on the held-out tasks (issue 15), measured before
changing the discovery protocol (benchmarks/discovery.py):

1. **Known optimizers on the held-out protocol.**  Classic programs (Lion, Adam, RMSProp, ...)
   and a few known AdamW variants (lower beta1, a Nesterov-style momentum, AdaBelief's variance of
   g - m, heavier weight decay) scored by ``heldout_score`` exactly as discovery.py scores its
   winners (conv, regress, autoenc; 200 steps; base lr tuned over 0.001..0.1 for the program and
   for AdamW alike), seeds 0, 1, 2.  If something known beats AdamW here, a search can.
2. **Is the fitness predictive of the held-out score?**  A fixed sample of programs (the
   classics, seeded random AdamW constant settings -- betas, weight decay, lr multiplier, as TPE
   proposes them -- and seeded 1-3-mutation descendants of AdamW) is scored by candidate
   fitness definitions and on the held-out tasks at seed 100 (a seed the discovery benchmark
   does not use).  Spearman's rho over the whole sample, and over the 15 programs the fitness
   ranks best (what selection acts on), and the held-out score of the fitness's top 5.

Writes benchmarks/results/discovery_diagnostics.json and prints both tables.

    nice -n 10 python benchmarks/discovery_diagnostics.py     # 36 min here at nice 19 beside discovery.py
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")

NADAM_LIKE = """\
def train(w, g, m, v, lr, t):
  m = interp(g, m, 0.9)
  c = interp(g, m, 0.9)
  g2 = g * g
  v = interp(g2, v, 0.999)
  b1t = 0.9 ** t
  bc1 = 1.0 - b1t
  b2t = 0.999 ** t
  bc2 = 1.0 - b2t
  bc2_sqrt = bc2 ** 0.5
  step_size = lr / bc1
  root = sqrt(v)
  denom = root / bc2_sqrt
  denom = denom + 1e-08
  num = c * step_size
  adam = num / denom
  decay = lr * 0.01
  wd = w * decay
  update = adam + wd
  return update, m, v
"""
ADABELIEF = NADAM_LIKE.replace("  c = interp(g, m, 0.9)\n", "").replace(
    "  g2 = g * g\n", "  d = g - m\n  g2 = d * d\n").replace("num = c * step_size", "num = m * step_size")

#: candidate fitness definitions: OptimizerProxy options (80 steps, batched path)
FITNESSES = {
    "original (mlp, mlp_wide, charlm; lr 0.01)": {"tasks": ["mlp", "mlp_wide", "charlm"]},
    "original, lr tuned": {"tasks": ["mlp", "mlp_wide", "charlm"], "lr_grid": [0.003, 0.03]},
    "mlp, lr tuned": {"tasks": ["mlp"], "lr_grid": [0.003, 0.03]},
    "mlp_wide, lr tuned": {"tasks": ["mlp_wide"], "lr_grid": [0.003, 0.03]},
    "charlm, lr tuned": {"tasks": ["charlm"], "lr_grid": [0.003, 0.03]},
    "mlp_deep, lr tuned": {"tasks": ["mlp_deep"], "lr_grid": [0.003, 0.03]},
    "new (mlp, charlm, mlp_deep; lr tuned)": {"tasks": ["mlp", "charlm", "mlp_deep"], "lr_grid": [0.003, 0.03]},
}


def known_programs() -> dict[str, str]:
    from search_spaces.programs import CLASSIC_PROGRAMS
    from search_spaces.programs.classic import adam_text

    out = {n: CLASSIC_PROGRAMS[n] for n in ("adamw", "adam", "lion", "rmsprop", "adagrad", "momentum", "sgd")}
    out.update({"adamw beta1=0.8": adam_text(0.8, weight_decay=0.01),
                "adamw beta1=0.8 beta2=0.99": adam_text(0.8, 0.99, weight_decay=0.01),
                "adamw beta1=0.95": adam_text(0.95, weight_decay=0.01),
                "adamw weight_decay=0.1": adam_text(weight_decay=0.1),
                "adamw beta1=0.52 beta2=0.93 wd=0.8 lr x2.5 (what TPE found)":
                    adam_text(0.52, 0.93, weight_decay=0.8, lr_scale=2.5),
                "nadam-like (update from interp(g, m, 0.9))": NADAM_LIKE,
                "adabelief-like (v from (g - m)^2)": ADABELIEF})
    return out


def sample_programs(seed: int, n_constants: int, n_mutants: int) -> dict[str, str]:
    import numpy as np

    from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace, parse
    from search_spaces.programs.classic import adam_text

    rng = np.random.default_rng(seed)
    out = {n: t for n, t in known_programs().items() if n != "sgd"}
    for _ in range(n_constants):  # TPE's space in benchmarks/discovery.py, sampled at random
        b1, b2 = 1 - 10 ** rng.uniform(-2, math.log10(0.5)), 1 - 10 ** rng.uniform(-4, -1)
        wd, lrx = 10 ** rng.uniform(-5, 0), 10 ** rng.uniform(-0.7, 0.7)
        out[f"adamw b1={b1:.3f} b2={b2:.4f} wd={wd:.2g} lr x{lrx:.2f}"] = adam_text(b1, b2, weight_decay=wd,
                                                                                   lr_scale=lrx)
    space, base = ProgramSpace(), parse(CLASSIC_PROGRAMS["adamw"])
    k = 0
    while k < n_mutants:
        p = base
        for _ in range(int(rng.integers(1, 4))):
            p = space.mutate(p, rng)
        text = space.to_text(p)
        if p.info.error is None and text not in out.values():
            k += 1
            out[f"adamw mutant {k}"] = text
    return out


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y)[0]) if len(x) > 2 else math.nan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="held-out seeds for part 1")
    ap.add_argument("--corr-seed", type=int, default=100, help="held-out seed of part 2 (not a benchmark seed)")
    ap.add_argument("--constants", type=int, default=24, help="random AdamW constant settings in the sample")
    ap.add_argument("--mutants", type=int, default=16, help="AdamW descendants in the sample")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--output", default=os.path.join(RESULTS, "discovery_diagnostics.json"))
    a = ap.parse_args(argv)
    import torch

    from automl.log import versions
    from evaluators.optimizer_proxy import OptimizerProxy, heldout_score
    from search_spaces.programs import parse

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    seeds = [int(s) for s in a.seeds.split(",")]
    known = {}
    print(f"1. known programs on the held-out protocol (tuned AdamW = 1; lower is better), seeds {seeds}")
    for name, text in known_programs().items():
        per = [heldout_score(text, seed=s)["score"] for s in seeds]
        known[name] = {"per_seed": per, "mean": sum(per) / len(per), "beats_adamw_seeds": sum(x < 1.0 for x in per)}
        print(f"  {name:62s} " + " ".join(f"{x:7.3f}" for x in per) + f"   beats AdamW in {known[name]['beats_adamw_seeds']}"
              f"/{len(seeds)}", flush=True)

    texts = sample_programs(a.corr_seed, a.constants, a.mutants)
    names = list(texts)
    genomes = [parse(texts[n]) for n in names]
    held = [heldout_score(texts[n], seed=a.corr_seed)["score"] for n in names]
    fits = {}
    for fname, opts in FITNESSES.items():
        res = OptimizerProxy(**opts, batch=64, screen=8).evaluate_batch(genomes)
        fits[fname] = [r.objectives["val_loss"] for r in res]
    print(f"\n2. fitness vs held-out score (seed {a.corr_seed}) on {len(names)} programs "
          f"(Spearman rho; > 0: the fitness ranks like the held-out score)")
    print(f"  {'fitness':42s} {'rho all':>8s} {'rho top ' + str(a.top):>11s} {'held-out of its top 5':>22s}")
    table = {}
    for fname, vals in fits.items():
        ok = [i for i in range(len(names)) if math.isfinite(vals[i]) and math.isfinite(held[i])]
        top = sorted(ok, key=lambda i: (vals[i], i))[:a.top]
        row = {"rho_all": spearman([vals[i] for i in ok], [held[i] for i in ok]), "n": len(ok),
               "rho_top": spearman([vals[i] for i in top], [held[i] for i in top]),
               "heldout_of_top5": sum(held[i] for i in top[:5]) / len(top[:5]),
               "top5": [names[i] for i in top[:5]]}
        table[fname] = row
        print(f"  {fname:42s} {row['rho_all']:8.3f} {row['rho_top']:11.3f} {row['heldout_of_top5']:22.3f}", flush=True)
    out = {"protocol": {"heldout_seeds_part1": seeds, "heldout_seed_part2": a.corr_seed, "constants": a.constants,
                        "mutants": a.mutants, "top": a.top, "fitnesses": FITNESSES,
                        "heldout": "heldout_score defaults: conv, regress, autoenc; 200 steps; lr grid 0.001..0.1"},
           "known_programs": known, "fitness_vs_heldout": table,
           "sample": [{"name": n, "heldout": h, **{f: fits[f][i] for f in fits}} for i, (n, h) in
                      enumerate(zip(names, held))],
           "wall_s": time.perf_counter() - t0, "versions": versions()}
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(out, f, indent=1, allow_nan=True)
    print(f"wrote {a.output} ({out['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
