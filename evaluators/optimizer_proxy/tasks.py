"""Proxy training tasks for optimizer programs: seeded local data, tiny models, one training loop.

Every task is data + a functional model (a list of parameter tensors and a ``forward``), so
initialisation draws only from a ``torch.Generator`` owned by the run (never the global RNG) and
the parameter list handed to the optimizer is fixed.  Data is generated (or read from the text
shipped in ``data/``) once per process per ``(task, seed, scale, device)`` and cached.

Which tasks make the search fitness and which are held out is decided in proxy.py
(DEFAULT_TASKS, HELDOUT_TASKS: conv, regress and autoenc are held out).  Classification and
language-model tasks (cross-entropy, accuracy reported):

- ``mlp``: teacher-network classification.  x ~ N(0, I_16); labels are the argmax of a random
  tanh teacher 16-64-6; a ReLU MLP 16-h-h-6 (h = 32) learns it.
- ``mlp_wide``: the same data and model 4x wider (h = 128, ~12x the parameters): a program whose
  step size depends on the model size (e.g. through global norms) cannot fit both.
- ``mlp_deep``: the same kind of teacher data, 8x more of it (8,192 rows: 80 steps of 64 see a row
  about once, so the task rewards fitting fast, not regularising), learned by a deep narrow tanh
  MLP 16-h-h-h-h-6 (h = 24).  Added to the discovery benchmark's fitness: the three tasks above
  are shallow and data-limited, and their validation loss rewards heavy weight decay, which the
  held-out tasks punish (benchmarks/discovery_diagnostics.py measures it).
- ``conv``: synthetic 8x8 images of 6 classes: a smoothed random template per class, shifted by
  up to one pixel, random contrast, Gaussian noise; a two-layer convnet (8, 16 channels), global
  average pool, linear head.
- ``charlm``: next-character prediction on ``data/keeper.txt`` (a short story written for this
  project): 8 characters of context, 12-d embeddings, a tanh MLP with 64 hidden units (Bengio
  et al. 2003 style).  Train on the first 90 %, validate on the last 10 %.

Regression tasks (MSE), different models and data:

- ``regress``: deep narrow tanh MLP 8-h-h-h-4 (h = 24) regressing a random sine network (MSE).
- ``autoenc``: GELU autoencoder 32-16-4-16-32 on noisy data from a 4-d nonlinear manifold (MSE).

``scale`` s makes a task larger for funnel selection: hidden widths x sqrt(s) (about s times the
parameters), training steps x s and training-set size x s; validation sets stay fixed.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable

import numpy as np

from automl._optional import missing_error

try:
    import torch
    import torch.nn.functional as F
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "torch"], "the optimizer-proxy tasks") from exc

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT_PATH = os.path.join(HERE, "data", "keeper.txt")


@dataclasses.dataclass
class TaskData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    meta: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    loss: str  # "ce" (classification / LM; accuracy reported) or "mse"
    batch: int
    make_data: Callable[[np.random.Generator, float], tuple[np.ndarray, ...]]
    make_params: Callable[[torch.Generator, float, dict[str, Any]], list[torch.Tensor]]
    forward: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]
    meta: Callable[[float], dict[str, Any]] = lambda scale: {}
    data: str | None = None  # use this task's data (same seed offset) instead of the own name's
    #: ``forward`` for P model copies at once: parameters with a leading copy axis, the input
    #: shared, output (P, batch, ...); None: ``torch.func.vmap(forward)`` (see batched_forward).
    pforward: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor] | None = None
    #: when the model is a chain of linear layers (parameters weight, bias, weight, bias, ...):
    #: the activation after each layer but the last ("relu", "tanh", "gelu" or None), so the
    #: batched path can run it with a hand-written backward (batched.chain_loss_and_grad)
    chain: tuple[str | None, ...] | None = None


def width(base: int, scale: float) -> int:
    return max(1, int(round(base * math.sqrt(scale))))


def _uniform(gen: torch.Generator, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """torch.nn.Linear's default init bound 1/sqrt(fan_in) (its kaiming_uniform(a=sqrt(5)) equals this)."""
    b = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=gen, dtype=torch.float32) * 2.0 - 1.0) * b


def _linear(gen: torch.Generator, n_in: int, n_out: int) -> list[torch.Tensor]:
    return [_uniform(gen, (n_out, n_in), n_in), _uniform(gen, (n_out,), n_in)]


# --- mlp: teacher-network classification ------------------------------------------------------------

MLP_D, MLP_C = 16, 6


