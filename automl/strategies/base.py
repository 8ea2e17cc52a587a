"""The strategy contract: ask/tell, an owned RNG, JSON-able state."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from ..types import OK, Candidate, EvalResult


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What ``ask`` returns; the engine turns it into an immutable :class:`Candidate`."""

    genome: Any
    parents: tuple[int, ...] = ()
    params: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None


class Strategy:
    """Base class.  ``bind`` is called once before the first ``ask``.

    ``ask()`` returns a :class:`Proposal` or None when the strategy has nothing left to propose
    (space exhausted).  ``tell(candidate, result)`` is called exactly once per asked candidate,
    cache hits included.  ``state_dict()`` is JSON-able and, with ``load_state_dict``, restores
    the strategy after a restart; ``replay`` re-tells logged results after a snapshot.
    """

    name = ""

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, hasher: Any = None) -> None:
        self.space, self.objectives, self.hasher = space, dict(objectives), hasher
        self.primary = next(iter(self.objectives))
        self.direction = self.objectives[self.primary]
        self.rng = np.random.default_rng(seed)

    def fitness(self, result: EvalResult) -> float:
        """Primary objective as a number to maximise; failures are worst."""
        if result.status != OK or self.primary not in result.objectives:
            return -math.inf
        v = float(result.objectives[self.primary])
        return v if self.direction == "max" else -v

    def ask(self) -> Proposal | None:
        raise NotImplementedError

    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        raise NotImplementedError

    def replay(self, candidate: Candidate, result: EvalResult) -> None:
        """Re-tell a result logged after the last snapshot (default: an ordinary tell)."""
        self.tell(candidate, result)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def options(self) -> dict[str, Any]:
        return {}
