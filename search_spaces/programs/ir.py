"""The program IR: flat, typed three-address code in SSA form, and its canonical text form.

Registers 0..5 are the inputs ``w, g, m, v, lr, t``; instruction ``i`` writes register ``6 + i``
and reads registers defined before it, so a program is one topologically ordered list — the
shape a later batched (population-wide) GPU compiler wants (see :meth:`Program.encode`).  An
argument is an ``int`` (a register) or a ``float`` (a constant, kept exactly).  A program returns
three registers: the update (the outer loop does ``w = w - update``), the new ``m`` and new ``v``.

Liveness.  A state slot (m or v) is *live* when the update reads its input value, directly or
through the other slot across steps; a dead slot cannot change the weights.  An instruction is
live when it feeds the update or a live slot's output.  Hashing, probing and simplifying all use
this one definition (:attr:`Program.info`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from automl.errors import InvalidCandidate

from .ops import FUNCTIONS, OPCODES, OPS, SCALAR, TENSOR

INPUT_NAMES = ("w", "g", "m", "v", "lr", "t")
W, G, M, V, LR, T = range(6)
N_INPUTS = len(INPUT_NAMES)
INPUT_TYPES = (TENSOR, TENSOR, TENSOR, TENSOR, SCALAR, SCALAR)
SLOTS = (M, V)
OUTPUT_NAMES = ("update", "m", "v")


@dataclasses.dataclass(frozen=True, eq=False)
class Instr:
    """``dest = op(*args)``; an arg is an int register or a float constant.

    Equality and hashing tell registers from constants and keep constants exact (register 2 is
    not the constant 2.0, and 0.0 is not -0.0), unlike Python's ``==`` on numbers."""

    dest: int
    op: str
    args: tuple[int | float, ...]
    # Memos, set once with object.__setattr__ (never through __dict__, which would make CPython
    # materialize the instance dict and slow every later attribute read of the object).
    _key: ClassVar[tuple | None] = None
    _valid: ClassVar[bool] = False  # passed Program's per-instruction checks once

    @property
    def key(self) -> tuple:
        # cached by hand: functools.cached_property takes a lock on every first access (measurable
        # here: millions of instructions are built per search)
        k = self._key
        if k is None:
            k = (self.dest, self.op, tuple(a if type(a) is int else a.hex() if type(a) is float else repr(a)
                                           for a in self.args))
            object.__setattr__(self, "_key", k)
        return k

    def __eq__(self, other: object) -> bool:
        # the same relation as comparing keys, without building them (hot in mutation)
        if self is other:
            return True
        if not isinstance(other, Instr) or self.dest != other.dest or self.op != other.op \
                or len(self.args) != len(other.args):
            return False
        for a, b in zip(self.args, other.args):
            if type(a) is not type(b):
                return False
            if type(a) is float:
                if a != b or math.copysign(1.0, a) != math.copysign(1.0, b):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        return hash(self.key)


@dataclasses.dataclass(frozen=True)
class Info:
    """Derived facts about a program (computed once, never raises)."""

    types: tuple[str, ...]  # per register
    error: str | None  # first type error, or None
    live: tuple[bool, ...]  # per instruction
    live_slots: tuple[int, ...]  # subset of (M, V), sorted
    slot_deps: tuple[int, ...]  # per register: bit 0 = reads input m, bit 1 = reads input v


