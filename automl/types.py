"""Core data types: immutable candidates and evaluation results."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

# Result statuses
OK, FAILED, INVALID = "ok", "failed", "invalid"
# Cache outcomes (see automl.cache for the exact meaning of each)
MISS, HIT, PARTIAL = "miss", "hit", "partial"


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
class EvalResult:
    """What the evaluation seam hands back for one candidate."""

    status: str  # ok / failed / invalid
    objectives: Mapping[str, float]
    cost_s: float  # evaluator seconds charged for this candidate (probe cost only on a hit)
    cache: str = MISS  # miss / hit / partial
    charged: int = 1  # real evaluations charged to the budget for this candidate
    error: str | None = None
    n: int = 1  # real evaluations aggregated into `objectives`
    structural_hash: str | None = None
    hash: str | None = None
    extra: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def classify_objectives(objectives: Mapping[str, Any]) -> tuple[str, dict[str, float], str | None]:
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
        except OverflowError:
            clean[str(k)] = math.inf
        except (TypeError, ValueError):
            return FAILED, {}, f"objective {k!r} is not a number: {v!r}"
    bad = [k for k, v in clean.items() if not math.isfinite(v)]
    if bad:
        return INVALID, clean, "non-finite objective(s): " + ", ".join(f"{k}={clean[k]}" for k in bad)
    return OK, clean, None
