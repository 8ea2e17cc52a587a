"""An elastic OFA MobileNetV3 supernet in torch, sub-network extraction and BN recalibration.

Written here rather than depending on the ``ofa`` package (unmaintained since 2021, pins old
torchvision, and pulls its own training stack): the elastic ops are a few slicing rules.

* elastic kernel: the 7x7 depthwise kernel is centre-cropped to 5x5 and 3x3; as in OFA, each crop
  passes through a learnable kernel-transform matrix (``t7to5`` 25x25, ``t5to3`` 9x9; identity
  at initialisation, so a random supernet is a plain centre crop): ``w5 = crop(w7) @ T75ᵀ``,
  ``w3 = crop(w5) @ T53ᵀ``.
* elastic expand: a block's expanded width is ``make_divisible(round(cin * e), 8)``; the first that
  many channels of the expand, depthwise, SE and project weights (and BN statistics) are used.
* elastic depth: stage ``s`` runs its first ``d[s]`` blocks.

:func:`extract` copies the active slices into a static network whose forward equals the
supernet's for that config (tests check it); :func:`recalibrate_bn` re-estimates BN statistics of
any network on a few batches (OFA's per-subnet recalibration).

Real weights: :func:`load_ofa_checkpoint` reads a checkpoint of ``ofa_mbv3_d234_e346_k357_w1.0``
(the one DyNAS-T evaluated) by path and renames OFA's keys to this module's.  Users with network
access can download it from OFA's model zoo (``https://raw.githubusercontent.com/han-cai/files/
master/ofa/ofa_nets/ofa_mbv3_d234_e346_k357_w1.0``, as listed by ``ofa.model_zoo``).  The
renaming follows OFA's module names (``blocks.N.conv.inverted_bottleneck.conv.conv.weight`` ...);
it could not be checked against the real file here (no network), so loading is strict and a
mismatch names every missing or unexpected key.  The file is read with ``weights_only=True``.
"""
from __future__ import annotations

import re
from typing import Iterable

from automl._optional import missing_error

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "torch"], "the OFA MobileNetV3 supernet (search_spaces.ofa.supernet)") from exc

from . import arch
from .space import E_CHOICES, MAX_DEPTH, N_STAGES, OFAConfig

_ACT = {"relu": F.relu, "h_swish": F.hardswish}


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
    """Batch norm over the first ``c`` channels of ``bn`` (running statistics updated in place)."""
    if c == bn.num_features:
        return bn(x)
    mean = var = None
    if bn.running_mean is not None:
        mean, var = bn.running_mean[:c], bn.running_var[:c]
    use_batch = bn.training or mean is None
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.momentum is None:
        momentum = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(x, mean, var, bn.weight[:c], bn.bias[:c], use_batch, momentum, bn.eps)


