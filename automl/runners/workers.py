"""A pool of evaluator processes that the driver controls one by one.

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies the whole pool
breaks and every in-flight task fails with it, so the runner cannot tell which candidate killed
the worker (innocent candidates were charged attempts and ended "failed", poisoning a shared
cache); it cannot stop one running task (timeouts had to kill the pool); its shutdown can block
on a busy worker (a second Ctrl-C hung the driver).  Here each worker is a ``spawn`` process
with its own pipe and holds at most one task, so:

* a dead worker blames exactly the task it held (retried up to ``max_retries``, then failed as
  ``transient``); the other workers and their tasks are untouched;
* a timeout kills and replaces only the worker that is over its limit (no signal inside the
  evaluation: nothing to ignore, nothing to corrupt);
* workers end with their parent (:func:`automl.lifecycle.watch_parent`), ignore Ctrl-C, and are
  recycled after ``max_tasks`` evaluations or when their resident memory passes ``max_rss_mb``;
* :meth:`WorkerPool.close` never waits more than ``grace`` seconds; :meth:`WorkerPool.kill` not
  at all.
"""
from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection as mpc
import os
import time
from typing import Any

from ..errors import ConfigError
from ..evaluation import run_evaluation
from .base import RetryPolicy

TIMEOUT, TRANSIENT = "timeout", "transient"
MAX_START_FAILURES = 3  # workers that die before they are ready this often in a row: a configuration error


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, KiB on Linux


def _build(obj: Any, family: str) -> Any:
    from .base import PluginSpec

    return obj.build(family) if isinstance(obj, PluginSpec) else obj


