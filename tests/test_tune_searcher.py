"""AutoMLSearcher against what Ray Tune expects of every searcher.

Ray Tune's own searcher suite (python/ray/tune/tests/test_searchers.py) checks that a searcher
survives NaN/inf results, restores from ``save`` without another ``set_search_properties``, keeps
tracking a trial suggested before the save, takes metric/mode late, works behind a
``ConcurrencyLimiter`` and pickles.  These are the same checks against our searcher, plus the
metric it is given being the one its strategy ranks by.  Tune's loop is driven by hand here (fast,
no Ray workers); one test runs the real Tuner.
"""
from __future__ import annotations

import copy
import json
import math
import pickle
import statistics

import pytest

from ray_fixtures import ray_session  # noqa: F401  (session-scoped fixture)

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402

from automl import registry  # noqa: E402
from automl.errors import ConfigError  # noqa: E402
from automl.integrations.tune import AutoMLSearcher, trainable  # noqa: E402
from automl.policy import CachePolicy  # noqa: E402

SPACE, EVAL = "plugins_for_tests:ToySpace", "tune_helpers:SizedQuadratic"
SMALL = {"n": 200, "m": 100}  # 200 texts, 100 functions (k and k + 100 share a loss, not a size)
STRATEGY = {"population_size": 8, "tournament_size": 3}


def _searcher(**kw):
    opts = dict(space_options=SMALL, strategy_options=STRATEGY, seed=0)
    opts.update(kw)
    return AutoMLSearcher(SPACE, kw.pop("evaluator", EVAL), "evolution", **opts)


def _run(evaluator_options=None):
    return trainable(SPACE, EVAL, SMALL, evaluator_options)


def _drive(searcher, n, run=None, prefix="t"):
    """Tune's loop by hand: suggest, run the trial, complete it; the configs launched."""
    run = run or _run()
    out = []
    for i in range(n):
        cfg = searcher.suggest(f"{prefix}{i}")
        if cfg in (None, Searcher.FINISHED):
            break
        out.append(cfg)
        searcher.on_trial_complete(f"{prefix}{i}", run(cfg))
    return out


def _untimed(records):
    """Records without what the clock decides (costs, savings)."""
    return [{k: v for k, v in r.items() if k not in ("cost_s", "saved_s", "t")} for r in records]


def _sizes(searcher):
    return [r["objectives"]["size"] for r in searcher.records if r["status"] == "ok"]


# --- the metric and mode it is given --------------------------------------------------------------------

def test_the_strategy_ranks_by_the_metric_and_mode_it_is_given():
    by = {}
    for metric, mode in (("loss", None), ("size", None), ("size", "max")):
        s = _searcher(metric=metric, mode=mode)
        assert (s.metric, s.mode) == (metric, mode or "min")
        assert (s.strategy.primary, s.strategy.direction) == (metric, mode or "min")
        _drive(s, 80)
        by[metric, mode] = s
    loss, small, large = by["loss", None], by["size", None], by["size", "max"]
    assert [r["candidate"] for r in small.records] != [r["candidate"] for r in loss.records]
    # later generations sit where each metric pulls: k mod 100 near 42, k near 0, k near 199
    late = {key: statistics.median(_sizes(s)[-30:]) for key, s in by.items()}
    assert late["size", None] < 40 < late["loss", None] < 160 < late["size", "max"], late
    assert abs(statistics.median(r["objectives"]["size"] % 100 for r in loss.records[-30:]) - 42) < 15
    # best follows the metric and its mode (mode against the declared direction searches the other way)
    assert small.best["objectives"]["size"] == min(_sizes(small))
    assert large.best["objectives"]["size"] == max(_sizes(large))


def test_late_metric_and_mode_through_set_search_properties_run_the_same_search():
    late = _searcher()
    assert (late.metric, late.mode) == ("loss", "min")  # the evaluator's primary objective by default
    assert late.set_search_properties("size", "max", {"tag": "constant"}) is True  # what TuneConfig sends
    assert (late.metric, late.mode, late.strategy.primary, late.strategy.direction) == ("size", "max", "size", "max")
    early = _searcher(metric="size", mode="max")
    assert [c["candidate"] for c in _drive(late, 40)] == [c["candidate"] for c in _drive(early, 40)]
    assert _untimed(late.records) == _untimed(early.records)
    # mode None takes the new metric's declared direction; the same properties again are accepted
    s = _searcher()
    assert s.set_search_properties("size", None, {}) is True and (s.metric, s.mode) == ("size", "min")
    assert s.set_search_properties(None, None, {}) is True and (s.metric, s.mode) == ("size", "min")


