"""NEAS: one-shot ensemble architecture search with diversity-guided search-space shrinking, on
the supernet machinery of :mod:`evaluators.supernet` (see docs/ensembles.md).

Importing this package does not import torch.
"""
from __future__ import annotations

from typing import Any

_LAZY = {"train_supernet": "api", "search": "api", "shrunk_space_options": "api", "retrain": "evaluate",
         "EnsembleSupernetAccuracy": "evaluate", "EnsemblePath": "shrink", "SCORES": "shrink",
         "EnsemblePaths": "network", "ensemble_step": "network"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = sorted(_LAZY)
