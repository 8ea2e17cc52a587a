"""The numpy interpreter and the fixed functional probe.

Reference interpreter (:func:`run`): one flat float64 vector stands for the whole model;
elementwise ops act per element and whole-model reductions sum over all of them, exactly as
ProgramOptimizer sums over all parameters of a group.

The functional probe (:func:`probe`, spec ``PROBE_SPEC``) runs ``PROBE_LANES`` independent models
("lanes") of ``PROBE_N`` elements side by side, each for ``PROBE_STEPS`` steps from zero state: a
tensor is a (lanes, elements) array, a scalar a (lanes, 1) array, reductions run per lane.  The
lanes cover what an evaluator exercises (its ``probe_domain``: step horizon, lr range, gradient
and weight magnitudes; ``DEFAULT_DOMAIN`` when it declares none):

* step windows starting at t = 1 (three lanes), at 1/8, 1/2 and the end of the declared horizon,
  and at 1e2, 1e4 and 1e6 (bias corrections, warm-ups and decays that act late);
* lr per step and lane log-uniform over the declared range (a cosine schedule's tail near 0
  included);
* gradient and weight magnitudes: each lane has its own scale spread over the declared decades
  (so global norms and eps-like constants matter somewhere), 1/16 of the elements span the
  whole declared range, and 3/4 of the elements are *sign-resolving*: their gradient flips sign
  every step with a ratio |g_s / g_(s-1)| log-uniform over 10**[-1.5, 0.5], so a momentum mix
  ``b*m + (1-b)*g`` crosses zero at many different points and sign-based updates (Lion) show a
  change of beta by ~1e-3;
* the updates are returned in rows of ``ROW`` = 8 neighbouring elements, so the quantizer's
  relative flush (automl.hashing) works at the scale of a few decades, not the whole range;
* the state starts at zero and is produced by the program itself, and only the *updates*
  (what the program does to the weights) are hashed, never the state slots: programs that store
  their state scaled or negated but update identically hash equal.

Statements that depend only on g, lr, t and constants are hoisted out of the step loop and
computed once for all steps and lanes, and their values are remembered per (seed, domain) under
the expression they compute (``0.9 ** t``, ``g * g``: per-probe constants that descendants of one
program share; ``clear_memos`` forgets them); transcendental ops are the deterministic ones of
automl.probe_math (``probe_math.KERNELS``: the probe holds one ``np.errstate`` for the whole run),
so digests do not depend on the CPU's SIMD level.
"""
from __future__ import annotations

import functools
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from automl.errors import ConfigError, InvalidCandidate

from automl import probe_math as pm

from .ir import LR, M, N_INPUTS, T, V, W, G, Program
from .ops import COS_EPS, OPS, TENSOR

#: Reference-interpreter data (:func:`probe_data`): elements and steps.
REF_N = 256
REF_STEPS = 6

PROBE_N = 128
PROBE_STEPS = 4
ROW = 8  # elements per quantizer row (the relative flush's scale)
#: What the probe covers when the evaluator declares nothing: horizon (steps), lr range, and
#: log10 ranges of gradient and weight magnitudes.
DEFAULT_DOMAIN: dict[str, Any] = {"steps": 1000, "lr": [1e-6, 1.0], "grad_log10": [-14.0, 7.0],
                                  "weight_log10": [-14.0, 7.0]}
PROBE_SPEC = (
    "optimizer-programs/v2: lanes x 128 elements (reductions per lane), 4 steps from zero state per lane; "
    "lane t0 = 1,1,1,H/8,H/2,H-4,1e2,1e4,1e6 (H = domain steps); lr log-uniform over domain lr per step and "
    "lane; g, w: lane scales over domain log10 ranges, elements 0-23 lane scale*10**U(-3,3), 24-31 "
    "10**U(whole range), 32-127 sign-alternating with ratio 10**U(-1.5,0.5); g[:,0]=0; rng=numpy "
    "default_rng(seed); w-=update; output: updates (steps, lanes, 16, 8) (rows of 8 elements); probe_math "
    f"v{pm.VERSION} transcendentals")