@pytest.mark.parametrize("strategy", registry.names("strategy"))
def test_every_registered_strategy_takes_a_late_metric_against_its_declared_direction(strategy):
    s = AutoMLSearcher(SPACE, EVAL, strategy, space_options=SMALL, seed=0)
    assert s.set_search_properties("size", "max", {}) is True
    assert s.strategy.objectives == {"size": "max", "loss": "min"}  # the metric first, ranked as asked
    assert len(_drive(s, 6)) == 6 and s.best["objectives"]["size"] == max(_sizes(s))


def test_set_search_properties_passes_through_a_concurrency_limiter():
    s = _searcher()
    limiter = ConcurrencyLimiter(s, max_concurrent=2)
    assert limiter.set_search_properties("size", "min", {"tag": 1}) is True
    assert (s.metric, s.strategy.primary) == ("size", "size")


def test_what_the_searcher_cannot_do_is_refused_loudly():
    with pytest.raises(ConfigError, match=r"'accuracy' is not an objective .*: loss, size"):
        _searcher(metric="accuracy")
    s = _searcher()
    with pytest.raises(ConfigError, match=r"'time_total_s' is not an objective .*: loss, size"):
        s.set_search_properties("time_total_s", "min", {})
    with pytest.raises(ConfigError, match="one metric"):
        s.set_search_properties(["loss", "size"], ["min", "min"], {})
    with pytest.raises(ConfigError, match="mode must be 'min' or 'max', got 'lowest'"):
        s.set_search_properties("loss", "lowest", {})
    with pytest.raises(ConfigError, match=r"only constants .* lr, opt/beta are search domains"):
        s.set_search_properties("loss", "min", {"lr": tune.uniform(0, 1), "opt": {"beta": tune.grid_search([1, 2])},
                                                "tag": "x"})
    assert (s.metric, s.mode) == ("loss", "min")  # nothing refused was applied
    built = _searcher(metric="loss")  # a metric given to the constructor is not overridden silently
    with pytest.raises(ConfigError, match=r"built with metric='loss' but Tune asks for metric='size'"):
        built.set_search_properties("size", "min", {})
    assert built.set_search_properties("loss", "min", {}) is True
    with pytest.raises(ConfigError, match=r"built with mode='max' but Tune asks for metric='loss' mode='min'"):
        _searcher(mode="max").set_search_properties("loss", "min", {})
    s.suggest("t0")
    with pytest.raises(ConfigError, match=r"already proposed 1 candidates ranked by 'loss' \(min\)"):
        s.set_search_properties("size", "min", {})
    assert s.set_search_properties("loss", "min", {}) is True  # no change: fine at any time
    assert s.strategy.primary == "loss"
    with pytest.raises(NotImplementedError, match="share a cache file"):  # Tune's optional warm start
        s.add_evaluated_point({"candidate": "3"}, 1.0)


# --- results Tune may deliver ----------------------------------------------------------------------------

def test_nan_inf_missing_and_errored_results_are_recorded_and_never_rank():
    s, run = _searcher(), _run()
    bad = {"nan": {"loss": math.nan}, "inf": {"loss": math.inf}, "-inf": {"loss": -math.inf},
           "missing": {"training_iteration": 1, "time_total_s": 0.1}, "text": {"loss": "low"}, "none": None}
    for tid, result in bad.items():
        assert s.suggest(tid) is not None
        s.on_trial_complete(tid, result)
    assert s.suggest("error") is not None
    s.on_trial_complete("error", {"loss": 0.0}, error=True)  # errored: its last result does not count
    status = {r["trial_id"]: r["status"] for r in s.records if "trial_id" in r}
    assert status == {"nan": "invalid", "inf": "invalid", "-inf": "invalid", "missing": "failed", "text": "failed",
                      "none": "failed", "error": "failed"}
    errors = {r["trial_id"]: r["error"] for r in s.records if "trial_id" in r}
    assert "reported no loss" in errors["missing"] and "Tune trial failed" in errors["error"]
    assert "not a number" in errors["text"]
    kinds = {r["trial_id"]: r.get("failure") for r in s.records if r["status"] == "failed"}
    assert kinds["error"] == kinds["none"] == "transient"  # Tune's error: a later run retries the candidate
    assert kinds["missing"] is None and kinds["text"] is None  # the result's own fault: final (no kind logged)
    assert s.best is None  # -inf on a minimised metric is not the best loss
    s.on_trial_result("nan", {"loss": 1.0})  # reports after completion, or twice, are ignored
    s.on_trial_complete("nan", {"loss": 1.0})
    assert len(s.records) == 7
    ok = _drive(s, 20, run, prefix="ok")  # the strategy was told every failure and keeps proposing
    assert len(ok) == 20 and s.best is not None and math.isfinite(s.best["objectives"]["loss"])


