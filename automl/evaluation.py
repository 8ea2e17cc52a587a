"""The evaluation seam: the one place that applies cache policy, accounts cost and counts.

For each candidate, :meth:`Seam.prepare` runs, in order: validation (an invalid candidate is
answered ``invalid`` at no charge), the structural lookup (canonical form -> functional digest,
no probe), the functional probe on a structural miss, then the policy decision.  A full hit is
answered at once and charged only its probe cost; a miss or partial hit becomes a ticket that a
runner evaluates with :func:`run_evaluation`, and :meth:`Seam.complete` folds the raw outcome
into the cache and returns the final result.  :meth:`Seam.coalesced` answers a candidate that
waited on an in-flight twin.

The seam also serves digests to strategies (:meth:`Seam.digest`, e.g. functional-change
mutation): memoized through the cache's structural table, counted, and their probe time charged
to the next candidate prepared (so it shows in that record's ``cost_s``).  Statistics are counted
when a result is delivered, never corrected afterwards; :meth:`Seam.refill` re-fills the cache
from a run log on resume.  The cache itself (:mod:`automl.cache`) is storage.
"""
from __future__ import annotations

import dataclasses
import math
import time
import traceback
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .cache import FINAL, TIMEOUT, TRANSIENT, Cache, failure_is_stale
from .errors import ConfigError, InvalidCandidate, TransientEvaluationError
from .hashing import Hasher
from .policy import CachePolicy, SessionStats, seconds_saved
from .types import (FAILED, HIT, INVALID, MISS, OK, PARTIAL, CacheOutcome, Candidate, EvalResult, Evaluation, Record,
                    Status, classify_objectives)


_STATUS = {s.value: s for s in Status}


@dataclasses.dataclass
class Ticket:
    """A prepared candidate: its digests, the policy's decision, and (on a hit) the result."""

    candidate: Candidate
    structural_hash: str
    hash: str
    outcome: CacheOutcome
    probe_cost: float
    result: EvalResult | None = None  # set for hits and for invalid candidates

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        return {"id": c.id, "text": c.text, "parents": list(c.parents), "generation": c.generation,
                "params": None if c.params is None else dict(c.params), "structural_hash": self.structural_hash,
                "hash": self.hash, "outcome": self.outcome.value, "probe_cost": self.probe_cost,
                "origin": (c.meta or {}).get("origin")}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], space: Any) -> "Ticket":
        c = Candidate(d["id"], space.from_text(d["text"]), d["text"], tuple(d["parents"]), d["generation"],
                      d.get("params"), {"origin": d["origin"]} if d.get("origin") else None)
        return cls(c, d["structural_hash"], d["hash"], CacheOutcome(d["outcome"]), d["probe_cost"])


