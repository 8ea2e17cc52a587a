"""Ranking subnets with a trained supernet, as ordinary evaluations through the equivalence cache.

:class:`SupernetAccuracy` is an evaluator (registered as ``supernet``): a genome's top-1 accuracy (%)
with the supernet's shared weights on a held-out set.  Its fidelity carries the digest of the
checkpoint's weights, the held-out set's digest and the evaluation batch size (BN uses batch
statistics, so the batch is part of the result), so the cache never mixes weights.

:func:`rank` scores a list of cells through the evaluation seam (``automl.evaluation.Seam``): the
first cell of each functional class is evaluated, the others are cache hits.  Note that in a
weight-sharing supernet two equivalent cells may run *different* shared weights (e.g. the same
conv on edge 1<-0 or on edge 2<-0); the class is scored once, by the first member ranked
(:func:`rank` goes through cells in the order given, so the choice is deterministic).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from automl._optional import progress_bar
from automl.errors import ConfigError
from automl.evaluator import Evaluator

from . import data as _data


class SupernetAccuracy(Evaluator):
    """Top-1 accuracy (%) of a subnet with a trained supernet's weights on held-out images.

    Options: ``checkpoint`` (a supernet.pt or its folder; ``"init"``: the untrained supernet that
    :class:`~evaluators.supernet.trainer.TrainConfig` ``init_config`` would start from), ``data`` (as in
    training; default: the
    data the supernet was trained on), ``test_per_class`` (the first k test images of each class;
    None: the whole test set), ``batch_size`` (evaluation batch; BatchNorm uses its statistics),
    ``device``, ``threads`` (torch threads; None: torch's default), ``init_config`` (the
    TrainConfig fields of the untrained supernet with ``checkpoint="init"``)."""

    name = "supernet"
    version = "1"
    objectives = {"supernet_accuracy": "max"}
    spaces = ("nb201",)
    test_options: Mapping[str, Any] = {"checkpoint": "init", "test_per_class": 2, "batch_size": 20,
                                       "init_config": {"channels": 4, "cells": 1, "data": "synthetic:64:20:8:0"}}

    def __init__(self, checkpoint: str | None = None, data: str | None = None, test_per_class: int | None = 100,
                 batch_size: int = 500, device: str = "cpu", threads: int | None = None,
                 init_config: Mapping[str, Any] | None = None):
        if checkpoint is None:
            raise ConfigError("the supernet evaluator needs checkpoint=PATH (a trained supernet.pt) or 'init'")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if init_config is not None and checkpoint != "init":
            raise ConfigError("init_config only applies to checkpoint='init'")
        super().__init__(checkpoint=str(checkpoint), data=data, test_per_class=test_per_class,
                         batch_size=int(batch_size), device=device, threads=threads,
                         **({"init_config": dict(init_config)} if init_config is not None else {}))
        self.init_config = dict(init_config or {})
        self.checkpoint, self.data, self.test_per_class = str(checkpoint), data, test_per_class
        # images per forward pass (not Evaluator.batch_size, which counts genomes per evaluate_batch call)
        self.image_batch, self.device, self.threads = int(batch_size), device, threads
        self._loaded: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._loaded is not None:
            return self._loaded
        import torch

        from .trainer import load_supernet, resolve_device, weights_digest

        if self.threads:
            torch.set_num_threads(int(self.threads))
        ck, task, model = load_supernet(self.checkpoint, self.init_config, self.data)
        dev = resolve_device(self.device)
        model.to(dev).eval()
        images = _data.resolve(self.data or ck["config"]["data"])
        x, y = images.test_subset(self.test_per_class)
        mean = torch.tensor(images.mean).view(1, 3, 1, 1)
        std = torch.tensor(images.std).view(1, 3, 1, 1)
        xt = ((torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0 - mean) / std).to(dev)
        self._loaded = {"task": task, "model": model, "x": xt, "y": torch.from_numpy(y.astype(np.int64)).to(dev),
                        "weights": weights_digest(ck["model"]), "heldout": _data.digest(x, y),
                        "heldout_name": f"{images.name}[test:first {self.test_per_class}/class]",
                        "space": ck["space"], "device_class": "cuda" if dev.startswith("cuda") else "cpu"}
        return self._loaded

    def fidelity(self) -> dict[str, Any]:
        ld = self._load()
        return {"weights": ld["weights"], "supernet": ld["space"], "heldout": ld["heldout"],
                "heldout_images": int(len(ld["y"])), "eval_batch": self.image_batch, "bn": "batch-statistics",
                "metric": "top1%", "device": ld["device_class"]}

    def evaluate(self, genome: Any, space: Any = None) -> dict[str, float]:
        import torch

        ld = self._load()
        task, model, x, y = ld["task"], ld["model"], ld["x"], ld["y"]
        path = task.path_of(genome)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(y), self.image_batch):
                logits = task.forward(model, x[i:i + self.image_batch], path)
                correct += int((logits.argmax(1) == y[i:i + self.image_batch]).sum())
        return {"supernet_accuracy": 100.0 * correct / len(y)}

    def evaluate_batch(self, genomes: Sequence[Any], space: Any = None) -> list[dict[str, float]]:
        """Several subnets in one call (the model and held-out set stay loaded)."""
        return [self.evaluate(g, space) for g in genomes]


def rank(checkpoint: str | os.PathLike, cells: Iterable[Any] | None = None, *, cache: str | None = None,
         progress: bool = False, **evaluator_options: Any) -> dict[str, Any]:
    """Score ``cells`` (genomes or text; default all cells of the supernet's space) with the
    supernet through the equivalence cache.  Returns ``{"scores": {text: accuracy}, "charged":
    evaluations run, "cells": cells scored, "classes": distinct functional digests, "digest_of":
    {text: functional digest}, "fidelity": ...}``.
    ``cache``: an sqlite file to share across calls (default: in memory)."""
    from automl.cache import Cache
    from automl.dispatch import Dispatcher
    from automl.evaluation import Seam, run_batch
    from automl.registry import get_space

    ev = SupernetAccuracy(checkpoint=str(checkpoint), **evaluator_options)
    ld = ev._load()
    space = get_space(ld["task"].space)
    if cells is None:
        cells = [ld["task"].genome_of(p) for p in ld["task"].all_paths()]
    genomes = [space.from_text(c) if isinstance(c, str) else c for c in cells]
    scores: dict[str, float] = {}
    digest_of: dict[str, str] = {}
    bar = progress_bar(total=len(genomes), unit="cell", desc="rank") if progress else None

    def done(cand: Any, res: Any) -> None:  # the dispatcher tells every cell once: hit, twin or evaluated
        digest_of[cand.text] = res.hash
        if not res.ok:
            raise ConfigError(f"ranking {cand.text} failed: {res.error}")
        scores[cand.text] = float(res.objectives["supernet_accuracy"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(charged=d.charged)

    # The engine's one loop (automl.dispatch): cells of one functional class coalesce, cached
    # classes are answered without a forward pass; the rest run in batches of subnets.
    d = Dispatcher(Seam(space, ev, Cache(cache)), tell=done, space_stats=False)
    try:
        tickets = d.offer_many(d.candidate(g) for g in genomes)
        step = 64
        for i in range(0, len(tickets), step):
            chunk = tickets[i:i + step]
            raws = run_batch(ev, space, [t.candidate.text for t in chunk], genomes=[t.candidate.genome for t in chunk])
            for t, raw in zip(chunk, raws):
                d.complete(t.candidate.id, raw)
    finally:
        if bar is not None:
            bar.close()
        d.seam.cache.close()
    charged = d.charged
    return {"scores": scores, "digest_of": digest_of, "charged": charged, "cells": len(genomes),
            "classes": len(set(digest_of.values())), "fidelity": ev.fidelity()}


def kendall_tau(scores: Mapping[str, float], dataset: str = "cifar10") -> float:
    """Kendall tau-b between supernet scores and NB201's 200-epoch test accuracy on ``dataset``."""
    from scipy.stats import kendalltau

    from evaluators.tabular.tables import NB201_COLUMNS, nb201_table

    if dataset not in NB201_COLUMNS:
        raise ConfigError(f"unknown NB201 dataset {dataset!r}; choose one of {', '.join(NB201_COLUMNS)}")
    table = nb201_table()
    col = list(NB201_COLUMNS).index(dataset)
    texts = list(scores)
    if len(texts) < 2:
        raise ConfigError("Kendall tau needs at least two ranked cells")
    truth = [float(table.acc[table.row(t), col]) for t in texts]
    return float(kendalltau([scores[t] for t in texts], truth, variant="b").statistic)
