"""Ranking results: direction signs, best-so-far, Pareto dominance.  The one home of these rules
(the engine, reports, the Tune searcher, the Optuna export and the strategies use it).

A *row* is anything with ``status`` and ``objectives``: a run-log record (dict), a
:class:`~automl.types.Record` or an :class:`~automl.types.EvalResult`.  Only ``ok`` rows with a
finite value rank; everything else is worse than any of them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .types import OK, Direction, Objective, objectives_of

__all__ = ["Objective", "Direction", "objectives_of", "value", "fitness", "dominates", "pareto_front", "best",
           "best_so_far", "violation", "feasible", "selection_key"]


def value(row: Any, objective: Objective) -> float | None:
    """The row's finite value of ``objective``, or None (failed, invalid, missing, non-finite)."""
    if type(row) is dict:
        status, objs = row.get("status"), row.get("objectives")
    else:
        status, objs = row.status, row.objectives
    if status != OK or not objs:
        return None
    v = objs.get(objective.name)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def violation(row: Any) -> float:
    """The row's total constraint violation: the sum of its positive ``constraints`` values (see
    :class:`~automl.types.Evaluation`); 0.0 when every constraint holds or there are none."""
    cons = row.get("constraints") if type(row) is dict else getattr(row, "constraints", None)
    return sum(max(float(v), 0.0) for v in (cons or {}).values())


def feasible(row: Any) -> bool:
    """True when no constraint of the row is violated (trivially so without constraints)."""
    return violation(row) <= 0.0


def ranked_value(row: Any, objective: Objective) -> float | None:
    """:func:`value` for ranking: None also when the row violates a constraint, so an infeasible
    result is never the best and never a best-so-far (tournaments and multi-objective strategies
    order infeasible results after feasible ones, by their violation: :func:`selection_key`)."""
    v = value(row, objective)
    return v if v is None or feasible(row) else None


def fitness(row: Any, objective: Objective) -> float:
    """The value as a number to maximise; -inf when the row does not rank (see :func:`ranked_value`)."""
    v = ranked_value(row, objective)
    if v is None:
        return -math.inf
    return -v if objective.direction is Direction.MIN else v


def selection_key(row: Any, objective: Objective) -> tuple[int, float]:
    """A row's place in a single-objective tournament, as a key to maximise: Deb's constrained
    tournament rule (Deb 2000, "An efficient constraint handling method for genetic algorithms").
    A feasible row that ranks beats any infeasible one and feasible rows compare by fitness; an
    ``ok`` row that violates a constraint beats rows that do not rank at all, and infeasible rows
    compare by total violation (the smaller, the better), so a search whose feasible region is
    narrow (a MACs window) climbs towards it instead of walking at random; failed, invalid and
    non-finite rows come last, all equal.  An infeasible row is still never the best."""
    f = fitness(row, objective)
    if math.isfinite(f):
        return (2, f)
    status = row.get("status") if type(row) is dict else row.status
    v = violation(row)
    if status == OK and v > 0.0 and math.isfinite(v):
        return (1, -v)
    return (0, 0.0)


def best(rows: Iterable[Any], objective: Objective) -> Any | None:
    """The first row with the best value (None when none ranks)."""
    out, out_v = None, None
    for r in rows:
        v = ranked_value(r, objective)
        if v is not None and (out_v is None or objective.better(v, out_v)):
            out, out_v = r, v
    return out


def best_so_far(rows: Iterable[Any], objective: Objective) -> Iterator[float | None]:
    """For each row in order, the best value seen up to and including it (None before the first)."""
    cur: float | None = None
    for r in rows:
        v = ranked_value(r, objective)
        if v is not None and (cur is None or objective.better(v, cur)):
            cur = v
        yield cur


def dominates(a: Sequence[float], b: Sequence[float], objectives: Sequence[Objective]) -> bool:
    """True when objective vector ``a`` is no worse than ``b`` everywhere and better somewhere."""
    sa = [o.sign * x for o, x in zip(objectives, a)]
    sb = [o.sign * x for o, x in zip(objectives, b)]
    return all(x <= y for x, y in zip(sa, sb)) and any(x < y for x, y in zip(sa, sb))


def pareto_front(rows: Iterable[Any], objectives: Sequence[Objective] | Mapping[str, str]) -> list[Any]:
    """Rows not dominated on ``objectives`` (one per distinct objective vector), sorted by the first
    objective (best first).  Rows missing an objective or with a non-finite value are left out."""
    objs = objectives_of(objectives)
    pts: dict[tuple[float, ...], Any] = {}
    for r in rows:
        vs = [value(r, o) for o in objs]
        if all(v is not None for v in vs):
            pts.setdefault(tuple(o.sign * v for o, v in zip(objs, vs)), r)  # type: ignore[operator]
    front: list[tuple[float, ...]] = []
    for v in sorted(pts):  # lexicographic: a point can only be dominated by one sorted before it
        if not any(all(a <= b for a, b in zip(f, v)) for f in front):
            front.append(v)
    return [pts[v] for v in front]
