"""Population-batched execution of optimizer programs (torch): P *different* programs each update
their own model copy, one row of a (P, N) matrix per copy, in one vectorized step.

How (op-grouped per level).  Each program's live instructions are numbered 0, 1, ...; live
instruction ``j`` writes register ``6 + j``.  An instruction's *level* is one more than the
deepest level among the registers it reads (the inputs are level 0), so instructions of one
level are independent.  All live instructions of all programs are grouped by (level, op, kind
of each argument: tensor register, scalar register or constant); a group runs as one torch call.
Its result is its own value, (members, N) in the model's dtype for tensors, (members, 1) in
float64 for scalars (scalar chains such as ``1 - 0.999 ** t`` are computed in float64, as
ProgramOptimizer computes them on the host); its arguments are views of the values its members
read when those are consecutive rows of one value, else gathered (``index_select``, pieces
concatenated); values are released after their last reader (see :class:`BatchedPrograms`).
Grouping by level rather than by statement index keeps the descendants of one program together
even after insertions and deletions shift their statements (256 AdamW descendants: 820 calls
per step instead of 1,249; docs/batched-programs.md).  Constants are per-program (Pg, 1)
columns, so programs that differ only in constants share every call.  Elementwise ops use the
op table's own torch implementations (``ops.OPS[name].torch``: one home for each op's
semantics); the whole-model reductions act per row (one row is one whole model, all its
parameters flattened).

Why this and not grouping by structure (one call per distinct program structure, constants as
per-candidate tensors): an evolving population is mostly distinct structures (mutations insert,
delete and rewire statements far more often than they only change a constant), so grouping by
structure degenerates to one program per group (counted: 1,140 calls per step instead of 201 on
the benchmark's mixed population); grouping per level by op bounds the calls per level by the
number of distinct (op, argument kinds) there, whatever the population.

The per-candidate reference is ``ProgramOptimizer`` (search_spaces/programs/optim.py); results
agree within float32 rounding (tests/test_batched_programs.py).  torch is imported at module
import: import this module only where torch is wanted (the evaluators).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from automl.errors import InvalidCandidate

from .ir import G, LR, M, N_INPUTS, T, V, W, Program
from .ops import COS_EPS, OPS, SCALAR, TENSOR

_TK, _SK, _CK = "t", "s", "c"  # argument kinds: tensor register, scalar register, constant


def _rsum(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=-1, keepdim=True)


def _rnorm(x: torch.Tensor) -> torch.Tensor:
    return _rsum(x * x).sqrt()


def _r_dot(x, y):
    return _rsum(x * y)


def _r_cos(x, y):
    return _rsum(x * y) / (_rnorm(x) * _rnorm(y)).clamp(min=COS_EPS)


def _r_clip_norm(x, c):
    return x * (c / _rnorm(x)).clamp(max=1.0)


#: Row-wise (one row = one whole model) versions of the whole-model reductions of ops.py.
ROW_REDUCTIONS = {"dot": _r_dot, "global_norm": _rnorm, "cosine_sim": _r_cos, "clip_by_global_norm": _r_clip_norm}


def _rows(idx: list[int], device: Any) -> torch.Tensor | slice:
    """Row indices as a slice when they form a contiguous run (a view, no copy), else a LongTensor."""
    if idx and idx[-1] - idx[0] + 1 == len(idx) and all(b - a == 1 for a, b in zip(idx, idx[1:])):
        return slice(idx[0], idx[-1] + 1)
    return torch.tensor(idx, dtype=torch.long, device=device)


def _gather(sources: list[tuple[int, int]], device: Any) -> list[tuple[int, Any]]:
    """How to assemble one argument of a group from the values it reads: ``sources`` holds
    (value key, row) per member; the result is a list of pieces (key, rows: slice or LongTensor),
    one per run of consecutive members reading the same value, concatenated in order."""
    pieces: list[tuple[int, list[int]]] = []
    for key, row in sources:
        if pieces and pieces[-1][0] == key:
            pieces[-1][1].append(row)
        else:
            pieces.append((key, [row]))
    return [(key, _rows(rows, device), len(rows)) for key, rows in pieces]


class BatchedPrograms:
    """P programs, each updating its own row of a (P, N) weight matrix.

    ``step(w, g, m, v, lr, t)`` runs one step of every program: ``w``, ``g`` are (P, N); ``m``,
    ``v`` are the state slots (P, N), zeros at the start; ``lr`` and ``t`` are Python floats
    shared by all (or (P, 1) tensors).  It returns (update, new m, new v); the caller applies
    ``w -= update``.  A slot a program leaves dead keeps its input value.  Raises
    InvalidCandidate for a program with a type error.

    Values (no register file).  Each group's result is its own tensor, (members, N) in the model's
    dtype or (members, 1) float64 for scalars; the inputs are the caller's matrices, used as they
    are.  An argument of a group is a view of the one value all its members read, in order (most
    arguments: e.g. every argument of a population of one program), else the rows gathered from
    the values they read (``index_select``, concatenated when the members read several).  Members
    are ordered by what their first argument reads, so those runs are long.  A value is released
    after its last reader, so the live set (and the memory the step streams through) stays
    small: writing every result into one (registers x P, N) file and gathering from it, as this
    class did before, moved each value through memory twice more (measured: docs/batched-programs.md).
    """

    def __init__(self, programs: Sequence[Program], n: int, *, device: Any = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.programs = list(programs)
        self.P, self.N = len(self.programs), int(n)
        self.device, self.dtype = torch.device(device), dtype
        lives = []
        for c, p in enumerate(self.programs):
            if p.info.error is not None:
                raise InvalidCandidate(f"program {c}: {p.info.error}")
            remap = {r: r for r in range(N_INPUTS)}
            code = []
            for ins, live in zip(p.instrs, p.info.live):
                if live:
                    remap[ins.dest] = N_INPUTS + len(code)
                    code.append((ins.op, tuple(remap[a] if type(a) is int else a for a in ins.args),
                                 p.info.types[ins.dest], tuple(p.info.types[a] if type(a) is int else SCALAR
                                                                for a in ins.args)))
            u, mo, vo = p.outputs
            outs = (remap[u], remap[mo] if M in p.info.live_slots else M, remap[vo] if V in p.info.live_slots else V)
            lives.append((code, outs))
        # group every live instruction of every program by (level, op, argument kinds); an
        # instruction's level is 1 + the deepest level among the registers it reads (inputs: 0),
        # so the instructions of one level never read each other and run in any order
        # An instruction reading only lr, t, constants and such instructions is *static*: its
        # values for every step are known once the lr schedule is (``precompute``).
        by_key: dict[tuple, list[tuple[int, int]]] = {}
        for c, (code, _) in enumerate(lives):
            depth = [0] * N_INPUTS
            static = [False] * N_INPUTS
            static[LR] = static[T] = True
            for j, (op, args, _, atypes) in enumerate(code):
                depth.append(1 + max((depth[a] for a in args if type(a) is int), default=0))
                static.append(all(type(a) is not int or static[a] for a in args))
                kinds = tuple(_CK if type(a) is not int else (_TK if t == TENSOR else _SK)
                              for a, t in zip(args, atypes))
                by_key.setdefault((static[-1], depth[-1], op, kinds), []).append((c, j))
        # value keys: 0..5 the inputs (row c = program c), then one per group in run order
        where: dict[tuple[int, int], tuple[int, int]] = {}  # (program, live instruction) -> (key, row)

        def source(c: int, r: int) -> tuple[int, int]:
            return (r, c) if r < N_INPUTS else where[(c, r - N_INPUTS)]

        ordered = sorted(by_key.items(), key=lambda kv: (not kv[0][0], kv[0][1]))  # static first, by level
        self._static_code: list = []
        self._code: list = []
        self.n_levels = 0
        for (is_static, level, op, kinds), members in ordered:
            first = next((k for k, kind in enumerate(kinds) if kind != _CK), None)
            if first is not None:  # members reading the same value sit together (long runs, fewer pieces)
                members = sorted(members, key=lambda cj: source(cj[0], lives[cj[0]][0][cj[1]][1][first]))
            key = N_INPUTS + len(self._static_code) + len(self._code)
            c0, j0 = members[0]
            result = lives[c0][0][j0][2]
            spec = OPS[op]
            gargs: list[tuple[int, Any]] = []
            for k, kind in enumerate(kinds):
                vals = [lives[c][0][j][1][k] for c, j in members]
                if kind == _CK:
                    col = torch.tensor(vals, dtype=torch.float64, device=self.device).unsqueeze(1)
                    # a constant read by a tensor op is rounded to the model's dtype (as torch
                    # rounds a Python float operand); scalar chains keep float64
                    gargs.append((2, col.to(dtype) if result == TENSOR else col))
                else:
                    gargs.append((0 if kind == _TK else 1,
                                  _gather([source(c, r) for r, (c, _) in zip(vals, members)], self.device)))
            for pos, (c, j) in enumerate(members):
                where[(c, j)] = (key, pos)
            fn = ROW_REDUCTIONS[op] if spec.reduction else spec.torch
            entry = (key, fn, result == TENSOR or spec.reduction, gargs, result == TENSOR)
            (self._static_code if is_static else self._code).append(entry)
            self.n_levels = max(self.n_levels, level)
        self.out_gather = [_gather([source(c, outs[k]) for c, (_, outs) in enumerate(lives)], self.device)
                           for k in range(3)]
        self.n_values = N_INPUTS + len(self._static_code) + len(self._code)
        self.static_keys = tuple(e[0] for e in self._static_code)
        # liveness: a value is released after the last group that reads it (outputs: never)
        last: dict[int, int] = {}
        for i, (_, _, _, gargs, _) in enumerate(self._code):
            for kind, a in gargs:
                if kind != 2:
                    for key, _, _ in a:
                        last[key] = i
        keep = {key for pieces in self.out_gather for key, _, _ in pieces} | set(range(N_INPUTS))
        keep |= set(self.static_keys)
        release: list[list[int]] = [[] for _ in self._code]
        for key, i in last.items():
            if key not in keep:
                release[i].append(key)
        self._release = release
        self._static_values: list | None = None
        self.live_m = any(M in p.info.live_slots for p in self.programs)
        self.live_v = any(V in p.info.live_slots for p in self.programs)

    @property
    def calls_per_step(self) -> int:
        """Op calls (groups) one step makes, static ones included: the measure of how well the
        population batches (with :meth:`precompute`, the static ones leave the step)."""
        return len(self._code) + len(self._static_code)

    def precompute(self, lrs: Sequence[float], ts: Sequence[float]) -> None:
        """Compute the static instructions (functions of lr, t and constants only: ``0.9 ** t``,
        bias corrections, ``lr * 0.01``) for all steps at once, one column per step: ``step(...,
        s=k)`` then reads column k instead of running them.  Same float64 ops, same values."""
        P, S = self.P, len(lrs)
        if len(ts) != S:
            raise ValueError("precompute needs one t per lr")
        vals: list[Any] = [None] * self.n_values
        vals[LR] = torch.tensor(list(lrs), dtype=torch.float64, device=self.device).expand(P, S)
        vals[T] = torch.tensor(list(ts), dtype=torch.float64, device=self.device).expand(P, S)
        self._run(self._static_code, vals, None)
        self._static_values = vals

    def release(self) -> None:
        """Forget the precomputed static values."""
        self._static_values = None

    def step(self, w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: Any, t: Any,
             s: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step (see the class docstring); ``s``: this step's column of :meth:`precompute`
        (``lr`` and ``t`` must then be the values it was given)."""
        P, f64 = self.P, torch.float64
        vals: list[Any] = [None] * self.n_values
        vals[W], vals[G], vals[M], vals[V] = w, g, m, v
        if s is not None and self._static_values is not None:
            sv = self._static_values
            vals[LR], vals[T] = sv[LR][:, s:s + 1], sv[T][:, s:s + 1]
            for key in self.static_keys:
                vals[key] = sv[key][:, s:s + 1]
        else:
            vals[LR] = (lr.to(f64).view(-1, 1) if isinstance(lr, torch.Tensor)
                        else torch.full((P, 1), float(lr), dtype=f64, device=self.device))
            vals[T] = (t.to(f64).view(-1, 1) if isinstance(t, torch.Tensor)
                       else torch.full((P, 1), float(t), dtype=f64, device=self.device))
            self._run(self._static_code, vals, None)
        self._run(self._code, vals, self._release)
        upd, mo, vo = (_assemble(vals, pieces) for pieces in self.out_gather)
        return upd, mo, vo

    def _run(self, code, vals: list, release) -> None:
        dtype, f64 = self.dtype, torch.float64
        for i, (key, fn, to_tensor, args, into_t) in enumerate(code):
            xs = []
            for kind, a in args:
                if kind == 2:  # a constant column
                    xs.append(a)
                    continue
                x = _assemble(vals, a)
                xs.append(x.to(dtype) if kind == 1 and to_tensor else x)
            out = fn(*xs)
            vals[key] = out if into_t else out.to(f64)
            if release is not None:
                for k in release[i]:
                    vals[k] = None


