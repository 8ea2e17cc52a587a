"""One training step of P *different* optimizer programs, compiled (numba): the CPU backend of
:class:`search_spaces.programs.batched.CompiledPrograms`.

Why not torch here.  The torch interpreter (:class:`~search_spaces.programs.batched.BatchedPrograms`)
groups the population's instructions by op and runs each group as one torch call; every call
writes a fresh (members, N) result, so a step streams each intermediate value of every program
through main memory.  On the proxy tasks of a search (30-statement programs, ``mlp_wide``'s
19,462 parameters) that interpreter took 76 % of a generation (measured on the last 256
programs a 62,666-candidate search evaluated).  Here each program runs on its own row, tile by
tile (:data:`TILE` elements): all of the program's instructions on one tile, whose registers
stay in the core's cache, then the next tile; only w, g, m, v are read and the update, m and v
written.  With more than one thread (torch's thread count: the evaluator's ``threads``) programs
run in parallel over numba's threads (:func:`step_parallel`); one thread, the default, runs
:func:`step_rows` and never starts numba's thread pool.

Semantics: those of the torch interpreter, to float32 rounding (tests/test_batched_programs.py
compares them op by op and on whole populations).  Tensor values are float32: +, -, *, /, sqrt,
min, max, clip, interp, div are the IEEE float32 operations torch performs; transcendentals
and ``pow`` are computed in float64 by :mod:`automl._probe_math_jit`'s kernels (which LLVM
vectorizes; libm's float32 functions are scalar calls) and rounded to float32, so they are
within one float32 ulp of torch's.  Scalars (lr, t, constants, reductions and what is computed
from them) are float64, as ProgramOptimizer computes them on the host; a tensor op reads a
scalar rounded to float32, as the torch path does.  Whole-model reductions sum in float64.

A whole-model reduction (``dot``, ``global_norm``, ...) needs a whole row before the
instructions that read it: the row is then passed over again, tiles recomputed (see
:func:`_program_step`).

numba's disk cache keys a function by this file only: :data:`COMPILED_AGAINST` names the digest
of automl/_probe_math_jit.py, whose kernels are inlined here (a test checks it).
"""
from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from automl._probe_math_jit import arccos1, arcsin1, arctan1, cos1, cosh1, exp1, log1, sin1, sinh1, tan1, tanh1

from ._probe_jit import (ABS, ADD, ARCCOS, ARCSIN, ARCSINH, ARCTAN, ARCTANH, CLIP, CLIPNORM, COS, COSH, COSSIM,
                         DIV, DOT, EXP, INTERP, LOG, MAX, MIN, MUL, NEG, NORM, PLOG, POW, SIGN, SIN, SINH, SQRT,
                         SQUARE, SUB, TAN, TANH, TRUEDIV)
from .ops import COS_EPS, EPS

_JIT = dict(cache=True, error_model="numpy", nogil=True)

#: sha256 (first 16 hex digits) of automl/_probe_math_jit.py (see the module docstring).
COMPILED_AGAINST = "90db2e4805ea94b5"

#: ``pow`` with a scalar base and a tensor exponent (the table's codes are _probe_jit's, < 36)
POW_SBASE = 40

#: Elements per tile: 23 registers of a 30-statement program take 23 x 4 KiB, in L2.
TILE = 1024

_F1 = np.float32(1.0)
_F0 = np.float32(0.0)
_EPS32 = np.float32(EPS)
_COS_EPS32 = np.float32(COS_EPS)

