"""Soundness of the functional hash: false merges and equivalent pairs merged, against ground truth.

    python benchmarks/hash_soundness.py [--no-evaluator] [--output FILE]

Protocol (fixed):
  * 60 optimizer-program pairs and 34 expression pairs, each written to be either equivalent
    (same function written differently: reordered, regrouped, state stored scaled or negated, dead
    code...) or subtly different (a warm-up that ends at t = 10, a decay from t = 50, an lr floor,
    beta changed by 1e-3, eps changed, clipping above 1e3, a difference only at t > 1e4...).
  * Programs are hashed under the ``optimizer-proxy`` evaluator's probe domain (default options)
    and, for comparison, under the space's default domain (no evaluator).  Ground truth: both
    programs run by the reference interpreter on inputs far wider than the probe -- 5 seeds x 8
    step windows (t0 = 1 for 300 steps; 10, 50, 1e2, 1e3, 1e4, 1e5, 1e6 for 40 steps each), 512
    elements with gradient and weight magnitudes 10**U(-14, 7) per element, lr per step from the
    proxy's cosine schedule (0.01 -> ~0) or log-uniform over [1e-9, 1]; the pair is equivalent
    when every update agrees to a relative 1e-8 (NaN = NaN, signed infinities equal).
  * Expressions are hashed under ``symbolic-regression`` with each pair's target and range (its
    data points are the probe); ground truth: 20,001 points spanning the range widened by half
    its width on each side, relative 1e-8.
  * A *false merge* is a pair the hash merges that the ground truth tells apart.  Whether it
    changes the evaluator's score (beyond 1e-9 relative + 1e-12 absolute) is then measured:
    symbolic-regression's mse on its own data;
    for programs, optimizer-proxy (tasks mlp, 80 steps, seed 0, CPU) on both programs
    (``--no-evaluator`` skips this and counts every false merge as score-changing).
  * Equivalent pairs merged = hashed equal / ground-truth equivalent.

Prints a table and writes benchmarks/results/hash_soundness.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

import automl
from search_spaces.expressions import ExpressionSpace
from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace
from search_spaces.programs.classic import adam_text
from search_spaces.programs.interp import run
from search_spaces.programs.parser import parse

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
RTOL = 1e-8


def P(*stmts: str) -> str:
    """Program text from statements (returns ``update, m, v``)."""
    return "def train(w, g, m, v, lr, t):\n" + "".join(f"  {s}\n" for s in stmts) + "  return update, m, v\n"


C = CLASSIC_PROGRAMS
ADAM, ADAMW, LION, MOM = C["adam"], C["adamw"], C["lion"], C["momentum"]

# (name, a, b): relation decided by the ground truth, not by the name
PROGRAM_PAIRS: list[tuple[str, str, str]] = [
    # --- written to be equivalent --------------------------------------------------------------
    ("commute-add", P("update = g * lr + w * 0.0"), P("update = lr * g")),
    ("x*2 vs x+x", P("a = g * 2.0", "update = a * lr"), P("a = g + g", "update = a * lr")),
    ("regroup-mul", P("update = (g * lr) * 0.5"), P("update = g * (lr * 0.5)")),
    ("div-by-2", P("update = g * lr / 2.0"), P("update = g * lr * 0.5")),
    ("sqrt-vs-pow", P("v = interp(g * g, v, 0.99)", "update = g / (sqrt(v) + 1e-8) * lr"),
     P("v = interp(g * g, v, 0.99)", "update = g / (v ** 0.5 + 1e-8) * lr")),
    ("square-forms", P("v = interp(square(g), v, 0.99)", "update = g / (sqrt(v) + 1e-8) * lr"),
     P("v = interp(g ** 2.0, v, 0.99)", "update = g / (sqrt(v) + 1e-8) * lr")),
    ("interp-vs-explicit", P("m = interp(g, m, 0.9)", "update = m * lr"), P("m = 0.9 * m + 0.1 * g", "update = m * lr")),
    ("momentum-state-scaled", MOM, P("m = m * 0.9", "m = m + 2.0 * g", "update = m * lr * 0.5")),
    ("momentum-state-negated", MOM, P("m = m * 0.9", "m = m - g", "update = -(m * lr)")),
    ("adam-state-scaled", ADAM, ADAM.replace("m = interp(g, m, 0.9)", "m = interp(g * 3.0, m, 0.9)")
     .replace("num = m * step_size", "num = m * step_size / 3.0")),
    ("slots-swapped", MOM, P("v = v * 0.9", "v = v + g", "update = v * lr")),
    ("dead-code", ADAM, ADAM.replace("  return", "  junk = exp(w) * g\n  junk2 = junk + t\n  return")),
    ("const-fold", P("update = g * (1.0 - 0.9) * lr"), P("update = g * 0.09999999999999998 * lr")),
    ("lion-lr-inside-sign", LION, P("c = interp(g, m, 0.9)", "update = sign(c) * lr + w * 0.01 * lr",
                                    "m = interp(g, m, 0.99)")),
    ("abs-sign", P("update = abs(g) * sign(g) * lr"), P("update = g * lr")),
    ("min-via-max", P("a = min(g, 1.0)", "update = a * lr"), P("a = -max(-g, -1.0)", "update = a * lr")),
    ("clip-forms", P("a = clip(g, -1.0, 1.0)", "update = a * lr"), P("a = min(max(g, -1.0), 1.0)", "update = a * lr")),
    ("bias-correction-forms", ADAM, ADAM.replace("bc1 = 1.0 - b1t", "bc1 = -(b1t - 1.0)")),
    ("sub-neg", P("update = g * lr - (-(w * lr * 0.01))"), P("update = g * lr + w * lr * 0.01")),
    ("exp-log", P("a = exp(log(abs(g) + 1.0))", "update = (a - 1.0) * sign(g) * lr"), P("update = g * lr")),
    ("reordered-adamw", ADAMW, P("g2 = g * g", "m = interp(g, m, 0.9)", "v = interp(g2, v, 0.999)",
                                 "bc2 = 1.0 - 0.999 ** t", "bc1 = 1.0 - 0.9 ** t", "denom = sqrt(v) / bc2 ** 0.5 + 1e-08",
                                 "update = m * (lr / bc1) / denom + w * (lr * 0.01)")),
    ("t-times-lr", P("update = g * (t * lr) / t"), P("update = g * lr")),
    ("mul-by-one", P("update = g * lr * 1.0 + 0.0 * w"), P("update = g * lr")),
    ("double-neg", P("update = -(-(g * lr))"), P("update = g * lr")),
    ("norm-forms", P("n = global_norm(g)", "update = g / (n + 1e-12) * lr"),
     P("n = sqrt(dot(g, g))", "update = g / (n + 1e-12) * lr")),
    ("rmsprop-written-out", C["rmsprop"], P("v = 0.99 * v + 0.01 * g * g", "update = g * lr / (sqrt(v) + 1e-08)")),
    ("tanh-identity", P("update = tanh(g) * lr"), P("e = exp(2.0 * g)", "update = (e - 1.0) / (e + 1.0) * lr")),
    ("lr-ceiling-inactive-under-proxy", P("a = min(lr, 0.05)", "update = g * a"), P("update = g * lr")),
    # --- written to differ subtly ----------------------------------------------------------------
    ("warmup-ends-t10", P("a = min(t / 10.0, 1.0)", "update = g * a * lr"), P("update = g * (t / 10.0) * lr")),
    ("decay-from-t50", P("d = 1.0 - max(t - 50.0, 0.0) * 0.01", "update = g * d * lr"), P("update = g * lr")),
    ("lr-floor", P("a = max(lr, 0.01)", "update = g * a"), P("update = g * lr")),
    ("clip-at-1e3", P("a = clip(g, -1000.0, 1000.0)", "update = a * lr"), P("update = g * lr")),
    ("lion-beta1-1e-3", LION, LION.replace("interp(g, m, 0.9)", "interp(g, m, 0.901)")),
    ("lion-beta2-1e-3", LION, LION.replace("interp(g, m, 0.99)", "interp(g, m, 0.991)")),
    ("adam-eps-1e-7", ADAM, adam_text(eps=1e-7)),
    ("adam-eps-1e-10", ADAM, adam_text(eps=1e-10)),
    ("adamw-wd", ADAMW, adam_text(weight_decay=0.0101)),
    ("adam-beta2", ADAM, adam_text(beta2=0.998)),
    ("adam-beta1", ADAM, adam_text(beta1=0.901)),
    ("no-bias-correction", ADAM, P("m = interp(g, m, 0.9)", "v = interp(g * g, v, 0.999)",
                                   "update = m / (sqrt(v) + 1e-08) * lr")),
    ("late-decay-t1e4", P("d = 1.0 / (1.0 + max(t - 10000.0, 0.0) * 0.001)", "update = g * d * lr"), P("update = g * lr")),
    ("late-decay-t1e5", P("d = 1.0 - max(t - 100000.0, 0.0) * 1e-06", "update = g * d * lr"), P("update = g * lr")),
    ("amsgrad-max", P("v = max(v, g * g)", "update = g / (sqrt(v) + 1e-8) * lr"),
     P("v = interp(g * g, v, 0.0)", "update = g / (sqrt(v) + 1e-8) * lr")),
    ("global-clip-1e3", P("a = clip_by_global_norm(g, 1000.0)", "update = a * lr"), P("update = g * lr")),
    ("sign-vs-soft-sign", P("update = sign(g) * lr"), P("update = g / (abs(g) + 1e-12) * lr")),
    ("tanh-sign", P("update = tanh(g * 1000000.0) * lr"), P("update = sign(g) * lr")),
    ("scale-1e-6", P("update = g * lr * 1.000001"), P("update = g * lr")),
    ("momentum-beta", MOM, MOM.replace("0.9", "0.9001")),
    ("nesterov", MOM, P("m = m * 0.9 + g", "update = (g + 0.9 * m) * lr")),
    ("rmsprop-alpha", C["rmsprop"], C["rmsprop"].replace("0.99", "0.999")),
    ("adagrad-vs-rmsprop", C["adagrad"], C["rmsprop"]),
    ("wd-coupled-to-lr", P("update = (g + w * 0.01) * lr"), P("update = g * lr + w * 0.01")),
    ("lr-squared", P("update = g * lr * lr * 100.0"), P("update = g * lr")),
    ("tiny-grad-eps", P("update = g / (abs(g) + 1e-20) * lr"), P("update = sign(g) * lr")),
    ("weight-decay-tiny-w", P("update = g * lr + w * 1e-9"), P("update = g * lr")),
    ("grad-clip-tiny", P("a = max(abs(g), 1e-12) * sign(g)", "update = a * lr"), P("update = g * lr")),
    ("bias-corr-beta-t", ADAM, ADAM.replace("b1t = 0.9 ** t", "b1t = 0.9 ** (t + 1.0)")),
    ("cosine-of-t", P("update = g * lr * cos(t * 0.001)"), P("update = g * lr")),
    ("x-times-1e-13", P("update = g * 1e-13"), P("update = -(g * 1e-13)")),
    ("x*0-vs-0", P("update = w * 0.0 * lr"), P("update = -(g * 0.0) * t")),
    ("nan-on-probe-only", P("a = log(1e8 - abs(g))", "update = a * lr"), P("a = sqrt(1e8 - abs(g))", "update = a * lr")),
]

# (name, a, b, target, low, high)
EXPRESSION_PAIRS: list[tuple[str, str, str, str, float, float]] = [
    ("commute", "x + x**2", "x**2 + x", "nguyen1", -1, 1),
    ("x*2 vs x+x", "x*2", "x + x", "nguyen1", -1, 1),
    ("square", "(x + 1)**2", "x*x + 2*x + 1", "nguyen1", -1, 1),
    ("trig-identity", "sin(x)**2 + cos(x)**2", "1.0", "nguyen5", -1, 1),
    ("exp-sum", "exp(x + 1)", "exp(x) * exp(1.0)", "nguyen5", -1, 1),
    ("log-product", "log((x*x + 1) * (x*x + 2))", "log(x*x + 1) + log(x*x + 2)", "nguyen7", 0, 2),
    ("sqrt-square", "sqrt(x*x)", "abs(x)", "nguyen8", 0, 4),
    ("double-neg", "-(-x)", "x", "nguyen1", -1, 1),
    ("div-mul", "x / 2", "x * 0.5", "nguyen1", -1, 1),
    ("tanh-exp", "tanh(x)", "(exp(2*x) - 1) / (exp(2*x) + 1)", "nguyen5", -1, 1),
    ("x*0-vs-0", "x * 0", "0.0", "nguyen1", -1, 1),
    ("pow-half", "x ** 0.5", "sqrt(x)", "nguyen8", 0, 4),
    ("regroup", "(x + 1) + (x + 2)", "2*x + 3", "nguyen1", -1, 1),
    ("sin-double", "sin(2*x)", "2*sin(x)*cos(x)", "nguyen6", -1, 1),
    ("cubic", "x**3", "x*x*x", "nguyen1", -1, 1),
    ("cos-shift", "cos(x)", "sin(x + 1.5707963267948966)", "nguyen5", -1, 1),
    ("relu-beyond-data", "sqrt(x)", "sqrt(x) + 2*abs(x - 5) + 2*(x - 5)", "nguyen8", 0, 4),
    # --- written to differ subtly --------------------------------------------------------------------
    ("relu-inside-data", "sqrt(x)", "sqrt(x) + 2*abs(x - 3.2) + 2*(x - 3.2)", "nguyen8", 0, 4),
    ("const-1e-3", "x*2", "x*2.001", "nguyen1", -1, 1),
    ("tiny-scale", "x * 1e-13", "-x * 1e-13", "nguyen1", -1, 1),
    ("tiny-vs-zero", "x * 1e-13", "0.0", "nguyen1", -1, 1),
    ("nan-on-data", "log(x - 1.5)", "sqrt(x - 1.5)", "nguyen1", -1, 1),
    ("sign-flip", "x", "-x", "nguyen1", -1, 1),
    ("shift-small", "sin(x)", "sin(x + 0.0001)", "nguyen5", -1, 1),
    ("abs-vs-id-negative", "abs(x)", "x", "nguyen1", -1, 1),
    ("abs-vs-id-positive-data", "abs(x)", "x", "nguyen8", 0, 4),
    ("exp-approx", "exp(x)", "1 + x + x*x/2 + x*x*x/6", "nguyen5", -1, 1),
    ("tanh-clip", "tanh(x*100)", "x*0 + 1.0", "nguyen8", 0, 4),
    ("pole-outside", "1/(x - 5)", "-1/(5 - x) + 0*x", "nguyen8", 0, 4),
    ("log-vs-log1p-like", "log(x + 1)", "log(x + 1.000001)", "nguyen7", 0, 2),
    ("cos-large", "cos(x * 1000)", "cos(x * 1000.001)", "nguyen5", -1, 1),
    ("pow-3-vs-pow-3.001", "x**3", "abs(x)**3.001 * (x/abs(x))", "nguyen1", -1, 1),
    ("sqrt-eps", "sqrt(x + 1e-12)", "sqrt(x)", "nguyen8", 0, 4),
    ("quartic-tail", "x**4", "x**4 + (x*x*x*x*x*x*x*x*x*x)*1e-3", "nguyen2", -1, 1),
]


# --- ground truth ------------------------------------------------------------------------------------

def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        return False
    fa, fb = a[~nan_a], b[~nan_b]
    inf = np.isinf(fa) | np.isinf(fb)
    if not np.array_equal(fa[inf], fb[inf]):
        return False
    fa, fb = fa[~inf], fb[~inf]
    return bool(np.all(np.abs(fa - fb) <= RTOL * np.maximum(np.abs(fa), np.abs(fb)) + 1e-300))


def _program_windows(seed: int):
    rng = np.random.default_rng(1000 + seed)
    n = 512
    for t0, steps in ((1, 300), (10, 40), (50, 40), (100, 40), (1_000, 40), (10_000, 40), (100_000, 40),
                      (1_000_000, 40)):
        w0 = rng.standard_normal(n) * 10.0 ** rng.uniform(-14, 7, n)
        scale = 10.0 ** rng.uniform(-14, 7, n)
        grads = []
        for _ in range(steps):
            g = rng.standard_normal(n) * scale * 10.0 ** rng.uniform(-1, 1, n)
            g[rng.random(n) < 0.3] *= -1.0  # sign flips
            g[0] = 0.0
            grads.append(g)
        if rng.random() < 0.5:  # the proxy's cosine schedule, lr 0.01 -> ~0
            s = np.arange(steps)
            lrs = 0.01 * 0.5 * (1 + np.cos(np.pi * s / steps))
        else:
            lrs = 10.0 ** rng.uniform(-9, 0, steps)
        yield w0, grads, lrs, t0


def programs_equivalent(a, b) -> bool:
    with np.errstate(all="ignore"):
        for seed in range(5):
            for w0, grads, lrs, t0 in _program_windows(seed):
                ua, _, _ = run(a, w0, grads, lrs, t0)
                ub, _, _ = run(b, w0, grads, lrs, t0)
                if not _close(np.stack(ua), np.stack(ub)):
                    return False
    return True


def expressions_equivalent(space, a, b, low: float, high: float) -> bool:
    from search_spaces.expressions import evaluate

    width = high - low
    x = np.linspace(low - width / 2, high + width / 2, 20001)
    env = {v: x for v in space.variables}
    with np.errstate(all="ignore"):
        return _close(evaluate(a, env, x.size), evaluate(b, env, x.size))


# --- the suite -----------------------------------------------------------------------------------------

def _score_differs(sa: float, sb: float) -> bool:
    if math.isnan(sa) and math.isnan(sb):
        return False
    # equal to 1e-9 relative or 1e-12 absolute: no selection can tell them apart
    return not (sa == sb or abs(sa - sb) <= 1e-9 * max(abs(sa), abs(sb)) + 1e-12)


def run_programs(use_evaluator: bool) -> dict:
    from evaluators.optimizer_proxy.proxy import OptimizerProxy

    space = ProgramSpace()
    proxy = OptimizerProxy()
    h_proxy, h_default = automl.Hasher(space, proxy), automl.Hasher(space)
    score_ev = OptimizerProxy(tasks=["mlp"], steps=80) if use_evaluator else None
    rows = []
    for name, ta, tb in PROGRAM_PAIRS:
        a, b = parse(ta), parse(tb)
        eq = programs_equivalent(a, b)
        row = {"name": name, "equivalent": eq,
               "merged_proxy_domain": h_proxy.functional(a) == h_proxy.functional(b),
               "merged_default_domain": h_default.functional(a) == h_default.functional(b)}
        if not eq and row["merged_proxy_domain"]:
            if score_ev is not None:
                sa, sb = score_ev.evaluate(a, space)["val_loss"], score_ev.evaluate(b, space)["val_loss"]
                row.update(score_a=sa, score_b=sb, score_changes=_score_differs(sa, sb))
            else:
                row["score_changes"] = True
        rows.append(row)
    return _summary(rows, "merged_proxy_domain") | {"default_domain": _summary(rows, "merged_default_domain",
                                                                                scores=False), "rows": rows}


def run_expressions() -> dict:
    from evaluators.symbolic_regression import SymbolicRegression

    space = ExpressionSpace()
    rows = []
    for name, ta, tb, target, low, high in EXPRESSION_PAIRS:
        a, b = space.from_text(ta), space.from_text(tb)
        ev = SymbolicRegression(target=target)
        h = automl.Hasher(space, ev)
        eq = expressions_equivalent(space, a, b, low, high)
        row = {"name": name, "equivalent": eq, "merged": h.functional(a) == h.functional(b),
               "merged_no_domain": automl.Hasher(space).functional(a) == automl.Hasher(space).functional(b)}
        if not eq and row["merged"]:
            sa, sb = ev.evaluate(a)["mse"], ev.evaluate(b)["mse"]
            row.update(score_a=sa, score_b=sb, score_changes=_score_differs(sa, sb))
        rows.append(row)
    return _summary(rows, "merged") | {"no_domain": _summary(rows, "merged_no_domain", scores=False), "rows": rows}


def _summary(rows, key: str, scores: bool = True) -> dict:
    eq = [r for r in rows if r["equivalent"]]
    diff = [r for r in rows if not r["equivalent"]]
    false = [r for r in diff if r[key]]
    out = {"pairs": len(rows), "equivalent": len(eq), "different": len(diff),
           "equivalent_merged": sum(r[key] for r in eq),
           "equivalent_merged_fraction": sum(r[key] for r in eq) / len(eq) if eq else float("nan"),
           "false_merges": len(false), "false_merge_names": [r["name"] for r in false],
           "split_equivalent_names": [r["name"] for r in eq if not r[key]]}
    if scores:
        out["false_merges_changing_score"] = sum(bool(r.get("score_changes")) for r in false)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-evaluator", action="store_true", help="do not train to check false merges' scores")
    ap.add_argument("--output", default=os.path.join(RESULTS, "hash_soundness.json"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    progs = run_programs(not a.no_evaluator)
    exprs = run_expressions()
    print(f"{'suite':34s} {'pairs':>5s} {'equiv':>5s} {'merged':>7s} {'frac':>6s} {'false':>6s} {'score-changing':>14s}")
    for label, s in (("programs (optimizer-proxy domain)", progs), ("programs (default domain)", progs["default_domain"]),
                     ("expressions (symbolic-regression)", exprs), ("expressions (no domain)", exprs["no_domain"])):
        print(f"{label:34s} {s['pairs']:5d} {s['equivalent']:5d} {s['equivalent_merged']:7d} "
              f"{s['equivalent_merged_fraction']:6.2f} {s['false_merges']:6d} "
              f"{s.get('false_merges_changing_score', '-')!s:>14s}")
        if s["false_merge_names"]:
            print(f"    false merges: {', '.join(s['false_merge_names'])}")
        if s["split_equivalent_names"]:
            print(f"    equivalent but split: {', '.join(s['split_equivalent_names'])}")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump({"programs": progs, "expressions": exprs, "seconds": time.perf_counter() - t0,
                   "versions": __import__("automl.log").log.versions()}, f, indent=1, default=float)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