def _domain(domain: Mapping[str, Any] | None) -> dict[str, Any]:
    """The probe domain with defaults filled in, checked."""
    d = dict(DEFAULT_DOMAIN)
    if domain:
        unknown = set(domain) - set(DEFAULT_DOMAIN)
        if unknown:
            raise ConfigError(f"unknown optimizer-programs probe domain keys {sorted(unknown)}; known: "
                              f"{', '.join(DEFAULT_DOMAIN)}")
        d.update(domain)
    steps = d["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"probe domain 'steps' must be a positive integer, got {steps!r}")
    for key in ("lr", "grad_log10", "weight_log10"):
        v = d[key]
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                and np.all(np.isfinite(v)) and v[0] <= v[1]):
            raise ConfigError(f"probe domain {key!r} must be [low, high] with low <= high, got {v!r}")
    if not 0.0 < d["lr"][0]:
        raise ConfigError(f"probe domain 'lr' must be positive (log-uniform), got {d['lr']!r}")
    return {k: (list(map(float, v)) if isinstance(v, (list, tuple)) else v) for k, v in d.items()}


_DOMAIN_JSON: dict[int, tuple[Any, str]] = {}


def _domain_json(domain: Mapping[str, Any] | None) -> str:
    """Canonical JSON of the checked domain (remembered per domain object: the hasher passes the
    same dict on every call)."""
    hit = _DOMAIN_JSON.get(id(domain))
    if hit is not None and hit[0] is domain:
        return hit[1]
    text = json.dumps(_domain(domain), sort_keys=True)
    if len(_DOMAIN_JSON) > 64:
        _DOMAIN_JSON.clear()
    _DOMAIN_JSON[id(domain)] = (domain, text)
    return text


