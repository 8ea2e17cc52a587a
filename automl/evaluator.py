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

    def probe_domain(self) -> dict[str, Any] | None:
        """The inputs this evaluator will exercise, for the functional probe (JSON-able), or None
        for the space's documented default.  A space whose ``probe`` takes a ``domain`` keyword
        builds its probe from it; the declaration is part of every functional digest's namespace
        (automl.hashing), so changing it never reuses digests or aliases.  Keys each space reads:
        docs/hashing.md (e.g. expressions: ``{"points": {var: [...]}}``; optimizer programs:
        ``{"steps", "lr", "grad_log10", "weight_log10"}``)."""
        return None

    def evaluate(self, genome: Any, space: Any) -> Mapping[str, float]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (called once when a worker shuts down)."""

    @property
    def primary(self) -> str:
        return next(iter(self.objectives))

    def better(self, a: float, b: float) -> bool:
        """True when objective value ``a`` is strictly better than ``b`` on the primary objective."""
        return a < b if self.objectives[self.primary] == "min" else a > b
