"""The consolidated core (issue 8): one dispatch loop, the seam owning policy/statistics/cost,
typed records, a strict registry without import cycles, and the extension points the supernet and
hardware-aware families plug into.  Also issue 12 item 1: names read from run files never import
code."""
from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import automl
from automl import registry
from automl.api import read_run
from automl.cache import Cache
from automl.cli import main as cli_main
from automl.dispatch import Dispatcher
from automl.errors import ConfigError, RegistryError
from automl.evaluation import Seam
from automl.evaluator import Evaluator
from automl.policy import CachePolicy
from automl.report import summarize
from automl.runners.base import PluginSpec
from automl.runners.local import ProcessPoolRunner, SerialRunner
from automl.strategies.base import Proposal
from automl.testing.toys import ToySpace
from automl.types import HIT, MISS, Evaluation, Objective, Record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE, EVAL = "plugins_for_tests:ToySpace", "plugins_for_tests:Quadratic"
SMALL = {"population_size": 10, "tournament_size": 3}


def _search(tmp_path, name="r", **kw):
    kw.setdefault("space", SPACE)
    kw.setdefault("evaluator", EVAL)
    kw.setdefault("strategy_options", SMALL)
    return automl.search(out=str(tmp_path / name), **kw)


# --- the policy round-trips -----------------------------------------------------------------------

def test_cache_policy_object_round_trips_through_search_and_resume(tmp_path):
    pol = CachePolicy(k=2, forget_after=3)
    s = _search(tmp_path, budget=40, seed=0, evaluator="plugins_for_tests:NoisyQuadratic", cache_policy=pol)
    meta, recs = read_run(s["run_dir"])
    assert CachePolicy.resolve(meta["config"]["cache"]["policy"]) == pol
    assert any(r["cache"] == "partial" for r in recs)  # k=2 took effect
    s2 = automl.search(out=s["run_dir"], resume=True, budget=60, allow_import=True)
    assert s2["cache_policy"] == pol.describe() and s2["charged_evaluations"] == 60


def test_tune_searcher_with_a_policy_object_pickles_and_unpickles():
    pytest.importorskip("ray.tune")
    from automl.integrations.tune import AutoMLSearcher

    s = AutoMLSearcher(SPACE, EVAL, "evolution", strategy_options=SMALL, cache_policy=CachePolicy(k=3), seed=0)
    cfg = s.suggest("t0")
    clone = pickle.loads(pickle.dumps(s))
    assert clone.seam.policy == CachePolicy(k=3)
    clone.on_trial_complete("t0", {"loss": 1.0, "automl_cost_s": 0.1})
    assert clone.records[-1]["candidate"] == cfg["candidate"] and clone.records[-1]["charged"] == 1


# --- FCM asks the seam ----------------------------------------------------------------------------

def test_fcm_digests_come_from_the_seam_memoized_counted_and_charged(tmp_path, monkeypatch):
    probed: list[str] = []
    real = automl.Hasher.functional

    def counting(self, genome):
        probed.append(self.structural(genome))
        return real(self, genome)

    monkeypatch.setattr(automl.Hasher, "functional", counting)
    s = _search(tmp_path, space="expressions", evaluator="symbolic-regression", max_candidates=300, seed=0,
                strategy_options={"population_size": 20, "tournament_size": 5, "fcm": True})
    st = s["cache"]
    assert st["strategy_digests"] > 300  # parents and children, every FCM round
    assert len(probed) == st["probes"] == len(set(probed)), "each structural class is probed once"
    assert len(probed) < s["candidates"] + st["strategy_digests"] / 2
    # the probe time the strategy spent is charged to the candidates it produced (their cost_s)
    recs = read_run(s["run_dir"])[1]
    assert sum(r["cost_s"] for r in recs) >= st["probe_s"]


# --- typed records and directions ------------------------------------------------------------------

