"""`automl dashboard RUN`: the run exported to Optuna and served by optuna-dashboard over HTTP."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import automl
from automl.cli import main
from automl.log import read_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nb201-demo"
    automl.search(space="nb201", evaluator="nb201-tabular", budget=15, seed=0, out=str(out), progress=False)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10.0) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_dashboard_serves_the_run_over_http(run_dir):
    pytest.importorskip("optuna_dashboard")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "automl.cli", "dashboard", str(run_dir), "--port", str(port),
                             "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                status, ctype, body = _get(f"{base}/api/studies", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.3)
        assert status == 200 and "json" in ctype
        studies = json.loads(body)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["nb201-demo"]
        # the study holds one trial per logged candidate, with the run's three objectives maximised
        detail = json.loads(_get(f"{base}/api/studies/{studies[0]['study_id']}")[2])
        records = read_records(str(run_dir))
        assert len(detail["trials"]) == len(records) and studies[0]["directions"] == ["maximize"] * 3
        shown = sorted(next(a["value"] for a in t["user_attrs"] if a["key"] == "candidate") for t in detail["trials"])
        assert shown == sorted(r["candidate"] for r in records)
        assert detail["objective_names"] == ["cifar10", "cifar100", "imagenet16"]
        # the page a browser opens, and the script it loads
        status, ctype, page = _get(f"{base}/dashboard/")
        assert status == 200 and ctype.startswith("text/html") and b"Optuna Dashboard" in page
        script = page.split(b'src="', 1)[1].split(b'"', 1)[0].decode()
        status, _, js = _get(base + script)
        assert status == 200 and len(js) > 10_000
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: stops the server, removes the temporary journal
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "serving at" in out and "dashboard stopped" in err


def test_dashboard_on_a_busy_port_is_one_clear_error(run_dir, capsys):
    pytest.importorskip("optuna_dashboard")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["dashboard", str(run_dir), "--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "--port" in err


def test_dashboard_without_optuna_dashboard_names_the_extra(run_dir, tmp_path):
    """Where optuna-dashboard is not installed (simulated by blocking its import), the command
    stops before serving, with exit 2 and the pip extra to install."""
    code = ("import sys; sys.modules['optuna_dashboard'] = None\n"
            "from automl.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "dashboard", str(run_dir), "--no-browser", "--port", "0"],
                       capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "automl dashboard needs optuna-dashboard" in r.stderr and "automl-evo[dashboard]" in r.stderr
    assert "Traceback" not in r.stderr
