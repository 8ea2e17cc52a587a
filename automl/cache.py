"""The equivalence cache: an embedded persistent store (sqlite3, WAL mode, one file) behind an
in-memory layer, mapping a functional digest to the result of evaluating any candidate with
that digest.  A second table maps structural digests to functional ones, so a candidate seen
before in any spelling is answered without running its probe.

Only data is stored (JSON text and numbers, never pickle): a cache file received from someone
else is safe to open.

This module is storage only: :meth:`Cache.get`, :meth:`Cache.fold` (fold one real evaluation
into a key's running mean, atomically against what is stored), :meth:`Cache.reconcile_log`
(resume), aliases, commit and close.  Which lookups are hits, what is charged and what is
counted is decided by the evaluation seam (:mod:`automl.evaluation`) under a
:class:`automl.policy.CachePolicy`; whether a cached failure is served is
:func:`failure_is_stale`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sqlite3
import time
import uuid
import warnings
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from .errors import CacheError, ConfigError
from .policy import CachePolicy  # noqa: F401  (re-exported: automl.cache.CachePolicy)
from .types import FAILED, INVALID, OK

SCHEMA = 1
# Aliases and hit counts are written at most this often (results are written at once, each in
# its own short transaction): losing a few aliases to a kill costs a probe, nothing else.
_T = TypeVar("_T")
_COMMIT_INTERVAL_S = 0.25
# Group commit of fast results: a new key whose evaluation took less than FAST_EVAL_S is held in
# memory and committed with the others that arrive within GROUP_S (at most GROUP_MAX of them) in
# one transaction: a commit costs ~50 us here, as much as the whole engine loop spends on a
# zero-cost candidate.  Slower results (and every fold into an existing key) are written at once.
# A kill loses at most the group (the run log has them: resume reconciles the cache from it);
# another process sees them up to GROUP_S, or one slow evaluation, later.
FAST_EVAL_S = 0.005
GROUP_S = 0.05
GROUP_MAX = 256
_BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction
_COLS = "key, status, objectives, n, hits, cost_s, error, candidate, failure, constraints"
_VALUES = f"({_COLS}, updated) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_NEW = f"INSERT INTO results{_VALUES} ON CONFLICT(key) DO NOTHING"  # a no-op when the key exists
_REPLACE = f"INSERT OR REPLACE INTO results{_VALUES}"
_SELECT = f"SELECT {_COLS} FROM results WHERE key=?"
# Caches up to this many results are read into memory when opened.  A lookup that memory does not
# answer as a full hit re-reads the row, so entries other processes write later are seen.
_PRELOAD_MAX = 1_000_000
# Failure kinds (see failure_is_stale)
FINAL, TRANSIENT, TIMEOUT = "final", "transient", "timeout"


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
    failure: dict[str, Any] | None = None  # failed entries: {"kind", "settings", "session"}
    # {name: violation} (<= 0 satisfied), functional like the objectives: the running mean over
    # the n evaluations; None when the evaluator reports no constraints
    constraints: dict[str, float] | None = None

    @property
    def mean_cost(self) -> float:
        return self.cost_s / max(self.n, 1)


class Cache:
    """Persistent equivalence cache.  ``path=None`` keeps everything in memory only.

    Safe for many processes on one file (several searches sharing ``--cache``, on one machine or
    over a file system with working POSIX locks): no transaction is held between calls, every
    fold into an existing key is one short ``BEGIN IMMEDIATE`` transaction that re-reads the row
    it folds into (so two writers' evaluations of one key are both counted; a new key is one
    ``INSERT ... ON CONFLICT DO NOTHING``, fast results' new keys a group commit: see
    FAST_EVAL_S), a lookup that memory cannot answer as a
    full hit re-reads the row (another process may have written it), and a busy database is
    retried with back-off (see :func:`_retry`).  ``settings`` (e.g. ``{"timeout": 30}``) are
    stored with every failure; see :func:`failure_is_stale` for when a cached failure is retried.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, settings: Mapping[str, Any] | None = None):
        self.path = None if path is None else os.fspath(path)
        self.settings = dict(settings or {})
        self.session = uuid.uuid4().hex[:12]  # this cache object's run: transient failures are retried by later ones
        self._mem: dict[str, Entry] = {}
        self._alias: dict[str, str] = {}
        self._pending_alias: dict[str, str] = {}
        self._pending_hits: dict[str, int] = {}
        # new keys held for a group commit: (key, fold, entry); see FAST_EVAL_S
        self._pending_new: list[tuple[str, Callable[[Entry | None], Entry], Entry]] = []
        self._group_since = 0.0
        self._last_commit = time.monotonic()
        self._db: sqlite3.Connection | None = None
        self._in_batch = False  # inside batch(): writes join its one transaction
        self._warned_corrupt = False
        if self.path is not None:
            self._open()

    # --- storage ------------------------------------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        """The open connection (only called on a file-backed cache, which is open until close())."""
        if self._db is None:
            raise CacheError(f"cache {self.path} is closed")
        return self._db

    def _open(self) -> None:
        assert self.path is not None
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
            # isolation_level=None: no implicit transactions; each statement commits unless inside
            # an explicit BEGIN ... COMMIT (which this class keeps short).
            db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"cannot open cache {self.path}: {exc}") from None
        self._db = db
        try:
            self._retry(self._init_schema)  # (the PRAGMAs too may meet a busy database)
            self._retry(self._preload)
        except BaseException:
            db.close()
            self._db = None
            raise

    def _init_schema(self) -> None:
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

        def body(db: sqlite3.Connection) -> None:
            db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS results(key TEXT PRIMARY KEY, status TEXT NOT NULL, "
                       "objectives TEXT NOT NULL, n INTEGER NOT NULL, hits INTEGER NOT NULL, "
                       "cost_s REAL NOT NULL, error TEXT, candidate TEXT, updated REAL, failure TEXT, constraints TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS aliases(structural TEXT PRIMARY KEY, functional TEXT NOT NULL)")
            cols = {r[1] for r in db.execute("PRAGMA table_info(results)")}
            if "failure" not in cols:  # caches written before failures carried their settings
                db.execute("ALTER TABLE results ADD COLUMN failure TEXT")
            if "constraints" not in cols:  # caches written before results carried their constraints
                db.execute("ALTER TABLE results ADD COLUMN constraints TEXT")
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA),))
            elif row[0] != str(SCHEMA):
                raise ConfigError(f"cache {self.path} has schema {row[0]}, this version reads {SCHEMA}")

        self._write(body)

    def _preload(self) -> None:
        """Read small caches into memory; ``fetchall`` ends the read at once (no open snapshot)."""
        db = self._conn
        self._mem.clear()
        n = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        if n <= _PRELOAD_MAX:
            for row in db.execute(f"SELECT {_COLS} FROM results").fetchall():
                e = self._entry(row[0], row[1:])
                if e is not None:
                    self._mem[row[0]] = e
            self._alias.update(db.execute("SELECT structural, functional FROM aliases").fetchall())

    def _retry(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn`` against the database, retrying while another process holds the write lock
        (sqlite's own busy timeout does not cover every case, e.g. a lock upgrade); any other
        database error is a :class:`CacheError` naming the file."""
        delay = 0.005
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                msg = str(exc)
                if ("locked" in msg or "busy" in msg) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.2)
                    continue
                raise CacheError(f"cache {self.path}: {msg}") from None
            except sqlite3.DatabaseError as exc:  # a corrupt page, a file that is not a database
                raise CacheError(f"cache {self.path} is damaged ({exc}); move it away (the run logs keep every "
                                 "result; `--resume` refills a new cache from its log)") from None

    def _entry(self, key: str, row: Sequence[Any]) -> Entry | None:
        """An entry from a stored row, validated; a bad row is ignored (a miss) with one warning."""
        status, obj, n, hits, cost, error, cand, failure, cons = row
        try:
            objectives = json.loads(obj)
            constraints = json.loads(cons) if cons is not None else None
            ok = (status in (OK, FAILED, INVALID) and _numbers(objectives)
                  and (constraints is None or (_numbers(constraints)
                                               and all(math.isfinite(v) for v in constraints.values())))
                  and isinstance(n, int) and n >= 1 and isinstance(hits, int) and hits >= 0
                  and isinstance(cost, (int, float)) and math.isfinite(cost))
            if ok and status == OK:
                ok = all(math.isfinite(v) for v in objectives.values())
            fail = json.loads(failure) if failure else None
            ok = ok and (fail is None or isinstance(fail, dict))
        except (ValueError, TypeError, RecursionError):
            ok = False
        if not ok:
            if not self._warned_corrupt:
                self._warned_corrupt = True
                warnings.warn(f"cache {self.path}: ignoring a corrupt entry ({key[:16]}...); it will be "
                              "re-evaluated and overwritten", stacklevel=3)
            return None
        return Entry(status, {k: float(v) for k, v in objectives.items()}, n, hits, float(cost), error, cand, fail,
                     None if constraints is None else {k: float(v) for k, v in constraints.items()})

    def _read(self, key: str) -> Entry | None:
        """The stored row for ``key`` (memory updated); None when absent or corrupt."""
        row = self._retry(lambda: self._conn.execute(_SELECT, (key,)).fetchone())
        if row is None:
            return self._mem.get(key)
        e = self._entry(row[0], row[1:])
        if e is not None:
            self._mem[key] = e
        return e

    def _load(self, key: str) -> Entry | None:
        e = self._mem.get(key)
        if e is not None or self._db is None:
            return e
        return self._read(key)

    def _update(self, key: str, fold: Callable[[Entry | None], Entry], group: bool = False) -> Entry:
        """Atomically read ``key``'s row, compute ``fold(old) -> new`` and write it (one short
        write transaction; the in-memory layer is updated too).  ``group``: a new key may wait
        for a group commit (see FAST_EVAL_S)."""
        if self._db is None:
            e = fold(self._mem.get(key))
            self._mem[key] = e
            return e

        if group and not self._in_batch and key not in self._mem:
            e = fold(None)
            self._mem[key] = e
            now = time.monotonic()
            if not self._pending_new:
                self._group_since = now
            self._pending_new.append((key, fold, e))
            if len(self._pending_new) >= GROUP_MAX or now - self._group_since >= GROUP_S:
                self.flush()
            return e

        if not self._in_batch and key not in self._mem:
            # A key this process has not seen (a new candidate: the common case of a search): one
            # autocommit INSERT that does nothing when another process has written the key since,
            # instead of BEGIN / SELECT / INSERT / COMMIT (one statement, not four).  Only when the row
            # turns out to exist does the full read-fold-write transaction below run.  Pending
            # aliases and hit counts wait for the next transaction or flush (they are memos).
            e = fold(None)
            if self._retry(self._conn.execute, _INSERT_NEW, self._row(key, e)).rowcount == 1:
                self._mem[key] = e
                return e

        def body(db: sqlite3.Connection) -> Entry:
            self._write_group(db)  # first: the row folded into below may be one of them
            e = self._fold_row(db, key, fold)
            self._write_pending(db)
            return e

        e = self._write(body)
        self._mem[key] = e
        self._last_commit = time.monotonic()
        return e

    def _fold_row(self, db: sqlite3.Connection, key: str, fold: Callable[[Entry | None], Entry]) -> Entry:
        """Read ``key``'s row, fold into it and write it back (inside the caller's transaction)."""
        row = db.execute(_SELECT, (key,)).fetchone()
        e = fold(None if row is None else self._entry(row[0], row[1:]))
        db.execute(_REPLACE, self._row(key, e))
        return e

    @staticmethod
    def _row(key: str, e: Entry) -> tuple[Any, ...]:
        """``e`` as the values of a results row (the columns of ``_COLS``, then ``updated``)."""
        return (key, e.status, json.dumps(e.objectives), e.n, e.hits, e.cost_s, e.error, e.candidate,
                json.dumps(e.failure) if e.failure else None,
                None if e.constraints is None else json.dumps(e.constraints), time.time())

    def _write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """``body(db)`` inside one short ``BEGIN IMMEDIATE`` transaction (rolled back on any
        exception), retried while another process holds the lock; returns what ``body`` returns.
        Inside :meth:`batch`, ``body`` joins the batch's transaction (its lock is already held)."""
        if self._in_batch:
            return self._retry(body, self._conn)

        def txn() -> _T:
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                out = body(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return out

        return self._retry(txn)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Fold a generation of results in one write transaction (one lock, one commit, instead of
        one per result): the folds inside are atomic together against other processes.  Keep the
        body to cache calls (it holds the write lock); nests as one batch."""
        if self._db is None or self._in_batch:
            yield
            return
        db = self._db
        self._retry(db.execute, "BEGIN IMMEDIATE")
        self._in_batch = True
        try:
            yield
            self._write_pending(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            self._in_batch = False
        self._last_commit = time.monotonic()

    def _write_pending(self, db: sqlite3.Connection) -> None:
        self._write_group(db)
        if self._pending_alias:
            db.executemany("INSERT OR IGNORE INTO aliases VALUES(?,?)", list(self._pending_alias.items()))
        if self._pending_hits:
            db.executemany("UPDATE results SET hits=hits+? WHERE key=?",
                           [(n, k) for k, n in self._pending_hits.items()])
        self._pending_alias, self._pending_hits = {}, {}

    def _write_group(self, db: sqlite3.Connection) -> None:
        """Commit the new keys held for a group commit (inside the caller's transaction)."""
        if self._pending_new:
            new, self._pending_new = self._pending_new, []
            for key, fold, e in new:
                if db.execute(_INSERT_NEW, self._row(key, e)).rowcount != 1:
                    # another process wrote the key meanwhile: fold this result into its row
                    self._mem[key] = self._fold_row(db, key, fold)

    def _maybe_commit(self) -> None:
        now = time.monotonic()
        if now - self._last_commit >= _COMMIT_INTERVAL_S or (self._pending_new and now - self._group_since >= GROUP_S):
            self.flush()

    def flush(self) -> None:
        """Write pending aliases and hit counts (one short transaction)."""
        if self._db is not None and (self._pending_alias or self._pending_hits or self._pending_new):
            self._write(self._write_pending)
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self._db is not None:
            try:
                self.flush()
            finally:
                self._db.close()
                self._db = None

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- structural -> functional aliases ----------------------------------------------------------
    def alias(self, structural: str) -> str | None:
        f = self._alias.get(structural)
        if f is None and self._db is not None:
            row = self._retry(lambda: self._conn.execute("SELECT functional FROM aliases WHERE structural=?",
                                                         (structural,)).fetchone())
            if row is not None:
                f = self._alias[structural] = row[0]
        return f

    def set_alias(self, structural: str, functional: str) -> None:
        if self._alias.get(structural) == functional:
            return
        self._alias[structural] = functional
        if self._db is not None:
            self._pending_alias[structural] = functional
            self._maybe_commit()

    # --- entries ------------------------------------------------------------------------------------
    def cached(self, key: str) -> Entry | None:
        """What this process holds for ``key`` in memory (no read of the file)."""
        return self._mem.get(key)

    def get(self, key: str, fresh: bool = False) -> Entry | None:
        """The stored entry for ``key``.  ``fresh``: re-read the row (another process sharing the
        file may have written it since); otherwise memory answers when it can."""
        if fresh and self._db is not None:
            return self._read(key)
        return self._load(key)

    def put(self, key: str, entry: Entry) -> None:
        """Store ``entry`` under ``key`` (replacing what was there)."""
        self._update(key, lambda old: entry)

    def add_hit(self, key: str) -> None:
        """Count one full hit served for ``key`` (what a forgetful policy counts); written with the
        next transaction (an increment, so hits served by several processes add up)."""
        e = self._mem.get(key)
        if e is not None:
            e.hits += 1
        if self._db is not None:
            self._pending_hits[key] = self._pending_hits.get(key, 0) + 1
            self._maybe_commit()

    def fold(self, key: str, status: str, objectives: Mapping[str, float], cost_s: float,
             error: str | None = None, candidate: str | None = None, failure: str | None = None,
             constraints: Mapping[str, float] | None = None) -> Entry:
        """Fold one real evaluation into ``key``'s entry (running mean of OK results, their
        ``constraints`` too; a failure stands on its own, but never replaces results), atomically
        against what is stored now; return the updated entry.  ``failure``
        (``final``/``transient``/``timeout``) classifies a failed evaluation; it is stored with this
        cache's settings."""
        status = str(status)
        cons = None if constraints is None else {str(k): float(v) for k, v in constraints.items()}
        fail = None
        if status == FAILED:
            fail = {"kind": failure or FINAL, "settings": dict(self.settings), "session": self.session}

        def fold(e: Entry | None) -> Entry:
            if e is not None and e.status == OK and status != OK:
                # a failed or invalid re-evaluation of a key that has results: the aggregate stands
                return dataclasses.replace(e, cost_s=e.cost_s + cost_s, hits=0)
            if e is None or e.status != OK or status != OK:
                return Entry(status, dict(objectives), 1, 0, cost_s, error,
                             candidate if e is None else (e.candidate or candidate), fail,
                             cons if status == OK else None)
            n = e.n + 1
            return Entry(str(OK), _mean(e.objectives, objectives, n), n, 0, e.cost_s + cost_s, None, e.candidate,
                         None, None if cons is None else _mean(e.constraints or {}, cons, n))

        return self._update(key, fold, group=cost_s < FAST_EVAL_S)

    def reconcile(self, key: str, status: str, objectives: Mapping[str, float], n: int, cost_s: float,
                  error: str | None = None, candidate: str | None = None, failure: str | None = None,
                  constraints: Mapping[str, float] | None = None) -> bool:
        """Make ``key``'s entry hold at least what a run log says was folded into it: ``n`` real
        evaluations with aggregate ``objectives``.  Used on resume (a kill -9 can leave the log ahead
        of the cache); an entry that already holds ``n`` or more is left alone.  True when changed."""
        changed = False

        def fold(e: Entry | None) -> Entry:
            nonlocal changed
            if e is not None and (e.n >= n or (e.status == OK) != (status == OK) and e.status == OK):
                return e
            changed = True
            fail = None
            if status == FAILED:
                fail = {"kind": failure or FINAL, "settings": dict(self.settings), "session": self.session}
            return Entry(status, dict(objectives), max(int(n), 1), 0, float(cost_s), error,
                         candidate if e is None else (e.candidate or candidate), fail,
                         None if constraints is None or status != OK
                         else {str(k): float(v) for k, v in constraints.items()})

        if self._db is None:
            self._update(key, fold)
        else:
            e = self._read(key)
            if e is not None and e.n >= n:
                return False
            self._update(key, fold)
        return changed

    def reconcile_log(self, records: Sequence[Any], shared: Callable[[Mapping[str, float]], dict[str, float]]
                      | None = None) -> int:
        """Reconcile every key a run log charged (see :meth:`reconcile`); return how many entries
        were repaired.  ``records`` are :class:`automl.types.Record` objects or their JSON dicts.
        For each key the charged record with the largest ``n`` carries the aggregate as it was
        after its evaluation; ``shared`` keeps of its objectives what the cache stores."""
        def field(rec: Any, name: str, default: Any = None) -> Any:
            return rec.get(name, default) if isinstance(rec, Mapping) else getattr(rec, name, default)

        latest: dict[str, Any] = {}
        cost: dict[str, float] = {}
        for rec in records:
            h = field(rec, "hash")
            if not field(rec, "charged") or not h:
                continue
            cost[h] = cost.get(h, 0.0) + float(field(rec, "cost_s") or 0.0)
            if h not in latest or int(field(rec, "n") or 1) >= int(field(latest[h], "n") or 1):
                latest[h] = rec
        fixed = 0
        for h, rec in latest.items():
            objectives = dict(field(rec, "objectives") or {})
            if shared is not None:
                objectives = shared(objectives)
            fixed += self.reconcile(h, str(field(rec, "status")), objectives, int(field(rec, "n") or 1), cost[h],
                                    field(rec, "error"), field(rec, "candidate"), field(rec, "failure"),
                                    field(rec, "constraints"))
        return fixed

    def __len__(self) -> int:
        if self._db is not None:
            self.flush()
            return int(self._retry(lambda: self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]))
        return len(self._mem)


def _numbers(d: Any) -> bool:
    """``d`` is a ``{str: number}`` dict (as stored objectives and constraints must be)."""
    return isinstance(d, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for k, v in d.items())


def _mean(old: Mapping[str, float], new: Mapping[str, float], n: int) -> dict[str, float]:
    """Running mean after the ``n``-th value: ``old`` holds the mean of the first ``n - 1``."""
    return {k: old.get(k, v) + (v - old.get(k, v)) / n for k, v in new.items()}


def failure_is_stale(e: Entry, settings: Mapping[str, Any], session: str) -> bool:
    """Whether a cached failure should be retried rather than served:

    * ``timeout``: retried when the current timeout is unset or larger than the one it ran under;
    * ``transient`` (an OSError, MemoryError, a dead worker...): retried by any later run (another
      cache session), served as a hit within the run that recorded it;
    * ``final`` (the evaluator raised on the candidate itself): served, unless the settings it was
      recorded under differ from the current ones.
    Entries written before failures carried their cause count as ``timeout`` when their error
    says so, else ``final``.
    """
    f = e.failure or {"kind": TIMEOUT if (e.error or "").startswith("timed out") else FINAL, "settings": {}}
    kind, then = f.get("kind"), f.get("settings") or {}
    if kind == TIMEOUT:
        now_t, then_t = settings.get("timeout"), then.get("timeout")
        return now_t is None or then_t is None or float(now_t) > float(then_t)
    if kind == TRANSIENT:
        return f.get("session") != session
    return any(then.get(k) != v for k, v in settings.items() if k != "timeout" and k in then)


class NullCache(Cache):
    """A cache that stores nothing (every lookup is a miss): searching 'without the cache'."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(None, settings)

    def get(self, key: str, fresh: bool = False) -> Entry | None:
        return None

    def cached(self, key: str) -> Entry | None:
        return None

    def put(self, key: str, entry: Entry) -> None:
        pass

    def add_hit(self, key: str) -> None:
        pass

    def alias(self, structural: str) -> str | None:
        return None

    def set_alias(self, structural: str, functional: str) -> None:
        pass

    def reconcile(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def fold(self, key: str, status: str, objectives: Mapping[str, float], cost_s: float,
             error: str | None = None, candidate: str | None = None, failure: str | None = None,
             constraints: Mapping[str, float] | None = None) -> Entry:
        return Entry(str(status), dict(objectives), 1, 0, cost_s, error, candidate, None,
                     None if constraints is None or str(status) != OK else dict(constraints))
