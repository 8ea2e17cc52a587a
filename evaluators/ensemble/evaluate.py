"""Scoring ensembles: with a trained K-path supernet (an evaluator, through the cache), and
stand-alone from scratch (:func:`retrain`)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from automl.errors import ConfigError
from automl.evaluator import Evaluator
from automl.types import Evaluation
from evaluators.supernet import data as _data


def heldout_images(images: "_data.ImageData", train_per_class: int | None, val_per_class: int | None,
                   heldout: str = "val") -> tuple[np.ndarray, np.ndarray]:
    """Images to score ensembles on.  ``heldout="val"``: for each class, the ``val_per_class``
    training images that follow the first ``train_per_class`` (so never seen in training; needs a
    training subset); ``"test"``: the first ``val_per_class`` test images of each class."""
    if heldout == "test":
        return images.test_subset(val_per_class)
    if heldout != "val":
        raise ConfigError(f"heldout must be 'val' or 'test', got {heldout!r}")
    if train_per_class is None:
        raise ConfigError("the supernet was trained on the whole training set: there is no validation split "
                          "(pass heldout='test' or train with train_per_class)")
    if val_per_class is None or int(val_per_class) < 1:
        raise ConfigError(f"val_per_class must be >= 1, got {val_per_class}")
    first = _data.stratified_first(images.y_train, int(train_per_class) + int(val_per_class), images.num_classes)
    used = set(_data.stratified_first(images.y_train, int(train_per_class), images.num_classes).tolist())
    idx = np.array([i for i in first if i not in used], dtype=np.int64)
    return images.x_train[idx], images.y_train[idx]


def _normalise(x: np.ndarray, images, device: str):
    import torch

    mean = torch.tensor(images.mean).view(1, 3, 1, 1)
    std = torch.tensor(images.std).view(1, 3, 1, 1)
    return ((torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0 - mean) / std).to(device)


class EnsembleSupernetAccuracy(Evaluator):
    """Top-1 accuracy (%) of an ensemble's mean logits with a trained K-path supernet's weights,
    its multiply-accumulates, and the MACs ("FLOPs") budget as a constraint.

    Objectives (the first is what single-objective strategies optimise): ``ensemble_accuracy``
    (max), ``macs`` (min; stem and shared trunk once, each distinct branch once).  With
    ``macs_budget``, the result carries the constraint ``macs`` = ``macs / macs_budget - 1``
    (core's :class:`automl.types.Evaluation`: <= 0 holds, > 0 is the relative excess, the
    convention of ``ofa-hw``).  With ``macs_floor``, a second constraint ``macs_floor`` =
    ``1 - macs / macs_floor`` (> 0: the relative shortfall) keeps the search at *equal* MACs, not
    merely at most: budget and floor together are a MACs window (the fair single-network side of an
    ensemble-vs-single comparison, docs/ensembles.md).  An ensemble outside the window is never
    the best; evolution's tournaments and the multi-objective strategies order infeasible ones
    after feasible ones, by violation (Deb's rule).

    Works on any layer-wise ensemble space (``nb201-ensemble``, ``ofa-ensemble``) whose base has
    the supernet's sizes.  Options: ``checkpoint`` (supernet.pt or folder; ``"init"`` with
    ``init_config``: the untrained supernet), ``data`` (default: the supernet's), ``heldout``
    ``"val"`` (training images after the supernet's ``train_per_class``, default) or ``"test"``,
    ``val_per_class``, ``batch_size``, ``macs_budget`` (None: unconstrained), ``macs_floor``
    (None: no lower bound), ``device``, ``threads``."""

    name = "ensemble-supernet"
    # 2: the MACs budget is a core constraint (relative excess); the old `score` (accuracy, or a
    # negative penalty when over budget) and `macs_violation` objectives are gone (old cache keys retire)
    version = "2"
    objectives = {"ensemble_accuracy": "max", "macs": "min"}
    spaces = ("nb201-ensemble", "ofa-ensemble")
    test_options: Mapping[str, Any] = {
        "checkpoint": "init", "val_per_class": 2, "batch_size": 20, "macs_budget": 1e6,
        "init_config": {"channels": 8, "cells": 1, "data": "synthetic:200:20:8:0", "train_per_class": 10}}

    def __init__(self, checkpoint: str | None = None, data: str | None = None, heldout: str = "val",
                 val_per_class: int | None = 100, batch_size: int = 500, macs_budget: float | None = None,
                 device: str = "cpu", threads: int | None = None, init_config: Mapping[str, Any] | None = None,
                 macs_floor: float | None = None):
        if checkpoint is None:
            raise ConfigError("the ensemble-supernet evaluator needs checkpoint=PATH (a trained supernet.pt) or 'init'")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        for name, v in (("macs_budget", macs_budget), ("macs_floor", macs_floor)):
            if v is not None and not (math.isfinite(float(v)) and float(v) > 0):
                raise ConfigError(f"{name} must be a number > 0, got {v}")
        if macs_floor is not None and macs_budget is not None and float(macs_floor) > float(macs_budget):
            raise ConfigError(f"macs_floor {macs_floor} is above macs_budget {macs_budget}: no ensemble fits")
        super().__init__(checkpoint=str(checkpoint), data=data, heldout=heldout, val_per_class=val_per_class,
                         batch_size=int(batch_size), macs_budget=macs_budget, device=device, threads=threads,
                         **({"init_config": dict(init_config)} if init_config is not None else {}),
                         **({"macs_floor": float(macs_floor)} if macs_floor is not None else {}))
        self.checkpoint, self.data, self.heldout, self.val_per_class = str(checkpoint), data, heldout, val_per_class
        self.batch_size, self.device, self.threads = int(batch_size), device, threads
        self.macs_budget = None if macs_budget is None else float(macs_budget)
        self.macs_floor = None if macs_floor is None else float(macs_floor)
        self.init_config = dict(init_config or {})
        self._loaded: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._loaded is not None:
            return self._loaded
        import torch

        from evaluators.supernet.trainer import load_supernet, resolve_device, weights_digest

        if self.threads:
            torch.set_num_threads(int(self.threads))
        ck, task, model = load_supernet(self.checkpoint, {**ensemble_config_defaults(), **self.init_config}, self.data)
        if not hasattr(task, "trunk"):
            raise ConfigError(f"{self.checkpoint} is a {ck['space']['name']} supernet, not a layer-wise "
                              "(ensemble) one; train it with `automl ensemble train`")
        dev = resolve_device(self.device)
        model.to(dev).eval()
        images = _data.resolve(self.data or ck["config"]["data"])
        x, y = heldout_images(images, ck["config"].get("train_per_class"), self.val_per_class, self.heldout)
        self._loaded = {"task": task, "model": model, "x": _normalise(x, images, dev),
                        "y": torch.from_numpy(y.astype(np.int64)).to(dev), "weights": weights_digest(ck["model"]),
                        "heldout": _data.digest(x, y), "space": ck["space"],
                        "device_class": "cuda" if dev.startswith("cuda") else "cpu"}
        return self._loaded

    def fidelity(self) -> dict[str, Any]:
        ld = self._load()
        return {"weights": ld["weights"], "supernet": ld["space"], "heldout": ld["heldout"],
                "heldout_images": int(len(ld["y"])), "eval_batch": self.batch_size, "bn": "batch-statistics",
                "metric": "top1% of mean logits", "macs_budget": self.macs_budget, "device": ld["device_class"],
                # only when set, so the cache keys of runs without a floor stay what they were
                **({"macs_floor": self.macs_floor} if self.macs_floor is not None else {})}

    def evaluate(self, genome: Any, space: Any = None) -> dict[str, float]:
        ld = self._load()
        task, model, x, y = ld["task"], ld["model"], ld["x"], ld["y"]
        if space is None:
            from automl.registry import get_space

            space = get_space(task.space, **task.space_options())
        if space.base.name != task.base.name or space.base.config() != task.base.config():
            raise ConfigError(f"the space counts MACs for a {space.base.name} base {space.base.config()} but the "
                              f"supernet is a {task.base.name} base {task.base.config()}")
        paths = task.ensemble_paths(genome)
        correct = 0
        for i in range(0, len(y), self.batch_size):
            logits = task.predict_members(model, x[i:i + self.batch_size], paths).mean(0)
            correct += int((logits.argmax(1) == y[i:i + self.batch_size]).sum())
        acc = 100.0 * correct / len(y)
        macs = float(space.macs(genome))
        out = {"ensemble_accuracy": acc, "macs": macs}
        cons = {}
        if self.macs_budget is not None:
            cons["macs"] = macs / self.macs_budget - 1.0
        if self.macs_floor is not None:
            cons["macs_floor"] = 1.0 - macs / self.macs_floor
        return Evaluation(out, cons) if cons else out


def ensemble_config_defaults(base: str = "nb201-stages") -> dict[str, Any]:
    """TrainConfig fields that make a NEAS K-path supernet over layer-wise ``base`` (ensemble
    sampler and step rule)."""
    return {"space": base, "path_sampler": "ensemble", "step_rule": "ensemble"}


def retrain(genome: Any, space: Any, images: "_data.ImageData", *, epochs: int = 10, batch_size: int = 256,
            lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4, grad_clip: float = 5.0,
            seed: int = 0, train_per_class: int | None = None, test_per_class: int | None = None,
            device: str = "cpu", augment: bool = True) -> dict[str, float]:
    """Train the ensemble ``genome`` (a stand-alone network: shared trunk once, one branch per
    distinct member, ordinary BatchNorm) from scratch and return its test top-1 (%) and MACs.
    SGD with momentum, cosine learning rate per epoch, crop + flip, loss ``K * CE(mean logits)``
    with the trunk's gradient divided by K (as in supernet training); seeded by ``seed``."""
    import torch
    import torch.nn.functional as F

    from evaluators.supernet.trainer import Batcher, init_model, resolve_device

    from .network import build_ensemble_net, count_macs

    dev = resolve_device(device)
    tr = images.train_subset(train_per_class)

    class _Task:
        def build(self):
            return build_ensemble_net(genome, space.base)  # any layer-wise base

    model = init_model(_Task(), seed)
    macs = count_macs(model, space.base.resolution)
    model.to(dev)
    k = len(model.branches)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    batcher = Batcher(tr.x_train, tr.y_train, tr.mean, tr.std, dev, augment)
    n = len(tr.y_train)
    for e in range(epochs):
        for g in opt.param_groups:
            g["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * e / epochs))
        order = np.random.default_rng([seed, 10, e]).permutation(n)
        model.train()
        for s in range(0, n, batch_size):
            x, y = batcher(order[s:s + batch_size], int(np.random.default_rng([seed, 11, e, s]).integers(1 << 62)))
            opt.zero_grad(set_to_none=True)
            (F.cross_entropy(model(x), y) * k).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
    xt, yt = images.test_subset(test_per_class)
    model.eval()
    xt_ = _normalise(xt, images, dev)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(yt), 1000):
            correct += int((model(xt_[i:i + 1000]).argmax(1).cpu().numpy() == yt[i:i + 1000]).sum())
    return {"test_acc": 100.0 * correct / len(yt), "macs": float(macs), "test_images": int(len(yt))}
