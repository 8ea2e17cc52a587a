"""Per-step time of discovered optimizers run by ProgramOptimizer, against the hand-written ones.

Protocol (fixed; all contenders interleaved in one run so drifting machine load hits them alike):
  * parameter lists of two realistic models, float32, CPU, random weights and one fixed random
    gradient per parameter (set once; a step's cost does not depend on the values):
      - resnet18: the 62 parameter tensors of torchvision's ResNet-18 (11.7 M elements; shapes
        written out here, torchvision is not needed) — the headline;
      - mlp: an MLP 784-2048-2048-10 with LayerNorms (5.8 M elements, 10 tensors);
  * contenders, each on its own copy of the parameters:
      AdamW program (CLASSIC_PROGRAMS["adamw"]) with backend "compile", "foreach" and "interp"
      vs torch.optim.AdamW(weight_decay=0.01) with fused=True and with foreach=True;
      Lion program (CLASSIC_PROGRAMS["lion"]) with backend "compile" and "foreach"
      vs lion_pytorch.Lion(betas=(0.9, 0.99), weight_decay=0.01);
  * warm-up: 3 steps each (state allocation; the compiled backends compile here — their first
    step is timed separately as the compile cost, with a fresh inductor cache directory so the
    compile is cold, as a user's first run is);
  * then ``--rounds`` rounds; in each, every contender (in a per-round shuffled order, seeded)
    runs ``--steps`` steps timed together; per-step time = that time / steps.  Reported: the
    median over rounds, and the median over rounds of the per-round ratio program / reference
    (ratios of neighbours in time, so machine load cancels).
  * threads: torch's default for this machine unless ``--threads``.
Measures, never asserts.  Prints a table and writes benchmarks/results/program_optimizer_speed.json:
``{"adamw_vs_fused": r, "adamw_vs_foreach": r, "lion_vs_lion_pytorch": r, ...details}``
(headline ratios from the resnet18 list; < 1 means the program is faster).

    nice -n 10 python benchmarks/program_optimizer_speed.py               # the recorded run
    python benchmarks/program_optimizer_speed.py --rounds 3 --steps 2 --models mlp --output /tmp/x.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

# torchvision resnet18 (num_classes=1000): conv, bn weight, bn bias per layer; downsample convs
_RESNET18 = [(64, 3, 7, 7), (64,), (64,)]
for _cin, _cout, _stride in ((64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)):
    for _block in range(2):
        _in = _cin if _block == 0 else _cout
        _RESNET18 += [(_cout, _in, 3, 3), (_cout,), (_cout,), (_cout, _cout, 3, 3), (_cout,), (_cout,)]
        if _block == 0 and (_stride != 1 or _cin != _cout):
            _RESNET18 += [(_cout, _in, 1, 1), (_cout,), (_cout,)]
_RESNET18 += [(1000, 512), (1000,)]

MODELS = {
    "resnet18": _RESNET18,
    "mlp": [(2048, 784), (2048,), (2048,), (2048,), (2048, 2048), (2048,), (2048,), (2048,), (10, 2048), (10,)],
}


def contenders():
    """name -> (family, reference name or None, factory(params))."""
    import torch
    from lion_pytorch import Lion

    from search_spaces.programs import CLASSIC_PROGRAMS
    from search_spaces.programs.optim import ProgramOptimizer

    def prog(name, backend, lr):
        return lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS[name], lr=lr, backend=backend)

    return {
        "torch AdamW fused": ("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, fused=True)),
        "torch AdamW foreach": ("adamw", lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, foreach=True)),
        "program AdamW compile": ("adamw", prog("adamw", "compile", 1e-3)),
        "program AdamW foreach": ("adamw", prog("adamw", "foreach", 1e-3)),
        "program AdamW interp": ("adamw", prog("adamw", "interp", 1e-3)),
        "lion_pytorch Lion": ("lion", lambda ps: Lion(ps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.01)),
        "program Lion compile": ("lion", prog("lion", "compile", 1e-4)),
        "program Lion foreach": ("lion", prog("lion", "foreach", 1e-4)),
    }


def measure(model: str, rounds: int, steps: int, seed: int) -> dict:
    import torch

    shapes = MODELS[model]
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen) * 0.05 for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    opts, first_step_s, warm_s = {}, {}, {}
    for name, (family, make) in contenders().items():
        ps = [torch.nn.Parameter(x.clone()) for x in init]
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        opt = make(ps)
        t0 = time.perf_counter()
        opt.step()
        first_step_s[name] = time.perf_counter() - t0
        for _ in range(2):
            opt.step()
        t0 = time.perf_counter()
        opt.step()
        warm_s[name] = time.perf_counter() - t0
        if getattr(opt, "_compile_failed", None):
            raise SystemExit(f"{name}: torch.compile failed ({opt._compile_failed}); nothing to measure")
        opts[name] = opt
    rng = random.Random(seed)
    per_round: dict[str, list[float]] = {k: [] for k in opts}
    order = list(opts)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            opt = opts[name]
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            per_round[name].append((time.perf_counter() - t0) / steps)

    def params_of(name):
        return torch.cat([p.detach().flatten() for g in opts[name].param_groups for p in g["params"]])

    # every contender ran the same steps from the same weights with the same gradients and constant lr
    agreement = {}
    for prog_name, ref_name in (("program AdamW compile", "torch AdamW fused"),
                                ("program AdamW foreach", "torch AdamW fused"),
                                ("program Lion compile", "lion_pytorch Lion")):
        a, b = params_of(prog_name), params_of(ref_name)
        agreement[f"{prog_name} vs {ref_name}"] = float((a - b).abs().max() / b.abs().max())

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(per_round[a], per_round[b]))

    out = {
        "elements": sum(math.prod(s) for s in shapes), "tensors": len(shapes),
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in per_round.items()},
        "ratios": {
            "adamw_compile_vs_fused": ratio("program AdamW compile", "torch AdamW fused"),
            "adamw_compile_vs_foreach": ratio("program AdamW compile", "torch AdamW foreach"),
            "adamw_foreach_vs_fused": ratio("program AdamW foreach", "torch AdamW fused"),
            "adamw_foreach_vs_foreach": ratio("program AdamW foreach", "torch AdamW foreach"),
            "adamw_interp_vs_fused": ratio("program AdamW interp", "torch AdamW fused"),
            "lion_compile_vs_lion_pytorch": ratio("program Lion compile", "lion_pytorch Lion"),
            "lion_foreach_vs_lion_pytorch": ratio("program Lion foreach", "lion_pytorch Lion"),
        },
        "compile": {},
        "float32_max_rel_diff_after_all_steps": agreement,
        "steps_per_contender": 3 + rounds * steps,
    }
    for fam, comp, base in (("adamw", "program AdamW compile", "program AdamW foreach"),
                            ("lion", "program Lion compile", "program Lion foreach")):
        compile_s = first_step_s[comp] - warm_s[comp]
        gain_ms = out["median_ms"][base] - out["median_ms"][comp]
        out["compile"][fam] = {"first_step_s": first_step_s[comp], "compile_s": compile_s,
                               "gain_vs_foreach_ms_per_step": gain_ms,
                               "break_even_steps": (compile_s * 1e3 / gain_ms) if gain_ms > 0 else None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Protocol: see the module docstring.")
    ap.add_argument("--models", default="resnet18,mlp", help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    ap.add_argument("--steps", type=int, default=3, help="steps per contender per round (default 3)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=os.path.join(RESULTS, "program_optimizer_speed.json"))
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {sorted(MODELS)}")
    # a cold inductor cache, so the compile cost measured is a first run's
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-bench-")
    sys.path.insert(0, ROOT)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results = {m: measure(m, args.rounds, args.steps, args.seed) for m in models}
    head = results.get("resnet18") or results[models[0]]
    report = {
        "adamw_vs_fused": head["ratios"]["adamw_compile_vs_fused"],
        "adamw_vs_foreach": head["ratios"]["adamw_compile_vs_foreach"],
        "lion_vs_lion_pytorch": head["ratios"]["lion_compile_vs_lion_pytorch"],
        "headline_model": "resnet18" if "resnet18" in results else models[0],
        "goals": {"adamw_vs_fused": "<= 1.2", "lion_vs_lion_pytorch": "<= 1.0"},
        "models": results,
        "protocol": {"rounds": args.rounds, "steps_per_round": args.steps, "seed": args.seed, "dtype": "float32",
                     "device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
                     "python": platform.python_version(), "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0]},
    }
    for m, r in results.items():
        print(f"\n{m}: {r['elements'] / 1e6:.2f} M elements in {r['tensors']} tensors, float32, "
              f"{torch.get_num_threads()} threads; median ms/step over {args.rounds} interleaved rounds")
        print(f"  {'contender':<24}{'ms/step':>10}")
        for name, ms in r["median_ms"].items():
            print(f"  {name:<24}{ms:>10.2f}")
        print(f"  {'ratio (median per round)':<34}{'':>0}")
        for k, v in r["ratios"].items():
            print(f"  {k:<34}{v:>8.3f}")
        for k, v in r["float32_max_rel_diff_after_all_steps"].items():
            print(f"  float32 agreement {k}: max |diff| / max |w| = {v:.1e}")
        for fam, c in r["compile"].items():
            be = f"{c['break_even_steps']:.0f} steps" if c["break_even_steps"] is not None else "never (no gain)"
            print(f"  {fam} compile: {c['compile_s']:.1f} s once, saves {c['gain_vs_foreach_ms_per_step']:.2f} ms/step "
                  f"vs foreach: pays back after {be}")
    print(f"\nheadline ({report['headline_model']}): AdamW program / fused AdamW = {report['adamw_vs_fused']:.3f} "
          f"(goal <= 1.2), Lion program / lion-pytorch = {report['lion_vs_lion_pytorch']:.3f} (goal <= 1.0)")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
