"""Core data types: statuses, cache outcomes, objectives, immutable candidates, evaluation
results, and the run-log record (one type, one serializer).

Statuses, cache outcomes and directions are ``str`` enums: they compare equal to their text
(``Status.OK == "ok"``) and serialize as that text, so logs stay plain JSON.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any


class Status(str, enum.Enum):
    """What became of one evaluation."""

    OK = "ok"
    FAILED = "failed"  # the evaluator raised, timed out or returned something that is not objectives
    INVALID = "invalid"  # the candidate cannot run (validation) or produced non-finite objectives

    def __str__(self) -> str:
        return self.value


class CacheOutcome(str, enum.Enum):
    """How the seam answered a candidate (see :class:`automl.policy.CachePolicy`)."""

    MISS = "miss"  # key never evaluated: evaluated now, charged
    PARTIAL = "partial"  # key known but the policy wants another real evaluation: evaluated, charged
    HIT = "hit"  # answered from the cache (or from an in-flight twin): not charged

    def __str__(self) -> str:
        return self.value


class Direction(str, enum.Enum):
    MIN = "min"
    MAX = "max"

    def __str__(self) -> str:
        return self.value


# Short names used throughout (they are the enum members).
OK, FAILED, INVALID = Status.OK, Status.FAILED, Status.INVALID
MISS, HIT, PARTIAL = CacheOutcome.MISS, CacheOutcome.HIT, CacheOutcome.PARTIAL


@dataclasses.dataclass(frozen=True)
class Objective:
    """One objective of an evaluator: its name and whether smaller or larger is better."""

    name: str
    direction: Direction = Direction.MIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))

    @property
    def sign(self) -> float:
        """+1 for a minimised objective, -1 for a maximised one: ``sign * value`` is minimised."""
        return 1.0 if self.direction is Direction.MIN else -1.0

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a < b if self.direction is Direction.MIN else a > b

    @property
    def worst(self) -> float:
        """The worst possible value (+inf when minimised, -inf when maximised)."""
        return math.inf * self.sign

    @property
    def optuna_direction(self) -> str:
        """``"minimize"`` or ``"maximize"``, as Optuna names directions."""
        return "minimize" if self.direction is Direction.MIN else "maximize"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction.value}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Objective":
        return cls(str(d["name"]), Direction(d["direction"]))


def objectives_of(spec: Any) -> tuple[Objective, ...]:
    """Objectives from an evaluator, a ``{name: "min"|"max"}`` mapping, or a list of
    :class:`Objective`/``{"name", "direction"}`` dicts (the run.json form)."""
    spec = getattr(spec, "objectives", spec)
    if isinstance(spec, Mapping):
        return tuple(Objective(str(k), Direction(v)) for k, v in spec.items())
    return tuple(o if isinstance(o, Objective) else Objective.from_json(o) for o in spec)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One proposal of a strategy.  Immutable once handed out; carries its lineage.

    ``genome`` is the space's own object (never mutated after creation); ``text`` is its
    canonical text form, the one that is logged and from which the genome can be rebuilt.
    ``params`` holds the parameter dict for strategies that propose parameters (Optuna).
    """

    id: int
    genome: Any
    text: str
    parents: tuple[int, ...] = ()
    generation: int = 0
    params: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None  # strategy bookkeeping (e.g. an Optuna trial number)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What an evaluator may return instead of a plain ``{objective: value}`` mapping.

    ``constraints``: ``{name: violation}``; a value <= 0 means satisfied, > 0 says by how much it
    is violated (e.g. ``latency_ms - budget_ms``).  A candidate is *feasible* when every violation
    is <= 0.  Constraints are a result field, never folded into the objectives.
    ``info``: small JSON-able facts about this evaluation (why a program diverged, at which step...);
    they travel from any runner to the run log (record field ``info``).
    ``cost_s``: for a member of ``evaluate_batch``, the seconds of the batch's compute this
    member used (e.g. its share of each step it took); :func:`automl.evaluation.run_batch`
    charges it that plus an even share of what no member claimed.  None: an even share of the
    batch.  Ignored for a single evaluation (its own measured time is its cost).
    """

    objectives: Mapping[str, float]
    constraints: Mapping[str, float] | None = None
    info: Mapping[str, Any] | None = None
    cost_s: float | None = None


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What the evaluation seam hands back for one candidate."""

    status: Status
    objectives: Mapping[str, float]
    cost_s: float  # evaluator seconds charged for this candidate (probe cost only on a hit)
    cache: CacheOutcome = MISS
    charged: int = 1  # real evaluations charged to the budget for this candidate
    error: str | None = None
    n: int = 1  # real evaluations aggregated into `objectives`
    structural_hash: str | None = None
    hash: str | None = None
    extra: Mapping[str, Any] | None = None  # runner facts: worker, attempts
    saved_s: float = 0.0  # evaluator seconds a hit saved (see automl.policy.seconds_saved)
    constraints: Mapping[str, float] | None = None
    info: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated (and trivially so without constraints)."""
        return all(v <= 0.0 for v in (self.constraints or {}).values())

    @property
    def violation(self) -> float:
        """Total constraint violation (0.0 when feasible)."""
        return sum(max(v, 0.0) for v in (self.constraints or {}).values())


def classify_objectives(objectives: Any) -> tuple[Status, dict[str, float], str | None]:
    """Turn an evaluator's raw return value into (status, objectives, error).

    NaN or infinite objectives make the result ``invalid``; a non-mapping or non-numeric value is
    a ``failed`` result with a message naming the problem.
    """
    if not isinstance(objectives, Mapping):
        return FAILED, {}, f"evaluator returned {type(objectives).__name__}, expected a dict of objectives"
    clean: dict[str, float] = {}
    for k, v in objectives.items():
        try:
            clean[str(k)] = float(v)
        except (TypeError, ValueError, OverflowError):
            return FAILED, {}, f"objective {k!r} is not a number: {v!r}"
    bad = [k for k, v in clean.items() if not math.isfinite(v)]
    if bad:
        return INVALID, clean, "non-finite objective(s): " + ", ".join(f"{k}={clean[k]}" for k in bad)
    return OK, clean, None


# --- the run-log record ----------------------------------------------------------------------------

_OPTIONAL = ("params", "origin", "stats", "worker", "attempts", "trial_id", "constraints", "info", "failure",
             "coalesced")
_MAPPINGS = frozenset(("params", "stats", "constraints", "info"))


@dataclasses.dataclass(slots=True)
class Record:
    """One line of ``candidates.jsonl``: a candidate and what became of it.  The one record type;
    :meth:`to_json`/:meth:`from_json` are its one serializer (run log, Tune searcher state,
    resume, reports).  Treat as immutable (not frozen only because one is built per candidate on
    the hot path, and a frozen dataclass's constructor is several times slower)."""

    id: int
    candidate: str
    status: Status
    cache: CacheOutcome
    objectives: Mapping[str, float]
    parents: tuple[int, ...] = ()
    generation: int = 0
    structural_hash: str | None = None
    hash: str | None = None
    cost_s: float = 0.0
    charged: int = 0
    n: int = 1
    error: str | None = None
    t: float | None = None
    saved_s: float = 0.0
    params: Mapping[str, Any] | None = None
    origin: str | None = None
    stats: Mapping[str, float] | None = None
    worker: int | None = None
    attempts: int | None = None
    trial_id: str | None = None
    constraints: Mapping[str, float] | None = None
    info: Mapping[str, Any] | None = None
    failure: str | None = None  # failed evaluations: final / transient / timeout (see automl.cache)
    coalesced: bool | None = None  # a hit answered by waiting on an in-flight twin (not from the stored cache)

    @classmethod
    def of(cls, cand: Candidate, res: EvalResult, t: float | None = None,
           stats: Mapping[str, float] | None = None, trial_id: str | None = None) -> "Record":
        extra = res.extra
        meta = cand.meta
        return cls(cand.id, cand.text, res.status, res.cache, res.objectives, cand.parents, cand.generation,
                   res.structural_hash, res.hash, res.cost_s, res.charged, res.n, res.error, t, res.saved_s,
                   cand.params, meta.get("origin") if meta else None, stats or None,
                   extra.get("worker") if extra else None, extra.get("attempts") if extra else None, trial_id,
                   res.constraints, res.info, extra.get("failure") if extra else None,
                   extra.get("coalesced") if extra else None)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "parents": list(self.parents), "generation": self.generation,
                             "candidate": self.candidate, "structural_hash": self.structural_hash,
                             "hash": self.hash, "cache": self.cache.value, "status": self.status.value,
                             "objectives": dict(self.objectives), "cost_s": self.cost_s, "charged": self.charged,
                             "n": self.n, "error": self.error}
        if self.t is not None:
            d["t"] = self.t
        if self.cache is CacheOutcome.HIT:
            d["saved_s"] = self.saved_s
        if self.params is not None:
            d["params"] = dict(self.params)
        if self.origin is not None:
            d["origin"] = self.origin
        if self.stats is not None:
            d["stats"] = dict(self.stats)
        if self.worker is not None:
            d["worker"] = self.worker
        if self.attempts is not None:
            d["attempts"] = self.attempts
        if self.trial_id is not None:
            d["trial_id"] = self.trial_id
        if self.constraints is not None:
            d["constraints"] = dict(self.constraints)
        if self.info is not None:
            d["info"] = dict(self.info)
        if self.failure is not None:
            d["failure"] = self.failure
        if self.coalesced is not None:
            d["coalesced"] = self.coalesced
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Record":
        return cls(id=int(d["id"]), candidate=d["candidate"], status=Status(d["status"]),
                   cache=CacheOutcome(d.get("cache", "miss")), objectives=dict(d.get("objectives") or {}),
                   parents=tuple(d.get("parents", ())), generation=int(d.get("generation", 0)),
                   structural_hash=d.get("structural_hash"), hash=d.get("hash"),
                   cost_s=float(d.get("cost_s", 0.0)), charged=int(d.get("charged", 0)), n=int(d.get("n", 1)),
                   error=d.get("error"), t=d.get("t"), saved_s=float(d.get("saved_s", 0.0)),
                   **{k: d.get(k) for k in _OPTIONAL})

    def candidate_and_result(self, genome: Any) -> tuple[Candidate, EvalResult]:
        """The (Candidate, EvalResult) this record was made from (for replaying into a strategy)."""
        extra = {k: v for k, v in (("worker", self.worker), ("attempts", self.attempts)) if v is not None}
        cand = Candidate(self.id, genome, self.candidate, self.parents, self.generation, self.params,
                         {"origin": self.origin} if self.origin else None)
        res = EvalResult(self.status, dict(self.objectives), self.cost_s, self.cache, self.charged, self.error,
                         self.n, self.structural_hash, self.hash, extra or None, self.saved_s, self.constraints,
                         self.info)
        return cand, res
