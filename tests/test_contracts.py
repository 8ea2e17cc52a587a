"""Runs the contract suites (tests/contracts.py) over every registered plugin."""
import pytest

from automl import registry
from automl.testing import contracts
from plugins_for_tests import ToySpace

SPACES = registry.names("space")
EVALUATORS = registry.names("evaluator")
STRATEGIES = registry.names("strategy")


@pytest.mark.parametrize("name", SPACES)
def test_space_contract(name):
    contracts.space_contract(name)


@pytest.mark.parametrize("name", EVALUATORS)
def test_evaluator_contract(name):
    contracts.evaluator_contract(name)


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_contract(name):
    contracts.strategy_contract(name, ToySpace())


def test_contracts_catch_a_broken_space():
    """The space contract must fail on a space whose mutate modifies its input."""

    class Broken(ToySpace):
        def sample(self, rng):
            return [int(rng.integers(0, 10))]

        def mutate(self, g, rng):
            g.append(1)
            return g

        def to_text(self, g):
            return ",".join(map(str, g))

        def from_text(self, t):
            return [int(x) for x in t.split(",")]

        def structural_key(self, g):
            return self.to_text(g)

        def probe(self, g, seed):
            import numpy as np
            return np.array(g, float)

        def param_space(self):
            return None

    registry.register_space("broken-for-test", Broken)
    Broken.name = "broken-for-test"
    with pytest.raises(AssertionError):
        contracts.space_contract("broken-for-test")


GOLDEN = __import__("os").path.join(__import__("os").path.dirname(__file__), "golden")


@pytest.mark.parametrize("name", SPACES)
def test_golden_digests_are_pinned(name):
    contracts.golden_contract(name, GOLDEN)


def test_strategy_contract_catches_a_strategy_that_gives_up_after_a_failure():
    from automl.strategies.evolution import RandomSearch

    class GivesUp(RandomSearch):
        def tell(self, candidate, result):
            self.dead = self.dead or result.status != "ok"

        def ask(self):
            return None if getattr(self, "dead", False) else super().ask()

    s = GivesUp()
    s.dead = False
    s.bind(ToySpace(), {"loss": "min"}, seed=0)
    with pytest.raises(AssertionError, match="ask"):
        contracts.strategy_keeps_asking(s, ToySpace())
