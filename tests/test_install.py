"""Install weight and optional dependencies.

* The bare core (``pip install automl-evo``: numpy + xxhash + cloudpickle) installs into a fresh virtual
  environment without torch, ray or optuna, runs an NB201 search through the CLI, and weighs
  less than 100 MB (printed; README "Install").
* Every feature that needs an optional package, with that package missing, stops with exit 2 and
  the pip extra to install (packages are hidden from the import system in a subprocess, so these
  run in any environment).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "ray", "optuna", "scipy", "cmaes", "matplotlib", "numba", "tqdm", "networkx", "optuna_dashboard",
         "pandas")
# What pip itself needs from the network to build and install the project; without it, skip.
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                     r"resolution|Network is unreachable|No matching distribution found for (setuptools|numpy|xxhash)")


def _env(**extra):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), **extra)


def _blocked(modules, argv, cwd, timeout=180):
    """``automl ARGV`` in a subprocess where ``modules`` cannot be imported (as if not installed)."""
    code = ("import sys\n"
            f"for m in {list(modules)!r}: sys.modules[m] = None\n"
            "from automl.cli import main\nsys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd,
                          env=_env(), timeout=timeout)


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory):
    import automl

    out = tmp_path_factory.mktemp("runs") / "nb201"
    automl.search(space="nb201", evaluator="nb201-tabular", budget=10, seed=0, out=str(out), progress=False)
    return str(out)


@pytest.mark.parametrize("blocked, argv, extra", [
    (["optuna"], ["search", "--space", "nb201", "--evaluator", "nb201-tabular", "--strategy", "tpe", "--budget", "5",
                  "--out", "r"], "optuna"),
    (["cmaes"], ["search", "--space", "nb201", "--evaluator", "nb201-tabular", "--strategy", "cmaes", "--budget", "5",
                 "--out", "r"], "optuna"),
    (["torch"], ["search", "--space", "optimizer-programs", "--evaluator", "optimizer-proxy", "--budget", "2",
                 "--out", "r"], "torch"),
    (["torch"], ["search", "--space", "ofa-mbv3", "--evaluator", "ofa-hw", "--evaluator-opt", "latency=measured",
                 "--budget", "2", "--out", "r"], "torch"),
    (["ray"], ["search", "--space", "nb201", "--evaluator", "nb201-tabular", "--runner", "ray", "--budget", "5",
               "--out", "r"], "ray"),
    (["matplotlib"], ["plot", "{run}"], "plot"),
    (["optuna"], ["export-optuna", "{run}", "--storage", "s.journal"], "optuna"),
    (["torch"], ["supernet", "rank", "x.pt"], "torch"),
], ids=["tpe", "cmaes", "optimizer-proxy", "ofa-measured", "ray-runner", "plot", "export-optuna", "supernet-cmd"])
def test_a_missing_extra_is_one_clear_error_naming_it(blocked, argv, extra, nb201_run, tmp_path):
    r = _blocked(blocked, [a.replace("{run}", nb201_run) for a in argv], tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"pip install 'automl-evo[{extra}]'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()  # refused before a run directory is made


def test_listings_name_the_extra_a_plugin_needs(tmp_path):
    r = _blocked(["torch"], ["evaluators"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    for name in ("optimizer-proxy", "supernet", "ensemble-supernet"):
        assert "[not installed: pip install 'automl-evo[torch]']" in lines[name]
    for name in ("nb201-tabular", "nb101-tabular", "symbolic-regression", "ofa-hw"):
        assert "not installed" not in lines[name]
    r = _blocked(["optuna"], ["strategies"], tmp_path)
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert "automl-evo[optuna]" in lines["tpe"] and "not installed" not in lines["evolution"]


@pytest.mark.parametrize("blocked, code, needs", [
    (["torch"], "from search_spaces.programs.optim import ProgramOptimizer", "automl-evo[torch]"),
    (["torch"], "from search_spaces.cells.torch_cells import NB201Network", "automl-evo[torch]"),
    (["ray"], "from automl.integrations.tune import AutoMLSearcher", "automl-evo[ray]"),
    (["networkx"], "import automl, numpy; s = automl.get_space('nb201'); s.to_networkx(s.sample(numpy.random."
                   "default_rng(0)))", "automl-evo[networkx]"),
    (["optuna"], "from automl.strategies.optuna_sampler import TPE; TPE()", "automl-evo[optuna]"),
], ids=["ProgramOptimizer", "torch_cells", "tune", "to_networkx", "TPE"])
def test_python_imports_name_the_extra(blocked, code, needs, tmp_path):
    from automl.errors import MissingDependencyError

    src = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
           "from automl.errors import MissingDependencyError\n"
           f"try:\n    exec({code!r})\nexcept MissingDependencyError as e:\n    print('MISSING', e)\n")
    r = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MISSING") and needs in r.stdout, r.stdout
    assert issubclass(MissingDependencyError, ImportError)  # `except ImportError` still catches it


def test_progress_without_tqdm_falls_back_to_lines(tmp_path):
    """tqdm is the [progress] extra: without it a search on a terminal (stderr a pty, where the
    progress bar would be drawn) still runs and prints progress lines instead."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    code = ("import sys\nsys.modules['tqdm'] = None\nassert sys.stderr.isatty()\n"
            "from automl.cli import main\nsys.exit(main(sys.argv[1:]))")
    try:
        r = subprocess.run([sys.executable, "-c", code, "search", "--space", "nb201", "--evaluator", "nb201-tabular",
                            "--budget", "5", "--out", "r"], stdout=subprocess.PIPE, stderr=slave, text=True,
                           cwd=tmp_path, env=_env(), timeout=180)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the pty's other end is closed: all read
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    assert r.returncode == 0, err.decode(errors="replace")
    assert "5 charged evaluations" in r.stdout and b"Traceback" not in err


