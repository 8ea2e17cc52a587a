"""Torch side of NEAS ensembles: the layer-wise supernets (NB201 with one genotype per stage, OFA
MobileNetV3 per block slot) for the supernet trainer, the K-path *ensemble* step rule, member
predictions for shrinking, and the stand-alone ensemble network that is retrained from scratch."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from automl.errors import ConfigError

from search_spaces.ensemble import NB201Stages, OFALayers


class EnsemblePaths(list):
    """The K paths of one ensemble step (full-length paths that agree on the trunk's decisions)
    and the ``split`` (layers shared before the members branch)."""

    def __init__(self, paths: Sequence[tuple[int, ...]], split: int):
        super().__init__(tuple(int(o) for o in p) for p in paths)
        self.split = int(split)


class LayerwiseSupernet:
    """The torch half of a layer-wise base (:class:`search_spaces.ensemble.LayerwiseBase`): an
    adapter for :mod:`evaluators.supernet.trainer` (the attributes of ``NB201Supernet``: ``build``,
    ``forward``, ``n_edges``/``n_ops`` ...) that also cuts the network at a split point.

    A path is one op index per decision, layer after layer (``n_layers * per_layer``).  Generic
    here: ``trunk`` (stem + layers before the split), ``branch`` (layers from the split + head),
    ``forward``, ``predict_members`` (K members' logits, trunk run once), ``path_of`` and
    ``ensemble_paths``.  A base implements ``build()`` (the weight-sharing supernet), ``_stem``,
    ``_layer_modules(model)`` (one entry per layer) and ``_apply(entry, x, choice)``, ``_head``,
    and, for retraining from scratch, ``standalone_stem``/``standalone_layer``/``standalone_head``
    (ordinary modules, fresh weights).  ``LAYERWISE`` maps a base name to its adapter."""

    name = ""
    space = ""  # the registered ensemble space whose genomes the paths encode

    def __init__(self, base):
        self.base = base
        self.num_classes = base.num_classes
        self.n_layers, self.per_layer = base.n_layers, base.decisions_per_layer
        self.n_edges, self.n_ops = self.n_layers * self.per_layer, base.n_ops

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.base.config()}

    def space_options(self) -> dict[str, Any]:
        """``base`` and ``base_options`` of the ensemble space this supernet's paths belong to."""
        opts = self.config()
        opts.pop("name")
        return {"base": self.base.name, "base_options": opts}

    def default_alive(self) -> np.ndarray:
        """(n_edges, n_ops) bool: the ops each decision may take before any shrinking."""
        alive = np.zeros((self.n_edges, self.n_ops), dtype=bool)
        for li in range(self.n_layers):
            for d, ops in enumerate(self.base.default_allowed(li)):
                alive[li * self.per_layer + d, ops] = True
        return alive

    def choice(self, path, layer: int):
        return self.base.from_codes(layer, path[layer * self.per_layer:(layer + 1) * self.per_layer])

    def _run(self, model, x, path, start: int, stop: int):
        mods = self._layer_modules(model)
        for li in range(start, stop):
            x = self._apply(mods[li], x, self.choice(path, li))
        return x

    def trunk(self, model, x, path, split: int):
        return self._run(model, self._stem(model, x), path, 0, split)

    def branch(self, model, h, path, split: int):
        return self._head(model, self._run(model, h, path, split, self.n_layers))

    def forward(self, model, x, path):
        return self.branch(model, self.trunk(model, x, path, 0), path, 0)

    def path_of(self, member: Sequence[Any]) -> tuple[int, ...]:
        """A member (one layer choice, or its text, per layer) as a path."""
        if len(member) != self.n_layers:
            raise ConfigError(f"a member needs {self.n_layers} layer choices, got {len(member)}")
        out: list[int] = []
        for li, c in enumerate(member):
            c = self.base.from_text(c) if isinstance(c, str) else c
            self.base.validate_layer(li, c)
            out.extend(self.base.codes(c))
        return tuple(out)

    def ensemble_paths(self, genome) -> EnsemblePaths:
        return EnsemblePaths([self.path_of(m) for m in genome.members()], genome.split)

    def all_paths(self):
        raise ConfigError(f"the layer-wise {self.name} space is not enumerated")

    def classes(self):
        raise ConfigError(f"class-uniform sampling is not available for the layer-wise {self.name} supernet")

    def predict_members(self, model, x, paths: EnsemblePaths):
        """Per-member logits (K, B, classes) of one ensemble, trunk computed once, no gradient."""
        import torch

        with torch.no_grad():
            h = self.trunk(model, x, paths[0], paths.split)
            return torch.stack([self.branch(model, h, p, paths.split) for p in paths])


class NB201StagesSupernet(LayerwiseSupernet):
    """The PA&DA NB201 supernet (BN without parameters, batch statistics) where each stage has its
    own genotype.  A path is 18 op indices: stage 0's six edges, then stage 1's, then stage 2's.
    Layer ``l`` = the reduction block into stage ``l`` + the stage's cells."""

    name = "nb201-stages"
    space = "nb201-ensemble"

    def __init__(self, channels: int = 16, cells: int = 5, num_classes: int = 10, resolution: int = 32):
        super().__init__(NB201Stages(channels, cells, num_classes, resolution))
        self.channels, self.cells = self.base.channels, self.base.cells
        from search_spaces.cells import nb201

        self._nb201 = nb201
        self.parametric_ops = (nb201.CONV1, nb201.CONV3)

    def config(self) -> dict[str, Any]:  # (resolution only counts MACs; checkpoints name the sizes)
        return {"name": self.name, "channels": self.channels, "cells": self.cells, "num_classes": self.num_classes}

    def build(self):
        from search_spaces.cells.torch_cells import NB201Network

        return NB201Network(None, self.channels, self.cells, self.num_classes, bn_affine=False, bn_track=False)

    def _layer_modules(self, model) -> list[list]:
        from search_spaces.cells.torch_cells import ResNetBlock

        groups: list[list] = [[]]
        for layer in model.layers:
            if isinstance(layer, ResNetBlock):
                groups.append([])
            groups[-1].append(layer)
        return groups

    def _apply(self, group, x, cell):
        from search_spaces.cells.torch_cells import NB201SuperCell

        for m in group:
            x = m(x, cell) if isinstance(m, NB201SuperCell) else m(x)
        return x

    def _stem(self, model, x):
        return model.stem(x)

    def _head(self, model, x):
        return model.head(x)

    def op_grad_norms(self, model) -> np.ndarray:
        """(18, 5) gradient norm of each conv op's weight, summed over the stage's cells."""
        from evaluators.supernet.spaces import conv_grad_norms
        from search_spaces.cells.torch_cells import NB201SuperCell

        cells = ((li * self.per_layer, m) for li, group in enumerate(self._layer_modules(model))
                 for m in group if isinstance(m, NB201SuperCell))
        return conv_grad_norms(cells, self.per_layer, self.parametric_ops, (self.n_edges, self.n_ops))

    # stand-alone (retraining from scratch)
    def standalone_stem(self, affine: bool = True):
        from torch import nn

        C = self.channels
        return nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, affine=affine))

    def standalone_layer(self, layer: int, cell, affine: bool = True):
        from torch import nn
        from search_spaces.cells.torch_cells import NB201CellModule, ResNetBlock

        c = self.channels << layer
        mods: list[nn.Module] = [ResNetBlock(c // 2, c)] if layer else []
        mods += [NB201CellModule(cell, c, prune=True, affine=affine) for _ in range(self.cells)]
        return nn.Sequential(*mods)

    def standalone_head(self, affine: bool = True):
        from torch import nn

        cl = self.channels << (self.n_layers - 1)
        return nn.Sequential(nn.BatchNorm2d(cl, affine=affine), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(cl, self.num_classes))


class OFALayersSupernet(LayerwiseSupernet):
    """The elastic OFA MobileNetV3 supernet (:mod:`search_spaces.ofa.supernet`) as a layer-wise
    base (:class:`search_spaces.ensemble.OFALayers`): layer ``l`` = block slot ``l``, run at the
    path's (kernel, expansion) or skipped.  Every BatchNorm uses batch statistics (no running
    estimates), like the NB201 supernets: the statistics of one path are not another's.  Trunk:
    first conv, first block and the slots before the split; branch: the other slots and the head."""

    name = "ofa-mbv3"
    space = "ofa-ensemble"

    def __init__(self, width: float = 1.0, resolution: int = 32, num_classes: int = 10,
                 kernels: Sequence[int] = (3, 5, 7), expansions: Sequence[int] = (4, 6)):
        super().__init__(OFALayers(width, resolution, num_classes, kernels, expansions))

    def build(self):
        from torch import nn
        from search_spaces.ofa.supernet import OFAMobileNetV3

        net = OFAMobileNetV3(self.base.width, self.num_classes)
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None
        return net

    def _layer_modules(self, model):
        return model.blocks

    def _apply(self, block, x, choice):
        ke = self.base.kernel_expansion(choice)
        return x if ke is None else block(x, *ke)

    def _stem(self, model, x):
        return model.first_block(model.first_conv(x))

    def _head(self, model, x):
        return model.head(x)

    def op_grad_norms(self, model) -> np.ndarray:
        raise ConfigError("PA&DA path importance (gradient norms per op) is not implemented for the OFA supernet")

    # stand-alone (retraining from scratch)
    def _slot(self, layer: int) -> tuple[int, int, int, str, bool]:
        from search_spaces.ofa import arch
        from search_spaces.ofa.space import MAX_DEPTH

        w = arch.widths(self.base.width)
        s, j = divmod(layer, MAX_DEPTH)
        cin = w.stages[s] if j else (w.stages[s - 1] if s else w.first_block)
        return cin, w.stages[s], arch.STAGE_STRIDES[s] if j == 0 else 1, arch.STAGE_ACTS[s], arch.STAGE_SE[s]

    def standalone_stem(self, affine: bool = True):
        from torch import nn
        from search_spaces.ofa import arch
        from search_spaces.ofa.supernet import Block, ConvBNAct

        w = arch.widths(self.base.width)
        return nn.Sequential(ConvBNAct(3, w.first, 3, 2, act="h_swish"),
                             Block(w.first, w.first_block, w.first, 3, 1, "relu", False, expand=False))

    def standalone_layer(self, layer: int, choice, affine: bool = True):
        from torch import nn
        from search_spaces.ofa import arch
        from search_spaces.ofa.supernet import Block

        ke = self.base.kernel_expansion(choice)
        if ke is None:
            return nn.Identity()
        cin, cout, stride, act, se = self._slot(layer)
        return Block(cin, cout, arch.mid_channels(cin, ke[1]), ke[0], stride, act, se)

    def standalone_head(self, affine: bool = True):
        from search_spaces.ofa import arch
        from search_spaces.ofa.supernet import Head

        w = arch.widths(self.base.width)
        return Head(w.stages[-1], w.final_expand, w.feature_mix, self.num_classes)


#: layer-wise supernet adapters by base name (``search_spaces.ensemble.BASES``)
LAYERWISE: dict[str, type[LayerwiseSupernet]] = {"nb201-stages": NB201StagesSupernet, "ofa-mbv3": OFALayersSupernet}


def adapter_for(base) -> LayerwiseSupernet:
    """The supernet adapter of a layer-wise base object (same sizes)."""
    if base.name not in LAYERWISE:
        raise ConfigError(f"no supernet adapter for layer-wise base {base.name!r}; have {', '.join(LAYERWISE)}")
    return LAYERWISE[base.name](**base.config())


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

def build_ensemble_net(genome, base, affine: bool = True):
    """A stand-alone network computing ``genome``'s mean logits over a layer-wise ``base`` (a
    :class:`search_spaces.ensemble.LayerwiseBase`): one trunk (stem + shared layers), one branch
    per *distinct* member (equal branches would compute the same thing) with its own head,
    ordinary BN, fresh weights."""
    import torch
    from torch import nn

    ad = adapter_for(base)
    distinct, weights = [], []
    for b in genome.branches:
        key = tuple(base.structural_key(c) for c in b)
        if key in distinct:
            weights[distinct.index(key)] += 1
        else:
            distinct.append(key)
            weights.append(1)
    firsts = {tuple(base.structural_key(c) for c in b): b for b in reversed(genome.branches)}

    class EnsembleNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = ad.standalone_stem(affine)
            self.trunk = nn.Sequential(*[ad.standalone_layer(li, c, affine) for li, c in enumerate(genome.shared)])
            self.branches = nn.ModuleList(
                nn.Sequential(*[ad.standalone_layer(genome.split + i, c, affine) for i, c in enumerate(firsts[key])],
                              ad.standalone_head(affine)) for key in distinct)
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
