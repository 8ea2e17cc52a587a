"""Population-batched proxy training: P optimizer programs train P copies of one task in one
vectorized computation (models batched with bmm, programs by
:class:`search_spaces.programs.batched.BatchedPrograms`).

Every copy starts from the same initialisation and sees the same minibatches as
:func:`tasks.train` (the per-candidate reference path), with the same cosine schedule, the same
divergence rule and the same messages; the parameters of one copy are one row of a (P, N) matrix
(all the model's tensors flattened), so whole-model reductions are row reductions.  A copy that
diverges is dropped from the batch at the next check (the survivors are compacted), so the
batch's compute follows the live programs.

Cost attribution: each step's measured time is split evenly between the copies that took it,
so a program charged here is charged for the compute it really shared (a program that diverges
at step 3 pays three shared steps, not a whole evaluation).  On CUDA the step times are taken
without synchronising (the device runs ahead between divergence checks), so the split between
steps is approximate; the total is what the batch took.

Screening: :func:`train_population` with ``screen = k`` first runs the first k steps of *every*
task for the whole population (the cosine schedule starts at the task's largest lr), drops the
programs that diverged there ("screened", with the reason), and only then trains the survivors
to the end; the computation per copy is the same as without screening (tasks are independent),
only the order changes.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from search_spaces.programs.batched import BatchedPrograms, CompiledPrograms, plan

from . import tasks as T


@dataclasses.dataclass
class CopyResult:
    """One program's outcome on one task (fields as :class:`tasks.TrainResult`)."""

    val_loss: float
    val_acc: float | None
    diverged: str | None
    steps_run: int
    init_loss: float


