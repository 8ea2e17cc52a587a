"""Regularized (aging) evolution with tournament selection (Real et al. 2019; AutoML-Zero)."""
from __future__ import annotations

import collections
import math
from typing import Any, Mapping

from ..errors import ConfigError, InvalidCandidate
from ..objectives import selection_key
from ..space import has_crossover
from ..types import Candidate, EvalResult
from .base import Proposal, Strategy


class RegularizedEvolution(Strategy):
    """Aging evolution: tournament of ``tournament_size`` from a population of the last
    ``population_size`` told candidates; the winner's mutation is the child; the oldest dies.

    * ``warm_start``: also start from the space's ``warm_start()`` genomes (plus any given as
      text in ``warm_start_texts``); they are evaluated first and the initial population is
      filled with their mutations instead of random samples.
    * ``fcm`` (functional change mutation): re-mutate up to ``fcm_tries`` times until the
      child's functional digest differs from its parent's.
    * ``restart_every``: every that many tells, reset the population to the warm start
      (``restart_from="warm"``) or to the best candidate so far (``"best"``).
    * ``restart_from``: what a restart resets the population to: ``"warm"`` (default) or ``"best"``.
    * ``crossover_prob``: with this probability (spaces with ``crossover`` only), a second
      tournament picks another parent and the child is the mutated crossover of the two.
    Children that fail the space's validation are re-mutated (up to ``max_invalid_tries``),
    uncharged.  Tournaments follow Deb's constrained rule (:func:`automl.objectives.selection_key`):
    feasible results by fitness, then results that violate a constraint by how much, then failures;
    an infeasible result is never the best.
    """

    name = "evolution"

    def __init__(self, population_size: int = 100, tournament_size: int = 10, warm_start: bool = True,
                 warm_start_texts: list[str] | None = None, fcm: bool = False, fcm_tries: int = 10,
                 restart_every: int | None = None, restart_from: str = "warm", max_invalid_tries: int = 50,
                 crossover_prob: float = 0.0):
        if population_size < 1:
            raise ConfigError(f"population_size must be >= 1, got {population_size}")
        if not 1 <= tournament_size <= population_size:
            raise ConfigError(f"tournament_size must be in 1..population_size ({population_size}), "
                              f"got {tournament_size}")
        if restart_from not in ("warm", "best"):
            raise ConfigError(f"restart_from must be 'warm' or 'best', got {restart_from!r}")
        self.population_size, self.tournament_size = int(population_size), int(tournament_size)
        self.use_warm_start, self.warm_start_texts = warm_start, list(warm_start_texts or [])
        self.fcm, self.fcm_tries = fcm, int(fcm_tries)
        self.restart_every, self.restart_from = restart_every, restart_from
        self.max_invalid_tries = int(max_invalid_tries)
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.crossover_prob = float(crossover_prob)
        # population entries: (candidate id, text, genome, tournament key: objectives.selection_key)
        self.population: collections.deque[tuple[int, str, Any, tuple[int, float]]] = collections.deque()
        self.best: tuple[int, str, float] | None = None
        self.n_asked = self.n_told = 0
        self.invalid_rejected = self.fcm_retries = 0

    def options(self) -> dict[str, Any]:
        return {"population_size": self.population_size, "tournament_size": self.tournament_size,
                "warm_start": self.use_warm_start, "warm_start_texts": self.warm_start_texts, "fcm": self.fcm,
                "fcm_tries": self.fcm_tries, "restart_every": self.restart_every,
                "restart_from": self.restart_from, "crossover_prob": self.crossover_prob}

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, seam: Any = None) -> None:
        super().bind(space, objectives, seed, seam)
        if self.crossover_prob and not has_crossover(space):
            raise ConfigError(f"crossover_prob needs a space with crossover; {space.name!r} has none")
        if self.fcm and seam is None:
            raise ConfigError("fcm needs the evaluation seam for digests (the engine provides it)")
        self._warm = [space.from_text(t) for t in self.warm_start_texts]
        if self.use_warm_start:
            self._warm += list(space.warm_start())
        self._warm_queue = list(self._warm)

    # --- ask ---------------------------------------------------------------------------------------
    def ask(self) -> Proposal:
        self.n_asked += 1
        if self._warm_queue:
            return Proposal(self._warm_queue.pop(0), meta={"origin": "warm-start"})
        if len(self.population) + self._in_flight() < self.population_size and self.n_told < self.population_size:
            if self._warm:
                parent = self._warm[int(self.rng.integers(len(self._warm)))]
                return Proposal(self._child(parent), meta={"origin": "warm-mutation"})
            return Proposal(self._sample(), meta={"origin": "sample"})
        if not self.population:  # everything asked is still in flight: sample meanwhile
            return Proposal(self._sample(), meta={"origin": "sample"})
        idx = self.rng.choice(len(self.population), size=min(self.tournament_size, len(self.population)),
                              replace=False)
        pid, _, genome, _ = max((self.population[int(i)] for i in idx), key=lambda e: e[3])
        if self.crossover_prob and len(self.population) > 1 and self.rng.random() < self.crossover_prob:
            # a second tournament picks the other parent; the child is their crossover, mutated
            idx2 = self.rng.choice(len(self.population), size=min(self.tournament_size, len(self.population)),
                                   replace=False)
            pid2, _, genome2, _ = max((self.population[int(i)] for i in idx2), key=lambda e: e[3])
            mixed = self.space.crossover(genome, genome2, self.rng)
            return Proposal(self._child(mixed), parents=(pid, pid2), meta={"origin": "crossover"})
        return Proposal(self._child(genome), parents=(pid,), meta={"origin": "mutation"})

    def _in_flight(self) -> int:
        return self.n_asked - 1 - self.n_told

    def _sample(self) -> Any:
        for _ in range(self.max_invalid_tries):
            g = self.space.sample(self.rng)
            if self._valid(g):
                return g
        return g

    def _valid(self, genome: Any) -> bool:
        try:
            self.space.validate(genome)
            return True
        except InvalidCandidate:
            self.invalid_rejected += 1
            return False

    def _child(self, parent: Any) -> Any:
        parent_hash = self.seam.digest(parent) if self.fcm else None
        child = parent
        for attempt in range(max(self.max_invalid_tries, self.fcm_tries)):
            child = self.space.mutate(parent, self.rng)
            if not self._valid(child):
                continue
            if parent_hash is None or attempt >= self.fcm_tries - 1:
                return child
            if self.seam.digest(child) != parent_hash:
                return child
            self.fcm_retries += 1
        return child

    # --- tell --------------------------------------------------------------------------------------
    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        self.n_told += 1
        key = selection_key(result, self.objective)
        fit = key[1] if key[0] == 2 else -math.inf  # the fitness of a ranked result; -inf otherwise
        self.population.append((candidate.id, candidate.text, candidate.genome, key))
        while len(self.population) > self.population_size:
            self.population.popleft()
        if math.isfinite(fit) and (self.best is None or fit > self.best[2]):
            self.best = (candidate.id, candidate.text, fit)
        if self.restart_every and self.n_told % self.restart_every == 0:
            self._restart()

    def _restart(self) -> None:
        self.population.clear()
        if self.restart_from == "best" and self.best is not None:
            self._warm = [self.space.from_text(self.best[1])]
        self._warm_queue = list(self._warm)

    # --- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "population": [[i, t, list(k)] for i, t, _, k in self.population],
                "best": list(self.best) if self.best else None, "n_asked": self.n_asked, "n_told": self.n_told,
                "warm_queue": [self.space.to_text(g) for g in self._warm_queue],
                "warm": [self.space.to_text(g) for g in self._warm],
                "invalid_rejected": self.invalid_rejected, "fcm_retries": self.fcm_retries}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = collections.deque(
            (i, t, self.space.from_text(t), _key(k)) for i, t, k in state["population"])
        self.best = tuple(state["best"]) if state.get("best") else None
        # Asked-but-untold candidates died with the previous process: count them as never asked.
        self.n_told = self.n_asked = int(state["n_told"])
        self._warm = [self.space.from_text(t) for t in state.get("warm", [])]
        self._warm_queue = [self.space.from_text(t) for t in state["warm_queue"]]
        self.invalid_rejected = int(state.get("invalid_rejected", 0))
        self.fcm_retries = int(state.get("fcm_retries", 0))

    def replay(self, candidate: Candidate, result: EvalResult) -> None:
        self.n_asked += 1
        if self._warm_queue and candidate.text == self.space.to_text(self._warm_queue[0]):
            self._warm_queue.pop(0)
        self.tell(candidate, result)


def _key(saved: Any) -> tuple[int, float]:
    """A saved tournament key; a bare fitness (states written before the constrained rule) keeps
    its order: finite ones rank, -inf ones come last."""
    if isinstance(saved, (list, tuple)):
        return int(saved[0]), float(saved[1])
    return (2, float(saved)) if math.isfinite(float(saved)) else (0, 0.0)


class RandomSearch(Strategy):
    """Independent samples from the space."""

    name = "random"

    def ask(self) -> Proposal:
        return Proposal(self.space.sample(self.rng), meta={"origin": "sample"})

    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        pass
