"""Evaluations placed on CUDA through the local runners (`--device cuda`).  Skipped without CUDA."""
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

import automl  # noqa: E402
from automl.api import read_run  # noqa: E402


@pytest.mark.parametrize("workers", [1, 2])
def test_search_with_device_cuda_on_local_runners(tmp_path, workers):
    s = automl.search(space="optimizer-programs", evaluator="optimizer-proxy", budget=4, seed=0,
                      out=str(tmp_path / f"w{workers}"), workers=workers,
                      evaluator_options={"device": "cuda", "tasks": ["mlp"], "steps": 10},
                      strategy_options={"population_size": 4, "tournament_size": 2})
    meta, recs = read_run(s["run_dir"])
    assert meta["config"]["evaluator"]["options"]["device"] == "cuda"
    assert s["charged_evaluations"] == 4
    assert any(r["status"] == "ok" for r in recs)
    if workers > 1:
        assert {r.get("worker") for r in recs if r["charged"]} - {None}


def test_cli_device_flag_reaches_the_evaluator(tmp_path):
    from automl.cli import main

    out = str(tmp_path / "cli")
    assert main(["search", "--space", "optimizer-programs", "--evaluator", "optimizer-proxy", "--device", "cuda",
                 "--evaluator-opt", "tasks=[\"mlp\"]", "--evaluator-opt", "steps=10", "--budget", "2",
                 "--population", "2", "--tournament", "1", "--out", out, "--quiet"]) == 0
    meta, recs = read_run(out)
    assert meta["config"]["evaluator"]["options"]["device"] == "cuda" and recs