def _teacher_data(rows: int):
    """Teacher-network classification data with ``rows`` x scale training rows."""

    def make(rng: np.random.Generator, scale: float):
        n_train, n_val = int(rows * scale), 1024
        a = rng.standard_normal((MLP_D, 64)) / math.sqrt(MLP_D) * 2.0
        b = rng.standard_normal((64, MLP_C)) / math.sqrt(64) * 3.0
        x = rng.standard_normal((n_train + n_val, MLP_D))
        y = np.argmax(np.tanh(x @ a) @ b, axis=1)
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    return make


_mlp_data = _teacher_data(1024)


def _mlp_params_of(base: int):
    def make(gen, scale, meta):
        h = width(base, scale)
        return [*_linear(gen, MLP_D, h), *_linear(gen, h, h), *_linear(gen, h, MLP_C)]

    return make


def _mlp_forward(p, x):
    x = F.relu(F.linear(x, p[0], p[1]))
    x = F.relu(F.linear(x, p[2], p[3]))
    return F.linear(x, p[4], p[5])


def _plinear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """F.linear for P copies: w (P, out, in), b (P, out); x (batch, in) shared or (P, batch, in).
    One batched matmul (measured ~1.6x faster than vmap over F.linear on CPU)."""
    if x.dim() == 2:
        x = x.expand(w.shape[0], *x.shape)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _mlp_pforward(p, x):
    x = F.relu(_plinear(x, p[0], p[1]))
    x = F.relu(_plinear(x, p[2], p[3]))
    return _plinear(x, p[4], p[5])


# --- conv: synthetic images ---------------------------------------------------------------------------

IMG, CONV_C = 8, 6


def _conv_data(rng: np.random.Generator, scale: float):
    n_train, n_val = int(1024 * scale), 1024
    t = rng.standard_normal((CONV_C, IMG + 2, IMG + 2))
    # 3x3 box blur (valid) -> smooth 8x8 templates, unit variance
    t = sum(t[:, i:i + IMG, j:j + IMG] for i in range(3) for j in range(3)) / 3.0
    t = (t - t.mean(axis=(1, 2), keepdims=True)) / t.std(axis=(1, 2), keepdims=True)
    n = n_train + n_val
    y = rng.integers(0, CONV_C, n)
    shifts = rng.integers(-1, 2, (n, 2))
    contrast = rng.uniform(0.5, 1.5, n)
    x = np.empty((n, 1, IMG, IMG))
    for k in range(n):
        x[k, 0] = np.roll(t[y[k]], tuple(shifts[k]), axis=(0, 1)) * contrast[k]
    x += rng.standard_normal(x.shape) * 1.0
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _conv_params(gen, scale, meta):
    c1, c2 = width(8, scale), width(16, scale)
    return [_uniform(gen, (c1, 1, 3, 3), 9), _uniform(gen, (c1,), 9),
            _uniform(gen, (c2, c1, 3, 3), 9 * c1), _uniform(gen, (c2,), 9 * c1),
            *_linear(gen, c2, CONV_C)]


def _conv_forward(p, x):
    x = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1], padding=1)), 2)
    x = F.relu(F.conv2d(x, p[2], p[3], padding=1)).mean(dim=(2, 3))
    return F.linear(x, p[4], p[5])


# --- charlm: next character on the shipped text ----------------------------------------------------

CONTEXT, EMB = 8, 12


def _text() -> str:
    with open(TEXT_PATH, encoding="utf-8") as f:
        return " ".join(f.read().lower().split())


def _charlm_meta(scale: float) -> dict[str, Any]:
    return {"vocab": sorted(set(_text()))}


def _charlm_data(rng: np.random.Generator, scale: float):
    text = _text()
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text], dtype=np.int64)
    cut = int(0.9 * len(ids))

    def windows(a):
        n = len(a) - CONTEXT
        idx = np.arange(n)[:, None] + np.arange(CONTEXT + 1)[None, :]
        w = a[idx]
        return w[:, :CONTEXT], w[:, CONTEXT]

    xt, yt = windows(ids[:cut])
    xv, yv = windows(ids[cut:])
    return xt, yt, xv, yv  # the text is fixed: scale changes the model and steps, not the data


def _charlm_params(gen, scale, meta):
    v = len(meta["vocab"])
    h, e = width(64, scale), width(EMB, scale)
    return [torch.randn((v, e), generator=gen) * 0.5, *_linear(gen, CONTEXT * e, h), *_linear(gen, h, v)]


def _charlm_forward(p, x):
    e = F.embedding(x, p[0]).flatten(1)
    return F.linear(torch.tanh(F.linear(e, p[1], p[2])), p[3], p[4])


def _charlm_pforward(p, x):
    e = p[0][:, x].flatten(2)  # (P, batch, context * emb)
    return _plinear(torch.tanh(_plinear(e, p[1], p[2])), p[3], p[4])


# --- mlp_deep: teacher classification, 8x the data, with a deep narrow tanh MLP -----------------------


