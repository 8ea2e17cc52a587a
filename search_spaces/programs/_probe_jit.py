"""The whole functional probe of one optimizer program as one compiled (numba) call.

:func:`search_spaces.programs.interp.probe` runs a program as numpy passes: one numpy call per
live instruction per step (~100 calls for a 25-statement program), each a few microseconds of
overhead on a 9 x 128 array.  Here the same program is lowered once to an int64 instruction
table (:func:`lower`) and :func:`run_probe` runs every lane, step and instruction in one call.

The values are the numpy interpreter's, bit for bit (tests/test_probe_jit.py checks random
programs and every op): the kernel performs per element the IEEE operations the numpy version
performs, in the same order; numba compiles without ``fastmath`` (no FMA contraction, no
reassociation) and with numpy's error model.  The places where numpy's behaviour is not an
elementwise formula are reproduced exactly:

* whole-model reductions (``dot``, ``global_norm``, ...) sum with numpy's pairwise summation
  (8 interleaved accumulators for a row of <= 128 elements, added to the identity 0.0);
* ``np.maximum``/``np.minimum`` return the second operand on ties (``max(-0.0, 0.0)`` is
  ``0.0``, ``max(0.0, -0.0)`` is ``-0.0``) and the NaN operand when one is NaN;
* ``probe_math.power``'s array-wide paths (exact repeated multiplication for a constant
  exponent in {±1..4, 0.5}; ``exp(b log|a|)`` with C99 sign rules otherwise) are decided here
  from what is known when lowering: whether the exponent is a constant;
* instructions whose arguments are all constants are evaluated while lowering, by the numpy
  interpreter's own functions.

Transcendentals are :mod:`automl._probe_math_jit`'s scalar kernels (bit-identical to
:mod:`automl.probe_math`), inlined into one small loop per op, which LLVM vectorizes where
the kernel is branch-free (sin 5.4 -> 1.0 ns per element).  All lanes run at once: a tensor
register is a row of L x N values; a scalar register (lr, t, reductions, anything computed only
from them) is computed once per lane and copied across its lane's elements, so tensor
instructions read every argument with stride 1.

numba's disk cache keys a function by this file only, not by the functions it inlines:
:data:`COMPILED_AGAINST` must name the digest of automl/_probe_math_jit.py (a test checks), so a
change there changes this file and with it the cache.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from automl._probe_math_jit import (arccos1, arcsin1, arctan1, arctanh1, arcsinh1, cos1, cosh1, exp1, log1,
                                    sin1, sinh1, tan1, tanh1)

from .ops import COS_EPS, EPS

_JIT = dict(cache=True, error_model="numpy", nogil=True)

#: sha256 (first 16 hex digits) of automl/_probe_math_jit.py, whose kernels are inlined here: numba's
#: cache would not see a change there, so a change there must change this line (a test checks).
COMPILED_AGAINST = "90db2e4805ea94b5"

# Op codes of the lowered table (internal; independent of ops.OPCODES so that the table's order
# can change without touching the kernel).
ADD, SUB, MUL, TRUEDIV, NEG, ABS, SIGN, SQRT, SQUARE, MIN, MAX, DIV, INTERP, CLIP = range(14)
EXP, LOG, PLOG, SIN, COS, TAN, ARCSIN, ARCCOS, ARCTAN, SINH, COSH, TANH, ARCSINH, ARCTANH = range(14, 28)
POW, POW_HALF, POW_INT, POW_CONST = 28, 29, 30, 31
DOT, NORM, COSSIM, CLIPNORM = 32, 33, 34, 35  # reductions last (run_probe tests op >= DOT)

CODES = {"add": ADD, "sub": SUB, "mul": MUL, "truediv": TRUEDIV, "neg": NEG, "abs": ABS, "sign": SIGN,
         "sqrt": SQRT, "square": SQUARE, "min": MIN, "max": MAX, "div": DIV, "interp": INTERP, "clip": CLIP,
         "exp": EXP, "log": LOG, "plog": PLOG, "sin": SIN, "cos": COS, "tan": TAN, "arcsin": ARCSIN,
         "arccos": ARCCOS, "arctan": ARCTAN, "sinh": SINH, "cosh": COSH, "tanh": TANH, "arcsinh": ARCSINH,
         "arctanh": ARCTANH, "pow": POW, "dot": DOT, "global_norm": NORM, "cosine_sim": COSSIM,
         "clip_by_global_norm": CLIPNORM}
#: Constant exponents that probe_math.power computes by exact repeated multiplication (or sqrt).
EASY_EXPONENTS = {0.5: (POW_HALF, 0), 1.0: (POW_INT, 1), 2.0: (POW_INT, 2), 3.0: (POW_INT, 3),
                  4.0: (POW_INT, 4), -1.0: (POW_INT, -1), -2.0: (POW_INT, -2), -3.0: (POW_INT, -3),
                  -4.0: (POW_INT, -4)}
#: Longest row the pairwise sum below reproduces (numpy's PW_BLOCKSIZE).
MAX_ROW = 128


@njit(**_JIT)
def _max(a, b):
    """np.maximum on one pair: the NaN operand if either is NaN, the second operand on ties."""
    if a != a or a > b:
        return a
    return b


@njit(**_JIT)
def _min(a, b):
    """np.minimum on one pair (see :func:`_max`)."""
    if a != a or a < b:
        return a
    return b


@njit(**_JIT)
def _pairwise(x, n):
    """numpy's pairwise sum of x[:n] for n <= 128, added to the reduction's identity 0.0."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += x[i]
        return 0.0 + res
    r0, r1, r2, r3 = x[0], x[1], x[2], x[3]
    r4, r5, r6, r7 = x[4], x[5], x[6], x[7]
    i = 8
    end = n - n % 8
    while i < end:
        r0 += x[i]
        r1 += x[i + 1]
        r2 += x[i + 2]
        r3 += x[i + 3]
        r4 += x[i + 4]
        r5 += x[i + 5]
        r6 += x[i + 6]
        r7 += x[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[i]
        i += 1
    return 0.0 + res


@njit(**_JIT)
def _pow(a, b):
    """probe_math.power's general path for one element: exp(b log|a|) with C99's rules."""
    r = exp1(b * log1(abs(a)))
    if a < 0.0:
        integer = math.floor(b) == b
        if integer and math.isfinite(b) and math.floor(b * 0.5) != b * 0.5:  # odd (b * 0.5 is exact)
            r = -r
        if not integer and math.isfinite(b):
            r = np.nan
        if math.isinf(b) and abs(a) == 1.0:
            r = 1.0
    if b == 0.0 or a == 1.0:
        r = 1.0
    if b != b and a != 1.0:
        r = np.nan
    return r


@njit(**_JIT)
def _sign(v):
    """np.sign with NaN -> 0 (ops._np_sign): sign(+-0) = +0.0."""
    return 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)


