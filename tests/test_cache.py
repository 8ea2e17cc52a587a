import json
import sqlite3

import numpy as np
import pytest

from automl.cache import Cache, NullCache
from automl.errors import CacheError, ConfigError
from automl.policy import CachePolicy, seconds_saved
from automl.runners.base import PluginSpec
from automl.testing.toys import Quadratic, ToySpace
from automl.types import FAILED, HIT, MISS, OK, PARTIAL, Evaluation

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


# --- constraints are stored with the result (one mechanism: automl.types.Evaluation) ---------------------

def test_constraints_are_stored_folded_and_validated(tmp_path):
    p = tmp_path / "c.sqlite"
    with Cache(p) as c:
        c.fold("k", OK, {"loss": 1.0}, 1.0, constraints={"latency": 2.0})
        e = c.fold("k", OK, {"loss": 3.0}, 1.0, constraints={"latency": -1.0})  # a noisy repeat: running mean
        assert e.n == 2 and e.constraints == {"latency": 0.5}
        c.fold("f", FAILED, {}, 0.1, error="boom", constraints={"latency": 9.0})
        assert c.get("f").constraints is None  # a failure has no constraints to report
        c.fold("plain", OK, {"loss": 1.0}, 1.0)
    with Cache(p) as c:  # persisted
        assert c.get("k").constraints == {"latency": 0.5} and c.get("plain").constraints is None
    db = sqlite3.connect(p)
    db.execute("""UPDATE results SET constraints='{"latency": "far"}' WHERE key='k'""")
    db.execute("""UPDATE results SET constraints='NaN' WHERE key='plain'""")
    db.commit()
    db.close()
    with pytest.warns(UserWarning, match="ignoring a corrupt entry"):  # rejected like a corrupt objective
        c = Cache(p)
    assert c.get("k") is None and c.get("plain") is None
    c.close()


def test_cache_without_the_constraints_column_opens_and_works(tmp_path):
    p = tmp_path / "old.sqlite"
    db = sqlite3.connect(p)  # the schema as written before results carried constraints
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES('schema', '1')")
    db.execute("CREATE TABLE results(key TEXT PRIMARY KEY, status TEXT NOT NULL, objectives TEXT NOT NULL, "
               "n INTEGER NOT NULL, hits INTEGER NOT NULL, cost_s REAL NOT NULL, error TEXT, candidate TEXT, "
               "updated REAL, failure TEXT)")
    db.execute("CREATE TABLE aliases(structural TEXT PRIMARY KEY, functional TEXT NOT NULL)")
    db.execute("""INSERT INTO results VALUES('old', 'ok', '{"loss": 2.0}', 1, 0, 1.0, NULL, 'x', 0.0, NULL)""")
    db.commit()
    db.close()
    with Cache(p) as c:
        e = c.get("old")
        assert e.objectives == {"loss": 2.0} and e.constraints is None
        c.fold("new", OK, {"loss": 1.0}, 1.0, constraints={"latency": 0.25})
    with Cache(p) as c:
        assert c.get("new").constraints == {"latency": 0.25} and c.get("old").n == 1


class Budgeted(Quadratic):
    """Quadratic with a functional constraint (it depends on the class, k mod m, like the loss)."""

    name = "budgeted"

    def evaluate(self, genome, space):
        return Evaluation(super().evaluate(genome, space), constraints={"latency": genome % space.m - 10.0})


def test_hits_twins_and_resume_keep_the_class_violation(tmp_path):
    from automl.dispatch import Dispatcher
    from automl.evaluation import Seam
    from automl.runners.local import SerialRunner
    from automl.strategies.base import Proposal
    from automl.types import Candidate, Record

    space, ev = ToySpace(n=200, m=50), Budgeted()
    p = tmp_path / "c.sqlite"
    recs: list[Record] = []
    with Cache(p) as cache:
        d = Dispatcher(Seam(space, ev, cache), tell=lambda c, r: None, log=recs.append)
        # 13 and 63 are one class (13 mod 50) over the budget; 63 waits on 13's evaluation; 4 is within it
        tickets = d.offer_many([d.candidate(Proposal(k)) for k in (13, 63, 4)])
        runner = SerialRunner()
        runner.start(PluginSpec.of(space, "space"), PluginSpec.of(ev, "evaluator"))
        d.run(tickets, runner)
        by_text = {r.candidate: r for r in recs}
        assert by_text["63"].cache == HIT and by_text["13"].cache == MISS  # the coalesced twin
        for text, want in (("13", 3.0), ("63", 3.0), ("4", -6.0)):
            assert by_text[text].constraints == {"latency": want}
            rt = Record.from_json(json.loads(json.dumps(by_text[text].to_json())))  # the run log round trip
            assert rt.candidate_and_result(None)[1].violation == max(want, 0.0)
        # a later candidate of the violating class, served from the cache
        hit = Seam(space, ev, cache).prepare(Candidate(9, 113, "113")).result
        assert hit.cache == HIT and hit.constraints == {"latency": 3.0} and not hit.feasible
    with Cache(p) as cache:  # reopened file
        assert Seam(space, ev, cache).prepare(Candidate(9, 163, "163")).result.violation == 3.0
    seam = Seam(space, ev, Cache(tmp_path / "lost.sqlite"))  # resume with the cache file lost
    assert seam.refill([Record.from_json(r.to_json()) for r in recs]) == 2
    hit = seam.prepare(Candidate(9, 113, "113")).result
    assert hit.cache == HIT and hit.constraints == {"latency": 3.0} and not hit.feasible
    assert seam.prepare(Candidate(10, 54, "54")).result.constraints == {"latency": -6.0}
    seam.cache.close()


def _rows(path):
    db = sqlite3.connect(path)
    try:
        return {k: (n, json.loads(o)) for k, n, o in db.execute("SELECT key, n, objectives FROM results")}
    finally:
        db.close()


def test_fast_results_are_group_committed_and_folded_correctly(tmp_path, monkeypatch):
    """New keys from fast evaluations wait for one group commit (GROUP_S / GROUP_MAX / flush);
    a second fold of a held key and another process's write of it are both counted."""
    import automl.cache as cache_mod
    monkeypatch.setattr(cache_mod, "GROUP_S", 3600.0)  # only size and flush commit the group here
    path = tmp_path / "c.sqlite"
    a, b = Cache(path), Cache(path)
    a.fold("fast", OK, {"loss": 1.0}, 0.001)
    a.fold("slow", OK, {"loss": 7.0}, 1.0)  # a slow result is written at once
    assert "slow" in _rows(path) and "fast" not in _rows(path)
    assert a.get("fast", fresh=True).n == 1  # this process sees its held result
    a.fold("fast", OK, {"loss": 3.0}, 0.001)  # folding into a held key commits the group first
    assert _rows(path)["fast"] == (2, {"loss": 2.0})
    a.fold("raced", OK, {"loss": 4.0}, 0.001)  # held by a ...
    b.fold("raced", OK, {"loss": 8.0}, 1.0)  # ... while b writes the same key
    a.flush()
    assert _rows(path)["raced"] == (2, {"loss": 6.0})  # both evaluations counted
    assert a.get("raced").n == 2
    monkeypatch.setattr(cache_mod, "GROUP_MAX", 3)
    for i in range(3):
        a.fold(f"k{i}", OK, {"loss": float(i)}, 0.0)
    assert {"k0", "k1", "k2"} <= set(_rows(path))  # the third filled the group
    a.fold("last", OK, {"loss": 0.0}, 0.0)
    a.close()  # closing commits what is held
    assert "last" in _rows(path)
    b.close()
