"""The strategy contract: ask/tell, an owned RNG, JSON-able state."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from ..objectives import fitness
from ..types import Candidate, EvalResult, objectives_of


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What ``ask`` returns; the engine turns it into an immutable :class:`Candidate`."""

    genome: Any
    parents: tuple[int, ...] = ()
    params: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None


class Strategy:
    """Base class of search strategies: ask/tell with an owned RNG and JSON-able state.

    Lifecycle: ``bind`` once, then any interleaving of ``ask`` and ``tell`` (several candidates may
    be in flight at once: a strategy must not assume a tell follows each ask), ``state_dict`` /
    ``load_state_dict`` for checkpoints, ``replay`` for results logged after the last snapshot.
    """

    name = ""

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, seam: Any = None) -> None:
        """Attach the space, the evaluator's objectives (``{name: "min"|"max"}``, first primary) and
        a seed (the strategy's own RNG: never the global one).  ``seam`` is the evaluation seam: a
        strategy that needs a candidate's functional digest calls ``seam.digest(genome)`` (memoized,
        charged and counted there), never the hasher itself."""
        self.space, self.objectives, self.seam = space, dict(objectives), seam
        self.objective = objectives_of(self.objectives)[0]
        self.primary = self.objective.name
        self.direction = self.objective.direction.value
        self.rng = np.random.default_rng(seed)

    def fitness(self, result: EvalResult) -> float:
        """Primary objective as a number to maximise; failures, invalid and non-finite are -inf."""
        return fitness(result, self.objective)

    def ask(self) -> Proposal | None:
        """The next proposal, or None when the strategy has nothing left (space exhausted).

        Must keep answering after any sequence of results, failures and NaN/inf included (the
        contract in :mod:`automl.testing` checks it).  Must not mutate genomes it handed out."""
        raise NotImplementedError

    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        """The result of an asked candidate; called exactly once per candidate, cache hits
        included, possibly in another order than asked.  ``result.status`` may be failed or invalid
        and ``result.objectives`` may hold non-finite values."""
        raise NotImplementedError

    def replay(self, candidate: Candidate, result: EvalResult) -> None:
        """Re-tell a result logged after the last snapshot (default: an ordinary tell)."""
        self.tell(candidate, result)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state that, with :meth:`load_state_dict`, restores this strategy exactly."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def options(self) -> dict[str, Any]:
        return {}