@njit(**_JIT)
def _protect(y):
    if abs(y) < EPS:
        if y < 0.0:
            return -EPS
        return EPS
    return y


# One small function per op (written out: numba's disk cache keys a function by its source, so
# they are not made by a factory).  Small loops are what LLVM vectorizes: inside one function
# holding every op, the inlined transcendentals ran 2-5x slower.
@njit(**_JIT)
def _loop_sqrt(out, x, n):
    for i in range(n):
        out[i] = np.sqrt(x[i])

@njit(**_JIT)
def _loop_neg(out, x, n):
    for i in range(n):
        out[i] = -x[i]

@njit(**_JIT)
def _loop_abs(out, x, n):
    for i in range(n):
        out[i] = abs(x[i])

@njit(**_JIT)
def _loop_square(out, x, n):
    for i in range(n):
        out[i] = x[i] * x[i]

@njit(**_JIT)
def _loop_sign(out, x, n):
    for i in range(n):
        out[i] = _sign(x[i])

@njit(**_JIT)
def _loop_pow_half(out, x, n):
    for i in range(n):
        out[i] = np.nan if x[i] < 0.0 else np.sqrt(abs(x[i]))

@njit(**_JIT)
def _loop_exp(out, x, n):
    for i in range(n):
        out[i] = exp1(x[i])