class Seam:
    """Binds a space, an evaluator, a cache (storage) and a :class:`CachePolicy`; see the module
    docstring.  ``seed`` seeds the policy's own RNG (forgetting); never the global one.

    ``dedupe="structural"`` keys the cache by the structural digest alone (no probe is run; the
    logged ``hash`` is then the structural digest): cheaper, but blind to equivalences that
    only the probe sees.
    """

    def __init__(self, space: Any, evaluator: Any, cache: Cache | None = None, policy: CachePolicy | None = None,
                 probe_seed: int | None = None, dedupe: str = "functional", seed: int = 0):
        if dedupe not in ("functional", "structural"):
            raise ConfigError(f"dedupe must be 'functional' or 'structural', got {dedupe!r}")
        self.space, self.evaluator, self.dedupe = space, evaluator, dedupe
        self.cache = cache if cache is not None else Cache(None)
        self.policy = CachePolicy.resolve(policy, evaluator)
        self.hasher = Hasher(space, evaluator, probe_seed)
        self.stats = SessionStats()
        self._rng = np.random.default_rng(seed)
        self._pending_probe_s = 0.0  # strategy digests, charged to the next candidate prepared

    @property
    def rng(self) -> np.random.Generator:
        """The policy's own RNG (a front end that checkpoints saves ``rng.bit_generator.state``)."""
        return self._rng

    # --- digests --------------------------------------------------------------------------------
    def _functional(self, genome: Any, structural: str) -> str:
        key = self.hasher.alias_key(structural)
        f = self.cache.alias(key)
        if f is not None:
            self.stats.structural_hits += 1
            return f
        t0 = time.perf_counter()
        f = self.hasher.functional(genome)
        self.stats.probes += 1
        self.stats.probe_s += time.perf_counter() - t0
        self.cache.set_alias(key, f)
        return f

    def digest(self, genome: Any) -> str:
        """The functional digest of ``genome`` for a strategy (memoized by structural digest through
        the cache, counted in ``stats.strategy_digests``, its cost charged to the next candidate)."""
        t0 = time.perf_counter()
        self.stats.strategy_digests += 1
        f = self._functional(genome, self.hasher.structural(genome))
        self._pending_probe_s += time.perf_counter() - t0
        return f

    # --- the seam -------------------------------------------------------------------------------
    def prepare(self, cand: Candidate) -> Ticket:
        t0 = time.perf_counter()
        pending, self._pending_probe_s = self._pending_probe_s, 0.0
        genome = cand.genome
        try:
            self.space.validate(genome)
        except InvalidCandidate as exc:
            cost = time.perf_counter() - t0 + pending
            res = EvalResult(INVALID, {}, cost, MISS, charged=0, error=f"invalid candidate: {exc}", n=0)
            return Ticket(cand, "", "", MISS, cost, res)
        s = self.hasher.structural(genome)
        f: str
        if self.dedupe == "structural":
            f = s
        else:
            f = self._functional(genome, s)  # the alias table first, the probe on a miss
        entry = self.cache.cached(f)
        if entry is None or entry.status != OK or entry.n < self.policy.k:
            # memory cannot answer with a hit: read the row (another process sharing the cache
            # file may have evaluated this key since) -- once
            entry = self.cache.get(f, fresh=True)
        if entry is not None and entry.status == FAILED and failure_is_stale(entry, self.cache.settings,
                                                                              self.cache.session):
            entry = None  # a failure under other settings, or a transient one from an earlier run: retry
        outcome = self.policy.decide(entry, self._rng)
        cost = time.perf_counter() - t0 + pending
        t = Ticket(cand, s, f, outcome, cost)
        if outcome is HIT and entry is not None:
            saved = seconds_saved(entry.mean_cost, cost)
            st = self.stats
            st.hits += 1
            st.evaluations_saved += 1
            st.seconds_saved += saved
            self.cache.add_hit(f)  # (an increment: hits served by other processes add up)
            t.result = EvalResult(_STATUS[entry.status], self.own_objectives(cand, entry.status, entry.objectives),
                                  cost, HIT, 0, entry.error, entry.n, s, f, None, saved,
                                  constraints=_constraints(entry))
        return t

    def own_objectives(self, cand: Candidate, status: str, objectives: Mapping[str, float]) -> dict[str, float]:
        """``objectives`` (a class's, from the cache) with the evaluator's per-candidate objectives
        (``Evaluator.per_candidate``: size, parameter count of this encoding...) recomputed for
        ``cand`` itself: those are never copied from an equivalent candidate."""
        own = tuple(getattr(self.evaluator, "per_candidate", ()) or ())
        if not own or status != OK:
            return dict(objectives)
        mine = self.evaluator.candidate_objectives(cand.genome, self.space)
        out = {k: float(mine[k]) if k in own else v for k, v in objectives.items()}
        for k in own:
            out.setdefault(k, float(mine[k]))
        return out

    def _shared(self, objectives: Mapping[str, float]) -> dict[str, float]:
        """What the cache keeps of a result: the functional objectives only."""
        own = getattr(self.evaluator, "per_candidate", ()) or ()
        return {k: v for k, v in objectives.items() if k not in own}

    def complete(self, ticket: Ticket, raw: Mapping[str, Any]) -> EvalResult:
        """Fold a runner's raw outcome (see :func:`run_evaluation`) into the cache."""
        objectives: dict[str, float]
        if raw.get("error") is not None:
            status, objectives, error = FAILED, {}, raw["error"]
        else:
            status, objectives, error = classify_objectives(raw.get("objectives"))
        cost = float(raw.get("cost_s", 0.0))
        if ticket.outcome == PARTIAL:
            self.stats.partial_hits += 1
        else:
            self.stats.misses += 1
        self.stats.evaluations += 1
        constraints = raw.get("constraints") if status == OK else None
        e = self.cache.fold(ticket.hash, status, self._shared(objectives), cost, error, ticket.candidate.text,
                            raw.get("failure"), constraints)
        return EvalResult(Status(e.status), self.own_objectives(ticket.candidate, e.status, e.objectives),
                          cost + ticket.probe_cost, ticket.outcome, charged=1,
                          error=e.error, n=e.n, structural_hash=ticket.structural_hash, hash=ticket.hash,
                          extra={k: raw[k] for k in ("worker", "attempts", "failure") if k in raw} or None,
                          constraints=_constraints(e) if e.status == OK else raw.get("constraints"),
                          info=raw.get("info"))

    def complete_many(self, pairs: Sequence[tuple[Ticket, Mapping[str, Any]]]) -> list[EvalResult]:
        """:meth:`complete` for a generation of results, folded in one cache write transaction."""
        with self.cache.batch():
            return [self.complete(t, raw) for t, raw in pairs]

    def coalesced(self, ticket: Ticket, result: EvalResult) -> EvalResult:
        """Result for a candidate that waited on an in-flight evaluation of the same digest: a hit."""
        e = self.cache.get(ticket.hash)
        saved = seconds_saved(e.mean_cost if e is not None else result.cost_s, ticket.probe_cost)
        self.stats.hits += 1
        self.stats.evaluations_saved += 1
        self.stats.seconds_saved += saved
        constraints = _constraints(e) if e is not None and e.status == result.status else result.constraints
        return dataclasses.replace(result, cache=HIT, charged=0, cost_s=ticket.probe_cost, saved_s=saved,
                                   constraints=constraints,
                                   objectives=self.own_objectives(ticket.candidate, result.status, result.objectives),
                                   structural_hash=ticket.structural_hash, hash=ticket.hash,
                                   extra={"coalesced": True})

    # --- resume ---------------------------------------------------------------------------------
    def refill(self, records: Iterable[Record]) -> int:
        """Reconcile the cache with a run log (resume): for **every** key the log charged, the cache
        holds at least the log's aggregate (a kill -9 can leave the log ahead of the cache; a cache
        file lost or not shared is refilled), per-candidate objectives left out; structural aliases
        are restored.  Returns how many entries were repaired."""
        records = list(records)
        fixed = self.cache.reconcile_log(records, self._shared)
        if self.dedupe == "functional":
            for rec in records:
                if rec.hash and rec.structural_hash:
                    self.cache.set_alias(self.hasher.alias_key(rec.structural_hash), rec.hash)
        self.cache.flush()
        return fixed


