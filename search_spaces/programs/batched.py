"""Population-batched execution of optimizer programs (torch): P *different* programs each update
their own model copy, one row of a (P, N) matrix per copy, in one vectorized step.

How (op-grouped per slot).  Each program's live instructions are numbered 0, 1, ... ("slots");
instruction slot ``j`` of every program writes register ``6 + j`` of its own row block.  The
register file is one matrix for tensors, shape (R * P, N) in the model's dtype, and one for
scalars, (R * P, 1) in float64 (scalar chains such as ``1 - 0.999 ** t`` are computed in float64,
as ProgramOptimizer computes them on the host); register ``r`` of program ``c`` is row
``r * P + c``.  At slot ``j`` the programs are grouped by (op, kind of each argument: tensor
register, scalar register or constant); a group runs as one torch call on its gathered
arguments (``index_select`` of its rows; a contiguous run of rows is a view) and its result is
scattered back with ``index_copy_``.  Constants are per-program (Pg, 1) columns, so programs that
differ only in constants share every call.  Elementwise ops use the op table's own torch
implementations (``ops.OPS[name].torch``: one home for each op's semantics); the whole-model
reductions act per row (one row is one whole model, all its parameters flattened).

Why this and not grouping by structure (one call per distinct program structure, constants as
per-candidate tensors): an evolving population is mostly distinct structures (mutations insert,
delete and rewire statements far more often than they only change a constant), so grouping by
structure degenerates to one program per group; grouping per slot by op bounds the calls per
slot by the number of distinct (op, argument kinds) there, whatever the population.

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
    """One torch call at one slot: the programs ``cands`` all run op ``name`` with the same
    argument kinds."""

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
        # groups per slot
        self.slots: list[list[_Group]] = []
        for j in range(self.R - N_INPUTS):
            by_key: dict[tuple, list[int]] = {}
            for c, (code, _) in enumerate(lives):
                if j < len(code):
                    op, args, _, atypes = code[j]
                    kinds = tuple(_CK if type(a) is not int else (_TK if t == TENSOR else _SK)
                                  for a, t in zip(args, atypes))
                    by_key.setdefault((op, kinds), []).append(c)
            groups = []
            for (op, kinds), cands in by_key.items():
                result = lives[cands[0]][0][j][2]
                gargs: list[tuple[str, Any]] = []
                for k, kind in enumerate(kinds):
                    vals = [lives[c][0][j][1][k] for c in cands]
                    if kind == _CK:
                        col = torch.tensor(vals, dtype=torch.float64, device=self.device).unsqueeze(1)
                        # a constant read by a tensor op is rounded to the model's dtype (as torch
                        # rounds a Python float operand); scalar chains keep float64
                        gargs.append((kind, col.to(dtype) if result == TENSOR else col))
                    else:
                        gargs.append((kind, _rows([r * P + c for r, c in zip(vals, cands)], self.device)))
                dest = _rows([(N_INPUTS + j) * P + c for c in cands], self.device)
                groups.append(_Group(op, kinds, result, gargs, dest, len(cands)))
            self.slots.append(groups)
        self.out_rows = [_rows([outs[k] * P + c for c, (_, outs) in enumerate(lives)], self.device)
                         for k in range(3)]
        self.live_m = any(M in p.info.live_slots for p in self.programs)
        self.live_v = any(V in p.info.live_slots for p in self.programs)
        self._tfile: torch.Tensor | None = None
        self._sfile: torch.Tensor | None = None

    @property
    def calls_per_step(self) -> int:
        """torch calls (groups) one step makes: the measure of how well the population batches."""
        return sum(len(s) for s in self.slots)

    def _files(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tfile is None:
            self._tfile = torch.zeros((self.R * self.P, self.N), dtype=self.dtype, device=self.device)
            self._sfile = torch.zeros((self.R * self.P, 1), dtype=torch.float64, device=self.device)
        return self._tfile, self._sfile  # type: ignore[return-value]

    def release(self) -> None:
        """Free the register files (they are rebuilt on the next step)."""
        self._tfile = self._sfile = None

    def step(self, w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: Any, t: Any,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        P = self.P
        tf, sf = self._files()
        tf[W * P:(W + 1) * P] = w
        tf[G * P:(G + 1) * P] = g
        tf[M * P:(M + 1) * P] = m
        tf[V * P:(V + 1) * P] = v
        sf[LR * P:(LR + 1) * P] = lr if not isinstance(lr, torch.Tensor) else lr.to(torch.float64).view(-1, 1)
        sf[T * P:(T + 1) * P] = t if not isinstance(t, torch.Tensor) else t.to(torch.float64).view(-1, 1)
        dtype = self.dtype
        for groups in self.slots:
            for grp in groups:
                vals = []
                for kind, a in grp.args:
                    if kind == _TK:
                        vals.append(_take(tf, a))
                    elif kind == _SK:
                        x = _take(sf, a)
                        vals.append(x.to(dtype) if grp.result == TENSOR or grp.reduction else x)
                    else:
                        vals.append(a)
                out = grp.fn(*vals)
                if grp.result == TENSOR:
                    _put(tf, grp.dest, out)
                else:
                    _put(sf, grp.dest, out.to(torch.float64))
        upd, mo, vo = (_take(tf, r) for r in self.out_rows)
        if isinstance(self.out_rows[0], slice):
            upd = upd.clone()  # a view of the file: the next step overwrites it
        mo = mo.clone() if isinstance(self.out_rows[1], slice) else mo
        vo = vo.clone() if isinstance(self.out_rows[2], slice) else vo
        return upd, mo, vo


__all__ = ["BatchedPrograms", "ROW_REDUCTIONS"]
