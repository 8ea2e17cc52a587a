"""Hypervolume and non-dominated sorting of objective vectors (numpy only).

All functions take an ``(n, m)`` array and ``directions`` (a sequence of "min"/"max"); vectors
are turned into minimisation internally.  The hypervolume is the Lebesgue measure of the region
dominated by the points and bounded by the reference point ``ref`` (given in the objectives'
own units and directions); points that do not strictly dominate ``ref`` contribute nothing.
Two objectives use the exact O(n log n) sweep; more use exact recursive slicing (fine for the
few hundred points of a front).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike


def _to_min(F: ArrayLike, directions: Sequence[str] | None) -> np.ndarray:
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    if directions is None:
        return F
    if len(directions) != F.shape[1]:
        from .errors import ConfigError

        raise ConfigError(f"{len(directions)} directions for {F.shape[1]} objectives")
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return F * sign


def pareto_mask(values: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated rows (duplicates of a non-dominated row all kept)."""
    F = _to_min(values, directions)
    le = (F[:, None, :] <= F[None, :, :]).all(2)
    lt = (F[:, None, :] < F[None, :, :]).any(2)
    dominated = np.asarray((le & lt).any(0))
    return ~dominated


def nondominated_ranks(values: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """Front index of each row (0 = non-dominated), by repeated peeling (vectorised per front)."""
    F = _to_min(values, directions)
    n = len(F)
    if F.shape[1] <= 2 and n:
        return _ranks_2d(F if F.shape[1] == 2 else np.c_[F, np.zeros(n)])
    dom = np.asarray((F[:, None, :] <= F[None, :, :]).all(2) & (F[:, None, :] < F[None, :, :]).any(2))  # i dominates j
    count = dom.sum(0)
    ranks = np.full(n, -1)
    current = np.flatnonzero(count == 0)
    r = 0
    while current.size:
        ranks[current] = r
        count = count - dom[current].sum(0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        r += 1
    return ranks


def _ranks_2d(F: np.ndarray) -> np.ndarray:
    """Front index in O(n log n) for two objectives: after sorting distinct points
    lexicographically, a point is dominated by an earlier one iff that one's second objective is
    <= its own; each front keeps its smallest second objective (non-decreasing over fronts), and a
    point joins the first front whose smallest is above its own."""
    import bisect

    uniq, inv = np.unique(F, axis=0, return_inverse=True)  # lexicographic order, duplicates merged
    mins: list[float] = []
    ranks = np.empty(len(uniq), dtype=np.int64)
    for i, y in enumerate(uniq[:, 1].tolist()):
        k = bisect.bisect_right(mins, y)
        if k == len(mins):
            mins.append(y)
        else:
            mins[k] = y
        ranks[i] = k
    return ranks[np.asarray(inv).reshape(-1)]


def crowding_distance(F: ArrayLike) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points get +inf)."""
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    n, m = F.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(F[:, k], kind="stable")
        span = F[order[-1], k] - F[order[0], k]
        out[order[0]] = out[order[-1]] = np.inf
        if span > 0:
            out[order[1:-1]] += (F[order[2:], k] - F[order[:-2], k]) / span
    return out


def _hv_min(F: np.ndarray, ref: np.ndarray) -> float:
    F = F[(F < ref).all(1)]
    if len(F) == 0:
        return 0.0
    if F.shape[1] == 1:
        return float(ref[0] - F[:, 0].min())
    if F.shape[1] == 2:
        F = F[np.argsort(F[:, 0], kind="stable")]
        best_y = np.minimum.accumulate(F[:, 1])
        xs = np.append(F[1:, 0], ref[0])
        return float(np.sum((xs - F[:, 0]) * (ref[1] - best_y)))
    F = F[np.argsort(F[:, 0], kind="stable")]
    total = 0.0
    for i in range(len(F)):
        x_next = F[i + 1, 0] if i + 1 < len(F) else ref[0]
        if x_next > F[i, 0]:
            sub = F[: i + 1, 1:]
            total += (x_next - F[i, 0]) * _hv_min(sub[pareto_mask(sub)], ref[1:])
    return float(total)


def hypervolume(values: ArrayLike, ref: Sequence[float], directions: Sequence[str] | None = None) -> float:
    """Hypervolume of the rows of ``values`` against ``ref`` (see the module docstring)."""
    F = _to_min(values, directions)
    r = _to_min(np.asarray(ref, dtype=np.float64)[None, :], directions)[0]
    if F.size == 0:
        return 0.0
    F = F[np.isfinite(F).all(1)]
    return _hv_min(F, r)


def hypervolume_trajectory(F: ArrayLike, ref: Sequence[float], directions: Sequence[str] | None = None,
                           at: Sequence[int] | None = None) -> np.ndarray:
    """Hypervolume of the first N rows for each N in ``at`` (default every N = 1..n)."""
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    at = range(1, len(F) + 1) if at is None else at
    return np.array([hypervolume(F[: int(n)], ref, directions) for n in at])