def _constraints(e: Any) -> dict[str, float] | None:
    """A cache entry's constraints as a result carries them (the class's aggregate, a copy)."""
    return None if e.constraints is None else dict(e.constraints)


# --- running one evaluation (every runner calls this, wherever it runs) --------------------------------

#: Exceptions whose failure says nothing about the candidate: cached ``transient`` (retried by a
#: later run) rather than ``final``.
TRANSIENT_ERRORS = (TransientEvaluationError, OSError, MemoryError, ConnectionError)


def _to_float(v: Any) -> Any:
    try:
        return float(v)
    except OverflowError:  # an int beyond float range (10**400): infinite, so the result is invalid
        return -math.inf if isinstance(v, int) and v < 0 else math.inf
    except (TypeError, ValueError):
        return repr(v)[:200]  # classify_objectives names the bad value


def run_evaluation(evaluator: Any, space: Any, text: str, timeout: float | None = None,
                   genome: Any = None) -> dict[str, Any]:
    """Rebuild the genome from ``text`` (unless given) and evaluate it.  Never raises for
    evaluator problems, ``KeyboardInterrupt`` and ``SystemExit`` raised *by the evaluator*
    included (a real Ctrl-C or SIGTERM to this process arrives as
    :class:`automl.lifecycle.Interrupted` and propagates).

    Returns data only: ``{"objectives": dict | None, "error": str | None, "failure": kind,
    "cost_s": float}`` where ``failure`` is ``final`` or ``transient`` (see
    ``automl.cache.failure_is_stale``).  No signal is used here: runners enforce ``timeout`` by
    running the evaluation in a process they kill (every runner, the serial one included).  An
    evaluation that returns but ran past ``timeout`` is reported timed out all the same.
    """
    from .lifecycle import Interrupted

    t0 = time.perf_counter()
    try:
        if genome is None:
            genome = space.from_text(text)
        out = _raw_of(evaluator.evaluate(genome, space))
    except Interrupted:
        raise
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # a failed evaluation is a recorded state
        out = _raw_error(exc)
    out["cost_s"] = time.perf_counter() - t0
    if timeout and out["cost_s"] > timeout:
        out.update(objectives=None, error=f"timed out after {timeout:g} s", failure=TIMEOUT)
    return out