def test_per_candidate_objectives_need_not_be_reported():
    s = _searcher(metric="size")
    cfg = s.suggest("a")
    s.on_trial_complete("a", {"loss": 1.5})  # size is the candidate's own: recomputed by the searcher
    rec = s.records[-1]
    assert rec["status"] == "ok" and rec["objectives"] == {"loss": 1.5, "size": float(cfg["candidate"])}


def test_failed_evaluations_report_nan_the_worst_under_either_mode():
    run = _run({"fail_on": [7]})
    out = run({"candidate": "7"})
    assert math.isnan(out["loss"]) and math.isnan(out["size"]) and "cannot evaluate 7" in out["automl_error"]
    assert out["automl_failure"] == "final"  # the evaluator raised on the candidate itself
    out = _run({"nan_on": [7]})({"candidate": "7"})  # an invalid result: its finite size must not rank either
    assert math.isnan(out["loss"]) and math.isnan(out["size"]) and out["automl_error"] == ""
    fail = {"fail_on": [k for k in range(200) if k % 100 >= 50]}  # whole functions fail (k and k + 100)
    s = _searcher(metric="size", mode="max", evaluator_options=fail)
    _drive(s, 40, _run(fail))
    assert any(r["status"] == "failed" for r in s.records)
    assert s.best["objectives"]["size"] % 100 < 50  # a failure is never the largest size


# --- ConcurrencyLimiter ----------------------------------------------------------------------------------

def test_concurrency_limiter_caps_live_trials_and_forwards_results():
    s, run = _searcher(), _run()
    limiter = ConcurrencyLimiter(s, max_concurrent=2)
    a, b = limiter.suggest("a"), limiter.suggest("b")
    assert a and b and limiter.suggest("c") is None  # the limit holds back a third trial
    assert set(s._trials) == {"a", "b"}
    limiter.on_trial_complete("a", run(a))
    assert limiter.suggest("c") is not None
    assert [r["trial_id"] for r in s.records if "trial_id" in r] == ["a"]
    limiter.on_trial_complete("b", run(b))
    limiter.on_trial_complete("not-launched", run(b))  # a trial the limiter held back: not forwarded
    assert [r["trial_id"] for r in s.records if "trial_id" in r] == ["a", "b"]


# --- save / restore / pickle -----------------------------------------------------------------------------

def _tune_result(searcher_run, cfg):
    """A result dict as Tune delivers it: Tune's own fields beside the trainable's."""
    return {"training_iteration": 1, "time_total_s": 0.01, "config/candidate": cfg["candidate"], **searcher_run(cfg)}


def test_save_restore_like_tune_searchers_restore_into_a_default_searcher(tmp_path):
    run = _run()
    s = _searcher()
    assert s.set_search_properties("size", "max", {"tag": 1}) is True
    cfgs = {tid: s.suggest(tid) for tid in ("1", "2", "not_completed")}
    s.on_trial_complete("1", _tune_result(run, cfgs["1"]))
    path = tmp_path / "searcher-state.json"
    s.save(str(path))
    json.loads(path.read_text())  # plain JSON
    restored = AutoMLSearcher()  # Tune restores into a default-constructed searcher
    restored.restore(str(path))  # ... without another set_search_properties
    assert (restored.metric, restored.mode, restored.strategy.primary) == ("size", "max", "size")
    assert "not_completed" in restored._trials  # suggested before the save, still tracked
    for x in (s, restored):
        x.on_trial_complete("2", _tune_result(run, cfgs["2"]))
        x.on_trial_complete("not_completed", _tune_result(run, cfgs["not_completed"]))
    assert [c["candidate"] for c in _drive(restored, 15, run, "r")] == [c["candidate"] for c in _drive(s, 15, run, "r")]
    assert _untimed(restored.records) == _untimed(s.records)
    # restoring into a searcher that has run already replaces its run (nothing of it lingers)
    busy = _searcher(metric="loss")
    _drive(busy, 5, run, "b")
    busy.restore(str(path))
    assert busy.metric == "size" and len(busy.records) == 1 and "not_completed" in busy._trials
    # a state of the previous format (no constructor arguments) still loads into a like searcher
    old = json.loads(path.read_text())
    old = {k: v for k, v in old.items() if k not in ("init", "policy_rng", "hits")} | {"format": 1}
    legacy = _searcher(metric="size", mode="max")
    legacy.set_state(old)
    assert legacy.records == json.loads(path.read_text())["records"]
    with pytest.raises(ConfigError, match="state format 99"):
        legacy.set_state({**old, "format": 99})


