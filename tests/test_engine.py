"""The engine end to end through the Python API, on the toy space of plugins_for_tests
(candidate k computes k mod 100, so k and k+100 are written differently but equivalent)."""
import os
import signal
import subprocess
import sys
import time

import pytest

import automl
from automl.api import read_run
from automl.errors import ConfigError, RunDirError

SPACE, EVAL = "plugins_for_tests:ToySpace", "plugins_for_tests:Quadratic"
RE = {"population_size": 10, "tournament_size": 3}
FIELDS = {"id", "parents", "candidate", "structural_hash", "hash", "cache", "status", "objectives", "cost_s",
          "error", "charged"}


def run(tmp_path, name="r", **kw):
    kw.setdefault("strategy_options", RE if kw.get("strategy", "evolution") == "evolution" else {})
    kw.setdefault("space_options", {"n": 2000, "m": 1000})
    return automl.search(space=kw.pop("space", SPACE), evaluator=kw.pop("evaluator", EVAL),
                         out=str(tmp_path / name), **kw)


def test_budget_counts_charged_evaluations_and_log_has_every_candidate(tmp_path):
    s = run(tmp_path, budget=40, seed=1)
    meta, recs = read_run(s["run_dir"])
    assert s["charged_evaluations"] == 40 == sum(r["charged"] for r in recs)
    assert len(recs) == s["candidates"] > 40  # hits are logged too
    assert all(FIELDS <= set(r) for r in recs)
    assert [r["id"] for r in recs] == list(range(len(recs)))
    misses = [r for r in recs if r["cache"] == "miss"]
    assert len({r["hash"] for r in misses}) == len(misses) == 40  # nothing evaluated twice
    hits = [r for r in recs if r["cache"] == "hit"]
    assert hits and all(r["charged"] == 0 for r in hits)
    # a hit carries the objectives of the equivalent candidate evaluated before
    first = {r["hash"]: r for r in misses}
    for h in hits:
        assert h["objectives"] == first[h["hash"]]["objectives"]
    assert s["best"]["value"] == min(r["objectives"]["loss"] for r in recs if r["status"] == "ok")
    assert meta["config"]["seed"] == 1 and "numpy" in meta["versions"]


def test_equivalent_candidates_written_differently_are_not_evaluated_twice(tmp_path):
    s = run(tmp_path, budget=100, seed=0, strategy="random", space_options={})  # 200 texts, 100 functions
    _, recs = read_run(s["run_dir"])
    misses = [r for r in recs if r["cache"] == "miss"]
    assert sorted(int(r["candidate"]) % 100 for r in misses) == list(range(100))
    functional_only = [r for r in recs if r["cache"] == "hit" and
                       all(m["candidate"] != r["candidate"] for m in misses if m["hash"] == r["hash"])]
    assert functional_only, "some hits must come from a different text with the same function"
    assert s["stop_reason"] == "budget"


def test_same_seed_same_log(tmp_path):
    strip = lambda recs: [{k: v for k, v in r.items() if k not in ("t", "cost_s", "saved_s")} for r in recs]  # noqa: E731
    a = read_run(run(tmp_path, "a", budget=30, seed=5)["run_dir"])[1]
    b = read_run(run(tmp_path, "b", budget=30, seed=5)["run_dir"])[1]
    c = read_run(run(tmp_path, "c", budget=30, seed=6)["run_dir"])[1]
    assert strip(a) == strip(b) != strip(c)


def test_failed_invalid_and_timeout_are_recorded_not_raised(tmp_path):
    ev = {"fail_on": list(range(0, 200, 3)), "nan_on": list(range(1, 200, 3)), "hang_on": [42]}
    s = run(tmp_path, budget=40, seed=0, strategy="random", evaluator_options=ev, timeout=0.5,
            strategy_options={})
    _, recs = read_run(s["run_dir"])
    by = {st: [r for r in recs if r["status"] == st] for st in ("ok", "failed", "invalid")}
    assert by["failed"] and by["invalid"] and by["ok"]
    assert all("cannot evaluate" in r["error"] or "timed out" in r["error"] for r in by["failed"])
    assert all("non-finite" in r["error"] for r in by["invalid"])
    hang = [r for r in recs if r["candidate"] == "42"]
    if hang:
        assert "timed out after 0.5 s" in hang[0]["error"]


