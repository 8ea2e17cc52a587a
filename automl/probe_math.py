"""Deterministic float64 elementary functions for functional probes.

numpy's ``exp``, ``log``, ``sin``, ``power``... dispatch on the CPU's SIMD level (AVX-512, AVX2,
baseline) and the variants differ in the last bits, so a probe built on them gives different
digests on different machines (measured: 1.5-2.2 % of program digests).  The functions here use
only operations IEEE-754 rounds exactly (``+ - * /``, ``sqrt``, comparisons, ``rint``, ``frexp``,
``ldexp``), evaluated in a fixed order, so their results are bit-identical on every machine, SIMD
level and thread count.  Why not a library: no maintained numpy-vectorised package promises
bit-reproducible transcendentals (CRlibm/CORE-MATH have no numpy binding), and ``math.*`` is
libm, which itself picks FMA variants at load time.

Accuracy: a few ulp over the normal range (checked against numpy in tests), which is what the
hash needs (equivalent candidates must agree to the quantizer's 24 bits).  Range reduction for
``sin``/``cos``/``tan`` is Cody-Waite with a 3-part pi/2: accurate for |x| < ~1e9, still
deterministic (but not accurate) beyond.  Special values follow IEEE/numpy (nan in, nan out;
``exp(inf) = inf``; ``log(0) = -inf``; ``power`` as C99 ``pow``).  Signs of zero and of NaN are
not guaranteed (the quantizer canonicalises both).
"""
from __future__ import annotations

import decimal
import math

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # trailing bits zero: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_PIO2_1 = 1.57079632673412561417e00  # pi/2 in three parts (fdlibm's split)
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624879595063154e-21
_INV_PIO2 = 6.36619772367581382433e-01
_PI = 3.141592653589793
_PIO2 = 1.5707963267948966
_PIO6 = 0.5235987755982989
_SQRT3 = 1.7320508075688772
_TAN_PI12 = 0.2679491924311227

# Taylor coefficients (exactly the rationals' nearest doubles)
_EXP_C = np.array([1.0 / np.prod(np.arange(1, k + 1, dtype=np.float64)) for k in range(14)])  # 1/k!, k=0..13
_SIN_C = np.array([(-1.0) ** k / np.prod(np.arange(1, 2 * k + 2, dtype=np.float64)) for k in range(11)])
_COS_C = np.array([(-1.0) ** k / np.prod(np.arange(1, 2 * k + 1, dtype=np.float64)) for k in range(11)])
_LOG_C = np.array([2.0 / (2 * k + 1) for k in range(13)])  # log(m) = sum 2 f^(2k+1)/(2k+1)
_ATAN_C = np.array([(-1.0) ** k / (2 * k + 1) for k in range(16)])
_SINH_C = np.array([1.0 / np.prod(np.arange(1, 2 * k + 2, dtype=np.float64)) for k in range(10)])


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _out(r: np.ndarray, like):
    """0-d results back to numpy scalars (as ufuncs return for scalar input)."""
    return r[()] if r.ndim == 0 else r


