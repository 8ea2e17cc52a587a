"""Supernet training: a component beside the search engine.  It samples paths and data through
the samplers of :mod:`.samplers`, runs steps, and owns its checkpoint.

Checkpoints are written atomically (temporary file, fsync, rename) at the end of every epoch and
every ``checkpoint_every`` steps.  Every random draw is derived from (seed, epoch, step) (path
choices, the epoch's example order, augmentation), never from a running generator, so a run
killed at any moment (even ``kill -9``) and resumed from its last checkpoint ends with the same
weights as an uninterrupted run on the same device.

A step takes the path(s) the path sampler chose; the *step rule* turns them into one update.
``accumulate`` (SPOS, PA&DA, FairNAS) back-propagates the mean cross-entropy of each path and
sums their gradients, then clips and steps.  Other rules (e.g. ensembles of K paths) plug in
through ``STEP_RULES``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path as FsPath
from typing import Any, Callable

import numpy as np
import xxhash

from automl._optional import progress_bar
from automl.errors import ConfigError

from . import data as _data
from .samplers import DATA_SAMPLERS, PATH_SAMPLERS, ClassUniformPath, check_sampler_names, resolve_sampler
from .spaces import build_space

CHECKPOINT = "supernet.pt"
SUMMARY = "supernet.json"
FORMAT = "automl-supernet/1"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run's result depends on (the device aside).  Defaults are PA&DA's
    NB201 protocol (C=16, N=5, 250 epochs, batch 256, SGD 0.05 / 0.9 / 2.5e-4, cosine, clip 5)."""

    space: str = "nb201"
    channels: int = 16
    cells: int = 5
    path_sampler: str = "spos"
    data_sampler: str = "uniform"
    step_rule: str = "accumulate"
    epochs: int = 250
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 2.5e-4
    grad_clip: float = 5.0
    augment: bool = True  # random crop (pad 4) and horizontal flip
    seed: int = 0
    data: str = "cifar10"  # a path, "cifar10" (cache dir) or "synthetic[:n_train:n_test:size:seed]"
    train_per_class: int | None = None  # a fixed stratified subset: the first k images of each class
    path_options: dict[str, Any] | None = None  # keyword options of the path sampler (e.g. NEAS: k, shrinking)
    # the supernet space's own size options, replacing channels/cells (which size the NB201 family);
    # e.g. the OFA MobileNetV3 supernet: {"width": 1.0, "resolution": 32, ...}
    space_options: dict[str, Any] | None = None

    def __post_init__(self):
        check_sampler_names(self.path_sampler, self.data_sampler)
        if self.step_rule not in STEP_RULES:
            raise ConfigError(f"unknown step rule {self.step_rule!r}; choose one of {', '.join(STEP_RULES)}")
        for k in ("epochs", "batch_size", "channels", "cells"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"{k} must be >= 1, got {getattr(self, k)}")
        for k in ("lr", "grad_clip"):
            v = float(getattr(self, k))
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{k} must be a finite number > 0, got {v}")

    def space_config(self, num_classes: int) -> dict[str, Any]:
        if self.space_options is not None:
            return {"name": self.space, **self.space_options, "num_classes": num_classes}
        return {"name": self.space, "channels": self.channels, "cells": self.cells, "num_classes": num_classes}


# --- step rules -------------------------------------------------------------------------------------

def accumulate_paths(task, model, paths, x, y):
    """Back-propagate each path's mean cross-entropy (gradients add up); return (loss, logits per path)."""
    import torch.nn.functional as F

    total, outs = 0.0, []
    for path in paths:
        logits = task.forward(model, x, path)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        total += float(loss.detach())
        outs.append(logits.detach())
    return total / len(paths), outs


def _ensemble_step(task, model, paths, x, y):
    from evaluators.ensemble.network import ensemble_step

    return ensemble_step(task, model, paths, x, y)


STEP_RULES: dict[str, Callable] = {"accumulate": accumulate_paths, "ensemble": _ensemble_step}


# --- helpers ----------------------------------------------------------------------------------------

def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available")
    return str(device)