def _mlp_deep_params(gen, scale, meta):
    h = width(24, scale)
    return [*_linear(gen, MLP_D, h), *_linear(gen, h, h), *_linear(gen, h, h), *_linear(gen, h, h),
            *_linear(gen, h, MLP_C)]


def _tanh_forward(p, x):
    """A tanh MLP of any depth: (weight, bias) pairs, tanh after each but the last."""
    for i in range(0, len(p) - 2, 2):
        x = torch.tanh(F.linear(x, p[i], p[i + 1]))
    return F.linear(x, p[-2], p[-1])


def _tanh_pforward(p, x):
    for i in range(0, len(p) - 2, 2):
        x = torch.tanh(_plinear(x, p[i], p[i + 1]))
    return _plinear(x, p[-2], p[-1])


# --- held-out: regression with a deep tanh MLP ------------------------------------------------------

REG_D, REG_O = 8, 4


def _regress_data(rng: np.random.Generator, scale: float):
    n_train, n_val = int(1024 * scale), 1024
    a = rng.standard_normal((REG_D, 32)) / math.sqrt(REG_D)
    b = rng.standard_normal((32, REG_O)) * 2.0 / math.sqrt(32)
    x = rng.uniform(-1.5, 1.5, (n_train + n_val, REG_D))
    y = np.sin(x @ a * 1.5) @ b + 0.05 * rng.standard_normal((n_train + n_val, REG_O))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _regress_params(gen, scale, meta):
    h = width(24, scale)
    return [*_linear(gen, REG_D, h), *_linear(gen, h, h), *_linear(gen, h, h), *_linear(gen, h, REG_O)]


# --- held-out: autoencoder ----------------------------------------------------------------------------

AE_D, AE_Z = 32, 4


def _autoenc_data(rng: np.random.Generator, scale: float):
    n_train, n_val = int(1024 * scale), 1024
    n = n_train + n_val
    z = rng.standard_normal((n, AE_Z))
    a = rng.standard_normal((AE_Z, AE_D)) / math.sqrt(AE_Z)
    c = rng.standard_normal((AE_D, AE_D)) / math.sqrt(AE_D)
    x = np.tanh(z @ a) @ c + 0.1 * rng.standard_normal((n, AE_D))
    return x[:n_train], x[:n_train], x[n_train:], x[n_train:]


def _autoenc_params(gen, scale, meta):
    h = width(16, scale)
    return [*_linear(gen, AE_D, h), *_linear(gen, h, AE_Z), *_linear(gen, AE_Z, h), *_linear(gen, h, AE_D)]


def _autoenc_forward(p, x):
    x = F.gelu(F.linear(x, p[0], p[1]))
    x = F.linear(x, p[2], p[3])
    x = F.gelu(F.linear(x, p[4], p[5]))
    return F.linear(x, p[6], p[7])


def _autoenc_pforward(p, x):
    x = F.gelu(_plinear(x, p[0], p[1]))
    x = _plinear(x, p[2], p[3])
    x = F.gelu(_plinear(x, p[4], p[5]))
    return _plinear(x, p[6], p[7])


TASKS: dict[str, Task] = {
    "mlp": Task("mlp", "ce", 64, _mlp_data, _mlp_params_of(32), _mlp_forward, pforward=_mlp_pforward,
                chain=("relu", "relu")),
    "mlp_wide": Task("mlp_wide", "ce", 64, _mlp_data, _mlp_params_of(128), _mlp_forward, data="mlp",
                     pforward=_mlp_pforward, chain=("relu", "relu")),
    "mlp_deep": Task("mlp_deep", "ce", 64, _teacher_data(8192), _mlp_deep_params, _tanh_forward,
                     pforward=_tanh_pforward, chain=("tanh", "tanh", "tanh", "tanh")),
    "conv": Task("conv", "ce", 32, _conv_data, _conv_params, _conv_forward),
    "charlm": Task("charlm", "ce", 64, _charlm_data, _charlm_params, _charlm_forward, _charlm_meta,
                   pforward=_charlm_pforward),
    "regress": Task("regress", "mse", 64, _regress_data, _regress_params, _tanh_forward,
                    pforward=_tanh_pforward, chain=("tanh", "tanh", "tanh")),
    "autoenc": Task("autoenc", "mse", 64, _autoenc_data, _autoenc_params, _autoenc_forward,
                    pforward=_autoenc_pforward, chain=("gelu", None, "gelu")),
}


def batched_forward(name: str) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The task's forward for P model copies (its ``pforward``, else vmap of ``forward``)."""
    task = TASKS[name]
    if task.pforward is not None:
        return task.pforward
    return torch.func.vmap(task.forward, in_dims=(0, None))