POLICIES = ["auto", "deterministic", "aggregating:2", "forgetful:1", "forgetful:p=0.5", CachePolicy(k=2)]


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_pickle_and_deepcopy_continue_exactly_under_every_cache_policy(policy):
    s = _searcher(cache_policy=policy, space_options={"n": 60, "m": 30})  # 30 functions: many cache answers
    small_run = trainable(SPACE, EVAL, {"n": 60, "m": 30})
    _drive(s, 10, small_run)
    live = s.suggest("live")  # a trial in flight when Tune checkpoints
    clones = [pickle.loads(pickle.dumps(s)), copy.deepcopy(s)]
    for x in [s, *clones]:
        x.on_trial_complete("live", small_run(live))
    seqs = [[c["candidate"] for c in _drive(x, 15, small_run, "c")] for x in [s, *clones]]
    assert seqs[0] == seqs[1] == seqs[2] and len(seqs[0]) == 15
    assert _untimed(s.records) == _untimed(clones[0].records) == _untimed(clones[1].records)
    assert {r["cache"] for r in s.records} - {"miss"}  # the policy answered (hit) or re-ran (partial) some


def test_pickle_without_cache_and_with_a_cache_file(tmp_path):
    opts = {"n": 60, "m": 30}
    run = trainable(SPACE, EVAL, opts)
    off = _searcher(use_cache=False, space_options=opts)
    _drive(off, 10, run)
    clone = pickle.loads(pickle.dumps(off))
    assert [c["candidate"] for c in _drive(clone, 10, run, "c")] == [c["candidate"] for c in _drive(off, 10, run, "c")]
    assert all(r["cache"] == "miss" for r in off.records)
    filed = _searcher(cache=tmp_path / "shared.sqlite", space_options=opts)
    _drive(filed, 10, run)
    clone = pickle.loads(pickle.dumps(filed))  # reopens the same file
    assert clone.cache.path == filed.cache.path and _untimed(clone.records) == _untimed(filed.records)
    assert len(_drive(clone, 5, run, "c")) == 5
    before = {r["hash"] for r in filed.records if r["charged"]}
    assert not before & {r["hash"] for r in clone.records[len(filed.records):] if r["charged"]}  # nothing re-run


# --- the real Tuner ---------------------------------------------------------------------------------------

@pytest.mark.ray
def test_tuner_metric_mode_reach_the_strategy_behind_a_concurrency_limiter(ray_session, tmp_path):
    searcher = _searcher(evaluator_options={"nan_on": [0, 1, 2], "fail_on": [3]}, seed=3)
    tuner = tune.Tuner(
        trainable(SPACE, EVAL, SMALL, {"nan_on": [0, 1, 2], "fail_on": [3]}),
        param_space={"tag": "constant"},  # Tune forwards TuneConfig's metric/mode only with a param_space
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=2), metric="size",
                                    mode="max", num_samples=16, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="mm", verbose=0))
    results = tuner.fit()
    assert not results.errors
    assert (searcher.metric, searcher.mode, searcher.strategy.primary) == ("size", "max", "size")
    best = results.get_best_result()  # TuneConfig's metric and mode
    assert best.config["tag"] == "constant"  # param_space constants reach every trial
    assert best.metrics["size"] == searcher.best["objectives"]["size"] == max(_sizes(searcher))
    # (that the strategy then climbs the size is checked deterministically above, without Tune's timing)
