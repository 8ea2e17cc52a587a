"""The command line as a user meets it: exit codes, messages without tracebacks, show and plot."""
import json
import os
import subprocess
import sys

import pytest

from automl.cli import main


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("args, message", [
    (["search", "--space", "nope", "--budget", "5"], "unknown space 'nope'"),
    (["search", "--budget", "5", "--evaluator", "nope"], "unknown evaluator 'nope'"),
    (["search"], "give a budget"),
    (["search", "--budget", "5", "--cache-policy", "sometimes"], "bad cache policy"),
    (["search", "--budget", "5", "--population", "0"], "population_size"),
    (["search", "--budget", "5", "--strategy-opt", "oops"], "key=value"),
    (["search", "--resume"], "--resume needs the run directory"),
    (["search", "--resume", "/nonexistent/run"], "not a run directory"),
    (["search", "--budget", "5", "--space", "expressions", "--strategy", "tpe"], "exposes no parameters"),
    (["show", "/nonexistent/run"], "not a run directory"),
    (["hash", "--space", "expressions", "x +* 2"], "line 1"),
])
def test_bad_input_names_the_problem_without_traceback(args, message, tmp_path):
    code, out, err = cli(*args, *(["--out", str(tmp_path / "r")] if args[0] == "search" and "--resume" not in args
                                  else []))
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_flag_is_an_argparse_error():
    code, _, err = cli("search", "--no-such-flag")
    assert code == 2 and "unrecognized arguments" in err and "Traceback" not in err


def test_search_show_plot_and_cache_reuse(tmp_path):
    out1, out2 = str(tmp_path / "a"), str(tmp_path / "b")
    base = ["search", "--space", "expressions", "--evaluator", "symbolic-regression", "--max-candidates", "400",
            "--seed", "1"]
    code, out, err = cli(*base, "--out", out1)
    assert code == 0, err
    assert "charged evaluations" in out and "hit rate" in out
    code, out, _ = cli("show", out1)
    assert code == 0 and "hit rate" in out and "evaluations saved" in out and "best by mse" in out
    code, out, _ = cli("show", out1, "--json")
    s = json.loads(out)
    assert s["candidates"] == 400 and s["cache"]["hit"] + s["cache"]["miss"] + s["cache"]["partial"] == 400
    code, out, _ = cli("plot", out1)
    assert code == 0 and os.path.getsize(out.strip()) > 10_000
    # the same search again with the first run's cache evaluates nothing new
    code, out, err = cli(*base, "--out", out2, "--cache", os.path.join(out1, "cache.sqlite"))
    assert code == 0, err
    assert "0 charged evaluations" in out


def test_listing_commands(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("expressions", "nb201", "nb101", "optimizer-programs"):
        assert name in out
    assert main(["evaluators"]) == 0
    assert "symbolic-regression" in capsys.readouterr().out
    assert main(["strategies"]) == 0
    assert "tpe" in capsys.readouterr().out


def test_hash_command_equates_equivalent_text(capsys):
    main(["hash", "--space", "expressions", "x*2"])
    a = capsys.readouterr().out.split()
    main(["hash", "--space", "expressions", "x+x"])
    b = capsys.readouterr().out.split()
    assert a[3] == b[3] and a[1] != b[1]  # same function, different structure


def test_help_explains_every_command():
    code, out, _ = cli("--help")
    for cmd in ("search", "show", "plot", "spaces", "evaluators", "hash"):
        assert cmd in out
    code, out, _ = cli("search", "--help")
    assert "--resume" in out and "--cache" in out and "charged evaluations" in out


def test_simplify_and_reproduce_programs(tmp_path):
    prog = tmp_path / "p.txt"
    prog.write_text("def train(w, g, m, v, lr):\n  c = interp(g, m, 0.9)\n  junk = exp(w)\n  update = sign(c)\n"
                    "  m = interp(g, m, 0.99)\n  v = v + g\n  update = update * lr\n  return update, m, v\n")
    code, out, err = cli("simplify", "--space", "optimizer-programs", str(prog))
    assert code == 0, err
    assert "junk" not in out and "exp" not in out and "v + g" not in out and "sign(c)" in out
    import automl

    assert automl.functional_hash(out, space="optimizer-programs") == \
        automl.functional_hash(prog.read_text(), space="optimizer-programs")

    run_dir = str(tmp_path / "progs")
    automl.search(space="optimizer-programs", evaluator="zero-cost", budget=30, out=run_dir,
                  strategy_options={"population_size": 10, "tournament_size": 2})
    code, out, err = cli("reproduce", run_dir, "--top", "2")
    assert code == 0, err
    assert out.count("def train(") == 2 and "# 1. candidate #" in out
    from search_spaces.programs.optim import ProgramOptimizer
    import torch

    text = out.split("\n", 1)[1].split("# 2.")[0]
    ProgramOptimizer([torch.nn.Parameter(torch.zeros(3))], text, lr=0.1)  # reproduces as an optimizer


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    import signal
    import time

    out = str(tmp_path / "int")
    p = subprocess.Popen([sys.executable, "-m", "automl.cli", "search", "--space", "expressions", "--evaluator",
                          "sleep", "--evaluator-opt", "seconds=0.05", "--workers", "2", "--budget", "100", "--out",
                          out, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    log = os.path.join(out, "candidates.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(log) and sum(1 for _ in open(log)) >= 10):
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "--resume" in err and "Traceback" not in err
    code, stdout, _ = cli("search", "--resume", out, "--quiet")
    assert code == 0 and "stopped (budget)" in stdout
