"""Optuna integration: exporting a run to a journal-file study, and tuning a program's constants."""
from __future__ import annotations

import math

import numpy as np
import pytest

import automl
from automl.cli import main
from automl.errors import ConfigError
from automl.log import read_records

optuna = pytest.importorskip("optuna")


def _load(storage_path, name):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(storage_path))))


@pytest.fixture(scope="module")
def evo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "evo"
    automl.search(space="plugins_for_tests:ToySpace", evaluator="plugins_for_tests:Quadratic", strategy="evolution",
                  budget=30, seed=0, out=str(out), evaluator_options={"fail_on": [47, 147], "nan_on": [49, 149]},
                  strategy_options={"population_size": 8, "tournament_size": 3,
                                    "warm_start_texts": ["47", "49", "45"]})
    return out


def test_export_run_to_journal_study(evo_run, tmp_path, capsys):
    storage = tmp_path / "studies.journal"
    assert main(["export-optuna", str(evo_run), "--storage", str(storage), "--study", "evo"]) == 0
    assert "exported" in capsys.readouterr().out
    recs = read_records(str(evo_run))
    study = _load(storage, "evo")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == len(recs) and study.metric_names == ["loss"]
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    states = set()
    for t, r in zip(sorted(trials, key=lambda t: t.number), sorted(recs, key=lambda r: r["id"])):
        assert t.user_attrs["candidate"] == r["candidate"] and t.user_attrs["hash"] == r["hash"]
        assert t.user_attrs["cache"] == r["cache"] and t.params == {"candidate_id": r["id"]}
        if r["status"] == "ok":
            assert t.state == optuna.trial.TrialState.COMPLETE and t.values == [r["objectives"]["loss"]]
        else:
            assert t.state == optuna.trial.TrialState.FAIL and t.values is None
        states.add((r["status"], t.state))
    assert ("failed", optuna.trial.TrialState.FAIL) in states and ("invalid", optuna.trial.TrialState.FAIL) in states
    best = min((r for r in recs if r["status"] == "ok"), key=lambda r: r["objectives"]["loss"])
    assert study.best_trial.user_attrs["candidate"] == best["candidate"]
    # a second export to the same study name is one clear error
    assert main(["export-optuna", str(evo_run), "--storage", str(storage), "--study", "evo"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_export_keeps_strategy_params_with_the_space_distributions(tmp_path):
    out = tmp_path / "tpe"
    automl.search(space="plugins_for_tests:ToySpace", evaluator="plugins_for_tests:Quadratic", strategy="tpe",
                  budget=12, seed=0, out=str(out))
    from automl.integrations.optuna_export import export_to_optuna

    # the run names its plugins as module:Class paths: importing them needs the explicit opt-in
    r = export_to_optuna(str(out), str(tmp_path / "s.journal"), allow_import=True)
    recs = read_records(str(out))
    assert r["study_name"] == "tpe" and r["trials"] == len(recs) == r["complete"] + r["failed"]
    study = _load(tmp_path / "s.journal", "tpe")
    for t, rec in zip(sorted(study.trials, key=lambda t: t.number), recs):
        assert t.params == rec["params"]
        assert isinstance(t.distributions["k"], optuna.distributions.CategoricalDistribution)
        assert len(t.distributions["k"].choices) == 200


# --- tune_constants ----------------------------------------------------------------------------------

def test_tune_constants_on_a_fake_space_improves_from_the_original(tmp_path):
    from search_spaces.programs.tuning import tune_constants

    res = tune_constants("0.9 0.001 1.0", space="integration_helpers:ConstSpace",
                         evaluator="integration_helpers:ConstLoss", n_trials=40, seed=0)
    first = res["trials"][0]
    assert first["text"] == res["original_text"] == "0.9 0.001 1.0" and first["lr_scale"] == 1.0
    assert res["original_value"] == pytest.approx(1.0 + math.log(1 / 3) ** 2 + math.log(0.5) ** 2)
    assert res["best_value"] < 0.5 * res["original_value"]
    assert len(res["trials"]) == 40 == len(res["study"].trials) and res["charged"] <= 40
    a, b, s = (float(x) for x in res["best_text"].split())
    assert [a, b] == pytest.approx(res["best_constants"]) and s == pytest.approx(res["best_lr_scale"])
    assert 0.5 <= a < 1.0 and 1e-4 <= b <= 1e-2 and 0.1 <= s <= 10.0  # inside the searched ranges


def test_tune_constants_runs_its_trials_on_a_process_pool():
    from search_spaces.programs.tuning import tune_constants

    res = tune_constants("0.9 0.001 1.0", space="integration_helpers:ConstSpace",
                         evaluator="integration_helpers:ConstLoss", n_trials=12, seed=1, sampler="random",
                         runner="process", runner_options={"workers": 2})
    assert len(res["trials"]) == 12 and all(t["status"] == "ok" for t in res["trials"])
    assert res["best_value"] <= res["original_value"]


def test_tune_constants_needs_the_constants_interface():
    from search_spaces.programs.tuning import tune_constants

    with pytest.raises(ConfigError, match="constants"):
        tune_constants("5", space="plugins_for_tests:ToySpace", evaluator="plugins_for_tests:Quadratic", n_trials=2)


# --- the constants interface on the optimizer-program IR ---------------------------------------------

def _programs():
    pytest.importorskip("search_spaces.programs")
    return automl.get_space("optimizer-programs")


def test_program_ir_constants_and_exact_lr_scaling():
    from search_spaces.programs import interp

    sp = _programs()
    P = sp  # the space's constants interface
    adamw = sp.programs()["adamw"]
    assert P.constants(adamw) == [0.9, 0.999, 1e-08, 0.01]  # 1.0 and the 0.5 exponent are structure
    assert sp.to_text(P.with_constants(adamw, P.constants(adamw))) == sp.to_text(adamw)
    tuned = P.with_constants(adamw, [0.8, 0.99, 1e-6, 0.1], lr_scale=0.3)
    text = sp.to_text(tuned)
    assert "lr = lr * 0.3" in text and "interp(g, m, 0.8)" in text and "0.8 ** t" in text
    assert "0.9 " not in text and "0.999" not in text and "1e-08" not in text
    assert sp.to_text(sp.from_text(text)) == text
    # scaling the lr input by s is exactly running the retuned program with lr * s
    w0, grads, lrs = interp.probe_data(0)
    retuned = P.with_constants(adamw, [0.8, 0.99, 1e-6, 0.1])
    u_scaled, m1, v1 = interp.run(tuned, w0, grads, lrs)
    u_ref, m2, v2 = interp.run(retuned, w0, grads, [lr * 0.3 for lr in lrs])
    for a, b in zip(u_scaled, u_ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    np.testing.assert_allclose(m1, m2, rtol=1e-12)


def test_tune_constants_on_a_real_program():
    from search_spaces.programs.tuning import tune_constants

    sp = _programs()
    lion = sp.to_text(sp.programs()["lion"])
    res = tune_constants(lion, space="optimizer-programs", evaluator="integration_helpers:ProgramStepSize",
                         n_trials=20, seed=0)
    assert res["original_text"] == lion and res["trials"][0]["text"] == lion
    assert res["best_value"] < res["original_value"]
    best = sp.from_text(res["best_text"])  # a valid program of the space
    sp.validate(best)
    assert len(res["best_constants"]) == 3
