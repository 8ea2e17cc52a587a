"""docs/python-api.md is a notebook: its Python cells run literally, in order, in one fresh
directory (each as its own script, sharing only the files earlier cells wrote)."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "python-api.md")


def test_python_api_walkthrough_runs_in_order(tmp_path):
    cells = re.findall(r"```python\n(.*?)```", open(DOC).read(), re.S)
    assert len(cells) >= 5
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    outputs = []
    for i, cell in enumerate(cells):
        script = tmp_path / f"cell{i}.py"
        script.write_text(cell)
        r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env=env)
        assert r.returncode == 0, f"docs/python-api.md cell {i} failed:\n{cell}\n{r.stderr}"
        outputs.append(r.stdout)
    # what the cells claim happened, happened
    assert "60 evaluations" in outputs[0]
    assert (tmp_path / "runs" / "py-api" / "progress.png").stat().st_size > 0
    assert "loss after 100 steps" in outputs[2]
    assert "rows logged" in outputs[4] and (tmp_path / "results.csv").exists()