@dataclasses.dataclass(frozen=True)
class Program:
    """An optimizer program (immutable).  ``names`` only affect printing (not equality)."""

    instrs: tuple[Instr, ...]
    outputs: tuple[int, int, int]
    names: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    automl_space: ClassVar[str] = "optimizer-programs"
    _info: ClassVar[Info | None] = None  # memos (see Instr): the analysis and the canonical text
    _text: ClassVar[str | None] = None

    def __post_init__(self):
        n = N_INPUTS + len(self.instrs)
        for i, ins in enumerate(self.instrs):
            if ins.dest != N_INPUTS + i:
                raise InvalidCandidate(f"instruction {i} writes r{ins.dest}, SSA form needs r{N_INPUTS + i}")
            if ins._valid:  # checked in an earlier program (what follows depends on it alone)
                continue
            spec = OPS.get(ins.op)
            if spec is None:
                raise InvalidCandidate(f"instruction {i}: unknown op {ins.op!r}")
            if len(ins.args) != spec.arity:
                raise InvalidCandidate(f"instruction {i}: {ins.op} takes {spec.arity} arguments")
            for a in ins.args:
                if type(a) is int:
                    if not 0 <= a < ins.dest:
                        raise InvalidCandidate(f"instruction {i} reads r{a} before it is defined")
                elif type(a) is not float or not math.isfinite(a):
                    raise InvalidCandidate(f"instruction {i}: argument {a!r} is neither a register (int) "
                                           "nor a finite float constant")
            object.__setattr__(ins, "_valid", True)
        if len(self.outputs) != 3 or any(type(o) is not int or not 0 <= o < n for o in self.outputs):
            raise InvalidCandidate(f"outputs {self.outputs!r} must be 3 registers below {n}")
        if not self.names:
            object.__setattr__(self, "names", INPUT_NAMES + tuple(f"x{i + 1}" for i in range(len(self.instrs))))
        elif len(self.names) != n or tuple(self.names[:N_INPUTS]) != INPUT_NAMES:
            raise InvalidCandidate("names must give one name per register, inputs first")

    def __len__(self) -> int:
        return len(self.instrs)

    @property
    def info(self) -> Info:
        i = self._info
        if i is None:  # cached by hand (see Instr.key); the program is immutable
            i = _analyse(self)
            object.__setattr__(self, "_info", i)
        return i

    def type_error(self) -> str | None:
        return self.info.error

    def encode(self) -> dict[str, np.ndarray]:
        """Flat arrays for batched execution: ``opcode[i]`` (index into ops.OP_LIST),
        ``arg_reg[i, k]`` (register, or -1 for a constant / unused slot), ``arg_const[i, k]``
        (the constant, else 0), ``arity[i]`` and ``outputs`` (update, m, v registers)."""
        k = len(self.instrs)
        opcode = np.array([OPCODES[ins.op] for ins in self.instrs], dtype=np.int32)
        arg_reg = np.full((k, 3), -1, dtype=np.int32)
        arg_const = np.zeros((k, 3), dtype=np.float64)
        for i, ins in enumerate(self.instrs):
            for j, a in enumerate(ins.args):
                if type(a) is int:
                    arg_reg[i, j] = a
                else:
                    arg_const[i, j] = a
        arity = np.array([len(ins.args) for ins in self.instrs], dtype=np.int32)
        return {"opcode": opcode, "arg_reg": arg_reg, "arg_const": arg_const, "arity": arity,
                "outputs": np.array(self.outputs, dtype=np.int32)}

    def __str__(self) -> str:
        return to_text(self)


def _analyse(p: Program, prefix: Info | None = None, start: int = 0) -> Info:
    """``p``'s :class:`Info`.  ``prefix``/``start``: the Info of a program whose first ``start``
    statements are ``p``'s (an in-place edit's parent) and has no type error: their types and
    dependencies are taken from it instead of recomputed."""
    if prefix is not None and prefix.error is None and start > 0:
        n = N_INPUTS + start
        types, deps = list(prefix.types[:n]), list(prefix.slot_deps[:n])
    else:
        types, deps, start = list(INPUT_TYPES), [0, 0, 1, 2, 0, 0], 0
    error = None
    ops = OPS
    for i, ins in enumerate(p.instrs[start:], start):  # (written for speed: once per new program of a search)
        spec = ops[ins.op]
        d = 0
        tensor = False
        want = spec.arg_types
        for k, a in enumerate(ins.args):
            if type(a) is int:
                got = types[a]
                d |= deps[a]
            else:
                got = SCALAR
            if got == TENSOR:
                tensor = True
            if want is not None and want[k] != got and error is None:
                error = (f"statement {i + 1} ({p.names[ins.dest]} = {ins.op}(...)): argument {k + 1} "
                         f"must be a {want[k]}, got a {got}")
        types.append(spec.result if want is not None else (TENSOR if tensor else SCALAR))
        deps.append(d)
    if error is None:
        for what, o in zip(OUTPUT_NAMES, p.outputs):
            if types[o] != TENSOR:
                error = f"returned {what} ({p.names[o]}) is a scalar; it must be a per-parameter tensor"
                break
    # live slots: least fixpoint of "read by the update, or by a live slot's output"
    live_bits = deps[p.outputs[0]]
    while True:
        more = live_bits
        for bit, slot_out in ((1, p.outputs[1]), (2, p.outputs[2])):
            if live_bits & bit:
                more |= deps[slot_out]
        if more == live_bits:
            break
        live_bits = more
    live_slots = tuple(s for s, bit in ((M, 1), (V, 2)) if live_bits & bit)
    roots = [p.outputs[0]] + [p.outputs[1 if s == M else 2] for s in live_slots]
    needed = [False] * (N_INPUTS + len(p.instrs))
    for r in roots:
        needed[r] = True
    for ins in reversed(p.instrs):
        if needed[ins.dest]:
            for a in ins.args:
                if type(a) is int:
                    needed[a] = True
    live = tuple(needed[N_INPUTS:])
    return Info(tuple(types), error, live, live_slots, tuple(deps))


# --- canonical text ------------------------------------------------------------------------------

