"""Layer dimensions of OFA MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``): the one
place both the analytic counter and the torch supernet read them from.

first conv 3x3/2 (h-swish) -> first block (MBConv, expand 1, k3, ReLU, residual) -> 5 stages of
up to 4 MBConv blocks (widths 24/40/80/112/160 at w1.0, strides 2/2/2/1/2, ReLU/ReLU/h-swish x3,
squeeze-excite in stages 2, 4, 5) -> 1x1 final expand to 960 (BN, h-swish) -> global average pool
-> 1x1 feature mix to 1280 (no BN, h-swish) -> linear classifier.  A block's expanded width is
``make_divisible(round(in_channels * e), 8)``; its SE squeezes to ``make_divisible(mid // 4, 8)``.
"""
from __future__ import annotations

import dataclasses

STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
N_CLASSES = 1000


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never going below 90 % of ``v`` (the
    MobileNet rule OFA uses)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclasses.dataclass(frozen=True)
class Widths:
    first: int
    first_block: int
    stages: tuple[int, ...]
    final_expand: int
    feature_mix: int


def widths(width_mult: float = 1.0) -> Widths:
    """Channel widths at ``width_mult`` (every width scaled and rounded by make_divisible; checked
    against the published w1.0 network, whose counts the tests pin; w1.2 follows the same rule)."""
    w = [make_divisible(c * width_mult, 8) for c in BASE_WIDTHS]
    return Widths(w[0], w[1], tuple(w[2:7]), w[7], w[8])


def mid_channels(cin: int, e: int) -> int:
    return make_divisible(round(cin * e), 8)


def se_channels(mid: int) -> int:
    return make_divisible(mid // 4, 8)


def out_size(h: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv (padding k//2) with this stride."""
    return (h - 1) // stride + 1
