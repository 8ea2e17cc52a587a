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


def test_runners_take_specs_only_and_specs_carry_the_callers_object():
    """Runner.start takes two PluginSpecs and a timeout (no parallel "local instance" arguments):
    a spec may carry the caller's own object, which in-process runners reuse as is, and which is
    pickled to workers only when a worker could not rebuild the plugin by name."""
    import inspect
    import pickle

    from automl.runners.base import PluginSpec, Runner
    from automl.testing.toys import Quadratic, ToySpace

    for cls in [Runner] + [type(registry.create("runner", n, **RUNNERS.get(n, {}))) for n in ("serial", "process")]:
        assert list(inspect.signature(cls.start).parameters) == ["self", "space", "evaluator", "timeout"], cls
    registry.register_evaluator("quadratic-object-for-spec-test", Quadratic)
    try:
        ev = Quadratic(nan_on=[4])
        by_name = PluginSpec("plugins_for_tests:Quadratic", {"nan_on": [4]}).with_instance(ev)
        assert by_name.build("evaluator") is ev                               # in process: the very object
        copy = pickle.loads(pickle.dumps(by_name))
        assert copy.instance is None and copy == by_name                      # a worker rebuilds it by name
        assert copy.build("evaluator").nan_on == {4} and copy.build("evaluator") is not ev
        ev.name = "quadratic-object-for-spec-test"                            # registered as an object at run time
        shipped = pickle.loads(pickle.dumps(PluginSpec.of(ev, "evaluator")))
        assert shipped.instance is not None and shipped.build("evaluator").nan_on == {4}
        space = ToySpace(n=50)
        spec = PluginSpec.of(space, "space")
        assert spec.build("space") is space and spec.options == {"n": 50, "m": 100}
    finally:
        registry._registry["evaluator"].pop("quadratic-object-for-spec-test", None)


def test_serial_runner_reuses_the_callers_objects():
    from automl.runners.base import PluginSpec
    from automl.testing.toys import Quadratic, ToySpace

    space, ev = ToySpace(), Quadratic()
    r = registry.create("runner", "serial")
    r.start(PluginSpec.of(space, "space"), PluginSpec.of(ev, "evaluator"))
    assert r.space is space and r.evaluator is ev
    r.submit(0, "42")
    (tid, raw), = r.poll()
    assert tid == 0 and raw["objectives"]["loss"] == 0.0