@njit(**_JIT)
def _loop_log(out, x, n):
    for i in range(n):
        out[i] = log1(x[i])

@njit(**_JIT)
def _loop_plog(out, x, n):
    for i in range(n):
        out[i] = log1(_max(abs(x[i]), EPS))

@njit(**_JIT)
def _loop_sin(out, x, n):
    for i in range(n):
        out[i] = sin1(x[i])

@njit(**_JIT)
def _loop_cos(out, x, n):
    for i in range(n):
        out[i] = cos1(x[i])

@njit(**_JIT)
def _loop_tan(out, x, n):
    for i in range(n):
        out[i] = tan1(x[i])

@njit(**_JIT)
def _loop_arcsin(out, x, n):
    for i in range(n):
        out[i] = arcsin1(x[i])

@njit(**_JIT)
def _loop_arccos(out, x, n):
    for i in range(n):
        out[i] = arccos1(x[i])

@njit(**_JIT)
def _loop_arctan(out, x, n):
    for i in range(n):
        out[i] = arctan1(x[i])

@njit(**_JIT)
def _loop_sinh(out, x, n):
    for i in range(n):
        out[i] = sinh1(x[i])

@njit(**_JIT)
def _loop_cosh(out, x, n):
    for i in range(n):
        out[i] = cosh1(x[i])

@njit(**_JIT)
def _loop_tanh(out, x, n):
    for i in range(n):
        out[i] = tanh1(x[i])

@njit(**_JIT)
def _loop_arcsinh(out, x, n):
    for i in range(n):
        out[i] = arcsinh1(x[i])

@njit(**_JIT)
def _loop_arctanh(out, x, n):
    for i in range(n):
        out[i] = arctanh1(x[i])

@njit(**_JIT)
def _loop_add(out, x, y, n):
    for i in range(n):
        out[i] = x[i] + y[i]

@njit(**_JIT)
def _loop_sub(out, x, y, n):
    for i in range(n):
        out[i] = x[i] - y[i]

@njit(**_JIT)
def _loop_mul(out, x, y, n):
    for i in range(n):
        out[i] = x[i] * y[i]

@njit(**_JIT)
def _loop_truediv(out, x, y, n):
    for i in range(n):
        out[i] = x[i] / y[i]

@njit(**_JIT)
def _loop_min(out, x, y, n):
    for i in range(n):
        out[i] = _min(x[i], y[i])

@njit(**_JIT)
def _loop_max(out, x, y, n):
    for i in range(n):
        out[i] = _max(x[i], y[i])

@njit(**_JIT)
def _loop_div(out, x, y, n):
    for i in range(n):
        out[i] = x[i] / _protect(y[i])

@njit(**_JIT)
def _loop_pow(out, x, y, n):
    for i in range(n):
        out[i] = _pow(x[i], y[i])

@njit(**_JIT)
def _loop_interp(out, x, y, z, n):
    for i in range(n):
        out[i] = (1.0 - z[i]) * x[i] + z[i] * y[i]

@njit(**_JIT)
def _loop_clip(out, x, y, z, n):
    for i in range(n):
        out[i] = _min(_max(x[i], y[i]), z[i])

