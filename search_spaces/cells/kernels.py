"""Tiny numpy kernels for the functional probe of cells (float64, NCHW, stride 1, 'same' padding).

Probe tensor: batch 2, 4 channels, 6x6 pixels, x ~ N(0, 1) from ``np.random.default_rng(seed)``.
Weights are drawn from a generator seeded with xxh3-64 of ``"<seed>|<key>"`` where ``key`` names
the *function* the op computes (see the spaces' probe docs), scaled by 1/sqrt(fan_in).
Batch norm is train-mode (batch statistics, eps 1e-5, gamma 1, beta 0), as at initialisation.
"""
from __future__ import annotations

import numpy as np
import xxhash
from numpy.lib.stride_tricks import sliding_window_view

B, C, H, W = 2, 4, 6, 6
SHAPE = (B, C, H, W)
BN_EPS = 1e-5
SPEC = f"x~N(0,1)[{B},{C},{H},{W}];w~N(0,1/fan_in) from xxh3_64(seed|function-key);bn=train,eps={BN_EPS}"

_inputs: dict[int, np.ndarray] = {}
# avg_pool_3x3 with padding 1 and count_include_pad=False divides by the number of real pixels
_COUNT = sliding_window_view(np.pad(np.ones((H, W)), 1), (3, 3)).sum(axis=(-1, -2))


def probe_input(seed: int) -> np.ndarray:
    """The fixed probe tensor for ``seed`` (read-only, cached)."""
    x = _inputs.get(seed)
    if x is None:
        x = np.random.default_rng(seed).standard_normal(SHAPE)
        x.flags.writeable = False
        _inputs[seed] = x
    return x


def weights(seed: int, key: str, k: int, c_in: int = C, c_out: int = C) -> np.ndarray:
    """Conv weights (c_out, c_in, k, k) for the op named by ``key`` under probe ``seed``."""
    rng = np.random.default_rng(xxhash.xxh3_64_intdigest(f"{seed}|{key}".encode()))
    return rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)


def conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """2-d convolution, stride 1, zero 'same' padding, no bias."""
    k = w.shape[-1]
    if k == 1:
        return np.einsum("oc,bchw->bohw", w[:, :, 0, 0], x)
    p = k // 2
    patches = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))), (k, k), axis=(2, 3))
    # patches: (B, C, H, W, k, k) -> (B, H, W, C*k*k) @ (C*k*k, O)
    b, c, h, ww = x.shape
    cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(b, h, ww, c * k * k)
    return (cols @ w.reshape(w.shape[0], -1).T).transpose(0, 3, 1, 2)


def batch_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + BN_EPS)


def relu_conv_bn(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """NAS-Bench-201's ReLUConvBN."""
    return batch_norm(conv(np.maximum(x, 0.0), w))


def conv_bn_relu(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """NAS-Bench-101's conv-bn-relu."""
    return np.maximum(batch_norm(conv(x, w)), 0.0)


def avg_pool3(x: np.ndarray) -> np.ndarray:
    """3x3 average pooling, stride 1, padding 1, count_include_pad=False (as NAS-Bench-201)."""
    s = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3)).sum(axis=(-1, -2))
    return s / _COUNT


def max_pool3(x: np.ndarray) -> np.ndarray:
    """3x3 max pooling, stride 1, padding 1 (padding never wins)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(2, 3)).max(axis=(-1, -2))
