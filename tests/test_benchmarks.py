"""Every benchmark script imports and explains itself (the measurements themselves are run by hand)."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_benchmark_help(script):
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_core_throughput_runs_small(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "core_throughput.py"), "--candidates", "300",
                        "--hash-samples", "20", "--repeats", "1",
                        "--output", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cand/s" in r.stdout and "functional us" in r.stdout
    assert (tmp_path / "out.json").exists()
