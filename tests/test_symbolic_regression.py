"""The "symbolic-regression" evaluator."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import automl
from automl.errors import ConfigError, InvalidCandidate
from automl.types import INVALID, OK, classify_objectives
from evaluators.symbolic_regression import BENCHMARKS, SymbolicRegression
from search_spaces.expressions import ExpressionSpace


@pytest.fixture(scope="module")
def space() -> ExpressionSpace:
    return ExpressionSpace()


def test_registered_and_contract(space):
    ev = automl.get_evaluator("symbolic-regression")
    assert isinstance(ev, SymbolicRegression) and isinstance(ev, automl.Evaluator)
    assert ev.objectives == {"mse": "min", "size": "min"} and ev.primary == "mse"
    opts = ev.options()
    assert json.loads(json.dumps(opts)) == opts
    assert json.loads(json.dumps(ev.fidelity())) == ev.fidelity()
    rebuilt = automl.get_evaluator("symbolic-regression", **opts)
    assert np.array_equal(rebuilt.y, ev.y)


def test_target_itself_scores_zero_and_others_do_not(space):
    ev = SymbolicRegression()
    res = ev.evaluate(space.from_text("x**3 + x**2 + x"), space)
    assert set(res) == {"mse", "size"} and res["mse"] < 1e-20 and res["size"] == 9.0
    assert ev.evaluate(space.from_text("x*(x*(x + 1) + 1)"), space)["mse"] < 1e-20
    for text in ["x", "x**3", "x**3 + x**2", "sin(x)", "0"]:
        assert ev.evaluate(space.from_text(text), space)["mse"] > 1e-6, text


def test_non_finite_predictions_are_non_finite(space):
    ev = SymbolicRegression()
    inf = ev.evaluate(space.from_text("1/(x - x)"), space)["mse"]
    nan = ev.evaluate(space.from_text("log(x - 5)"), space)["mse"]
    huge = ev.evaluate(space.from_text("exp(exp(exp(x + 10)))"), space)["mse"]
    assert math.isinf(inf) and math.isnan(nan) and not math.isfinite(huge)
    assert classify_objectives(ev.evaluate(space.from_text("log(x - 5)"), space))[0] == INVALID
    assert classify_objectives(ev.evaluate(space.from_text("x"), space))[0] == OK


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_named_targets(name):
    text, variables, (low, high) = BENCHMARKS[name]
    ev = SymbolicRegression(target=name, n=64)
    sp = ExpressionSpace(variables=variables)
    assert ev.options()["low"] == low and ev.options()["high"] == high
    assert ev.options()["variables"] == list(variables)
    assert ev.evaluate(sp.from_text(text), sp)["mse"] == 0.0
    assert ev.evaluate(sp.from_text("x + 1.5"), sp)["mse"] > 0.0
    assert np.all(np.isfinite(ev.y))


def test_named_target_shares_fidelity_with_its_text():
    by_name = SymbolicRegression(target="nguyen7")
    by_text = SymbolicRegression(target="log(x + 1) + log(x**2 + 1)", low=0.0, high=2.0)
    assert by_name.fidelity() == by_text.fidelity()
    assert np.array_equal(by_name.y, by_text.y)
    assert SymbolicRegression(target="nguyen5").fidelity() != SymbolicRegression(target="nguyen6").fidelity()


def test_lambda_target_and_seeded_data(space):
    a = SymbolicRegression(target="lambda t: t**2", seed=3)
    b = SymbolicRegression(target="x**2", seed=3)
    c = SymbolicRegression(target="x**2", seed=4)
    assert np.array_equal(a.y, b.y) and not np.array_equal(b.y, c.y)
    noisy = SymbolicRegression(target="x**2", seed=3, noise=0.1)
    assert not np.array_equal(noisy.y, b.y)
    assert np.array_equal(noisy.y, SymbolicRegression(target="x**2", seed=3, noise=0.1).y)
    assert noisy.evaluate(space.from_text("x**2"), space)["mse"] > 0.0


@pytest.mark.parametrize("kwargs", [
    {"target": "nguyen99"}, {"target": "x +"}, {"target": "__import__('os').system('true')"},
    {"target": "np.sin(x)"}, {"target": "y*x"}, {"target": 3}, {"target": "log(x)", "low": -1.0},
    {"target": "nguyen9", "variables": ["x"]}, {"n": 0}, {"n": 2.5}, {"low": 1.0, "high": 1.0},
    {"low": float("nan")}, {"seed": -1}, {"noise": -0.1}, {"bogus": 1},
])
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        automl.get_evaluator("symbolic-regression", **kwargs)


def test_unknown_variable_and_wrong_genome_are_invalid(space):
    ev = SymbolicRegression()
    with pytest.raises(InvalidCandidate):
        ev.evaluate(ExpressionSpace(variables=("x", "y")).from_text("x + y"), space)
    with pytest.raises(InvalidCandidate):
        ev.evaluate("x", space)


def test_two_variable_space(space):
    ev = SymbolicRegression(target="x*y + 1", variables=["x", "y"])
    sp = ExpressionSpace(variables=("x", "y"))
    assert ev.evaluate(sp.from_text("1 + y*x"), sp)["mse"] == 0.0


def test_hash_with_evaluator_namespace(space):
    ev = SymbolicRegression()
    h = automl.Hasher(space, ev)
    assert h.functional(space.from_text("x*2")) == h.functional(space.from_text("x + x"))
    assert h.functional(space.from_text("x*2")) != automl.Hasher(space, SymbolicRegression(seed=1)).functional(
        space.from_text("x*2"))