class Accuracy(Evaluator):
    """A maximised objective (registered under a name the reading process will not know)."""

    name = "acc-for-test"
    objectives = {"acc": "max", "size": "min"}

    def evaluate(self, genome, space):
        k = int(genome) % space.m
        return {"acc": float(k), "size": float(k % 7)}


def test_directions_are_stored_in_run_json_and_read_back_without_the_plugin(tmp_path):
    registry.register_evaluator("acc-for-test", Accuracy, replace=True)
    try:
        s = _search(tmp_path, evaluator="acc-for-test", budget=40, seed=0)
    finally:
        del registry._registry["evaluator"]["acc-for-test"]  # the reading process does not know it
    meta, recs = read_run(s["run_dir"])
    assert meta["config"]["objectives"] == [{"name": "acc", "direction": "max"},
                                            {"name": "size", "direction": "min"}]
    out = summarize(s["run_dir"])
    best_acc = max(r["objectives"]["acc"] for r in recs if r["status"] == "ok")
    assert out["best"][0]["acc"] == best_acc  # maximised, not ranked backwards
    front = out["pareto_front"]
    assert front and all(not (o["objectives"]["acc"] >= f["objectives"]["acc"]
                              and o["objectives"]["size"] <= f["objectives"]["size"] and o is not f
                              and o["objectives"] != f["objectives"]) for f in front for o in front)
    assert Record.from_json(recs[0]).to_json() == recs[0]  # one serializer, lossless


def test_one_seconds_saved_figure_for_show_and_the_session(tmp_path):
    s = _search(tmp_path, evaluator="plugins_for_tests:Quadratic", evaluator_options={"sleep": 0.002},
                budget=30, seed=2, space_options={"n": 60, "m": 20})
    assert s["cache"]["evaluations_saved"] > 0
    shown = summarize(s["run_dir"])["evaluator_seconds_saved"]
    assert shown == pytest.approx(s["cache"]["seconds_saved"], rel=1e-9, abs=1e-12)
    assert shown > 0


# --- issue 12 item 1: nothing from a run's files is imported ----------------------------------------

def _hostile_run(tmp_path):
    s = _search(tmp_path, name="hostile", budget=10, seed=0)
    path = os.path.join(s["run_dir"], "run.json")
    meta = json.load(open(path))
    evil = {"name": "os:system", "options": {"command": f"touch {tmp_path / 'pwned'}"}}
    meta["config"]["evaluator"] = dict(evil)
    meta["config"]["space"] = dict(evil)
    meta["config"].pop("objectives")  # force the reader down the evaluator fallback path
    json.dump(meta, open(path, "w"))
    return s["run_dir"]


def test_a_hostile_run_json_runs_nothing(tmp_path):
    pytest.importorskip("optuna")
    run = _hostile_run(tmp_path)
    with pytest.warns(UserWarning, match="not available"):
        assert cli_main(["show", run]) == 0  # readable: ranks with a warning, imports nothing
    codes = [cli_main(["reproduce", run])]
    with pytest.warns(UserWarning, match="not available"):
        codes.append(cli_main(["export-optuna", run, "--storage", str(tmp_path / "j.log")]))
    codes.append(cli_main(["search", "--resume", run, "--quiet"]))
    with pytest.warns(UserWarning):
        cli_main(["plot", run, "--output", str(tmp_path / "p.png")])
    assert not (tmp_path / "pwned").exists()
    assert codes == [2, 2, 2]


def test_a_logged_record_naming_a_module_as_its_space_is_refused():
    pytest.importorskip("torch")
    from search_spaces.programs.optim import load_program

    with pytest.raises(RegistryError, match="not a registered plugin"):
        load_program({"candidate": "def train(w, g, m, v, lr):\n  return g, m, v\n", "space": "os:system"})


# --- strict registry ---------------------------------------------------------------------------------

def test_duplicate_names_are_rejected_unless_replaced():
    registry.register_space("dup-for-test", ToySpace)
    registry.register_space("dup-for-test", ToySpace)  # the same target again: harmless
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_space("dup-for-test", "automl.testing.toys:Quadratic")
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_strategy("evolution", "automl.strategies.evolution:RandomSearch")
    registry.register_space("dup-for-test", "automl.testing.toys:ToySpace", replace=True)