def _worker_main(conn: Any, space: Any, evaluator: Any, parent: int, torch_threads: int | None,
                 max_rss_mb: float | None) -> None:
    from ..lifecycle import watch_parent, worker_signals

    worker_signals()
    watch_parent(parent)
    if torch_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(torch_threads))
    try:
        sp, ev = _build(space, "space"), _build(evaluator, "evaluator")
    except Exception as exc:  # reported to the driver as a configuration error
        conn.send(("init-error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if msg is None:
                break
            task_id, text, timeout = msg
            out = run_evaluation(ev, sp, text, timeout)
            out["worker"] = os.getpid()
            conn.send((task_id, out))
            if max_rss_mb is not None and _rss_mb() > max_rss_mb:
                break  # recycled: the driver sees the pipe close with no task held
    finally:
        ev.close()


class _Worker:
    def __init__(self, ctx: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True, name="automl-worker")
        self.proc.start()
        child.close()
        self.ready = False
        self.task: int | None = None
        self.since = 0.0
        self.done = 0

    def kill(self, grace: float = 0.0) -> None:
        if grace:
            self.proc.join(timeout=grace)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5.0)
        self.conn.close()


class WorkerPool:
    """``n`` worker processes evaluating candidate texts (see the module docstring).

    ``space``/``evaluator`` are PluginSpecs (rebuilt in each worker) or picklable instances.
    ``poll`` returns ``(task_id, raw)`` pairs like every runner; ``raw["attempts"]`` counts the
    workers a candidate was started on.
    """

    def __init__(self, n: int, space: Any, evaluator: Any, timeout: float | None = None,
                 retry: RetryPolicy | None = None, torch_threads: int | None = 1, max_tasks: int | None = None,
                 max_rss_mb: float | None = None, grace: float = 2.0):
        if n < 1:
            raise ConfigError(f"workers must be >= 1, got {n}")
        if max_tasks is not None and max_tasks < 1:
            raise ConfigError(f"max_tasks_per_worker must be >= 1, got {max_tasks}")
        self.n, self.timeout, self.max_tasks, self.grace = n, timeout, max_tasks, grace
        self.retry = retry or RetryPolicy()
        self._ctx = multiprocessing.get_context("spawn")
        self._args = (space, evaluator, os.getpid(), torch_threads, max_rss_mb)
        self._workers: list[_Worker] = [self._spawn() for _ in range(n)]
        self._queue: collections.deque[int] = collections.deque()
        self._texts: dict[int, str] = {}
        self._attempts: dict[int, int] = {}
        self.started = n
        self.recycled = 0
        self._start_failures = 0

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self._args)

    @property
    def in_flight(self) -> int:
        return len(self._texts)

    def submit(self, task_id: int, text: str) -> None:
        self._texts[task_id] = text
        self._attempts.setdefault(task_id, 0)
        self._queue.append(task_id)
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.ready and w.task is None:
                task_id = self._queue.popleft()
                self._attempts[task_id] += 1
                w.task, w.since = task_id, time.monotonic()
                try:
                    w.conn.send((task_id, self._texts[task_id], self.timeout))
                except (OSError, ValueError):  # died between its last message and now: handled in poll
                    pass

    def _replace(self, w: _Worker, grace: float = 0.0) -> None:
        w.kill(grace)
        self._workers[self._workers.index(w)] = self._spawn()
        self.started += 1

    def _finish(self, task_id: int, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raw["attempts"] = self._attempts.pop(task_id)
        self._texts.pop(task_id, None)
        return task_id, raw

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        if not self._texts:
            return []
        until = None if timeout is None else time.monotonic() + timeout
        out: list[tuple[int, dict[str, Any]]] = []
        while True:
            self._dispatch()
            now = time.monotonic()
            wait = None if until is None else max(until - now, 0.0)
            if self.timeout is not None:
                busy = [w.since + self.retry.kill_after(self.timeout) for w in self._workers if w.task is not None]
                if busy:
                    due = max(min(busy) - now, 0.0)
                    wait = due if wait is None else min(wait, due)
            waitables = {}
            for w in self._workers:
                waitables[w.conn] = w
                waitables[w.proc.sentinel] = w
            ready = mpc.wait(list(waitables), timeout=wait)
            seen = set()
            for obj in ready:
                w = waitables[obj]
                if id(w) in seen:
                    continue
                seen.add(id(w))
                self._service(w, out)
            self._enforce_timeouts(out)
            if out or (until is not None and time.monotonic() >= until):
                return out

    def _service(self, w: _Worker, out: list[tuple[int, dict[str, Any]]]) -> None:
        """Read what worker ``w`` sent; a closed pipe or dead process means it is gone."""
        eof = False
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready = True
                elif msg[0] == "init-error":
                    self.kill()
                    raise ConfigError(f"the evaluator worker failed to start: {msg[1]}")
                else:
                    task_id, raw = msg
                    w.task = None
                    w.done += 1
                    out.append(self._finish(task_id, raw))
                    if self.max_tasks is not None and w.done >= self.max_tasks:
                        try:
                            w.conn.send(None)
                        except OSError:
                            pass
                        self.recycled += 1
                        self._replace(w, grace=1.0)
                        return
        except (EOFError, OSError):
            eof = True
        if eof or not w.proc.is_alive():
            self._lost(w, out)

    def _lost(self, w: _Worker, out: list[tuple[int, dict[str, Any]]]) -> None:
        task_id, since = w.task, w.since
        w.proc.join(timeout=1.0)
        code = w.proc.exitcode
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                self.kill()
                raise ConfigError(f"evaluator worker processes die while starting (exit code {code}, "
                                  f"{self._start_failures} times); their stderr says why (a script that starts workers "
                                  "must call automl.search under `if __name__ == \"__main__\":`)")
        else:
            self._start_failures = 0
        self._replace(w)
        if task_id is None:  # recycled for memory, or died idle: nobody to blame
            return
        if self.retry.gives_up(self._attempts[task_id]):
            out.append(self._finish(task_id, {
                "objectives": None, "cost_s": time.monotonic() - since, "failure": TRANSIENT,
                "error": f"worker process died {self._attempts[task_id]} times evaluating this candidate "
                         f"(last exit code {code})"}))
        else:
            self._queue.appendleft(task_id)

    def _enforce_timeouts(self, out: list[tuple[int, dict[str, Any]]]) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        for w in list(self._workers):
            if w.task is not None and now - w.since >= self.retry.kill_after(self.timeout):
                if w.conn.poll():  # its result arrived in time after all
                    continue
                task_id, since = w.task, w.since
                self._replace(w)
                out.append(self._finish(task_id, {"objectives": None, "cost_s": now - since, "failure": TIMEOUT,
                                                  "error": f"timed out after {self.timeout:g} s (worker killed)"}))

    def kill(self) -> None:
        """End every worker now (in-flight evaluations are lost, never reported)."""
        for w in self._workers:
            w.kill()
        self._workers = []
        self._queue.clear()
        self._texts.clear()

    def close(self) -> None:
        """Ask idle workers to stop, wait at most ``grace`` s, then kill whatever is left."""
        for w in self._workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + self.grace
        for w in self._workers:
            w.proc.join(timeout=max(deadline - time.monotonic(), 0.0) if w.task is None else 0.0)
        self.kill()