def _raw_of(value: Any) -> dict[str, Any]:
    """An evaluator's return value (a mapping or an :class:`~automl.types.Evaluation`) as raw data."""
    out: dict[str, Any] = {"error": None}
    if isinstance(value, Evaluation):
        if value.constraints:
            out["constraints"] = {str(k): _to_float(v) for k, v in value.constraints.items()}
        if value.info:
            out["info"] = _jsonable(value.info)
        value = value.objectives
    if isinstance(value, Mapping):  # plain floats travel best across processes
        value = {str(k): v if isinstance(v, float) else _to_float(v) for k, v in value.items()}
    out["objectives"] = value
    return out


def _raw_error(exc: BaseException) -> dict[str, Any]:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    msg = str(exc)
    if len(msg) > 500:
        msg = msg[:500] + "..."
    transient = isinstance(exc, (*TRANSIENT_ERRORS, KeyboardInterrupt, SystemExit))
    out: dict[str, Any] = {"objectives": None, "error": f"{type(exc).__name__}: {msg}{where}",
                           "failure": TRANSIENT if transient else FINAL}
    info = getattr(exc, "info", None)  # an exception may carry facts for the log (e.g. a divergence step)
    if isinstance(info, Mapping):
        out["info"] = _jsonable(info)
    return out


def _jsonable(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` restricted to JSON values (anything else becomes its repr): it is logged as data."""
    def conv(v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        return repr(v)

    return {str(k): conv(v) for k, v in info.items()}


def has_batch(evaluator: Any) -> bool:
    """True when ``evaluator`` offers ``evaluate_batch`` (see :meth:`automl.Evaluator.evaluate_batch`)."""
    fn = getattr(type(evaluator), "evaluate_batch", None)
    from .evaluator import Evaluator

    return fn is not None and fn is not Evaluator.evaluate_batch


def run_batch(evaluator: Any, space: Any, texts: Sequence[str], timeout: float | None = None,
              genomes: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate several candidates: one ``evaluate_batch`` call when the evaluator offers it, else
    one :func:`run_evaluation` each.  A batch's measured time is charged to its members: what a
    member's :class:`~automl.types.Evaluation` claims as ``cost_s`` (its share of the compute),
    plus an even share of the rest.  Never raises for evaluator problems: a batch that raises
    fails every member with that error; a text that does not parse fails alone.  ``timeout``
    applies to each evaluation (to the whole batch, scaled by its size)."""
    if not has_batch(evaluator) or len(texts) <= 1:
        gs = genomes if genomes is not None else [None] * len(texts)
        return [run_evaluation(evaluator, space, t, timeout, g) for t, g in zip(texts, gs)]
    t0 = time.perf_counter()
    outs: list[dict[str, Any] | None] = [None] * len(texts)
    built: list[tuple[int, Any]] = []
    for i, t in enumerate(texts):
        try:
            built.append((i, genomes[i] if genomes is not None and genomes[i] is not None else space.from_text(t)))
        except Exception as exc:  # a bad text fails alone
            outs[i] = _raw_error(exc)
    claimed = [0.0] * len(texts)
    try:
        values = list(evaluator.evaluate_batch([g for _, g in built], space))
        if len(values) != len(built):
            raise ConfigError(f"evaluate_batch returned {len(values)} results for {len(built)} candidates")
        for (i, _), v in zip(built, values):
            outs[i] = _raw_error(v) if isinstance(v, BaseException) else _raw_of(v)
            c = getattr(v, "cost_s", None) if isinstance(v, Evaluation) else None
            if c is not None and math.isfinite(c) and c > 0:
                claimed[i] = float(c)
    except Exception as exc:  # the evaluator's failure: every member of the batch records it
        claimed = [0.0] * len(texts)
        for i, _ in built:
            outs[i] = _raw_error(exc)
    total = time.perf_counter() - t0
    rest = max(0.0, total - sum(claimed)) / len(texts)
    done: list[dict[str, Any]] = [o if o is not None else {"objectives": None, "error": "not evaluated"}
                                  for o in outs]
    for o, c in zip(done, claimed):
        o["cost_s"] = c + rest
    return done
