"""The Python API (issue 11, items 1-3): a typed search() taking names or objects and returning a
Run; load_run; ask/tell; callbacks; overwrite; objects shipped to worker processes; all-failed
runs; resume refusing changed options; a finished run saying so."""
import inspect
import json
import os
import re
import subprocess
import sys
import threading

import pytest

import automl
from automl.errors import CallbackError, ConfigError, RunDirError, SearchFailed
from automl.lock import RunLock
from automl.testing.toys import Quadratic, ToySpace
from ray_fixtures import ray_session  # noqa: F401  (session-scoped fixture, shared with test_ray_runner)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def toy_objective(genome):
    return float((genome - 37) ** 2)


# --- 1. a typed, documented signature; py.typed ---------------------------------------------------------

def test_search_has_a_typed_signature_and_the_package_is_typed():
    sig = inspect.signature(automl.search)
    kinds = {p.kind for p in sig.parameters.values()}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
    for name in ("space", "evaluator", "strategy", "budget", "seed", "out", "callbacks", "overwrite", "objectives",
                 "direction", "workers"):
        assert name in sig.parameters and sig.parameters[name].annotation is not inspect.Parameter.empty, name
    assert "Run" in str(sig.return_annotation)
    doc = automl.search.__doc__
    assert "callable" in doc and "overwrite" in doc and "callbacks" in doc
    assert os.path.isfile(os.path.join(os.path.dirname(automl.__file__), "py.typed"))
    assert automl.reproduce and automl.load_run and automl.Run and automl.create_run


# --- 1. names or objects ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["class", "instance", "callable"])
def test_evaluator_class_instance_or_callable_is_accepted(tmp_path, kind):
    evaluator = {"class": Quadratic, "instance": Quadratic(), "callable": toy_objective}[kind]
    run = automl.search(ToySpace(n=100, m=100), evaluator, "random", budget=12, seed=0, out=tmp_path / "r")
    assert isinstance(run, automl.Run)
    recs = run.candidates()
    assert len(recs) >= 12 and all(r["status"] == "ok" for r in recs)
    objective = "value" if kind == "callable" else "loss"
    best = min(recs, key=lambda r: r["objectives"][objective])
    assert run.best["id"] == best["id"] and run.best["value"] == best["objectives"][objective]
    cfg = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert cfg["objectives"] == [{"name": objective, "direction": "min"}]
    assert cfg["evaluator"]["kind"] == ("callable" if kind == "callable" else "object")
    if kind == "callable":
        assert cfg["evaluator"]["name"] == "callable:test_api.toy_objective"


