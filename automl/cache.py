"""The equivalence cache: an embedded persistent store (sqlite3, WAL mode, one file) behind an
in-memory layer, mapping a functional digest to the result of evaluating any candidate with
that digest.  A second table maps structural digests to functional ones, so a candidate seen
before in any spelling is answered without running its probe.

Only data is stored (JSON text and numbers, never pickle): a cache file received from someone
else is safe to open.

This module is storage only: :meth:`Cache.get`, :meth:`Cache.fold` (fold one real evaluation
into a key's running mean), aliases, commit and close.  Which lookups are hits, what is
charged and what is counted is decided by the evaluation seam (:mod:`automl.evaluation`) under
a :class:`automl.policy.CachePolicy`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from typing import Mapping

from .errors import ConfigError
from .policy import CachePolicy  # noqa: F401  (re-exported: automl.cache.CachePolicy)
from .types import OK

SCHEMA = 1
_COMMIT_INTERVAL_S = 0.25  # batch commits; the run log is the durable record (see engine resume)
# Caches up to this many results are read into memory when opened, so a lookup never touches
# disk; larger ones are read key by key.  Either way, entries another process writes after this
# cache was opened are not seen until it is reopened (runs sharing a cache normally run one
# after the other).
_PRELOAD_MAX = 1_000_000


@dataclasses.dataclass
class Entry:
    """A cached result: running mean of ``n`` real evaluations."""

    status: str
    objectives: dict[str, float]
    n: int
    hits: int
    cost_s: float  # total evaluator seconds spent on the n evaluations
    error: str | None = None
    candidate: str | None = None  # text of the first candidate evaluated under this key

    @property
    def mean_cost(self) -> float:
        return self.cost_s / max(self.n, 1)


class Cache:
    """Persistent equivalence cache.  ``path=None`` keeps everything in memory only."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self._mem: dict[str, Entry] = {}
        self._alias: dict[str, str] = {}
        self._dirty = False
        self._last_commit = time.monotonic()
        self._db: sqlite3.Connection | None = None
        self._complete = True  # every stored entry is in memory (always so without a file)
        if self.path is not None:
            self._open()

    # --- storage ------------------------------------------------------------------------------
    def _open(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS results(key TEXT PRIMARY KEY, status TEXT NOT NULL, "
                       "objectives TEXT NOT NULL, n INTEGER NOT NULL, hits INTEGER NOT NULL, "
                       "cost_s REAL NOT NULL, error TEXT, candidate TEXT, updated REAL)")
            db.execute("CREATE TABLE IF NOT EXISTS aliases(structural TEXT PRIMARY KEY, functional TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA),))
            elif row[0] != str(SCHEMA):
                raise ConfigError(f"cache {self.path} has schema {row[0]}, this version reads {SCHEMA}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open cache {self.path}: {exc}") from None
        db.execute("BEGIN")
        self._db = db
        self._complete = db.execute("SELECT COUNT(*) FROM results").fetchone()[0] <= _PRELOAD_MAX
        if self._complete:
            for key, status, obj, n, hits, cost, error, cand in db.execute(
                    "SELECT key, status, objectives, n, hits, cost_s, error, candidate FROM results"):
                self._mem[key] = Entry(status, json.loads(obj), n, hits, cost, error, cand)
            self._alias.update(db.execute("SELECT structural, functional FROM aliases"))

    def _load(self, key: str) -> Entry | None:
        e = self._mem.get(key)
        if e is not None or self._complete:
            return e
        row = self._db.execute("SELECT status, objectives, n, hits, cost_s, error, candidate FROM results "
                               "WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        e = Entry(row[0], json.loads(row[1]), row[2], row[3], row[4], row[5], row[6])
        self._mem[key] = e
        return e

    def _store(self, key: str, e: Entry) -> None:
        self._mem[key] = e
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO results VALUES(?,?,?,?,?,?,?,?,?)",
                             (key, e.status, json.dumps(e.objectives), e.n, e.hits, e.cost_s, e.error,
                              e.candidate, time.time()))
            self._maybe_commit()

    def _maybe_commit(self) -> None:
        self._dirty = True
        if time.monotonic() - self._last_commit >= _COMMIT_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Commit pending writes to disk."""
        if self._db is not None and self._dirty:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._dirty = False
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- structural -> functional aliases ----------------------------------------------------------
    def alias(self, structural: str) -> str | None:
        f = self._alias.get(structural)
        if f is None and not self._complete:
            row = self._db.execute("SELECT functional FROM aliases WHERE structural=?", (structural,)).fetchone()
            if row is not None:
                f = self._alias[structural] = row[0]
        return f

    def set_alias(self, structural: str, functional: str) -> None:
        if self._alias.get(structural) == functional:
            return
        self._alias[structural] = functional
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO aliases VALUES(?,?)", (structural, functional))
            self._maybe_commit()

    # --- entries ------------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The stored entry for ``key``."""
        return self._load(key)

    def put(self, key: str, entry: Entry) -> None:
        """Store ``entry`` under ``key`` (replacing what was there)."""
        self._store(key, entry)

    def fold(self, key: str, status: str, objectives: Mapping[str, float], cost_s: float,
             error: str | None = None, candidate: str | None = None) -> Entry:
        """Fold one real evaluation into ``key``'s entry (running mean of OK results; a failure
        stands on its own); store and return the updated entry."""
        e = self._load(key)
        if e is None or e.status != OK or status != OK:
            n = 1 if e is None or e.status != OK else e.n + 1
            e = Entry(str(status), dict(objectives), n, 0, cost_s + (e.cost_s if e is not None else 0.0), error,
                      candidate if e is None else e.candidate)
        else:
            n = e.n + 1
            merged = {k: e.objectives.get(k, v) + (v - e.objectives.get(k, v)) / n for k, v in objectives.items()}
            e = Entry(OK.value, merged, n, 0, e.cost_s + cost_s, None, e.candidate)
        self._store(key, e)
        return e

    def __len__(self) -> int:
        if self._db is not None:
            self.flush()
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return len(self._mem)


class NullCache(Cache):
    """A cache that stores nothing (every lookup is a miss): searching 'without the cache'."""

    def __init__(self) -> None:
        super().__init__(None)

    def get(self, key: str) -> Entry | None:
        return None

    def put(self, key: str, entry: Entry) -> None:
        pass

    def alias(self, structural: str) -> str | None:
        return None

    def set_alias(self, structural: str, functional: str) -> None:
        pass

    def fold(self, key, status, objectives, cost_s, error=None, candidate=None) -> Entry:
        return Entry(str(status), dict(objectives), 1, 0, cost_s, error, candidate)
