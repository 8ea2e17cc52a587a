"""The function table of the optimizer-program language: the one home of every op's semantics.

Each :class:`OpSpec` gives the name, arity, argument and result types, a numpy implementation
(used by the probe interpreter and constant folding), a per-tensor torch implementation (used by
``search_spaces.programs.optim.ProgramOptimizer``; written with tensor methods and operators only, so this module
never imports torch) and a one-line doc string.  ``docs_table()`` renders the table for people.

Types: ``tensor`` is a per-parameter array (w, g, m, v and anything computed from them
elementwise); ``scalar`` is one number for the whole model (lr, t, constants, reductions).
Elementwise ops broadcast: the result is a tensor when any argument is.  Reductions run over the
*whole model* (all parameters of the group), so they take tensors and return scalars.

The numpy implementations of transcendental ops are automl.probe_math's deterministic ones
(bit-identical on every CPU/SIMD level, within a few ulp of numpy's), so probe digests and
constant folding do not depend on the machine.

Arithmetic is plain IEEE-754 float: ``x / 0 = ±inf``, ``0 / 0 = nan``, ``log(-1) = nan``.  The
protected variants (``div``, ``plog``) exist for search and say exactly what they protect.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from automl import probe_math as pm

#: |y| below this counts as zero in the protected division ``div``; also the floor of ``plog``.
EPS = 1e-8
#: Floor of the norm product in ``cosine_sim``.
COS_EPS = 1e-16

TENSOR, SCALAR = "tensor", "scalar"


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One op of the language.

    ``arg_types``: None for elementwise ops (any mix of tensors and scalars, broadcasting), else one
    of "tensor"/"scalar" per argument.  ``result``: "broadcast" (tensor if any argument is a
    tensor), "tensor" or "scalar".  ``symbol``: the operator used when printing ("+", "neg" prints
    as unary minus); None for function-call syntax.  ``np`` takes numpy arrays / float64 scalars;
    ``torch`` takes per-parameter tensors, Python floats or 0-d tensors — reductions instead take
    lists of tensors (one per parameter) for their tensor arguments.  ``commutative`` means
    bit-for-bit commutative (so not min/max: min(-0.0, 0.0) depends on the order).
    """

    name: str
    arity: int
    np: Callable[..., Any]
    torch: Callable[..., Any]
    doc: str
    arg_types: tuple[str, ...] | None = None
    result: str = "broadcast"
    symbol: str | None = None
    commutative: bool = False

    @property
    def reduction(self) -> bool:
        return self.arg_types is not None


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float))


def _scalar0(r: Any) -> Any:
    """0-d numpy arrays (from np.where) back to numpy scalars; arrays pass through."""
    return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r


# --- numpy implementations of the composite ops ---------------------------------------------------

def _np_protect(y):
    return np.where(np.abs(y) < EPS, np.where(y < 0, -EPS, EPS), y)


def _np_sign(x):
    return _scalar0(np.where(np.isnan(x), 0.0, np.sign(x)))


def _np_div(x, y):
    return _scalar0(np.true_divide(x, _np_protect(y)))


def _np_plog(x):
    return pm.log(np.maximum(np.abs(x), EPS))


def _np_interp(x, y, a):
    return np.add(np.multiply(np.subtract(1.0, a), x), np.multiply(a, y))


def _np_clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _np_dot(x, y):
    return np.float64(np.dot(x, y))


def _np_norm(x):
    return np.sqrt(np.float64(np.dot(x, x)))


def _np_cos(x, y):
    return _np_dot(x, y) / np.maximum(_np_norm(x) * _np_norm(y), COS_EPS)


def _np_clip_norm(x, c):
    return np.multiply(x, np.minimum(1.0, np.true_divide(c, _np_norm(x))))


# --- torch implementations (tensor methods / operators only: no torch import) ---------------------

def _t_protect(y):
    if _is_num(y):
        return float(_np_protect(y))
    repl = (y < 0).to(y.dtype) * (-2.0 * EPS) + EPS  # -EPS where y < 0, else +EPS
    return y.where(~(y.abs() < EPS), repl)


