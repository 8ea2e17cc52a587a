import json
import sqlite3

import pytest

from automl.cache import Cache, CachePolicy, NullCache
from automl.errors import CacheError, ConfigError
from automl.types import FAILED, HIT, MISS, OK, PARTIAL


def test_deterministic_first_result_stands(tmp_path):
    c = Cache(tmp_path / "c.sqlite")
    assert c.decide("k")[0] == MISS
    c.record("k", OK, {"loss": 1.0}, 2.0, candidate="x*2")
    c.record("k2", OK, {"loss": 5.0}, 2.0)
    outcome, e = c.decide("k")
    assert outcome == HIT and e.objectives == {"loss": 1.0} and e.candidate == "x*2"
    c.note_hit("k", probe_cost=0.5)
    assert c.stats.misses == 1 and c.stats.hits == 1
    assert c.stats.evaluations_saved == 1 and c.stats.seconds_saved == pytest.approx(1.5)
    c.close()


def test_persistent_and_data_only(tmp_path):
    p = tmp_path / "c.sqlite"
    with Cache(p) as c:
        c.record("k", OK, {"acc": 93.1}, 0.1, candidate="text")
        c.set_alias("s1", "k")
    with Cache(p) as c2:
        assert c2.alias("s1") == "k"
        assert c2.decide("k")[1].objectives == {"acc": 93.1}
        assert len(c2) == 1
    db = sqlite3.connect(p)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT objectives, candidate FROM results").fetchone()
    assert json.loads(row[0]) == {"acc": 93.1} and row[1] == "text"  # JSON text, never pickle


def test_aggregating_policy_keeps_running_mean():
    c = Cache(None, CachePolicy(k=3))
    outcomes = []
    for v in (1.0, 2.0, 6.0):
        outcome, _ = c.decide("k")
        outcomes.append(outcome)
        e = c.record("k", OK, {"loss": v}, 1.0)
    assert outcomes == [MISS, PARTIAL, PARTIAL]
    assert e.n == 3 and e.objectives["loss"] == pytest.approx(3.0)
    assert c.decide("k")[0] == HIT
    assert c.stats.partial_hits == 2 and c.stats.evaluations == 3


def test_forgetful_policy_after_n_hits_and_with_probability():
    c = Cache(None, CachePolicy(forget_after=2))
    c.record("k", OK, {"loss": 1.0}, 1.0)
    seq = []
    for _ in range(3):
        outcome, _ = c.decide("k")
        seq.append(outcome)
        if outcome == HIT:
            c.note_hit("k", 0.0)
    assert seq == [HIT, HIT, PARTIAL]
    c.record("k", OK, {"loss": 3.0}, 1.0)  # re-evaluation resets the hit count
    assert c.decide("k")[0] == HIT and c.get("k").objectives["loss"] == pytest.approx(2.0)

    p = Cache(None, CachePolicy(forget_prob=0.5), seed=1)
    p.record("k", OK, {"loss": 1.0}, 1.0)
    n_partial = sum(p.decide("k")[0] == PARTIAL for _ in range(400))
    assert 150 < n_partial < 250


def test_failures_are_final():
    c = Cache(None, CachePolicy(k=3))
    c.record("k", FAILED, {}, 1.0, error="boom")
    outcome, e = c.decide("k")
    assert outcome == HIT and e.status == FAILED and e.error == "boom"


def test_policy_parsing():
    assert CachePolicy.parse("deterministic") == CachePolicy()
    assert CachePolicy.parse("aggregating:5").k == 5
    assert CachePolicy.parse("forgetful:10:0.1") == CachePolicy(forget_after=10, forget_prob=0.1)
    assert CachePolicy.parse("forgetful:p=0.2").forget_prob == 0.2
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
    c.record("k", OK, {"loss": 1.0}, 1.0)
    assert c.decide("k")[0] == MISS


@pytest.mark.parametrize("family", ["sqlite", "memory"])
def test_cache_contract(family, tmp_path):
    import contracts

    counter = iter(range(100))
    make = (lambda p: Cache(tmp_path / f"c{next(counter)}.sqlite", p)) if family == "sqlite" else (lambda p: Cache(None, p))
    contracts.cache_contract(make)


@pytest.mark.parametrize("preload_max", [0, 10])
def test_reopened_cache_answers_lazily_or_preloaded(tmp_path, monkeypatch, preload_max):
    import automl.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_PRELOAD_MAX", preload_max)
    p = tmp_path / "c.sqlite"
    with Cache(p) as c:
        for i in range(5):
            c.record(f"k{i}", OK, {"loss": float(i)}, 0.1)
            c.set_alias(f"s{i}", f"k{i}")
    with Cache(p) as c:
        assert (len(c._mem) == 5) == (preload_max >= 5)
        assert c.alias("s3") == "k3" and c.decide("k3")[1].objectives == {"loss": 3.0}
        assert c.decide("nope")[0] == MISS and c.alias("nope") is None