def _copy_losses(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-copy mean loss: out (P, batch, ...), y (batch, ...) shared."""
    P, B = out.shape[0], out.shape[1]
    if kind == "ce":
        tgt = y.unsqueeze(0).expand(P, B).reshape(-1)
        return F.cross_entropy(out.reshape(P * B, -1), tgt, reduction="none").view(P, B).mean(1)
    return (out - y.unsqueeze(0)).square().flatten(1).mean(1)


# --- hand-written forward and backward of a chain of linear layers (tasks with ``Task.chain``) -------
# Why not autograd: at P copies of a small MLP the graph bookkeeping, the (P, batch, h) layout's
# transposes and the per-copy loss built from F.cross_entropy over P * batch rows cost as much as the
# matmuls.  Here activations are kept feature-major, (P, features, batch): every layer is one
# baddbmm with the bias broadcast (the first, reading the shared input, one addmm for all copies),
# the backward is the chain rule written out with aten's own activation derivatives
# (threshold_backward, tanh_backward, gelu_backward: what autograd runs), and each parameter's
# gradient goes into its columns of the (P, N) gradient matrix the program interpreter reads.
# Equal to autograd's within float32 rounding (tests/test_batched_programs.py).

def _act(name: str | None, z: torch.Tensor) -> torch.Tensor:
    if name is None:
        return z
    if name == "relu":
        return z.relu()
    if name == "tanh":
        return z.tanh()
    if name == "gelu":
        return F.gelu(z)
    raise ValueError(f"unknown activation {name!r}")


def _act_backward(name: str | None, grad: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    if name is None:
        return grad
    if name == "relu":
        return torch.ops.aten.threshold_backward(grad, a, 0)
    if name == "tanh":
        return torch.ops.aten.tanh_backward(grad, a)
    return torch.ops.aten.gelu_backward(grad, z)


def chain_forward(acts: Sequence[str | None], views: Sequence[torch.Tensor], x: torch.Tensor,
                  keep: list | None = None) -> torch.Tensor:
    """Output of P copies of a linear chain, (P, out, batch): ``views`` weight (P, out, in), bias
    (P, out), ...; ``x`` (batch, in) shared by the copies; ``acts`` the activation after each layer
    but the last.  ``keep``: a list that receives (z, a) per layer for the backward."""
    P, h = views[0].shape[:2]
    # the first layer reads the shared input: one matmul of all copies' weights against it
    a = x.t()
    n = len(views) // 2
    for i in range(n):
        if i == 0:
            z = torch.addmm(views[1].reshape(P * h, 1), views[0].reshape(P * h, -1), a).view(P, h, -1)
        else:
            z = torch.baddbmm(views[2 * i + 1].unsqueeze(-1), views[2 * i], a)
        if keep is not None:
            keep.append(a)
        a = _act(acts[i], z) if i < n - 1 else z
        if keep is not None and i < n - 1:
            keep.append(z)
    return a


def chain_loss_and_grad(acts: Sequence[str | None], loss: str, views: Sequence[torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor, grad: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
    """Per-copy mean losses (P,) of a linear chain (see :func:`chain_forward`), and the gradient of
    each copy's loss written into ``grad`` (P, N), whose columns are the parameters in ``views``
    order, flattened.  ``drop``: (P,) bool, copies whose gradient is zeroed (diverged ones kept in
    the batch)."""
    keep: list = []
    out = chain_forward(acts, views, x, keep)  # (P, C, B)
    P, C, B = out.shape
    if loss == "ce":
        lse = out.logsumexp(1)  # (P, B)
        idx = y.view(1, 1, B).expand(P, 1, B)
        losses = (lse - out.gather(1, idx).squeeze(1)).mean(1)
        dz = (out - lse.unsqueeze(1)).exp_()  # softmax
        dz.scatter_add_(1, idx, torch.full((P, 1, B), -1.0, dtype=dz.dtype, device=dz.device)).mul_(1.0 / B)
    else:
        diff = out - y.t().unsqueeze(0)
        losses = diff.square().flatten(1).mean(1)
        dz = diff.mul_(2.0 / diff[0].numel())
    if drop is not None:
        dz.masked_fill_(drop.view(P, 1, 1), 0.0)
    cols, o = [], 0
    for v in views:
        n = v[0].numel()
        cols.append(grad[:, o:o + n].view(v.shape))
        o += n
    n = len(views) // 2
    for i in range(n - 1, -1, -1):
        a_in = keep[2 * i]
        if i == 0:  # the shared input again: one matmul for all copies
            cols[0].copy_(torch.mm(dz.reshape(-1, B), a_in.t()).view(cols[0].shape))
        else:
            cols[2 * i].copy_(torch.bmm(dz, a_in.transpose(1, 2)))  # (bmm's out= wants contiguous memory)
        cols[2 * i + 1].copy_(dz.sum(2))
        if i > 0:
            da = torch.bmm(views[2 * i].transpose(1, 2), dz)
            dz = _act_backward(acts[i - 1], da, keep[2 * i - 1], a_in)
    return losses


class TaskRun:
    """P programs training P copies of task ``name``; resumable (:meth:`advance` to a step, then
    :meth:`finish`).  ``ids``: the programs' indices in the caller's population."""

    def __init__(self, name: str, programs: Sequence[Any], ids: Sequence[int], *, steps: int, lr: float,
                 seed: int = 0, scale: float = 1.0, device: str = "cpu", diverge: float = 5.0,
                 check_every: int | None = None, hand_backward: bool = True, backend: str = "auto"):
        task = T.TASKS[name]
        #: the program interpreter: ``auto``, ``torch`` or ``numba`` (search_spaces.programs.batched.plan)
        self.backend = backend
        #: the task's linear chain when its hand-written backward is used (else autograd)
        self.chain = task.chain if hand_backward else None
        self.name, self.task, self.lr, self.diverge, self.device = name, task, float(lr), float(diverge), device
        self.data = T.task_data(name, seed, scale, device)
        self.n_steps = max(1, int(round(steps * scale)))
        self.idx = T.batch_indices(name, len(self.data.x_train), self.n_steps, seed, device)
        gen = torch.Generator().manual_seed(T._task_seed(name, seed) + 2)
        params = task.make_params(gen, scale, self.data.meta)
        self.shapes = [tuple(p.shape) for p in params]
        self.sizes = [p.numel() for p in params]
        flat = torch.cat([p.reshape(-1) for p in params]).to(device)
        self.N = flat.numel()
        # rows in the order of the programs' text: alike programs sit next to each other, so more
        # of the interpreter's row gathers are contiguous runs (views, not copies); every row is
        # independent, so the order changes no result
        order = sorted(range(len(ids)), key=lambda k: str(programs[k]))
        self.ids = [ids[k] for k in order]
        self.programs = [programs[k] for k in order]
        P = len(self.ids)
        self.w = flat.unsqueeze(0).repeat(P, 1)
        self.m = torch.zeros_like(self.w)
        self.v = torch.zeros_like(self.w)
        self.forward = T.batched_forward(name)
        self.check_every = check_every if check_every is not None else (1 if device == "cpu" else 25)
        self.step_i = 0
        self.init = math.nan
        self.limit = math.inf
        self.worst: torch.Tensor | None = None
        #: rows (positions in ``ids``) that diverged but are still in the batch: dropping rows
        #: rebuilds the program plan, so it waits until an eighth of the batch is gone
        self.zombies: set[int] = set()
        self._zombie_mask: torch.Tensor | None = None
        self.cost = {i: 0.0 for i in self.ids}  # seconds attributed to each program
        self.results: dict[int, CopyResult] = {}
        # LambdaLR's cosine, as tasks.train: the program's lr input at step i (t = i + 1)
        self.lrs = [self.lr * 0.5 * (1.0 + math.cos(math.pi * i / self.n_steps)) for i in range(self.n_steps)]
        self.plan: BatchedPrograms | CompiledPrograms | None = self._plan(self.programs)

    def _plan(self, programs: list) -> BatchedPrograms | CompiledPrograms | None:
        if not programs:
            return None
        p = plan(programs, self.N, device=self.device, backend=self.backend)
        p.precompute(self.lrs, [float(i + 1) for i in range(self.n_steps)])
        return p

    def _views(self, w: torch.Tensor) -> list[torch.Tensor]:
        out, o = [], 0
        P = w.shape[0]
        for s, n in zip(self.shapes, self.sizes):
            out.append(w[:, o:o + n].view(P, *s))
            o += n
        return out

    def _charge(self, dt: float) -> None:
        if self.ids:
            share = dt / len(self.ids)
            for i in self.ids:
                self.cost[i] += share

    def drop(self, gone: set[int]) -> None:
        """Remove programs ``gone`` (diverged here or elsewhere) from the batch."""
        keep = [k for k, i in enumerate(self.ids) if i not in gone and k not in self.zombies]
        if len(keep) == len(self.ids):
            return
        self.zombies, self._zombie_mask = set(), None
        t0 = time.perf_counter()
        self.ids = [self.ids[k] for k in keep]
        self.programs = [self.programs[k] for k in keep]
        if not keep:
            self.plan = None
            return
        sel = torch.tensor(keep, dtype=torch.long, device=self.w.device)
        self.w, self.m, self.v = self.w[sel], self.m[sel], self.v[sel]
        if self.worst is not None:
            self.worst = self.worst[sel]
        self.plan = self.plan.subset(keep) if self.plan is not None else None
        self._charge(time.perf_counter() - t0)

    def advance(self, until: int) -> list[int]:
        """Train every live copy up to step ``until`` (capped at the task's steps); returns the
        programs that diverged on the way (their results are in ``self.results``)."""
        until = min(until, self.n_steps)
        diverged: list[int] = []
        xt, yt = self.data.x_train, self.data.y_train
        n = self.n_steps
        while self.step_i < until and self.ids:
            t0 = time.perf_counter()
            i = self.step_i
            b = self.idx[i]
            # one leaf per parameter tensor (views of w's rows): their gradients are concatenated
            # once, cheaper than autograd accumulating zero-padded slices into one (P, N) leaf
            if self.chain is not None:
                g = torch.empty_like(self.w)
                with torch.no_grad():
                    losses = chain_loss_and_grad(self.chain, self.task.loss, self._views(self.w), xt[b], yt[b], g,
                                                 self._zombie_mask if self.zombies else None)
            else:
                views = [x.detach().requires_grad_(True) for x in self._views(self.w)]
                losses = _copy_losses(self.task.loss, self.forward(views, xt[b]), yt[b])
            if i == 0:
                init = float(losses[0].item())  # every copy starts from the same weights
                self.init, self.limit = init, self.diverge * init
                if not math.isfinite(init):
                    for k in list(self.ids):
                        self.results[k] = CopyResult(math.nan, None, "non-finite initial loss", 0, init)
                    diverged += self.ids
                    self.drop(set(self.ids))
                    break
            if self.chain is None:
                live = losses if not self.zombies else losses.masked_fill(self._zombie_mask, 0.0)
                grads = torch.autograd.grad(live.sum(), views)
                g = torch.cat([x.reshape(x.shape[0], -1) for x in grads], dim=1)
            lr = self.lrs[i]
            with torch.no_grad():
                upd, m, v = self.plan.step(self.w, g, self.m, self.v, lr, float(i + 1), i)  # type: ignore[union-attr]
                self.w = self.w - upd
                self.m, self.v = m, v
                d = losses.detach()
                self.worst = d if self.worst is None else torch.maximum(self.worst, d)
            self.step_i += 1
            if self.step_i % self.check_every == 0 or self.step_i == n:
                worst = self.worst.tolist()
                self.worst = None
                gone = []
                for row, (k, wv) in enumerate(zip(self.ids, worst)):
                    if row not in self.zombies and (not math.isfinite(wv) or wv > self.limit):
                        self.results[k] = CopyResult(
                            math.nan, None, f"train loss {wv:.4g} at step {self.step_i} (first {self.init:.4g})",
                            self.step_i, self.init)
                        gone.append(k)
                        self.zombies.add(row)
                self._charge(time.perf_counter() - t0)  # zombies pay for the steps they still take
                if gone:
                    diverged += gone
                    if len(self.zombies) * 8 >= len(self.ids) or len(self.zombies) == len(self.ids):
                        self.drop(set())
                    else:
                        mask = torch.zeros(len(self.ids), dtype=torch.bool, device=self.w.device)
                        mask[sorted(self.zombies)] = True
                        self._zombie_mask = mask
            else:
                self._charge(time.perf_counter() - t0)
        return diverged

    def finish(self) -> list[int]:
        """Train to the end, then validate; returns the programs that diverged (validation
        included).  Every program of the batch then has its result in ``self.results``."""
        diverged = self.advance(self.n_steps)
        if self.zombies:
            self.drop(set())
        if not self.ids:
            return diverged
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.forward(self._views(self.w), self.data.x_val)
            vl = _copy_losses(self.task.loss, out, self.data.y_val).tolist()
            accs = ((out.argmax(-1) == self.data.y_val.unsqueeze(0)).float().mean(1).tolist()
                    if self.task.loss == "ce" else [None] * len(vl))
        for k, loss, acc in zip(self.ids, vl, accs):
            if not math.isfinite(loss) or loss > self.limit:
                self.results[k] = CopyResult(math.nan, None, f"validation loss {loss:.4g} (first train loss "
                                             f"{self.init:.4g})", self.n_steps, self.init)
                diverged.append(k)
            else:
                self.results[k] = CopyResult(loss, acc, None, self.n_steps, self.init)
        self._charge(time.perf_counter() - t0)
        self.plan = None
        return diverged


_MALLOC_TUNED: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse (``mallopt``:
    M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 256 MiB), once per process; True when set.

    Why: every op of a batched step allocates a result of about P x N floats (1.8 MB at P = 256 on
    task mlp).  By default glibc serves such blocks with mmap, or trims them off the heap when freed,
    so each step maps fresh pages and page-faults through them: measured here, a step of 256 AdamW
    copies took 3.7 ms with glibc's defaults and 1.0-1.4 ms with this setting, the mixed population
    8.2 ms and 6.2 ms (docs/batched-programs.md).  PyTorch's CPU allocator has no cache of its own
    (its tuning guide recommends jemalloc or tcmalloc for the same reason).  The cost: the process
    keeps up to 256 MiB of freed heap instead of returning it to the OS.  Process-wide; a no-op
    off glibc."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        _MALLOC_TUNED = False
        import ctypes
        import platform

        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
            except OSError:
                return False
            m_trim_threshold, m_mmap_threshold = -1, -3
            _MALLOC_TUNED = bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(
                libc.mallopt(m_trim_threshold, 256 << 20))
    return _MALLOC_TUNED


@dataclasses.dataclass
class PopulationResult:
    """Per program: ``results[task]`` (CopyResult, only for the tasks it reached), ``diverged``
    ("task: why" or None), ``screened`` (True when it diverged within the screen), ``cost_s``
    (seconds attributed to it)."""

    results: dict[str, CopyResult]
    diverged: str | None
    screened: bool
    cost_s: float


def train_population(task_names: Sequence[str], programs: Sequence[Any], *, steps: int, lr: float, seed: int = 0,
                     scale: float = 1.0, device: str = "cpu", diverge: float = 5.0, screen: int = 0,
                     check_every: int | None = None, hand_backward: bool = True,
                     backend: str = "auto") -> list[PopulationResult]:
    """Train every program of ``programs`` (parsed, type-correct) on each task of
    ``task_names`` in order, as :func:`tasks.train` would one at a time; a program stops at the
    first task it diverges on (as ``OptimizerProxy.evaluate`` does).  ``screen`` > 0 runs the
    first ``screen`` steps of every task first (see the module docstring).  ``hand_backward``:
    tasks that are linear chains (``Task.chain``) use the hand-written backward
    (:func:`chain_loss_and_grad`), else autograd; the results agree within float32 rounding.
    ``backend``: the program interpreter (``auto``: the compiled one on the CPU when numba is
    installed; ``torch``; ``numba``), see :func:`search_spaces.programs.batched.plan`."""
    if device == "cpu":
        keep_freed_memory()
    P = len(programs)
    ids = list(range(P))
    kw = dict(steps=steps, lr=lr, seed=seed, scale=scale, device=device, diverge=diverge, check_every=check_every,
              hand_backward=hand_backward, backend=backend)
    out = [PopulationResult({}, None, False, 0.0) for _ in range(P)]
    runs: list[TaskRun] = []
    dead: set[int] = set()

    def note(run: TaskRun, gone: list[int], screened: bool) -> None:
        for k in gone:
            if out[k].diverged is None:
                out[k].diverged = f"{run.name}: {run.results[k].diverged}"
                out[k].screened = screened
        dead.update(gone)

    def start(name: str) -> TaskRun:
        live = [k for k in ids if k not in dead]
        return TaskRun(name, [programs[k] for k in live], live, **kw)  # type: ignore[arg-type]

    if screen > 0:
        for name in task_names:
            run = start(name)
            note(run, run.advance(screen), True)
            runs.append(run)
        for run in runs:
            run.drop(dead)
    for j, name in enumerate(task_names):
        if screen > 0:
            run = runs[j]
        else:
            run = start(name)
            runs.append(run)
        run.drop(dead)
        note(run, run.finish(), False)
    for run in runs:
        for k, c in run.cost.items():
            out[k].cost_s += c
        for k, r in run.results.items():
            out[k].results[run.name] = r
    return out


__all__ = ["TaskRun", "train_population", "PopulationResult", "CopyResult", "chain_forward", "chain_loss_and_grad",
           "keep_freed_memory"]