_DATA: dict[tuple, TaskData] = {}
_BATCHES: dict[tuple, torch.Tensor] = {}


def _task_seed(name: str, seed: int) -> int:
    # a stable per-task offset (never Python's hash())
    return (int(seed) * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(name))) % (2**63)


def task_data(name: str, seed: int, scale: float, device: str) -> TaskData:
    """The task's data for (seed, scale) on ``device``; built once per process."""
    task = TASKS[name]
    if task.data is not None:
        return task_data(task.data, seed, scale, device)
    key = (name, int(seed), float(scale), device)
    d = _DATA.get(key)
    if d is None:
        rng = np.random.default_rng(_task_seed(name, seed))
        xt, yt, xv, yv = task.make_data(rng, scale)
        cls = task.loss == "ce"

        def tx(a):
            return torch.as_tensor(a, dtype=torch.int64 if a.dtype == np.int64 else torch.float32).to(device)

        def ty(a):
            return torch.as_tensor(a, dtype=torch.int64 if cls else torch.float32).to(device)

        d = TaskData(tx(xt), ty(yt), tx(xv), ty(yv), task.meta(scale))
        _DATA[key] = d
    return d


def batch_indices(name: str, n_train: int, steps: int, seed: int, device: str) -> torch.Tensor:
    """(steps, batch) row indices of the minibatches, fixed by (task, seed)."""
    batch = TASKS[name].batch
    key = (name, n_train, steps, int(seed), device)
    b = _BATCHES.get(key)
    if b is None:
        rng = np.random.default_rng(_task_seed(name, seed) + 1)
        b = torch.as_tensor(rng.integers(0, n_train, (steps, batch)), dtype=torch.int64).to(device)
        _BATCHES[key] = b
    return b


@dataclasses.dataclass
class TrainResult:
    val_loss: float  # nan when training diverged
    val_acc: float | None  # classification / LM tasks only
    diverged: str | None  # why, when it did
    steps_run: int
    init_loss: float


def _loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y) if kind == "ce" else F.mse_loss(out, y)


def train(name: str, program: Any, *, steps: int, lr: float, seed: int = 0, scale: float = 1.0,
          device: str = "cpu", diverge: float = 5.0, check_every: int | None = None,
          optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None = None) -> TrainResult:
    """Train task ``name`` for ``steps`` x ``scale`` steps with ``program`` (text or genome) run by
    ProgramOptimizer under a cosine LR schedule from ``lr`` (or with ``optimizer(params)``, a torch
    optimizer factory, for comparisons).  Training stops as diverged when the minibatch loss is
    non-finite or above ``diverge`` x the first minibatch loss; then ``val_loss`` is nan."""
    from search_spaces.programs.optim import ProgramOptimizer

    task = TASKS[name]
    data = task_data(name, seed, scale, device)
    n_steps = max(1, int(round(steps * scale)))
    idx = batch_indices(name, len(data.x_train), n_steps, seed, device)
    gen = torch.Generator().manual_seed(_task_seed(name, seed) + 2)
    params = [p.to(device).requires_grad_(True) for p in task.make_params(gen, scale, data.meta)]
    opt = optimizer(params) if optimizer is not None else ProgramOptimizer(params, program, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / n_steps)))
    if check_every is None:
        check_every = 1 if device == "cpu" else 25
    xt, yt = data.x_train, data.y_train
    init = math.nan
    limit = math.inf
    worst = None
    for i in range(n_steps):
        b = idx[i]
        loss = _loss(task.loss, task.forward(params, xt[b]), yt[b])
        if i == 0:
            init = float(loss.item())
            if not math.isfinite(init):
                return TrainResult(math.nan, None, "non-finite initial loss", 0, init)
            limit = diverge * init
        for p in params:
            p.grad = None
        loss.backward()
        opt.step()
        sched.step()
        d = loss.detach()
        worst = d if worst is None else torch.maximum(worst, d)
        if (i + 1) % check_every == 0 or i + 1 == n_steps:
            # nan compares False: test "not finite" explicitly
            w = float(worst.item())
            worst = None
            if not math.isfinite(w) or w > limit:
                return TrainResult(math.nan, None, f"train loss {w:.4g} at step {i + 1} (first {init:.4g})",
                                   i + 1, init)
    with torch.no_grad():
        out = task.forward(params, data.x_val)
        vl = float(_loss(task.loss, out, data.y_val).item())
        acc = float((out.argmax(-1) == data.y_val).float().mean().item()) if task.loss == "ce" else None
    if not math.isfinite(vl) or vl > limit:
        return TrainResult(math.nan, None, f"validation loss {vl:.4g} (first train loss {init:.4g})", n_steps, init)
    return TrainResult(vl, acc, None, n_steps, init)
