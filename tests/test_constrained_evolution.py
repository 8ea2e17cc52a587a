"""Evolution under a constraint whose feasible region random samples almost never hit: Deb's
constrained tournament (automl.objectives.selection_key) climbs towards it; the rule of comparing
infeasible results only as "does not rank" walks at random."""
from __future__ import annotations

import math

import numpy as np
import pytest

from automl.objectives import Objective, selection_key
from automl.strategies.evolution import RegularizedEvolution, _key
from automl.testing.toys import ToySpace
from automl.types import FAILED, OK, Candidate, Direction, EvalResult


class LowSampler(ToySpace):
    """Integers 0..999, sampled from 0..49 only; mutation moves 1..25 either way (no wrap-around)."""

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, 50))

    def mutate(self, g: int, rng: np.random.Generator) -> int:
        return int(np.clip(g + int(rng.integers(1, 26)) * (1 if rng.random() < 0.5 else -1), 0, self.n - 1))

    def warm_start(self):
        return []


FLOOR = 800  # feasible: g >= FLOOR; the loss (min) is g, so the best feasible is FLOOR itself


def result(g: int) -> EvalResult:
    return EvalResult(OK, {"loss": float(g)}, 0.0, constraints={"floor": 1.0 - g / FLOOR})


def search(n: int, seed: int) -> tuple[int | None, int]:
    """(best feasible genome or None, feasible results seen) after n evaluations."""
    space = LowSampler(n=1000, m=1000)
    st = RegularizedEvolution(population_size=10, tournament_size=3)
    st.bind(space, {"loss": "min"}, seed)
    feasible = 0
    for i in range(n):
        g = st.ask().genome
        r = result(g)
        st.tell(Candidate(i, g, space.to_text(g)), r)
        feasible += g >= FLOOR
    return (None if st.best is None else int(st.best[1])), feasible


@pytest.mark.parametrize("seed", range(5))
def test_evolution_climbs_to_a_feasible_region_random_samples_miss(seed):
    best, feasible = search(500, seed)
    assert best is not None and best >= FLOOR, (best, feasible)
    assert feasible >= 100  # once inside, the population stays there
    assert best <= FLOOR + 5  # and then minimises the loss inside it


def test_without_the_violation_order_the_same_search_never_gets_there(monkeypatch):
    """The contrast that makes the test above mean something: infeasible results all equal (the
    rule before) leave the search walking at random near where it sampled."""
    import automl.strategies.evolution as evolution

    obj = Objective("loss", Direction.MIN)
    monkeypatch.setattr(evolution, "selection_key",
                        lambda r, o: selection_key(r, obj) if selection_key(r, obj)[0] == 2 else (0, 0.0))
    assert [search(500, seed)[0] for seed in range(3)] == [None, None, None]


def test_selection_key_orders_feasible_then_violation_then_failures():
    obj = Objective("loss", Direction.MIN)
    feas_good, feas_bad = result(FLOOR), result(FLOOR + 100)
    near, far = result(FLOOR - 10), result(10)
    failed = EvalResult(FAILED, {}, 0.0, error="boom")
    nan = EvalResult(OK, {"loss": math.nan}, 0.0)
    keys = [selection_key(r, obj) for r in (feas_good, feas_bad, near, far, failed, nan)]
    assert keys[0] > keys[1] > keys[2] > keys[3] > keys[4] == keys[5]
    # the same rule on a run-log record (dict)
    rec = {"status": "ok", "objectives": {"loss": 5.0}, "constraints": {"floor": 0.5}}
    assert selection_key(rec, obj) == (1, -0.5)


def test_a_saved_state_round_trips_and_an_old_bare_fitness_still_loads():
    space = LowSampler(n=1000, m=1000)
    st = RegularizedEvolution(population_size=4, tournament_size=2)
    st.bind(space, {"loss": "min"}, 0)
    for i, g in enumerate((5, 900, 850, 30)):
        st.ask()
        st.tell(Candidate(i, g, str(g)), result(g))
    state = st.state_dict()
    again = RegularizedEvolution(population_size=4, tournament_size=2)
    again.bind(space, {"loss": "min"}, 0)
    again.load_state_dict(state)
    assert [e[3] for e in again.population] == [e[3] for e in st.population]
    assert _key(-850.0) == (2, -850.0) and _key(-math.inf) == (0, 0.0)