@pytest.mark.parametrize("kw, match", [
    ({"strategy_options": {"populaton_size": 5}}, "populaton_size.*valid options: population_size"),
    ({"strategy": "tpe", "strategy_options": {"sampler_options": {"n_startup_trails": 3}}},
     "n_startup_trails.*n_startup_trials"),
    ({"evaluator_options": {"slep": 1}}, "slep.*valid options: sleep"),
    ({"runner": "process", "runner_options": {"wokers": 2}}, "wokers.*workers"),
])
def test_option_typos_are_config_errors_before_a_run_folder_exists(tmp_path, kw, match):
    if kw.get("strategy") == "tpe":
        pytest.importorskip("optuna")
    with pytest.raises(ConfigError, match=match):
        _search(tmp_path, name="typo", budget=5, **kw)
    assert not (tmp_path / "typo").exists()


AUTOML = os.path.join(ROOT, "automl")


def _modules():
    for dirpath, _, files in os.walk(AUTOML):
        for f in sorted(files):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                yield rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def test_each_core_module_imports_alone_in_a_fresh_interpreter():
    heavy = {"automl.integrations.tune", "automl.runners.ray"}  # need ray; checked by their own tests
    mods = [m for m in _modules() if m not in heavy]
    code = ("import importlib, subprocess, sys\n"
            "bad = []\n"
            "for m in sys.argv[1:]:\n"
            "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
            "    if r.returncode: bad.append((m, r.stderr.strip().splitlines()[-1:]))\n"
            "print(bad)\n")
    r = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def _module_level_imports(mod: str) -> set[str]:
    path = os.path.join(ROOT, *mod.split(".")) + ".py"
    if not os.path.exists(path):
        path = os.path.join(ROOT, *mod.split("."), "__init__.py")
    tree = ast.parse(open(path).read())
    pkg = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
    out = set()
    for node in tree.body:  # module level only: function-level imports cannot form an import cycle
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in MODS else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in MODS and m != mod}


MODS = set(_modules())


def test_no_import_cycle_inside_automl():
    graph = {m: _module_level_imports(m) for m in MODS}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, n]))
            if n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert graph["automl.registry"] == {"automl.errors", "automl._optional"}
    assert graph["automl._optional"] == {"automl.errors"}


def test_no_core_module_names_a_space_or_an_evaluator():
    plugins = set(registry.names("space")) | set(registry.names("evaluator"))
    for mod in MODS:
        if mod.startswith("automl.testing"):
            continue
        path = os.path.join(ROOT, *mod.split(".")) + ".py"
        path = path if os.path.exists(path) else os.path.join(ROOT, *mod.split("."), "__init__.py")
        tree = ast.parse(open(path).read())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                 and id(n) not in docs} & plugins
        assert not named, f"{mod} names {sorted(named)}"


# --- the dispatcher as a library: many candidates at once -------------------------------------------

def test_a_front_end_submits_many_candidates_at_once_and_twins_coalesce():
    space, ev = ToySpace(n=200, m=50), automl.get_evaluator(EVAL)
    recs: list[Record] = []
    told = []
    d = Dispatcher(Seam(space, ev, Cache(None)), tell=lambda c, r: told.append(c.id), log=recs.append)
    # 12 subnets asked at once: 3, 53, 103 compute the same; 7 appears twice
    batch = [d.candidate(Proposal(k)) for k in (3, 53, 103, 7, 7, 8, 9, 10, 11, 12, 13, 14)]
    tickets = d.offer_many(batch)
    assert len(tickets) == 9 and d.in_flight == 9 and d.waiting == 3
    runner = SerialRunner()
    runner.start(PluginSpec.of(space, "space"), PluginSpec.of(ev, "evaluator"))
    d.run(tickets, runner)
    assert sorted(told) == list(range(12)) and len(recs) == 12 and d.charged == 9
    by_id = {r.id: r for r in recs}
    assert [by_id[i].cache for i in (1, 2, 4)] == [HIT, HIT, HIT] and by_id[0].cache == MISS
    assert by_id[1].objectives == by_id[0].objectives and by_id[1].charged == 0


