"""Ray Tune adapter: our strategies as a Tune Searcher with the equivalence cache in front."""
from __future__ import annotations

import collections
import json
import math
import pickle

import pytest

from ray_fixtures import ray_session  # noqa: F401  (session-scoped fixture)

pytest.importorskip("ray.tune")

SPACE, EVAL = "plugins_for_tests:ToySpace", "plugins_for_tests:Quadratic"
SMALL = {"n": 20, "m": 10}  # 20 texts, 10 distinct functions (k and k + 10 compute the same)


def _searcher(**kw):
    from automl.integrations.tune import AutoMLSearcher

    opts = dict(space_options=SMALL, strategy_options={"population_size": 4, "tournament_size": 2}, seed=0, stall=40)
    opts.update(kw)
    return AutoMLSearcher(SPACE, EVAL, "evolution", **opts)


def _trainable():
    from automl.integrations.tune import trainable

    return trainable(SPACE, EVAL, SMALL)


def test_searcher_launches_each_function_once_and_finishes_when_exhausted():
    from ray.tune.search import Searcher

    s, run = _searcher(), _trainable()
    assert (s.metric, s.mode) == ("loss", "min")
    launched = []
    for i in range(200):
        cfg = s.suggest(f"t{i}")
        if cfg == Searcher.FINISHED:
            break
        assert cfg is not None
        launched.append(cfg["candidate"])
        s.on_trial_complete(f"t{i}", run(cfg))
    else:
        pytest.fail("the searcher never finished")
    assert s.suggest("late") == Searcher.FINISHED
    functions = [int(t) % 10 for t in launched]
    assert len(functions) == len(set(functions)) == 10  # every function once, no trial for a duplicate
    hits = [r for r in s.records if r["cache"] == "hit"]
    assert hits and all("trial_id" not in r and r["charged"] == 0 for r in hits)
    assert all(r["charged"] == 1 and "trial_id" in r for r in s.records if r["cache"] == "miss")
    assert s.best["objectives"]["loss"] == (9 - 42) ** 2 / 100.0


def test_failed_trials_and_errors_are_recorded_failed():
    s = _searcher(evaluator_options={"fail_on": list(range(20))})
    from automl.integrations.tune import trainable

    run = trainable(SPACE, EVAL, SMALL, {"fail_on": list(range(20))})
    cfg = s.suggest("a")
    result = run(cfg)
    assert math.isnan(result["loss"]) and "cannot evaluate" in result["automl_error"]  # worst under any mode
    s.on_trial_complete("a", result)
    cfg2 = s.suggest("b")
    s.on_trial_complete("b", None, error=True)
    by_trial = {r.get("trial_id"): r for r in s.records}
    assert by_trial["a"]["status"] == "failed" and "cannot evaluate" in by_trial["a"]["error"]
    assert by_trial["b"]["status"] == "failed" and "Tune trial failed" in by_trial["b"]["error"]
    assert cfg2["candidate"] != cfg["candidate"]


def _comparable(state):
    """A searcher state without the strategy's ask counter: like an engine resume, a restored
    strategy forgets which candidates were asked but not yet told (they are told on completion)."""
    state = json.loads(json.dumps(state))
    state["strategy"].pop("n_asked", None)
    return state


def test_state_is_json_and_survives_save_restore_and_pickle(tmp_path):
    s, run = _searcher(), _trainable()
    cfgs = {f"t{i}": s.suggest(f"t{i}") for i in range(3)}  # three trials running
    s.on_trial_complete("t0", run(cfgs["t0"]))
    path = tmp_path / "searcher-state.json"
    s.save(str(path))
    state = json.loads(path.read_text())  # plain JSON, not pickle
    assert set(state["live"]) == {"t1", "t2"}
    restored = _searcher()
    restored.restore(str(path))
    assert _comparable(restored.get_state()) == _comparable(s.get_state())
    clone = pickle.loads(pickle.dumps(s))
    assert _comparable(clone.get_state()) == _comparable(s.get_state())
    results = {tid: run(cfgs[tid]) for tid in ("t1", "t2")}
    for searcher in (s, restored, clone):  # the running trials complete after the restore
        for tid in ("t1", "t2"):
            searcher.on_trial_complete(tid, results[tid])
        assert [r.get("trial_id") for r in searcher.records if r["charged"]] == ["t0", "t1", "t2"]
    assert restored.records == s.records == clone.records
    nxt = [x.suggest("t3") for x in (s, restored, clone)]
    assert nxt[0] is not None and nxt[0] != "FINISHED"


def test_stall_limit_bounds_cache_answered_proposals():
    from ray.tune.search import Searcher

    s, run = _searcher(stall=5, space_options={"n": 20, "m": 1}), _trainable()
    cfg = s.suggest("only")  # one function in the whole space
    s.on_trial_complete("only", run(cfg))
    assert s.suggest("next") == Searcher.FINISHED
    assert s.records[-1]["cache"] == "hit" and len(s.records) == 1 + 5


@pytest.mark.ray
def test_tuner_runs_our_strategy_with_the_cache_in_front(ray_session, tmp_path):
    from ray import tune

    searcher = _searcher()
    tuner = tune.Tuner(_trainable(), tune_config=tune.TuneConfig(search_alg=searcher, num_samples=50,
                                                                 reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="toy", verbose=0))
    results = tuner.fit()
    assert not results.errors
    texts = [r.config["candidate"] for r in results]
    assert len(texts) == 10 and len({int(t) % 10 for t in texts}) == 10  # one trial per function
    best = results.get_best_result(metric="loss", mode="min")
    assert best.metrics["loss"] == (9 - 42) ** 2 / 100.0 and int(best.config["candidate"]) % 10 == 9
    assert collections.Counter(r["cache"] for r in searcher.records)["hit"] > 0
    state_files = list((tmp_path / "toy").glob("searcher-state-*"))
    assert state_files and json.loads(state_files[0].read_text())["format"] == 2  # Tune saved our JSON


@pytest.mark.ray
def test_tune_constants_runs_its_trials_on_ray(ray_session):
    from search_spaces.programs.tuning import tune_constants

    res = tune_constants("0.9 0.001 1.0", space="integration_helpers:ConstSpace",
                         evaluator="integration_helpers:ConstLoss", n_trials=10, seed=2, sampler="random",
                         runner="ray", runner_options={"num_actors": 2})
    assert len(res["trials"]) == 10 and all(t["status"] == "ok" for t in res["trials"])
    assert res["best_value"] <= res["original_value"]
