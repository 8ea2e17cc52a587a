"""Random programs and mutations.  Every function draws only from the ``rng`` it is given.

Mutations (one per call, chosen at random; retried until the child type-checks and differs):

- insert (edge): pick one read of a value (an instruction argument or a returned value), put a new
  random op that takes that value between its definition and the read, and make the read see the
  new result (an edit of one dataflow edge);
- insert (statement), as in Chen et al. 2023: a random statement at a random position, assigned
  to a new variable (dead until something reads it) or over an existing variable of its type, so
  that every later read of that variable (and the returned value, for m and v) sees it;
- delete: remove an instruction; its readers read one of its arguments instead (or another
  earlier value of the same type);
- modify-argument: a constant is scaled by ``2**N(0,1)`` or resampled; a register argument is
  replaced by another value defined before the instruction; a returned value by another tensor;
- modify-constant: one tunable constant value (``constants.constants``: the structural 0, +-1, +-2,
  0.5 excluded) rescaled *everywhere it occurs*, as ``with_constants`` tunes it: a beta-like
  c in [0.5, 1) as 1 - (1 - c) * 2**N(0,1) (so 0.9 and 0.999 move by factors of 1 - c), any other
  as c * 2**N(0,1).  AdamW's beta1 sits in its moment and in its bias correction; changing one
  occurrence alone (modify-argument) makes a different optimizer, this keeps them tied;
- modify-op: replace an op by another of the same arity.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .ir import INPUT_TYPES, M, N_INPUTS, V, G, Instr, Program, _analyse, build
from .ops import FUNCTIONS, OPS, SCALAR, TENSOR

#: Constants new instructions draw from (half the time; else 10**U(-4, 1)).
CONST_PRIOR = (0.5, 0.9, 0.99, 0.999, 1.0, 2.0, 0.1, 0.01, 0.001, 1e-08)
MAX_TRIES = 50


@dataclasses.dataclass(frozen=True)
class Config:
    ops: tuple[str, ...]
    max_statements: int = 30
    sample_min: int = 2
    sample_max: int = 8


def sample_const(rng: np.random.Generator) -> float:
    if rng.random() < 0.5:
        return float(CONST_PRIOR[int(rng.integers(len(CONST_PRIOR)))])
    return float(10.0 ** rng.uniform(-4.0, 1.0))


def _fresh_name(names: dict[int, str]) -> str:
    taken = set(names.values())
    k = 1
    while f"x{k}" in taken or f"x{k}" in FUNCTIONS:
        k += 1
    return f"x{k}"


class _Draft:
    """A mutable program: instructions [id, op, args] in order, ids unique (inputs are 0..5)."""

    def __init__(self, p: Program):
        self.code = [[ins.dest, ins.op, list(ins.args)] for ins in p.instrs]
        self.outputs = list(p.outputs)
        self.names = dict(enumerate(p.names))
        info = p.info
        self.types = dict(enumerate(info.types))
        self.next_id = 10**6  # ids of new instructions (renumbered by build)
        self.parent = p
        # positions an in-place edit changed (len(code): the returned values), None after an
        # insert or delete: an edit in place builds the child from the parent's instructions,
        # replacing only those, and compares only those with the parent's
        self.edited: list[int] | None = None

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def available(self, pos: int) -> list[int]:
        """Registers readable by an instruction at position ``pos``."""
        return list(range(N_INPUTS)) + [c[0] for c in self.code[:pos]]

    def program(self) -> Program | None:
        if self.edited is not None:  # no insert or delete: ids are still the parent's registers
            instrs = list(self.parent.instrs)
            for i in self.edited:
                if i < len(instrs):
                    dest, op, args = self.code[i]
                    instrs[i] = Instr(dest, op, tuple(args))
            child = Program(tuple(instrs), tuple(self.outputs), self.parent.names)
            if self.edited:  # the statements before the first edit keep the parent's types
                object.__setattr__(child, "_info", _analyse(child, self.parent.info, min(self.edited)))
            return child
        try:
            return build([(i, op, tuple(args)) for i, op, args in self.code], self.outputs, self.names)
        except KeyError:  # a read of a value that no longer exists
            return None


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _random_args(d: _Draft, rng: np.random.Generator, op: str, pos: int, types: dict[int, str],
                 fixed: dict[int, int] | None = None) -> list:
    spec = OPS[op]
    avail = d.available(pos)
    tensors = [r for r in avail if types.get(r) == TENSOR]
    scalars = [r for r in avail if types.get(r) == SCALAR]
    args: list = []
    for k in range(spec.arity):
        if fixed and k in fixed:
            args.append(fixed[k])
            continue
        want = spec.arg_types[k] if spec.arg_types else None
        if want == TENSOR:
            args.append(_pick(rng, tensors))
        elif want == SCALAR:
            args.append(_pick(rng, scalars) if scalars and rng.random() < 0.3 else sample_const(rng))
        else:
            args.append(sample_const(rng) if rng.random() < 0.3 else _pick(rng, avail))
    if not any(type(a) is int for a in args):
        args[0] = _pick(rng, tensors if (spec.arg_types and spec.arg_types[0] == TENSOR) else avail)
    return args


def sample(rng: np.random.Generator, cfg: Config) -> Program:
    """A random valid program of ``sample_min..sample_max`` statements."""
    for _ in range(MAX_TRIES):
        n = int(rng.integers(cfg.sample_min, cfg.sample_max + 1))
        d = _Draft(Program((), (G, M, V)))
        types = dict(enumerate(INPUT_TYPES))
        for i in range(n):
            op = _pick(rng, cfg.ops)
            spec = OPS[op]
            fixed = None
            if i and rng.random() < 0.7:  # chain onto the previous result: fewer dead statements
                prev = N_INPUTS + i - 1
                slots = [k for k in range(spec.arity) if spec.arg_types is None or spec.arg_types[k] == types[prev]]
                if slots:
                    fixed = {_pick(rng, slots): prev}
            args = _random_args(d, rng, op, i, types, fixed)
            rid = N_INPUTS + i
            d.code.append([rid, op, args])
            d.names[rid] = f"x{i + 1}"
            at = [types[a] if type(a) is int else SCALAR for a in args]
            types[rid] = spec.result if spec.arg_types else (TENSOR if TENSOR in at else SCALAR)
        tensors = [c[0] for c in d.code if types[c[0]] == TENSOR]
        if not tensors:
            continue
        update = tensors[-1]
        m_out = M if rng.random() < 0.5 else _pick(rng, tensors)
        v_out = V if rng.random() < 0.5 else _pick(rng, tensors)
        d.outputs = [update, m_out, v_out]
        p = d.program()
        if p is not None and p.info.error is None:
            return p
    return Program((), (G, M, V))


def _uses(d: _Draft) -> list[tuple[int, int]]:
    """Every read site as (instruction position or len(code) for the return, arg index)."""
    sites = [(i, k) for i, c in enumerate(d.code) for k, a in enumerate(c[2]) if type(a) is int]
    return sites + [(len(d.code), k) for k in range(3)]


def _read(d: _Draft, site: tuple[int, int]) -> int:
    i, k = site
    return d.outputs[k] if i == len(d.code) else d.code[i][2][k]


def _write(d: _Draft, site: tuple[int, int], value) -> None:
    i, k = site
    if i == len(d.code):
        d.outputs[k] = value
    else:
        d.code[i][2][k] = value


def _insert(d: _Draft, rng: np.random.Generator, cfg: Config) -> bool:
    if len(d.code) >= cfg.max_statements:
        return False
    site = _pick(rng, _uses(d))
    r = _read(d, site)
    lo = 0 if r < N_INPUTS else 1 + next(i for i, c in enumerate(d.code) if c[0] == r)
    pos = int(rng.integers(lo, site[0] + 1))
    op = _pick(rng, cfg.ops)
    spec = OPS[op]
    slots = [k for k in range(spec.arity) if spec.arg_types is None or spec.arg_types[k] == d.types[r]]
    if not slots:
        return False
    args = _random_args(d, rng, op, pos, d.types, fixed={_pick(rng, slots): r})
    rid = d.new_id()
    d.names[rid] = _fresh_name(d.names)
    d.code.insert(pos, [rid, op, args])
    _write(d, (site[0] + 1, site[1]) if site[0] < len(d.code) - 1 else (len(d.code), site[1]), rid)
    return True


def _insert_statement(d: _Draft, rng: np.random.Generator, cfg: Config) -> bool:
    if len(d.code) >= cfg.max_statements:
        return False
    pos = int(rng.integers(0, len(d.code) + 1))
    op = _pick(rng, cfg.ops)
    spec = OPS[op]
    args = _random_args(d, rng, op, pos, d.types)
    arg_types = [d.types[a] if type(a) is int else SCALAR for a in args]
    rtype = spec.result if spec.arg_types else (TENSOR if TENSOR in arg_types else SCALAR)
    rid = d.new_id()
    targets = [r for r in d.available(pos) if d.types.get(r) == rtype and r != G]
    d.code.insert(pos, [rid, op, args])
    d.types[rid] = rtype
    if targets and rng.random() < 0.5:  # overwrite a variable: later reads see the new value
        old = _pick(rng, targets)
        d.names[rid] = d.names[old]
        for c in d.code[pos + 1:]:
            c[2] = [rid if type(a) is int and a == old else a for a in c[2]]
        d.outputs = [rid if o == old else o for o in d.outputs]
    else:
        d.names[rid] = _fresh_name(d.names)
    return True


def _delete(d: _Draft, rng: np.random.Generator) -> bool:
    if not d.code:
        return False
    i = int(rng.integers(len(d.code)))
    rid, _, args = d.code[i]
    same = [a for a in args if type(a) is int and d.types[a] == d.types[rid]]
    if not same:
        same = [a for a in d.available(i) if d.types[a] == d.types[rid]]
    sub = _pick(rng, same)
    del d.code[i]
    for c in d.code[i:]:
        c[2] = [sub if a == rid and type(a) is int else a for a in c[2]]
    d.outputs = [sub if o == rid else o for o in d.outputs]
    return True


def _modify_arg(d: _Draft, rng: np.random.Generator) -> bool:
    sites = [(i, k) for i, c in enumerate(d.code) for k in range(len(c[2]))] + [(len(d.code), k) for k in range(3)]
    i, k = _pick(rng, sites)
    d.edited = [i]
    if i == len(d.code):
        d.outputs[k] = _pick(rng, [r for r in d.available(i) if d.types[r] == TENSOR])
        return True
    args = d.code[i][2]
    a = args[k]
    if type(a) is float:
        u = rng.random()
        if u < 0.5:
            args[k] = float(a * 2.0 ** rng.standard_normal())
        elif u < 0.9:
            args[k] = sample_const(rng)
        else:
            args[k] = _pick(rng, d.available(i))
    else:
        others = sum(1 for j, b in enumerate(args) if j != k and type(b) is int)
        if others and rng.random() < 0.15:
            args[k] = sample_const(rng)
        else:
            args[k] = _pick(rng, d.available(i))
    return True


def _modify_constant(d: _Draft, p: Program, rng: np.random.Generator) -> bool:
    from .constants import constants

    values = constants(p)
    if not values:
        return False
    c = _pick(rng, values)
    z = 2.0 ** rng.standard_normal()
    new = 1.0 - (1.0 - c) * z if 0.5 <= c < 1.0 and (1.0 - c) * z < 0.5 else c * z
    edited = []
    for i, ins in enumerate(d.code):
        if any(type(a) is float and a == c for a in ins[2]):
            ins[2] = [new if type(a) is float and a == c else a for a in ins[2]]
            edited.append(i)
    d.edited = edited
    return True


def _modify_op(d: _Draft, rng: np.random.Generator, cfg: Config) -> bool:
    if not d.code:
        return False
    i = int(rng.integers(len(d.code)))  # (as _pick)
    c = d.code[i]
    same = [o for o in cfg.ops if OPS[o].arity == OPS[c[1]].arity and o != c[1]]
    if not same:
        return False
    c[1] = _pick(rng, same)
    d.edited = [i]
    return True


def mutate(p: Program, rng: np.random.Generator, cfg: Config) -> Program:
    """A type-correct child differing from ``p`` (``p`` itself if none is found in MAX_TRIES)."""
    for _ in range(MAX_TRIES):
        d = _Draft(p)
        u = rng.random()
        if u < 0.15:
            ok = _insert(d, rng, cfg)
        elif u < 0.3:
            ok = _insert_statement(d, rng, cfg)
        elif u < 0.45:
            ok = _delete(d, rng)
        elif u < 0.7:
            ok = _modify_arg(d, rng)
        elif u < 0.85:
            ok = _modify_constant(d, p, rng)
        else:
            ok = _modify_op(d, rng, cfg)
        if not ok:
            continue
        child = d.program()
        if child is None:
            continue
        edited = d.edited
        if edited is None:
            differs = child != p
        else:  # an edit in place: only those statements (or the returns) can differ
            n = len(p.instrs)
            differs = any(child.outputs != p.outputs if i == n else child.instrs[i] != p.instrs[i] for i in edited)
        if differs and child.info.error is None:
            return child
    return p



def descendant(p: Program, rng: np.random.Generator, cfg: Config, statements: int = 25,
               min_live: int = 0, max_tries: int = 2000) -> Program:
    """A realistic search-time candidate: ``p`` mutated repeatedly (every mutation kind, as in a
    search) until it has exactly ``statements`` statements and type-checks, keeping only steps
    that leave at least ``min_live`` live statements (selection keeps programs that still do
    something).  For benchmarks and soundness suites (e.g. 25-statement descendants of AdamW)."""
    q = p
    for _ in range(max_tries):
        r = mutate(q, rng, cfg)
        if r.info.error is None and len(r.instrs) <= statements and sum(r.info.live) >= min_live:
            q = r
        if len(q.instrs) == statements:
            return q
    raise RuntimeError(f"no {statements}-statement descendant within {max_tries} mutations")