def _horner(c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum c[k] z**k by Horner's rule, highest power first (a fixed order of exact-rounded ops)."""
    acc = z * c[-1]
    acc += c[-2]
    for ck in c[-3::-1]:
        acc *= z
        acc += ck
    return acc


def _table(fn, n: int) -> np.ndarray:
    """fn(j) for j < n, evaluated in 40-digit decimal arithmetic and rounded once to float64, so
    the table is the same on every machine (no libm involved)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        return np.array([float(fn(decimal.Decimal(j))) for j in range(n)])


_EXP_N = 64  # exp: x = (64 m + j) ln2/64 + r, |r| <= ln2/128; exp(x) = 2**m * 2**(j/64) * exp(r)
_EXP_T = _table(lambda j: (j / _EXP_N * decimal.Decimal(2).ln()).exp(), _EXP_N)
_EXP_P = _EXP_C[:7]  # |r|**7/7! < 2e-19
_LN2_64_HI = float(np.float32(0.6931471805599453 / 64))  # 24 bits: k * hi exact for |k| < 2**29
_LN2_64_LO = float(decimal.Decimal(2).ln() / 64 - decimal.Decimal(_LN2_64_HI))
_LOG_N = 128  # log: m = c_j (1 + r), c_j = 1 + j/128 (-64 <= j <= 64), |r| <= 1/180
_LOG_T = _table(lambda i: (1 + (i - _LOG_N // 2) / _LOG_N).ln(), _LOG_N + 1)  # index i = j + 64
_LOG_CJ = 1.0 + (np.arange(_LOG_N + 1) - _LOG_N // 2) / _LOG_N
_LOG_P = np.array([0.0, 1.0] + [(-1.0) ** (k + 1) / k for k in range(2, 9)])  # log1p(r), r**9/9 < 1e-20


def exp(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        xc = np.fmax(np.fmin(a, 710.0), -746.0)  # fmin/fmax drop NaN: fixed below
        k = np.rint(xc * (_EXP_N * _INV_LN2))
        r = (xc - k * _LN2_64_HI) - k * _LN2_64_LO
        ki = k.astype(np.int64)
        p = _horner(_EXP_P, r)
        p *= _EXP_T[ki & (_EXP_N - 1)]
        # times 2**m as two exact power-of-two factors built from their bits (np.ldexp is slow):
        # exact unless the result over/underflows, and then rounded once, by the last product
        m = ki >> 6
        m1 = m >> 1
        res = p * ((m1 + 1023) << 52).view(np.float64)
        res *= ((m - m1 + 1023) << 52).view(np.float64)
        res = np.where(a == a, res, a)
    return _out(res, x)


def expm1(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        small = np.abs(a) < 0.5
        r = np.where(small, a, 0.0)
        s = _horner(_EXP_C[1:], r) * r  # sum_{k>=1} r^k/k!  (r^13/13! < 1e-14 relative at 0.5)
        res = np.where(small, s, exp(a) - 1.0)
    return _out(res, x)


def _log_scalar(v: float) -> float:
    """log of one positive finite float: :func:`log`'s algorithm in Python float arithmetic
    (IEEE double, the same operations in the same order), ~10x cheaper than numpy on 0-d."""
    m, e = math.frexp(v)  # exact
    if m < 0.7071067811865476:
        m, e = m + m, e - 1
    i = min(max(round(m * _LOG_N) - _LOG_N // 2, 0), _LOG_N)  # round() is round-half-even = rint
    c = float(_LOG_CJ[i])
    r = (m - c) / c
    acc = r * float(_LOG_P[-1]) + float(_LOG_P[-2])
    for ck in _LOG_P[-3::-1]:
        acc = acc * r + float(ck)
    ef = float(e)
    return (ef * _LN2_LO + acc) + (float(_LOG_T[i]) + ef * _LN2_HI)


def log(x):
    a = _arr(x)
    if a.ndim == 0 and 0.0 < float(a) < math.inf:
        return np.float64(_log_scalar(float(a)))
    with np.errstate(all="ignore"):
        m, e = np.frexp(np.abs(a))  # |a| = m * 2**e, m in [0.5, 1)
        up = m < 0.7071067811865476
        m = np.where(up, m + m, m)  # m in [0.707, 1.414): log near 1 has no cancellation
        ef = e - up
        ji = np.rint(m * _LOG_N) - _LOG_N // 2  # = j + 64 for m in range
        # 0, nan, inf: any valid index (fmin/fmax drop NaN), fixed below
        ji = np.fmax(np.fmin(ji, float(_LOG_N)), 0.0).astype(np.int64)
        c = _LOG_CJ[ji]
        r = (m - c) / c  # m - c is exact (Sterbenz); |r| <= 1/180
        lp = _horner(_LOG_P, r)
        res = (ef * _LN2_LO + lp) + (_LOG_T[ji] + ef * _LN2_HI)
        res = np.where(a > 0.0, res, np.where(a == 0.0, -np.inf, np.nan))
        res = np.where(a == np.inf, np.inf, res)
    return _out(res, x)


def log1p(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        u = 1.0 + a
        # log(u) - ((u - 1) - a) / u: the classic correction for the rounding of 1 + a
        res = np.where(u == 1.0, a, log(u) - ((u - 1.0) - a) / u)
        res = np.where(a == np.inf, np.inf, res)
    return _out(res, x)


# pi/2 as an unevaluated sum of three doubles, and the 26-bit halves of the first (Dekker split)
_PIO2_D = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)
_SPLIT = 134217729.0  # 2**27 + 1


def _split(a):
    c = a * _SPLIT
    hi = c - (c - a)
    return hi, a - hi


_P1_HI, _P1_LO = _split(np.float64(_PIO2_D[0]))


def _sincos_reduced(a: np.ndarray):
    """(sin r, cos r, quadrant) with a = r + q*pi/2, |r| <= pi/4."""
    q = np.rint(a * _INV_PIO2)
    if np.all(np.abs(q) < 2.0**19) or not np.isfinite(q).any():  # Cody-Waite: q * _PIO2_1 is exact
        r = ((a - q * _PIO2_1) - q * _PIO2_2) - q * _PIO2_3
    else:  # large arguments: q * pi/2 as an exact product (Dekker, no FMA needed) plus tails
        qh, ql = _split(q)
        prod = q * _PIO2_D[0]
        err = ((qh * _P1_HI - prod) + qh * _P1_LO + ql * _P1_HI) + ql * _P1_LO
        r = (((a - prod) - err) - q * _PIO2_D[1]) - q * _PIO2_D[2]
    z = r * r
    s = _horner(_SIN_C, z) * r
    c = _horner(_COS_C, z)
    qi = np.mod(np.where(np.isfinite(q), q, 0.0), 4.0)
    return s, c, qi


def sin(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        s, c, q = _sincos_reduced(a)
        res = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
        res = np.where(np.isfinite(a), res, np.nan)
    return _out(res, x)


def cos(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        s, c, q = _sincos_reduced(a)
        res = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
        res = np.where(np.isfinite(a), res, np.nan)
    return _out(res, x)


def tan(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        s, c, q = _sincos_reduced(a)
        odd = (q == 1) | (q == 3)
        res = np.where(odd, -c / s, s / c)
        res = np.where(np.isfinite(a), res, np.nan)
    return _out(res, x)


def arctan(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        neg = a < 0
        y = np.abs(a)
        big = y > 1.0
        y = np.where(big, 1.0 / y, y)  # atan(y) = pi/2 - atan(1/y)
        mid = y > _TAN_PI12
        y = np.where(mid, (y * _SQRT3 - 1.0) / (y + _SQRT3), y)  # atan(y) = pi/6 + atan(...)
        z = y * y
        r = _horner(_ATAN_C, z) * y
        r = np.where(mid, r + _PIO6, r)
        r = np.where(big, _PIO2 - r, r)
        res = np.where(neg, -r, r)
        res = np.where(np.isnan(a), a, res)
    return _out(res, x)


def arcsin(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        res = arctan(a / np.sqrt((1.0 - a) * (1.0 + a)))
        res = np.where(np.abs(a) <= 1.0, res, np.nan)
    return _out(_arr(res), x)


def arccos(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        res = 2.0 * arctan(np.sqrt((1.0 - a) / (1.0 + a)))
        res = np.where(np.abs(a) <= 1.0, res, np.nan)
    return _out(_arr(res), x)


def _half_exp_pair(y: np.ndarray, sign: float) -> np.ndarray:
    """(exp(y) + sign * exp(-y)) / 2 for y >= 0, finite a little beyond exp's own range."""
    e = exp(np.minimum(y, 709.0))
    near = 0.5 * e + sign * (0.5 / e)
    far = exp(y - _LN2_HI - _LN2_LO)  # exp(y)/2 (exp(-y) is negligible there)
    return np.where(y < 709.0, near, far)


def sinh(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        y = np.abs(a)
        small = y < 1.0
        z = np.where(small, a, 0.0)
        s = _horner(_SINH_C, z * z) * z
        big = np.sign(a) * _half_exp_pair(y, -1.0)
        res = np.where(small, s, big)
    return _out(_arr(res), x)


def cosh(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        res = _half_exp_pair(np.abs(a), 1.0)
    return _out(_arr(res), x)


def tanh(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        y = np.minimum(np.abs(a), 40.0)
        e = expm1(2.0 * y)
        r = e / (e + 2.0)
        res = np.where(a < 0, -r, r)
        res = np.where(np.isnan(a), a, res)
    return _out(_arr(res), x)


def arcsinh(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        y = np.abs(a)
        huge = y > 1e150
        yy = np.where(huge, 1.0, y)
        r = log1p(yy + yy * yy / (1.0 + np.sqrt(1.0 + yy * yy)))
        r = np.where(huge, log(y) + (_LN2_HI + _LN2_LO), r)
        res = np.where(a < 0, -r, r)
        res = np.where(np.isnan(a), a, res)
    return _out(_arr(res), x)


def arctanh(x):
    a = _arr(x)
    with np.errstate(all="ignore"):
        y = np.abs(a)
        r = 0.5 * log1p(2.0 * y / (1.0 - y))
        r = np.where(y <= 1.0, r, np.nan)
        res = np.where(a < 0, -r, r)
        res = np.where(np.isnan(a), a, res)
    return _out(_arr(res), x)


def _small_int_power(ax: np.ndarray, n: int) -> np.ndarray:
    """|x| ** n for n in 1..4 by exact repeated multiplication (as numpy's own fast paths)."""
    if n == 1:
        return ax
    sq = ax * ax
    return sq if n == 2 else (sq * ax if n == 3 else sq * sq)


def power(x, y):
    """C99 ``pow`` semantics: pow(x, 0) = 1 and pow(1, y) = 1 even for nan; a negative base needs
    an integer exponent (else nan); |x|**y = exp(y log|x|) otherwise, except exponents +-1..4 (exact
    repeated multiplication, so ``x ** 2`` equals ``x * x``) and 0.5 (``sqrt``)."""
    a, b = _arr(x), _arr(y)
    with np.errstate(all="ignore"):
        ax = np.abs(a)
        if b.ndim == 0 and float(b) in (0.5, 1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0):
            yv = float(b)  # the common exponents: no exp/log at all
            if yv == 0.5:
                r = np.where(a < 0, np.nan, np.sqrt(ax))
            else:
                n = int(abs(yv))
                r = _small_int_power(ax, n)
                if yv < 0:
                    r = 1.0 / r
                if n % 2:
                    r = np.where(a < 0, -r, r)
            return _out(_arr(r), x)
        if a.ndim == 0 and 0.0 < float(a) < math.inf:  # positive finite base (``0.9 ** t``)
            if float(a) == 1.0:
                return _out(np.ones_like(b), x)
            # exp(y log a) is already right for y = 0, +-inf and nan
            return _out(_arr(exp(b * _log_scalar(float(a)))), x)
        a, b = np.broadcast_arrays(a, b)
        ax = np.abs(a)
        r = _arr(exp(b * log(ax)))
        neg = a < 0
        if neg.any():
            integer = np.floor(b) == b
            odd = integer & (np.mod(b, 2.0) == 1.0)
            r = np.where(neg & odd, -r, r)
            r = np.where(neg & ~integer & np.isfinite(b), np.nan, r)
            r = np.where(neg & np.isinf(b) & (ax == 1.0), 1.0, r)
        r = np.where((b == 0) | (a == 1.0), 1.0, r)
        r = np.where(np.isnan(b) & (a != 1.0), np.nan, r)
    return _out(_arr(r), x)


#: numpy ufunc name -> deterministic replacement (what probes use instead).
FUNCTIONS = {"exp": exp, "expm1": expm1, "log": log, "log1p": log1p, "sin": sin, "cos": cos, "tan": tan,
             "arctan": arctan, "arcsin": arcsin, "arccos": arccos, "sinh": sinh, "cosh": cosh, "tanh": tanh,
             "arcsinh": arcsinh, "arctanh": arctanh, "power": power}
