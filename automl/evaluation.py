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
import signal
import threading
import time
import traceback
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .cache import Cache
from .errors import ConfigError, EvaluationTimeout, InvalidCandidate
from .hashing import Hasher
from .policy import CachePolicy, SessionStats, seconds_saved
from .types import (FAILED, HIT, INVALID, MISS, PARTIAL, CacheOutcome, Candidate, EvalResult, Evaluation, Record,
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
        entry = self.cache.get(f)
        outcome = self.policy.decide(entry, self._rng)
        cost = time.perf_counter() - t0 + pending
        t = Ticket(cand, s, f, outcome, cost)
        if outcome is HIT and entry is not None:
            entry.hits += 1
            saved = seconds_saved(entry.mean_cost, cost)
            st = self.stats
            st.hits += 1
            st.evaluations_saved += 1
            st.seconds_saved += saved
            if self.policy.forget_after is not None:  # hits matter only to a forgetful policy
                self.cache.put(f, entry)
            t.result = EvalResult(_STATUS[entry.status], entry.objectives.copy(), cost, HIT, 0, entry.error,
                                  entry.n, s, f, None, saved)
        return t

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
        e = self.cache.fold(ticket.hash, status, objectives, cost, error, ticket.candidate.text)
        return EvalResult(Status(e.status), dict(e.objectives), cost + ticket.probe_cost, ticket.outcome, charged=1,
                          error=e.error, n=e.n, structural_hash=ticket.structural_hash, hash=ticket.hash,
                          extra={k: raw[k] for k in ("worker", "attempts") if k in raw} or None,
                          constraints=raw.get("constraints"), info=raw.get("info"))

    def coalesced(self, ticket: Ticket, result: EvalResult) -> EvalResult:
        """Result for a candidate that waited on an in-flight evaluation of the same digest: a hit."""
        e = self.cache.get(ticket.hash)
        saved = seconds_saved(e.mean_cost if e is not None else result.cost_s, ticket.probe_cost)
        self.stats.hits += 1
        self.stats.evaluations_saved += 1
        self.stats.seconds_saved += saved
        return dataclasses.replace(result, cache=HIT, charged=0, cost_s=ticket.probe_cost, saved_s=saved,
                                   structural_hash=ticket.structural_hash, hash=ticket.hash, extra=None)

    # --- resume ---------------------------------------------------------------------------------
    def refill(self, records: Iterable[Record]) -> None:
        """Re-fill the cache from logged records (a cache file lost or not shared): each charged
        record's key that the cache lacks is folded back in, and structural aliases restored."""
        for rec in records:
            h = rec.hash
            if rec.charged and h and self.cache.get(h) is None:
                self.cache.fold(h, rec.status, rec.objectives, rec.cost_s, rec.error, rec.candidate)
            if h and rec.structural_hash and self.dedupe == "functional":
                self.cache.set_alias(self.hasher.alias_key(rec.structural_hash), h)
        self.cache.flush()


# --- running one evaluation (every runner calls this, wherever it runs) --------------------------------

def _alarm(signum, frame):  # noqa: ARG001
    raise EvaluationTimeout("evaluation timed out")


def _to_float(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return repr(v)  # classify_objectives names the bad value


def run_evaluation(evaluator: Any, space: Any, text: str, timeout: float | None = None,
                   genome: Any = None) -> dict[str, Any]:
    """Rebuild the genome from ``text`` (unless given) and evaluate it.  Never raises for
    evaluator problems.

    Returns data only: ``{"objectives": dict | None, "error": str | None, "cost_s": float}``.
    Exceptions become an error message; ``timeout`` (seconds) is enforced with SIGALRM where
    this runs in a main thread (process-pool workers, the serial runner), otherwise the
    runner enforces it from outside.
    """
    t0 = time.perf_counter()
    use_alarm = bool(timeout) and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    old = None
    try:
        if genome is None:
            genome = space.from_text(text)
        if use_alarm:
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, float(timeout or 0.0))
        try:
            objectives = evaluator.evaluate(genome, space)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0.0)
                signal.signal(signal.SIGALRM, old)
        out = _raw_of(objectives)
    except EvaluationTimeout:
        out = {"objectives": None, "error": f"timed out after {timeout:g} s"}
    except Exception as exc:  # an evaluator's failure is a recorded state, not a crash
        out = _raw_error(exc)
    out["cost_s"] = time.perf_counter() - t0
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
        value = {str(k): v if isinstance(v, (int, float)) else _to_float(v) for k, v in value.items()}
    out["objectives"] = value
    return out


def _raw_error(exc: BaseException) -> dict[str, Any]:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    out: dict[str, Any] = {"objectives": None, "error": f"{type(exc).__name__}: {exc}{where}"}
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
    """Evaluate several candidates: one ``evaluate_batch`` call when the evaluator offers it (its
    cost is split evenly), else one :func:`run_evaluation` each.  Never raises for evaluator
    problems: a batch that raises fails every member with that error; a text that does not parse
    fails alone.  ``timeout`` applies to each evaluation (to the whole batch, scaled by its size)."""
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
    try:
        values = list(evaluator.evaluate_batch([g for _, g in built], space))
        if len(values) != len(built):
            raise ConfigError(f"evaluate_batch returned {len(values)} results for {len(built)} candidates")
        for (i, _), v in zip(built, values):
            outs[i] = _raw_error(v) if isinstance(v, BaseException) else _raw_of(v)
    except Exception as exc:  # the evaluator's failure: every member of the batch records it
        for i, _ in built:
            outs[i] = _raw_error(exc)
    each = (time.perf_counter() - t0) / len(texts)
    done: list[dict[str, Any]] = [o if o is not None else {"objectives": None, "error": "not evaluated"}
                                  for o in outs]
    for o in done:
        o["cost_s"] = each
    return done