# Columns of the instruction table: op, dest, three argument registers, whether the result is a
# tensor, whether a scalar result is also needed as a float32 row (a tensor op reads it), the
# pass from which its value is available (the reductions on its longest dependency chain), the
# passes that compute it (bit k: pass k; tensor instructions and reductions), its row in the
# program's saved rows (-1: none; a value computed in one pass and read in a later one is saved,
# not recomputed), the passes that load it from there.
OP, DEST, A0, A1, A2, TENSOR_RESULT, FILL, AVAIL, NEED, SAVE, LOAD = range(11)
CODE_COLUMNS = LOAD + 1
# Columns of the per-program table: first and end row of its code, registers, output registers
# (update, m, v; -1: the slot is dead, the input passes through), first and end row of its
# constants, passes over the row (1 + the reductions on the outputs' longest chain), saved rows.
C_START, C_END, N_REGS, OUT_U, OUT_M, OUT_V, K_START, K_END, N_PASSES, N_SAVED = range(10)
PROG_COLUMNS = N_SAVED + 1


# --- scalar (float64) semantics: the torch interpreter's float64 ops --------------------------------

@njit(**_JIT)
def _nmax(a, b):
    """torch.maximum: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


@njit(**_JIT)
def _nmin(a, b):
    if a != a or b != b:
        return a + b
    return a if a < b else b


@njit(**_JIT)
def _sgn(v):
    """torch.sign (NaN -> 0)."""
    return 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)


@njit(inline="always", **_JIT)
def _pow64(a, b):
    """pow with C99's rules, as exp(b log|a|) in float64 (for float32 results: its float64
    rounding error is far below float32's).  Written as selects, which LLVM vectorizes."""
    r = exp1(b * log1(abs(a)))
    fb = math.floor(b)
    hb = b * 0.5
    finite = abs(b) < np.inf
    odd = fb == b and math.floor(hb) != hb  # (b * 0.5 is exact; inf is even, NaN neither)
    if math.copysign(1.0, a) < 0.0:  # (-0.0 included: pow(-0.0, -1) is -inf)
        r = -r if odd else r
        # a negative finite base, a non-integer finite exponent (pow(-inf, 0.5) is inf, pow(-0.0, 0.5) 0)
        r = np.nan if (fb != b and finite and a < 0.0 and a > -np.inf) else r
        r = 1.0 if (not finite and abs(a) == 1.0) else r
    r = 1.0 if (b == 0.0 or a == 1.0) else r
    return np.nan if (b != b and a != 1.0) else r


@njit(inline="always", **_JIT)
def _asinh64(x):
    """asinh in float64 for a float32 result: log(|x| + sqrt(x^2 + 1)) with x's sign (x^2 cannot
    overflow: |x| <= 3.4e38), x - x^3/6 below 1e-5 (where the log loses relative accuracy).
    Selects only, so LLVM vectorizes it (probe_math's bit-exact one is ~4x slower here)."""
    a = abs(x)
    r = log1(a + np.sqrt(a * a + 1.0))
    r = a - a * a * a / 6.0 if a < 1e-5 else r
    return math.copysign(r, x) if x == x else x


@njit(inline="always", **_JIT)
def _atanh64(x):
    """atanh in float64 for a float32 result: 0.5 log((1 + x) / (1 - x)) (inf at 1, -inf at -1,
    NaN beyond: log of a negative), x + x^3/3 below 1e-5."""
    r = 0.5 * log1((1.0 + x) / (1.0 - x))
    return x + x * x * x / 3.0 if abs(x) < 1e-5 else r