def weights_digest(state_dict) -> str:
    """xxh3-128 of a model's tensors (names, dtypes, shapes, bytes): the identity of its weights."""
    h = xxhash.xxh3_128()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _to_saveable(obj):
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_saveable(v) for k, v in obj.items()}
    return obj


def _from_saved(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _from_saved(v) for k, v in obj.items()}
    return obj


def atomic_save(obj: Any, path: FsPath) -> None:
    """torch.save to a temporary file in the same folder, fsync, rename over ``path``, fsync the folder."""
    import torch

    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    import torch

    p = FsPath(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.exists():
        raise ConfigError(f"no supernet checkpoint at {p}")
    ck = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ConfigError(f"{p} is not a supernet checkpoint ({FORMAT})")
    return ck


def load_supernet(checkpoint: str | os.PathLike, init_config: dict[str, Any] | None = None, data: str | None = None):
    """(checkpoint dict, space adapter, model with its weights) of a trained supernet, or with
    ``checkpoint="init"`` the untrained supernet ``TrainConfig(**init_config)`` starts from (its
    number of classes read from ``data`` or the config's data)."""
    from .spaces import build_space

    if str(checkpoint) == "init":
        cfg = TrainConfig(**(init_config or {}))
        n_classes = _data.resolve(data or cfg.data).num_classes
        ck = {"space": cfg.space_config(n_classes), "config": dataclasses.asdict(cfg)}
        task = build_space(ck["space"])
        model = init_model(task, cfg.seed)
        ck["model"] = model.state_dict()
        return ck, task, model
    ck = load_checkpoint(checkpoint)
    task = build_space(ck["space"])
    model = task.build()
    model.load_state_dict(ck["model"])
    return ck, task, model


def _step_seed(*parts: int) -> int:
    return xxhash.xxh3_64_intdigest("|".join(map(str, parts)).encode()) & ((1 << 63) - 1)


def init_model(task, seed: int):
    """The supernet at its seeded initialisation (the global torch RNG is left as it was)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return task.build()


def make_samplers(cfg: TrainConfig, task, n_train: int):
    cls = resolve_sampler(PATH_SAMPLERS[cfg.path_sampler])
    if hasattr(cls, "for_task"):  # a sampler that needs the space's layout (NEAS ensembles)
        path = cls.for_task(task, **(cfg.path_options or {}))
    elif cfg.path_options:
        raise ConfigError(f"path sampler {cfg.path_sampler!r} takes no options, got {sorted(cfg.path_options)}")
    else:
        path = (ClassUniformPath(task.n_edges, task.n_ops, task.classes()) if cls is ClassUniformPath
                else cls(task.n_edges, task.n_ops))
    return path, DATA_SAMPLERS[cfg.data_sampler](n_train)


class Batcher:
    """Training images kept on the device as uint8; a batch is gathered, normalised and augmented there."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, std, device: str, augment: bool):
        import torch

        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).contiguous()  # N,3,H,W
        self.y = torch.from_numpy(y.astype(np.int64)).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.device, self.augment = device, augment

    def __call__(self, idx: np.ndarray, seed: int):
        import torch

        i = torch.from_numpy(idx).to(self.device)
        x = (self.x[i].float() / 255.0 - self.mean) / self.std
        if self.augment:
            g = torch.Generator(device=self.device)
            g.manual_seed(seed)
            b, _, h, w = x.shape
            pad = torch.nn.functional.pad(x, (4, 4, 4, 4))
            oy = torch.randint(0, 9, (b,), generator=g, device=self.device)
            ox = torch.randint(0, 9, (b,), generator=g, device=self.device)
            rows = (oy[:, None] + torch.arange(h, device=self.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=self.device))[:, None, None, :]
            x = pad[torch.arange(b, device=self.device)[:, None, None, None],
                    torch.arange(3, device=self.device)[None, :, None, None], rows, cols]
            flip = torch.rand(b, generator=g, device=self.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, self.y[i]


def _lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Cosine annealing to 0 over ``epochs``, stepped once per epoch (PyTorch's CosineAnnealingLR)."""
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * epoch / cfg.epochs))