def _disk_mb(path: str) -> float:
    """Disk usage of a tree in MiB, as ``du -sm`` counts it (allocated blocks)."""
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            total += st.st_blocks * 512
    return total / 2**20


def _site_packages(env_dir: str) -> str:
    out = subprocess.run([os.path.join(env_dir, "bin", "python"), "-c", "import sysconfig; "
                          "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout")
def test_bare_core_installs_without_torch_ray_optuna_and_runs_nb201(tmp_path):
    env_dir = str(tmp_path / "venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = os.path.join(env_dir, "bin", "python")
    site = _site_packages(env_dir)
    baseline = _disk_mb(site)  # pip (and setuptools where the venv ships it)
    src = tmp_path / "src"  # a clean copy: no build/ or egg-info of the developer's checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "runs", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".mypy_cache", ".ruff_cache",
                                                             "benchmarks", "tests", "docs"))
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([py, "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True, env=clean,
                       timeout=600)
    if r.returncode != 0 and OFFLINE.search(r.stderr):
        pytest.skip(f"no package index reachable to install numpy/xxhash: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    # nothing heavy came along
    probe = ("import importlib.util, json, sys; import automl; "
             f"print(json.dumps([[m for m in {list(HEAVY)!r} if importlib.util.find_spec(m)], "
             "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'optuna'))]))")
    r = subprocess.run([py, "-c", probe], capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    installed, imported = json.loads(r.stdout)
    assert installed == [] and imported == []
    # the CLI runs an NB201 search and reports on it
    automl_bin = os.path.join(env_dir, "bin", "automl")
    r = subprocess.run([automl_bin, "search", "--space", "nb201", "--evaluator", "nb201-tabular", "--budget", "40",
                        "--seed", "0", "--out", "runs/nb201"], capture_output=True, text=True, env=clean,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "40 charged evaluations" in r.stdout and "best #" in r.stdout
    r = subprocess.run([automl_bin, "show", "runs/nb201"], capture_output=True, text=True, env=clean, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0 and "hit rate" in r.stdout, r.stderr
    # a feature of an extra says which one, in the real bare install too
    r = subprocess.run([automl_bin, "search", "--space", "optimizer-programs", "--evaluator", "optimizer-proxy",
                        "--budget", "2", "--out", "runs/opt"], capture_output=True, text=True, env=clean, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 2 and "pip install 'automl-evo[torch]'" in r.stderr, r.stderr
    total = _disk_mb(site)
    core = total - baseline
    per = {name: _disk_mb(os.path.join(site, name)) for name in sorted(os.listdir(site))
           if os.path.isdir(os.path.join(site, name)) and not name.endswith(".dist-info")}
    top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:6])
    print(f"\nbare core install: {core:.1f} MiB in site-packages ({total:.1f} MiB with pip/setuptools "
          f"{baseline:.1f} MiB); largest: {top}")
    assert core < 100, f"the bare core install weighs {core:.1f} MiB (goal < 100 MiB)"


def test_the_extras_table_matches_pyproject():
    """automl/_optional.py names, for each optional package, the extra that installs it: that extra
    exists in pyproject.toml and lists the package, and [all] holds every extra but test."""
    tomllib = pytest.importorskip("tomllib")
    from automl._optional import EXTRAS

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    extras = project["optional-dependencies"]
    assert [re.split(r"[<>=;\[ ]", d)[0] for d in project["dependencies"]] == ["numpy", "xxhash", "cloudpickle"]
    for module, (extra, dist) in EXTRAS.items():
        names = {re.split(r"[<>=;\[ ]", d)[0] for d in extras[extra]}
        assert dist.partition("[")[0] in names, f"{module}: [{extra}] does not install {dist}"
    everything = re.fullmatch(r"automl-evo\[(.*)\]", extras["all"][0]).group(1).split(",")
    assert len(extras["all"]) == 1 and set(everything) == set(extras) - {"all", "test"}
