"""Hypervolume, multi-objective strategies (native NSGA-II, LINAS) through the engine, constraints,
and the hardware evaluator's fidelity."""
import itertools
import json
import os

import numpy as np
import pytest

import automl
from automl.hypervolume import crowding_distance, hypervolume, nondominated_ranks, pareto_mask
from automl.objectives import violation
from automl.report import summarize


def _brute_ranks(F):
    n = len(F)
    dom = (F[:, None] <= F[None]).all(2) & (F[:, None] < F[None]).any(2)
    ranks, rem, r = np.full(n, -1), np.ones(n, bool), 0
    while rem.any():
        cur = rem & ~dom[rem].any(0)
        ranks[cur], rem, r = r, rem & ~cur, r + 1
    return ranks


def test_hypervolume_and_ranks_against_brute_force():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        for _ in range(30):
            F = rng.integers(0, 5, (int(rng.integers(1, 25)), m)).astype(float)
            assert (nondominated_ranks(F) == _brute_ranks(F)).all()
            assert (pareto_mask(F) == (_brute_ranks(F) == 0)).all()
            # exact HV on the integer grid: count unit cells [c, c+1) dominated by some point
            ref = np.full(m, 5.0)
            cells = np.array(list(itertools.product(range(5), repeat=m)), dtype=float)
            expect = (F[None, :, :] <= cells[:, None, :]).all(2).any(1).sum()
            assert hypervolume(F, ref) == pytest.approx(expect)
    # directions: maximising the first objective mirrors it
    assert hypervolume([[3.0, 1.0]], [0.0, 4.0], ["max", "min"]) == pytest.approx(9.0)
    assert np.isinf(crowding_distance(np.array([[0, 1], [1, 0], [0.5, 0.5]]))[[0, 1]]).all()


def _run(tmp_path, strategy, budget, evaluator_options=None, strategy_options=None, seed=0):
    out = str(tmp_path / f"{strategy}-{seed}")
    automl.search(space="ofa-mbv3", evaluator="ofa-hw", strategy=strategy, budget=budget, seed=seed, out=out,
                  evaluator_options=evaluator_options or {}, strategy_options=strategy_options or {})
    return out


TINY_LINAS = {"initial": 8, "batch": 4, "inner_population": 40, "inner_generations": 10}


def test_constraints_are_respected_by_every_reported_front(tmp_path):
    """A latency budget most sub-networks break: infeasible results are logged with their violation,
    and no reported front (show, plot) contains one."""
    opts = {"latency": "lut", "latency_table": "v100_bs1", "max_latency_ms": 8.0}
    for strategy, sopts in (("linas", TINY_LINAS), ("nsga2-native", {"population_size": 10}), ("random", {})):
        out = _run(tmp_path, strategy, 24, opts, sopts)
        s = summarize(out)
        _, recs = automl.api.read_run(out)
        oks = [r for r in recs if r["status"] == "ok"]
        assert all(set(r["constraints"]) == {"latency_ms"} and "constraint_violation" not in r["objectives"]
                   for r in oks)  # a constraint of core's, never an objective
        for r in oks:  # relative excess over the budget, <= 0 when it holds
            assert r["constraints"]["latency_ms"] == pytest.approx(r["objectives"]["latency_ms"] / 8.0 - 1.0)
        violations = [violation(r) for r in oks]
        assert any(v > 0 for v in violations) and any(v == 0 for v in violations)
        assert s["infeasible"] == sum(v > 0 for v in violations)
        assert s["pareto_front"]
        for p in s["pareto_front"]:
            assert p["objectives"]["latency_ms"] <= 8.0
        assert s["hypervolume"]["value"] > 0
        assert "hypervolume" in automl.report.show(out)


def test_linas_refits_each_loop_and_never_pays_for_a_known_network(tmp_path):
    out = _run(tmp_path, "linas", 30, strategy_options=TINY_LINAS)
    _, recs = automl.api.read_run(out)
    assert sum(r["charged"] for r in recs) == 30
    assert all(r["cache"] == "miss" for r in recs)  # proposals are screened by canonical form
    state = json.load(open(os.path.join(out, "state.json")))["strategy"]
    assert len(state["loop_seconds"]) == (30 - 8) // 4 + ((30 - 8) % 4 > 0)
    # resumable: a larger budget continues the same run
    automl.search(resume=True, out=out, budget=38)
    _, recs2 = automl.api.read_run(out)
    assert sum(r["charged"] for r in recs2) == 38 and recs2[:len(recs)] == recs


def test_linas_beats_random_on_the_oracle_with_a_small_budget(tmp_path):
    """60 evaluations, 3 seeds: LINAS's hypervolume is above random search's on every seed."""
    ref, dirs = [70.0, 6e8], ["max", "min"]

    def hv(out):
        _, recs = automl.api.read_run(out)
        return hypervolume([[r["objectives"]["top1"], r["objectives"]["macs"]] for r in recs if r["charged"]], ref, dirs)

    for seed in range(3):
        lin = hv(_run(tmp_path, "linas", 60, strategy_options=dict(TINY_LINAS, inner_generations=30), seed=seed))
        rnd = hv(_run(tmp_path, "random", 60, seed=seed))
        assert lin > rnd


def test_optuna_nsga2_drives_the_ofa_space_through_the_engine(tmp_path):
    pytest.importorskip("optuna")
    out = _run(tmp_path, "nsga2", 12)
    s = summarize(out)
    assert s["charged_evaluations"] == 12 and s["pareto_front"]


def test_measured_latency_fidelity_separates_settings():
    pytest.importorskip("torch")
    from automl import Hasher, registry

    space = registry.get_space("ofa-mbv3")
    g = space.warm_start()[0]
    kw = dict(latency="measured", measure_resolution=32, repeats=3, warmup=1, inner=1)
    one, two = registry.get_evaluator("ofa-hw", threads=1, **kw), registry.get_evaluator("ofa-hw", threads=2, **kw)
    assert one.noisy and {"device", "batch", "dtype", "threads"} <= set(one.fidelity())
    assert Hasher(space, one).functional(g) != Hasher(space, two).functional(g)
    lut = registry.get_evaluator("ofa-hw", latency="lut")
    assert "threads" not in lut.fidelity()
    out = one.evaluate(g, space)
    assert out.constraints is None  # no budget, no constraint
    out = out.objectives
    assert out["latency_ms"] > 0 and out["latency_cv"] >= 0
    # denormals are flushed only while measuring: the process's float behaviour is restored
    assert np.float64(5e-324) * 1.0 != 0.0 and float("5e-324") != 0.0