# --- the trainer --------------------------------------------------------------------------------------

def train_step(cfg: TrainConfig, task, model, opt, params, path_sampler, data_sampler, step_rule, batcher,
               idx: np.ndarray, epoch: int, step: int, num_classes: int) -> tuple[float, int, float]:
    """One update on examples ``idx``: sample path(s), run the step rule, clip, let the samplers
    observe, step.  Returns (mean loss, correct predictions of the last path, seconds spent in
    the samplers and in what only they need: gradient norms, per-example scores)."""
    import torch

    x, y = batcher(idx, _step_seed(cfg.seed, 2, epoch, step))
    ts = time.perf_counter()
    paths = path_sampler.sample(np.random.default_rng([cfg.seed, 1, epoch, step]))
    t_sample = time.perf_counter() - ts
    opt.zero_grad(set_to_none=True)
    loss, logits = step_rule(task, model, paths, x, y)
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    ts = time.perf_counter()
    if path_sampler.needs_grad_norms:
        path_sampler.observe(paths, task.op_grad_norms(model))
    if data_sampler.needs_example_scores:
        onehot = torch.nn.functional.one_hot(y, num_classes).float()
        sc = torch.stack([torch.linalg.vector_norm(lg.float().softmax(1) - onehot, dim=1) for lg in logits]).mean(0)
        data_sampler.observe(idx, sc.cpu().numpy())
    t_sample += time.perf_counter() - ts
    opt.step()
    correct = int((logits[-1].argmax(1) == y).sum())
    if str(batcher.device).startswith("cuda"):
        torch.cuda.synchronize()
    return loss, correct, t_sample


