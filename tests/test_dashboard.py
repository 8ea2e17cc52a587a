"""`automl dashboard RUN`: the run exported to Optuna and served by optuna-dashboard over HTTP."""
from __future__ import annotations

import json
import os
import shutil
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


@pytest.fixture(scope="module")
def served(run_dir):
    """`automl dashboard RUN` running in a subprocess: (base URL, process); stopped with Ctrl-C after
    the tests, which check that it stopped cleanly."""
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
                _get(f"{base}/api/studies", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.3)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: stops the server, removes the temporary journal
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "serving at" in out and "dashboard stopped" in err


def test_dashboard_serves_the_run_over_http(served, run_dir):
    base, _ = served
    status, ctype, body = _get(f"{base}/api/studies")
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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright if CHROMIUM else None


@pytest.mark.skipif(_playwright() is None, reason="needs playwright (pip) and a chromium binary (apt-get install "
                    "chromium)")
def test_dashboard_renders_the_study_in_a_headless_browser(served):
    """The served app runs in a real browser: it lists the run's study and opens it without a
    console error (the app fetches the study through the API the previous test read)."""
    base, _ = served
    errors = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/dashboard/", wait_until="networkidle")
            page.get_by_text("nb201-demo").first.wait_for(timeout=30_000)
            page.goto(f"{base}/dashboard/studies/0", wait_until="networkidle")
            page.get_by_text("Pareto Front").first.wait_for(timeout=30_000)  # three objectives: a front is drawn
            page.get_by_text("cifar100").first.wait_for(timeout=30_000)
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000


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