@njit(**_JIT)
def _loop_pow_const(out, x, c, n):
    """x ** c, c a finite non-zero constant that is not an easy one: probe_math.power's
    constant-exponent path (its sign rules decided once)."""
    integer = math.floor(c) == c
    odd = integer and math.floor(c * 0.5) != c * 0.5  # c * 0.5 is exact
    for i in range(n):
        v = x[i]
        if v < 0.0 and not integer:
            out[i] = np.nan
        else:
            r = exp1(log1(abs(v)) * c)
            out[i] = -r if (odd and v < 0.0) else r


@njit(**_JIT)
def _loop_pow_int(out, x, k, n):
    """|x| ** |k| by exact repeated multiplication (k in +-1..4), reciprocal for k < 0, odd
    powers keep the sign: probe_math.power's easy exponents."""
    m = abs(k)
    for i in range(n):
        v = x[i]
        ax = abs(v)
        if m == 1:
            r = ax
        else:
            sq = ax * ax
            r = sq if m == 2 else (sq * ax if m == 3 else sq * sq)
        if k < 0:
            r = 1.0 / r
        if m % 2 == 1 and v < 0.0:
            r = -r
        out[i] = r


@njit(**_JIT)
def _elementwise(op, k, out, x, y, z, n):
    """One elementwise instruction: out[i] = op(x[i], y[i], z[i]) for i < n (``k``: POW_INT's
    exponent)."""
    if op == ADD:
        _loop_add(out, x, y, n)
    elif op == SUB:
        _loop_sub(out, x, y, n)
    elif op == MUL:
        _loop_mul(out, x, y, n)
    elif op == TRUEDIV:
        _loop_truediv(out, x, y, n)
    elif op == MIN:
        _loop_min(out, x, y, n)
    elif op == MAX:
        _loop_max(out, x, y, n)
    elif op == DIV:
        _loop_div(out, x, y, n)
    elif op == POW:
        _loop_pow(out, x, y, n)
    elif op == INTERP:
        _loop_interp(out, x, y, z, n)
    elif op == CLIP:
        _loop_clip(out, x, y, z, n)
    elif op == POW_CONST:
        _loop_pow_const(out, x, y[0], n)
    elif op == POW_INT:
        _loop_pow_int(out, x, k, n)
    elif op == SQRT:
        _loop_sqrt(out, x, n)
    elif op == NEG:
        _loop_neg(out, x, n)
    elif op == ABS:
        _loop_abs(out, x, n)
    elif op == SQUARE:
        _loop_square(out, x, n)
    elif op == SIGN:
        _loop_sign(out, x, n)
    elif op == POW_HALF:
        _loop_pow_half(out, x, n)
    elif op == EXP:
        _loop_exp(out, x, n)
    elif op == LOG:
        _loop_log(out, x, n)
    elif op == PLOG:
        _loop_plog(out, x, n)
    elif op == SIN:
        _loop_sin(out, x, n)
    elif op == COS:
        _loop_cos(out, x, n)
    elif op == TAN:
        _loop_tan(out, x, n)
    elif op == ARCSIN:
        _loop_arcsin(out, x, n)
    elif op == ARCCOS:
        _loop_arccos(out, x, n)
    elif op == ARCTAN:
        _loop_arctan(out, x, n)
    elif op == SINH:
        _loop_sinh(out, x, n)
    elif op == COSH:
        _loop_cosh(out, x, n)
    elif op == TANH:
        _loop_tanh(out, x, n)
    elif op == ARCSINH:
        _loop_arcsinh(out, x, n)
    elif op == ARCTANH:
        _loop_arctanh(out, x, n)


