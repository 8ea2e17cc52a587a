"""Torch modules for NB201 and NB101 cells, an NB201 weight-sharing super-cell, and small
network builders (for training one-shot supernets or stand-alone cells).

This is the only module of ``search_spaces.cells`` that imports torch.  Cells accept a genome or
its text form.  Shapes: every cell maps (B, C_in, H, W) to (B, C_out, H, W).
"""
from __future__ import annotations

from typing import Any, Sequence

from automl._optional import missing_error

try:
    import torch
    from torch import nn
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "torch"], "the torch cell modules (search_spaces.cells.torch_cells)") from exc

from automl.errors import ConfigError, InvalidCandidate

from . import nb101 as _nb101
from . import nb201 as _nb201


def _nb201_genome(g: Any) -> _nb201.NB201Cell:
    return _nb201.from_text(g) if isinstance(g, str) else g


def _nb101_genome(g: Any) -> _nb101.NB101Cell:
    return _nb101.from_text(g) if isinstance(g, str) else g


# --- NB201 ---------------------------------------------------------------------------------------

class ReLUConvBN(nn.Sequential):
    """NB201's ReLU -> Conv (no bias) -> BatchNorm (affine by default).  One-shot supernets use
    ``affine=False, track=False`` (BN without parameters, always normalising by batch statistics)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 track: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def nb201_op(name: str, channels: int, affine: bool = True, track: bool = True) -> nn.Module:
    """One NB201 edge op at ``channels`` channels, stride 1 (BN options as in :class:`ReLUConvBN`)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, affine=affine, track=track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, affine=affine, track=track)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidCandidate(f"unknown NB201 op {name!r}")


class NB201CellModule(nn.Module):
    """A fixed NB201 cell.  ``prune=True`` builds only live edges (same function, fewer modules)."""

    def __init__(self, genome: Any, channels: int, prune: bool = False, affine: bool = True, track: bool = True):
        super().__init__()
        self.genome = _nb201_genome(genome)
        codes = _nb201.pruned(self.genome.codes) if prune else self.genome.codes
        self.active = [k for k, c in enumerate(codes) if not (prune and c == _nb201.NONE)]
        self.edges = nn.ModuleDict({str(k): nb201_op(_nb201.OPS[codes[k]], channels, affine, track)
                                    for k in self.active})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for k in self.active:
            j, i = _nb201.EDGES[k]
            if nodes[i] is None:
                continue
            y = self.edges[str(k)](nodes[i])
            nodes[j] = y if nodes[j] is None else nodes[j] + y
        return nodes[3] if nodes[3] is not None else x.mul(0.0)