@njit(**_JIT)
def _scalar(op, a, b, c):
    """One scalar (float64) instruction."""
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == TRUEDIV:
        return a / b
    if op == POW:
        return a ** b
    if op == NEG:
        return -a
    if op == ABS:
        return abs(a)
    if op == SIGN:
        return _sgn(a)
    if op == SQRT:
        return np.sqrt(a)
    if op == SQUARE:
        return a * a
    if op == MIN:
        return _nmin(a, b)
    if op == MAX:
        return _nmax(a, b)
    if op == DIV:
        if abs(b) < EPS:
            b = -EPS if b < 0.0 else EPS
        return a / b
    if op == INTERP:
        return (1.0 - c) * a + c * b
    if op == CLIP:
        return _nmin(_nmax(a, b), c)
    if op == PLOG:
        return math.log(_nmax(abs(a), EPS)) if a == a else a
    if op == EXP:
        return math.exp(a)
    if op == LOG:
        return math.log(a) if a > 0.0 else (-np.inf if a == 0.0 else np.nan)
    if op == SIN:
        return math.sin(a) if math.isfinite(a) else np.nan
    if op == COS:
        return math.cos(a) if math.isfinite(a) else np.nan
    if op == TAN:
        return math.tan(a) if math.isfinite(a) else np.nan
    if op == ARCSIN:
        return math.asin(a) if abs(a) <= 1.0 else np.nan
    if op == ARCCOS:
        return math.acos(a) if abs(a) <= 1.0 else np.nan
    if op == ARCTAN:
        return math.atan(a)
    if op == SINH:
        return math.sinh(a) if abs(a) < 710.5 or a != a else math.copysign(np.inf, a)
    if op == COSH:
        return math.cosh(a) if abs(a) < 710.5 or a != a else np.inf
    if op == TANH:
        return math.tanh(a)
    if op == ARCSINH:
        return math.asinh(a)
    if op == ARCTANH:
        if abs(a) < 1.0 or a != a:
            return math.atanh(a)
        return math.copysign(np.inf, a) if abs(a) == 1.0 else np.nan
    return np.nan


# --- tensor (float32) loops: one small loop per op, which LLVM vectorizes ---------------------------
# (written out, not made by a factory: numba's disk cache keys a function by its source)

@njit(**_JIT)
def _t_unary(op, out, x, n):
    if op == NEG:
        for i in range(n):
            out[i] = -x[i]
    elif op == ABS:
        for i in range(n):
            out[i] = abs(x[i])
    elif op == SIGN:
        for i in range(n):
            v = x[i]
            out[i] = _F1 if v > _F0 else (-_F1 if v < _F0 else _F0)
    elif op == SQRT:
        for i in range(n):
            out[i] = np.sqrt(x[i])
    elif op == SQUARE:
        for i in range(n):
            out[i] = x[i] * x[i]
    elif op == EXP:
        for i in range(n):
            out[i] = np.float32(exp1(np.float64(x[i])))
    elif op == LOG:
        for i in range(n):
            out[i] = np.float32(log1(np.float64(x[i])))
    elif op == PLOG:
        for i in range(n):
            a = abs(x[i])
            out[i] = np.float32(log1(np.float64(a if (a != a or a > _EPS32) else _EPS32)))
    elif op == SIN:
        for i in range(n):
            out[i] = np.float32(sin1(np.float64(x[i])))
    elif op == COS:
        for i in range(n):
            out[i] = np.float32(cos1(np.float64(x[i])))
    elif op == TAN:
        for i in range(n):
            out[i] = np.float32(tan1(np.float64(x[i])))
    elif op == ARCSIN:
        for i in range(n):
            out[i] = np.float32(arcsin1(np.float64(x[i])))
    elif op == ARCCOS:
        for i in range(n):
            out[i] = np.float32(arccos1(np.float64(x[i])))
    elif op == ARCTAN:
        for i in range(n):
            out[i] = np.float32(arctan1(np.float64(x[i])))
    elif op == SINH:
        for i in range(n):
            out[i] = np.float32(sinh1(np.float64(x[i])))
    elif op == COSH:
        for i in range(n):
            out[i] = np.float32(cosh1(np.float64(x[i])))
    elif op == TANH:
        for i in range(n):
            out[i] = np.float32(tanh1(np.float64(x[i])))
    elif op == ARCSINH:
        for i in range(n):
            out[i] = np.float32(_asinh64(np.float64(x[i])))
    elif op == ARCTANH:
        for i in range(n):
            out[i] = np.float32(_atanh64(np.float64(x[i])))


