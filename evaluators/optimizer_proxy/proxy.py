"""OptimizerProxy: the fitness of an optimizer program is the validation loss of small models it
trains, relative to AdamW's on the same tasks.  torch is imported inside methods only, so
building the evaluator (e.g. to name a cache namespace, or for ``automl show``) stays cheap.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from automl.errors import ConfigError
from automl.evaluator import Evaluator

#: Tasks whose mean is the search fitness by default (see tasks.py for what each is).
DEFAULT_TASKS = ("mlp", "mlp_wide", "charlm")
#: Tasks known by name; "heldout" in ``tasks`` stands for HELDOUT_TASKS.
KNOWN_TASKS = ("mlp", "mlp_wide", "charlm", "mlp_deep", "conv", "regress", "autoenc")
HELDOUT_TASKS = ("conv", "regress", "autoenc")
HELDOUT_STEPS = 200

# (task, steps, lr, seed, scale, device, diverge) -> AdamW's validation loss; once per process.
_BASELINES: dict[tuple, float] = {}


def _expand_tasks(tasks: Any) -> list[str]:
    if isinstance(tasks, str):
        tasks = [t for t in tasks.replace(",", " ").split() if t]
    if not isinstance(tasks, (list, tuple)) or not tasks:
        raise ConfigError(f"tasks must be a non-empty list of task names, got {tasks!r}")
    out: list[str] = []
    for t in tasks:
        names = HELDOUT_TASKS if t == "heldout" else (t,)
        for n in names:
            if n not in KNOWN_TASKS:
                raise ConfigError(f"unknown task {n!r}; known: {', '.join(KNOWN_TASKS)} (or 'heldout' for "
                                  f"{', '.join(HELDOUT_TASKS)})")
            if n not in out:
                out.append(n)
    return out


def _positive(name: str, value: Any, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    return value


class OptimizerProxy(Evaluator):
    """Train small models with a candidate optimizer program; objective ``val_loss`` (min).

    Options (JSON-able; they are the cache fidelity):

    - ``tasks``: task names (default ``["mlp", "mlp_wide", "charlm"]``; also ``mlp_deep`` (a deep
      narrow tanh MLP, in benchmarks/discovery.py's fitness), ``conv``, ``regress``, ``autoenc``;
      ``"heldout"`` stands for the held-out set conv, regress, autoenc; see tasks.py);
    - ``steps``: training steps per task at scale 1 (default 80);
    - ``lr``: base learning rate, decayed by a cosine schedule (a torch LambdaLR over
      ProgramOptimizer's ``lr``, so the program's ``lr`` input is the scheduled value);
    - ``seed``: data, minibatch order and initialisation (default 0);
    - ``device``: ``"cpu"`` (default; one thread per evaluation) or ``"cuda"``/``"cuda:N"``;
    - ``scale``: task size multiplier for funnel selection: widths x sqrt(scale), steps and
      training data x scale (default 1);
    - ``normalize``: divide each task's loss by AdamW's at the same fidelity (default true), so
      AdamW scores exactly 1.0 and tasks are comparable; ``val_loss`` is the mean over tasks;
    - ``diverge``: training stops as diverged when the minibatch loss exceeds this multiple of
      the first one, or is not finite (default 5);
    - ``batch``: 1 (default) trains one candidate at a time (the reference path, ProgramOptimizer);
      P > 1 selects the population-batched path (evaluators/optimizer_proxy/batched.py): the
      runners hand ``evaluate_batch`` generations of P candidates, trained as one vectorized
      computation, each charged the compute it shared.  Its results equal the reference path's
      within float32 rounding, so the fidelity records ``batched: true`` (never P itself);
    - ``screen``: batched path only: train the first ``screen`` steps of every task for the
      whole generation first and drop the programs that diverge there (logged
      ``info.screened``) before training the rest (default 0: off).  It changes no result, only
      what a diverging program costs.
    - ``backend``: batched path only: how the P programs run (``"auto"`` (default): ``"numba"``
      on the CPU when numba is installed, else ``"torch"``; ``"numba"``: one compiled kernel,
      each program on its own row tile by tile (search_spaces/programs/_batched_jit.py);
      ``"torch"``: the op-grouped torch interpreter, also on CUDA).  The two agree within
      float32 rounding but not bit for bit, so the fidelity records ``kernel: "numba"`` when the
      compiled one runs (a separate cache namespace).
    - ``threads``: CPU threads of an evaluation (torch's, which the compiled kernel follows; default 1: evaluations run
      side by side in the process runner).  A batched search that runs alone on a machine
      (the serial runner) can give it the cores (e.g. ``threads=2``).  It changes no result
      (per-copy arithmetic does not depend on it: a test checks), so it is not in the fidelity.
    - ``lr_grid``: base learning rates tried besides ``lr`` (default none: ``lr`` only).  Each
      task is then trained at every base lr of ``{lr} | lr_grid`` and scored by its best
      validation loss, AdamW's reference likewise by its best over the same lrs: the fitness
      compares programs at their own tuned learning rate, as :func:`heldout_score` does (a
      program that only rescales the learning rate gains nothing).  A task counts as diverged
      only when it diverged at every lr.  Costs one training per lr.

    A diverged run on any task returns ``{"val_loss": nan}``, which the engine records as
    invalid (the batched path also logs ``info``: ``diverged`` (task: why) and ``screened``).
    Also returned: ``loss_<task>`` (raw validation loss per task) and ``val_acc`` (mean accuracy
    over classification / language-model tasks), for reading, not selection.
    """

    name = "optimizer-proxy"
    version = "1"
    objectives = {"val_loss": "min"}
    noisy = False
    spaces = ("optimizer-programs",)
    test_options = {"tasks": ["mlp"], "steps": 10}

    def __init__(self, tasks: Sequence[str] | str = DEFAULT_TASKS, steps: int = 80, lr: float = 0.01,
                 seed: int = 0, device: str = "cpu", scale: float = 1.0, normalize: bool = True,
                 diverge: float = 5.0, batch: int = 1, screen: int = 0, lr_grid: Sequence[float] | None = None,
                 backend: str = "auto", threads: int = 1):
        task_list = _expand_tasks(tasks)
        _positive("steps", steps, integer=True)
        _positive("lr", lr)
        _positive("scale", scale)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if not isinstance(normalize, bool):
            raise ConfigError(f"normalize must be true or false, got {normalize!r}")
        if _positive("diverge", diverge) <= 1:
            raise ConfigError(f"diverge must be > 1 (a multiple of the first loss), got {diverge!r}")
        _positive("batch", batch, integer=True)
        if isinstance(screen, bool) or not isinstance(screen, int) or screen < 0:
            raise ConfigError(f"screen must be a non-negative integer (steps), got {screen!r}")
        if screen and batch == 1:
            raise ConfigError("screen needs the batched path: give batch > 1 (e.g. batch=256)")
        if backend != "auto" and batch == 1:  # (checked here: the batched module imports torch)
            raise ConfigError("backend chooses the batched path's interpreter: give batch > 1 (e.g. batch=256)")
        _positive("threads", threads, integer=True)
        extra: dict[str, Any] = {"batch": int(batch), "screen": int(screen)} if batch != 1 else {}
        if backend != "auto":
            extra["backend"] = backend
        if threads != 1:
            extra["threads"] = int(threads)
        grid = _lr_grid(lr_grid, float(lr))
        if len(grid) > 1:  # (defaults: options, hence cache namespaces, as before)
            extra["lr_grid"] = [g for g in grid if g != float(lr)]
        super().__init__(tasks=task_list, steps=int(steps), lr=float(lr), seed=int(seed), device=device,
                         scale=float(scale), normalize=normalize, diverge=float(diverge), **extra)
        self.batch_size, self.screen = int(batch), int(screen)
        self.threads = int(threads)
        #: the batched path's program interpreter, resolved ("torch" or "numba"; None: one at a time)
        self.backend: str | None = None
        if batch != 1:
            from search_spaces.programs.batched import resolve_backend

            try:
                self.backend = resolve_backend(backend, device)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        self.tasks = task_list
        self.steps, self.lr, self.seed, self.device = int(steps), float(lr), int(seed), device
        self.scale, self.normalize, self.diverge = float(scale), normalize, float(diverge)
        #: the base learning rates every task is trained at (sorted; ``[lr]`` without a grid)
        self.lrs = grid
        #: why the last evaluation diverged (task: message), for people reading along.
        self.last_diverged: str | None = None

    def fidelity(self) -> dict[str, Any]:
        """The options, except that the batched path's generation size and screen (which change
        no result) become ``batched: true`` (its numerics differ from the reference path's in the
        last float32 bits)."""
        fid = super().fidelity()
        fid.pop("threads", None)
        fid.pop("backend", None)
        if fid.pop("batch", 1) != 1:
            fid.pop("screen", None)
            fid["batched"] = True
            if self.backend == "numba":
                fid["kernel"] = "numba"
        return fid

    def probe_domain(self) -> dict[str, Any]:
        """What a program sees here, for the hash probe: the step horizon, the cosine schedule's lr
        range (from its smallest value, a factor 10 below for margin, up to ``lr``), and gradient
        and weight magnitudes 10**[-14, 7] (the models' float32 range that matters)."""
        n = max(1, int(round(self.steps * self.scale)))
        lo_lr, hi_lr = self.lrs[0], self.lrs[-1]
        lo = lo_lr * 0.5 * (1.0 + math.cos(math.pi * (n - 1) / n)) if n > 1 else lo_lr
        return {"steps": n, "lr": [max(lo / 10.0, lo_lr * 1e-9), hi_lr], "grad_log10": [-14.0, 7.0],
                "weight_log10": [-14.0, 7.0]}

    def reference(self) -> dict[str, dict[str, Any]]:
        """AdamW's score: ``val_loss`` is normalised by AdamW's loss at the same fidelity, so AdamW
        scores exactly 1.0 (only with ``normalize``; raw losses have no fixed reference)."""
        return {"val_loss": {"value": 1.0, "label": "AdamW"}} if self.normalize else {}

    # --- running ---------------------------------------------------------------------------------
    def _train(self, task: str, program: Any, lr: float | None = None, **kw: Any):
        from . import tasks as T

        return T.train(task, program, steps=self.steps, lr=self.lr if lr is None else lr, seed=self.seed,
                       scale=self.scale, device=self.device, diverge=self.diverge, **kw)

    def _threads(self):
        """Context: ``threads`` torch threads on CPU (default one: evaluations run side by side;
        the compiled program kernel follows torch's count), restored after."""
        import contextlib

        import torch

        @contextlib.contextmanager
        def ctx():
            if self.device != "cpu":
                if not torch.cuda.is_available():
                    raise ConfigError(f"device {self.device!r} requested but torch.cuda.is_available() is False")
                yield
                return
            old, want = torch.get_num_threads(), self.threads
            if old != want:
                torch.set_num_threads(want)  # (the compiled program kernel uses as many threads)
            try:
                yield
            finally:
                if old != want:
                    torch.set_num_threads(old)

        return ctx()

    def adamw(self, task: str, lr: float | None = None) -> tuple[float, str | None]:
        """(validation loss, why it diverged or None) of AdamW (the classic program
        ``search_spaces.programs.CLASSIC_PROGRAMS["adamw"]``) on ``task`` at this fidelity and base
        ``lr`` (default ``self.lr``); once per process."""
        lr = self.lr if lr is None else float(lr)
        batched = self.batch_size > 1
        key = (task, self.steps, lr, self.seed, self.scale, self.device, self.diverge, batched)
        v = _BASELINES.get(key)
        if v is None:
            from search_spaces.programs import CLASSIC_PROGRAMS

            with self._threads():
                if batched:  # AdamW through the same path as the candidates: it scores exactly 1.0
                    from search_spaces.programs import parse

                    r = self._train_population([task], [parse(CLASSIC_PROGRAMS["adamw"])], lr=lr)[0].results[task]
                else:
                    r = self._train(task, CLASSIC_PROGRAMS["adamw"], lr=lr)
            v = _BASELINES[key] = (r.val_loss, r.diverged)
        return v

    def baseline(self, task: str) -> float:
        """AdamW's validation loss on ``task`` at this fidelity, the best over the lrs
        (raises ConfigError if AdamW diverges at every lr)."""
        runs = {lr: self.adamw(task, lr) for lr in self.lrs}
        ok = [loss for loss, diverged in runs.values() if not diverged]
        if not ok:
            raise ConfigError(f"AdamW itself diverges on task {task!r} at lr={self.lr:g} "
                              f"({runs[self.lr][1]}); lower lr")
        return min(ok)

    def details(self, genome: Any) -> dict[str, dict[str, Any]]:
        """Per task (:func:`best_over_lrs`): raw ``loss``, ``acc`` (or None), its base ``lr``, AdamW's
        loss ``adamw`` (nan if AdamW diverged) and ``adamw_lr``, ``ratio`` = loss / adamw,
        ``diverged`` (None or why), ``per_lr`` (lr: loss, acc, adamw, diverged); with a grid,
        each the best over the lrs.  Runs every task at every lr even after one diverges."""
        out: dict[str, dict[str, Any]] = {}
        with self._threads():
            for task in self.tasks:
                per = {}
                for lr in self.lrs:
                    r = self._train(task, genome, lr=lr)
                    base, base_div = self.adamw(task, lr)
                    per[lr] = {"loss": r.val_loss, "acc": r.val_acc, "adamw": math.nan if base_div else base,
                               "diverged": r.diverged}
                out[task] = best_over_lrs(per)
        return out

    def _train_population(self, task_names: Sequence[str], genomes: Sequence[Any], screen: int = 0,
                          lr: float | None = None):
        from .batched import train_population

        return train_population(task_names, genomes, steps=self.steps, lr=self.lr if lr is None else lr,
                                seed=self.seed, scale=self.scale, device=self.device, diverge=self.diverge,
                                screen=screen, backend=self.backend or "torch")

    def _train_grid(self, genomes: Sequence[Any], screen: int = 0):
        """The batched path over several base lrs: every (task, lr) is one
        :class:`~evaluators.optimizer_proxy.batched.TaskRun` of the whole population; a program
        is dropped once some task diverged at every lr (after the ``screen`` phase, which runs
        the first steps of every task at every lr, and after each task).  Returns (per program
        ``{task: {lr: CopyResult}}``, ``{program: (why, screened)}`` for the dropped ones,
        per program seconds)."""
        from .batched import TaskRun

        ids = list(range(len(genomes)))
        kw = dict(steps=self.steps, seed=self.seed, scale=self.scale, device=self.device, diverge=self.diverge,
                  backend=self.backend or "torch")
        runs = {(t, lr): TaskRun(t, genomes, ids, lr=lr, **kw) for t in self.tasks for lr in self.lrs}
        dead: dict[int, tuple[str, bool]] = {}

        def settle(task: str, screened: bool) -> None:
            for k in ids:
                res = [runs[(task, lr)].results.get(k) for lr in self.lrs]
                if k not in dead and all(r is not None and r.diverged for r in res):
                    dead[k] = (f"{task}: {res[-1].diverged} (at every lr)", screened)  # type: ignore[union-attr]

        if screen > 0:
            for run in runs.values():
                run.advance(screen)
            for task in self.tasks:
                settle(task, True)
        for task in self.tasks:
            for lr in self.lrs:
                run = runs[(task, lr)]
                run.drop(set(dead))
                run.finish()
            settle(task, False)
        results = [{t: {lr: runs[(t, lr)].results[k] for lr in self.lrs if k in runs[(t, lr)].results}
                    for t in self.tasks} for k in ids]
        cost = [sum(run.cost.get(k, 0.0) for run in runs.values()) for k in ids]
        return results, dead, cost

    def evaluate_batch(self, genomes: Sequence[Any], space: Any = None) -> list[Any]:
        """The batched path (``batch`` > 1; with ``batch`` = 1, one reference evaluation each):
        one :class:`~automl.types.Evaluation` per genome, with ``info`` ``diverged`` / ``screened``
        for a diverged program and ``cost_s`` = the compute it shared (see batched.py); an
        exception instance for a program that is not type-correct."""
        from automl.errors import InvalidCandidate
        from automl.types import Evaluation

        if self.batch_size == 1:
            return [self.evaluate(g, space) for g in genomes]
        out: list[Any] = [None] * len(genomes)
        ok = []
        for i, g in enumerate(genomes):
            err = getattr(getattr(g, "info", None), "error", "not an optimizer program")
            if err is not None:
                out[i] = InvalidCandidate(err)
            else:
                ok.append(i)
        if len(self.lrs) > 1:
            return self._evaluate_grid(genomes, ok, out)
        with self._threads():
            bases = {t: self.baseline(t) for t in self.tasks} if self.normalize else {}
            res = self._train_population(self.tasks, [genomes[i] for i in ok], self.screen)
        for i, r in zip(ok, res):
            if r.diverged is not None:
                out[i] = Evaluation({"val_loss": math.nan}, info={"diverged": r.diverged, "screened": r.screened},
                                    cost_s=r.cost_s)
                continue
            out[i] = Evaluation(self._objectives({t: r.results[t] for t in self.tasks}, bases), cost_s=r.cost_s)
        return out

    def _evaluate_grid(self, genomes: Sequence[Any], ok: list[int], out: list[Any]) -> list[Any]:
        from automl.types import Evaluation

        with self._threads():
            for t in self.tasks:
                self.baseline(t)  # AdamW at every lr (once per process), outside the charged time
            results, dead, cost = self._train_grid([genomes[i] for i in ok], self.screen)
        for k, i in enumerate(ok):
            if k in dead:
                why, screened = dead[k]
                out[i] = Evaluation({"val_loss": math.nan}, info={"diverged": why, "screened": screened},
                                    cost_s=cost[k])
                continue
            best = {t: best_over_lrs({lr: {"loss": r.val_loss, "acc": r.val_acc, "diverged": r.diverged,
                                           "adamw": self._adamw_or_nan(t, lr)} for lr, r in per.items()})
                    for t, per in results[k].items()}
            objs = self._objectives({t: _Best(d["loss"], d["acc"]) for t, d in best.items()},
                                    {t: d["adamw"] for t, d in best.items()} if self.normalize else {})
            objs.update({f"lr_{t}": d["lr"] for t, d in best.items()})
            out[i] = Evaluation(objs, cost_s=cost[k])
        return out

    def _adamw_or_nan(self, task: str, lr: float) -> float:
        loss, diverged = self.adamw(task, lr)
        return math.nan if diverged else loss

    def _objectives(self, results: Mapping[str, Any], bases: Mapping[str, float]) -> dict[str, float]:
        """``val_loss`` (mean over tasks of loss / AdamW's, or of the raw loss without
        ``normalize``), ``loss_<task>`` and ``val_acc`` (mean over tasks that have one)."""
        rel = [r.val_loss / bases[t] if self.normalize else r.val_loss for t, r in results.items()]
        objs = {"val_loss": sum(rel) / len(rel)}
        objs.update({f"loss_{t}": r.val_loss for t, r in results.items()})
        accs = [r.val_acc for r in results.values() if r.val_acc is not None]
        if accs:
            objs["val_acc"] = sum(accs) / len(accs)
        return objs

    def evaluate(self, genome: Any, space: Any = None) -> Mapping[str, float]:
        if self.batch_size > 1:  # one candidate through the batched path (same numerics as its batches)
            r = self.evaluate_batch([genome], space)[0]
            if isinstance(r, BaseException):
                raise r
            self.last_diverged = (r.info or {}).get("diverged")
            return r
        self.last_diverged = None
        results: dict[str, Any] = {}
        bases: dict[str, float] = {}
        with self._threads():
            for task in self.tasks:
                per = {}
                for lr in self.lrs:
                    r = self._train(task, genome, lr=lr)
                    per[lr] = {"loss": r.val_loss, "acc": r.val_acc, "diverged": r.diverged, "adamw": math.nan}
                d = best_over_lrs(per)
                if d["diverged"]:
                    self.last_diverged = f"{task}: {d['diverged']}"
                    return {"val_loss": math.nan}
                results[task] = _Best(d["loss"], d["acc"])
                bases[task] = self.baseline(task) if self.normalize else math.nan
                if len(self.lrs) > 1:
                    results[task].lr = d["lr"]
        out = self._objectives(results, bases)
        if len(self.lrs) > 1:
            out.update({f"lr_{t}": r.lr for t, r in results.items()})
        return out


class _Best:
    """A task's best result over the lrs (the fields :meth:`OptimizerProxy._objectives` reads)."""

    def __init__(self, val_loss: float, val_acc: float | None, lr: float | None = None):
        self.val_loss, self.val_acc, self.lr = val_loss, val_acc, lr


def _lr_grid(lr_grid: Any, lr: float) -> list[float]:
    """``sorted({lr} | lr_grid)``, each a positive number (ConfigError otherwise)."""
    if lr_grid is None:
        return [lr]
    if isinstance(lr_grid, (str, bytes)) or not isinstance(lr_grid, (list, tuple)):
        raise ConfigError(f"lr_grid must be a list of base learning rates, got {lr_grid!r}")
    return sorted({lr, *(float(_positive("lr_grid entry", g)) for g in lr_grid)})


def best_over_lrs(per_lr: Mapping[float, Mapping[str, Any]]) -> dict[str, Any]:
    """A task's result tuned over base lrs: ``per_lr`` maps lr -> {"loss", "acc", "adamw",
    "diverged"} (the program's and AdamW's validation loss at that lr; AdamW's nan where it
    diverged).  Returns the program's best (``loss``, ``acc``, ``lr``) over the lrs where it did not
    diverge, AdamW's best (``adamw``, ``adamw_lr``), ``ratio`` = loss / adamw, ``diverged`` (None,
    or why when it diverged at every lr: the reason at the largest) and ``per_lr`` itself.  The
    one tuning rule of the fitness (``lr_grid``) and of :func:`heldout_score`."""
    ok = [(d["loss"], lr) for lr, d in per_lr.items() if not d["diverged"] and math.isfinite(d["loss"])]
    base = [(d["adamw"], lr) for lr, d in per_lr.items() if math.isfinite(d["adamw"])]
    loss, lr = min(ok) if ok else (math.nan, None)
    b, b_lr = min(base) if base else (math.nan, None)
    last = per_lr[max(per_lr)]
    return {"loss": loss, "acc": per_lr[lr]["acc"] if lr is not None else None, "lr": lr, "adamw": b,
            "adamw_lr": b_lr, "ratio": loss / b if b > 0 else math.nan,
            "diverged": None if ok else (last["diverged"] or "non-finite validation loss")
            + (" (at every lr)" if len(per_lr) > 1 else ""),
            "per_lr": {k: dict(v) for k, v in per_lr.items()}}


#: base learning rates tried when heldout_score tunes the learning rate
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


def heldout_score(program: Any, *, steps: int = HELDOUT_STEPS, lr: float = 0.01, seed: int = 0,
                  scale: float = 1.0, device: str = "cpu", tasks: Sequence[str] = ("heldout",),
                  grid: Sequence[float] | None = LR_GRID) -> dict[str, Any]:
    """Meta-validation on tasks the search never sees (conv, regress, autoenc by default).

    Trains each task with ``program`` (text, genome or log record) and with AdamW, both with
    their base learning rate tuned per task over ``grid`` (as optimizers are compared in Chen et
    al. 2023), and also both at ``lr`` (the base lr the program was searched with).  A task counts
    as diverged for one optimizer only when every lr of the grid diverged.

    Returns ``{"score": mean over tasks of best loss / AdamW's best loss (nan if the program
    diverged on a task at every lr; < 1 beats a tuned AdamW), "score_same_lr": the same with both
    at ``lr`` (nan if it diverged there), "tasks": {task: {"loss", "lr", "adamw", "adamw_lr",
    "ratio", "loss_same_lr", "adamw_same_lr", "ratio_same_lr", "diverged"}}, "options": {...}}``.
    ``grid=None`` skips the tuning (then ``score`` is ``score_same_lr``).
    """
    from search_spaces.programs.optim import load_program

    genome, _ = load_program(program)
    ev = OptimizerProxy(tasks=list(tasks), steps=steps, lr=lr, seed=seed, scale=scale, device=device,
                        lr_grid=list(grid) if grid else None)
    det = ev.details(genome)
    for d in det.values():
        at = d["per_lr"][float(lr)]
        d.update(loss_same_lr=at["loss"], adamw_same_lr=at["adamw"],
                 ratio_same_lr=at["loss"] / at["adamw"] if at["adamw"] > 0 else math.nan)

    def mean(key: str) -> float:
        vals = [d[key] for d in det.values()]
        return sum(vals) / len(vals) if all(math.isfinite(v) for v in vals) else math.nan

    opts = {k: v for k, v in ev.options().items() if k != "lr_grid"}
    return {"score": mean("ratio"), "score_same_lr": mean("ratio_same_lr"), "tasks": det, "options": opts}