#: Per floating dtype (by name): (largest finite value, the midpoint above it from which a
#: float64 rounds to inf).  torch refuses a clamp bound its dtype cannot hold ("value cannot be
#: converted to type float without overflow"), so a program's constant 1e300 in ``min``/``max``/
#: ``clip`` on float32 parameters would crash a step; :func:`clamp_bound` rounds it as the dtype would.
_DTYPE_RANGE = {"torch.float32": (3.4028234663852886e38, 3.4028235677973366e38),
                "torch.float16": (65504.0, 65520.0),
                "torch.bfloat16": (3.3895313892515355e38, 3.3961775292304958e38)}


def clamp_bound(v, t):
    """The Python number ``v`` as a clamp bound for tensor ``t``: what converting it to ``t``'s
    dtype gives (the largest finite value, or inf beyond the rounding midpoint)."""
    r = _DTYPE_RANGE.get(str(t.dtype))
    if r is None or -r[0] <= v <= r[0]:
        return v
    a = abs(v)
    return math.copysign(math.inf if a >= r[1] else r[0], v)


def _t_min(x, y):
    if _is_num(x) and _is_num(y):
        return float(np.minimum(x, y))
    if _is_num(y):
        return x.clamp(max=clamp_bound(y, x))
    if _is_num(x):
        return y.clamp(max=clamp_bound(x, y))
    return x.minimum(y)


def _t_max(x, y):
    if _is_num(x) and _is_num(y):
        return float(np.maximum(x, y))
    if _is_num(y):
        return x.clamp(min=clamp_bound(y, x))
    if _is_num(x):
        return y.clamp(min=clamp_bound(x, y))
    return x.maximum(y)


def _t_interp(x, y, a):
    # In place only when x already has the result's shape (x may be a 0-d reduction and y a tensor).
    if _is_num(a) and not _is_num(x) and not _is_num(y) and x.shape == y.shape:
        return (x * (1.0 - a)).add_(y, alpha=a)
    return (1.0 - a) * x + a * y


def _t_sumsq(xs):
    return sum((x * x).sum() for x in xs)


def _t_dot(xs, ys):
    return sum((x * y).sum() for x, y in zip(xs, ys))


def _t_norm(xs):
    return _t_sumsq(xs).sqrt()


def _t_cos(xs, ys):
    return _t_dot(xs, ys) / (_t_norm(xs) * _t_norm(ys)).clamp(min=COS_EPS)


def _t_clip_norm(xs, c):
    n = _t_norm(xs)
    if isinstance(c, (list, tuple)):  # per-parameter scalar (parameters at different step counts)
        return [x * (ci / n).clamp(max=1.0) for x, ci in zip(xs, c)]
    f = (c / n).clamp(max=1.0)
    return [x * f for x in xs]


def _spec(name, arity, np_fn, torch_fn, doc, **kw) -> OpSpec:
    return OpSpec(name, arity, np_fn, torch_fn, doc, **kw)


_U = 1  # arity shorthands
_B = 2

