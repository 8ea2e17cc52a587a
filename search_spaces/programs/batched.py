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

import struct
from typing import Any, Sequence

import numpy as np
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


def live_code(p: Program, c: int = 0) -> tuple[list[tuple[str, tuple, str, tuple[str, ...]]], tuple[int, int, int]]:
    """Program ``p``'s live instructions as (op, arguments, result type, argument types), live
    instruction j writing register ``N_INPUTS + j`` (an argument is a register or a constant),
    and its output registers (update, m, v; a dead state slot: the input register).  Raises
    InvalidCandidate (naming ``program c``) for a program with a type error."""
    if p.info.error is not None:
        raise InvalidCandidate(f"program {c}: {p.info.error}")
    remap = {r: r for r in range(N_INPUTS)}
    types = p.info.types
    code = []
    for ins, live in zip(p.instrs, p.info.live):
        if live:
            remap[ins.dest] = N_INPUTS + len(code)
            code.append((ins.op, tuple(remap[a] if type(a) is int else a for a in ins.args),
                         types[ins.dest], tuple(types[a] if type(a) is int else SCALAR for a in ins.args)))
    u, mo, vo = p.outputs
    return code, (remap[u], remap[mo] if M in p.info.live_slots else M, remap[vo] if V in p.info.live_slots else V)


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
        lives = [live_code(p, c) for c, p in enumerate(self.programs)]
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
        self._schedule: tuple[list[float], list[float]] | None = None  # precompute's lrs, ts
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
        self._schedule = (list(lrs), list(ts))

    def subset(self, keep: Sequence[int]) -> BatchedPrograms:
        """The plan of programs ``keep`` (positions, in order): grouped again (the groups change
        with the members), precomputed for the same schedule."""
        out = BatchedPrograms([self.programs[k] for k in keep], self.N, device=self.device, dtype=self.dtype)
        if self._schedule is not None:
            out.precompute(*self._schedule)
        return out

    def release(self) -> None:
        """Forget the precomputed static values."""
        self._static_values = None
        self._schedule = None

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


#: Backends of :func:`plan`: ``torch`` (:class:`BatchedPrograms`, CPU and CUDA), ``numba``
#: (:class:`CompiledPrograms`, CPU float32), ``auto`` (numba where it can run, else torch).
BACKENDS = ("auto", "torch", "numba")


def compiled_available() -> bool:
    """Whether the compiled (numba) backend can run here: numba importable and its cache writable."""
    global _COMPILED_OK
    if _COMPILED_OK is None:
        try:
            from . import _batched_jit  # noqa: F401
            _COMPILED_OK = True
        except (ImportError, RuntimeError):  # numba missing / too old for numpy / no cache dir
            _COMPILED_OK = False
    return _COMPILED_OK


_COMPILED_OK: bool | None = None


