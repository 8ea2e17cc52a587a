"""NB101 cells: JSON text form, validity, exact structural canonical form, functional probe."""
from __future__ import annotations

import itertools
import json
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest

import automl
from automl.errors import InvalidCandidate, ParseError
from search_spaces.cells import NB101Cell, NB101Space, canonical_form, nb101

SPACE = NB101Space()
C3, C1, MP = nb101.CONV3, nb101.CONV1, nb101.MAXPOOL
# nasbench's README example
EXAMPLE = NB101Cell.make([[0, 1, 1, 1, 0, 1, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 1, 0, 0],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 1],
                          [0, 0, 0, 0, 0, 0, 0]],
                         ["input", C1, C3, C3, C3, MP, "output"])
NODE_MATCH = nx.algorithms.isomorphism.categorical_node_match("op", None)


def relabel(cell: NB101Cell, rng: np.random.Generator) -> NB101Cell:
    """An isomorphic copy: the pruned graph renumbered in a random topological order."""
    m, ops = cell.pruned
    g = SPACE.to_networkx(NB101Cell(m, ops))
    n = len(ops)
    order = [0]
    remaining = set(range(1, n - 1))
    while remaining:  # random topological sort of the interior
        ready = sorted(v for v in remaining if all(u in order for u in g.predecessors(v)))
        v = ready[int(rng.integers(0, len(ready)))]
        order.append(v)
        remaining.remove(v)
    order.append(n - 1)
    pos = {v: k for k, v in enumerate(order)}
    new = [[0] * n for _ in range(n)]
    for i, j in g.edges:
        new[pos[i]][pos[j]] = 1
    return NB101Cell.make(new, [ops[v] for v in order])


def test_text_round_trip():
    text = SPACE.to_text(EXAMPLE)
    assert json.loads(text) == {"matrix": [list(r) for r in EXAMPLE.matrix], "ops": list(EXAMPLE.ops)}
    assert SPACE.from_text(text) == EXAMPLE
    assert SPACE.to_text(SPACE.from_text(text)) == text
    assert EXAMPLE.automl_space == "nb101"
    rng = np.random.default_rng(0)
    for _ in range(100):
        g = SPACE.sample(rng)
        assert SPACE.from_text(SPACE.to_text(g)) == g
        assert nb101.from_naslib_tuple(nb101.to_naslib_tuple(g)) == g


def _spec(matrix, ops):
    return json.dumps({"matrix": matrix, "ops": ops})


