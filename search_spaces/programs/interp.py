"""The numpy interpreter and the fixed functional probe.

The probe model is one flat float64 vector of ``PROBE_N`` elements standing for the whole model:
elementwise ops act per element and whole-model reductions sum over all of them, exactly as
ProgramOptimizer sums over all parameters of a group.  Half the gradient elements have magnitudes
spread over nine decades (so constants such as Adam's eps show), half are standard normal; 256
elements make sign-based programs (Lion) differ when a beta changes by ~1%.  Cost is dominated by
per-op dispatch, not by the vector length.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from automl.errors import InvalidCandidate
from automl.hashing import quantize

from .ir import LR, M, N_INPUTS, T, V, W, G, Program
from .ops import OPS

PROBE_N = 256
PROBE_STEPS = 6
PROBE_SPEC = (
    "optimizer-programs/v1: float64 model of 256 elements (reductions over all); rng=numpy "
    "default_rng(seed); w0=rng.standard_normal(256); per step s=1..6 in order: g=rng.standard_normal(256), "
    "g[:128]*=10**rng.uniform(-8,1,128), g[0]=0, lr_s=rng.uniform(0.01,0.1), t=s; m=v=0 at start; "
    "w-=update each step; outputs: the 6x256 updates, then the final states of the live slots (those "
    "the update reads, directly or via the other slot) ordered by their quantized bytes")


@functools.lru_cache(maxsize=8)
def probe_data(seed: int) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.float64, ...]]:
    """(w0, gradients per step, lr per step) of the probe for ``seed`` (read-only arrays)."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(PROBE_N)
    half = PROBE_N // 2
    grads, lrs = [], []
    for _ in range(PROBE_STEPS):
        g = rng.standard_normal(PROBE_N)
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


def run(p: Program, w0: np.ndarray, grads: Sequence[np.ndarray], lrs: Sequence[float],
        ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Run ``p`` for ``len(grads)`` steps with the outer loop ``w -= update``.

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
    for s, (g, lr) in enumerate(zip(grads, lrs), start=1):
        regs[W], regs[G], regs[M], regs[V], regs[LR], regs[T] = w, g, m, v, np.float64(lr), np.float64(s)
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


def probe(p: Program, seed: int) -> list[np.ndarray]:
    """The functional probe (see ``PROBE_SPEC``): [updates (6 x 256), *final live states]."""
    w0, grads, lrs = probe_data(seed)
    updates, m, v = run(p, w0, grads, lrs)
    out = [np.stack(updates)]
    live = [s for s, live in ((m, M in p.info.live_slots), (v, V in p.info.live_slots)) if live]
    if len(live) == 2:
        live.sort(key=lambda a: quantize([a]))
    return out + live