def resolve_backend(backend: str, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> str:
    """``torch`` or ``numba``: what ``backend`` means for this device and dtype.  ``numba`` asked
    for where it cannot run is an error that says why."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    fits = torch.device(device).type == "cpu" and dtype == torch.float32
    if backend == "numba":
        if not fits:
            raise ValueError(f"the numba backend runs float32 on the CPU only (device {device}, dtype {dtype})")
        if not compiled_available():
            raise ValueError("the numba backend needs numba: pip install 'automl-evo[fast]'")
        return "numba"
    if backend == "auto" and fits and compiled_available():
        return "numba"
    return "torch"


def plan(programs: Sequence[Program], n: int, *, device: Any = "cpu", dtype: torch.dtype = torch.float32,
         backend: str = "auto") -> BatchedPrograms | CompiledPrograms:
    """The population's step function on the chosen backend (see :func:`resolve_backend`)."""
    if resolve_backend(backend, device, dtype) == "numba":
        return CompiledPrograms(programs, n)
    return BatchedPrograms(programs, n, device=device, dtype=dtype)


class CompiledPrograms:
    """The same step as :class:`BatchedPrograms` (same arguments, same results to float32
    rounding), run by one compiled kernel: each program on its own row, tile by tile, programs
    in parallel over ``torch.get_num_threads()`` numba threads when that is more than one
    (search_spaces/programs/_batched_jit.py says why and how).
    CPU, float32.  ``precompute`` is accepted and not needed (scalar chains cost nothing here)."""

    def __init__(self, programs: Sequence[Program], n: int):
        from . import _batched_jit as J
        from ._probe_jit import CODES

        self.programs = list(programs)
        self.P, self.N = len(self.programs), int(n)
        rows: list[list[int]] = []
        progs: list[list[int]] = []
        consts: list[tuple[float, float, float]] = []
        for c, p in enumerate(self.programs):
            code, outs = live_code(p, c)
            types = [TENSOR if r < N_INPUTS - 2 else SCALAR for r in range(N_INPUTS)]
            types += [rt for _, _, rt, _ in code]
            k0, c0 = len(consts), len(rows)
            creg: dict[bytes, int] = {}  # a constant's bits -> its register (read by several: one)
            cregs: list[float] = []
            fill: set[int] = set()
            avail = [0] * (N_INPUTS + len(code))  # per register: the pass its value is available from
            for j, (op, args, rtype, _) in enumerate(code):
                spec = OPS[op]
                regs = []
                for a in args:
                    if type(a) is int:
                        regs.append(a)
                    else:
                        key = struct.pack("<d", float(a))
                        if key not in creg:
                            creg[key] = N_INPUTS + len(code) + len(cregs)
                            cregs.append(float(a))
                            types.append(SCALAR)
                            avail.append(0)
                        regs.append(creg[key])
                av = max((avail[r] for r in regs), default=0) + int(spec.reduction)
                avail[N_INPUTS + j] = av
                if rtype == TENSOR and not spec.reduction:  # elementwise tensor op: scalar args as rows
                    fill.update(r for r in regs if types[r] == SCALAR)
                regs += [-1] * (3 - len(regs))
                code_op = CODES[op]
                if op == "pow" and rtype == TENSOR and types[regs[0]] == SCALAR:
                    code_op = J.POW_SBASE  # one exp per element instead of exp and log
                rows.append([code_op, N_INPUTS + j, *regs, int(rtype == TENSOR), 0, av, 0, -1, 0])
            fill.update(r for r in outs if types[r] == SCALAR)
            passes = 1 + max(avail[r] for r in outs)

            saved: list[int] = []  # rows whose value later passes load instead of recomputing

            def need(r: int, k: int, c0: int = c0, n_code: int = len(code), saved: list[int] = saved) -> None:
                """Mark what pass k runs to have register r's tile: the instructions it computes,
                or loads from a saved row when an earlier pass computed it."""
                at = c0 + r - N_INPUTS
                row = rows[at] if N_INPUTS <= r < N_INPUTS + n_code else None
                if row is None or ((row[J.NEED] | row[J.LOAD]) >> k) & 1:
                    return  # an input, a constant, or marked already
                red = J.DOT <= row[J.OP] <= J.CLIPNORM
                if not row[J.TENSOR_RESULT] and not red:
                    return  # a scalar: computed once per step (needs no tiles)
                if not red and row[J.NEED]:  # computed in an earlier pass: saved there, loaded here
                    if row[J.SAVE] < 0:
                        row[J.SAVE] = len(saved)
                        saved.append(at)
                    row[J.LOAD] |= 1 << k
                    return
                row[J.NEED] |= 1 << k
                if red and row[J.AVAIL] - 1 != k and row[J.OP] != J.CLIPNORM:
                    return  # a finished scalar reduction
                for a in row[J.A0:J.A2 + 1]:
                    if a >= 0:
                        need(a, k)

            for k in range(passes):
                for r in range(c0, len(rows)):
                    if J.DOT <= rows[r][J.OP] <= J.CLIPNORM and rows[r][J.AVAIL] - 1 == k:
                        need(rows[r][J.DEST], k)
            for r in outs:
                need(r, passes - 1)
            for r in range(c0, len(rows)):
                if rows[r][J.DEST] in fill and not rows[r][J.TENSOR_RESULT]:
                    rows[r][J.FILL] = 1
            for k, val in enumerate(cregs):
                reg = N_INPUTS + len(code) + k
                consts.append((float(reg), val, float(reg in fill)))
            progs.append([c0, len(rows), N_INPUTS + len(code) + len(cregs), *[
                -1 if (k and r == (M if k == 1 else V)) else r for k, r in enumerate(outs)],
                k0, len(consts), passes, len(saved)])
        self._J = J
        self._code = np.array(rows, dtype=np.int64).reshape(-1, J.CODE_COLUMNS)
        self._progs = np.array(progs, dtype=np.int64).reshape(-1, J.PROG_COLUMNS)
        self._consts = np.array(consts, dtype=np.float64).reshape(-1, 3)

    def subset(self, keep: Sequence[int]) -> CompiledPrograms:
        """The plan of programs ``keep`` (positions, in order), without lowering them again."""
        out = object.__new__(CompiledPrograms)
        out.__dict__.update(self.__dict__)
        out.programs = [self.programs[k] for k in keep]
        out.P = len(out.programs)
        out._progs = np.ascontiguousarray(self._progs[np.asarray(keep, dtype=np.int64)]).reshape(
            -1, self._J.PROG_COLUMNS)
        return out

    def precompute(self, lrs: Sequence[float], ts: Sequence[float]) -> None:
        if len(ts) != len(lrs):
            raise ValueError("precompute needs one t per lr")

    def step(self, w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: Any, t: Any,
             s: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step (see :class:`BatchedPrograms`); ``s`` is ignored."""
        P = self.P

        def per_row(x: Any) -> np.ndarray:
            if isinstance(x, torch.Tensor):
                return np.ascontiguousarray(x.detach().to(torch.float64).reshape(-1).numpy()).repeat(
                    P if x.numel() == 1 else 1)
            return np.full(P, float(x))

        arrays = [x.detach().contiguous() for x in (w, g, m, v)]
        for x in arrays:
            if x.dtype != torch.float32 or x.device.type != "cpu" or tuple(x.shape) != (P, self.N):
                raise ValueError(f"CompiledPrograms.step takes float32 CPU ({P}, {self.N}) matrices, got "
                                 f"{x.dtype} {x.device} {tuple(x.shape)}")
        u, mo, vo = (torch.empty_like(arrays[0]) for _ in range(3))
        args = (self._code, self._progs, self._consts, *(x.numpy() for x in arrays), per_row(lr), per_row(t),
                u.numpy(), mo.numpy(), vo.numpy())
        threads = min(torch.get_num_threads(), P)
        if threads <= 1:
            self._J.step_rows(*args, np.arange(P, dtype=np.int64))
        else:  # rows costliest first: prange's static chunks then even out (programs differ several-fold)
            J = self._J
            cost = (self._progs[:, J.C_END] - self._progs[:, J.C_START] + 1) * self._progs[:, J.N_PASSES]
            order = np.argsort(-cost, kind="stable").astype(np.int64)
            rows = np.concatenate([order[k::threads] for k in range(threads)])
            self._J.step_parallel(threads, *args, rows)
        return u, mo, vo


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


__all__ = ["BACKENDS", "BatchedPrograms", "CompiledPrograms", "ROW_REDUCTIONS", "compiled_available", "live_code",
           "mixed_population", "plan", "resolve_backend"]