OP_LIST: tuple[OpSpec, ...] = (
    # operators (printed infix / prefix)
    _spec("add", _B, np.add, lambda x, y: x + y, "x + y", symbol="+", commutative=True),
    _spec("sub", _B, np.subtract, lambda x, y: x - y, "x - y", symbol="-"),
    _spec("mul", _B, np.multiply, lambda x, y: x * y, "x * y", symbol="*", commutative=True),
    _spec("truediv", _B, np.true_divide, lambda x, y: x / y, "x / y, plain IEEE (x/0 = ±inf, 0/0 = nan)",
          symbol="/"),
    _spec("pow", _B, pm.power, lambda x, y: x ** y, "x ** y (IEEE pow; negative base, non-integer y: nan)",
          symbol="**"),
    _spec("neg", _U, np.negative, lambda x: -x, "-x", symbol="neg"),
    # elementwise functions
    _spec("abs", _U, np.abs, lambda x: x.abs(), "absolute value"),
    _spec("sign", _U, _np_sign, lambda x: x.sign(), "-1, 0 or 1 (sign(±0) = 0; sign(nan) = 0, as torch.sign)"),
    _spec("sqrt", _U, np.sqrt, lambda x: x.sqrt(), "square root (nan for x < 0)"),
    _spec("square", _U, np.square, lambda x: x * x, "x * x"),
    _spec("exp", _U, pm.exp, lambda x: x.exp(), "e ** x"),
    _spec("log", _U, pm.log, lambda x: x.log(), "natural log (log(0) = -inf, nan for x < 0)"),
    _spec("plog", _U, _np_plog, lambda x: x.abs().clamp(min=EPS).log(),
          f"protected log: log(max(|x|, {EPS!r}))"),
    _spec("sin", _U, pm.sin, lambda x: x.sin(), "sine"),
    _spec("cos", _U, pm.cos, lambda x: x.cos(), "cosine"),
    _spec("tan", _U, pm.tan, lambda x: x.tan(), "tangent"),
    _spec("arcsin", _U, pm.arcsin, lambda x: x.asin(), "inverse sine (nan outside [-1, 1])"),
    _spec("arccos", _U, pm.arccos, lambda x: x.acos(), "inverse cosine (nan outside [-1, 1])"),
    _spec("arctan", _U, pm.arctan, lambda x: x.atan(), "inverse tangent"),
    _spec("sinh", _U, pm.sinh, lambda x: x.sinh(), "hyperbolic sine"),
    _spec("cosh", _U, pm.cosh, lambda x: x.cosh(), "hyperbolic cosine"),
    _spec("tanh", _U, pm.tanh, lambda x: x.tanh(), "hyperbolic tangent"),
    _spec("arcsinh", _U, pm.arcsinh, lambda x: x.asinh(), "inverse hyperbolic sine"),
    _spec("arctanh", _U, pm.arctanh, lambda x: x.atanh(), "inverse hyperbolic tangent (±inf at ±1, nan outside)"),
    _spec("min", _B, np.minimum, _t_min, "elementwise minimum (nan if either is nan)"),
    _spec("max", _B, np.maximum, _t_max, "elementwise maximum (nan if either is nan)"),
    _spec("div", _B, _np_div, lambda x, y: x / _t_protect(y),
          f"protected division: x / y', y' = y except where |y| < {EPS!r}: y' = -{EPS!r} if y < 0 else "
          f"+{EPS!r} (so div(x, 0) = x * 1e8; nan stays nan)"),
    _spec("interp", 3, _np_interp, _t_interp, "(1 - a) * x + a * y (interp(g, m, 0.9) = 0.1 g + 0.9 m)"),
    _spec("clip", 3, _np_clip, lambda x, lo, hi: _t_min(_t_max(x, lo), hi), "min(max(x, lo), hi)"),
    # whole-model reductions (over all parameters of the group)
    _spec("dot", _B, _np_dot, _t_dot, "sum over the whole model of x * y", arg_types=(TENSOR, TENSOR),
          result=SCALAR, commutative=True),
    _spec("global_norm", _U, _np_norm, _t_norm, "sqrt(dot(x, x)) over the whole model", arg_types=(TENSOR,),
          result=SCALAR),
    _spec("cosine_sim", _B, _np_cos, _t_cos,
          f"dot(x, y) / max(global_norm(x) * global_norm(y), {COS_EPS!r}) (0 for a zero vector)",
          arg_types=(TENSOR, TENSOR), result=SCALAR, commutative=True),
    _spec("clip_by_global_norm", _B, _np_clip_norm, _t_clip_norm,
          "x * min(1, c / global_norm(x)) (IEEE: a zero-norm x with c > 0 stays x)", arg_types=(TENSOR, SCALAR),
          result=TENSOR),
)

#: name -> OpSpec, in table order (the index is the op code used by ``Program.encode``).
OPS: dict[str, OpSpec] = {op.name: op for op in OP_LIST}
OPCODES: dict[str, int] = {op.name: i for i, op in enumerate(OP_LIST)}
#: Names callable with function syntax (operators are written with their symbol).
FUNCTIONS: frozenset[str] = frozenset(op.name for op in OP_LIST if op.symbol is None)
#: Python ast operator class name -> op name.
BINOPS = {"Add": "add", "Sub": "sub", "Mult": "mul", "Div": "truediv", "Pow": "pow"}
SYMBOL_OPS = {op.symbol: op.name for op in OP_LIST if op.symbol and op.symbol != "neg"}


def docs_table() -> str:
    """The function table as Markdown (the language reference)."""
    rows = ["| op | arity | types | semantics |", "|---|---|---|---|"]
    for op in OP_LIST:
        shown = f"`{op.symbol}`" if op.symbol and op.symbol != "neg" else ("unary `-`" if op.symbol else
                                                                              f"`{op.name}`")
        types = (", ".join(op.arg_types) + " -> " + op.result) if op.arg_types else "elementwise"
        rows.append(f"| {shown} | {op.arity} | {types} | {op.doc} |")
    return "\n".join(rows)