def _assemble(vals: list, pieces: list[tuple[int, Any, int]]) -> torch.Tensor:
    """One argument from its pieces (see :func:`_gather`): a view when it is one contiguous run."""
    if len(pieces) == 1:
        key, rows, _ = pieces[0]
        x = vals[key]
        return x[rows] if type(rows) is slice else x.index_select(0, rows)
    return torch.cat([vals[key][rows] if type(rows) is slice else vals[key].index_select(0, rows)
                      for key, rows, _ in pieces])


def mixed_population(n: int, seed: int = 0, random_share: float = 0.3) -> list[Program]:
    """``n`` type-correct programs as a search meets them (tests and benchmarks): the classic
    programs, mutants of them and of each other (several generations deep), and a
    ``random_share`` of freshly sampled random programs; mostly distinct structures, and on the
    proxy tasks about a third of them diverge."""
    import numpy as np

    from .classic import CLASSIC_PROGRAMS
    from .space import ProgramSpace

    space = ProgramSpace()
    rng = np.random.default_rng(seed)
    out = [space.from_text(t) for t in CLASSIC_PROGRAMS.values()]
    while len(out) < n:
        g = space.sample(rng) if rng.random() < random_share else space.mutate(out[rng.integers(len(out))], rng)
        if g.info.error is None:
            out.append(g)
    return out[:n]


__all__ = ["BatchedPrograms", "ROW_REDUCTIONS", "mixed_population"]
