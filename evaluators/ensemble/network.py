"""Torch side of NEAS ensembles: the layer-wise NB201 supernet (one genotype per stage) for the
supernet trainer, the K-path *ensemble* step rule, member predictions for shrinking, and the
stand-alone ensemble network that is retrained from scratch."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from automl.errors import ConfigError

from search_spaces.ensemble import NB201Stages


class EnsemblePaths(list):
    """The K paths of one ensemble step (full-length paths that agree on the trunk's decisions)
    and the ``split`` (layers shared before the members branch)."""

    def __init__(self, paths: Sequence[tuple[int, ...]], split: int):
        super().__init__(tuple(int(o) for o in p) for p in paths)
        self.split = int(split)


class NB201StagesSupernet:
    """Adapter for :mod:`evaluators.supernet.trainer` (same attributes as ``NB201Supernet``): the
    PA&DA NB201 supernet (BN without parameters, batch statistics) where each stage has its own
    genotype.  A path is 18 op indices: stage 0's six edges, then stage 1's, then stage 2's.
    ``trunk``/``branch`` run the layers before / from a split point (layer ``l`` = the reduction
    block into stage ``l`` + the stage's cells)."""

    name = "nb201-stages"
    space = "nb201-ensemble"

    def __init__(self, channels: int = 16, cells: int = 5, num_classes: int = 10):
        self.base = NB201Stages(channels, cells, num_classes)
        self.channels, self.cells, self.num_classes = self.base.channels, self.base.cells, self.base.num_classes
        self.n_layers, self.per_layer = self.base.n_layers, self.base.decisions_per_layer
        self.n_edges, self.n_ops = self.n_layers * self.per_layer, self.base.n_ops
        from search_spaces.cells import nb201

        self._nb201 = nb201
        self.parametric_ops = (nb201.CONV1, nb201.CONV3)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels, "cells": self.cells, "num_classes": self.num_classes}

    def build(self):
        from search_spaces.cells.torch_cells import NB201Network

        return NB201Network(None, self.channels, self.cells, self.num_classes, bn_affine=False, bn_track=False)

    def _groups(self, model) -> list[list]:
        from search_spaces.cells.torch_cells import ResNetBlock

        groups: list[list] = [[]]
        for layer in model.layers:
            if isinstance(layer, ResNetBlock):
                groups.append([])
            groups[-1].append(layer)
        return groups

    def _run(self, model, x, path, start: int, stop: int):
        from search_spaces.cells.torch_cells import NB201SuperCell

        groups = self._groups(model)
        for li in range(start, stop):
            cell = self._nb201.NB201Cell.from_codes(path[li * self.per_layer:(li + 1) * self.per_layer])
            for m in groups[li]:
                x = m(x, cell) if isinstance(m, NB201SuperCell) else m(x)
        return x

    def trunk(self, model, x, path, split: int):
        return self._run(model, model.stem(x), path, 0, split)

    def branch(self, model, h, path, split: int):
        return model.head(self._run(model, h, path, split, self.n_layers))

    def forward(self, model, x, path):
        return self.branch(model, self.trunk(model, x, path, 0), path, 0)

    def op_grad_norms(self, model) -> np.ndarray:
        """(18, 5) gradient norm of each conv op's weight, summed over the stage's cells."""
        from evaluators.supernet.spaces import conv_grad_norms
        from search_spaces.cells.torch_cells import NB201SuperCell

        cells = ((li * self.per_layer, m) for li, group in enumerate(self._groups(model))
                 for m in group if isinstance(m, NB201SuperCell))
        return conv_grad_norms(cells, self.per_layer, self.parametric_ops, (self.n_edges, self.n_ops))

    def path_of(self, member: Sequence[Any]) -> tuple[int, ...]:
        """A member (one NB201 cell or text per stage) as a path."""
        cells = [self._nb201.from_text(c) if isinstance(c, str) else c for c in member]
        if len(cells) != self.n_layers:
            raise ConfigError(f"a member needs {self.n_layers} stage cells, got {len(cells)}")
        return tuple(o for c in cells for o in c.codes)

    def ensemble_paths(self, genome) -> EnsemblePaths:
        return EnsemblePaths([self.path_of(m) for m in genome.members()], genome.split)

    def all_paths(self):
        raise ConfigError("the stage-wise NB201 space has 15625^3 paths; it is not enumerated")

    def classes(self):
        raise ConfigError("class-uniform sampling is not available for the stage-wise NB201 supernet")

    def predict_members(self, model, x, paths: EnsemblePaths):
        """Per-member logits (K, B, classes) of one ensemble, trunk computed once, no gradient."""
        import torch

        with torch.no_grad():
            h = self.trunk(model, x, paths[0], paths.split)
            return torch.stack([self.branch(model, h, p, paths.split) for p in paths])


def ensemble_step(task, model, paths, x, y):
    """The NEAS K-path step: the trunk (layers before ``paths.split``) runs once, each of the K
    members runs its branch on it, and the ensemble's logits are the members' mean.  The loss is
    ``K * CE(mean logits)`` and the gradient entering the trunk is divided by K, so each branch
    gets the gradient of a single network on the ensemble's error and the trunk the members'
    average.  Returns (CE of the mean logits, [mean logits])."""
    import torch.nn.functional as F

    split = getattr(paths, "split", None)
    if split is None:
        raise ConfigError("the ensemble step rule needs the ensemble path sampler (paths with a split point)")
    k = len(paths)
    h = task.trunk(model, x, paths[0], split)
    if k > 1 and h.requires_grad:
        h.register_hook(lambda g: g / k)
    mean = sum(task.branch(model, h, p, split) for p in paths) / k
    loss = F.cross_entropy(mean, y)
    (loss * k).backward()
    return float(loss.detach()), [mean.detach()]


# --- stand-alone ensemble (retrained from scratch) ----------------------------------------------------

def build_ensemble_net(genome, base: NB201Stages, affine: bool = True):
    """A stand-alone network computing ``genome``'s mean logits: one trunk (stem + shared layers),
    one branch per *distinct* member (equal branches would compute the same thing), ordinary BN."""
    import torch
    from torch import nn
    from search_spaces.cells.torch_cells import NB201CellModule, ResNetBlock

    C, N = base.channels, base.cells

    def layer(li: int, cell) -> nn.Module:
        c = C << li
        mods: list[nn.Module] = [ResNetBlock(c // 2, c)] if li else []
        mods += [NB201CellModule(cell, c, prune=True, affine=affine) for _ in range(N)]
        return nn.Sequential(*mods)

    distinct, seen = [], set()
    for b in genome.branches:
        key = tuple(base.structural_key(c) for c in b)
        if key not in seen:
            seen.add(key)
            distinct.append(b)
    weights = [sum(1 for b in genome.branches
                   if tuple(base.structural_key(c) for c in b) == tuple(base.structural_key(c) for c in d))
               for d in distinct]

    class EnsembleNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, affine=affine))
            self.trunk = nn.Sequential(*[layer(li, c) for li, c in enumerate(genome.shared)])
            cl = C << (base.n_layers - 1)
            self.branches = nn.ModuleList(
                nn.Sequential(*[layer(genome.split + i, c) for i, c in enumerate(b)],
                              nn.BatchNorm2d(cl, affine=affine), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                              nn.Linear(cl, base.num_classes)) for b in distinct)
            self.register_buffer("w", torch.tensor(weights, dtype=torch.float32) / sum(weights))
            self.k = len(distinct)  # equal members are one branch: the ensemble is that many networks

        def forward(self, x):
            h = self.trunk(self.stem(x))
            if self.training and self.k > 1 and h.requires_grad:
                h.register_hook(lambda g: g / self.k)
            return sum(w * br(h) for w, br in zip(self.w, self.branches))

    return EnsembleNet()


def count_macs(model, size: int = 32) -> int:
    """Multiply-accumulates of convolutions and linear layers in one forward pass of one image
    (forward hooks; used to check the analytic count)."""
    import torch
    from torch import nn

    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in hs:
            h.remove()
    return total[0]
