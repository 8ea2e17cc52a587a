"""Deterministic float64 elementary functions for functional probes.

numpy's ``exp``, ``log``, ``sin``, ``power``... dispatch on the CPU's SIMD level (AVX-512, AVX2,
baseline) and the variants differ in the last bits, so a probe built on them gives different
digests on different machines (measured: 1.5-2.2 % of program digests).  The functions here use
only operations IEEE-754 rounds exactly (``+ - * /``, ``sqrt``, comparisons, ``rint``,
``copysign``), integer operations on the bits, and table look-ups, evaluated in a fixed order, so
their results are bit-identical on every machine, SIMD level and thread count.  Why not a library:
no maintained numpy-vectorised package promises
bit-reproducible transcendentals (CRlibm/CORE-MATH have no numpy binding), and ``math.*`` is
libm, which itself picks FMA variants at load time.

Cost: each function is 20-60 numpy passes (``exp`` ~13 us, ``sin`` ~27 us on a 9 x 128 array,
against ~1 us for numpy's SIMD call); the probe interpreters call :data:`KERNELS` (the same
functions without a per-call ``np.errstate``).  With numba installed, every kernel also runs
compiled (:mod:`automl._probe_math_jit`: the same IEEE operations in the same order, bit-identical,
tested; ``exp`` ~2 us, ``sin`` ~7 us), from the first call with ``AUTOML_PROBE_NUMBA=1``, never
with ``=0``, and by default after :data:`AUTO_AFTER_CALLS` calls (numba's start-up is ~1 s).

Accuracy: a few ulp over the normal range (checked against numpy in tests), which is what the
hash needs (equivalent candidates must agree to the quantizer's 24 bits).  Range reduction for
``sin``/``cos``/``tan`` is Cody-Waite with a 3-part pi/2: accurate for |x| < ~1e9, still
deterministic (but not accurate) beyond.  Special values follow IEEE/numpy (nan in, nan out;
``exp(inf) = inf``; ``log(0) = -inf``; ``power`` as C99 ``pow``).  Signs of zero and of NaN are
not guaranteed (the quantizer canonicalises both).
"""
from __future__ import annotations

import decimal
import functools
import math
import os
import warnings
from typing import Any, Callable

import numpy as np

_Core = Callable[[np.ndarray], np.ndarray]  # a float64 array (ndim >= 1) in, one out

#: Changes whenever any function's bits change; probes put it in their spec (so in the namespace).
#: 3: sin/cos/tan reduce each value by its own magnitude (v2 took the large-argument reduction for
#: the whole array when any value needed it, so a value could depend on its neighbours).
VERSION = 3

_LN2_HI = 6.93147180369123816490e-01  # trailing bits zero: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_PIO2_1 = 1.57079632673412561417e00  # pi/2 in three parts (fdlibm's split)
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21
_INV_PIO2 = 6.36619772367581382433e-01
_PIO2 = 1.5707963267948966
_PIO6 = 0.5235987755982989
_SQRT3 = 1.7320508075688772
_TAN_PI12 = 0.2679491924311227

# Taylor coefficients (exactly the rationals' nearest doubles)
_ATAN_C = np.array([(-1.0) ** k / (2 * k + 1) for k in range(14)])  # |y| <= tan(pi/12): y**29/29 < 1e-18


