"""The optimizer-program proxy evaluator, its funnel selection and the CLI around them."""
import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import automl
from automl.api import read_run
from automl.cli import main as cli_main
from automl.errors import ConfigError, RunDirError
from evaluators.optimizer_proxy import OptimizerProxy, heldout_score
from evaluators.optimizer_proxy.funnel import FUNNEL_FILE, funnel, top_programs
from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"tasks": ["mlp"], "steps": 30}
# g * 10000 * lr: a step 10^4 times too long; the loss explodes within a few steps
DIVERGING = "def train(w, g, m, v, lr):\n  a = g * 10000.0\n  update = a * lr\n  return update, m, v\n"
SPACE = ProgramSpace()


def prog(name_or_text):
    return SPACE.from_text(CLASSIC_PROGRAMS.get(name_or_text, name_or_text))


def test_adamw_and_lion_are_finite_and_beat_a_diverging_program():
    ev = OptimizerProxy(**FAST)
    adamw, lion = ev.evaluate(prog("adamw")), ev.evaluate(prog("lion"))
    assert adamw["val_loss"] == 1.0  # normalized by itself
    assert math.isfinite(lion["val_loss"]) and lion["val_loss"] > 0
    assert 0 < adamw["loss_mlp"] < math.log(6)  # learned something (6 classes)
    assert 0 <= adamw["val_acc"] <= 1
    bad = ev.evaluate(prog(DIVERGING))
    assert math.isnan(bad["val_loss"])
    assert "mlp" in ev.last_diverged
    # raw losses: AdamW better than plain SGD at the same base lr
    raw = OptimizerProxy(**FAST, normalize=False)
    assert raw.evaluate(prog("adamw"))["val_loss"] < raw.evaluate(prog("sgd"))["val_loss"]


