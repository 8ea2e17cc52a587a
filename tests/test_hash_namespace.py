"""The functional namespace: evaluator probe domains and the alias table (hash schema v2)."""
import numpy as np
import pytest

import automl
from automl.cache import Cache
from automl.errors import ConfigError
from automl.evaluation import Seam
from automl.types import Candidate
from search_spaces.expressions import ExpressionSpace
from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace
from search_spaces.programs.parser import parse


class _Ev(automl.Evaluator):
    name, version = "domain-test", "1"

    def __init__(self, domain=None, **kw):
        super().__init__(**kw)
        self._domain = domain

    def probe_domain(self):
        return self._domain

    def evaluate(self, genome, space):
        return {"loss": 0.0}


def test_alias_table_is_keyed_by_the_functional_namespace(tmp_path):
    space = ProgramSpace()
    p = parse(CLASSIC_PROGRAMS["adam"])
    cand = Candidate(0, p, space.to_text(p))
    cache = Cache(str(tmp_path / "c.sqlite"))
    ev = _Ev()
    a = Seam(space, ev, cache, probe_seed=1)
    t1 = a.prepare(cand)
    assert a.stats.structural_hits == 0
    a.prepare(cand)
    assert a.stats.structural_hits == 1  # same namespace: the alias answers
    b = Seam(space, ev, cache, probe_seed=2)  # another probe seed on the same cache
    t2 = b.prepare(cand)
    assert b.stats.structural_hits == 0 and b.stats.probes == 1  # ... never reuses the first run's aliases
    assert t2.hash != t1.hash and t2.structural_hash == t1.structural_hash
    assert t2.hash == automl.Hasher(space, ev, 2).functional(p)
    c = Seam(space, _Ev({"steps": 10}), cache, probe_seed=1)  # another domain
    t3 = c.prepare(cand)
    assert c.stats.structural_hits == 0 and t3.hash != t1.hash


def test_a_declared_domain_enters_the_namespace_and_the_probe():
    space = ProgramSpace()
    lr_floor = parse("def train(w, g, m, v, lr):\n  a = max(lr, 0.01)\n  update = g * a\n  return update, m, v\n")
    plain = parse(CLASSIC_PROGRAMS["sgd"])
    narrow = _Ev({"lr": [0.02, 0.1]})  # the evaluator never goes below lr = 0.02: same function there
    wide = _Ev({"lr": [1e-6, 0.1]})
    f = lambda p, ev: automl.Hasher(space, ev).functional(p)  # noqa: E731
    assert f(lr_floor, narrow) == f(plain, narrow)
    assert f(lr_floor, wide) != f(plain, wide)
    assert f(plain, narrow) != f(plain, wide) != f(plain, None)
    with pytest.raises(ConfigError, match="unknown optimizer-programs probe domain"):
        f(plain, _Ev({"lrr": [0.1, 1.0]}))
    with pytest.raises(ConfigError, match="'lr' must be"):
        f(plain, _Ev({"lr": [1.0, 0.1]}))


def test_expression_probe_follows_the_evaluators_data():
    from evaluators.symbolic_regression import SymbolicRegression

    space = ExpressionSpace()
    ev = SymbolicRegression(target="nguyen8")  # x in [0, 4]
    a, b = space.from_text("sqrt(x)"), space.from_text("sqrt(x) + 2*abs(x - 3.2) + 2*(x - 3.2)")  # = sqrt(x) for x < 3.2
    h = automl.Hasher(space, ev)
    assert h.functional(a) != h.functional(b)  # the data reaches x = 4, where they differ
    assert ev.evaluate(a)["mse"] != ev.evaluate(b)["mse"]
    low = SymbolicRegression(target="sqrt(x)", low=0.0, high=3.0)
    assert automl.Hasher(space, low).functional(a) == automl.Hasher(space, low).functional(b)
    assert low.evaluate(a)["mse"] == pytest.approx(low.evaluate(b)["mse"], abs=1e-12)


def test_nan_everywhere_keeps_the_structure():
    space = ExpressionSpace()
    h = automl.Hasher(space)
    nan1, nan2 = space.from_text("log(x - 10)"), space.from_text("sqrt(x - 10)")
    assert h.functional(nan1) != h.functional(nan2)
    assert h.functional(nan1) == h.functional(space.from_text("log(x - 10)"))
    q, all_nan = automl.hashing._quantize([np.full(3, np.nan)], 24, automl.hashing.FLUSH)
    assert all_nan and not automl.hashing._quantize([np.array([np.nan, 1.0])], 24, 1e-12)[1]