class NB201SuperCell(nn.Module):
    """Weight-sharing NB201 cell: all five ops on every edge.  ``forward(x, genome)`` runs the
    single path of ``genome``; ``forward(x, weights=w)`` with ``w`` of shape (6, 5) runs the
    weighted mixture (DARTS-style)."""

    def __init__(self, channels: int, affine: bool = True, track: bool = True):
        super().__init__()
        self.ops = nn.ModuleList(nn.ModuleList(nb201_op(op, channels, affine, track) for op in _nb201.OPS)
                                 for _ in range(6))

    def forward(self, x: torch.Tensor, genome: Any = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        if (genome is None) == (weights is None):
            raise ConfigError("pass exactly one of genome or weights")
        codes = _nb201_genome(genome).codes if genome is not None else None
        nodes = [x]
        for j in range(1, 4):
            acc = 0
            for k, (jj, i) in enumerate(_nb201.EDGES):
                if jj != j:
                    continue
                if codes is not None:
                    acc = acc + self.ops[k][codes[k]](nodes[i])
                else:
                    acc = acc + sum(weights[k, o] * op(nodes[i]) for o, op in enumerate(self.ops[k]))
            nodes.append(acc)
        return nodes[3]


class ResNetBlock(nn.Module):
    """NB201's reduction block: two ReLUConvBN 3x3 (the first with stride 2) plus a pooled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True):
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, stride=2, affine=affine, track=track)
        self.b = ReLUConvBN(c_out, c_out, 3, affine=affine, track=track)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """NB201's macro skeleton, small: stem, 3 stages of ``cells`` cells (C, 2C, 4C) joined by
    ResNet reduction blocks, BN-ReLU, global pooling, linear.  ``genome=None`` builds a supernet
    whose ``forward(x, genome)`` samples a path.  ``bn_affine=False, bn_track=False`` gives every
    BatchNorm of the network no parameters and batch statistics (the one-shot protocol)."""

    def __init__(self, genome: Any = None, channels: int = 16, cells: int = 1, num_classes: int = 10,
                 bn_affine: bool = True, bn_track: bool = True):
        super().__init__()
        self.genome = None if genome is None else _nb201_genome(genome)
        af, tr = bn_affine, bn_track
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels, affine=af, track_running_stats=tr))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResNetBlock(c, 2 * c, af, tr))
                c *= 2
            for _ in range(cells):
                layers.append(NB201SuperCell(c, af, tr) if self.genome is None
                              else NB201CellModule(self.genome, c, affine=af, track=tr))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c, affine=af, track_running_stats=tr), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor, genome: Any = None) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            if isinstance(layer, NB201SuperCell):
                if genome is None:
                    raise ConfigError("a supernet forward needs the genome of the path to run")
                x = layer(x, genome)
            else:
                x = layer(x)
        return self.head(x)


# --- NB101 ---------------------------------------------------------------------------------------

class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=False))


class NB101CellModule(nn.Module):
    """An NB101 cell as nasbench builds it (on the pruned graph): vertex channels by nasbench's
    rule, each vertex reading the input through its own 1x1 projection, inputs from other vertices
    truncated to the vertex's channels, outputs of the vertices feeding the output concatenated,
    plus a projection of the input when it feeds the output directly."""

    def __init__(self, genome: Any, c_in: int, c_out: int):
        super().__init__()
        self.genome = _nb101_genome(genome)
        self.matrix, self.op_names = self.genome.pruned
        n = len(self.op_names)
        m = self.matrix
        self.channels = _nb101.vertex_channels(m, c_out)
        self.proj = nn.ModuleDict({str(t): ConvBnRelu(c_in, self.channels[t], 1)
                                   for t in range(1, n - 1) if m[0][t]})
        ops = {}
        for t in range(1, n - 1):
            name, ch = self.op_names[t], self.channels[t]
            ops[str(t)] = (nn.MaxPool2d(3, stride=1, padding=1) if name == _nb101.MAXPOOL
                           else ConvBnRelu(ch, ch, 3 if name == _nb101.CONV3 else 1))
        self.ops = nn.ModuleDict(ops)
        self.out_proj = ConvBnRelu(c_in, c_out, 1) if m[0][n - 1] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.matrix, len(self.op_names)
        tensors: list[torch.Tensor] = [x]
        for t in range(1, n - 1):
            ch = self.channels[t]
            add = [tensors[s][:, :ch] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                add.append(self.proj[str(t)](x))
            tensors.append(self.ops[str(t)](sum(add[1:], add[0])))
        branches = [tensors[s] for s in range(1, n - 1) if m[s][n - 1]]
        if not branches:
            return self.out_proj(x)
        out = branches[0] if len(branches) == 1 else torch.cat(branches, dim=1)
        return out + self.out_proj(x) if self.out_proj is not None else out


class NB101Network(nn.Module):
    """NB101's skeleton, small: conv stem, ``stacks`` stacks of ``cells`` cells, 2x2 max-pooling
    and doubled channels between stacks, global pooling, linear."""

    def __init__(self, genome: Any, channels: int = 16, stacks: int = 3, cells: int = 1, num_classes: int = 10):
        super().__init__()
        genome = _nb101_genome(genome)
        self.stem = ConvBnRelu(3, channels, 3)
        layers: list[nn.Module] = []
        c = channels
        for s in range(stacks):
            if s:
                layers.append(nn.MaxPool2d(2, 2))
            for k in range(cells):
                c_out = 2 * c if (s and k == 0) else c
                layers.append(NB101CellModule(genome, c, c_out))
                c = c_out
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__: Sequence[str] = ["ReLUConvBN", "Zero", "nb201_op", "NB201CellModule", "NB201SuperCell", "ResNetBlock",
                          "NB201Network", "ConvBnRelu", "NB101CellModule", "NB101Network", "count_parameters"]
