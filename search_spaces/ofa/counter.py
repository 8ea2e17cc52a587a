"""One analytic MACs / parameter counter for OFA MobileNetV3 sub-networks (numpy only).

MACs count the multiply-accumulates of every convolution and linear layer (conv:
``H_out * W_out * C_out * C_in / groups * k * k``; SE's two 1x1 convs at 1x1 spatial size;
the classifier ``1280 * 1000``).  Batch norm, activations, pooling, the SE gate multiply and
residual adds are not counted.  Parameters are trainable weights: conv and linear weights, conv
and linear biases (SE, classifier), BN affine weight and bias; BN running statistics are buffers.

Against DyNAS-T's ``MACs`` column (torchprofile at the time, on the same sub-networks) this
counter is a constant-ratio match; ``python benchmarks/hw_search.py`` reports the ratio and the
correlation over all 2,373 logged evaluations.

Everything is additive over blocks at a fixed resolution, so :class:`Counter` precomputes a
table ``block_macs[slot, ks, e]`` per resolution and counts a whole population with one gather.
"""
from __future__ import annotations

import functools

import numpy as np

from search_spaces.ofa import arch
from search_spaces.ofa.space import E_CHOICES, KS_CHOICES, MAX_DEPTH, N_BLOCKS, N_STAGES, OFAConfig


def _block(cin: int, cout: int, k: int, e: int, stride: int, h: int, se: bool, expand: bool = True):
    """(macs, params, h_out) of one MBConv block (expand 1x1 -> depthwise k -> [SE] -> project 1x1)."""
    mid = arch.mid_channels(cin, e) if expand else cin
    ho = arch.out_size(h, stride)
    macs = params = 0
    if expand:
        macs += h * h * cin * mid
        params += cin * mid + 2 * mid
    macs += ho * ho * mid * k * k
    params += mid * k * k + 2 * mid
    if se:
        s = arch.se_channels(mid)
        macs += 2 * mid * s
        params += 2 * mid * s + s + mid
    macs += ho * ho * mid * cout
    params += mid * cout + 2 * cout
    return macs, params, ho


class Counter:
    """MACs and parameters of OFA MobileNetV3 sub-networks at width ``width``."""

    def __init__(self, width: float = 1.0):
        self.width = float(width)
        self.w = arch.widths(self.width)

    @functools.lru_cache(maxsize=64)  # noqa: B019 (a few Counter objects live for the whole process)
    def parts(self, r: int, n_classes: int = arch.N_CLASSES) -> tuple[tuple[float, float], np.ndarray, np.ndarray,
                                                                      tuple[float, float]]:
        """The counts split where a network can be cut: ((stem macs, params): first conv + first
        block, block macs[20,3,3], block params[20,3,3], (head macs, params): final expand, feature
        mix and a classifier of ``n_classes``) at resolution r.  Blocks are indexed by slot, ks and
        e choice; slot 0 of a stage reads the previous stage's width whether or not the previous
        stage's later slots run, so any subset of a stage's later slots adds up exactly."""
        w = self.w
        h = arch.out_size(r, 2)
        fm = h * h * 3 * w.first * 9
        fp = 3 * w.first * 9 + 2 * w.first
        m, p, h = _block(w.first, w.first_block, 3, 1, 1, h, False, expand=False)
        fm, fp = fm + m, fp + p
        bm = np.zeros((N_BLOCKS, 3, 3))
        bp = np.zeros((N_BLOCKS, 3, 3))
        cin = w.first_block
        for s in range(N_STAGES):
            cout = w.stages[s]
            for j in range(MAX_DEPTH):
                stride = arch.STAGE_STRIDES[s] if j == 0 else 1
                for a, k in enumerate(KS_CHOICES):
                    for b, e in enumerate(E_CHOICES):
                        m, p, _ = _block(cin, cout, k, e, stride, h, arch.STAGE_SE[s])
                        bm[4 * s + j, a, b], bp[4 * s + j, a, b] = m, p
                h = arch.out_size(h, stride)
                cin = cout
        hm = h * h * cin * w.final_expand + w.final_expand * w.feature_mix + w.feature_mix * n_classes
        hp = cin * w.final_expand + 2 * w.final_expand + w.final_expand * w.feature_mix
        hp += w.feature_mix * n_classes + n_classes
        bm.flags.writeable = bp.flags.writeable = False
        return (float(fm), float(fp)), bm, bp, (float(hm), float(hp))

    def tables(self, r: int) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(fixed macs, fixed params, block macs[20,3,3], block params[20,3,3]) at resolution r
        (fixed: stem and head, 1000 classes)."""
        (sm, sp), bm, bp, (hm, hp) = self.parts(r)
        return sm + hm, sp + hp, bm, bp

    def count_arrays(self, ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray | int = 224):
        """Vectorised: (macs, params) arrays for configs given as value arrays ks/e (n,20), d (n,5)."""
        ks, e, d = (np.asarray(a, dtype=np.int64) for a in (ks, e, d))
        n = ks.shape[0]
        r = np.broadcast_to(np.asarray(r, dtype=np.int64), (n,))
        ki = np.searchsorted(KS_CHOICES, ks)
        ei = np.searchsorted(E_CHOICES, e)
        active = (np.arange(N_BLOCKS) % MAX_DEPTH)[None, :] < np.repeat(d, MAX_DEPTH, axis=1)
        macs, params = np.zeros(n), np.zeros(n)
        slot = np.arange(N_BLOCKS)[None, :]
        for res in np.unique(r):
            rows = r == res
            fm, fp, bm, bp = self.tables(int(res))
            macs[rows] = fm + (bm[slot, ki[rows], ei[rows]] * active[rows]).sum(1)
            params[rows] = fp + (bp[slot, ki[rows], ei[rows]] * active[rows]).sum(1)
        return macs, params

    def count(self, cfg: OFAConfig) -> tuple[int, int]:
        """(MACs, parameters) of one sub-network."""
        m, p = self.count_arrays(np.array([cfg.ks]), np.array([cfg.e]), np.array([cfg.d]), cfg.r)
        return int(m[0]), int(p[0])

