"""The README and every docs/*.md page run literally, in order, as a reader would: each document's
```bash and ```python blocks are executed one after the other in a fresh, empty directory of its
own (so a later block may use a run an earlier block made, and a block that reuses a run folder
it did not mean to is caught).

* A block that must not run here is marked on the line just before its fence with
  ``<!-- doc-test: skip: REASON -->`` (a GPU, a cluster, a download, the reference data in
  /work/shared, a server that runs until Ctrl-C, a multi-minute protocol).  The reason is required,
  and a block that is run may not read /work/shared (tests never depend on it).
* ``pip install ...`` commands are not run (the test environment is the installed project); the
  extras and constraint files they name are checked against pyproject.toml instead, and the rest
  of their line (after ``&&``) runs.
* Other fences (```text, plain ```) are output or diagrams and are not run.
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->")
BLOCK_TIMEOUT_S = 300


def blocks(doc: str) -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, skip reason or None) of each runnable block of ``doc``, in order."""
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    out = []
    for m in FENCE.finditer(text):
        lang = RUNNABLE.get(m.group(1).lower())
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        skip = None
        if marker:
            directive = marker.group(1)
            kind, _, reason = directive.partition(":")
            if kind.strip() != "skip" or not reason.strip():
                raise ValueError(f"{doc}: bad marker {marker.group(0)!r}; write <!-- doc-test: skip: REASON -->")
            skip = reason.strip()
        if lang:
            out.append((text.count("\n", 0, m.start()) + 1, lang, m.group(2), skip))
        elif marker:
            raise ValueError(f"{doc}: a doc-test marker before a ```{m.group(1)} block, which is never run")
    return out


def _extras() -> set[str]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def _check_pip(segment: str, where: str) -> None:
    """A documented ``pip install`` names extras the project defines and files it ships."""
    words = shlex.split(segment)
    for i, w in enumerate(words):
        if w in ("-c", "--constraint", "-r", "--requirement"):
            assert os.path.isfile(os.path.join(ROOT, words[i + 1])), f"{where}: {words[i + 1]} is not in the project"
        m = re.fullmatch(r"\.\[([A-Za-z0-9_,-]+)\]", w)
        if m:
            unknown = set(m.group(1).split(",")) - _extras()
            assert not unknown, f"{where}: pip install names extras pyproject.toml does not define: {unknown}"


def runnable(lang: str, code: str, where: str) -> str:
    """The block as it is run: bash lines lose their ``pip install ... &&`` parts (checked instead)."""
    if lang != "bash":
        return code
    lines = []
    for line in code.splitlines():
        parts = line.split(" && ")
        keep = []
        for p in parts:
            if p.lstrip().startswith("pip install "):
                _check_pip(p, where)
            else:
                keep.append(p)
        lines.append(" && ".join(keep))
    return "\n".join(lines) + "\n"


DOC_BLOCKS = {doc: blocks(doc) for doc in DOCS}


def test_markers_and_pip_commands_are_well_formed():
    """Every marker parses (blocks() raises otherwise), skipped blocks say why, and every
    documented pip command names existing extras, also in blocks that are not run."""
    n_run = n_skip = 0
    for doc, bl in DOC_BLOCKS.items():
        for line, lang, code, skip in bl:
            runnable(lang, code, f"{doc}:{line}")
            n_skip += skip is not None
            n_run += skip is None
            if skip is None:
                assert "/work/shared" not in code, f"{doc}:{line}: a block the tests run reads /work/shared; mark it"
    assert n_run > 20 and n_skip < n_run


@pytest.mark.parametrize("doc", [d for d in DOCS if any(s is None for *_, s in DOC_BLOCKS[d])])
def test_document_runs_literally_in_order(doc, tmp_path):
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), MPLBACKEND="Agg")
    env.pop("AUTOML_PROBE_NUMBA", None)
    work = tmp_path / "work"  # the reader's fresh directory; the scripts live beside it
    work.mkdir()
    for i, (line, lang, code, skip) in enumerate(DOC_BLOCKS[doc]):
        if skip is not None:
            continue
        where = f"{doc}:{line}"
        script = tmp_path / f"block{i}.{'sh' if lang == 'bash' else 'py'}"
        script.write_text(runnable(lang, code, where))
        cmd = ["bash", "-eo", "pipefail", str(script)] if lang == "bash" else [sys.executable, str(script)]
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{where} ({lang} block {i}) failed with {r.returncode}:\n{code}\n--- stdout\n" \
            f"{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"


def test_readme_quick_start_is_the_main_job():
    """The quick start installs every extra with the CPU torch pin and then runs and shows a search."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    first = next(code for _, lang, code, skip in DOC_BLOCKS["README.md"] if lang == "bash")
    assert first.startswith('pip install -c constraints-cpu.txt -e ".[all]" && automl search ')
    assert "automl show" in first
    assert 'pip install -c constraints-cpu.txt -e ".[all,test]" && python -m pytest -q' in readme
