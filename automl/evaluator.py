"""The evaluator contract.  An evaluator turns a genome into objectives.

Evaluators are built from ``(name, options)`` wherever they run (in-process, a process pool, a
Ray actor), so options must be JSON-able; they are the evaluator's *fidelity* and are part of
every cache key.  Heavy imports (torch, data) belong inside methods, not at module import.
"""
from __future__ import annotations

from typing import Any, Mapping


class Evaluator:
    name: str = ""
    version: str = "1"
    #: Objectives in order; the first is primary.  Direction is "min" or "max".
    objectives: Mapping[str, str] = {"loss": "min"}
    #: True when repeated evaluations of one candidate differ (the cache then aggregates).
    noisy: bool = False
    #: Objectives that belong to the candidate's text, not to its function (expression size, the
    #: parameter count of one encoding): computed for every candidate by
    #: :meth:`candidate_objectives` (cheaply, on the driver) and never cached or copied from an
    #: equivalent candidate.  The others are *functional*: cached per equivalence class.
    per_candidate: tuple[str, ...] = ()
    #: Spaces this evaluator understands, or None for any.
    spaces: tuple[str, ...] | None = None
    #: Options that make one evaluation quick; the contract test suite builds the evaluator with them.
    test_options: Mapping[str, Any] = {}

    def __init__(self, **options: Any):
        self._options = dict(options)

    def options(self) -> dict[str, Any]:
        """JSON-able options this evaluator was built with."""
        return dict(self._options)

    def fidelity(self) -> dict[str, Any]:
        """What the result depends on besides the candidate (steps, data set, seed...)."""
        return self.options()

    def evaluate(self, genome: Any, space: Any) -> Mapping[str, float]:
        raise NotImplementedError

    def candidate_objectives(self, genome: Any, space: Any) -> Mapping[str, float]:
        """The :attr:`per_candidate` objectives of ``genome`` (required when any are declared)."""
        raise NotImplementedError(f"{type(self).__name__} declares per_candidate objectives "
                                  f"{self.per_candidate} but no candidate_objectives()")

    def close(self) -> None:
        """Release resources (called once when a worker shuts down)."""

    @property
    def primary(self) -> str:
        return next(iter(self.objectives))

    def better(self, a: float, b: float) -> bool:
        """True when objective value ``a`` is strictly better than ``b`` on the primary objective."""
        return a < b if self.objectives[self.primary] == "min" else a > b