def _horner(c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum c[k] z**k by Horner's rule, highest power first (a fixed order of exact-rounded ops)."""
    acc: np.ndarray = z * c[-1]
    acc += c[-2]
    for ck in c[-3::-1]:
        acc *= z
        acc += ck
    return acc


_EXP_BITS = 11  # exp: x = (2048 m + j) ln2/2048 + r, |r| <= ln2/4096; exp(x) = 2**m * 2**(j/2048) * exp(r)
_EXP_N = 1 << _EXP_BITS
_LN2_N_HI = float(np.float32(0.6931471805599453 / _EXP_N))  # 24 bits: k * hi exact for |k| < 2**29
_LN2_N_LO = float(decimal.Decimal(2).ln() / _EXP_N - decimal.Decimal(_LN2_N_HI))
_LOG_BITS = 10  # log: |x| = 2**k z, z in [sqrt(2)/2, sqrt(2)) in 1024 intervals of centre c; z = c (1 + r)
# the bits of sqrt(2)/2, the low 42 bits set so that 1.0 is the centre of its interval (log(c) = 0
# there, so log(1 + tiny) has no cancellation)
_LOG_OFF = (0x3FE6A09E667F3BCD & ~((1 << (52 - _LOG_BITS)) - 1)) | (1 << (51 - _LOG_BITS))
_LN2 = 0.6931471805599453


@functools.lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(2**(j/2048) rounded, its rounding error, log-interval centres c, log(c)), built on first
    use (decimal arithmetic, so the same on every machine; ~50 ms, kept out of ``import``)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        ln2 = decimal.Decimal(2).ln()
        exact = [(decimal.Decimal(j) / _EXP_N * ln2).exp() for j in range(_EXP_N)]
        exp_t = np.array([float(e) for e in exact])
        exp_lo = np.array([float(e - decimal.Decimal(float(e))) for e in exact])
        n = 1 << _LOG_BITS
        centre = (np.arange(n, dtype=np.int64) << (52 - _LOG_BITS)) + (_LOG_OFF + (1 << (51 - _LOG_BITS)))
        c = centre.view(np.float64)
        logc = np.array([float(decimal.Decimal(float(v)).ln()) for v in c])
    for t in (exp_t, exp_lo, c, logc):
        t.flags.writeable = False
    return exp_t, exp_lo, c, logc


def _exp(a: np.ndarray) -> np.ndarray:
    """exp of a float64 array of ndim >= 1 (the caller holds ``np.errstate``)."""
    if a.size == 0:
        return a.copy()
    lo = np.fmin.reduce(a, axis=None)  # NaN only when every value is NaN
    if not (lo >= -708.0 and np.fmax.reduce(a, axis=None) <= 709.0):
        # results outside the normal range, +-inf (NaN alone stays on the fast path)
        return a + 0.0 if lo != lo else _exp_wide(a)
    k = a * (_EXP_N / _LN2)
    np.rint(k, out=k)
    q, ki = _exp_reduced(a, k)
    # times 2**m: add m to the exponent field (exact: q and the result are normal numbers)
    ki &= -_EXP_N
    ki <<= 52 - _EXP_BITS
    b = q.view(np.int64)
    b += ki  # NaN: ki is the same garbage on every machine, and q is already NaN
    return q


def _exp_reduced(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2**(j/2048) * exp(r), k as int64) for x = k ln2/2048 + r, j = k mod 2048."""
    r = k * -_LN2_N_HI
    r += x
    t = k * _LN2_N_LO
    r -= t
    ki = k.astype(np.int64)  # NaN gives an arbitrary index: the result is NaN anyway
    # exp(r) - 1 = r + r**2/2 + r**3/6 (|r| < 1.7e-4: the next term is < 4e-17 relative)
    q = r * (1.0 / 6.0)
    q += 0.5
    q *= r
    q += 1.0
    q *= r
    tj = _tables()[0].take(ki & (_EXP_N - 1))
    q *= tj
    q += tj
    return q, ki


def _exp_wide(a: np.ndarray) -> np.ndarray:
    """:func:`_exp` for any input: clamped (inf -> overflow, -inf -> 0, NaN kept) and scaled by
    two exact powers of two, rounded once by the last product."""
    x = np.minimum(a, 710.0)
    np.maximum(x, -746.0, out=x)
    k = x * (_EXP_N / _LN2)
    np.rint(k, out=k)
    q, ki = _exp_reduced(x, k)
    m = ki >> _EXP_BITS
    m1 = m >> 1
    q *= ((m1 + 1023) << 52).view(np.float64)
    q *= ((m - m1 + 1023) << 52).view(np.float64)
    return q


def _expm1(a: np.ndarray) -> np.ndarray:
    """exp(a) - 1, accurate near 0: exp's reduction with the table entry as hi + lo, so that
    2**m T_hi - 1 is exact (Sterbenz) where the result is small."""
    if a.size == 0:
        return a.copy()
    lo = np.fmin.reduce(a, axis=None)  # NaN only when every value is NaN
    if not (lo >= -708.0 and np.fmax.reduce(a, axis=None) <= 709.0):
        return a + 0.0 if lo != lo else _expm1_wide(a)
    k = a * (_EXP_N / _LN2)
    np.rint(k, out=k)
    r = k * -_LN2_N_HI
    r += a
    t = k * _LN2_N_LO
    r -= t
    ki = k.astype(np.int64)
    # exp(r) - 1 = r + r**2/2 + r**3/6 + r**4/24 (|r| < 1.7e-4: the next term is < 1e-17 relative to r)
    q = r * (1.0 / 24.0)
    q += 1.0 / 6.0
    q *= r
    q += 0.5
    q *= r
    q += 1.0
    q *= r
    exp_t, exp_lo, _, _ = _tables()
    j = ki & (_EXP_N - 1)
    th = exp_t.take(j)
    ki &= -_EXP_N
    ki <<= 52 - _EXP_BITS
    ki += 1023 << 52
    scale = ki.view(np.float64)  # 2**m, m in [-1022, 1023] here
    # exp(a) = 2**m (T_hi + T_lo)(1 + q) = 2**m T_hi + 2**m (T_lo + T_hi q) (T_lo q: < 1e-20 relative)
    q *= th
    q += exp_lo.take(j)
    q *= scale
    th *= scale
    th -= 1.0  # exact where the result is small
    th += q
    return th


def _expm1_wide(a: np.ndarray) -> np.ndarray:
    """:func:`_expm1` for any input: the same values inside [-708, 709], exp(a) above (it is
    exp(a) - 1 to the last bit there), -1 below."""
    x = np.minimum(a, 709.0)
    np.maximum(x, -708.0, out=x)  # NaN stays
    res = _expm1(x)
    res = np.where(a > 709.0, _exp(a), res)
    return np.where(a < -708.0, -1.0, res)


def _log(a: np.ndarray) -> np.ndarray:
    """log of a float64 array of ndim >= 1 (the caller holds ``np.errstate``)."""
    if a.size == 0:
        return a.copy()
    lo = np.fmin.reduce(a, axis=None)  # NaN only when every value is NaN
    if not (lo >= 2.2250738585072014e-308 and np.fmax.reduce(a, axis=None) <= 1.7976931348623157e308):
        # zero, negative, subnormal or infinite values (NaN alone stays on the fast path)
        return a + 0.0 if lo != lo else _log_wide(a)
    ix = a.view(np.int64)
    tmp = ix - _LOG_OFF
    i = tmp >> (52 - _LOG_BITS)
    i &= (1 << _LOG_BITS) - 1
    k = tmp >> 52
    iz = k << 52
    np.subtract(ix, iz, out=iz)
    z = iz.view(np.float64)  # |a| / 2**k, in [sqrt(2)/2, sqrt(2)), exact
    _, _, c, logc = _tables()
    cj = c.take(i)
    r = z - cj  # exact (Sterbenz)
    r /= cj  # |r| < 4.9e-4
    # log(1 + r) = r - r**2/2 + r**3/3 - r**4/4 + r**5/5 (the next term is < 5e-18 relative)
    p = r * 0.2
    p -= 0.25
    p *= r
    p += 1.0 / 3.0
    p *= r
    p -= 0.5
    p *= r
    p *= r
    p += r
    p += logc.take(i)
    # k ln2 + log(z): |log z| < 0.35, so for k != 0 the sum loses at most a bit; for k = 0 it is exact
    kf = k.astype(np.float64)
    kf *= _LN2
    p += kf
    p += a * 0.0  # NaN in, NaN out (the bit manipulations above lose it)
    return p


def _log_wide(a: np.ndarray) -> np.ndarray:
    """:func:`_log` for any input: the fast path on the positive finite values (subnormals scaled
    into the normal range), then -inf for zero, nan for negative or NaN, inf for inf."""
    pos = a > 0.0
    x = np.where(pos, a, 1.0)
    sub = not np.fmin.reduce(x, axis=None) >= 2.2250738585072014e-308
    big = not np.fmax.reduce(x, axis=None) <= 1.7976931348623157e308
    if sub:
        x = np.where(x < 2.2250738585072014e-308, x * 2.0**60, x)
    if big:
        x = np.where(x == np.inf, 1.0, x)
    res = _log(x)
    if sub:
        res = np.where(a < 2.2250738585072014e-308, res - 60.0 * _LN2, res)
    res = np.where(pos, res, np.where(a == 0.0, -np.inf, np.nan))
    return np.where(a == np.inf, np.inf, res) if big else res


def _log_scalar(v: float) -> float:
    """log of one positive finite float (``0.9 ** t``'s base)."""
    return float(_log(np.array([v]))[0])


def _log1p(a: np.ndarray) -> np.ndarray:
    u = 1.0 + a
    # log(u) - ((u - 1) - a) / u: the classic correction for the rounding of 1 + a (u == 1 gives
    # exactly a: log(1) is 0; a < -1 and NaN give NaN through log)
    res = _log(u)
    res -= ((u - 1.0) - a) / u
    if np.fmax.reduce(a, axis=None) < np.inf and not np.fmin.reduce(a, axis=None) <= -1.0:
        return res
    return np.where(a == np.inf, np.inf, np.where(a == -1.0, -np.inf, res))


# pi/2 as an unevaluated sum of three doubles, and the 26-bit halves of the first (Dekker split)
_PIO2_D = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)
_SPLIT = 134217729.0  # 2**27 + 1


def _split(a: Any) -> tuple[Any, Any]:
    c = a * _SPLIT
    hi = c - (c - a)
    return hi, a - hi


_P1_HI, _P1_LO = _split(np.float64(_PIO2_D[0]))


# sin r = r + r**3 (S1 + z S2 + ... + z**5 S6), cos r = 1 - z/2 + z**2 (C1 + ... + z**5 C6), z = r*r,
# |r| <= pi/4: fdlibm's minimax coefficients (k_sin.c, k_cos.c; < 1 ulp there)
_SIN_P = np.array([-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
                   2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10])
_COS_P = np.array([4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
                   -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11])


def _sincos_reduced(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sin r, cos r, quadrant as int64) with a = r + q*pi/2, |r| <= pi/4.  inf and NaN give a NaN
    r, so NaN results whatever the quadrant."""
    q = a * _INV_PIO2
    np.rint(q, out=q)
    r = ((a - q * _PIO2_1) - q * _PIO2_2) - q * _PIO2_3  # Cody-Waite: q * _PIO2_1 is exact for |q| < 2**19
    if not np.fmax.reduce(np.abs(q), axis=None) < 2.0**19:
        # large arguments (or inf), and only those (the two reductions can differ in the last bit,
        # and a value must not depend on its neighbours): q * pi/2 as an exact product (Dekker, no
        # FMA needed) plus tails
        qh, ql = _split(q)
        prod = q * _PIO2_D[0]
        err = ((qh * _P1_HI - prod) + qh * _P1_LO + ql * _P1_HI) + ql * _P1_LO
        r = np.where(np.abs(q) < 2.0**19, r, (((a - prod) - err) - q * _PIO2_D[1]) - q * _PIO2_D[2])
        # |q| >= 2**63 is a multiple of 4 (quadrant 0); casting it to int64 is undefined in C (x86
        # gives 0x8000000000000000, also quadrant 0; ARM saturates), so it is cast from 0
        q = np.where(np.abs(q) < 2.0**63, q, 0.0)
    z = r * r
    s = _horner(_SIN_P, z)
    s *= z
    s *= r
    s += r
    c = _horner(_COS_P, z)
    c *= z
    c -= 0.5
    c *= z
    c += 1.0
    qi = q.astype(np.int64)  # inf/NaN: arbitrary, the result is NaN anyway
    return s, c, qi


def _sin(a: np.ndarray) -> np.ndarray:
    s, c, qi = _sincos_reduced(a)
    res = np.where(qi & 1, c, s)
    return np.where(qi & 2, -res, res)


def _cos(a: np.ndarray) -> np.ndarray:
    s, c, qi = _sincos_reduced(a)
    res = np.where(qi & 1, s, c)  # cos(r + q pi/2): c, -s, -c, s
    return np.where((qi + 1) & 2, -res, res)


def _tan(a: np.ndarray) -> np.ndarray:
    s, c, qi = _sincos_reduced(a)
    return np.where(qi & 1, -c / s, s / c)


def _arctan(a: np.ndarray) -> np.ndarray:
    y = np.abs(a)
    big = y > 1.0
    y = np.where(big, 1.0 / y, y)  # atan(y) = pi/2 - atan(1/y)
    mid = y > _TAN_PI12
    y = np.where(mid, (y * _SQRT3 - 1.0) / (y + _SQRT3), y)  # atan(y) = pi/6 + atan(...)
    z = y * y
    r = _horner(_ATAN_C, z) * y
    r = np.where(mid, r + _PIO6, r)
    r = np.where(big, _PIO2 - r, r)
    return np.copysign(r, a)  # NaN stays NaN


def _arcsin(a: np.ndarray) -> np.ndarray:
    return _arctan(a / np.sqrt((1.0 - a) * (1.0 + a)))  # |a| > 1: sqrt of a negative, NaN


def _arccos(a: np.ndarray) -> np.ndarray:
    return 2.0 * _arctan(np.sqrt((1.0 - a) / (1.0 + a)))  # |a| > 1: sqrt of a negative, NaN


def _half_exp_pair(y: np.ndarray, sign: float) -> np.ndarray:
    """(exp(y) + sign * exp(-y)) / 2 for y >= 0, finite a little beyond exp's own range."""
    e = _exp(np.minimum(y, 709.0))
    near = 0.5 * e + sign * (0.5 / e)
    if not np.fmax.reduce(y, axis=None) >= 709.0:  # NaN-only arrays too: near is NaN there
        return near
    far = _exp(y - _LN2_HI - _LN2_LO)  # exp(y)/2 (exp(-y) is negligible there)
    return np.where(y < 709.0, near, far)


def _sinh(a: np.ndarray) -> np.ndarray:
    # (E + E / (E + 1)) / 2 with E = expm1(|a|) (fdlibm's form, accurate near 0 too); exp(|a|)/2
    # from 709 on, where E overflows
    y = np.abs(a)
    big = not np.fmax.reduce(y, axis=None) < 709.0
    e = _expm1(np.minimum(y, 709.0) if big else y)
    r = e + 1.0
    np.divide(e, r, out=r)
    r += e
    r *= 0.5
    if big:
        r = np.where(y < 709.0, r, _exp(y - _LN2_HI - _LN2_LO))
    return np.copysign(r, a)  # NaN stays NaN


def _cosh(a: np.ndarray) -> np.ndarray:
    return _half_exp_pair(np.abs(a), 1.0)


def _tanh(a: np.ndarray) -> np.ndarray:
    y = np.minimum(np.abs(a), 40.0)
    e = _expm1(2.0 * y)
    r = e / (e + 2.0)
    return np.copysign(r, a)  # NaN stays NaN (np.minimum keeps it)


def _arcsinh(a: np.ndarray) -> np.ndarray:
    y = np.abs(a)
    if np.fmax.reduce(y, axis=None) <= 1e150:
        yy = y * y
        r = _log1p(y + yy / (1.0 + np.sqrt(1.0 + yy)))
    else:
        huge = y > 1e150
        yy = np.where(huge, 1.0, y)
        r = _log1p(yy + yy * yy / (1.0 + np.sqrt(1.0 + yy * yy)))
        r = np.where(huge, _log(y) + (_LN2_HI + _LN2_LO), r)
    return np.copysign(r, a)  # NaN stays NaN


def _arctanh(a: np.ndarray) -> np.ndarray:
    y = np.abs(a)
    r = 0.5 * _log1p(2.0 * y / (1.0 - y))  # y > 1: log1p of a value < -1, NaN; y == 1: inf
    return np.copysign(r, a)  # NaN stays NaN


def _small_int_power(ax: np.ndarray, n: int) -> np.ndarray:
    """|x| ** n for n in 1..4 by exact repeated multiplication (as numpy's own fast paths)."""
    if n == 1:
        return ax
    sq = ax * ax
    return sq if n == 2 else (sq * ax if n == 3 else sq * sq)


_EASY_EXPONENTS = frozenset((0.5, 1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0))


def _power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C99 ``pow`` on arrays (see :func:`power`); ``b`` may have size 1 (a constant exponent)."""
    if b.size == 1 and float(b.flat[0]) in _EASY_EXPONENTS:
        yv = float(b.flat[0])  # the common exponents: no exp/log at all
        ax = np.abs(a)
        if yv == 0.5:
            r = np.where(a < 0, np.nan, np.sqrt(ax))
        else:
            n = int(abs(yv))
            r = _small_int_power(ax, n)
            if yv < 0:
                r = 1.0 / r
            if n % 2:
                r = np.where(a < 0, -r, r)
        shape = np.broadcast_shapes(a.shape, b.shape)
        return r if r.shape == shape else np.broadcast_to(r, shape).copy()
    if a.size == 1 and 0.0 < float(a.flat[0]) < math.inf:  # positive finite base (``0.9 ** t``)
        if float(a.flat[0]) == 1.0:
            return np.ones(np.broadcast_shapes(a.shape, b.shape))
        # exp(y log a) is already right for y = 0, +-inf and nan
        return _EXP(b * _LOG(a.reshape(1)))
    if b.size == 1 and math.isfinite(float(b.flat[0])) and float(b.flat[0]) != 0.0:
        # a constant exponent (``x ** 1.7``): sign rules decided once, in Python
        yv = float(b.flat[0])
        r = _EXP(_LOG(np.abs(a)) * yv)  # a == 1: exp(0) = 1; a NaN: NaN
        if np.fmin.reduce(a, axis=None) < 0.0:
            if yv.is_integer():
                if math.fmod(yv, 2.0) != 0.0:
                    r = np.where(a < 0, -r, r)
            else:
                r = np.where(a < 0, np.nan, r)
        return r if b.ndim <= a.ndim else r.reshape(np.broadcast_shapes(a.shape, b.shape))
    if a.shape != b.shape:
        a, b = np.broadcast_arrays(a, b)
    r = _EXP(b * _LOG(np.abs(a)))
    if not np.isnan(np.add.reduce(r, axis=None)):
        # no NaN: a == 1 and b == 0 already gave exp(0) = 1; a < 0 needs an integer b
        if not np.fmin.reduce(a, axis=None) < 0:
            return r
    integer = np.floor(b) == b
    neg = a < 0
    odd = integer & (np.mod(b, 2.0) == 1.0)
    r = np.where(neg & odd, -r, r)
    r = np.where(neg & ~integer & np.isfinite(b), np.nan, r)
    r = np.where(neg & np.isinf(b) & (np.abs(a) == 1.0), 1.0, r)
    r = np.where((b == 0) | (a == 1.0), 1.0, r)
    return np.where(np.isnan(b) & (a != 1.0), np.nan, r)


_JIT_CORES = None  # name -> compiled core (automl._probe_math_jit), {} without numba; None: not decided yet
#: In the default mode the compiled kernels are loaded after this many probe-math calls in the
#: process: loading numba and its cached machine code costs ~1 s once (measured in
#: benchmarks/probe_startup.py), the compiled kernels save ~0.3 ms per program hash, so a one-shot
#: process (the CLI, a test) stays on numpy and a search switches after a few hundred hashes.
#: Switching is safe at any time: both give the same bits.
AUTO_AFTER_CALLS = 4096
_calls = 0


def _mode() -> str:
    """``AUTOML_PROBE_NUMBA``: ``0`` never compiled, ``1`` compiled from the first call, anything
    else (unset) compiled after :data:`AUTO_AFTER_CALLS` calls."""
    return os.environ.get("AUTOML_PROBE_NUMBA", "auto")


def enable_compiled() -> bool:
    """Load the compiled kernels now (unless ``AUTOML_PROBE_NUMBA=0``); whether they run.
    numba missing (or unable to load) leaves the numpy kernels, which give the same bits."""
    global _JIT_CORES
    if _JIT_CORES is None:
        cores: dict[str, Any] = {}
        if _mode() != "0":
            try:
                from automl._probe_math_jit import CORES as cores
            except ImportError:  # numba missing (or too old for this numpy): the numpy cores
                cores = {}
            except RuntimeError as e:  # numba found no writable cache directory (NUMBA_CACHE_DIR)
                warnings.warn(f"automl.probe_math: compiled kernels unavailable ({e}); using numpy "
                              "(same digests, slower)", RuntimeWarning, stacklevel=2)
                cores = {}
        _JIT_CORES = cores
    return bool(_JIT_CORES)


def _jit_cores() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The compiled cores once decided, ``{}`` before (see :data:`AUTO_AFTER_CALLS`)."""
    global _calls
    _calls += 1
    if _calls > AUTO_AFTER_CALLS or _mode() in ("0", "1"):
        enable_compiled()
        return _JIT_CORES
    return {}


def compiled() -> bool:
    """Whether the probe math runs compiled (numba) now rather than as numpy passes (same bits)."""
    if _JIT_CORES is None and _mode() in ("0", "1"):
        enable_compiled()
    return bool(_JIT_CORES)


def _dispatch(name: str, core: _Core) -> _Core:
    """``core`` (a numpy function of a float64 array of ndim >= 1) run by its compiled twin when
    there is one: bit-identical values, one pass instead of 20-60 numpy calls."""
    def run(a: np.ndarray) -> np.ndarray:
        jit = (_JIT_CORES if _JIT_CORES is not None else _jit_cores()).get(name)
        if jit is None:
            return core(a)
        if a.ndim == 1 and a.flags.c_contiguous:
            return jit(a)
        return jit(np.ascontiguousarray(a).reshape(-1)).reshape(a.shape)
    run.__name__ = run.__qualname__ = name
    return run


def _public(core: _Core, name: str, doc: str) -> Callable[[Any], Any]:
    """The numpy-like public function of ``core``: any array-like in, float64 out, a numpy scalar
    for scalar input, floating-point warnings silenced (``core`` needs ndim >= 1 and runs under
    the caller's ``np.errstate``)."""
    def fn(x: Any) -> Any:
        a = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            if a.ndim == 0:
                return core(a.reshape(1))[0]
            return core(a)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _kernel(core: _Core) -> Callable[[Any], Any]:
    """``core`` for the probe interpreter: no errstate (the probe holds one), scalars allowed."""
    def fn(x: Any) -> Any:
        a = np.asarray(x, dtype=np.float64)
        return core(a.reshape(1))[0] if a.ndim == 0 else core(a)
    return fn


_NUMPY_CORES = {"exp": _exp, "expm1": _expm1, "log": _log, "log1p": _log1p, "sin": _sin, "cos": _cos, "tan": _tan,
          "arctan": _arctan, "arcsin": _arcsin, "arccos": _arccos, "sinh": _sinh, "cosh": _cosh, "tanh": _tanh,
          "arcsinh": _arcsinh, "arctanh": _arctanh}

#: name -> the core used: compiled when numba is there, else numpy (:data:`_NUMPY_CORES`)
_CORES = {name: _dispatch(name, core) for name, core in _NUMPY_CORES.items()}
_EXP, _LOG = _CORES["exp"], _CORES["log"]

exp = _public(_CORES["exp"], "exp", "e ** x")
expm1 = _public(_CORES["expm1"], "expm1", "e ** x - 1, accurate near 0")
log = _public(_CORES["log"], "log", "natural log (log(0) = -inf, nan for x < 0)")
log1p = _public(_CORES["log1p"], "log1p", "log(1 + x), accurate near 0")
sin = _public(_CORES["sin"], "sin", "sine")
cos = _public(_CORES["cos"], "cos", "cosine")
tan = _public(_CORES["tan"], "tan", "tangent")
arctan = _public(_CORES["arctan"], "arctan", "inverse tangent")
arcsin = _public(_CORES["arcsin"], "arcsin", "inverse sine (nan outside [-1, 1])")
arccos = _public(_CORES["arccos"], "arccos", "inverse cosine (nan outside [-1, 1])")
sinh = _public(_CORES["sinh"], "sinh", "hyperbolic sine")
cosh = _public(_CORES["cosh"], "cosh", "hyperbolic cosine")
tanh = _public(_CORES["tanh"], "tanh", "hyperbolic tangent")
arcsinh = _public(_CORES["arcsinh"], "arcsinh", "inverse hyperbolic sine")
arctanh = _public(_CORES["arctanh"], "arctanh", "inverse hyperbolic tangent")


def _power_kernel(x: Any, y: Any) -> Any:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim == 0 and b.ndim == 0:
        return _power(a.reshape(1), b.reshape(1))[0]
    return _power(a, b)


def power(x: Any, y: Any) -> Any:
    """C99 ``pow`` semantics: pow(x, 0) = 1 and pow(1, y) = 1 even for nan; a negative base needs
    an integer exponent (else nan); |x|**y = exp(y log|x|) otherwise, except exponents +-1..4 (exact
    repeated multiplication, so ``x ** 2`` equals ``x * x``) and 0.5 (``sqrt``)."""
    with np.errstate(all="ignore"):
        return _power_kernel(x, y)


#: numpy ufunc name -> deterministic replacement (what probes use instead).
FUNCTIONS = {"exp": exp, "expm1": expm1, "log": log, "log1p": log1p, "sin": sin, "cos": cos, "tan": tan,
             "arctan": arctan, "arcsin": arcsin, "arccos": arccos, "sinh": sinh, "cosh": cosh, "tanh": tanh,
             "arcsinh": arcsinh, "arctanh": arctanh, "power": power}
#: The same functions for code that already holds ``np.errstate`` (the probe interpreters):
#: identical results, without the per-call errstate.
KERNELS: dict[str, Callable[..., Any]] = {name: _kernel(core) for name, core in _CORES.items()}
KERNELS["power"] = _power_kernel
