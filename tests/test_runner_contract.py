"""The runner contract, run on every local runner (the Ray runner adds itself in its own tests)."""
import pytest

from automl.testing import contracts
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


def test_process_pool_stops_an_evaluation_deaf_to_its_alarm(tmp_path):
    import time

    from automl.runners.base import PluginSpec

    # every evaluation sleeps 1.5 s (within its 2 s limit); "5" then hangs with SIGALRM blocked
    # (no signal is used anyway): its worker is killed at 2 s while "6", on the other worker, runs on
    r = registry.create("runner", "process", workers=2)
    r.start(PluginSpec("plugins_for_tests:ToySpace", {}),
            PluginSpec("plugins_for_tests:Quadratic", {"deaf_hang_on": [5], "sleep": 1.5,
                                                       "counter_dir": str(tmp_path)}), timeout=2.0)
    try:
        t0 = time.monotonic()
        r.submit(1, "5")
        assert r.poll(timeout=2.0) == []
        r.submit(2, "6")
        got = {}
        while len(got) < 2:
            got.update(dict(r.poll(timeout=30)))
        assert "timed out after 2 s" in got[1]["error"] and "worker killed" in got[1]["error"]
        assert got[2]["error"] is None and got[2]["attempts"] == 1
        assert time.monotonic() - t0 < 15
        assert len([f for f in tmp_path.iterdir() if f.name.startswith("6-")]) == 1  # untouched by the kill
        r.submit(3, "7")  # the replaced worker works
        while len(got) < 3:
            got.update(dict(r.poll(timeout=30)))
        assert got[3]["error"] is None
    finally:
        r.close()