# --- extension points ---------------------------------------------------------------------------------

class BatchedToy(Evaluator):
    """Scores many candidates in one call; reports a constraint and info for the log."""

    name = "batched-toy"
    objectives = {"loss": "min"}
    batch_size = 8
    calls: list[int] = []

    def evaluate(self, genome, space):
        return self.evaluate_batch([genome], space)[0]

    def evaluate_batch(self, genomes, space):
        BatchedToy.calls.append(len(genomes))
        out = []
        for g in genomes:
            if g % 13 == 0:
                out.append(RuntimeError("diverged"))
            else:
                out.append(Evaluation({"loss": float(g % space.m)}, constraints={"latency": g % 5 - 2.0},
                                      info={"steps": int(g), "why": "ok"}))
        return out


def test_evaluate_batch_constraints_and_info_reach_the_log(tmp_path):
    BatchedToy.calls.clear()
    registry.register_evaluator("batched-toy", BatchedToy, replace=True)
    s = _search(tmp_path, evaluator="batched-toy", budget=40, seed=0, strategy="random", strategy_options={})
    recs = read_run(s["run_dir"])[1]
    assert max(BatchedToy.calls) > 1, "the serial runner hands the evaluator batches"
    ok = [r for r in recs if r["status"] == "ok" and r["charged"]]
    assert ok and all(r["info"]["steps"] == int(r["candidate"]) for r in ok)
    assert all(r["constraints"]["latency"] == int(r["candidate"]) % 5 - 2.0 for r in ok)
    failed = [r for r in recs if r["status"] == "failed"]
    assert all("diverged" in r["error"] for r in failed)
    res = Record.from_json(ok[0]).candidate_and_result(None)[1]
    assert res.feasible == (ok[0]["constraints"]["latency"] <= 0)


class DivergesWithInfo(Exception):
    def __init__(self, step):
        super().__init__(f"diverged at step {step}")
        self.info = {"diverged_at": step}


def test_info_travels_from_a_worker_process():
    runner = ProcessPoolRunner(workers=1)
    runner.start(PluginSpec("test_core:InfoEvaluator", {}), PluginSpec("test_core:InfoEvaluator", {}))
    # (one spec names the space: InfoEvaluator doubles as a tiny space below)
    try:
        runner.submit(0, "4")
        runner.submit(1, "5")
        got = {}
        while len(got) < 2:
            got.update(runner.poll(timeout=60))
    finally:
        runner.close()
    assert got[0]["info"] == {"diverged_at": 4} and "diverged at step 4" in got[0]["error"]
    assert got[1]["info"] == {"note": "fine"} and got[1]["objectives"] == {"loss": 5.0}


class InfoEvaluator(ToySpace, Evaluator):
    """Both a space and an evaluator (keeps the worker test to one plugin)."""

    name = "info"
    objectives = {"loss": "min"}

    def __init__(self):
        ToySpace.__init__(self)
        Evaluator.__init__(self)

    def evaluate(self, genome, space):
        if genome % 2 == 0:
            raise DivergesWithInfo(genome)
        return Evaluation({"loss": float(genome)}, info={"note": "fine"})


class Checkpointed(Evaluator):
    name = "checkpointed"
    objectives = {"loss": "min"}

    def __init__(self, checkpoint: str = "a"):
        super().__init__()
        self.checkpoint = checkpoint

    def weights_version(self):
        return f"sha:{self.checkpoint}"

    def evaluate(self, genome, space):
        return {"loss": float(genome)}