def _fresh(base: str, taken: set[str]) -> str:
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def _print_names(p: Program) -> list[str]:
    """Register names such that every read of a register sees it under its name (no shadowing)."""
    names = list(p.names)
    for _ in range(len(names) + 1):
        bound: dict[str, int] = {n: r for r, n in enumerate(names[:N_INPUTS])}
        conflict = None
        for ins in p.instrs:
            for a in ins.args:
                if type(a) is int and bound.get(names[a]) != a:
                    conflict = (a, bound.get(names[a]))
                    break
            if conflict:
                break
            bound[names[ins.dest]] = ins.dest
        else:
            for o in p.outputs:
                if bound.get(names[o]) != o:
                    conflict = (o, bound.get(names[o]))
                    break
        if conflict is None:
            return names
        reg, shadow = conflict
        victim = shadow if (reg < N_INPUTS and shadow is not None) else reg
        names[victim] = _fresh(names[victim], set(names) | FUNCTIONS)
    raise InvalidCandidate("could not name the registers of this program")  # unreachable in practice


def _operand(a: int | float, names: list[str]) -> str:
    return names[a] if type(a) is int else repr(a)


def to_text(p: Program) -> str:
    """Canonical text: ``def train(w, g, m, v, lr[, t]):``, one op per line, two-space indent,
    constants printed with repr() (round-trips bit-exactly), ``t`` declared iff read.  Memoized on
    the (immutable) program."""
    text = p._text
    if text is None:
        text = _to_text(p)
        object.__setattr__(p, "_text", text)
    return text


_SYMBOLS = {op.name: op.symbol for op in OPS.values()}


def _to_text(p: Program) -> str:
    names = _print_names(p)
    uses_t = any(a == T and type(a) is int for ins in p.instrs for a in ins.args)
    sig = ", ".join(INPUT_NAMES if uses_t else INPUT_NAMES[:-1])
    lines = [f"def train({sig}):"]
    symbols = _SYMBOLS
    for ins in p.instrs:
        symbol = symbols[ins.op]
        args = [names[a] if type(a) is int else repr(a) for a in ins.args]  # (_operand, inlined: hot)
        if symbol is None:
            expr = f"{ins.op}({', '.join(args)})"
        elif symbol == "neg":
            expr = f"-{args[0]}"
        else:
            left = args[0]
            if symbol == "**" and type(ins.args[0]) is float and math.copysign(1.0, ins.args[0]) < 0:
                left = f"({left})"  # -0.5 ** x would parse as -(0.5 ** x)
            expr = f"{left} {symbol} {args[1]}"
        lines.append(f"  {names[ins.dest]} = {expr}")
    lines.append("  return " + ", ".join(names[o] for o in p.outputs))
    return "\n".join(lines) + "\n"


# --- structural key --------------------------------------------------------------------------------

_COMMUTATIVE = frozenset(op.name for op in OPS.values() if op.commutative)


def structural_key(p: Program) -> str:
    """Dataflow digest of the live statements: each live register gets a 128-bit digest of
    (op, argument digests) — arguments of commutative ops sorted — so variable names, the order of
    independent statements, dead code and duplicated subexpressions do not matter.  Dead slots
    digest as "dead"; the m/v labelling is canonicalised (the smaller of the two labellings)."""
    import xxhash

    info = p.info
    keys: list[str] = [""] * (N_INPUTS + len(p.instrs))
    digest = xxhash.xxh3_128_hexdigest
    # the live statements once for both labellings: (dest, "op(", commutative, args with
    # constants already printed)
    live = [(ins.dest, ins.op + "(", ins.op in _COMMUTATIVE,
             [a if type(a) is int else "c:" + a.hex() for a in ins.args])
            for ins, is_live in zip(p.instrs, info.live) if is_live]
    deps = info.slot_deps
    swapped = [x for x in live if deps[x[0]]]  # what the m/v swap relabels: statements reading m or v

    def label(swap: bool) -> str:
        keys[:N_INPUTS] = ["in:w", "in:g", "in:v" if swap else "in:m", "in:m" if swap else "in:v", "in:lr", "in:t"]
        for dest, head, commutative, args in (swapped if swap else live):
            parts = [keys[a] if type(a) is int else a for a in args]
            if commutative:
                parts.sort()
            keys[dest] = digest((head + ",".join(parts) + ")").encode())
        u, m, v = (keys[o] for o in p.outputs)
        m = m if M in info.live_slots else "dead"
        v = v if V in info.live_slots else "dead"
        if swap:
            m, v = v, m
        return f"update={u};m={m};v={v}"

    plain = label(False)  # first: label(True) recomputes only the statements that read m or v
    return min(plain, label(True))


def build(kept, outputs, names) -> Program:
    """A program from ``kept`` = [(id, op, args)] in execution order, where ids and register
    arguments are arbitrary unique ints (0..5 are the inputs); ``names[id]`` names each id
    (a list or a dict).  Renumbers into SSA form."""
    remap = {r: r for r in range(N_INPUTS)}
    instrs, new_names = [], list(INPUT_NAMES)
    add, add_name = instrs.append, new_names.append
    dest = N_INPUTS
    for old, op, args in kept:  # (written for speed: build runs once per mutation)
        add(Instr(dest, op, tuple([remap[a] if type(a) is int else a for a in args])))
        remap[old] = dest
        add_name(names[old])
        dest += 1
    return Program(tuple(instrs), tuple([remap[o] for o in outputs]), tuple(new_names))