def train(out: str | os.PathLike, config: TrainConfig | None = None, *, device: str | None = "auto",
          checkpoint_every: int = 0, progress: bool = False, max_steps: int | None = None,
          images: "_data.ImageData | None" = None, threads: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) a supernet in folder ``out``; return its summary (also written to
    ``out/supernet.json``).  ``config`` or keyword overrides give the :class:`TrainConfig`; an
    existing checkpoint in ``out`` is resumed and must have been made with the same config.
    ``checkpoint_every``: also checkpoint every that many steps (0: at epoch ends only).
    ``max_steps``: stop after that many steps of this invocation (checkpointing first).
    ``images``: already-loaded data (else ``config.data`` is loaded)."""
    import torch

    cfg = dataclasses.replace(config or TrainConfig(), **overrides) if overrides else (config or TrainConfig())
    out = FsPath(out)
    out.mkdir(parents=True, exist_ok=True)
    ck_path = out / CHECKPOINT
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if dev.startswith("cuda"):  # reproducible convolutions (a resumed run should match an uninterrupted one)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False

    images = (images if images is not None else _data.resolve(cfg.data)).train_subset(cfg.train_per_class)
    n = len(images.y_train)
    task = build_space(cfg.space_config(images.num_classes))
    path_sampler, data_sampler = make_samplers(cfg, task, n)
    step_rule = STEP_RULES[cfg.step_rule]

    model = init_model(task, cfg.seed).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]

    state = {"epoch": 0, "step": 0, "order": None, "history": [], "acc": [0.0, 0, 0], "done": False}
    data_id = _data.digest(images.x_train, images.y_train)
    if ck_path.exists():
        ck = load_checkpoint(ck_path)
        # checkpoints made before path_options / space_options existed resume too
        saved = {"path_options": None, "space_options": None, **ck["config"]}
        if saved != dataclasses.asdict(cfg) or ck["data_digest"] != data_id:
            raise ConfigError(f"{ck_path} was made with another configuration or data; use another folder "
                              f"(saved config: {json.dumps(ck['config'], sort_keys=True)})")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        path_sampler.load_state_dict(_from_saved(ck["path_sampler"]))
        data_sampler.load_state_dict(_from_saved(ck["data_sampler"]))
        state = _from_saved(ck["state"])
        state["history"] = list(ck["state"]["history"])
        if state["done"] and (out / SUMMARY).exists():  # finished before: keep its summary (and timing)
            return json.loads((out / SUMMARY).read_text())

    def save() -> None:
        atomic_save({"format": FORMAT, "config": dataclasses.asdict(cfg), "space": task.config(),
                     "data_name": images.name, "data_digest": data_id,
                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "path_sampler": _to_saveable(path_sampler.state_dict()),
                     "data_sampler": _to_saveable(data_sampler.state_dict()),
                     "state": _to_saveable(state)}, ck_path)

    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    done_steps = state["epoch"] * steps_per_epoch + state["step"]
    batcher = Batcher(images.x_train, images.y_train, images.mean, images.std, dev, cfg.augment)
    bar = None
    if progress and not state["done"]:
        bar = progress_bar(total=total, initial=done_steps, unit="step", mininterval=0.5,
                           desc=f"supernet {cfg.path_sampler}/{cfg.data_sampler}")
    timing = {"steps": 0, "step_s": 0.0, "sampling_s": 0.0}
    ran = 0
    model.train()
    try:
        while not state["done"]:
            e = state["epoch"]
            if state["order"] is None:
                state["order"] = data_sampler.epoch_order(e, np.random.default_rng([cfg.seed, 0, e]))
                state["acc"] = [0.0, 0, 0]
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, e)
            order = state["order"]
            while state["step"] < steps_per_epoch:
                if max_steps is not None and ran >= max_steps:
                    save()
                    return _summary(out, cfg, model, state, timing, dev, path_sampler, finished=False)
                s = state["step"]
                t0 = time.perf_counter()
                idx = np.asarray(order[s * cfg.batch_size:(s + 1) * cfg.batch_size], dtype=np.int64)
                loss, correct, t_sample = train_step(cfg, task, model, opt, params, path_sampler, data_sampler,
                                                     step_rule, batcher, idx, e, s, images.num_classes)
                acc = state["acc"]
                state["acc"] = [acc[0] + loss * len(idx), acc[1] + correct, acc[2] + len(idx)]
                state["step"] = s + 1
                timing["steps"] += 1
                timing["step_s"] += time.perf_counter() - t0
                timing["sampling_s"] += t_sample
                ran += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=e, loss=f"{loss:.3f}")
                if checkpoint_every and (e * steps_per_epoch + s + 1) % checkpoint_every == 0:
                    save()
            loss_sum, correct, count = state["acc"]
            probe = getattr(path_sampler, "epoch_end_probe", None)
            if probe is not None:  # a sampler that scores ops with the current weights (NEAS shrinking)
                probe(e, cfg.epochs, task=task, model=model, batcher=batcher, seed=cfg.seed)
            path_sampler.end_epoch(e, cfg.epochs)
            data_sampler.end_epoch(e, cfg.epochs)
            state["history"].append({"epoch": e, "lr": _lr_at(cfg, e), "train_loss": loss_sum / max(count, 1),
                                     "train_acc": 100.0 * correct / max(count, 1),
                                     "op_probs": path_sampler.probs().mean(0).round(6).tolist(),
                                     **(path_sampler.epoch_log(e) if hasattr(path_sampler, "epoch_log") else {})})
            state["epoch"], state["step"], state["order"] = e + 1, 0, None
            state["done"] = state["epoch"] >= cfg.epochs
            save()
    finally:
        if bar is not None:
            bar.close()
    return _summary(out, cfg, model, state, timing, dev, path_sampler, finished=True)


def _summary(out: FsPath, cfg: TrainConfig, model, state, timing, device, path_sampler, finished) -> dict[str, Any]:
    s = {"checkpoint": str(out / CHECKPOINT), "config": dataclasses.asdict(cfg), "device": device,
         "epochs_done": int(state["epoch"]), "finished": bool(state["done"]),
         "weights_digest": weights_digest(model.state_dict()), "history": state["history"],
         "timing": {"steps": timing["steps"],
                    "step_s": timing["step_s"] / timing["steps"] if timing["steps"] else None,
                    "sampling_s": timing["sampling_s"] / timing["steps"] if timing["steps"] else None}}
    if finished:
        tmp = out / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(s, indent=1))
        os.replace(tmp, out / SUMMARY)
    return s
