"""The runner contract.  A runner evaluates candidate *texts* somewhere and hands back raw
outcomes (data only, see :func:`automl.evaluation.run_evaluation`).  The engine never knows
where an evaluation ran; the cache and the log stay with the engine.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class PluginSpec:
    """A registered plugin by name and JSON-able options: how a worker rebuilds a space/evaluator."""

    name: str
    options: dict[str, Any]

    def build(self, family: str) -> Any:
        from ..registry import create

        return create(family, self.name, **self.options)


class Runner:
    """Base class.  ``start`` once, then any number of ``submit``/``poll``, then ``close``."""

    name = ""

    def start(self, space: PluginSpec, evaluator: PluginSpec, timeout: float | None = None, *,
              local_space: Any = None, local_evaluator: Any = None) -> None:
        """Prepare workers.  ``local_*`` are the engine's own instances (in-process runners reuse them)."""
        raise NotImplementedError

    @property
    def capacity(self) -> int:
        """How many evaluations may be in flight at once."""
        return 1

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        """Queue one evaluation.  ``genome`` is the already-built genome of ``text``: runners that
        evaluate in this process may use it to skip parsing; others ignore it."""
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Finished ``(task_id, raw)`` pairs; waits up to ``timeout`` s for at least one when any is
        in flight (None: wait as long as needed)."""
        raise NotImplementedError

    def kill(self) -> None:
        """End every evaluation now (a second Ctrl-C): nothing may wait.  Runners that evaluate in
        this process have nothing to kill."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
