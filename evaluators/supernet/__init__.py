"""One-shot NAS: weight-sharing supernet training with path and data samplers (SPOS, FairNAS,
PA&DA, class-uniform), checkpoints, and ranking subnets through the equivalence cache.

Importing this package does not import torch.  See docs/supernets.md.
"""
from __future__ import annotations

from typing import Any

_LAZY = {"TrainConfig": "trainer", "train": "trainer", "load_checkpoint": "trainer", "weights_digest": "trainer",
         "SupernetAccuracy": "ranking", "rank": "ranking", "kendall_tau": "ranking",
         "load_cifar10": "data", "synthetic": "data", "ImageData": "data", "DataError": "data"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = sorted(_LAZY)