@njit(**_JIT)
def _t_binary(op, out, x, y, n):
    if op == ADD:
        for i in range(n):
            out[i] = x[i] + y[i]
    elif op == SUB:
        for i in range(n):
            out[i] = x[i] - y[i]
    elif op == MUL:
        for i in range(n):
            out[i] = x[i] * y[i]
    elif op == TRUEDIV:
        for i in range(n):
            out[i] = x[i] / y[i]
    elif op == POW:
        for i in range(n):
            out[i] = np.float32(_pow64(np.float64(x[i]), np.float64(y[i])))
    elif op == MIN:
        for i in range(n):
            a, b = x[i], y[i]
            out[i] = a + b if (a != a or b != b) else (a if a < b else b)
    elif op == MAX:
        for i in range(n):
            a, b = x[i], y[i]
            out[i] = a + b if (a != a or b != b) else (a if a > b else b)
    elif op == DIV:
        for i in range(n):
            b = y[i]
            if abs(b) < _EPS32:
                b = -_EPS32 if b < _F0 else _EPS32
            out[i] = x[i] / b


@njit(**_JIT)
def _t_pow_sbase(out, a, y, n):
    """a ** y[i] for a scalar base a (float32): one exp per element, exp(y log a), when a is
    finite, positive and not 1 (a search's ``0.079 ** w``: 249 of 256 tensor pows of a long
    search's programs); C99's rules otherwise."""
    b = np.float64(a)
    if b > 0.0 and b < np.inf and b != 1.0:
        la = log1(b)
        for i in range(n):
            out[i] = np.float32(exp1(np.float64(y[i]) * la))
    else:
        for i in range(n):
            out[i] = np.float32(_pow64(b, np.float64(y[i])))


@njit(**_JIT)
def _t_ternary(op, out, x, y, z, n):
    if op == INTERP:
        for i in range(n):
            a = z[i]
            out[i] = (_F1 - a) * x[i] + a * y[i]
    elif op == CLIP:
        for i in range(n):
            v, lo, hi = x[i], y[i], z[i]
            v = v + lo if (v != v or lo != lo) else (v if v > lo else lo)
            out[i] = v + hi if (v != v or hi != hi) else (v if v < hi else hi)


