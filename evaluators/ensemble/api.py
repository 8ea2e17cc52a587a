"""Python entry points of NEAS: train the K-path supernet (stage 1), search ensembles on it under
a MACs budget through the engine (stage 2).  Retraining from scratch: :func:`.evaluate.retrain`."""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from automl.errors import ConfigError

from .evaluate import ensemble_config_defaults

SHRINK_KEYS = ("k", "splits", "shrink_every", "shrink_drop", "lam", "score", "score_samples", "probe_images", "min_ops")


def train_supernet(out: str | os.PathLike, *, k: int = 2, splits: Sequence[int] | None = None, shrink_every: int = 0,
                   shrink_drop: int = 1, lam: float = 1.0, score: str = "potential+diversity", score_samples: int = 32,
                   probe_images: int = 500, min_ops: int = 1, device: str | None = "auto", progress: bool = False,
                   checkpoint_every: int = 0, max_steps: int | None = None, threads: int | None = None, images=None,
                   base: str = "nb201-stages", base_options: dict[str, Any] | None = None,
                   **train_config: Any) -> dict[str, Any]:
    """Train (or resume) a NEAS K-path supernet in ``out`` over the layer-wise ``base``
    (``nb201-stages``: sized by the ``channels``/``cells`` keywords; ``ofa-mbv3``: the elastic OFA
    MobileNetV3 supernet, sized by ``base_options`` -- width, resolution, kernels, expansions; the
    number of classes always comes from the data), each step one sampled ensemble of ``k`` paths
    with a split point (trunk gradient / k), and -- with ``shrink_every > 0`` -- diversity-guided
    search-space shrinking every that many epochs (``shrink_drop`` ops per decision, score
    ``potential + lam * diversity``).  Other keywords are
    :class:`evaluators.supernet.trainer.TrainConfig` fields (channels, cells, epochs, data, seed,
    train_per_class, ...).  Returns the trainer's summary (its history logs alive ops and drops)."""
    from evaluators.supernet.trainer import TrainConfig, train

    from .network import LAYERWISE

    if base not in LAYERWISE:
        raise ConfigError(f"unknown layer-wise base {base!r}; choose one of {', '.join(LAYERWISE)}")
    if base_options and base == "nb201-stages":
        raise ConfigError("the nb201-stages base is sized by channels= and cells=, not base_options")
    if base_options and "num_classes" in base_options:
        raise ConfigError("num_classes comes from the data, not base_options")
    if base != "nb201-stages":  # validated and completed with the defaults by building the base once
        sizes = LAYERWISE[base](**(base_options or {})).config()
        train_config["space_options"] = {n: v for n, v in sizes.items() if n not in ("name", "num_classes")}
    opts = {"k": k, "splits": None if splits is None else [int(s) for s in splits], "shrink_every": shrink_every,
            "shrink_drop": shrink_drop, "lam": lam, "score": score, "score_samples": score_samples,
            "probe_images": probe_images, "min_ops": min_ops}
    cfg = TrainConfig(**{**ensemble_config_defaults(base), **train_config, "path_options": opts})
    return train(out, cfg, device=device, checkpoint_every=checkpoint_every, progress=progress, max_steps=max_steps,
                 threads=threads, images=images)


def ensemble_space(checkpoint: str | os.PathLike) -> str:
    """The registered ensemble space (``nb201-ensemble``, ``ofa-ensemble``) of a NEAS supernet."""
    from evaluators.supernet.spaces import build_space
    from evaluators.supernet.trainer import load_checkpoint

    return build_space(load_checkpoint(checkpoint)["space"]).space


def shrunk_space_options(checkpoint: str | os.PathLike, k: int | None = None, shrunk: bool = True) -> dict[str, Any]:
    """Options of the ensemble space (:func:`ensemble_space`) that a trained NEAS supernet defines:
    its base and sizes, split points, ``k`` (default: the supernet's) and, with ``shrunk``, the ops
    its shrinking left alive."""
    from evaluators.supernet.trainer import load_checkpoint

    ck = load_checkpoint(checkpoint)
    cfg = ck["config"]
    if cfg.get("path_sampler") != "ensemble":
        raise ConfigError(f"{checkpoint} is not a NEAS ensemble supernet (path sampler {cfg.get('path_sampler')!r})")
    opts = dict(cfg.get("path_options") or {})
    from evaluators.supernet.spaces import build_space

    sp = ck["space"]
    task = build_space(sp)
    alive = np.asarray(ck["path_sampler"]["alive"]).astype(bool)
    per = task.per_layer
    allowed = [[np.flatnonzero(alive[li * per + d]).tolist() for d in range(per)] for li in range(task.n_layers)]
    out = {**task.space_options(), "k": int(k if k is not None else opts.get("k", 2)), "splits": opts.get("splits")}
    if out["k"] == 1:
        out["splits"] = [task.n_layers]  # a single network: nothing to split
    if shrunk:
        out["allowed"] = allowed
    return out


def search(checkpoint: str | os.PathLike, out: str | os.PathLike, *, k: int | None = None,
           macs_budget: float | None = None, strategy: str = "evolution", budget: int = 200, seed: int = 0,
           shrunk: bool = True, heldout: str = "val", val_per_class: int | None = 100, batch_size: int = 500,
           device: str = "cpu", threads: int | None = None, strategy_options: dict[str, Any] | None = None,
           cache: str | None = None, splits: Sequence[int] | None = None, distinct: bool = False,
           macs_floor: float | None = None) -> dict[str, Any]:
    """Stage 2: search ``k``-member ensembles (``k=1``: single networks) over the supernet's
    (shrunk) space with any strategy of the engine, scored by :class:`EnsembleSupernetAccuracy`
    under ``macs_budget`` (a constraint of every result: an over-budget ensemble never ranks) and, with
    ``macs_floor``, at or above that many MACs (a second constraint: the search compares at equal
    MACs, not merely at most).
    ``splits``: only these split points (default: the supernet's); ``distinct``: leave out
    ensembles whose members are all equal.  Returns the engine's summary plus ``best_feasible``
    (the best candidate within the budget and floor, or None) and ``space``/``space_options``."""
    from automl.api import search as engine_search

    space_options = shrunk_space_options(checkpoint, k=k, shrunk=shrunk)
    if splits is not None:
        space_options["splits"] = [int(s) for s in splits]
    if distinct:
        space_options["distinct"] = True
    ev = {"checkpoint": os.path.abspath(checkpoint), "heldout": heldout, "val_per_class": val_per_class,
          "batch_size": batch_size, "macs_budget": macs_budget, "device": device, "threads": threads,
          **({"macs_floor": macs_floor} if macs_floor is not None else {})}
    space = ensemble_space(checkpoint)
    summary = dict(engine_search(space=space, evaluator="ensemble-supernet", strategy=strategy, budget=budget,
                                 seed=seed, out=str(out), space_options=space_options, evaluator_options=ev,
                                 strategy_options=strategy_options, cache=cache).summary)
    # the core never ranks an infeasible result: its best (None when nothing is feasible) is
    # within the budget and the floor, the evaluator's constraints
    summary["best_feasible"] = summary.get("best")
    summary["space"], summary["space_options"] = space, space_options
    return summary
