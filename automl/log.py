"""The run directory: ``run.json`` (config, seed, versions), ``candidates.jsonl`` (one record per
candidate, cache hits included), ``state.json`` (strategy snapshot for resume) and, by default,
``cache.sqlite``.

A record holds at least: id, parents, generation, candidate (text form), structural_hash, hash
(functional), cache (miss/hit/partial), status (ok/failed/invalid), objectives, cost_s, charged,
error, t (seconds since the run started).  Records are written one line each and flushed, so a
killed run (kill -9 included) loses at most the line being written; a truncated last line is
skipped with a warning and cut off on resume.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from typing import Any, Iterator

from .errors import RunDirError

RUN_FILE, LOG_FILE, STATE_FILE, CACHE_FILE = "run.json", "candidates.jsonl", "state.json", "cache.sqlite"
LOG_FORMAT = 1


def versions() -> dict[str, str]:
    """Versions of this package, Python and the libraries results may depend on (no heavy imports)."""
    from importlib import metadata

    from . import __version__

    out = {"automl": __version__, "python": platform.python_version()}
    for dist in ("numpy", "xxhash", "networkx", "torch", "optuna", "ray"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _atomic_write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def read_records(run_dir: str, repair: bool = False) -> list[dict[str, Any]]:
    """All records of a run.  A truncated or corrupt last line is skipped with a warning (and cut
    from the file when ``repair``); a corrupt line elsewhere is an error naming its number."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    records, offset = [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == b"")
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                if not last:
                    raise RunDirError(f"{path}: line {i + 1} is not valid JSON") from None
                warnings.warn(f"{path}: skipping truncated last line {i + 1} ({len(line)} bytes)", stacklevel=2)
                if repair:
                    with open(path, "r+b") as f:
                        f.truncate(offset)
                break
        offset += len(line) + 1
    return records


class RunLog:
    """Writer for one run directory."""

    def __init__(self, run_dir: str):
        self.dir = run_dir
        self.path = os.path.join(run_dir, LOG_FILE)
        self._f = None

    @classmethod
    def create(cls, run_dir: str, config: dict[str, Any]) -> "RunLog":
        if os.path.exists(os.path.join(run_dir, RUN_FILE)):
            raise RunDirError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        os.makedirs(run_dir, exist_ok=True)
        meta = {"format": LOG_FORMAT, "config": config, "versions": versions(), "created": time.time(),
                "argv": sys.argv}
        _atomic_write_json(os.path.join(run_dir, RUN_FILE), meta)
        return cls(run_dir)

    @classmethod
    def open_existing(cls, run_dir: str) -> tuple["RunLog", dict[str, Any]]:
        path = os.path.join(run_dir, RUN_FILE)
        if not os.path.exists(path):
            raise RunDirError(f"{run_dir} is not a run directory (no {RUN_FILE})")
        return cls(run_dir), read_json(path)

    def append(self, record: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self.path, "a", buffering=1 << 16)
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()  # into the OS: survives kill -9 of this process

    def save_state(self, state: dict[str, Any]) -> None:
        _atomic_write_json(os.path.join(self.dir, STATE_FILE), state)

    def load_state(self) -> dict[str, Any] | None:
        path = os.path.join(self.dir, STATE_FILE)
        return read_json(path) if os.path.exists(path) else None

    def update_run(self, **fields: Any) -> None:
        path = os.path.join(self.dir, RUN_FILE)
        meta = read_json(path)
        meta.update(fields)
        _atomic_write_json(path, meta)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def iter_runs(root: str) -> Iterator[str]:
    for name in sorted(os.listdir(root)):
        if os.path.exists(os.path.join(root, name, RUN_FILE)):
            yield os.path.join(root, name)
