import json
import sqlite3

import numpy as np
import pytest

from automl.cache import Cache, NullCache
from automl.errors import CacheError, ConfigError
from automl.policy import CachePolicy, seconds_saved
from automl.types import FAILED, HIT, MISS, OK, PARTIAL

RNG = np.random.default_rng(0)


def decide(cache, key, policy=CachePolicy(), rng=RNG):
    return policy.decide(cache.get(key), rng), cache.get(key)


def test_deterministic_first_result_stands(tmp_path):
    c = Cache(tmp_path / "c.sqlite")
    assert decide(c, "k")[0] == MISS
    c.fold("k", OK, {"loss": 1.0}, 2.0, candidate="x*2")
    c.fold("k2", OK, {"loss": 5.0}, 2.0)
    outcome, e = decide(c, "k")
    assert outcome == HIT and e.objectives == {"loss": 1.0} and e.candidate == "x*2"
    assert seconds_saved(e.mean_cost, 0.5) == pytest.approx(1.5)
    assert seconds_saved(e.mean_cost, 5.0) == 0.0  # never negative
    c.close()


def test_persistent_and_data_only(tmp_path):
    p = tmp_path / "c.sqlite"
    with Cache(p) as c:
        c.fold("k", OK, {"acc": 93.1}, 0.1, candidate="text")
        c.set_alias("s1", "k")
    with Cache(p) as c2:
        assert c2.alias("s1") == "k"
        assert c2.get("k").objectives == {"acc": 93.1}
        assert len(c2) == 1
    db = sqlite3.connect(p)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT objectives, candidate FROM results").fetchone()
    assert json.loads(row[0]) == {"acc": 93.1} and row[1] == "text"  # JSON text, never pickle


def test_aggregating_policy_keeps_running_mean():
    c, pol = Cache(None), CachePolicy(k=3)
    outcomes = []
    for v in (1.0, 2.0, 6.0):
        outcome, _ = decide(c, "k", pol)
        outcomes.append(outcome)
        e = c.fold("k", OK, {"loss": v}, 1.0)
    assert outcomes == [MISS, PARTIAL, PARTIAL]
    assert e.n == 3 and e.objectives["loss"] == pytest.approx(3.0)
    assert decide(c, "k", pol)[0] == HIT


def test_forgetful_policy_after_n_hits_and_with_probability():
    c, pol = Cache(None), CachePolicy(forget_after=2)
    c.fold("k", OK, {"loss": 1.0}, 1.0)
    seq = []
    for _ in range(3):
        outcome, e = decide(c, "k", pol)
        seq.append(outcome)
        if outcome == HIT:
            e.hits += 1  # what the seam does for a served hit
    assert seq == [HIT, HIT, PARTIAL]
    c.fold("k", OK, {"loss": 3.0}, 1.0)  # re-evaluation resets the hit count
    assert decide(c, "k", pol)[0] == HIT and c.get("k").objectives["loss"] == pytest.approx(2.0)

    p, rng = Cache(None), np.random.default_rng(1)
    p.fold("k", OK, {"loss": 1.0}, 1.0)
    n_partial = sum(decide(p, "k", CachePolicy(forget_prob=0.5), rng)[0] == PARTIAL for _ in range(400))
    assert 150 < n_partial < 250


def test_failures_are_final():
    c = Cache(None)
    c.fold("k", FAILED, {}, 1.0, error="boom")
    outcome, e = decide(c, "k", CachePolicy(k=3))
    assert outcome == HIT and e.status == FAILED and e.error == "boom"


def test_policy_parsing():
    assert CachePolicy.parse("deterministic") == CachePolicy()
    assert CachePolicy.parse("aggregating:5").k == 5
    assert CachePolicy.parse("forgetful:10:0.1") == CachePolicy(forget_after=10, forget_prob=0.1)
    assert CachePolicy.parse("forgetful:p=0.2").forget_prob == 0.2
    for p in (CachePolicy(), CachePolicy(k=2), CachePolicy(forget_after=3), CachePolicy(forget_prob=0.25, k=4),
              CachePolicy(forget_after=5, forget_prob=0.1, k=3)):
        assert CachePolicy.parse(p.to_text()) == p and CachePolicy.from_json(json.loads(json.dumps(p.to_json()))) == p
    for bad in ("nope", "aggregating:x", "forgetful", "aggregating:0", "forgetful:p=2"):
        with pytest.raises(ConfigError):
            CachePolicy.parse(bad)


def test_not_a_cache_file_is_a_clear_error(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match="cache"):
        Cache(p)


def test_null_cache_never_answers():
    c = NullCache()
    c.fold("k", OK, {"loss": 1.0}, 1.0)
    assert decide(c, "k")[0] == MISS


@pytest.mark.parametrize("family", ["sqlite", "memory"])
def test_cache_contract(family, tmp_path):
    from automl.testing import contracts

    counter = iter(range(100))
    make = (lambda: Cache(tmp_path / f"c{next(counter)}.sqlite")) if family == "sqlite" else (lambda: Cache(None))
    contracts.cache_contract(make)


@pytest.mark.parametrize("preload_max", [0, 10])
def test_reopened_cache_answers_lazily_or_preloaded(tmp_path, monkeypatch, preload_max):
    import automl.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_PRELOAD_MAX", preload_max)
    p = tmp_path / "c.sqlite"
    with Cache(p) as c:
        for i in range(5):
            c.fold(f"k{i}", OK, {"loss": float(i)}, 0.1)
            c.set_alias(f"s{i}", f"k{i}")
    with Cache(p) as c:
        assert (len(c._mem) == 5) == (preload_max >= 5)
        assert c.alias("s3") == "k3" and c.get("k3").objectives == {"loss": 3.0}
        assert c.get("nope") is None and c.alias("nope") is None
