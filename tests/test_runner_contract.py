"""The runner contract, run on every local runner (the Ray runner adds itself in its own tests)."""
import pytest

import contracts
from automl import registry

RUNNERS = {"serial": {}, "process": {"workers": 2}}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request):
    return registry.create("runner", request.param, **RUNNERS[request.param])


def test_runner_basic(runner):
    contracts.runner_contract_basic(runner)


def test_runner_timeout(runner):
    contracts.runner_contract_timeout(runner)


def test_process_pool_retries_a_dead_worker_then_fails(tmp_path):
    from automl.runners.base import PluginSpec

    r = registry.create("runner", "process", workers=2, max_retries=1)
    r.start(PluginSpec("plugins_for_tests:ToySpace", {}),
            PluginSpec("plugins_for_tests:Quadratic", {"exit_on": [3], "counter_dir": str(tmp_path)}))
    try:
        r.submit(1, "3")
        got = {}
        while len(got) < 1:
            got.update(dict(r.poll(timeout=60)))
        assert "died" in got[1]["error"] and got[1]["attempts"] == 2
        r.submit(2, "4")  # the rebuilt pool still works
        while len(got) < 2:
            got.update(dict(r.poll(timeout=60)))
        assert got[2]["objectives"]["loss"] == (4 - 42) ** 2 / 100.0
    finally:
        r.close()
    evaluated_3 = [f for f in tmp_path.iterdir() if f.name.startswith("3-")]
    assert len(evaluated_3) == 2  # first try + one retry, then given up
