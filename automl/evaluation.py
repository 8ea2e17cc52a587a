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
import signal
import threading
import time
import traceback
from typing import Any, Mapping

from .cache import Cache
from .errors import ConfigError, EvaluationTimeout, InvalidCandidate
from .hashing import Hasher
from .types import FAILED, HIT, INVALID, MISS, PARTIAL, Candidate, EvalResult, classify_objectives


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
        f = s if self.dedupe == "structural" else self.cache.alias(self.hasher.alias_key(s))
        if f is None:
            f = self.hasher.functional(genome)
            self.cache.set_alias(self.hasher.alias_key(s), f)
        else:
            self.cache.stats.structural_hits += 1
        outcome, entry = self.cache.decide(f)
        cost = time.perf_counter() - t0
        t = Ticket(cand, s, f, outcome, cost)
        if outcome == HIT:
            self.cache.note_hit(f, cost)
            t.result = EvalResult(entry.status, dict(entry.objectives), cost, HIT, charged=0, error=entry.error,
                                  n=entry.n, structural_hash=s, hash=f)
        return t

    def complete(self, ticket: Ticket, raw: dict[str, Any]) -> EvalResult:
        """Fold a runner's raw outcome (see :func:`run_evaluation`) into the cache."""
        if raw.get("error") is not None:
            status, objectives, error = FAILED, {}, raw["error"]
        else:
            status, objectives, error = classify_objectives(raw.get("objectives"))
        cost = float(raw.get("cost_s", 0.0))
        e = self.cache.record(ticket.hash, status, objectives, cost, error, ticket.candidate.text)
        return EvalResult(e.status, dict(e.objectives), cost + ticket.probe_cost, ticket.outcome, charged=1,
                          error=e.error, n=e.n, structural_hash=ticket.structural_hash, hash=ticket.hash,
                          extra={k: raw[k] for k in ("worker", "attempts") if k in raw} or None)

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
                                   structural_hash=ticket.structural_hash, hash=ticket.hash, extra=None)


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
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            objectives = evaluator.evaluate(genome, space)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0.0)
                signal.signal(signal.SIGALRM, old)
        if isinstance(objectives, Mapping):  # plain floats travel best across processes
            objectives = {str(k): v if isinstance(v, (int, float)) else _to_float(v) for k, v in objectives.items()}
        out = {"objectives": objectives, "error": None}
    except EvaluationTimeout:
        out = {"objectives": None, "error": f"timed out after {timeout:g} s"}
    except Exception as exc:  # an evaluator's failure is a recorded state, not a crash
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        out = {"objectives": None, "error": f"{type(exc).__name__}: {exc}{where}"}
    out["cost_s"] = time.perf_counter() - t0
    return out