@njit(**_JIT)
def _sumsq(x, y, n):
    """sum of float64(x[i] * y[i]) (torch: the float32 products, summed), with 8 interleaved
    float64 accumulators: a fixed order (the same for any tile size that is a multiple of 8, and
    on any thread count), and 8 independent additions per round instead of one serial chain."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    end = n - n % 8
    for i in range(0, end, 8):
        a0 += np.float64(x[i] * y[i])
        a1 += np.float64(x[i + 1] * y[i + 1])
        a2 += np.float64(x[i + 2] * y[i + 2])
        a3 += np.float64(x[i + 3] * y[i + 3])
        a4 += np.float64(x[i + 4] * y[i + 4])
        a5 += np.float64(x[i + 5] * y[i + 5])
        a6 += np.float64(x[i + 6] * y[i + 6])
        a7 += np.float64(x[i + 7] * y[i + 7])
    s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for i in range(end, n):
        s += np.float64(x[i] * y[i])
    return s


@njit(**_JIT)
def _copy(dst, src, n):
    """dst[:n] = src[:n] as an explicit loop over views: numba's slice assignment is a generic
    strided copy, and an index ``s0 + i`` (not provably non-negative) keeps the wraparound check
    that stops LLVM from vectorizing (measured ~0.3 ns per element against ~0.03 here)."""
    for i in range(n):
        dst[i] = src[i]


@njit(**_JIT)
def _fill32(dst, val):
    for i in range(dst.shape[0]):
        dst[i] = val


@njit(**_JIT)
def _scale(out, x, f, n):
    for i in range(n):
        out[i] = x[i] * f


@njit(**_JIT)
def _program_step(code, c0, c1, consts, k0, k1, n_regs, outs, n_passes, n_saved, row_w, row_g, row_m, row_v,
                  lr, t, out_u, out_m, out_v, N):
    """Every instruction of one program on its row, tile by tile (see the module docstring).

    Whole-model reductions: pass k runs, tile by tile, the tensor instructions that pass k needs
    (``code[j, NEED]``: those the reductions accumulated in pass k read, and in the last pass
    those the outputs read) and accumulates the partial sums of those reductions (their inputs
    are available in pass k: ``code[j, AVAIL]`` counts the reductions on an instruction's
    longest dependency chain); they are finished after the pass.  A tensor value a later pass
    needs again is saved (a whole row, written once) when computed and loaded there, not
    recomputed with its ancestors (a chain of transcendentals before a ``global_norm`` would
    otherwise run twice); the rest of a pass's work stays in the tiles
    (recomputing a tile costs less than keeping whole rows, which leave the cache: 19,462 floats
    a register on ``mlp_wide``).  The outputs are written in the last pass."""
    tile = min(N, TILE)
    R = np.empty((n_regs, tile), dtype=np.float32)
    Rs = np.zeros(n_regs)
    acc = np.zeros((3, n_regs))
    S = np.empty((n_saved, N), dtype=np.float32)
    Rs[4] = lr
    Rs[5] = t
    for k in range(k0, k1):
        Rs[int(consts[k, 0])] = consts[k, 1]
    o_u, o_m, o_v = outs[0], outs[1], outs[2]
    _fill32(R[4], np.float32(lr))
    _fill32(R[5], np.float32(t))
    for k in range(k0, k1):  # constant rows that tensor ops read: filled once, kept (registers are written once)
        if consts[k, 2] != 0.0:
            _fill32(R[int(consts[k, 0])], np.float32(consts[k, 1]))
    for ps in range(n_passes):
        for s0 in range(0, N, tile):
            n = min(tile, N - s0)
            _copy(R[0], row_w[s0:s0 + n], n)
            _copy(R[1], row_g[s0:s0 + n], n)
            _copy(R[2], row_m[s0:s0 + n], n)
            _copy(R[3], row_v[s0:s0 + n], n)
            for j in range(c0, c1):
                op, av = code[j, OP], code[j, AVAIL]
                d = code[j, DEST]
                a0, a1, a2 = code[j, A0], code[j, A1], code[j, A2]
                red = DOT <= op <= CLIPNORM
                if not red and not code[j, TENSOR_RESULT]:  # scalar: once, in the pass it becomes available
                    if s0 == 0 and av == ps:
                        Rs[d] = _scalar(op, Rs[a0], Rs[a1] if a1 >= 0 else 0.0, Rs[a2] if a2 >= 0 else 0.0)
                        if code[j, FILL]:
                            _fill32(R[d], np.float32(Rs[d]))
                    continue
                if (code[j, LOAD] >> ps) & 1:  # computed in an earlier pass: its saved tile
                    _copy(R[d], S[code[j, SAVE]][s0:s0 + n], n)
                    continue
                if not (code[j, NEED] >> ps) & 1:  # not needed in this pass
                    continue
                if red:  # whole-model reductions
                    if av - 1 == ps:  # accumulating
                        if op == DOT:
                            acc[0, d] += _sumsq(R[a0], R[a1], n)
                        elif op == COSSIM:
                            acc[0, d] += _sumsq(R[a0], R[a1], n)
                            acc[1, d] += _sumsq(R[a0], R[a0], n)
                            acc[2, d] += _sumsq(R[a1], R[a1], n)
                        else:
                            acc[0, d] += _sumsq(R[a0], R[a0], n)
                    elif op == CLIPNORM:  # finished: x * its factor
                        _scale(R[d], R[a0], np.float32(Rs[d]), n)
                elif op == POW_SBASE:
                    _t_pow_sbase(R[d], np.float32(Rs[a0]), R[a1], n)
                elif a1 < 0:
                    _t_unary(op, R[d], R[a0], n)
                elif a2 < 0:
                    _t_binary(op, R[d], R[a0], R[a1], n)
                else:
                    _t_ternary(op, R[d], R[a0], R[a1], R[a2], n)
                if code[j, SAVE] >= 0 and not red:
                    _copy(S[code[j, SAVE]][s0:s0 + n], R[d], n)
            if ps == n_passes - 1:
                _copy(out_u[s0:s0 + n], R[o_u], n)
                _copy(out_m[s0:s0 + n], R[o_m if o_m >= 0 else 2], n)
                _copy(out_v[s0:s0 + n], R[o_v if o_v >= 0 else 3], n)
        for j in range(c0, c1):  # finish the reductions accumulated in this pass (torch's float32 rounding)
            op, d = code[j, OP], code[j, DEST]
            if not DOT <= op <= CLIPNORM or code[j, AVAIL] - 1 != ps:
                continue
            if op == DOT:
                Rs[d] = np.float64(np.float32(acc[0, d]))
            elif op == NORM:
                Rs[d] = np.float64(np.float32(np.sqrt(acc[0, d])))
            elif op == COSSIM:
                den = np.float32(np.sqrt(acc[1, d])) * np.float32(np.sqrt(acc[2, d]))
                if not den >= _COS_EPS32 and den == den:
                    den = _COS_EPS32
                Rs[d] = np.float64(np.float32(acc[0, d]) / den)
            else:  # CLIPNORM: the factor min(c / norm(x), 1) in float32 (NaN propagates)
                f = np.float32(Rs[code[j, A1]]) / np.float32(np.sqrt(acc[0, d]))
                Rs[d] = np.float64(_F1 if f > _F1 else f)
            if op != CLIPNORM and code[j, FILL]:
                _fill32(R[d], np.float32(Rs[d]))


@njit(**_JIT)
def _row(code, progs, consts, w, g, m, v, lrs, ts, out_u, out_m, out_v, p):
    """One step of program p on row p (the per-row work of :func:`step_rows` and its parallel twin)."""
    pr = progs[p]
    _program_step(code, pr[C_START], pr[C_END], consts, pr[K_START], pr[K_END], pr[N_REGS], pr[OUT_U:OUT_V + 1],
                  pr[N_PASSES], pr[N_SAVED], w[p], g[p], m[p], v[p], lrs[p], ts[p], out_u[p], out_m[p], out_v[p],
                  w.shape[1])


@njit(**_JIT)
def step_rows(code, progs, consts, w, g, m, v, lrs, ts, out_u, out_m, out_v, rows):
    """One step of programs ``rows``: row p of w, g, m, v (float32, (P, N)) through program p
    (``progs`` row p: see the C_* columns), into row p of out_u, out_m, out_v.  ``lrs``, ``ts``:
    (P,) float64."""
    for k in range(rows.shape[0]):
        _row(code, progs, consts, w, g, m, v, lrs, ts, out_u, out_m, out_v, rows[k])


@njit(parallel=True, **_JIT)
def _step_parallel(code, progs, consts, w, g, m, v, lrs, ts, out_u, out_m, out_v, rows):
    for k in prange(rows.shape[0]):
        _row(code, progs, consts, w, g, m, v, lrs, ts, out_u, out_m, out_v, rows[k])


def step_parallel(threads, *args):
    """:func:`step_rows` over numba's threads (``prange``; ``threads`` of them).  Measured against
    the same kernel on Python threads (it releases the GIL) on a long search's programs, two
    threads: 4.75 vs 6.17 s per generation, so numba's own pool; a one-thread evaluation (the
    default) never starts it."""
    old = get_num_threads()
    set_num_threads(threads)
    try:
        _step_parallel(*args)
    finally:
        set_num_threads(old)