class DynamicMBConv(nn.Module):
    """One elastic inverted-residual block (expand 1x1 -> depthwise k -> [SE] -> project 1x1)."""

    def __init__(self, cin: int, cout: int, stride: int, act: str, se: bool):
        super().__init__()
        self.cin, self.cout, self.stride, self.act, self.use_se = cin, cout, stride, act, se
        mid = arch.mid_channels(cin, max(E_CHOICES))
        self.expand = nn.Conv2d(cin, mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid)
        self.dw = nn.Conv2d(mid, mid, 7, stride, 3, groups=mid, bias=False)
        self.t7to5 = nn.Parameter(torch.eye(25))
        self.t5to3 = nn.Parameter(torch.eye(9))
        self.dw_bn = nn.BatchNorm2d(mid)
        if se:
            s = arch.se_channels(mid)
            self.se_reduce = nn.Conv2d(mid, s, 1)
            self.se_expand = nn.Conv2d(s, mid, 1)
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.cin == self.cout

    def kernel(self, k: int, mid: int) -> torch.Tensor:
        w = self.dw.weight[:mid]
        if k <= 5:
            w = (w[:, :, 1:6, 1:6].reshape(mid, 25) @ self.t7to5.t()).reshape(mid, 1, 5, 5)
        if k == 3:
            w = (w[:, :, 1:4, 1:4].reshape(mid, 9) @ self.t5to3.t()).reshape(mid, 1, 3, 3)
        return w

    def forward(self, x: torch.Tensor, k: int, e: int) -> torch.Tensor:
        act = _ACT[self.act]
        mid = arch.mid_channels(self.cin, e)
        y = act(_bn(F.conv2d(x, self.expand.weight[:mid]), self.expand_bn, mid))
        y = F.conv2d(y, self.kernel(k, mid), None, self.stride, k // 2, 1, mid)
        y = act(_bn(y, self.dw_bn, mid))
        if self.use_se:
            s = arch.se_channels(mid)
            g = y.mean((2, 3), keepdim=True)
            g = F.relu(F.conv2d(g, self.se_reduce.weight[:s, :mid], self.se_reduce.bias[:s]))
            g = F.hardsigmoid(F.conv2d(g, self.se_expand.weight[:mid, :s], self.se_expand.bias[:mid]))
            y = y * g
        y = _bn(F.conv2d(y, self.project.weight[:, :mid]), self.project_bn, self.cout)
        return x + y if self.residual else y


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu",
                 bn: bool = True, bias: bool = False):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act == "relu":
            layers.append(nn.ReLU())
        elif act == "h_swish":
            layers.append(nn.Hardswish())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, mid: int, s: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(mid, s, 1), nn.Conv2d(s, mid, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * F.hardsigmoid(self.expand(g))


class Block(nn.Module):
    """A static MBConv block (what :func:`extract` builds)."""

    def __init__(self, cin: int, cout: int, mid: int, k: int, stride: int, act: str, se: bool, expand: bool = True):
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, act=act) if expand else nn.Identity()
        self.dw = ConvBNAct(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, arch.se_channels(mid)) if se else nn.Identity()
        self.project = ConvBNAct(mid, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class Head(nn.Module):
    def __init__(self, cin: int, final_expand: int, feature_mix: int, n_classes: int):
        super().__init__()
        self.final_expand = ConvBNAct(cin, final_expand, 1, act="h_swish")
        self.feature_mix = ConvBNAct(final_expand, feature_mix, 1, act="h_swish", bn=False)
        self.classifier = nn.Linear(feature_mix, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(self.feature_mix(x), 1))


class OFAMobileNetV3(nn.Module):
    """The elastic supernet.  ``forward(x, cfg)`` runs sub-network ``cfg`` (an :class:`OFAConfig`);
    the input's spatial size is the resolution (``cfg.r`` is not used to resize)."""

    def __init__(self, width: float = 1.0, n_classes: int = arch.N_CLASSES):
        super().__init__()
        w = arch.widths(width)
        self.width = float(width)
        self.first_conv = ConvBNAct(3, w.first, 3, 2, act="h_swish")
        self.first_block = Block(w.first, w.first_block, w.first, 3, 1, "relu", False, expand=False)
        blocks, cin = [], w.first_block
        for s in range(N_STAGES):
            for j in range(MAX_DEPTH):
                stride = arch.STAGE_STRIDES[s] if j == 0 else 1
                blocks.append(DynamicMBConv(cin, w.stages[s], stride, arch.STAGE_ACTS[s], arch.STAGE_SE[s]))
                cin = w.stages[s]
        self.blocks = nn.ModuleList(blocks)
        self.head = Head(cin, w.final_expand, w.feature_mix, n_classes)

    def forward(self, x: torch.Tensor, cfg: OFAConfig) -> torch.Tensor:
        x = self.first_block(self.first_conv(x))
        for s, j, k, e in cfg.active_blocks():
            x = self.blocks[4 * s + j](x, k, e)
        return self.head(x)


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


@torch.no_grad()
def extract(supernet: OFAMobileNetV3, cfg: OFAConfig) -> nn.Sequential:
    """A standalone network for ``cfg`` with the supernet's (sliced, kernel-transformed) weights."""
    import copy

    layers: list[nn.Module] = [copy.deepcopy(supernet.first_conv), copy.deepcopy(supernet.first_block)]
    for s, j, k, e in cfg.active_blocks():
        src = supernet.blocks[4 * s + j]
        mid = arch.mid_channels(src.cin, e)
        b = Block(src.cin, src.cout, mid, k, src.stride, src.act, src.use_se)
        b.expand[0].weight.copy_(src.expand.weight[:mid])
        _copy_bn(b.expand[1], src.expand_bn, mid)
        b.dw[0].weight.copy_(src.kernel(k, mid))
        _copy_bn(b.dw[1], src.dw_bn, mid)
        if src.use_se:
            sc = arch.se_channels(mid)
            b.se.reduce.weight.copy_(src.se_reduce.weight[:sc, :mid])
            b.se.reduce.bias.copy_(src.se_reduce.bias[:sc])
            b.se.expand.weight.copy_(src.se_expand.weight[:mid, :sc])
            b.se.expand.bias.copy_(src.se_expand.bias[:mid])
        b.project[0].weight.copy_(src.project.weight[:, :mid])
        _copy_bn(b.project[1], src.project_bn, src.cout)
        layers.append(b)
    layers.append(copy.deepcopy(supernet.head))
    net = nn.Sequential(*layers)
    net.train(supernet.training)
    return net


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[torch.Tensor], forward=None) -> int:
    """Re-estimate every BatchNorm's running mean/var as the plain average over ``batches``
    (OFA's ``set_running_statistics``).  ``forward(net, x)`` defaults to ``net(x)``.  Returns the
    number of batches used; the network's train/eval mode is restored."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    was_training = net.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the mean over all batches seen
    net.train()
    n = 0
    try:
        for x in batches:
            (forward or (lambda model, inp: model(inp)))(net, x)
            n += 1
    finally:
        for m, mom in saved:
            m.momentum = mom
        net.train(was_training)
    return n


# --- loading OFA's published weights ----------------------------------------------------------
_RENAMES = [
    (r"^first_conv\.conv\.", "first_conv.0."), (r"^first_conv\.bn\.", "first_conv.1."),
    (r"^blocks\.0\.conv\.depth_conv\.conv\.", "first_block.dw.0."),
    (r"^blocks\.0\.conv\.depth_conv\.bn\.", "first_block.dw.1."),
    (r"^blocks\.0\.conv\.point_linear\.conv\.", "first_block.project.0."),
    (r"^blocks\.0\.conv\.point_linear\.bn\.", "first_block.project.1."),
    (r"\.conv\.inverted_bottleneck\.conv\.conv\.", ".expand."),
    (r"\.conv\.inverted_bottleneck\.bn\.bn\.", ".expand_bn."),
    (r"\.conv\.depth_conv\.conv\.conv\.", ".dw."),
    (r"\.conv\.depth_conv\.conv\.7to5_matrix$", ".t7to5"), (r"\.conv\.depth_conv\.conv\.5to3_matrix$", ".t5to3"),
    (r"\.conv\.depth_conv\.bn\.bn\.", ".dw_bn."),
    (r"\.conv\.depth_conv\.se\.fc\.reduce\.", ".se_reduce."), (r"\.conv\.depth_conv\.se\.fc\.expand\.", ".se_expand."),
    (r"\.conv\.point_linear\.conv\.conv\.", ".project."), (r"\.conv\.point_linear\.bn\.bn\.", ".project_bn."),
    (r"^final_expand_layer\.conv\.", "head.final_expand.0."), (r"^final_expand_layer\.bn\.", "head.final_expand.1."),
    (r"^feature_mix_layer\.conv\.", "head.feature_mix.0."), (r"^classifier\.linear\.", "head.classifier."),
]


def rename_ofa_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OFA's state-dict keys -> this module's (OFA's ``blocks.1..20`` are our ``blocks.0..19``)."""
    out = {}
    for key, val in state.items():
        m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if m and m.group(1) != "0":
            key = f"blocks.{int(m.group(1)) - 1}.{m.group(2)}"
            rules = _RENAMES[6:]
        else:
            rules = _RENAMES[:6] + _RENAMES[-4:]
        for pat, rep in rules:
            key = re.sub(pat, rep, key)
        out[key] = val
    return out


def load_ofa_checkpoint(path: str, width: float = 1.0) -> OFAMobileNetV3:
    """An :class:`OFAMobileNetV3` with OFA's published weights read from ``path`` (strict)."""
    from automl.errors import ConfigError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no OFA checkpoint at {path!r}; see search_spaces/ofa/supernet.py for the URL") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = OFAMobileNetV3(width)
    missing, unexpected = net.load_state_dict(rename_ofa_keys(state), strict=False)
    if missing or unexpected:
        raise ConfigError(f"checkpoint {path!r} does not match OFA MobileNetV3 w{width}: missing {missing[:8]}, "
                          f"unexpected {unexpected[:8]}")
    return net
