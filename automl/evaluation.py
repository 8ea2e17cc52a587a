"""The evaluation seam: the one place that applies cache policy and accounts cost.

For each candidate, :meth:`Seam.prepare` runs, in order: validation (abstract execution; an
invalid candidate is answered ``invalid`` at no charge), the structural lookup (canonical form
→ functional digest, no probe), the functional probe on a structural miss, then the policy
decision.  A full hit is answered at once and charged only its probe cost; a miss or partial
hit becomes a ticket that a runner evaluates with :func:`run_evaluation`, and
:meth:`Seam.complete` folds the raw outcome into the cache and returns the final result.
"""
from __future__ import annotations

import dataclasses
import math
import time
import traceback
from typing import Any, Mapping

from .cache import FINAL, TIMEOUT, TRANSIENT, Cache
from .errors import ConfigError, InvalidCandidate, TransientEvaluationError
from .hashing import Hasher
from .types import FAILED, HIT, INVALID, MISS, OK, PARTIAL, Candidate, EvalResult, classify_objectives


@dataclasses.dataclass
class Ticket:
    """A prepared candidate: its digests, the policy's decision, and (on a hit) the result."""

    candidate: Candidate
    structural_hash: str
    hash: str
    outcome: str  # miss / partial / hit
    probe_cost: float
    result: EvalResult | None = None  # set for hits and for invalid candidates


class Seam:
    """Binds a space, an evaluator and a cache; see the module docstring.

    ``dedupe="structural"`` keys the cache by the structural digest alone (no probe is run; the
    logged ``hash`` is then the structural digest): cheaper, but blind to equivalences that
    only the probe sees.
    """

    def __init__(self, space: Any, evaluator: Any, cache: Cache, probe_seed: int | None = None,
                 dedupe: str = "functional"):
        if dedupe not in ("functional", "structural"):
            raise ConfigError(f"dedupe must be 'functional' or 'structural', got {dedupe!r}")
        self.space, self.evaluator, self.cache, self.dedupe = space, evaluator, cache, dedupe
        self.hasher = Hasher(space, evaluator, probe_seed)

    def prepare(self, cand: Candidate) -> Ticket:
        t0 = time.perf_counter()
        genome = cand.genome
        try:
            self.space.validate(genome)
        except InvalidCandidate as exc:
            cost = time.perf_counter() - t0
            res = EvalResult(INVALID, {}, cost, MISS, charged=0, error=f"invalid candidate: {exc}", n=0)
            return Ticket(cand, "", "", MISS, cost, res)
        s = self.hasher.structural(genome)
        f = s if self.dedupe == "structural" else self.cache.alias(s)
        if f is None:
            f = self.hasher.functional(genome)
            self.cache.set_alias(s, f)
        else:
            self.cache.stats.structural_hits += 1
        outcome, entry = self.cache.decide(f)
        cost = time.perf_counter() - t0
        t = Ticket(cand, s, f, outcome, cost)
        if outcome == HIT:
            self.cache.note_hit(f, cost)
            t.result = EvalResult(entry.status, self.own_objectives(cand, entry.status, entry.objectives), cost,
                                  HIT, charged=0, error=entry.error, n=entry.n, structural_hash=s, hash=f)
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

    def complete(self, ticket: Ticket, raw: dict[str, Any]) -> EvalResult:
        """Fold a runner's raw outcome (see :func:`run_evaluation`) into the cache."""
        if raw.get("error") is not None:
            status, objectives, error = FAILED, {}, raw["error"]
        else:
            status, objectives, error = classify_objectives(raw.get("objectives"))
        cost = float(raw.get("cost_s", 0.0))
        e = self.cache.record(ticket.hash, status, self._shared(objectives), cost, error, ticket.candidate.text,
                              raw.get("failure"))
        return EvalResult(e.status, self.own_objectives(ticket.candidate, e.status, e.objectives),
                          cost + ticket.probe_cost, ticket.outcome, charged=1, error=e.error, n=e.n,
                          structural_hash=ticket.structural_hash, hash=ticket.hash,
                          extra={k: raw[k] for k in ("worker", "attempts", "failure") if k in raw} or None)

    def coalesced(self, ticket: Ticket, result: EvalResult) -> EvalResult:
        """Result for a candidate that waited on an in-flight evaluation of the same digest."""
        st = self.cache.stats  # its lookup was counted a miss (or partial): it turned out a hit
        if ticket.outcome == PARTIAL:
            st.partial_hits -= 1
        else:
            st.misses -= 1
        st.hits += 1
        self.cache.stats.evaluations_saved += 1
        return dataclasses.replace(result, cache=HIT, charged=0, cost_s=ticket.probe_cost,
                                   objectives=self.own_objectives(ticket.candidate, result.status, result.objectives),
                                   structural_hash=ticket.structural_hash, hash=ticket.hash, extra=None)


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
    failure = None
    try:
        if genome is None:
            genome = space.from_text(text)
        objectives = evaluator.evaluate(genome, space)
        if isinstance(objectives, Mapping):  # plain floats travel best across processes
            objectives = {str(k): v if isinstance(v, float) else _to_float(v) for k, v in objectives.items()}
        out = {"objectives": objectives, "error": None}
    except Interrupted:
        raise
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # a failed evaluation is a recorded state
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        msg = str(exc)
        if len(msg) > 500:
            msg = msg[:500] + "..."
        out = {"objectives": None, "error": f"{type(exc).__name__}: {msg}{where}"}
        failure = TRANSIENT if isinstance(exc, (*TRANSIENT_ERRORS, KeyboardInterrupt, SystemExit)) else FINAL
    out["cost_s"] = time.perf_counter() - t0
    if timeout and out["cost_s"] > timeout:
        out.update(objectives=None, error=f"timed out after {timeout:g} s", failure=TIMEOUT)
    elif failure is not None:
        out["failure"] = failure
    return out
