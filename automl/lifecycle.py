"""Process lifecycle: how a search stops on Ctrl-C and SIGTERM, and how workers die with it.

* :class:`StopSignals` (installed by the engine around its loop, main thread only): the first
  SIGINT or SIGTERM raises :class:`Interrupted` in the driver, which stops asking, ends the
  workers, writes a snapshot and exits (130 for Ctrl-C, 143 for SIGTERM: what ``docker stop``,
  slurm and systemd send).  A second signal while that runs calls the ``escalate`` hook (kill
  the workers now, no waiting) and raises again; a third exits at once with ``os._exit``.  No
  stop can hang.
* :class:`Interrupted` is a ``KeyboardInterrupt`` subclass, so a ``KeyboardInterrupt`` or
  ``SystemExit`` that an *evaluator* raises is told apart from a real Ctrl-C: the first is a
  failed evaluation (see ``automl.evaluation.run_evaluation``), the second stops the search.
* :func:`watch_parent` (in every worker process): a daemon thread that ends the worker when its
  parent is gone (kill -9 of the driver leaves no orphans finishing useless work).  Workers
  ignore SIGINT: the terminal sends Ctrl-C to the whole process group and only the driver
  decides what it means.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable

PARENT_POLL_S = 0.25


class Interrupted(KeyboardInterrupt):
    """A stop signal delivered to this process (SIGINT or SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Context manager: SIGINT/SIGTERM raise :class:`Interrupted`; repeats escalate (see module)."""

    def __init__(self, escalate: Callable[[], Any] | None = None):
        self.escalate = escalate
        self.count = 0
        self.first: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.count += 1
        if self.count == 1:
            self.first = signum
            raise Interrupted(signum)
        if self.count == 2:
            print("\nstopping now (workers killed); once more exits at once", file=sys.stderr, flush=True)
            if self.escalate is not None:
                self.escalate()
            raise Interrupted(signum)
        os._exit(128 + signum)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def watch_parent(parent_pid: int | None = None) -> None:
    """Exit this process (``os._exit``) as soon as its parent is gone (daemon thread)."""
    parent = os.getppid() if parent_pid is None else parent_pid

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(PARENT_POLL_S)

    threading.Thread(target=watch, name="automl-parent-watch", daemon=True).start()


def worker_signals() -> None:
    """Signals in a worker process: Ctrl-C is the driver's business; SIGTERM ends the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
