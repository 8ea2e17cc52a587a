"""Compiled (numba) versions of :mod:`automl.probe_math`'s kernels, bit-identical to the numpy ones.

Each function here performs, per element, exactly the IEEE-754 operations the numpy version
performs on that element, in the same order, with the same tables and constants: numba compiles
without ``fastmath`` (so LLVM neither contracts ``a * b + c`` into an FMA nor reassociates) and
with ``error_model="numpy"`` (division by zero gives inf/nan, as in numpy).  Where the numpy
version picks a path for the whole array (a fast path when every value is in range, a wide one
otherwise), the wide path gives the fast path's values in range (tested in
tests/test_probe_math.py), so the per-element choice here gives the same bits.  Where numpy casts a
NaN or an out-of-range float to int64 (x86: ``0x8000000000000000``) and only selects with it, the
code here takes the same value explicitly (LLVM's cast would be undefined there).

Imported lazily by :mod:`automl.probe_math` on the first probe-math call (numba costs ~0.5 s to
import); compiled code is cached on disk (``cache=True``: beside this file, or numba's user cache
directory when the package directory is read-only).  tests/test_probe_math_jit.py checks every
kernel against the numpy version bit for bit.
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from automl import probe_math as pm

_JIT = dict(cache=True, error_model="numpy", nogil=True)
#: The per-element kernels are inlined (numba IR) into the loops that call them: LLVM then
#: vectorizes the branch-free ones (sin 5.4 -> 1.0 ns per element, sinh 5.7 -> 2.0, tanh 4.0 ->
#: 1.4, measured here on 4,608 values) with the same IEEE operations, so the same bits.
_INLINE = dict(_JIT, inline="always")


@intrinsic
def _f2i(typingctx, x):
    """The bits of a float64 as int64 (``ndarray.view`` on one value)."""
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))
        return types.int64(types.float64), codegen
    return None


@intrinsic
def _i2f(typingctx, x):
    """The float64 whose bits are an int64."""
    if isinstance(x, types.Integer) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(types.int64), codegen
    return None


_EXP_T, _EXP_LO, _LOG_C, _LOG_LOGC = (np.array(t) for t in pm._tables())
_EXP_BITS = pm._EXP_BITS
_EXP_N = pm._EXP_N
_EXP_SCALE = _EXP_N / pm._LN2
_LN2_N_HI = -pm._LN2_N_HI  # probe_math multiplies by the negated constant (exact)
_LN2_N_LO = pm._LN2_N_LO
_LN2_HI, _LN2_LO = pm._LN2_HI, pm._LN2_LO
_LN2_SUM = pm._LN2_HI + pm._LN2_LO
_LN2 = pm._LN2
_LOG_OFF = pm._LOG_OFF
_LOG_BITS = pm._LOG_BITS
_SUB_FIX = 60.0 * pm._LN2
_TWO60 = 2.0 ** 60
_TINY = 2.2250738585072014e-308
_HUGE = 1.7976931348623157e308
_SIXTH, _THIRD, _24TH = 1.0 / 6.0, 1.0 / 3.0, 1.0 / 24.0
_S1, _S2, _S3, _S4, _S5, _S6 = (float(v) for v in pm._SIN_P)
_C1, _C2, _C3, _C4, _C5, _C6 = (float(v) for v in pm._COS_P)
_ATAN = pm._ATAN_C.copy()
_P1_HI, _P1_LO = float(pm._P1_HI), float(pm._P1_LO)
_PIO2_D0, _PIO2_D1, _PIO2_D2 = pm._PIO2_D
_SPLIT = pm._SPLIT
_PIO2_1, _PIO2_2, _PIO2_3, _INV_PIO2 = pm._PIO2_1, pm._PIO2_2, pm._PIO2_3, pm._INV_PIO2
_PIO2, _PIO6, _SQRT3, _TAN_PI12 = pm._PIO2, pm._PIO6, pm._SQRT3, pm._TAN_PI12
_INT64_MIN = -(2 ** 63)


def fingerprint() -> str:
    """A digest of everything this module takes from probe_math (tables, coefficients, constants,
    VERSION).  numba freezes globals into the compiled code, and its disk cache is invalidated
    only when *this* file changes: :data:`COMPILED_AGAINST` below must be updated (which changes
    this file, so the cache) whenever probe_math's numbers change."""
    h = hashlib.sha256(str(pm.VERSION).encode())
    for t in (_EXP_T, _EXP_LO, _LOG_C, _LOG_LOGC, _ATAN, pm._SIN_P, pm._COS_P):
        h.update(np.ascontiguousarray(t, dtype=np.float64).tobytes())
    h.update(np.array([_EXP_SCALE, _LN2_N_HI, _LN2_N_LO, _LN2_HI, _LN2_LO, _LN2, _P1_HI, _P1_LO, _PIO2_D0,
                       _PIO2_D1, _PIO2_D2, _SPLIT, _PIO2_1, _PIO2_2, _PIO2_3, _INV_PIO2, _PIO2, _PIO6, _SQRT3,
                       _TAN_PI12, _LOG_OFF, _LOG_BITS, _EXP_BITS], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


#: :func:`fingerprint` of the probe_math this file was written for (tests/test_probe_math_jit.py).
COMPILED_AGAINST = "4b7d302db10d49bd"


@njit(**_INLINE)
def _to_i64(k):
    """numpy's float -> int64 cast on x86 (``0x8000000000000000`` for NaN and out of range)."""
    if -9.223372036854775808e18 <= k < 9.223372036854775808e18:
        return np.int64(k)
    return np.int64(_INT64_MIN)


@njit(**_INLINE)
def _exp_reduced(x, k):
    r = k * _LN2_N_HI
    r += x
    t = k * _LN2_N_LO
    r -= t
    ki = np.int64(k)
    q = r * _SIXTH
    q += 0.5
    q *= r
    q += 1.0
    q *= r
    tj = _EXP_T[ki & (_EXP_N - 1)]
    q *= tj
    q += tj
    return q, ki


@njit(**_INLINE)
def exp1(a):
    if a != a:
        return a + 0.0
    if a >= -708.0 and a <= 709.0:
        k = np.rint(a * _EXP_SCALE)
        q, ki = _exp_reduced(a, k)
        ki &= -_EXP_N
        ki <<= 52 - _EXP_BITS
        return _i2f(_f2i(q) + ki)
    x = min(a, 710.0)
    x = max(x, -746.0)
    k = np.rint(x * _EXP_SCALE)
    q, ki = _exp_reduced(x, k)
    m = ki >> _EXP_BITS
    m1 = m >> 1
    q *= _i2f((m1 + 1023) << 52)
    q *= _i2f((m - m1 + 1023) << 52)
    return q


@njit(**_INLINE)
def expm1_1(a):
    if a != a:
        return a + 0.0
    if a > 709.0:
        return exp1(a)
    if a < -708.0:
        return -1.0
    k = np.rint(a * _EXP_SCALE)
    r = k * _LN2_N_HI
    r += a
    t = k * _LN2_N_LO
    r -= t
    ki = np.int64(k)
    q = r * _24TH
    q += _SIXTH
    q *= r
    q += 0.5
    q *= r
    q += 1.0
    q *= r
    j = ki & (_EXP_N - 1)
    th = _EXP_T[j]
    ki &= -_EXP_N
    ki <<= 52 - _EXP_BITS
    ki += 1023 << 52
    scale = _i2f(ki)
    q *= th
    q += _EXP_LO[j]
    q *= scale
    th *= scale
    th -= 1.0
    th += q
    return th


@njit(**_INLINE)
def _log_fast(a):
    ix = _f2i(a)
    tmp = ix - _LOG_OFF
    i = tmp >> (52 - _LOG_BITS)
    i &= (1 << _LOG_BITS) - 1
    k = tmp >> 52
    z = _i2f(ix - (k << 52))
    cj = _LOG_C[i]
    r = z - cj
    r /= cj
    p = r * 0.2
    p -= 0.25
    p *= r
    p += _THIRD
    p *= r
    p -= 0.5
    p *= r
    p *= r
    p += r
    p += _LOG_LOGC[i]
    kf = np.float64(k)
    kf *= _LN2
    p += kf
    p += a * 0.0
    return p


@njit(**_INLINE)
def log1(a):
    if a >= _TINY and a <= _HUGE:
        return _log_fast(a)
    if a != a:
        return a + 0.0
    if a == 0.0:
        return -np.inf
    if a < 0.0:
        return np.nan
    if a == np.inf:
        return np.inf
    return _log_fast(a * _TWO60) - _SUB_FIX  # positive subnormal


@njit(**_INLINE)
def log1p1(a):
    if a == np.inf:
        return np.inf
    if a == -1.0:
        return -np.inf
    u = 1.0 + a
    res = log1(u)
    res -= ((u - 1.0) - a) / u
    return res


@njit(**_INLINE)
def _sincos(a):
    """(sin r, cos r, quadrant, ok): ok is False where r is NaN (the result is NaN)."""
    q = np.rint(a * _INV_PIO2)
    if abs(q) < 524288.0:
        r = ((a - q * _PIO2_1) - q * _PIO2_2) - q * _PIO2_3
    else:
        c = q * _SPLIT
        qh = c - (c - q)
        ql = q - qh
        prod = q * _PIO2_D0
        err = (((qh * _P1_HI - prod) + qh * _P1_LO) + ql * _P1_HI) + ql * _P1_LO
        r = (((a - prod) - err) - q * _PIO2_D1) - q * _PIO2_D2
    z = r * r
    # the polynomials written out (probe_math._horner's operations in its order): a shared Horner
    # loop over a table argument is not unrolled by LLVM (arctan 2.5 -> 8.8 us, arcsin 3.2 -> 13.9 us
    # per 9 x 128 call)
    s = z * _S6
    s += _S5
    s *= z
    s += _S4
    s *= z
    s += _S3
    s *= z
    s += _S2
    s *= z
    s += _S1
    s *= z
    s *= r
    s += r
    c = z * _C6
    c += _C5
    c *= z
    c += _C4
    c *= z
    c += _C3
    c *= z
    c += _C2
    c *= z
    c += _C1
    c *= z
    c -= 0.5
    c *= z
    c += 1.0
    return s, c, _to_i64(q)


@njit(**_INLINE)
def sin1(a):
    s, c, qi = _sincos(a)
    res = c if qi & 1 else s
    return -res if qi & 2 else res


@njit(**_INLINE)
def cos1(a):
    s, c, qi = _sincos(a)
    res = s if qi & 1 else c
    return -res if (qi + 1) & 2 else res


@njit(**_INLINE)
def tan1(a):
    s, c, qi = _sincos(a)
    return -c / s if qi & 1 else s / c


@njit(**_INLINE)
def arctan1(a):
    y = abs(a)
    big = y > 1.0
    if big:
        y = 1.0 / y
    mid = y > _TAN_PI12
    if mid:
        y = (y * _SQRT3 - 1.0) / (y + _SQRT3)
    z = y * y
    acc = z * _ATAN[13]
    acc += _ATAN[12]
    for j in range(11, -1, -1):
        acc *= z
        acc += _ATAN[j]
    r = acc * y
    if mid:
        r = r + _PIO6
    if big:
        r = _PIO2 - r
    return np.copysign(r, a)


@njit(**_INLINE)
def arcsin1(a):
    return arctan1(a / np.sqrt((1.0 - a) * (1.0 + a)))


@njit(**_INLINE)
def arccos1(a):
    return 2.0 * arctan1(np.sqrt((1.0 - a) / (1.0 + a)))


@njit(**_INLINE)
def sinh1(a):
    y = abs(a)
    if y < 709.0:
        e = expm1_1(y)
        r = e + 1.0
        r = e / r
        r += e
        r *= 0.5
    else:
        r = exp1(y - _LN2_HI - _LN2_LO)
    return np.copysign(r, a)


@njit(**_INLINE)
def cosh1(a):
    y = abs(a)
    if y < 709.0:
        e = exp1(y)
        return 0.5 * e + 0.5 / e
    return exp1(y - _LN2_HI - _LN2_LO)


@njit(**_INLINE)
def tanh1(a):
    y = abs(a)
    if y != y:
        return y
    y = min(y, 40.0)
    e = expm1_1(2.0 * y)
    return np.copysign(e / (e + 2.0), a)


@njit(**_INLINE)
def arcsinh1(a):
    y = abs(a)
    if y > 1e150:
        r = log1(y) + _LN2_SUM
    else:
        yy = y * y
        r = log1p1(y + yy / (1.0 + np.sqrt(1.0 + yy)))
    return np.copysign(r, a)


@njit(**_INLINE)
def arctanh1(a):
    y = abs(a)
    return np.copysign(0.5 * log1p1(2.0 * y / (1.0 - y)), a)


# One loop per function, written out: numba's disk cache keys a function by its source, so the
# kernels are not made by a factory.

@njit(**_JIT)
def exp_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = exp1(a[i])
    return out


@njit(**_JIT)
def expm1_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = expm1_1(a[i])
    return out


@njit(**_JIT)
def log_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = log1(a[i])
    return out


@njit(**_JIT)
def log1p_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = log1p1(a[i])
    return out


@njit(**_JIT)
def sin_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = sin1(a[i])
    return out


@njit(**_JIT)
def cos_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = cos1(a[i])
    return out


@njit(**_JIT)
def tan_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = tan1(a[i])
    return out


@njit(**_JIT)
def arctan_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = arctan1(a[i])
    return out


@njit(**_JIT)
def arcsin_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = arcsin1(a[i])
    return out


@njit(**_JIT)
def arccos_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = arccos1(a[i])
    return out


@njit(**_JIT)
def sinh_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = sinh1(a[i])
    return out


@njit(**_JIT)
def cosh_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = cosh1(a[i])
    return out


@njit(**_JIT)
def tanh_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = tanh1(a[i])
    return out


@njit(**_JIT)
def arcsinh_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = arcsinh1(a[i])
    return out


@njit(**_JIT)
def arctanh_array(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = arctanh1(a[i])
    return out


#: name -> compiled kernel of a 1-D C-contiguous float64 array (same values as probe_math's cores);
#: empty (probe_math then runs its numpy kernels) when probe_math changed since COMPILED_AGAINST.
CORES = {} if fingerprint() != COMPILED_AGAINST else {
    "exp": exp_array,
    "expm1": expm1_array,
    "log": log_array,
    "log1p": log1p_array,
    "sin": sin_array,
    "cos": cos_array,
    "tan": tan_array,
    "arctan": arctan_array,
    "arcsin": arcsin_array,
    "arccos": arccos_array,
    "sinh": sinh_array,
    "cosh": cosh_array,
    "tanh": tanh_array,
    "arcsinh": arcsinh_array,
    "arctanh": arctanh_array,
}
if not CORES:
    warnings.warn("automl._probe_math_jit: probe_math's tables or constants changed since this module's "
                  "COMPILED_AGAINST (a stale numba cache could hold the old numbers): using the numpy "
                  "kernels; update COMPILED_AGAINST to fingerprint()", RuntimeWarning, stacklevel=2)


# --- the hash quantizer (automl.hashing._quantize), compiled ---------------------------------------

_DBL_MAX = 1.7976931348623157e308
_NAN_TOKEN = np.uint64(0x7FF8_0000_0000_0001)
_POS_INF = np.uint64(0x7FF0_0000_0000_0000)
_NEG_INF = np.uint64(0xFFF0_0000_0000_0000)


@njit(**_JIT)
def quantize_rows(a, rowlen, half, mask, flush):
    """automl.hashing's quantizer on a flat float64 array of rows of ``rowlen``: the same words,
    one pass instead of ~15 numpy calls.  Returns (uint64 words, every value NaN)."""
    n = a.size
    out = np.empty(n, dtype=np.uint64)
    all_nan = True
    for start in range(0, n, rowlen):
        stop = start + rowlen
        scale = 0.0  # the row's largest finite magnitude
        for i in range(start, stop):
            m = abs(a[i])
            if m <= _DBL_MAX and m > scale:
                scale = m
        scale *= flush
        for i in range(start, stop):
            x = a[i]
            if x != x:
                out[i] = _NAN_TOKEN
                continue
            all_nan = False
            if x == np.inf:
                out[i] = _POS_INF
            elif x == -np.inf:
                out[i] = _NEG_INF
            else:
                if abs(x) < scale:
                    x = 0.0
                x = x + 0.0  # -0.0 -> +0.0
                out[i] = (np.uint64(_f2i(x)) + half) & mask
    return out, all_nan
