"""Local runners: in-process serial, and a process pool (``--workers N``)."""
from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError
from ..evaluation import has_batch, run_batch, run_evaluation
from .base import PluginSpec, RetryPolicy, Runner
from .workers import WorkerPool


class _PoolRunner(Runner):
    """A runner whose evaluations run in a :class:`WorkerPool` (``self._pool``, when it has one)."""

    _pool: WorkerPool | None = None

    def kill(self) -> None:
        if self._pool is not None:
            self._pool.kill()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class SerialRunner(_PoolRunner):
    """Evaluates one candidate at a time (the default; no start-up cost).  An evaluator offering
    ``evaluate_batch`` gets up to its ``batch_size`` queued candidates at once (in-process only).

    Without a ``timeout`` the evaluation runs in the calling process.  With one, it runs in a
    single child process (a :class:`~automl.runners.workers.WorkerPool` of one) that is killed
    and replaced when the evaluation passes its limit: no signal is ever sent inside an
    evaluation, and an evaluation stuck in C code is stopped all the same.

    Options:
        max_retries: re-runs of a candidate whose worker process died (with a timeout; default 2).
        max_tasks_per_worker: replace the child process after this many evaluations (default: never).
        max_rss_mb: replace the child process once its resident memory passes this (default: never).
    """

    name = "serial"

    def __init__(self, max_retries: int = 2, max_tasks_per_worker: int | None = None,
                 max_rss_mb: float | None = None):
        self.retry = RetryPolicy(int(max_retries))
        self.max_retries, self.max_tasks, self.max_rss_mb = int(max_retries), max_tasks_per_worker, max_rss_mb
        self._pool: WorkerPool | None = None
        self._batch = 1

    @property
    def capacity(self) -> int:
        return self._batch

    def start(self, space: PluginSpec, evaluator: PluginSpec, timeout: float | None = None) -> None:
        self.space = space.build("space")
        self.evaluator = evaluator.build("evaluator")
        self.timeout = check_timeout(timeout)
        self._queue: list[tuple[int, str, Any]] = []
        if self.timeout is None and has_batch(self.evaluator):
            self._batch = max(1, int(getattr(self.evaluator, "batch_size", 1)))
        if self.timeout is not None:
            self._pool = WorkerPool(1, space, evaluator, self.timeout, self.retry, max_tasks=self.max_tasks,
                                    max_rss_mb=self.max_rss_mb)

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        if self._pool is not None:
            self._pool.submit(task_id, text)
        else:
            self._queue.append((task_id, text, genome))

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        if self._pool is not None:
            return self._pool.poll(timeout)
        if not self._queue:
            return []
        if self._batch > 1:
            batch, self._queue = self._queue[:self._batch], self._queue[self._batch:]
            raws = run_batch(self.evaluator, self.space, [t for _, t, _ in batch], None, [g for _, _, g in batch])
            return [(task_id, raw) for (task_id, _, _), raw in zip(batch, raws)]
        task_id, text, genome = self._queue.pop(0)
        return [(task_id, run_evaluation(self.evaluator, self.space, text, None, genome))]



def check_timeout(timeout: Any) -> float | None:
    """A per-evaluation timeout: None, or a finite number of seconds > 0 (ConfigError otherwise)."""
    if timeout is None:
        return None
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"timeout must be a number of seconds, got {timeout!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ConfigError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    return t


# --- process pool -----------------------------------------------------------------------------------

class ProcessPoolRunner(_PoolRunner):
    """``workers`` spawn processes, each holding one evaluator built once from its spec (see
    :mod:`automl.runners.workers`: exact crash blame, per-worker timeouts by kill and replace,
    workers that die with the driver, recycling after ``max_tasks_per_worker`` evaluations or
    ``max_rss_mb`` of resident memory).  A candidate whose worker dies is retried up to
    ``max_retries`` times, then recorded ``failed`` (transient: a later run tries again).
    ``torch_threads``: torch/OpenMP threads per worker (default 1; None: leave torch's default).
    """

    name = "process"

    def __init__(self, workers: int = 2, max_retries: int = 2, torch_threads: int | None = 1,
                 max_tasks_per_worker: int | None = None, max_rss_mb: float | None = None):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.retry = RetryPolicy(int(max_retries))
        self.workers, self.max_retries, self.torch_threads = int(workers), int(max_retries), torch_threads
        self.max_tasks, self.max_rss_mb = max_tasks_per_worker, max_rss_mb
        self._pool: WorkerPool | None = None

    @property
    def capacity(self) -> int:
        return self.workers

    def start(self, space: PluginSpec, evaluator: PluginSpec, timeout: float | None = None) -> None:
        self.timeout = check_timeout(timeout)
        self._pool = WorkerPool(self.workers, space, evaluator, self.timeout,
                                self.retry, self.torch_threads, self.max_tasks, self.max_rss_mb)

    def _started(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("ProcessPoolRunner: call start() before submit()/poll()")
        return self._pool

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        self._started().submit(task_id, text)

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        return self._started().poll(timeout)

