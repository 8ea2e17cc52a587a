"""Contract suites for every plugin family, shipped with the package (as ``optuna.testing`` is) so
a third-party space, evaluator, strategy, runner or cache can run them:

    from automl.testing import contracts
    contracts.space_contract("my-space")               # a registered name
    contracts.evaluator_contract("my-evaluator")
    contracts.strategy_contract("my-strategy", contracts.toys.ToySpace())
    contracts.runner_contract_basic(MyRunner())
    contracts.cache_contract(lambda: MyCache())
    contracts.golden_contract("my-space", "tests/golden")   # digests pinned per space

Each check asserts behaviour (AssertionError naming what is wrong).  This project's
tests/test_contracts.py runs them over everything registered.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np

import automl
from automl import registry
from automl.errors import AutoMLError
from automl.evaluation import Seam
from automl.runners.base import Runner
from automl.space import SearchSpace, has_crossover
from automl.strategies.base import Proposal, Strategy
from automl.types import FAILED, INVALID, OK, Candidate, EvalResult, Evaluation

TOY_SPACE, TOY_EVALUATOR = "automl.testing.toys:ToySpace", "automl.testing.toys:Quadratic"

# ---------------------------------------------------------------------------------------------------
# spaces


def space_contract(name: str, n: int = 20) -> None:
    space = registry.get_space(name)
    assert space.name == name, f"space registered as {name!r} calls itself {space.name!r}"
    assert space.probe_spec, "probe_spec must describe the probe (it is part of every digest's namespace)"
    json.dumps(space.options())
    rebuilt = registry.get_space(name, **space.options())

    a = [space.to_text(space.sample(np.random.default_rng(7))) for _ in range(3)]
    b = [space.to_text(space.sample(np.random.default_rng(7))) for _ in range(3)]
    assert a == b, "sample must depend only on the rng it is given"

    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(n)]
    for g in genomes:
        text = space.to_text(g)
        g2 = space.from_text(text)
        assert space.to_text(g2) == text, "to_text(from_text(text)) must give the text back"
        assert rebuilt.to_text(rebuilt.from_text(text)) == text
        child = space.mutate(g, rng)
        assert space.to_text(g) == text, "mutate must not modify its input"
        space.to_text(child)
        assert getattr(g, "automl_space", name) == name
        # digests: deterministic, text and genome agree, instances agree
        s1, f1 = automl.structural_hash(g, space=space), automl.functional_hash(g, space=space)
        assert automl.structural_hash(text, space=name) == s1
        assert automl.functional_hash(text, space=name) == f1
        assert automl.functional_hash(g2, space=rebuilt) == f1
        assert len(s1) == 32 and len(f1) == 32
    texts = {space.to_text(g) for g in genomes}
    assert len(texts) > 1, "sample should produce different candidates"
    if has_crossover(space):  # optional part of the contract
        for a, b in zip(genomes[:5], genomes[1:6]):
            ta, tb = space.to_text(a), space.to_text(b)
            child = space.crossover(a, b, np.random.default_rng(1))
            assert space.to_text(a) == ta and space.to_text(b) == tb, "crossover must not modify its parents"
            again = space.crossover(a, b, np.random.default_rng(1))
            assert space.to_text(child) == space.to_text(again), "crossover must depend only on its rng"
            assert space.to_text(space.from_text(space.to_text(child))) == space.to_text(child)

    for bad in ("", "\x00garbage((", "}}{{"):
        try:
            space.from_text(bad)
        except AutoMLError:
            pass
        else:
            raise AssertionError(f"from_text({bad!r}) should raise an AutoMLError")

    params = space.param_space()
    if params:
        for g in genomes[:5]:
            p = space.to_params(g)
            assert set(p) == set(params)
            assert space.to_text(space.from_params(p)) == space.to_text(g)


# ---------------------------------------------------------------------------------------------------
# evaluators


def evaluator_contract(name: str) -> None:
    cls = registry.get_class("evaluator", name)
    ev = registry.get_evaluator(name, **dict(getattr(cls, "test_options", {})))
    assert ev.name == name
    assert ev.objectives and all(d in ("min", "max") for d in ev.objectives.values())
    json.dumps(ev.options())
    json.dumps(ev.fidelity())
    ref = ev.reference()  # optional reference lines: {objective: {"value": float, "label": str}}
    json.dumps(ref)
    for k, r in ref.items():
        assert k in ev.objectives, f"reference() names {k!r}, not an objective ({sorted(ev.objectives)})"
        assert math.isfinite(float(r["value"])) and isinstance(r["label"], str) and r["label"]
    space_name = ev.spaces[0] if ev.spaces else registry.default("space")  # "any space": the plugins' default
    space = registry.get_space(space_name)
    g = space.warm_start()[0] if space.warm_start() else space.sample(np.random.default_rng(0))
    out = ev.evaluate(g, space)
    if isinstance(out, Evaluation):
        assert all(isinstance(k, str) and math.isfinite(float(v)) for k, v in (out.constraints or {}).items())
        out = out.objectives
    assert set(ev.objectives) <= set(out), f"evaluate returned {sorted(out)}, declared {sorted(ev.objectives)}"
    for k in ev.objectives:
        float(out[k])
    ev.close()


# ---------------------------------------------------------------------------------------------------
# strategies


def _drive(strategy: Strategy, space: SearchSpace, steps: int, start_id: int = 0) -> list[str]:
    texts = []
    for i in range(start_id, start_id + steps):
        prop = strategy.ask()
        assert isinstance(prop, Proposal)
        text = space.to_text(prop.genome)
        cand = Candidate(i, prop.genome, text, tuple(prop.parents), 0, prop.params, prop.meta)
        k = int(text) if text.isdigit() else len(text)
        strategy.tell(cand, EvalResult(OK, {"loss": float((k % 100 - 42) ** 2)}, 0.0))
        texts.append(text)
    return texts


def strategy_contract(name: str, space: SearchSpace) -> None:
    seam = Seam(space, None)

    def make() -> Strategy:
        s: Strategy = registry.create("strategy", name)
        s.bind(space, {"loss": "min"}, seed=3, seam=seam)
        return s

    s1, s2 = make(), make()
    t1, t2 = _drive(s1, space, 25), _drive(s2, space, 25)
    assert t1 == t2, "same seed must give the same proposals"
    state = json.loads(json.dumps(s1.state_dict()))
    s3 = make()
    s3.load_state_dict(state)
    cont = _drive(s3, space, 10, start_id=25)
    assert all(space.from_text(t) is not None for t in cont)
    # failures are told without breaking the strategy
    prop = s3.ask()
    assert prop is not None, "a strategy with a fresh population must propose"
    s3.tell(Candidate(99, prop.genome, space.to_text(prop.genome), (), 0, prop.params, prop.meta),
            EvalResult(FAILED, {}, 0.0, error="boom"))
    assert s3.fitness(EvalResult(FAILED, {}, 0.0)) == -math.inf
    strategy_keeps_asking(make(), space)


def strategy_keeps_asking(strategy: Strategy, space: SearchSpace, rounds: int = 40) -> None:
    """A bound strategy keeps proposing valid candidates while told failures, invalid results and
    NaN/inf objectives (several in flight at once), as Ray Tune checks its searchers."""
    bad = [EvalResult(FAILED, {}, 0.0, error="boom"), EvalResult(INVALID, {"loss": math.nan}, 0.0),
           EvalResult(INVALID, {"loss": math.inf}, 0.0), EvalResult(INVALID, {"loss": -math.inf}, 0.0),
           EvalResult(OK, {"loss": 1.0}, 0.0)]
    pending = []
    for i in range(rounds):
        prop = strategy.ask()
        assert isinstance(prop, Proposal), f"ask() returned {prop!r} after {i} asks with failures told"
        text = space.to_text(prop.genome)
        space.validate(space.from_text(text))
        pending.append(Candidate(1000 + i, prop.genome, text, tuple(prop.parents), 0, prop.params, prop.meta))
        if len(pending) >= 3 or i == rounds - 1:  # tell out of order, several at once
            for j, cand in enumerate(reversed(pending)):
                strategy.tell(cand, bad[(i + j) % len(bad)])
            pending = []
    assert strategy.fitness(bad[1]) == -math.inf and strategy.fitness(bad[0]) == -math.inf
    json.dumps(strategy.state_dict())


# ---------------------------------------------------------------------------------------------------
# runners

def runner_contract_basic(runner: Runner) -> None:
    """``runner`` is an un-started runner; runs the toy space and quadratic of :mod:`automl.testing.toys`."""
    from automl.runners.base import PluginSpec

    space = PluginSpec(TOY_SPACE, {})
    ev = PluginSpec(TOY_EVALUATOR, {"fail_on": [47], "nan_on": [49]})
    runner.start(space, ev, timeout=None)
    try:
        assert runner.capacity >= 1
        ids = list(range(12))
        pending, results = list(ids), {}  # type: tuple[list[int], dict[int, dict[str, Any]]]
        while pending or len(results) < len(ids):
            while pending and len(results) + (len(ids) - len(pending) - len(results)) < len(ids):
                if len(ids) - len(pending) - len(results) >= runner.capacity:
                    break
                i = pending.pop(0)
                runner.submit(i, str(40 + i))
            for task_id, raw in runner.poll(timeout=30):
                assert task_id not in results, "a task finished twice"
                results[task_id] = raw
        assert sorted(results) == ids
        for i, raw in results.items():
            k = 40 + i
            assert raw["cost_s"] >= 0
            if k == 47:
                assert raw["error"] and "cannot evaluate 47" in raw["error"]
            else:
                assert raw["error"] is None
                if k != 49:
                    assert raw["objectives"]["loss"] == (k - 42) ** 2 / 100.0
                else:
                    assert math.isnan(raw["objectives"]["loss"])
        assert runner.poll(timeout=0.01) == []
    finally:
        runner.close()


def runner_contract_timeout(runner: Runner) -> None:
    from automl.runners.base import PluginSpec

    runner.start(PluginSpec(TOY_SPACE, {}), PluginSpec(TOY_EVALUATOR, {"hang_on": [5]}), timeout=1.0)
    try:
        runner.submit(1, "5")
        runner.submit(2, "6")
        got: dict[int, dict[str, Any]] = {}
        while len(got) < 2:
            for task_id, raw in runner.poll(timeout=30):
                got[task_id] = raw
        assert "timed out" in got[1]["error"]
        assert got[2]["error"] is None
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------------------
# caches

def cache_contract(make: Callable[[], Any]) -> None:
    """``make()`` returns a fresh, empty cache (storage) of the family under test."""
    from automl.types import FAILED

    c = make()
    assert c.get("a") is None
    e = c.fold("a", OK, {"loss": 1.0}, 0.5, candidate="t")
    assert c.get("a").objectives == {"loss": 1.0} and e.n == 1 and c.get("a").candidate == "t"
    c.set_alias("s", "a")
    assert c.alias("s") == "a" and c.alias("nope") is None
    e = c.fold("a", OK, {"loss": 3.0}, 0.5)
    assert e.objectives["loss"] == 2.0 and e.n == 2 and c.get("a").n == 2 and e.mean_cost == 0.5
    c.fold("f", FAILED, {}, 0.1, error="boom")
    assert c.get("f").status == FAILED and c.get("f").error == "boom"
    c.flush()
    c.close()


# ---------------------------------------------------------------------------------------------------
# golden digests

def golden_digests(name: str, n: int = 6, seed: int = 0) -> dict[str, list[str]]:
    """``{text: [structural, functional]}`` for ``n`` candidates sampled from registered space
    ``name`` with ``seed`` (plus its warm start): what :func:`golden_contract` pins."""
    space = registry.get_space(name)
    rng = np.random.default_rng(seed)
    genomes = list(space.warm_start()[:2]) + [space.sample(rng) for _ in range(n)]
    h = automl.Hasher(space)
    return {space.to_text(g): [h.structural(g), h.functional(g)] for g in genomes}


def golden_contract(name: str, directory: str) -> None:
    """The digests of space ``name`` equal those pinned in ``directory/<name>.json``: a change of a
    space's canonical form, probe or the hash namespace shows up here (and invalidates every cache
    built before it).  Regenerate deliberately: ``python -m automl.testing.golden DIR``."""
    import os

    path = os.path.join(directory, f"{name}.json")
    with open(path, encoding="utf-8") as f:
        pinned = json.load(f)
    space = registry.get_space(name)
    h = automl.Hasher(space)
    for text, (s, fn) in pinned.items():
        g = space.from_text(text)
        assert h.structural(g) == s, f"{name}: structural digest of {text!r} changed"
        assert h.functional(g) == fn, f"{name}: functional digest of {text!r} changed"
