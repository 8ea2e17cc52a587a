"""Expression trees: the one operator/function table, the immutable node, evaluation, canonical key.

``OPS`` is the single home of every operator and function: its arity, numpy implementation,
text symbol, precedence and (for operators) the ``ast`` operator it is parsed from.  Transcendental
functions use automl.probe_math's deterministic implementations (bit-identical on every CPU, so
probe digests and fitness do not depend on the SIMD level).  The parser,
the printer, evaluation, the structural key and the search space all read it.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from automl import probe_math as pm
from automl.errors import InvalidCandidate

# Binding strength, loosest first (Python's own precedence for these operators).
ADDITIVE, MULTIPLICATIVE, PREFIX, POWER, ATOM = 1, 2, 3, 4, 5
#: Leaf node kinds (not operators, so not in OPS).
VAR, CONST = "var", "const"


@dataclasses.dataclass(frozen=True)
class Op:
    """One operator or function.  ``kind``: "infix", "prefix" or "function" (called by name)."""

    name: str
    arity: int
    impl: Callable[..., Any]
    kind: str
    symbol: str
    prec: int
    ast_op: type | None = None
    commutative: bool = False


OPS: dict[str, Op] = {op.name: op for op in (
    Op("+", 2, np.add, "infix", "+", ADDITIVE, ast.Add, commutative=True),
    Op("-", 2, np.subtract, "infix", "-", ADDITIVE, ast.Sub),
    Op("*", 2, np.multiply, "infix", "*", MULTIPLICATIVE, ast.Mult, commutative=True),
    Op("/", 2, np.divide, "infix", "/", MULTIPLICATIVE, ast.Div),
    Op("neg", 1, np.negative, "prefix", "-", PREFIX, ast.USub),
    # Right operand must be a constant (the exponent); see Expr.__post_init__.
    Op("**", 2, pm.power, "infix", "**", POWER, ast.Pow),
    Op("sin", 1, pm.sin, "function", "sin", ATOM),
    Op("cos", 1, pm.cos, "function", "cos", ATOM),
    Op("exp", 1, pm.exp, "function", "exp", ATOM),
    Op("log", 1, pm.log, "function", "log", ATOM),
    Op("sqrt", 1, np.sqrt, "function", "sqrt", ATOM),
    Op("abs", 1, np.abs, "function", "abs", ATOM),
    Op("tanh", 1, pm.tanh, "function", "tanh", ATOM),
)}
#: Functions callable by name in the text form.
FUNCTIONS: dict[str, Op] = {name: op for name, op in OPS.items() if op.kind == "function"}


@dataclasses.dataclass(frozen=True, slots=True)
class Expr:
    """Immutable expression node (the genome of the "expressions" space).

    ``op`` is ``"var"`` (``value`` = variable name), ``"const"`` (``value`` = finite float) or a
    key of ``OPS`` (``args`` = its operands; the exponent of ``**`` is always a constant).
    ``size`` (node count) and ``depth`` (nodes on the longest root-to-leaf path; a leaf has
    depth 1) are computed once.  A malformed node raises ``InvalidCandidate``.
    """

    op: str
    args: tuple["Expr", ...] = ()
    value: str | float | None = None
    size: int = dataclasses.field(init=False, compare=False, repr=False)
    depth: int = dataclasses.field(init=False, compare=False, repr=False)

    automl_space: ClassVar[str] = "expressions"

    def __post_init__(self) -> None:
        if self.op == VAR:
            if not isinstance(self.value, str) or self.args:
                raise InvalidCandidate(f"a variable node needs a name and no operands, got {self.value!r}")
        elif self.op == CONST:
            v = self.value
            if isinstance(v, bool) or not isinstance(v, (int, float)) or self.args:
                raise InvalidCandidate(f"a constant node needs a number and no operands, got {v!r}")
            try:
                v = float(v)
            except OverflowError:
                raise InvalidCandidate(f"constant {v} does not fit a float") from None
            if not math.isfinite(v):
                raise InvalidCandidate(f"constants must be finite, got {v!r}")
            object.__setattr__(self, "value", v)
        else:
            op = OPS.get(self.op)
            if op is None:
                raise InvalidCandidate(f"unknown operator {self.op!r}")
            if not isinstance(self.args, tuple) or len(self.args) != op.arity \
                    or not all(isinstance(a, Expr) for a in self.args):
                raise InvalidCandidate(f"operator {self.op!r} takes {op.arity} Expr operand(s)")
            if self.op == "**" and self.args[1].op != CONST:
                raise InvalidCandidate("the exponent of ** must be a constant")
            if self.value is not None:
                raise InvalidCandidate(f"operator node {self.op!r} carries no value")
        object.__setattr__(self, "size", 1 + sum(a.size for a in self.args))
        object.__setattr__(self, "depth", 1 + max((a.depth for a in self.args), default=0))

    def __repr__(self) -> str:
        from .syntax import to_text

        return f"Expr({to_text(self)!r})"


def var(name: str) -> Expr:
    return Expr(VAR, (), name)


def const(value: float) -> Expr:
    return Expr(CONST, (), float(value))


def node(op: str, *args: Expr) -> Expr:
    """Build an operator node; the negation of a constant is folded into the constant (the one
    tree the text ``-2`` parses to), so generated trees round-trip through text unchanged."""
    if op == "neg" and len(args) == 1 and isinstance(args[0], Expr) and args[0].op == CONST:
        return const(-args[0].value)
    return Expr(op, tuple(args))


def _eval(e: Expr, env: Mapping[str, Any]) -> Any:
    if e.op == VAR:
        try:
            return env[e.value]
        except KeyError:
            raise InvalidCandidate(f"unknown variable {e.value!r}; inputs: {', '.join(env)}") from None
    if e.op == CONST:
        return e.value
    return OPS[e.op].impl(*[_eval(a, env) for a in e.args])


def evaluate(e: Expr, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Evaluate ``e`` with numpy semantics (nan/inf propagate, no warnings) on the arrays in
    ``env`` (variable name -> array of length ``n``); returns a float64 array of shape (n,)
    (constant subtrees are broadcast), possibly an input array itself: treat it as read-only.
    Raises ``InvalidCandidate`` for an unknown variable."""
    with np.errstate(all="ignore"):
        out = _eval(e, env)
    if isinstance(out, np.ndarray) and out.shape == (n,) and out.dtype == np.float64:
        return out
    return np.broadcast_to(np.asarray(out, dtype=np.float64), (n,))


def _flatten(e: Expr, op: str, out: list[Expr]) -> list[Expr]:
    for a in e.args:
        if a.op == op:
            _flatten(a, op, out)
        else:
            out.append(a)
    return out


def structural_key(e: Expr) -> str:
    """Canonical prefix form: nested sums/products flattened and their operands sorted,
    negated constants folded; constants written as float.hex (exact)."""
    if e.op == VAR:
        return e.value
    if e.op == CONST:
        return float.hex(e.value)
    if e.op == "neg" and e.args[0].op == CONST:
        return float.hex(-e.args[0].value)
    if OPS[e.op].commutative:
        keys = sorted(structural_key(a) for a in _flatten(e, e.op, []))
    else:
        keys = [structural_key(a) for a in e.args]
    return f"{e.op}({','.join(keys)})"
