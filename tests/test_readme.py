"""The README's Python examples run as written (each block as a script, in a scratch directory)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "docs/programs.md", "docs/ray.md", "docs/core.md", "docs/hashing.md", "docs/supernets.md",
        "docs/hardware-aware.md", "docs/ensembles.md", "docs/batched-programs.md"]
BLOCKS = [(doc, i, block) for doc in DOCS
          for i, block in enumerate(re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, doc)).read(), re.S))]


@pytest.mark.parametrize("doc, i, block", BLOCKS, ids=[f"{d}-{i}" for d, i, _ in BLOCKS])
def test_documented_python_block_runs(doc, i, block, tmp_path):
    script = tmp_path / f"block{i}.py"
    script.write_text(block)
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{doc} python block {i} failed:\n{block}\n{r.stderr}"


def test_readme_main_job_runs(tmp_path):
    """The quick start's main job (the part after the install) works as written."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(l for l in readme.splitlines() if l.startswith("pip install -c constraints-cpu.txt -e . && "))
    job = line.split(" && ", 1)[1]
    assert job.startswith("automl search")
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    r = subprocess.run(["bash", "-c", job], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "charged evaluations" in r.stdout and "hit rate" in r.stdout and "best by" in r.stdout
