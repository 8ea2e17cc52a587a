"""The README's Python examples run as written (each block as a script, in a scratch directory)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "README.md")).read(), re.S)


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_python_block_runs(i, tmp_path):
    script = tmp_path / f"block{i}.py"
    script.write_text(BLOCKS[i])
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"README python block {i} failed:\n{BLOCKS[i]}\n{r.stderr}"


def test_readme_main_job_runs(tmp_path):
    """The quick start's main job (the part after the install) works as written."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(l for l in readme.splitlines() if l.startswith("pip install -c constraints-cpu.txt -e . && "))
    job = line.split(" && ", 1)[1]
    assert job.startswith("automl search")
    r = subprocess.run(["bash", "-c", job], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "charged evaluations" in r.stdout and "hit rate" in r.stdout and "best by" in r.stdout
