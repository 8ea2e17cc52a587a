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

import contextlib
import json
import os
import platform
import sys
import time
import warnings
from typing import Any, Iterator, TextIO

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


MAX_JSON_BYTES = 64 * 2**20  # run.json / state.json larger than this are not ours


def read_json(path: str) -> Any:
    """A run folder's JSON file; :class:`RunDirError` naming the file when it is unreadable,
    not JSON (a torn write, a stray edit) or absurdly large."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_JSON_BYTES:
        raise RunDirError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB: not a file this program wrote")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RunDirError(f"{path} is corrupt ({str(exc)[:120]}); restore it from a backup, or start a new "
                          "run (the log candidates.jsonl keeps every result)") from None


def check_state(run_dir: str, state: Any, records: list[dict[str, Any]]) -> None:
    """state.json against the log: a snapshot counting more records than the log holds means the
    log lost lines (a power loss before they reached the disk, a truncated copy).  Resuming would
    silently re-spend the budget, so it is an error that says what to do."""
    if state is None:
        return
    if not isinstance(state, dict) or not isinstance(state.get("n_records", 0), int):
        raise RunDirError(f"{os.path.join(run_dir, STATE_FILE)} is not a snapshot this program wrote")
    n = state.get("n_records", 0)
    if n > len(records):
        raise RunDirError(
            f"{run_dir}: state.json was written after {n} logged candidates but {LOG_FILE} holds {len(records)}: "
            f"the log lost {n - len(records)} records (power loss, truncated copy?).  Restore the log from a "
            f"backup, or delete {STATE_FILE} to resume from what the log holds (the lost evaluations will be "
            "charged again)")


def _valid_record(rec: Any) -> bool:
    """The fields resume and the reports rely on, with their types."""
    return (isinstance(rec, dict) and type(rec.get("id")) is int and isinstance(rec.get("candidate"), str)
            and rec.get("status") in ("ok", "failed", "invalid")
            and isinstance(rec.get("objectives") or {}, dict) and type(rec.get("charged", 0)) is int
            and isinstance(rec.get("hash") or "", str) and isinstance(rec.get("parents", []), list))


def read_records(run_dir: str, repair: bool = False) -> list[dict[str, Any]]:
    """All records of a run.  A truncated or corrupt last line is skipped with a warning (and cut
    from the file when ``repair``); a corrupt line elsewhere is an error naming its number."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.exists(path):
        return []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    records, offset = [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == b"")
        if line.strip():
            try:
                rec = json.loads(line)
                if not _valid_record(rec):
                    raise ValueError("not a candidate record")
                records.append(rec)
            except (ValueError, RecursionError):
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
        self._f: TextIO | None = None
        self._deferred = False

    @classmethod
    def create(cls, run_dir: str, config: dict[str, Any]) -> "RunLog":
        if os.path.exists(os.path.join(run_dir, RUN_FILE)):
            raise RunDirError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite (overwrite=True) "
                              "to replace it, or choose another --out")
        try:
            os.makedirs(run_dir, exist_ok=True)
            if not os.path.isdir(run_dir):
                raise NotADirectoryError(20, "not a directory", run_dir)
            meta = {"format": LOG_FORMAT, "config": config, "versions": versions(), "created": time.time(),
                    "argv": sys.argv}
            _atomic_write_json(os.path.join(run_dir, RUN_FILE), meta)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from None
        return cls(run_dir)

    @classmethod
    def open_existing(cls, run_dir: str) -> tuple["RunLog", dict[str, Any]]:
        path = os.path.join(run_dir, RUN_FILE)
        if not os.path.isfile(path):
            raise RunDirError(f"{run_dir} is not a run directory (no {RUN_FILE})")
        meta = read_json(path)
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise RunDirError(f"{path} is not a run description this program wrote (no config)")
        return cls(run_dir), meta

    def append(self, record: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self.path, "a", buffering=1 << 16)
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        if not self._deferred:
            self._f.flush()  # into the OS: survives kill -9 of this process (sync() makes it survive power loss)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Append a generation of records with one flush at the end (one write into the OS instead
        of one per record).  A kill -9 inside loses that generation's lines, as it would lose its
        results in flight; every line written is whole."""
        if self._deferred:
            yield
            return
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            if self._f is not None:
                self._f.flush()

    def sync(self) -> None:
        """fsync the log (called before every snapshot)."""
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())

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