def test_second_run_with_shared_cache_evaluates_nothing_new(tmp_path):
    cache = str(tmp_path / "shared.sqlite")
    s1 = run(tmp_path, "one", max_candidates=300, seed=2, cache=cache)
    s2 = run(tmp_path, "two", max_candidates=300, seed=2, cache=cache)
    assert s1["charged_evaluations"] > 0
    assert s2["charged_evaluations"] == 0 and s2["candidates"] == 300
    assert s2["cache"]["evaluations_saved"] == 300


def test_no_cache_evaluates_every_candidate(tmp_path):
    s = run(tmp_path, budget=30, seed=0, use_cache=False)
    _, recs = read_run(s["run_dir"])
    assert len(recs) == 30 and all(r["cache"] == "miss" for r in recs)
    assert len({r["hash"] for r in recs}) < 30  # duplicates were evaluated again (and hashed)


def test_aggregating_policy_for_noisy_evaluator(tmp_path):
    s = run(tmp_path, budget=60, seed=0, evaluator="plugins_for_tests:NoisyQuadratic",
            space_options={"n": 20, "m": 20})
    assert s["cache_policy"] == "aggregating(k=3)"
    _, recs = read_run(s["run_dir"])
    partial = [r for r in recs if r["cache"] == "partial"]
    assert partial and all(r["charged"] == 1 and r["n"] >= 2 for r in partial)
    assert max(r["n"] for r in recs) == 3


def test_in_flight_duplicates_are_coalesced(tmp_path):
    counter = tmp_path / "evals"
    counter.mkdir()
    s = run(tmp_path, budget=8, seed=0, strategy="random", workers=2, strategy_options={},
            space_options={"n": 16, "m": 8}, evaluator_options={"sleep": 0.2, "counter_dir": str(counter)})
    _, recs = read_run(s["run_dir"])
    real = len(list(counter.iterdir()))
    assert real == s["charged_evaluations"] == 8
    st = s["cache"]  # session statistics agree with the log: every lookup counted once
    assert st["misses"] == 8 and st["hits"] == sum(r["cache"] == "hit" for r in recs)
    assert st["misses"] + st["hits"] + st["partial_hits"] == len(recs)
    assert len({r["hash"] for r in recs if r["charged"]}) == 8
    assert {r.get("worker") for r in recs if r["charged"]} - {None}, "evaluated in worker processes"


def test_optuna_sampler_through_the_cache(tmp_path):
    s = run(tmp_path, budget=25, seed=0, strategy="tpe", strategy_options={}, space_options={"n": 60, "m": 30})
    _, recs = read_run(s["run_dir"])
    assert s["charged_evaluations"] == 25
    assert any(r["cache"] == "hit" for r in recs), "TPE re-proposals must be answered by the cache"
    assert all("params" in r for r in recs)


def test_a_converged_search_stops_as_stalled(tmp_path):
    from automl.engine import Budget

    s = run(tmp_path, budget=400, seed=1, space_options={"n": 40, "m": 20})
    assert s["stop_reason"] == "stalled" and s["charged_evaluations"] == 20
    assert s["candidates"] >= Budget(1).stall


def test_seconds_budget_and_bad_config(tmp_path):
    s = run(tmp_path, seconds=0.5, seed=0, strategy="random", evaluator_options={"sleep": 0.01})
    assert s["stop_reason"] == "seconds" and s["elapsed_s"] < 5
    with pytest.raises(ConfigError, match="budget"):
        run(tmp_path, "nob")
    with pytest.raises(ConfigError, match="population_size"):
        run(tmp_path, "bad", budget=5, strategy_options={"population_size": 0})
    with pytest.raises(RunDirError, match="already holds a run"):
        run(tmp_path, "r0", budget=5, seconds=None) and run(tmp_path, "r0", budget=5)