def test_same_options_same_value_across_instances_and_processes():
    a = OptimizerProxy(tasks=["mlp", "charlm"], steps=15).evaluate(prog("lion"))
    b = OptimizerProxy(tasks=["mlp", "charlm"], steps=15).evaluate(prog("lion"))
    assert a == b
    code = ("import json; from evaluators.optimizer_proxy import OptimizerProxy; "
            "from search_spaces.programs import CLASSIC_PROGRAMS as C, ProgramSpace; "
            "print(json.dumps(OptimizerProxy(tasks=['mlp', 'charlm'], steps=15)"
            ".evaluate(ProgramSpace().from_text(C['lion']))))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    assert json.loads(out.stdout) == a
    # a different seed is a different fidelity and (here) a different value
    c = OptimizerProxy(tasks=["mlp", "charlm"], steps=15, seed=1).evaluate(prog("lion"))
    assert c != a


def test_options_are_checked_and_canonical():
    with pytest.raises(ConfigError, match="unknown task"):
        OptimizerProxy(tasks=["imagenet"])
    with pytest.raises(ConfigError, match="steps"):
        OptimizerProxy(steps=0)
    with pytest.raises(ConfigError, match="device"):
        OptimizerProxy(device="tpu")
    ev = OptimizerProxy(tasks=["heldout"], scale=10)
    assert ev.fidelity()["tasks"] == ["conv", "regress", "autoenc"]
    assert ev.fidelity()["scale"] == 10.0 and isinstance(ev.fidelity()["scale"], float)
    json.dumps(ev.options())


def test_building_the_evaluator_does_not_import_torch():
    code = ("import sys, evaluators, automl; from automl import registry; "
            "ev = registry.get_evaluator('optimizer-proxy'); ev.fidelity(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_heldout_score_of_adamw_is_one():
    h = heldout_score(CLASSIC_PROGRAMS["adamw"], steps=10, tasks=["regress"])
    assert h["score"] == 1.0 and h["score_same_lr"] == 1.0 and h["tasks"]["regress"]["adamw"] > 0
    assert h["tasks"]["regress"]["lr"] == h["tasks"]["regress"]["adamw_lr"]  # the lr grid tuned both alike
    h = heldout_score(CLASSIC_PROGRAMS["sgd"], steps=10, tasks=["regress"], grid=None)
    assert h["score"] == h["score_same_lr"] > 1.0
    h = heldout_score({"candidate": DIVERGING}, steps=10, tasks=["regress"])
    assert math.isnan(h["score"]) and h["tasks"]["regress"]["diverged"]


def test_diverging_program_is_recorded_invalid_by_a_search(tmp_path):
    out = tmp_path / "run"
    s = automl.search(space="optimizer-programs", evaluator="optimizer-proxy", budget=2, seed=0, out=str(out),
                      evaluator_options={"tasks": ["mlp"], "steps": 10},
                      strategy_options={"population_size": 2, "tournament_size": 1,
                                        "warm_start_texts": [DIVERGING]})
    _, recs = read_run(str(out))
    by_text = {SPACE.to_text(SPACE.from_text(r["candidate"])): r for r in recs}
    bad = by_text[SPACE.to_text(prog(DIVERGING))]
    assert bad["status"] == "invalid" and "val_loss=nan" in bad["error"]
    good = by_text[SPACE.to_text(prog("adamw"))]
    assert good["status"] == "ok" and good["objectives"]["val_loss"] == 1.0
    assert s["best"]["value"] == 1.0


def _tiny_run(path):
    automl.search(space="optimizer-programs", evaluator="optimizer-proxy", budget=6, seed=1, out=str(path),
                  evaluator_options={"tasks": ["mlp"], "steps": 10},
                  strategy_options={"population_size": 3, "tournament_size": 2,
                                    "warm_start_texts": [CLASSIC_PROGRAMS["lion"], DIVERGING]})
    return str(path)


def test_funnel_writes_json_with_adamw_comparison(tmp_path, capsys):
    run = _tiny_run(tmp_path / "run")
    res = funnel(run, top=3, scale=2)
    path = os.path.join(run, FUNNEL_FILE)
    assert res["path"] == path and os.path.exists(path)
    data = json.load(open(path))
    assert data["scale"] == 2.0 and data["options"]["scale"] == 2.0 and data["options"]["steps"] == 10
    assert set(data["adamw"]) == {"mlp"} and data["adamw"]["mlp"] > 0
    rows = data["candidates"]
    assert 1 <= len(rows) <= 3 and len({r["hash"] for r in rows}) == len(rows)  # distinct programs
    for r in rows:
        fv = r["funnel_val_loss"]
        assert r["promoted"] == (fv is not None and fv < 1.0)
        assert set(r["tasks"]) == {"mlp"}
    assert data["promoted"] == [r["id"] for r in rows if r["promoted"]]
    adamw_text = SPACE.to_text(prog("adamw"))
    for r in rows:  # AdamW itself (the warm start) scores exactly 1 at scale: never promoted
        if SPACE.to_text(SPACE.from_text(r["candidate"])) == adamw_text:
            assert r["funnel_val_loss"] == 1.0 and not r["promoted"]
    # the CLI prints the table and rewrites the file
    os.remove(path)
    assert cli_main(["funnel", run, "--top", "2", "--scale", "2"]) == 0
    printed = capsys.readouterr().out
    assert "AdamW" in printed and "promoted" in printed and os.path.exists(path)


def test_funnel_refuses_runs_of_other_evaluators(tmp_path):
    run = tmp_path / "sr"
    automl.search(space="expressions", evaluator="symbolic-regression", budget=3, out=str(run),
                  evaluator_options={"n": 16}, strategy_options={"population_size": 2, "tournament_size": 1})
    with pytest.raises(RunDirError):
        funnel(str(run))
    assert cli_main(["funnel", str(run)]) == 2


def test_top_programs_dedupes_by_hash():
    recs = [{"id": i, "status": "ok", "hash": h, "candidate": str(i), "objectives": {"val_loss": v}}
            for i, (h, v) in enumerate([("a", 0.5), ("a", 0.5), ("b", 0.7), ("c", float("nan")), ("d", 0.6)])]
    recs.append({"id": 9, "status": "invalid", "hash": "e", "candidate": "9", "objectives": {"val_loss": 0.1}})
    assert [r["id"] for r in top_programs(recs, 5)] == [0, 4, 2]
    twins = [{"id": i, "status": "ok", "hash": str(i), "candidate": str(i), "objectives": {"val_loss": v}}
             for i, v in enumerate([0.9, 0.9 + 1e-9, 0.9 + 2e-9, 0.95, 0.95 * (1 + 1e-3)])]
    assert [r["id"] for r in top_programs(twins, 5)] == [0, 1, 2, 3, 4]
    assert [r["id"] for r in top_programs(twins, 5, tol=1e-5)] == [0, 3, 4]  # rounding twins count once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_cuda_device():
    ev = OptimizerProxy(tasks=["mlp"], steps=20, device="cuda")
    a = ev.evaluate(prog("adamw"))
    assert a["val_loss"] == 1.0
    lion = ev.evaluate(prog("lion"))["val_loss"]
    cpu = OptimizerProxy(tasks=["mlp"], steps=20).evaluate(prog("lion"))["val_loss"]
    assert math.isfinite(lion) and abs(lion - cpu) < 0.05  # same data and init; float noise differs
    assert math.isnan(ev.evaluate(prog(DIVERGING))["val_loss"])


def test_cuda_unavailable_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="cuda"):
        OptimizerProxy(tasks=["mlp"], steps=5, device="cuda").evaluate(prog("adamw"))


# lr * 300 * g: fine at small base lrs, diverges at 0.1 (a program that needs its lr tuned)
HOT = "def train(w, g, m, v, lr):\n  a = lr * 300.0\n  update = g * a\n  return update, m, v\n"
GRID = {"tasks": ["mlp", "regress"], "steps": 12, "lr": 0.01, "lr_grid": [0.001, 0.1]}


def test_lr_grid_scores_each_task_at_its_best_lr_as_separate_runs_would():
    ev = OptimizerProxy(**GRID)
    assert ev.lrs == [0.001, 0.01, 0.1] and ev.fidelity()["lr_grid"] == [0.001, 0.1]
    assert ev.probe_domain()["lr"][1] == 0.1  # the probe covers the largest lr trained at
    assert "lr_grid" not in OptimizerProxy(tasks=["mlp"], lr_grid=[0.01]).options()  # = lr: no grid
    assert ev.evaluate(prog("adamw"))["val_loss"] == 1.0
    single = {g: OptimizerProxy(**{**GRID, "lr": g, "lr_grid": None}) for g in ev.lrs}
    for text in (HOT, "sgd", "lion"):
        out = ev.evaluate(prog(text))
        assert math.isfinite(out["val_loss"])
        rel = []
        for task in GRID["tasks"]:
            runs = {g: e.details(prog(text))[task] for g, e in single.items()}
            best_lr = min((d["loss"], g) for g, d in runs.items() if not d["diverged"])[1]
            best_adamw = min(e.adamw(task)[0] for e in single.values())
            assert out[f"lr_{task}"] == best_lr and out[f"loss_{task}"] == runs[best_lr]["loss"]
            rel.append(runs[best_lr]["loss"] / best_adamw)
        assert out["val_loss"] == pytest.approx(sum(rel) / len(rel), rel=1e-12)
    assert single[0.1].details(prog(HOT))["mlp"]["diverged"]  # only tuning keeps HOT alive
    assert ev.evaluate(prog(HOT))["lr_mlp"] < 0.1
    assert math.isnan(ev.evaluate(prog(DIVERGING))["val_loss"]) and "at every lr" in ev.last_diverged


def test_lr_grid_batched_path_equals_the_reference_path():
    texts = ["adamw", "lion", "sgd", HOT, DIVERGING, "rmsprop"]
    ref = OptimizerProxy(**GRID)
    res = OptimizerProxy(**GRID, batch=8, screen=3).evaluate_batch([prog(t) for t in texts])
    for text, r in zip(texts, res):
        want = ref.evaluate(prog(text))
        if math.isnan(want["val_loss"]):
            assert math.isnan(r.objectives["val_loss"]) and "at every lr" in r.info["diverged"]
            continue
        assert r.objectives["val_loss"] == pytest.approx(want["val_loss"], rel=1e-4)
        assert all(r.objectives[f"lr_{t}"] == want[f"lr_{t}"] for t in GRID["tasks"])
    assert res[0].objectives["val_loss"] == 1.0 and res[4].info["screened"] and res[4].cost_s < res[0].cost_s


def test_lr_grid_is_checked():
    for bad in ("0.1", [0.0], [float("nan")], ["x"]):
        with pytest.raises(ConfigError, match="lr_grid"):
            OptimizerProxy(tasks=["mlp"], lr_grid=bad)


def test_heldout_score_uses_the_same_tuning_rule():
    h = heldout_score(HOT, steps=12, tasks=["mlp"], grid=[0.001, 0.1])
    d = h["tasks"]["mlp"]
    assert d["lr"] in (0.001, 0.01) and d["per_lr"][0.1]["diverged"] and math.isfinite(h["score"])
    assert h["score"] == pytest.approx(OptimizerProxy(**{**GRID, "tasks": ["mlp"]}).evaluate(prog(HOT))["val_loss"],
                                       rel=1e-12)
