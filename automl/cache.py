"""The equivalence cache: an embedded persistent store (sqlite3, WAL mode, one file) behind an
in-memory layer, mapping a functional digest to the result of evaluating any candidate with
that digest.  A second table maps structural digests to functional ones, so a candidate seen
before in any spelling is answered without running its probe.

Only data is stored (JSON text and numbers, never pickle): a cache file received from someone
else is safe to open.

Policies (:class:`CachePolicy`), decided per lookup:
  * deterministic (``k=1``): the first result stands; every later lookup is a *hit*.
  * aggregating (``k>1``): up to ``k`` real evaluations per key; while fewer exist, a lookup is a
    *partial* hit (the candidate is evaluated again and the result folded into a running mean);
    afterwards a full *hit*.
  * forgetful (``forget_after=n`` and/or ``forget_prob=p``): after ``n`` hits since the last real
    evaluation, or with probability ``p`` on each hit, the lookup becomes *partial* again.
A *miss* is a key never evaluated.  Failed and invalid results are final for their key (a
re-evaluation would fail the same way and costs the same).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError
from .types import HIT, MISS, OK, PARTIAL

SCHEMA = 1
_COMMIT_INTERVAL_S = 0.25  # batch commits; the run log is the durable record (see engine resume)
# Caches up to this many results are read into memory when opened, so a lookup never touches
# disk; larger ones are read key by key.  Either way, entries another process writes after this
# cache was opened are not seen until it is reopened (runs sharing a cache normally run one
# after the other).
_PRELOAD_MAX = 1_000_000


@dataclasses.dataclass(frozen=True)
class CachePolicy:
    k: int = 1
    forget_after: int | None = None
    forget_prob: float = 0.0

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"cache policy k must be >= 1, got {self.k}")
        if self.forget_after is not None and self.forget_after < 1:
            raise ConfigError(f"forget_after must be >= 1, got {self.forget_after}")
        if not 0.0 <= self.forget_prob <= 1.0:
            raise ConfigError(f"forget_prob must be in [0, 1], got {self.forget_prob}")

    @classmethod
    def parse(cls, text: str) -> "CachePolicy":
        """``deterministic`` | ``aggregating[:K]`` | ``forgetful:N[:P]`` | ``forgetful:p=P``."""
        name, _, rest = text.partition(":")
        try:
            if name == "deterministic" and not rest:
                return cls()
            if name == "aggregating":
                return cls(k=int(rest) if rest else 3)
            if name == "forgetful" and rest:
                parts = rest.split(":")
                if parts[0].startswith("p="):
                    return cls(forget_prob=float(parts[0][2:]))
                return cls(forget_after=int(parts[0]), forget_prob=float(parts[1]) if len(parts) > 1 else 0.0)
        except ValueError:
            pass
        raise ConfigError(f"bad cache policy {text!r}: use deterministic, aggregating[:K], forgetful:N[:P] "
                          "or forgetful:p=P")

    @classmethod
    def resolve(cls, value: "CachePolicy | str | None", evaluator: Any = None) -> "CachePolicy":
        """A policy from a policy, its text, or ``None``/``"auto"`` (aggregating:3 for a noisy
        evaluator, else deterministic)."""
        if isinstance(value, CachePolicy):
            return value
        if value in (None, "auto"):
            return cls(k=3) if getattr(evaluator, "noisy", False) else cls()
        return cls.parse(str(value))

    def describe(self) -> str:
        if self.forget_after is not None or self.forget_prob:
            return f"forgetful(after={self.forget_after}, p={self.forget_prob}, k={self.k})"
        return "deterministic" if self.k == 1 else f"aggregating(k={self.k})"


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


@dataclasses.dataclass
class CacheStats:
    misses: int = 0
    partial_hits: int = 0
    hits: int = 0
    structural_hits: int = 0  # lookups answered from the structural table, no probe run
    evaluations: int = 0  # real evaluations recorded
    evaluations_saved: int = 0
    seconds_saved: float = 0.0  # evaluator seconds not spent because of full hits (minus probe cost)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        lookups = self.misses + self.partial_hits + self.hits
        d["hit_rate"] = self.hits / lookups if lookups else 0.0
        return d


class Cache:
    """Persistent equivalence cache.  ``path=None`` keeps everything in memory only."""

    def __init__(self, path: str | os.PathLike | None = None, policy: CachePolicy | None = None,
                 seed: int = 0):
        self.path = None if path is None else os.fspath(path)
        self.policy = policy or CachePolicy()
        self.stats = CacheStats()
        self._rng = np.random.default_rng(seed)  # for forget_prob; owned, never the global RNG
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

    # --- policy ------------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The stored entry for ``key`` (no policy, no statistics)."""
        return self._load(key)

    def decide(self, key: str) -> tuple[str, Entry | None]:
        """Apply the policy to a lookup of ``key``: (``miss``|``partial``|``hit``, entry)."""
        e = self._load(key)
        p = self.policy
        if e is None:
            self.stats.misses += 1
            return MISS, None
        if e.status == OK and (
            e.n < p.k
            or (p.forget_after is not None and e.hits >= p.forget_after)
            or (p.forget_prob > 0.0 and self._rng.random() < p.forget_prob)
        ):
            self.stats.partial_hits += 1
            return PARTIAL, e
        self.stats.hits += 1
        return HIT, e

    def note_hit(self, key: str, probe_cost: float) -> None:
        """Account a full hit served for ``key`` (counts toward forgetting and the savings)."""
        e = self._load(key)
        if e is None:
            return
        e.hits += 1
        self.stats.evaluations_saved += 1
        self.stats.seconds_saved += max(e.mean_cost - probe_cost, 0.0)
        if self.policy.forget_after is not None:  # hits matter only to a forgetful policy
            self._store(key, e)

    def record(self, key: str, status: str, objectives: Mapping[str, float], cost_s: float,
               error: str | None = None, candidate: str | None = None) -> Entry:
        """Fold one real evaluation into ``key``'s entry; return the updated entry."""
        self.stats.evaluations += 1
        e = self._load(key)
        if e is None or e.status != OK or status != OK:
            # first result, or a failure: the new result stands on its own
            n = 1 if e is None or e.status != OK else e.n + 1
            e = Entry(status, dict(objectives), n, 0, cost_s + (e.cost_s if e is not None else 0.0), error,
                      candidate if e is None else e.candidate)
        else:
            n = e.n + 1
            merged = {k: e.objectives.get(k, v) + (v - e.objectives.get(k, v)) / n for k, v in objectives.items()}
            e = Entry(OK, merged, n, 0, e.cost_s + cost_s, None, e.candidate)
        self._store(key, e)
        return e

    def __len__(self) -> int:
        if self._db is not None:
            self.flush()
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return len(self._mem)


class NullCache(Cache):
    """A cache that never answers (every lookup is a miss): searching 'without the cache'."""

    def __init__(self, policy: CachePolicy | None = None, seed: int = 0):
        super().__init__(None, policy, seed)

    def decide(self, key: str) -> tuple[str, Entry | None]:
        self.stats.misses += 1
        return MISS, None

    def alias(self, structural: str) -> str | None:
        return None

    def set_alias(self, structural: str, functional: str) -> None:
        pass

    def record(self, key, status, objectives, cost_s, error=None, candidate=None) -> Entry:
        self.stats.evaluations += 1
        return Entry(status, dict(objectives), 1, 0, cost_s, error, candidate)
