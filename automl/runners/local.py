"""Local runners: in-process serial, and a process pool (``--workers N``)."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from typing import Any

from ..errors import ConfigError
from ..evaluation import has_batch, run_batch, run_evaluation
from .base import PluginSpec, RetryPolicy, Runner


class SerialRunner(Runner):
    """Evaluates in the calling process, one at a time (the default; no start-up cost).  An
    evaluator offering ``evaluate_batch`` gets up to its ``batch_size`` queued candidates at once."""

    name = "serial"

    def start(self, space, evaluator, timeout=None, *, local_space=None, local_evaluator=None):
        self.space = local_space if local_space is not None else space.build("space")
        self.evaluator = local_evaluator if local_evaluator is not None else evaluator.build("evaluator")
        self.timeout = timeout
        self._batch = max(1, int(getattr(self.evaluator, "batch_size", 1))) if has_batch(self.evaluator) else 1
        self._queue: list[tuple[int, str, Any]] = []

    @property
    def capacity(self) -> int:
        return getattr(self, "_batch", 1)

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        self._queue.append((task_id, text, genome))

    def poll(self, timeout=None):
        if not self._queue:
            return []
        if self._batch > 1:
            batch, self._queue = self._queue[:self._batch], self._queue[self._batch:]
            raws = run_batch(self.evaluator, self.space, [t for _, t, _ in batch], self.timeout,
                             [g for _, _, g in batch])
            return [(task_id, raw) for (task_id, _, _), raw in zip(batch, raws)]
        task_id, text, genome = self._queue.pop(0)
        return [(task_id, run_evaluation(self.evaluator, self.space, text, self.timeout, genome))]


# --- process pool -----------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(space: PluginSpec, evaluator: PluginSpec, torch_threads: int | None) -> None:
    if torch_threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
    _worker["space"] = space.build("space")
    _worker["evaluator"] = evaluator.build("evaluator")


def _evaluate_in_worker(text: str, timeout: float | None) -> dict[str, Any]:
    out = run_evaluation(_worker["evaluator"], _worker["space"], text, timeout)
    out["worker"] = os.getpid()
    return out


def timeout_grace(timeout: float) -> float:
    """How long past its limit an evaluation may run before its worker is killed from outside."""
    return RetryPolicy().grace(timeout)


class ProcessPoolRunner(Runner):
    """A pool of ``workers`` processes, each holding one evaluator built once from its spec.

    Workers start with the ``spawn`` method (safe with torch and threads).  A worker that dies
    (segfault, ``os._exit``, OOM kill) breaks the pool: it is rebuilt and the candidates that
    were in flight are retried, each up to ``max_retries`` times, then recorded ``failed``.
    The per-evaluation ``timeout`` is enforced inside the worker (SIGALRM); an evaluation stuck
    where that signal cannot reach it (inside a C call) is stopped from here once it is
    ``timeout_grace`` past its limit: the pool's processes are killed, the candidate is recorded
    ``failed`` and the others in flight are re-run without being charged an attempt.
    """

    name = "process"

    def __init__(self, workers: int = 2, max_retries: int = 2, torch_threads: int | None = 1):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers, self.max_retries, self.torch_threads = int(workers), int(max_retries), torch_threads
        self.retry = RetryPolicy(self.max_retries)
        self._pool: cf.ProcessPoolExecutor | None = None

    @property
    def capacity(self) -> int:
        return self.workers

    def start(self, space, evaluator, timeout=None, *, local_space=None, local_evaluator=None):
        self._specs, self.timeout = (space, evaluator), timeout
        self._futures: dict[cf.Future, int] = {}
        self._texts: dict[int, str] = {}
        self._attempts: dict[int, int] = {}
        self._started_at: dict[int, float] = {}
        self._new_pool()

    def _new_pool(self, kill: bool = False) -> None:
        if self._pool is not None:
            if kill:  # ProcessPoolExecutor has no public way to stop one running task
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(*self._specs, self.torch_threads))

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        self._texts[task_id] = text
        self._attempts[task_id] = self._attempts.get(task_id, 0) + 1
        self._started_at[task_id] = time.monotonic()  # capacity = workers: a submitted task starts now
        self._futures[self._pool.submit(_evaluate_in_worker, text, self.timeout)] = task_id

    def poll(self, timeout=None):
        if not self._futures:
            return []
        wait = timeout
        if self.timeout:  # wake up in time to stop an evaluation that ignores its alarm
            limit = self.retry.kill_after(self.timeout)
            first = min(self._started_at[t] for t in self._futures.values())
            due = max(first + limit - time.monotonic(), 0.0)
            wait = due if wait is None else min(wait, due)
        done, _ = cf.wait(list(self._futures), timeout=wait, return_when=cf.FIRST_COMPLETED)
        out, broken = [], []
        if not done and self.timeout:
            out += self._stop_overdue()
        for fut in done:
            task_id = self._futures.pop(fut)
            try:
                raw = fut.result()
            except cf.process.BrokenProcessPool:
                broken.append(task_id)
                continue
            raw["attempts"] = self._attempts.pop(task_id)
            self._texts.pop(task_id)
            self._started_at.pop(task_id, None)
            out.append((task_id, raw))
        if broken:
            # Every future of a broken pool fails; collect them all, rebuild, retry.
            broken += [self._futures.pop(f) for f in list(self._futures)]
            self._new_pool()
            for task_id in broken:
                if self.retry.gives_up(self._attempts[task_id]):
                    self._texts.pop(task_id)
                    self._started_at.pop(task_id, None)
                    out.append((task_id, {"objectives": None, "cost_s": 0.0,
                                          "attempts": self._attempts.pop(task_id),
                                          "error": self.retry.died_message()}))
                else:
                    self.submit(task_id, self._texts[task_id])
        return out

    def _stop_overdue(self) -> list[tuple[int, dict[str, Any]]]:
        """Kill the pool if an evaluation is past its limit; fail it, re-run the others free."""
        now, limit = time.monotonic(), self.retry.kill_after(self.timeout)
        overdue = [t for t in self._futures.values() if now - self._started_at[t] >= limit]
        if not overdue:
            return []
        others = [t for t in self._futures.values() if t not in overdue]
        self._futures.clear()
        self._new_pool(kill=True)
        out = []
        for task_id in overdue:
            self._texts.pop(task_id)
            started = self._started_at.pop(task_id)
            out.append((task_id, {"objectives": None, "cost_s": now - started,
                                  "attempts": self._attempts.pop(task_id),
                                  "error": f"timed out after {self.timeout:g} s (did not stop; worker killed)"}))
        for task_id in others:
            self._attempts[task_id] -= 1  # not its fault: not an attempt
            self.submit(task_id, self._texts[task_id])
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
