"""Exact canonical form of small vertex-labelled directed graphs (no networkx, no WL hash).

``canonical_form(labels, edges)`` returns a key that is equal for two graphs iff they are
isomorphic as labelled digraphs (an isomorphism maps labels to equal labels and edges to edges).

Method: individualization-refinement.  Colours start as the labels; each refinement round
re-colours a vertex by (its colour, sorted colours of its successors, sorted colours of its
predecessors) and re-ranks the distinct signatures in sorted order, so colours are defined by
the graph alone, never by vertex ids.  When refinement stops with a non-singleton colour class,
each vertex of the first such class is individualized in turn and the search recurses; every
leaf (all colours distinct) orders the vertices, and the key is the smallest adjacency encoding
over all leaves.  The set of leaves is invariant under isomorphism, so the minimum is a
canonical form (exact, unlike a Weisfeiler-Lehman hash).  Meant for <= ~12 vertices.
"""
from __future__ import annotations

from typing import Iterable, Sequence


def _refine(colours: list[int], succ: Sequence[Sequence[int]], pred: Sequence[Sequence[int]]) -> list[int]:
    """Iterate colour refinement to a stable partition; colours are re-ranked to 0..k-1."""
    n_colours = len(set(colours))
    while True:
        sigs = [(colours[v], tuple(sorted([colours[u] for u in succ[v]])),
                 tuple(sorted([colours[u] for u in pred[v]]))) for v in range(len(colours))]
        rank = {s: i for i, s in enumerate(sorted(set(sigs)))}
        colours = [rank[s] for s in sigs]
        if len(rank) == n_colours:
            return colours
        n_colours = len(rank)


def _leaf_code(colours: list[int], edges: Sequence[tuple[int, int]], n: int) -> int:
    """Adjacency matrix as an integer, rows/columns in colour order (colours are a permutation)."""
    code = 0
    for u, v in edges:
        code |= 1 << (colours[u] * n + colours[v])
    return code


def _search(colours: list[int], succ, pred, edges, n: int) -> int:
    if len(set(colours)) == n:
        return _leaf_code(colours, edges, n)
    counts: dict[int, int] = {}
    for c in colours:
        counts[c] = counts.get(c, 0) + 1
    target = min(c for c, k in counts.items() if k > 1)
    best = -1
    for v in range(n):
        if colours[v] != target:
            continue
        split = [2 * c + (0 if u == v else 1) for u, c in enumerate(colours)]
        code = _search(_refine(split, succ, pred), succ, pred, edges, n)
        if best < 0 or code < best:
            best = code
    return best


def canonical_form(labels: Sequence[int], edges: Iterable[tuple[int, int]]) -> tuple[tuple[int, ...], int]:
    """Canonical key of the digraph with vertex ``labels`` (ints) and directed ``edges``.

    Returns (sorted labels, adjacency code): equal iff the graphs are isomorphic.
    """
    n = len(labels)
    edges = list(edges)
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        succ[u].append(v)
        pred[v].append(u)
    # ranks of the labels (sorted) are the initial colours: canonical, independent of ids
    order = {lab: i for i, lab in enumerate(sorted(set(labels)))}
    colours = _refine([order[lab] for lab in labels], succ, pred)
    return tuple(sorted(labels)), _search(colours, succ, pred, edges, n)


def canonical_string(labels: Sequence[int], edges: Iterable[tuple[int, int]]) -> str:
    """``canonical_form`` as a compact, version-independent string (used in structural keys)."""
    labs, code = canonical_form(labels, edges)
    return f"n={len(labs)};l={'.'.join(map(str, labs))};a={code:x}"