def test_a_weights_version_is_part_of_every_cache_key():
    space, cache = ToySpace(), Cache(None)
    a, b = Seam(space, Checkpointed("a"), cache), Seam(space, Checkpointed("b"), cache)
    assert Checkpointed("a").fidelity() == {"weights": "sha:a"}
    cand = automl.Candidate(0, 5, "5")
    ta, tb = a.prepare(cand), b.prepare(cand)
    assert ta.hash != tb.hash
    a.complete(ta, {"objectives": {"loss": 5.0}, "error": None, "cost_s": 0.0})
    assert a.prepare(cand).result is not None and b.prepare(cand).result is None  # never served across weights


class CrossToy(ToySpace):
    def crossover(self, a, b, rng):
        return (a + b) // 2


def test_crossover_is_optional_in_the_contract_and_used_by_evolution():
    from automl.strategies.evolution import RegularizedEvolution
    from automl.testing import contracts

    registry.register_space("cross-toy", CrossToy, replace=True)
    CrossToy.name = "cross-toy"
    contracts.space_contract("cross-toy")
    s = RegularizedEvolution(population_size=6, tournament_size=2, crossover_prob=1.0, warm_start=False)
    s.bind(CrossToy(), {"loss": "min"}, seed=0)
    origins = []
    for i in range(30):
        p = s.ask()
        origins.append((p.meta or {}).get("origin"))
        s.tell(automl.Candidate(i, p.genome, str(p.genome), tuple(p.parents)),
               automl.EvalResult("ok", {"loss": float(p.genome)}, 0.0))
    assert "crossover" in origins
    with pytest.raises(ConfigError, match="crossover"):
        RegularizedEvolution(crossover_prob=0.5).bind(ToySpace(), {"loss": "min"}, seed=0)


def test_objective_and_pareto_helpers():
    from automl.objectives import best, best_so_far, dominates, pareto_front

    objs = (Objective("acc", "max"), Objective("size", "min"))
    rows = [{"status": "ok", "objectives": {"acc": a, "size": s}} for a, s in [(1, 1), (3, 2), (2, 5), (3, 1)]]
    rows.append({"status": "failed", "objectives": {}})
    assert dominates((3, 1), (3, 2), objs) and not dominates((3, 2), (3, 2), objs)
    assert [r["objectives"] for r in pareto_front(rows, objs)] == [{"acc": 3, "size": 1}]
    assert best(rows, objs[0])["objectives"] == {"acc": 3, "size": 2}
    assert list(best_so_far(rows, objs[0])) == [1, 3, 3, 3, 3]
    assert np.isinf(objs[0].worst) and objs[0].worst < 0


def test_an_infeasible_result_never_ranks_first(tmp_path):
    """A result that violates a constraint is neither the best, nor a best-so-far, nor a parent by
    fitness; the run's summary shows the best feasible candidate."""
    from automl.objectives import best, best_so_far, fitness

    acc = Objective("acc", "max")
    rows = [{"status": "ok", "objectives": {"acc": 0.5}},
            {"status": "ok", "objectives": {"acc": 0.9}, "constraints": {"latency_ms": 0.2}},  # over budget
            {"status": "ok", "objectives": {"acc": 0.7}, "constraints": {"latency_ms": -0.1}}]
    assert best(rows, acc)["objectives"]["acc"] == 0.7
    assert list(best_so_far(rows, acc)) == [0.5, 0.5, 0.7]
    assert fitness(rows[1], acc) == -np.inf and fitness(rows[2], acc) == 0.7

    summary = automl.search(space="ofa-mbv3", evaluator="ofa-hw", strategy="random", budget=30, seed=0,
                            out=str(tmp_path / "run"), evaluator_options={"max_macs": 2.5e8})
    _, records = automl.read_run(str(tmp_path / "run"))
    feasible_best = max((r for r in records if r["status"] == "ok" and not any(
        v > 0 for v in (r.get("constraints") or {}).values())), key=lambda r: r["objectives"]["top1"])
    assert any(any(v > 0 for v in (r.get("constraints") or {}).values()) for r in records)
    assert summary["best"]["objectives"]["top1"] == feasible_best["objectives"]["top1"]
