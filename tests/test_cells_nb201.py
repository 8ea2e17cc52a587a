"""NB201 cells: text form, parameters, structural and functional hashing over all 15,625 cells."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest

import automl
from automl.errors import AutoMLError, InvalidCandidate, ParseError
from evaluators.tabular import nb201_table
from search_spaces.cells import NB201Cell, NB201Space, nb201

SPACE = NB201Space()
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def live_params_reference(cell: NB201Cell) -> int:
    """Independent liveness via networkx: a conv counts when its edge lies on an input->output path."""
    g = nx.DiGraph()
    g.add_nodes_from(range(4))
    for (j, i), op in zip(nb201.EDGES, cell.ops):
        if op != "none":
            g.add_edge(i, j, op=op)
    fwd = nx.descendants(g, 0) | {0}
    bwd = nx.ancestors(g, 3) | {3}
    total = 0
    for i, j, d in g.edges(data=True):
        if i in fwd and j in bwd:
            total += {"nor_conv_1x1": 16 * 16 + 32, "nor_conv_3x3": 9 * 256 + 32}.get(d["op"], 0)
    return total


@pytest.fixture(scope="module")
def everything():
    """All cells in NATS-Bench order with their digests (two probe seeds) and reference counts."""
    table = nb201_table()
    cells = [SPACE.from_text(a) for a in table.arch]
    h1, h2 = automl.Hasher(SPACE), automl.Hasher(SPACE, seed=777)
    t0 = time.process_time()
    functional = [h1.functional(c) for c in cells]
    seconds = time.process_time() - t0
    return {
        "cells": cells,
        "unique": list(table.unique),
        "structural": [h1.structural(c) for c in cells],
        "functional": functional,
        "seconds": seconds,
        "functional2": [h2.functional(c) for c in cells],
        "params": [live_params_reference(c) for c in cells],
    }


def _groups(keys):
    out = defaultdict(list)
    for i, k in enumerate(keys):
        out[k].append(i)
    return out


def _partition(keys):
    return sorted(tuple(v) for v in _groups(keys).values())


# --- text, parameters, sampling -------------------------------------------------------------------

def test_text_round_trip_and_order():
    g = SPACE.from_text(BEST)
    assert SPACE.to_text(g) == BEST
    assert g.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert SPACE.from_text("  " + BEST + "\n") == g
    assert g.automl_space == "nb201"
    with pytest.raises(dataclasses_frozen_error()):
        g.ops = ("none",) * 6


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("text, words", [
    ("", "3 node groups"),
    ("|nor_conv_3x3~0|+|none~0|none~1|", "3 node groups"),
    ("|conv5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv5x5'"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 input edge"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "expected '|op~0|"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must read node 0"),
])
def test_invalid_text(text, words):
    with pytest.raises(ParseError, match=words.replace("|", r"\|").replace("(", r"\(")):
        SPACE.from_text(text)


def test_invalid_genome_and_params():
    with pytest.raises(InvalidCandidate, match="6 edge ops"):
        NB201Cell(("none",) * 5)
    with pytest.raises(InvalidCandidate, match="unknown op 'relu' on edge 2<-1"):
        NB201Cell(("none", "none", "relu", "none", "none", "none"))
    with pytest.raises(InvalidCandidate, match="lack edge"):
        SPACE.from_params({"1<-0": "none"})
    with pytest.raises(AutoMLError):
        SPACE.validate("not a cell")


def test_params_round_trip():
    space = SPACE.param_space()
    assert list(space) == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert all(p.choices == nb201.OPS for p in space.values())
    rng = np.random.default_rng(1)
    for _ in range(50):
        g = SPACE.sample(rng)
        assert SPACE.from_params(SPACE.to_params(g)) == g


def test_mutation_changes_exactly_one_edge():
    rng = np.random.default_rng(2)
    g = SPACE.sample(rng)
    for _ in range(200):
        child = SPACE.mutate(g, rng)
        assert sum(a != b for a, b in zip(g.ops, child.ops)) == 1
        g = child


def test_hash_api_on_text():
    assert automl.structural_hash(BEST, space="nb201") == automl.structural_hash(SPACE.from_text(BEST))
    assert automl.functional_hash(BEST, space="nb201") == automl.functional_hash(SPACE.from_text(BEST))


def test_networkx_view():
    g = SPACE.to_networkx(SPACE.from_text("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"))
    assert sorted(g.edges(data="op")) == [(0, 1, "nor_conv_3x3"), (0, 3, "skip_connect")]
    assert sorted(SPACE.to_networkx(SPACE.from_text(BEST), prune=True).nodes) == [0, 1, 2, 3]
    pruned = SPACE.to_networkx(SPACE.from_text("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"),
                               prune=True)
    assert list(pruned.edges) == [(0, 3)]


# --- specific equivalences ----------------------------------------------------------------------

def _same(a: str, b: str) -> tuple[bool, bool]:
    ga, gb = SPACE.from_text(a), SPACE.from_text(b)
    return (automl.structural_hash(ga) == automl.structural_hash(gb),
            automl.functional_hash(ga) == automl.functional_hash(gb))


def test_conv_feeding_only_none_is_dead():
    a = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    b = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert _same(a, b) == (True, True)


def test_conv_fed_only_by_zeros_is_dead():
    a = "|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    b = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert _same(a, b) == (True, True)
    assert SPACE.stats(SPACE.from_text(a))["live_params"] == 0


def test_isomorphic_cells_swap_nodes_1_and_2():
    a = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"
    b = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"
    assert _same(a, b) == (True, True)


def test_regrouped_sums_and_x_plus_zero():
    # x + avgpool(x), built three different ways
    a = "|avg_pool_3x3~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    b = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|"
    c = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    assert _same(a, b) == (False, True)
    assert _same(a, c) == (False, True)


def test_pooling_linearity():
    # avgpool(x + x) == avgpool(x) + avgpool(x): NB201's canonical strings differ
    a = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    b = "|skip_connect~0|+|none~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|none~2|"
    assert _same(a, b) == (False, True)
    table = nb201_table()
    assert table.unique[table.index[a]] != table.unique[table.index[b]]


def test_ranks_are_canonical_for_asymmetric_convs():
    # conv_a(x) + avgpool(conv_b(x)) written two ways (different graphs, same function)
    a = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|"
    b = "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert _same(a, b) == (False, True)


def test_independent_convs_are_not_tied():
    # two convs on x summed vs one conv used twice: NB201's canonical string merges them,
    # but they have different parameters (and compute different functions)
    two = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    one = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|"
    table = nb201_table()
    assert table.unique[table.index[two]] == table.unique[table.index[one]]
    assert _same(two, one) == (False, False)
    out = SPACE.probe(SPACE.from_text(two), 1)[0]
    single = SPACE.probe(SPACE.from_text("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"), 1)[0]
    assert not np.allclose(out, 2 * single)


def test_probe_is_the_cell_computation(monkeypatch):
    """The normalised probe equals a plain node-by-node forward pass of the pruned cell.  With
    BN's eps at 0 the positive scale the probe divides out of conv inputs is exactly irrelevant;
    with eps = 1e-5 it is irrelevant up to ~1e-4 (the same in real training)."""
    from search_spaces.cells import kernels

    rng = np.random.default_rng(3)
    cells = [SPACE.sample(rng) for _ in range(400)] + [SPACE.from_text(BEST)]
    scaled = 0
    for eps, tol in ((0.0, 1e-10), (kernels.BN_EPS, 1e-3)):
        monkeypatch.setattr(kernels, "BN_EPS", eps)
        nb201._VALUES.clear()
        for g in cells:
            a = SPACE.probe(g, 5)[0]
            b = nb201.reference_forward(g, 5)
            assert np.allclose(a, b, rtol=tol, atol=tol), SPACE.to_text(g)
            scaled += eps > 0 and not np.allclose(a, b, rtol=1e-12, atol=1e-12)
    nb201._VALUES.clear()
    assert scaled > 0  # the sample has cells whose conv reads a scaled input


def test_conv_of_a_scaled_input_is_the_same_function():
    f = lambda t: automl.functional_hash(SPACE.from_text(t), space=SPACE)  # noqa: E731
    # node 1 = x, node 2 = x + node 1 = 2x, output = x + conv(2x)
    x_conv_2x = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    # node 1 = x, node 2 = node 1 = x, output = x + conv(x)
    x_conv_x = "|skip_connect~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert f(x_conv_2x) == f(x_conv_x)  # ReLU + BN remove the positive scale
    # conv(x + pool(x)) vs conv(x + pool(pool(x))): not proportional inputs, different functions
    a = "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|"
    b = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
    assert f(a) != f(b)


def test_probe_reports_live_counts():
    out = SPACE.probe(SPACE.from_text(BEST), 0)
    assert out[0].shape == (2, 4, 8, 8)
    assert out[1].tolist() == [4 * 2336 + 288, 1, 4]


# --- all 15,625 cells -----------------------------------------------------------------------------

def test_class_counts(everything):
    n_struct = len(set(everything["structural"]))
    n_func = len(set(everything["functional"]))
    n_unique = len(set(everything["unique"]))
    assert n_unique == 6466
    assert n_func <= 6466
    assert n_func < n_struct
    # regression values (see benchmarks/graph_hash.py); 5,044 before conv inputs were taken up to
    # a positive scale (ReLU + BN remove it): ~90 false splits such as x + conv(x) vs x + conv(2x)
    assert (n_struct, n_func) == (8765, 4954)


def test_hashing_all_cells_is_fast(everything):
    # measured ~0.7-1.2 s of CPU; a loose bound that still catches an order-of-magnitude regression
    assert everything["seconds"] < 8.0


NB101_TEXT = '{"matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]], "ops": ["input", "maxpool3x3", "output"]}'


def test_digests_stable_across_processes():
    code = (f"import automl; print(automl.functional_hash({BEST!r}, space='nb201'), "
            f"automl.structural_hash({BEST!r}, space='nb201'), automl.functional_hash({NB101_TEXT!r}, space='nb101'))")
    outs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           check=True, capture_output=True, text=True).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    g = SPACE.from_text(BEST)
    assert outs.pop().split() == [automl.functional_hash(g), automl.structural_hash(g),
                                  automl.functional_hash(NB101_TEXT, space="nb101")]


def test_no_class_mixes_parameter_counts(everything):
    params = everything["params"]
    for kind in ("structural", "functional"):
        for members in _groups(everything[kind]).values():
            assert len({params[i] for i in members}) == 1, (kind, [everything["cells"][i] for i in members])
    # NB201's own canonical string does mix them (sharing is ignored)
    mixing = sum(1 for m in _groups(everything["unique"]).values() if len({params[i] for i in m}) > 1)
    assert mixing > 0


def test_partition_independent_of_probe_seed(everything):
    assert _partition(everything["functional"]) == _partition(everything["functional2"])


def test_functional_merges_what_canonical_string_merges_at_equal_params(everything):
    """Within one NB201 canonical-string class, cells that we keep apart differ in live params."""
    params, func = everything["params"], everything["functional"]
    for members in _groups(everything["unique"]).values():
        by_func = defaultdict(set)
        for i in members:
            by_func[func[i]].add(params[i])
        counts = [next(iter(p)) for p in by_func.values()]
        assert len(counts) == len(set(counts))


def test_structural_refines_functional(everything):
    func = everything["functional"]
    for members in _groups(everything["structural"]).values():
        assert len({func[i] for i in members}) == 1


def test_structural_key_is_the_exact_graph_canonical_form(everything):
    generic = [nb201.graph_key(c) for c in everything["cells"]]
    assert _partition(generic) == _partition(everything["structural"])


def test_structural_classes_are_isomorphism_classes():
    """Spot check against networkx on the pruned edge-labelled graphs."""
    rng = np.random.default_rng(4)
    em = nx.algorithms.isomorphism.categorical_edge_match("op", None)
    nm = nx.algorithms.isomorphism.categorical_node_match("role", None)
    for _ in range(300):
        a, b = SPACE.sample(rng), SPACE.sample(rng)
        if rng.random() < 0.5:  # make some pairs isomorphic: swap nodes 1 and 2 when allowed
            o = a.ops
            if o[2] == "none":
                b = NB201Cell((o[1], o[0], "none", o[3], o[5], o[4]))
        ga, gb = SPACE.to_networkx(a, prune=True), SPACE.to_networkx(b, prune=True)
        for g in (ga, gb):
            g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0 and n not in (0, 3)])
        iso = nx.is_isomorphic(ga, gb, node_match=nm, edge_match=em)
        assert (SPACE.structural_key(a) == SPACE.structural_key(b)) == iso, (a, b)
