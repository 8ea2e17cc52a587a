"""The space-specific half of one-shot training: how a space's genome maps to a path (one op index
per edge), how its supernet is built and run, where the gradient norms of an op's weights are, and
its functional equivalence classes.  The trainer, samplers and checkpoints know none of this.

To add a space, write a class with the attributes and methods of :class:`NB201Supernet` and put
it in ``SUPERNET_SPACES``.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from automl.errors import ConfigError

from .samplers import Path


class NB201Supernet:
    """NB201 weight-sharing supernet as in PA&DA's code: NB201 skeleton with ``cells`` searchable
    cells per stage (all sharing one 6-edge genotype), ResNet reduction blocks, every BatchNorm
    ``affine=False, track_running_stats=False`` (batch statistics, in training and evaluation).
    A path is the six op indices of ``search_spaces.cells.nb201.OPS`` in edge order."""

    name = "nb201"
    space = "nb201"  # the registered search space whose genomes the paths encode

    def __init__(self, channels: int = 16, cells: int = 5, num_classes: int = 10):
        if channels < 1 or cells < 1 or num_classes < 2:
            raise ConfigError(f"bad NB201 supernet size: channels={channels}, cells={cells}, classes={num_classes}")
        self.channels, self.cells, self.num_classes = int(channels), int(cells), int(num_classes)
        from search_spaces.cells import nb201

        self._nb201 = nb201
        self.n_edges, self.n_ops = len(nb201.EDGES), len(nb201.OPS)
        self.parametric_ops = (nb201.CONV1, nb201.CONV3)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels, "cells": self.cells, "num_classes": self.num_classes}

    def build(self):
        from search_spaces.cells.torch_cells import NB201Network

        return NB201Network(None, self.channels, self.cells, self.num_classes, bn_affine=False, bn_track=False)

    def forward(self, model, x, path: Path):
        return model(x, self._nb201.NB201Cell.from_codes(path))

    def op_grad_norms(self, model) -> np.ndarray:
        """(6, 5) gradient norm of each conv op's weight, summed over the searchable cells; 0 where
        the op has no parameters or got no gradient this step.  One device->host copy."""
        from search_spaces.cells.torch_cells import NB201SuperCell

        cells = ((0, layer) for layer in model.layers if isinstance(layer, NB201SuperCell))
        return conv_grad_norms(cells, self.n_edges, self.parametric_ops, (self.n_edges, self.n_ops))

    def path_of(self, genome: Any) -> Path:
        g = self._nb201.from_text(genome) if isinstance(genome, str) else genome
        return tuple(g.codes)

    def genome_of(self, path: Path):
        return self._nb201.NB201Cell.from_codes(path)

    def all_paths(self) -> list[Path]:
        return [tuple(c.codes) for c in self._nb201.all_cells()]

    def classes(self) -> list[list[Path]]:
        """Functional equivalence classes of all cells (the space's functional digest, through
        ``automl.hashing.Hasher``, so they follow whatever the space's probe is)."""
        return [list(c) for c in _classes(self.space)]


@functools.lru_cache(maxsize=4)
def _classes(space_name: str) -> tuple[tuple[Path, ...], ...]:
    from automl.hashing import Hasher
    from automl.registry import get_space

    space = get_space(space_name)
    h = Hasher(space)
    groups: dict[str, list[Path]] = {}
    for cell in _all_genomes(space_name):
        groups.setdefault(h.functional(cell), []).append(tuple(cell.codes))
    return tuple(tuple(g) for g in groups.values())


def _all_genomes(space_name: str):
    if space_name != "nb201":
        raise ConfigError(f"no enumeration of space {space_name!r}")
    from search_spaces.cells.nb201 import all_cells

    return all_cells()


def _layerwise(name: str):
    def make(**config: Any):
        from evaluators.ensemble.network import LAYERWISE

        return LAYERWISE[name](**config)

    return make


# NEAS's layer-wise supernets: NB201 with one genotype per stage, OFA MobileNetV3 per block slot
SUPERNET_SPACES = {"nb201": NB201Supernet, "nb201-stages": _layerwise("nb201-stages"),
                   "ofa-mbv3": _layerwise("ofa-mbv3")}


def build_space(config: dict[str, Any]):
    """A supernet space from its ``config()`` dict."""
    cfg = dict(config)
    name = cfg.pop("name", "nb201")
    if name not in SUPERNET_SPACES:
        raise ConfigError(f"no supernet for space {name!r}; supernet spaces: {', '.join(SUPERNET_SPACES)}")
    return SUPERNET_SPACES[name](**cfg)


def conv_grad_norms(cells: Any, per_cell: int, ops: Sequence[int], shape: tuple[int, int]) -> np.ndarray:
    """Gradient norm of each parametric op's conv weight, summed into ``shape`` (decisions, ops):
    ``cells`` yields ``(offset, NB201SuperCell)``, edge ``k`` of a cell adding to row
    ``offset + k``.  Shared by the single-path (PA&DA) and K-path (NEAS) adapters; one
    device->host copy."""
    import torch

    where, norms = [], []
    for offset, cell in cells:
        for k in range(per_cell):
            for o in ops:
                g = cell.ops[k][o][1].weight.grad
                if g is not None:
                    where.append((offset + k, o))
                    norms.append(torch.linalg.vector_norm(g))
    out = np.zeros(shape)
    if norms:
        for (r, o), v in zip(where, torch.stack(norms).cpu().tolist()):
            out[r, o] += v
    return out