def test_resume_after_truncated_last_line(tmp_path):
    s = run(tmp_path, budget=30, seed=0)
    log = os.path.join(s["run_dir"], "candidates.jsonl")
    before = read_run(s["run_dir"])[1]
    with open(log, "a") as f:
        f.write('{"id": 999, "cand')  # a write cut short by a crash
    with pytest.warns(UserWarning, match="truncated last line"):
        s2 = automl.search(out=s["run_dir"], resume=True, budget=50, allow_import=True)
    after = read_run(s["run_dir"])[1]
    assert after[: len(before)] == before
    assert s2["charged_evaluations"] == 50 == sum(r["charged"] for r in after)
    misses = [r["hash"] for r in after if r["cache"] == "miss"]
    assert len(misses) == len(set(misses))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "automl.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_kill_9_then_resume_loses_nothing_and_evaluates_nothing_twice(tmp_path):
    out = str(tmp_path / "killed")
    args = ["search", "--space", SPACE, "--evaluator", "sleep", "--evaluator-opt", "seconds=0.005",
            "--space-opt", "n=20000", "--space-opt", "m=10000", "--budget", "400", "--seed", "3", "--out", out,
            "--population", "20", "--tournament", "5", "--quiet"]
    p = _cli(*args)
    log = os.path.join(out, "candidates.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(log) and sum(1 for _ in open(log)) >= 120 and os.path.exists(os.path.join(out, "state.json")):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = read_run(out)[1]
    assert 0 < sum(r["charged"] for r in before) < 400, "the kill must land mid-run"
    # --stall: the toy search may have converged by the time of the kill (2,000 hits in a row would
    # end it as "stalled", which says nothing about what the kill lost)
    r = subprocess.run([sys.executable, "-m", "automl.cli", "search", "--resume", out, "--quiet", "--allow-import",
                        "--stall", "1000000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "stopped (budget)" in r.stdout, r.stdout
    after = read_run(out)[1]
    assert after[: len(before)] == before, "every record logged before the kill is kept as it was"
    charged = [r for r in after if r["charged"]]
    assert len(charged) == 400
    assert len({r["hash"] for r in charged}) == 400, "no candidate evaluated twice across the kill"
    assert [r["id"] for r in after] == sorted({r["id"] for r in after})


def test_structural_dedupe_misses_what_only_the_probe_sees(tmp_path):
    f = run(tmp_path, "f", budget=100, seed=0, strategy="random", space_options={})
    s = run(tmp_path, "s", budget=100, seed=0, strategy="random", space_options={}, dedupe="structural")
    _, fr = read_run(f["run_dir"])
    _, sr = read_run(s["run_dir"])
    assert all(r["hash"] == r["structural_hash"] for r in sr)
    # 200 texts but only 100 functions: structural dedupe needs more candidates per function found
    assert len({int(r["candidate"]) % 100 for r in sr if r["charged"]}) < 100
    assert len({int(r["candidate"]) % 100 for r in fr if r["charged"]}) == 100
    with pytest.raises(ConfigError, match="dedupe"):
        run(tmp_path, "x", budget=5, dedupe="nope")
    with pytest.raises(ConfigError, match="cache policy"):
        run(tmp_path, "x", budget=5, cache_policy="sometimes")
    assert not (tmp_path / "x").exists(), "a rejected configuration leaves no run directory behind"


def test_run_json_records_options_with_their_defaults(tmp_path):
    s = automl.search(space="expressions", evaluator="symbolic-regression", budget=5, out=str(tmp_path / "o"))
    meta, _ = read_run(s["run_dir"])
    assert meta["config"]["evaluator"]["options"]["target"] == "x**3 + x**2 + x"
    assert meta["config"]["evaluator"]["options"]["n"] == 256
    assert meta["config"]["space"]["options"]["variables"] == ["x"]


def test_optuna_sampler_with_a_missing_package_names_it(monkeypatch):
    import sys

    from automl.errors import MissingDependencyError
    from automl.strategies.optuna_sampler import OptunaStrategy

    monkeypatch.setitem(sys.modules, "cmaes", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"cmaes sampler needs cmaes.*automl-evo\[optuna\]"):
        OptunaStrategy("cmaes")


def test_resume_refuses_a_different_space_and_keeps_the_stall_limit(tmp_path):
    s = run(tmp_path, budget=400, seed=1, space_options={"n": 40, "m": 20}, stall=50)
    assert s["stop_reason"] == "stalled" and s["candidates"] < 20 + 50 + 50
    with pytest.raises(ConfigError, match="is a run with space"):
        automl.search(space="expressions", out=s["run_dir"], resume=True)
    s2 = automl.search(out=s["run_dir"], resume=True, allow_import=True)  # the run names module:Class plugins
    assert s2["stop_reason"] == "stalled" and s2["candidates"] <= s["candidates"] + 50 + 1
    with pytest.raises(ConfigError, match="stall"):
        run(tmp_path, "bad-stall", budget=5, stall=0)


def test_nsga2_multi_objective_search_and_pareto_front(tmp_path):
    from automl.report import pareto_front, summarize

    s = automl.search(space="nb201", evaluator="nb201-tabular", strategy="nsga2", budget=40, seed=0,
                      out=str(tmp_path / "mo"))
    assert s["charged_evaluations"] == 40
    summary = summarize(s["run_dir"])
    front = summary["pareto_front"]
    _, recs = read_run(s["run_dir"])
    ok = [r for r in recs if r["status"] == "ok"]
    keys = ("cifar10", "cifar100", "imagenet16")
    for f in front:  # nothing logged dominates a front point
        fv = [f["objectives"][k] for k in keys]
        assert not any(all(r["objectives"][k] >= v for k, v in zip(keys, fv)) and
                       any(r["objectives"][k] > v for k, v in zip(keys, fv)) for r in ok)
    # every other point is dominated by (or equal to) some front point
    for r in ok:
        assert any(all(f["objectives"][k] >= r["objectives"][k] for k in keys) for f in front)
    assert pareto_front([], {"a": "min", "b": "min"}) == []


def test_noisy_nb201_table_is_aggregated_by_the_cache(tmp_path):
    from evaluators.tabular import nb201_table

    s = automl.search(space="nb201", evaluator="nb201-tabular", budget=150, seed=0, out=str(tmp_path / "noisy"),
                      evaluator_options={"noise": 0.5}, strategy_options={"population_size": 20, "tournament_size": 5})
    assert s["cache_policy"] == "aggregating(k=3)"
    _, recs = read_run(s["run_dir"])
    table = nb201_table()
    partial = [r for r in recs if r["cache"] == "partial"]
    assert partial, "re-proposed cells must be re-evaluated until 3 samples are averaged"
    three = [r for r in recs if r["n"] == 3 and r["cache"] != "hit"]
    assert three
    # the mean of 3 noisy samples is closer to the truth than one sample, on average
    err1 = [abs(r["objectives"]["cifar10"] - table.acc[table.row(r["candidate"]), 0])
            for r in recs if r["n"] == 1 and r["cache"] == "miss"]
    err3 = [abs(r["objectives"]["cifar10"] - table.acc[table.row(r["candidate"]), 0]) for r in three]
    assert sum(err3) / len(err3) < sum(err1) / len(err1)


def test_resume_continues_a_random_cache_policy_exactly(tmp_path):
    """A forgetful policy draws from its own RNG; stopping at a budget and resuming must make the
    same decisions as one uninterrupted run (the RNG state travels in state.json)."""
    kw = dict(seed=3, cache_policy="forgetful:p=0.5", space_options={"n": 30, "m": 15})
    whole = run(tmp_path, "whole", budget=60, **kw)
    run(tmp_path, "split", budget=25, **kw)
    split = automl.search(out=str(tmp_path / "split"), resume=True, budget=60, allow_import=True)
    _, a = read_run(whole["run_dir"])
    _, b = read_run(split["run_dir"])
    key = [(r["candidate"], r["cache"], r["charged"]) for r in a]
    assert any(r["cache"] == "partial" or (r["charged"] and r["n"] > 1) for r in a), "the policy must re-evaluate"
    assert [(r["candidate"], r["cache"], r["charged"]) for r in b] == key