TRI = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("text, error, words", [
    ("", ParseError, "not valid JSON"),
    ('{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]', ParseError, "not valid JSON"),
    ("[1, 2]", ParseError, 'keys "matrix" and "ops"'),
    ('{"matrix": [[0, 1], [0, 0]]}', ParseError, 'keys "matrix" and "ops"'),
    (_spec(TRI, ["input", "conv5x5-bn-relu", "output"]), ParseError, "unknown op 'conv5x5-bn-relu' at vertex 1"),
    (_spec([[0, 2, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"]), ParseError, "must be 0 or 1"),
    (_spec([[0, True, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"]), ParseError, "must be 0 or 1"),
    (_spec(TRI, ["input", C3, "output", "output"]), InvalidCandidate, "ops has 4 entries"),
    (_spec([[0, 1], [0, 0, 1]], ["input", "output"]), InvalidCandidate, "must be square"),
    (_spec(TRI, [C3, C3, "output"]), InvalidCandidate, "vertex 0 must be 'input'"),
    (_spec([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", C3, "output"]), InvalidCandidate, "upper triangular"),
    (_spec([[0, 1, 0], [0, 1, 1], [0, 0, 0]], ["input", C3, "output"]), InvalidCandidate, "self-loop"),
    (_spec([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C3, "output"]), InvalidCandidate, "not connected"),
    (_spec([[0] * 8 for _ in range(8)], ["input"] + [C3] * 6 + ["output"]), InvalidCandidate,
     "too many vertices: 8 > 7"),
    (_spec([[1 if j > i else 0 for j in range(6)] for i in range(6)], ["input"] + [C3] * 4 + ["output"]),
     InvalidCandidate, "too many edges: 15 > 9"),
])
def test_invalid_specs(text, error, words):
    with pytest.raises(error, match=words):
        SPACE.from_text(text)


def test_edge_limit_applies_after_pruning():
    # 11 raw edges, but vertex 5 is dead (no path to the output): 7 edges remain
    m = [[0, 1, 1, 1, 0, 1, 0],
         [0, 0, 0, 0, 1, 1, 0],
         [0, 0, 0, 0, 1, 1, 0],
         [0, 0, 0, 0, 1, 1, 0],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0, 0, 0]]
    cell = NB101Cell.make(m, ["input", C3, C3, C3, C1, MP, "output"])
    assert sum(map(sum, m)) == 11
    assert len(cell.pruned[1]) == 6 and sum(map(sum, cell.pruned[0])) == 7


def test_sample_and_mutate_are_valid_and_seeded():
    a = [SPACE.to_text(SPACE.sample(np.random.default_rng(5))) for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(6)
    g = SPACE.sample(rng)
    for _ in range(200):
        child = SPACE.mutate(g, rng)
        assert child != g
        assert nb101.spec_problem(child.matrix, child.ops) is None
        g = child
    small = SPACE.from_text(_spec([[0, 1], [0, 0]], ["input", "output"]))
    grown = SPACE.mutate(small, rng)  # a 2-vertex cell can still be mutated (padded to 7)
    assert len(grown.ops) == 7


def test_structural_key_exact_against_brute_force():
    """The canonical form equals brute force (min over all vertex permutations) as a partition,
    on random labelled digraphs (not only DAGs) with random relabelled copies mixed in."""
    rng = np.random.default_rng(7)
    graphs = []
    for _ in range(150):
        n = int(rng.integers(3, 7))
        labels = tuple(int(x) for x in rng.integers(0, 2, size=n))
        edges = {(int(i), int(j)) for i, j in zip(rng.integers(0, n, 9), rng.integers(0, n, 9)) if i != j}
        graphs.append((labels, edges))
        perm = rng.permutation(n)
        graphs.append((tuple(labels[int(np.where(perm == v)[0][0])] for v in range(n)),
                       {(int(perm[i]), int(perm[j])) for i, j in edges}))

    def brute(labels, edges):
        n = len(labels)
        best = None
        for p in itertools.permutations(range(n)):
            key = (tuple(labels[v] for v in sorted(range(n), key=lambda v: p[v])),
                   tuple(sorted((p[i], p[j]) for i, j in edges)))
            if best is None or key < best:
                best = key
        return best

    ours = [canonical_form(lab, e) for lab, e in graphs]
    theirs = [brute(lab, e) for lab, e in graphs]
    for i in range(len(graphs)):
        for j in range(i + 1, len(graphs)):
            assert (ours[i] == ours[j]) == (theirs[i] == theirs[j])


@pytest.mark.filterwarnings("ignore::UserWarning")  # networkx notes its WL hash changed in 3.5
def test_canonical_form_beats_weisfeiler_lehman():
    """A hexagon and two triangles (as symmetric digraphs) have identical WL colourings."""
    hexagon = {(i, (i + 1) % 6) for i in range(6)}
    triangles = {(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)}
    sym = lambda e: e | {(j, i) for i, j in e}  # noqa: E731
    g1, g2 = nx.DiGraph(sorted(sym(hexagon))), nx.DiGraph(sorted(sym(triangles)))
    assert nx.weisfeiler_lehman_graph_hash(g1) == nx.weisfeiler_lehman_graph_hash(g2)
    assert canonical_form([0] * 6, sym(hexagon)) != canonical_form([0] * 6, sym(triangles))


def test_all_digraphs_on_four_vertices():
    """There are 218 digraphs on 4 unlabelled vertices (OEIS A000273)."""
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    keys = {canonical_form([0] * 4, [p for b, p in enumerate(pairs) if mask >> b & 1]) for mask in range(1 << 12)}
    assert len(keys) == 218


def test_nb101_permuted_copies_hash_equal():
    rng = np.random.default_rng(8)
    for _ in range(200):
        g = SPACE.sample(rng)
        h = relabel(g, rng)
        assert SPACE.structural_key(g) == SPACE.structural_key(h)
        assert automl.functional_hash(g) == automl.functional_hash(h)
        assert nb101.live_param_count(g) == nb101.live_param_count(h)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nb101_keys_agree_with_networkx_isomorphism():
    """Pairs that WL cannot tell apart easily (same labels, same degree sequences, same WL hash),
    plus permuted copies: key equality must equal networkx isomorphism."""
    rng = np.random.default_rng(9)
    cells = []
    for _ in range(1500):
        g = SPACE.sample(rng)
        cells.append(g)
        if rng.random() < 0.2:
            cells.append(relabel(g, rng))
    buckets = defaultdict(list)
    for c in cells:
        g = SPACE.to_networkx(c, prune=True)
        buckets[nx.weisfeiler_lehman_graph_hash(g, node_attr="op", iterations=2)].append((c, g))
    pairs = [(a, b) for members in buckets.values() for a, b in itertools.combinations(members, 2)]
    pairs = [pairs[int(i)] for i in rng.permutation(len(pairs))[:300]]
    # and random pairs from different buckets
    for _ in range(100):
        a, b = cells[int(rng.integers(len(cells)))], cells[int(rng.integers(len(cells)))]
        pairs.append(((a, SPACE.to_networkx(a, prune=True)), (b, SPACE.to_networkx(b, prune=True))))
    n_iso = 0
    for (a, ga), (b, gb) in pairs:
        iso = nx.is_isomorphic(ga, gb, node_match=NODE_MATCH)
        n_iso += iso
        assert (SPACE.structural_key(a) == SPACE.structural_key(b)) == iso
        assert (automl.functional_hash(a) == automl.functional_hash(b)) == iso
    assert 20 < n_iso < len(pairs) - 20  # both outcomes were exercised


def test_probe_separates_independent_parallel_convs():
    """Two parallel conv3x3 on the input are distinct ops (different ranks, untied weights)."""
    two = NB101Cell.make([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C3, C3, "output"])
    out = SPACE.probe(two, 0)
    assert len(out) == 3  # two branches + counts
    assert not np.allclose(out[0], out[1])
    one = NB101Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])
    assert automl.functional_hash(two) != automl.functional_hash(one)


def test_param_count_matches_nasbench_rule():
    cell = NB101Cell.make([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])
    c = nb101.PARAM_CHANNELS
    assert nb101.live_param_count(cell) == (c * c + 2 * c) + (9 * c * c + 2 * c)
    assert nb101.vertex_channels(EXAMPLE.pruned[0], 128) == [128, 32, 32, 32, 32, 32, 128]


def test_networkx_view_and_stats():
    g = SPACE.to_networkx(EXAMPLE)
    assert g.nodes[1]["op"] == C1 and g.number_of_edges() == 9
    assert SPACE.stats(EXAMPLE)["edges"] == 9.0


# Max-pool chains saturate a 6x6 probe: these two cells shared a digest there although they
# differ on a 16x16 probe (benchmarks/graph_hash.py finds 38 such classes in the full enumeration
# at 6x6 and none at 8x8).
_MP5 = '"ops": ["input", "maxpool3x3", "maxpool3x3", "maxpool3x3", "maxpool3x3", "maxpool3x3", "output"]'
SATURATING_PAIR = (
    '{"matrix": [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0, 0], '
    '[0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]], ' + _MP5 + '}',
    '{"matrix": [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 0], '
    '[0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]], ' + _MP5 + '}')


def _q(cell, seed, size):
    from automl.hashing import quantize
    from search_spaces.cells import nb101 as m

    return quantize(m.probe_outputs(cell, seed, size))


def test_probe_large_enough_not_to_saturate():
    a, b = (SPACE.from_text(t) for t in SATURATING_PAIR)
    assert _q(a, 20231, 6) == _q(b, 20231, 6)  # the old 6x6 probe: a false merge
    assert _q(a, 101, 16) != _q(b, 101, 16)  # ground truth: different functions
    assert automl.functional_hash(a, space=SPACE) != automl.functional_hash(b, space=SPACE)


def _mp5(*rows):
    return '{"matrix": ' + str([list(r) for r in rows]) + ", " + _MP5 + "}"


# more of the 6x6 false merges benchmarks/graph_hash.py found (each pair: one 6x6 digest)
MORE_PAIRS = [
    (_mp5((0, 1, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (0, 0, 0, 1, 1, 0, 0), (0, 0, 0, 0, 1, 0, 0),
          (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7),
     _mp5((0, 1, 0, 0, 0, 0, 1), (0, 0, 1, 0, 0, 0, 1), (0, 0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 1, 1, 0),
          (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7)),
    (_mp5((0, 1, 0, 0, 0, 0, 0), (0, 0, 1, 0, 1, 0, 1), (0, 0, 0, 1, 0, 0, 1), (0, 0, 0, 0, 1, 0, 0),
          (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7),
     _mp5((0, 1, 0, 0, 0, 0, 0), (0, 0, 1, 0, 0, 0, 1), (0, 0, 0, 1, 0, 1, 1), (0, 0, 0, 0, 1, 0, 0),
          (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0,) * 7)),
]


@pytest.mark.parametrize("pair", [SATURATING_PAIR, *MORE_PAIRS])
def test_saturating_pairs_split_at_the_default_probe_and_in_truth(pair):
    a, b = (SPACE.from_text(t) for t in pair)
    assert _q(a, 20231, 6) == _q(b, 20231, 6)
    assert (_q(a, 101, 16), _q(a, 202, 16)) != (_q(b, 101, 16), _q(b, 202, 16))
    for seed in (20231, 7, 8):
        assert automl.Hasher(SPACE, seed=seed).functional(a) != automl.Hasher(SPACE, seed=seed).functional(b)