@njit(**_JIT)
def _reduction(op, out_t, out_s, x, y, ys, L, N, tmp):
    """A whole-model reduction per lane (rows of N): a scalar per lane into ``out_s`` or, for
    clip_by_global_norm, a tensor into ``out_t`` (``ys``: the per-lane scalar c)."""
    for lane in range(L):
        o = lane * N
        if op == DOT or op == COSSIM:
            for i in range(N):
                tmp[i] = x[o + i] * y[o + i]
            s = _pairwise(tmp, N)
            if op == COSSIM:
                for i in range(N):
                    tmp[i] = x[o + i] * x[o + i]
                nx = np.sqrt(_pairwise(tmp, N))
                for i in range(N):
                    tmp[i] = y[o + i] * y[o + i]
                ny = np.sqrt(_pairwise(tmp, N))
                s = s / _max(nx * ny, COS_EPS)
            out_s[lane] = s
        else:  # NORM, CLIPNORM
            for i in range(N):
                tmp[i] = x[o + i] * x[o + i]
            s = np.sqrt(_pairwise(tmp, N))
            if op == CLIPNORM:  # x * min(1, c / norm(x))
                f = _min(1.0, ys[lane] / s)
                for i in range(N):
                    out_t[o + i] = x[o + i] * f
            else:
                out_s[lane] = s


@njit(**_JIT)
def _fill(row, vals, L, N):
    """A scalar register's per-lane values across its lanes' elements."""
    for lane in range(L):
        v = vals[lane]
        o = lane * N
        for i in range(N):
            row[o + i] = v


@njit(**_JIT)
def run_probe(code, consts, w0, grads, lrs, ts, outputs, live_m, live_v, n_regs):
    """Updates (S, L, N) of the lowered program ``code`` (rows: op, dest, a0, a1, a2, tensor?)
    on the probe (w0 (L, N), grads (S, L, N), lrs and ts (S, L, 1)); ``consts`` rows are
    (register, value).  Registers 0..5 are w, g, m, v, lr, t (search_spaces.programs.ir).

    All lanes at once: a tensor register is a row of L * N values (lane after lane); a scalar
    register has its L values in ``Rs`` and, for the tensor instructions that read it, the
    same values repeated over each lane's N elements in ``R``."""
    S, L, N = grads.shape
    LN = L * N
    R = np.empty((n_regs, LN))
    Rs = np.empty((n_regs, L))
    tmp = np.empty(N)
    new_m = np.empty(LN)
    new_v = np.empty(LN)
    updates = np.empty((S, L, N))
    flat_u = updates.reshape(S, LN)
    for c in range(consts.shape[0]):
        r = int(consts[c, 0])
        for lane in range(L):
            Rs[r, lane] = consts[c, 1]
        for i in range(LN):
            R[r, i] = consts[c, 1]
    out_u, out_m, out_v = outputs[0], outputs[1], outputs[2]
    w = R[0]
    m = R[2]
    v = R[3]
    w[:] = w0.reshape(LN)
    m[:] = 0.0
    v[:] = 0.0
    for s in range(S):
        R[1, :] = grads[s].reshape(LN)
        for lane in range(L):
            Rs[4, lane] = lrs[s, lane, 0]
            Rs[5, lane] = ts[s, lane, 0]
        _fill(R[4], Rs[4], L, N)
        _fill(R[5], Rs[5], L, N)
        for k in range(code.shape[0]):
            op, d, a0, a1, a2, tensor = code[k, 0], code[k, 1], code[k, 2], code[k, 3], code[k, 4], code[k, 5]
            if op >= DOT:
                _reduction(op, R[d], Rs[d], R[a0], R[a1], Rs[a1], L, N, tmp)
                if op != CLIPNORM:
                    _fill(R[d], Rs[d], L, N)
            elif tensor:
                _elementwise(op, a1, R[d], R[a0], R[a1], R[a2], LN)
            else:
                _elementwise(op, a1, Rs[d], Rs[a0], Rs[a1], Rs[a2], L)
                _fill(R[d], Rs[d], L, N)
        u = R[out_u]
        fu = flat_u[s]
        for i in range(LN):
            fu[i] = u[i]
        if live_m:
            new_m[:] = R[out_m]
        if live_v:
            new_v[:] = R[out_v]
        if live_m:
            m[:] = new_m
        if live_v:
            v[:] = new_v
        for i in range(LN):
            w[i] = w[i] - fu[i]
    return updates
