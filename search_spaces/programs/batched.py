"""Population-batched execution of optimizer programs (torch): P *different* programs each update
their own model copy, one row of a (P, N) matrix per copy, in one vectorized step.

How (op-grouped per level).  Each program's live instructions are numbered 0, 1, ...; live
instruction ``j`` writes register ``6 + j``.  The register file is one matrix for tensors, shape
(R * P, N) in the model's dtype, and one for scalars, (R * P, 1) in float64 (scalar chains such
as ``1 - 0.999 ** t`` are computed in float64, as ProgramOptimizer computes them on the host);
register ``r`` of program ``c`` is row ``r * P + c``.  An instruction's *level* is one more than
the deepest level among the registers it reads (the inputs are level 0), so instructions of one
level are independent.  All live instructions of all programs are grouped by (level, op, kind of
each argument: tensor register, scalar register or constant); a group runs as one torch call on
its gathered arguments (``index_select`` of its rows; a contiguous run of rows is a view) and its
result is scattered back with ``index_copy_``.  Grouping by level rather than by statement
index keeps the descendants of one program together even after insertions and deletions shift
their statements (256 AdamW descendants: 820 calls per step instead of 1,249;
docs/batched-programs.md).  Constants are per-program (Pg, 1) columns, so programs that
differ only in constants share every call.  Elementwise ops use the op table's own torch
implementations (``ops.OPS[name].torch``: one home for each op's semantics); the whole-model
reductions act per row (one row is one whole model, all its parameters flattened).

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


def _take(file: torch.Tensor, rows: torch.Tensor | slice) -> torch.Tensor:
    return file[rows] if isinstance(rows, slice) else file.index_select(0, rows)


def _put(file: torch.Tensor, rows: torch.Tensor | slice, value: torch.Tensor) -> None:
    if isinstance(rows, slice):
        file[rows] = value  # broadcasts a (1, N) value too
    else:
        if value.shape[1] != file.shape[1]:
            value = value.expand(value.shape[0], file.shape[1])
        file.index_copy_(0, rows, value)


class _Group:
    """One torch call at one level: its members all run op ``name`` with the same argument kinds."""

    __slots__ = ("fn", "result", "reduction", "args", "dest", "n")

    def __init__(self, name: str, kinds: tuple[str, ...], result: str, args: list, dest, n: int):
        spec = OPS[name]
        self.reduction = spec.reduction
        self.fn = ROW_REDUCTIONS[name] if spec.reduction else spec.torch
        self.result, self.args, self.dest, self.n = result, args, dest, n


class BatchedPrograms:
    """P programs, each updating its own row of a (P, N) weight matrix.

    ``step(w, g, m, v, lr, t)`` runs one step of every program: ``w``, ``g`` are (P, N); ``m``,
    ``v`` are the state slots (P, N), zeros at the start; ``lr`` and ``t`` are Python floats
    shared by all (or (P, 1) tensors).  It returns (update, new m, new v); the caller applies
    ``w -= update``.  A slot a program leaves dead keeps its input value.  Raises
    InvalidCandidate for a program with a type error.
    """

    def __init__(self, programs: Sequence[Program], n: int, *, device: Any = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.programs = list(programs)
        self.P, self.N = len(self.programs), int(n)
        self.device, self.dtype = torch.device(device), dtype
        P = self.P
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
        self.R = N_INPUTS + max((len(code) for code, _ in lives), default=0)
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
        self.levels: list[list[_Group]] = []
        self.static: list[_Group] = []
        for (is_static, level, op, kinds), members in sorted(by_key.items(), key=lambda kv: kv[0][1]):
            if len(self.levels) < level:
                self.levels += [[] for _ in range(level - len(self.levels))]
            c0, j0 = members[0]
            result = lives[c0][0][j0][2]
            gargs: list[tuple[str, Any]] = []
            for k, kind in enumerate(kinds):
                vals = [lives[c][0][j][1][k] for c, j in members]
                if kind == _CK:
                    col = torch.tensor(vals, dtype=torch.float64, device=self.device).unsqueeze(1)
                    # a constant read by a tensor op is rounded to the model's dtype (as torch
                    # rounds a Python float operand); scalar chains keep float64
                    gargs.append((kind, col.to(dtype) if result == TENSOR else col))
                else:
                    gargs.append((kind, _rows([r * P + c for r, (c, _) in zip(vals, members)], self.device)))
            dest = _rows([(N_INPUTS + j) * P + c for c, j in members], self.device)
            grp = _Group(op, kinds, result, gargs, dest, len(members))
            (self.static if is_static else self.levels[level - 1]).append(grp)
        self.out_rows = [_rows([outs[k] * P + c for c, (_, outs) in enumerate(lives)], self.device)
                         for k in range(3)]
        # the step's code, flat: (fn, cast scalar args to the model dtype, [(kind, rows or column)],
        # result into the tensor file, dest rows); kinds 0 tensor rows, 1 scalar rows, 2 constant
        def flat(groups):
            return [(g.fn, g.result == TENSOR or g.reduction,
                     [({_TK: 0, _SK: 1, _CK: 2}[k], a) for k, a in g.args], g.result == TENSOR, g.dest)
                    for g in groups]

        self._code = flat(g for groups in self.levels for g in groups)
        self._static_code = flat(self.static)  # (in level order: sorted above)
        self._static_file: torch.Tensor | None = None
        self.live_m = any(M in p.info.live_slots for p in self.programs)
        self.live_v = any(V in p.info.live_slots for p in self.programs)
        self._tfile: torch.Tensor | None = None
        self._sfile: torch.Tensor | None = None

    @property
    def calls_per_step(self) -> int:
        """torch calls (groups) one step makes, static ones included: the measure of how well
        the population batches (with :meth:`precompute`, the static ones leave the step)."""
        return sum(len(s) for s in self.levels) + len(self.static)

    def precompute(self, lrs: Sequence[float], ts: Sequence[float]) -> None:
        """Compute the static instructions (functions of lr, t and constants only: ``0.9 ** t``,
        bias corrections, ``lr * 0.01``) for all steps at once, one column per step: ``step(...,
        s=k)`` then reads column k instead of running them.  Same float64 ops, same values."""
        P, S = self.P, len(lrs)
        if len(ts) != S:
            raise ValueError("precompute needs one t per lr")
        sf = torch.zeros((self.R * P, S), dtype=torch.float64, device=self.device)
        sf[LR * P:(LR + 1) * P] = torch.tensor(list(lrs), dtype=torch.float64, device=self.device)
        sf[T * P:(T + 1) * P] = torch.tensor(list(ts), dtype=torch.float64, device=self.device)
        self._run(self._static_code, None, sf)
        self._static_file = sf

    def _files(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tfile is None:
            self._tfile = torch.zeros((self.R * self.P, self.N), dtype=self.dtype, device=self.device)
            self._sfile = torch.zeros((self.R * self.P, 1), dtype=torch.float64, device=self.device)
        return self._tfile, self._sfile  # type: ignore[return-value]

    def release(self) -> None:
        """Free the register files (they are rebuilt on the next step)."""
        self._tfile = self._sfile = None

    def step(self, w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: Any, t: Any,
             s: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step (see the class docstring); ``s``: this step's column of :meth:`precompute`
        (``lr`` and ``t`` must then be the values it was given)."""
        P = self.P
        tf, sf = self._files()
        if s is not None and self._static_file is not None:
            sf.copy_(self._static_file[:, s:s + 1])  # lr, t and every static value of this step
        else:
            sf[LR * P:(LR + 1) * P] = lr if not isinstance(lr, torch.Tensor) else lr.to(torch.float64).view(-1, 1)
            sf[T * P:(T + 1) * P] = t if not isinstance(t, torch.Tensor) else t.to(torch.float64).view(-1, 1)
            self._run(self._static_code, tf, sf)
        tf[W * P:(W + 1) * P] = w
        tf[G * P:(G + 1) * P] = g
        tf[M * P:(M + 1) * P] = m
        tf[V * P:(V + 1) * P] = v
        self._run(self._code, tf, sf)
        upd, mo, vo = (_take(tf, r) for r in self.out_rows)
        if isinstance(self.out_rows[0], slice):
            upd = upd.clone()  # a view of the file: the next step overwrites it
        mo = mo.clone() if isinstance(self.out_rows[1], slice) else mo
        vo = vo.clone() if isinstance(self.out_rows[2], slice) else vo
        return upd, mo, vo

    def _run(self, code, tf, sf) -> None:
        dtype, f64 = self.dtype, torch.float64
        for fn, to_tensor, args, into_t, dest in code:
            vals = []
            for kind, a in args:
                if kind == 0:  # tensor rows
                    vals.append(tf[a] if type(a) is slice else tf.index_select(0, a))
                elif kind == 1:  # scalar rows
                    x = sf[a] if type(a) is slice else sf.index_select(0, a)
                    vals.append(x.to(dtype) if to_tensor else x)
                else:
                    vals.append(a)
            out = fn(*vals)
            if into_t:
                _put(tf, dest, out)
            else:
                _put(sf, dest, out.to(f64))


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