def _lane_t0(horizon: int) -> list[int]:
    h = horizon
    return [1, 1, 1, max(1, h // 8), max(1, h // 2), max(1, h - PROBE_STEPS), 100, 10_000, 1_000_000]


PROBE_LANES = len(_lane_t0(1))
_SIGN0 = PROBE_N // 4  # first sign-resolving element


@functools.lru_cache(maxsize=16)
def batch_data(seed: int, domain_json: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w0 (L, N), grads (S, L, N), lrs (S, L, 1), ts (S, L, 1)) for ``seed`` and a domain given as
    canonical JSON (see :func:`_domain`); read-only arrays."""
    d = json.loads(domain_json)
    rng = np.random.default_rng(seed)
    L, N, S = PROBE_LANES, PROBE_N, PROBE_STEPS
    t0 = np.array(_lane_t0(d["steps"]), dtype=np.float64)
    ts = (t0[None, :] + np.arange(S, dtype=np.float64)[:, None])[..., None]
    lo, hi = np.log10(d["lr"][0]), np.log10(d["lr"][1])
    lrs = 10.0 ** rng.uniform(lo, hi, (S, L, 1))

    def magnitudes(rng_range, n_steps):
        a, b = rng_range
        lane = rng.permutation(np.linspace(min(a + 3, (a + b) / 2), max(b - 3, (a + b) / 2), L))[None, :, None]
        e = np.empty((n_steps, L, N))
        e[:, :, :24] = lane + rng.uniform(-3.0, 3.0, (n_steps, L, 24))
        e[:, :, 24:_SIGN0] = rng.uniform(a, b, (n_steps, L, _SIGN0 - 24))
        e[:, :, _SIGN0:] = lane + rng.uniform(-3.0, 3.0, (n_steps, L, N - _SIGN0))
        return e

    ge = magnitudes(d["grad_log10"], S)
    # sign-resolving elements: g_s = -g_(s-1) * 10**U(-1.5, 0.5)
    for s in range(1, S):
        ge[s, :, _SIGN0:] = ge[s - 1, :, _SIGN0:] + rng.uniform(-1.5, 0.5, (L, N - _SIGN0))
    z = rng.standard_normal((S, L, N))
    z[1:, :, _SIGN0:] = -np.sign(z[:-1, :, _SIGN0:]) * np.abs(z[1:, :, _SIGN0:])
    for s in range(2, S):
        z[s, :, _SIGN0:] = -np.sign(z[s - 1, :, _SIGN0:]) * np.abs(z[s, :, _SIGN0:])
    grads = z * 10.0 ** ge
    grads[:, :, 0] = 0.0
    w0 = rng.standard_normal((L, N)) * 10.0 ** magnitudes(d["weight_log10"], 1)[0]
    for a in (w0, grads, lrs, ts):
        a.flags.writeable = False
    return w0, grads, lrs, ts


@functools.lru_cache(maxsize=8)
def probe_data(seed: int) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.float64, ...]]:
    """(w0, gradients per step, lr per step) for the reference interpreter :func:`run` (tests and
    examples; not the hash probe): 256 elements, 6 steps, half the gradients spread over nine
    decades, lr ~ U(0.01, 0.1), g[0] = 0; read-only arrays."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(REF_N)
    half = REF_N // 2
    grads, lrs = [], []
    for _ in range(REF_STEPS):
        g = rng.standard_normal(REF_N)
        g[:half] *= 10.0 ** rng.uniform(-8.0, 1.0, half)
        g[0] = 0.0
        g.flags.writeable = False
        grads.append(g)
        lrs.append(np.float64(rng.uniform(0.01, 0.1)))
    w0.flags.writeable = False
    return w0, tuple(grads), tuple(lrs)


@functools.lru_cache(maxsize=4096)
def _compile(p: Program):
    """Live instructions as (numpy fn, dest, arg register indices); constants get registers
    after the instructions' registers.  Returns (code, register count, constant registers)."""
    base = N_INPUTS + len(p.instrs)
    consts: dict[float, int] = {}
    code = []
    for ins, live in zip(p.instrs, p.info.live):
        if not live:
            continue
        idx = []
        for a in ins.args:
            if type(a) is int:
                idx.append(a)
            else:
                key = a.hex()  # exact, and keeps -0.0 apart from 0.0
                slot = consts.get(key)
                if slot is None:
                    slot = consts[key] = base + len(consts)
                idx.append(slot)
        code.append((OPS[ins.op].np, ins.dest, tuple(idx)))
    const_regs = [(slot, np.float64(float.fromhex(k))) for k, slot in consts.items()]
    return tuple(code), base + len(consts), tuple(const_regs)


def run(p: Program, w0: np.ndarray, grads: Sequence[np.ndarray], lrs: Sequence[float], t0: float = 1.0,
        ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Run ``p`` for ``len(grads)`` steps with the outer loop ``w -= update``; step ``s`` (from 0)
    sees ``t = t0 + s``.

    Returns (updates per step, final m, final v).  A dead slot stays zero (it is not computed).
    Floating-point warnings are the caller's business (wrap in ``np.errstate``).
    """
    err = p.info.error
    if err is not None:
        raise InvalidCandidate(err)
    code, n_regs, const_regs = _compile(p)
    regs: list = [None] * n_regs
    for slot, c in const_regs:
        regs[slot] = c
    out_u, out_m, out_v = p.outputs
    live_m, live_v = M in p.info.live_slots, V in p.info.live_slots
    w = np.array(w0, dtype=np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    updates = []
    for s, (g, lr) in enumerate(zip(grads, lrs)):
        regs[W], regs[G], regs[M], regs[V], regs[LR], regs[T] = w, g, m, v, np.float64(lr), np.float64(t0 + s)
        for fn, d, ia in code:
            regs[d] = fn(*[regs[i] for i in ia])
        u = regs[out_u]
        if live_m:
            m = regs[out_m]
        if live_v:
            v = regs[out_v]
        updates.append(u)
        w = w - u
    return updates, m, v


# --- the batched probe ---------------------------------------------------------------------------

def _sum(x):
    return np.add.reduce(x, axis=-1, keepdims=True)


def _b_dot(x, y):
    return _sum(np.multiply(x, y))


def _b_norm(x):
    return np.sqrt(_sum(np.multiply(x, x)))


def _b_cos(x, y):
    return _b_dot(x, y) / np.maximum(_b_norm(x) * _b_norm(y), COS_EPS)


def _b_clip_norm(x, c):
    return np.multiply(x, np.minimum(1.0, np.true_divide(c, _b_norm(x))))


#: Per-lane versions of the whole-model reductions (lanes are independent models).
_BATCHED = {"dot": _b_dot, "global_norm": _b_norm, "cosine_sim": _b_cos, "clip_by_global_norm": _b_clip_norm}
#: The deterministic transcendentals without their per-call ``np.errstate`` (the probe holds one).
_KERNELS = {id(fn): pm.KERNELS[name] for name, fn in pm.FUNCTIONS.items()}
_STATIC_INPUTS = frozenset((G, LR, T))


@functools.lru_cache(maxsize=4096)
def _compile_batched(p: Program):
    """(static code, step code, register count, constant registers): live instructions whose
    inputs are only g, lr, t and constants are *static*: they do not depend on the program's
    state or on the weights, so they run once on the (steps, lanes, ...) arrays of all steps
    (reductions reduce the last axis, so they stay per step and lane).  Each static instruction
    carries its *value key*, the expression it computes from g, lr, t and exact constants (so
    the static-value memo can share it between programs)."""
    base = N_INPUTS + len(p.instrs)
    consts: dict[str, int] = {}
    vkey = {G: "g", LR: "lr", T: "t"}
    static, step = [], []
    for ins, live in zip(p.instrs, p.info.live):
        if not live:
            continue
        idx, is_static = [], True
        for a in ins.args:
            if type(a) is int:
                idx.append(a)
                is_static = is_static and a in vkey
            else:
                key = a.hex()
                slot = consts.get(key)
                if slot is None:
                    slot = consts[key] = base + len(consts)
                    vkey[slot] = key
                idx.append(slot)
        fn = _BATCHED.get(ins.op) or _KERNELS.get(id(OPS[ins.op].np)) or OPS[ins.op].np
        if is_static:
            vkey[ins.dest] = f"{ins.op}({','.join(vkey[i] for i in idx)})"
            static.append((fn, ins.dest, tuple(idx), vkey[ins.dest]))
        else:
            step.append((fn, ins.dest, tuple(idx)))
    const_regs = tuple((slot, np.float64(float.fromhex(k))) for k, slot in consts.items())
    static_out = tuple(ins[1] for ins in static)
    return tuple(static), tuple(step), base + len(consts), const_regs, static_out


#: Static values (functions of the probe's g, lr, t and constants only: ``0.9 ** t``, ``g * g``)
#: per (seed, domain), keyed by the expression: per-probe constants shared by every program that
#: computes them (descendants of one program share most of them).  Bounded; read-only arrays.
_STATIC_MEMO: dict[tuple[int, str], dict[str, Any]] = {}
STATIC_MEMO_MAX = 256


def clear_memos() -> None:
    """Forget compiled programs and static values (a *cold* probe, for benchmarks)."""
    _compile.cache_clear()
    _compile_batched.cache_clear()
    _STATIC_MEMO.clear()


# --- the compiled probe (numba) --------------------------------------------------------------------

_JIT_MODULE: Any = None  # search_spaces.programs._probe_jit once loaded, False when it cannot load


def _jit() -> Any:
    """The compiled probe kernel module when the probe math runs compiled (``probe_math.compiled``:
    numba installed, not disabled by ``AUTOML_PROBE_NUMBA=0``, and in the default mode after the
    process's first few thousand probe-math calls), else None.  Both paths give the same bits."""
    global _JIT_MODULE
    if not pm.compiled():
        return None  # not yet (the default mode switches later), never, or switched off
    if _JIT_MODULE is None:
        try:
            from . import _probe_jit
        except ImportError:  # numba missing or unusable: the numpy interpreter, same bits
            _JIT_MODULE = False
        except RuntimeError:  # numba found no writable cache directory: pm has warned already
            _JIT_MODULE = False
        else:
            _JIT_MODULE = _probe_jit
    return _JIT_MODULE or None


def _lower(p: Program, J: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool, int]:
    """The live instructions of ``p`` as the compiled kernel's table (see ``_probe_jit``):
    (code rows (op, dest, a0, a1, a2, tensor?), constant registers (register, value), outputs,
    live m, live v, register count); ``J``: the kernel module (its op codes).  Instructions whose
    arguments are all constants are evaluated here, by the numpy interpreter's own functions (so
    with its bits).

    Not memoized: a search hashes each new program once, and a cache keyed by the program would
    cost a hash of every instruction per lookup (~7 us), about half of lowering it again."""
    codes, easy_exponents = J.CODES, J.EASY_EXPONENTS
    info = p.info
    types = info.types
    base = N_INPUTS + len(p.instrs)
    value: dict[int, Any] = {}  # constant registers: literals and computed constants
    literal: dict[str, int] = {}
    flat: list[int] = []
    for ins, live in zip(p.instrs, info.live):
        if not live:
            continue
        args = []
        constant = True
        for a in ins.args:
            if type(a) is not int:
                key = a.hex()  # exact, and keeps -0.0 apart from 0.0
                r = literal.get(key)
                if r is None:
                    r = literal[key] = base + len(literal)
                    value[r] = np.float64(a)
                a = r
            elif constant and a not in value:
                constant = False
            args.append(a)
        op_name = ins.op
        if constant:  # evaluated now, as the numpy interpreter would
            spec = OPS[op_name]
            fn = _BATCHED.get(op_name) or _KERNELS.get(id(spec.np)) or spec.np
            with np.errstate(all="ignore"):
                value[ins.dest] = np.float64(fn(*[value[r] for r in args]))
            continue
        op = codes[op_name]
        n = len(args)
        a0 = args[0]
        a1 = args[1] if n > 1 else a0
        a2 = args[2] if n > 2 else a0
        if op_name == "pow" and a1 in value:
            c = float(value[a1])
            easy = easy_exponents.get(c)
            if easy is not None:
                op, a1 = easy
            elif c != 0.0 and math.isfinite(c):
                op = J.POW_CONST
        flat += (op, ins.dest, a0, a1, a2, types[ins.dest] == TENSOR)
    consts: list[float] = []
    for r, v in value.items():
        consts += (r, v)
    live_slots = info.live_slots
    return (np.array(flat, dtype=np.int64).reshape(-1, 6), np.array(consts, dtype=np.float64).reshape(-1, 2),
            np.array(p.outputs, dtype=np.int64), M in live_slots, V in live_slots, base + len(literal))


def probe(p: Program, seed: int, domain: Mapping[str, Any] | None = None) -> list[np.ndarray]:
    """The functional probe (see the module docstring and ``PROBE_SPEC``): the updates, shape
    (PROBE_STEPS, PROBE_LANES, PROBE_N // ROW, ROW).  Runs compiled (``_probe_jit``, one call)
    when the probe math does (``probe_math.compiled()``), else as numpy passes: the same bits."""
    err = p.info.error
    if err is not None:
        raise InvalidCandidate(err)
    dj = _domain_json(domain)
    w0, grads, lrs, ts = batch_data(seed, dj)
    S, L, N = grads.shape
    J = _jit()
    if J is not None and N <= J.MAX_ROW:
        updates = updates_compiled(p, w0, grads, lrs, ts, J)
    else:
        memo = _STATIC_MEMO.get((seed, dj))
        if memo is None:
            if len(_STATIC_MEMO) >= 4:
                _STATIC_MEMO.clear()
            memo = _STATIC_MEMO[(seed, dj)] = {}
        updates = updates_numpy(p, w0, grads, lrs, ts, memo)
    # rows of 8 elements: the quantizer flushes relative to a row's largest magnitude, and a row
    # of neighbouring elements spans a few decades, not the whole declared range
    return [updates.reshape(S, L, N // ROW, ROW)]


def updates_compiled(p: Program, w0: np.ndarray, grads: np.ndarray, lrs: np.ndarray, ts: np.ndarray,
                     J: Any = None) -> np.ndarray:
    """The probe's updates (S, L, N) of ``p`` on the given lanes (w0 (L, N), grads (S, L, N), lrs
    and ts (S, L, 1)) by the compiled kernel ``J`` (default :func:`_jit`; needs numba)."""
    J = J if J is not None else _jit()
    if J is None:
        raise RuntimeError("the compiled probe needs numba and probe_math.compiled()")
    code, consts, outputs, live_m, live_v, n_regs = _lower(p, J)
    return J.run_probe(code, consts, w0, grads, lrs, ts, outputs, live_m, live_v, n_regs)


def updates_numpy(p: Program, w0: np.ndarray, grads: np.ndarray, lrs: np.ndarray, ts: np.ndarray,
                  memo: dict[str, Any] | None = None) -> np.ndarray:
    """:func:`updates_compiled` as numpy passes: the reference the compiled kernel reproduces bit
    for bit.  ``memo``: static values shared between programs on the same data (see
    ``_STATIC_MEMO``); None: none kept."""
    static, step, n_regs, const_regs, static_out = _compile_batched(p)
    regs: list = [None] * n_regs
    for slot, c in const_regs:
        regs[slot] = c
    regs[G], regs[LR], regs[T] = grads, lrs, ts
    with np.errstate(all="ignore"):
        return _run_probe(p, regs, static, step, static_out, {} if memo is None else memo, w0, grads, lrs, ts)


def _run_probe(p, regs, static, step, static_out, memo, w0, grads, lrs, ts) -> np.ndarray:
    for fn, dst, ia, key in static:  # over all (step, lane) pairs at once
        val = memo.get(key)
        if val is None:
            val = fn(*[regs[i] for i in ia])
            if isinstance(val, np.ndarray):
                val.flags.writeable = False
            if len(memo) >= STATIC_MEMO_MAX:
                memo.clear()
            memo[key] = val
        regs[dst] = val
    static_vals = [(r, regs[r]) for r in static_out if np.ndim(regs[r]) == 3]
    out_u, out_m, out_v = p.outputs
    live_m, live_v = M in p.info.live_slots, V in p.info.live_slots
    S, L, N = grads.shape
    w = w0
    m = v = np.zeros((L, N))
    updates = np.empty((S, L, N))
    for s in range(S):
        regs[W], regs[G], regs[M], regs[V], regs[LR], regs[T] = w, grads[s], m, v, lrs[s], ts[s]
        for r, val in static_vals:
            regs[r] = val[s]
        for fn, dst, ia in step:
            regs[dst] = fn(*[regs[i] for i in ia])
        u = regs[out_u]
        updates[s] = u
        if live_m:
            m = regs[out_m]
        if live_v:
            v = regs[out_v]
        if s + 1 < S:
            w = w - updates[s]
    return updates
