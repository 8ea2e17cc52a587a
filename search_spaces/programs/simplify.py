"""The simplifier: a smaller program that computes bit-for-bit the same updates and live states.

Every rule is exact under IEEE-754 double arithmetic for *all* inputs (nan, ±inf, ±0 included),
so ``functional_hash(simplify(p)) == functional_hash(p)`` always, not just usually:

- dead code: instructions that feed neither the update nor a live state slot are removed; a dead
  slot (one the update never reads, directly or via the other slot) returns its input unchanged,
  so it stays zero — it cannot change the weights, and the probe does not hash it;
- constant folding: an op on constants only becomes its value (computed by the same numpy code
  as the interpreter), unless the value is not finite (no literal for it);
- common subexpressions: a repeated (op, arguments) reuses the first result (all ops are
  deterministic); arguments of commutative ops are put in a canonical order (a+b = b+a exactly);
- ``x * 1 -> x``, ``x / 1 -> x``, ``div(x, 1) -> x``, ``x + -0.0 -> x``, ``x - 0.0 -> x``,
  ``x * -1 -> -x``, ``-0.0 - x -> -x``, ``--x -> x``, ``x + -y -> x - y``, ``x - -y -> x + y``,
  ``square(x) -> x * x``, ``min(x, x) -> x``, ``max(x, x) -> x``, ``abs(abs(x))`` and
  ``abs(-x) -> abs(x)``, ``sign(sign(x)) -> sign(x)``.

Rules deliberately *not* applied (unsound under IEEE): ``x + 0.0 -> x`` (-0.0 + 0.0 = +0.0),
``x * 0 -> 0`` and ``x - x -> 0`` (inf, nan), ``x / x -> 1``, ``interp(x, y, 0) -> x`` and
``interp(x, y, 1) -> y`` (0 * inf = nan in the other operand; -0.0 + 0.0), ``interp(x, x, a) -> x``
((1-a)x + ax rounds), ``m / sqrt(m*m) -> sign(m)`` (nan at m = 0, overflow of m*m), and any
reassociation ((a+b)+c rounds differently from a+(b+c)).
"""
from __future__ import annotations

import math

import numpy as np

from automl.errors import InvalidCandidate

from .ir import M, V, Program, build
from .ops import OPS

Operand = int | float


def _is_const(a: Operand, value: float) -> bool:
    """``a`` is the constant ``value`` with the same sign bit (so 0.0 and -0.0 differ)."""
    return type(a) is float and a == value and math.copysign(1.0, a) == math.copysign(1.0, value)


def _order(a: Operand) -> tuple:
    return (0, a, "") if type(a) is int else (1, 0, a.hex())


def _rewrite(op: str, args: list[Operand], defs: dict[int, tuple[str, tuple]]) -> Operand | tuple[str, list]:
    """One rule application: a replacement operand, or a (possibly new) (op, args)."""

    def defined_as(a: Operand, name: str) -> Operand | None:
        if type(a) is int and a in defs and defs[a][0] == name:
            return defs[a][1][0]
        return None

    if op == "mul":
        for x, y in (args, args[::-1]):
            if _is_const(y, 1.0):
                return x
            if _is_const(y, -1.0):
                return ("neg", [x])
    elif op in ("truediv", "div") and _is_const(args[1], 1.0):
        return args[0]
    elif op == "add":
        for x, y in (args, args[::-1]):
            if _is_const(y, -0.0):
                return x
            inner = defined_as(y, "neg")
            if inner is not None:
                return ("sub", [x, inner])
    elif op == "sub":
        x, y = args
        if _is_const(y, 0.0):
            return x
        if _is_const(x, -0.0):
            return ("neg", [y])
        inner = defined_as(y, "neg")
        if inner is not None:
            return ("add", [x, inner])
    elif op == "neg":
        inner = defined_as(args[0], "neg")
        if inner is not None:
            return inner
    elif op == "square":
        return ("mul", [args[0], args[0]])
    elif op in ("min", "max") and type(args[0]) is int and type(args[1]) is int and args[0] == args[1]:
        return args[0]
    elif op == "abs":
        for inner_op in ("abs", "neg"):
            inner = defined_as(args[0], inner_op)
            if inner is not None:
                return ("abs", [inner]) if inner_op == "neg" else args[0]
    elif op == "sign":
        if defined_as(args[0], "sign") is not None:
            return args[0]
    if OPS[op].commutative:
        args = sorted(args, key=_order)
    return (op, args)


def _fold(op: str, args: list[Operand]) -> float | None:
    spec = OPS[op]
    if spec.arg_types is not None:
        return None
    with np.errstate(all="ignore"):
        value = float(spec.np(*[np.float64(a) for a in args]))
    return value if math.isfinite(value) else None


def _pass(p: Program) -> Program:
    """One forward pass of folding, rewriting and CSE, then dead-code removal."""
    subst: dict[int, Operand] = {}
    defs: dict[int, tuple[str, tuple]] = {}
    seen: dict[tuple, int] = {}
    kept: list[tuple[int, str, tuple]] = []  # (original register, op, args in original numbering)

    def resolve(a: Operand) -> Operand:
        return subst.get(a, a) if type(a) is int else a

    for ins in p.instrs:
        op, args = ins.op, [resolve(a) for a in ins.args]
        for _ in range(8):  # rules shrink or canonicalise; a few rounds reach their fixpoint
            if all(type(a) is float for a in args):
                value = _fold(op, args)
                if value is not None:
                    subst[ins.dest] = value
                    break
            out = _rewrite(op, args, defs)
            if not isinstance(out, tuple):
                subst[ins.dest] = out
                break
            if out[0] == op and out[1] == args:
                break
            op, args = out[0], list(out[1])
        if ins.dest in subst:
            continue
        key = (op, tuple((type(a).__name__, a.hex() if type(a) is float else a) for a in args))
        if key in seen:
            subst[ins.dest] = seen[key]
            continue
        seen[key] = ins.dest
        defs[ins.dest] = (op, tuple(args))
        kept.append((ins.dest, op, tuple(args)))
    outputs = [resolve(o) for o in p.outputs]
    return _rebuild(p, kept, outputs)


def _rebuild(p: Program, kept: list[tuple[int, str, tuple]], outputs: list[Operand]) -> Program:
    """Renumber ``kept`` into SSA form and drop what is dead."""
    names = list(p.names)
    draft = build(kept, outputs, names)
    info = draft.info
    outs = list(draft.outputs)
    for k, slot in ((1, M), (2, V)):
        if slot not in info.live_slots:
            outs[k] = slot
    draft = Program(draft.instrs, tuple(outs), draft.names)
    live = draft.info.live
    kept2 = [(ins.dest, ins.op, ins.args) for ins, lv in zip(draft.instrs, live) if lv]
    return build(kept2, list(draft.outputs), list(draft.names))


def simplify(p: Program) -> Program:
    """The simplified program (see the module docstring for the rules and why each is exact).
    Raises ``InvalidCandidate`` for a program that does not type-check."""
    if p.info.error is not None:
        raise InvalidCandidate(p.info.error)
    for _ in range(16):
        q = _pass(p)
        if q == p:
            return q
        p = q
    return p