def test_a_callable_returning_a_dict_names_objectives_and_direction_applies(tmp_path):
    def f(g):
        return {"acc": float(g % 10), "size": float(g), "note": "kept"}

    run = automl.search(ToySpace(n=50, m=50), f, "random", budget=10, seed=1, out=tmp_path / "r",
                        objectives={"acc": "maximize", "size": "min"})
    ok = run.candidates("ok")
    assert ok and all(set(r["objectives"]) == {"acc", "size"} for r in ok)
    assert all(r["info"] == {"note": "kept"} for r in ok if r["charged"])  # extra keys: logged with the evaluation
    assert run.best["value"] == max(r["objectives"]["acc"] for r in ok)
    front = run.pareto_front
    assert front and all(not any(o["objectives"]["acc"] >= r["objectives"]["acc"] and o["objectives"]["size"]
                                 <= r["objectives"]["size"] and o is not r and o["objectives"] != r["objectives"]
                                 for o in ok) for r in front)
    run = automl.search(ToySpace(n=50, m=50), toy_objective, "random", budget=5, seed=1, out=tmp_path / "m",
                        direction="max")
    assert run.best["value"] == max(r["objectives"]["value"] for r in run.candidates("ok"))
    with pytest.raises(ConfigError, match="not an automl.Evaluator subclass"):
        automl.search(ToySpace(), dict, budget=3, out=tmp_path / "bad")
    with pytest.raises(ConfigError, match="evaluator option 'data' is a set, not JSON.*functools.partial"):
        automl.search(ToySpace(), lambda g, data: 1.0, budget=3, out=tmp_path / "bad", evaluator_options={"data": {1}})
    with pytest.raises(ConfigError, match="objectives/direction apply to a callable"):
        automl.search("expressions", "symbolic-regression", budget=3, direction="max", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # refused before the folder is made


def test_a_dict_without_declared_objectives_fails_with_a_message_naming_them(tmp_path):
    with pytest.raises(SearchFailed, match=r"declare the objectives.*objectives=\{'acc': 'min'\}"):
        automl.search(ToySpace(), lambda g: {"acc": 1.0}, "random", budget=5, out=tmp_path / "r")


# --- 1. Run and load_run ---------------------------------------------------------------------------------

def test_run_and_load_run_read_the_same_folder(tmp_path):
    run = automl.search("expressions", "symbolic-regression", "evolution", budget=25, seed=0, out=tmp_path / "sr",
                        strategy_options={"population_size": 8, "tournament_size": 3})
    assert run["stop_reason"] == "budget" and run["charged_evaluations"] == 25  # the summary dict, as before
    assert "best" in run and run.get("nope", 7) == 7
    loaded = automl.load_run(tmp_path / "sr")
    assert isinstance(loaded, automl.Run) and loaded.best == run.best and loaded.best["value"] == run["best"]["value"]
    assert loaded.summary["stop_reason"] == "budget" and loaded.summary["charged_evaluations"] == 25
    assert [o.name for o in loaded.objectives] == ["mse", "size"]
    assert len(loaded.candidates()) == run["candidates"] and loaded.pareto_front
    rows = loaded.reproduce(top=2)
    assert rows and rows[0]["id"] == run.best["id"] and "simplified" in rows[0]
    with pytest.raises(TypeError, match="read_run"):
        meta, recs = loaded  # the old (meta, records) tuple says where it went
    meta, recs = automl.read_run(tmp_path / "sr")
    assert meta["config"]["evaluator"]["name"] == "symbolic-regression" and len(recs) == run["candidates"]
    with pytest.raises(RunDirError, match="not a run directory"):
        automl.load_run(tmp_path)


def test_to_dataframe_has_a_column_per_objective(tmp_path):
    pd = pytest.importorskip("pandas")
    run = automl.search(ToySpace(n=30, m=30), toy_objective, "random", budget=8, out=tmp_path / "r")
    df = run.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(run.candidates())
    assert df["value"].min() == run.best["value"] and {"id", "candidate", "status", "cache"} <= set(df.columns)


def test_to_dataframe_without_pandas_names_what_to_install(tmp_path, monkeypatch):
    run = automl.search(ToySpace(n=30, m=30), toy_objective, "random", budget=3, out=tmp_path / "r")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(ImportError, match=r"needs pandas.*pip install 'automl-evo\[dataframe\]'"):
        run.to_dataframe()


def test_load_run_imports_no_code_named_in_the_folder(tmp_path):
    automl.search(ToySpace(n=30, m=30), toy_objective, "random", budget=3, out=tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    meta["config"]["evaluator"] = {"name": "os:system", "options": {"command": f"touch {tmp_path / 'pwned'}"}}
    (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
    run = automl.load_run(tmp_path / "r")
    assert run.best is not None and len(run.candidates()) >= 3
    assert not (tmp_path / "pwned").exists()


# --- 1. ask/tell -----------------------------------------------------------------------------------------

def test_ask_tell_goes_through_the_cache_and_the_log(tmp_path):
    seen = []
    with automl.create_run(ToySpace(n=40, m=20), "random", objectives={"loss": "min"}, seed=3,
                           out=tmp_path / "at", max_candidates=60, callbacks=[lambda run, rec: seen.append(rec)]) as run:
        told = []
        while (trial := run.ask()) is not None:
            # k and k+20 compute the same: only one of each pair is ever handed out
            rec = run.tell(trial, float(trial.genome % 20) if trial.genome % 20 % 7 else RuntimeError("boom"))
            told.append(trial.genome % 20)
            assert rec["id"] == trial.id and rec["cache"] == "miss"
        with pytest.raises(ConfigError, match="not asked"):
            run.tell(trial_id := 10_000, 1.0)  # noqa: F841
    assert len(told) == len(set(told)) > 10  # every function asked once; the rest answered by the cache
    recs = automl.load_run(tmp_path / "at").candidates()
    assert len(recs) == 60 == len(seen) and {r["cache"] for r in recs} == {"miss", "hit"}
    assert sum(r["charged"] for r in recs) == len(told)
    assert {r["status"] for r in recs if int(r["candidate"]) % 20 % 7 == 0} == {"failed"}
    assert automl.load_run(tmp_path / "at").best["value"] == 1.0
    with pytest.raises(ConfigError, match="needs it again"):  # a space object is never stored
        automl.create_run(out=tmp_path / "at", resume=True)
    with pytest.raises(ConfigError, match="space option n: 40 -> 41"):
        automl.create_run(ToySpace(n=41, m=20), out=tmp_path / "at", resume=True)
    with pytest.raises(ConfigError, match="ask/tell run: reopen it with automl.create_run"):
        automl.search(ToySpace(n=40, m=20), out=tmp_path / "at", resume=True)
    with automl.create_run(ToySpace(n=40, m=20), out=tmp_path / "at", resume=True, max_candidates=500) as again:
        t = again.ask()  # ids continue; known functions are still answered by the cache
        assert t is not None and t.id >= 60 and t.genome % 20 not in told
        with pytest.raises(ConfigError, match="the value given to run.tell.. is a dict with keys"):
            again.tell(t, {"wrong": 1.0})  # refused, nothing logged
        with pytest.raises(ConfigError, match="the value given to run.tell.. is a NoneType"):
            again.tell(t, None)
        again.tell(t, 2.0)
    assert len(automl.load_run(tmp_path / "at").candidates()) == t.id + 1


def test_ask_tell_holds_the_lock_until_closed(tmp_path):
    run = automl.create_run(ToySpace(), "random", out=tmp_path / "at")
    with pytest.raises(RunDirError, match="in use"):
        automl.search(ToySpace(), toy_objective, budget=2, out=tmp_path / "at", overwrite=True)
    run.close()
    with pytest.raises(ConfigError, match="create_run"):
        run.ask()


# --- 1. callbacks ----------------------------------------------------------------------------------------

def test_callbacks_see_every_record_and_an_exception_stops_the_run_cleanly(tmp_path):
    class Tracker:
        def __init__(self):
            self.ids = []

        def on_result(self, run, record):
            assert isinstance(run, automl.Run)
            self.ids.append(record["id"])

    t, plain = Tracker(), []
    run = automl.search(ToySpace(), toy_objective, "random", budget=10, out=tmp_path / "ok",
                        callbacks=[t, lambda run, rec: plain.append(rec["status"])])
    assert t.ids == [r["id"] for r in run.candidates()] and len(plain) == len(t.ids)

    with pytest.raises(ConfigError, match="a callback must be callable"):
        automl.search(ToySpace(), toy_objective, budget=3, out=tmp_path / "bad", callbacks=["print"])
    assert not (tmp_path / "bad").exists()

    def explode(run, record):
        if record["id"] == 4:
            raise ValueError("tracker is down")

    with pytest.raises(CallbackError, match="tracker is down.*candidate #4") as exc:
        automl.search(ToySpace(), toy_objective, "random", budget=50, out=tmp_path / "cb", callbacks=[explode])
    assert isinstance(exc.value.__cause__, ValueError)
    assert len(automl.load_run(tmp_path / "cb").candidates()) == 5  # kept, and nothing after the error
    assert not (tmp_path / "cb" / ".lock").exists()
    again = automl.search(ToySpace(), toy_objective, out=tmp_path / "cb", resume=True)  # resumable
    assert again["charged_evaluations"] == 50


# --- 1. overwrite ----------------------------------------------------------------------------------------

def test_overwrite_replaces_only_a_run_folder_and_never_a_locked_one(tmp_path):
    out = tmp_path / "r"
    automl.search(ToySpace(), toy_objective, "random", budget=6, out=out)
    (out / "progress.png").write_bytes(b"old plot")
    with pytest.raises(RunDirError, match="already holds a run.*overwrite"):
        automl.search(ToySpace(), toy_objective, "random", budget=3, out=out)
    run = automl.search(ToySpace(), toy_objective, "random", budget=3, out=out, overwrite=True)
    assert len(run.candidates()) == 3 and not (out / "progress.png").exists()
    with RunLock(str(out)):
        with pytest.raises(RunDirError, match="in use by pid"):
            automl.search(ToySpace(), toy_objective, budget=3, out=out, overwrite=True)
    assert len(automl.load_run(out).candidates()) == 3
    other = tmp_path / "mine"
    other.mkdir()
    (other / "run.json").write_text("{\"not\": \"a run\"}")
    (other / "notes.txt").write_text("precious")
    with pytest.raises(RunDirError, match="not a run description"):
        automl.search(ToySpace(), toy_objective, budget=3, out=other, overwrite=True)
    assert (other / "notes.txt").read_text() == "precious"
    r = _cli("search", "--space", "expressions", "--evaluator", "zero-cost", "--budget", "3", "--out", str(out),
             "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["config"]["evaluator"]["name"] == "zero-cost"


# --- 2. plugins anywhere ---------------------------------------------------------------------------------

def test_objects_and_closures_are_shipped_by_value_to_worker_processes(tmp_path):
    offset = 37  # a closure: plain pickle cannot ship it

    def objective(genome):
        return float((genome - offset) ** 2 + os.getpid() * 0)

    run = automl.search(ToySpace(n=60, m=60), objective, "random", budget=8, seed=0, out=tmp_path / "p", workers=2)
    recs = run.candidates()
    assert all(r["status"] == "ok" for r in recs) and len({r["worker"] for r in recs}) >= 1
    assert all(r["worker"] != os.getpid() for r in recs)  # evaluated in the workers
    assert run.best["value"] == min((g - 37) ** 2 for g in (int(r["candidate"]) for r in recs))

    lock = threading.Lock()

    def unshippable(genome):
        with lock:
            return 1.0

    with pytest.raises(ConfigError, match="cannot be sent to worker processes.*lock"):
        automl.search(ToySpace(), unshippable, budget=3, out=tmp_path / "u", workers=2)
    assert not (tmp_path / "u").exists()  # refused before the run started


@pytest.mark.ray
def test_a_closure_reaches_ray_actors_by_value(ray_session, tmp_path):
    offset = 11

    def objective(genome):
        return float(abs(genome - offset))

    run = automl.search(ToySpace(n=40, m=40), objective, "random", budget=6, seed=0, out=tmp_path / "ray",
                        runner="ray", runner_options={"num_actors": 2})
    recs = [r for r in run.candidates() if r["charged"]]
    assert len(recs) == 6 and all(r["status"] == "ok" and isinstance(r["worker"], str) for r in recs)
    assert all(r["objectives"]["value"] == abs(int(r["candidate"]) - 11) for r in recs)


def test_an_evaluator_registered_in_a_script_works_with_workers(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text(
        "import automl\n"
        "from automl.testing.toys import ToySpace\n"
        "class Mine(automl.Evaluator):\n"
        "    objectives = {'loss': 'min'}\n"
        "    def evaluate(self, genome, space):\n"
        "        return {'loss': float(genome)}\n"
        "automl.register_evaluator('mine-in-a-script', Mine)\n"
        "automl.register_space('toy-in-a-script', ToySpace)\n"
        "if __name__ == '__main__':\n"
        "    run = automl.search('toy-in-a-script', 'mine-in-a-script', 'random', budget=6, out='runs/m', workers=2)\n"
        "    print(run['stop_reason'], run.best['value'], sorted({r['status'] for r in run.candidates()}))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr
    reason, best, statuses = r.stdout.split(" ", 2)
    assert reason == "budget" and statuses.strip() == "['ok']"
    # without the __main__ guard, spawned workers re-run the script: a clear error, not failed candidates
    script.write_text(script.read_text().replace("if __name__ == '__main__':", "if True:").replace("runs/m", "runs/m2"))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode != 0 and "call automl.search under `if __name__ == \"__main__\":`" in r.stderr


def test_a_search_whose_every_evaluation_fails_stops_early_with_exit_2(tmp_path):
    calls = []

    def broken(genome):
        calls.append(genome)
        raise RuntimeError("no such device")

    with pytest.raises(SearchFailed, match="every evaluation failed.*RuntimeError: no such device"):
        automl.search(ToySpace(), broken, "random", budget=100, out=tmp_path / "r")
    assert len(calls) == 10  # stopped after the first 10, not after 100
    assert len(automl.load_run(tmp_path / "r").candidates()) == 10
    with pytest.raises(SearchFailed):  # a short run that only failed is an error too
        automl.search(ToySpace(), broken, "random", budget=3, out=tmp_path / "short")
    # one success anywhere and failures are ordinary results
    run = automl.search(ToySpace(n=20, m=20), lambda g: 1.0 if g == 0 else 1 / 0, "random", budget=20,
                        out=tmp_path / "mixed", max_candidates=60)
    assert run.best is not None
    r = _cli("search", "--space", "plugins_for_tests:ToySpace", "--evaluator", "plugins_for_tests:Quadratic",
             "--evaluator-opt", "fail_on=" + json.dumps(list(range(200))), "--strategy", "random", "--budget", "50",
             "--out", str(tmp_path / "cli"), "--quiet", cwd=os.path.join(ROOT, "tests"))
    assert r.returncode == 2 and "every evaluation failed" in r.stderr and "Traceback" not in r.stderr


def test_device_cuda_on_a_cpu_box_is_an_error(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = _cli("search", "--space", "optimizer-programs", "--evaluator", "optimizer-proxy", "--device", "cuda",
             "--budget", "50", "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 2 and "every evaluation failed" in r.stderr and "cuda" in r.stderr


# --- 3. resume -------------------------------------------------------------------------------------------

def test_resume_refuses_changed_options_listing_old_and_new(tmp_path):
    out = str(tmp_path / "r")
    r = _cli("search", "--space", "expressions", "--evaluator", "symbolic-regression", "--budget", "10",
             "--population", "12", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    for flags, expect in ((["--seed", "3"], ["seed: 0 -> 3"]),
                          (["--population", "16", "--evaluator-opt", "target=nguyen2"],
                           ["strategy option population_size: 12 -> 16",
                            "evaluator option target: 'x**3 + x**2 + x' -> 'nguyen2'"])):
        r = _cli("search", "--resume", out, "--budget", "20", *flags)
        assert r.returncode == 2 and all(e in r.stderr for e in expect), (flags, r.stderr)
        assert "budget, seconds, max_candidates, stall, workers, runner" in r.stderr
    for kw, expect in (({"cache_policy": "aggregating:2"}, "cache_policy: deterministic -> aggregating(k=2)"),
                       ({"dedupe": "structural"}, "dedupe: 'functional' -> 'structural'"),
                       ({"probe_seed": 5}, "probe_seed: None -> 5"),
                       ({"strategy_options": {"tournament_size": 3}}, "strategy option tournament_size: 10 -> 3"),
                       ({"space_options": {"max_depth": 3}}, "space option max_depth: 7 -> 3")):
        with pytest.raises(ConfigError, match=re.escape(expect)):
            automl.search(out=out, resume=True, budget=20, **kw)
    r = _cli("search", "--resume", out, "--budget", "20", "--seed", "0", "--population", "12", "--workers", "1")
    assert r.returncode == 0 and "20 charged evaluations" in r.stdout, r.stderr  # unchanged values are fine
    help_text = _cli("search", "--help").stdout
    assert "Safe to change on resume" in help_text and "--budget" in help_text
    automl.search(ToySpace(), toy_objective, budget=3, out=tmp_path / "c")
    with pytest.raises(ConfigError, match="needs it again"):  # a callable is never stored: it must be given again
        automl.search(out=tmp_path / "c", resume=True, budget=5)


def test_resuming_with_an_edited_function_is_refused(tmp_path):
    automl.search(ToySpace(), toy_objective, "random", budget=3, out=tmp_path / "c")

    def toy_objective_edited(genome):
        return float(genome)

    with pytest.raises(ConfigError, match="evaluator: 'callable:test_api.toy_objective' -> "):
        automl.search(ToySpace(), toy_objective_edited, out=tmp_path / "c", resume=True, budget=5)
    assert automl.search(ToySpace(), toy_objective, out=tmp_path / "c", resume=True, budget=5)["charged_evaluations"] == 5


def test_resuming_a_finished_run_says_nothing_to_do(tmp_path):
    out = str(tmp_path / "r")
    assert _cli("search", "--space", "expressions", "--evaluator", "zero-cost", "--budget", "5", "--out", out,
                "--quiet").returncode == 0
    r = _cli("search", "--resume", out)
    assert r.returncode == 0 and r.stdout.startswith("nothing to do: run finished") and "--budget" in r.stdout
    assert "hit rate" not in r.stdout  # no zero-hit summary
    run = automl.search(out=out, resume=True)
    assert run["stop_reason"] == "finished" and "nothing to do" in run["message"]
    assert automl.load_run(out).summary["charged_evaluations"] == 5  # the last real summary is kept
    assert automl.search(out=out, resume=True, budget=8)["charged_evaluations"] == 8  # a larger budget continues


def test_a_callables_cache_namespace_follows_its_code_and_bound_arguments(tmp_path):
    import functools

    from automl.evaluator import FunctionEvaluator

    def scaled(genome, scale):
        return float(genome) * scale

    a, b = FunctionEvaluator(functools.partial(scaled, scale=1.0)), FunctionEvaluator(functools.partial(scaled, scale=2.0))
    assert a.name == b.name == f"callable:{scaled.__module__}.{scaled.__qualname__}" and a.version != b.version
    cache = str(tmp_path / "shared.sqlite")  # one cache file: the second objective must not be served the first's
    automl.search(ToySpace(n=10, m=10), functools.partial(scaled, scale=1.0), "random", budget=5, seed=0,
                  cache=cache, out=tmp_path / "a")
    run = automl.search(ToySpace(n=10, m=10), functools.partial(scaled, scale=2.0), "random", budget=5, seed=0,
                        cache=cache, out=tmp_path / "b")
    recs = run.candidates()
    assert all(r["cache"] != "hit" or r["objectives"]["value"] == 2 * int(r["candidate"]) for r in recs)
    assert all(r["objectives"]["value"] == 2 * int(r["candidate"]) for r in recs if r["status"] == "ok")
