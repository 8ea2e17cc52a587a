"""Path and data samplers of one-shot training: each distribution update against a hand-computed example."""
import numpy as np
import pytest

from automl.errors import ConfigError
from evaluators.supernet.samplers import (ClassUniformPath, FairPath, ImportanceData, ImportancePath, UniformData,
                                          UniformPath)


def test_uniform_path_is_uniform_and_fixed():
    s = UniformPath(6, 5)
    rng = np.random.default_rng(0)
    paths = [p for _ in range(4000) for p in s.sample(rng)]
    assert all(len(p) == 6 and all(0 <= o < 5 for o in p) for p in paths)
    freq = np.zeros((6, 5))
    for p in paths:
        freq[np.arange(6), p] += 1
    assert np.allclose(freq / len(paths), 0.2, atol=0.03)
    s.end_epoch(3, 5)
    assert np.allclose(s.probs(), 0.2)


def test_fairnas_trains_every_op_of_every_edge_once_per_step_and_reshuffles():
    s = FairPath(6, 5)
    rng = np.random.default_rng(1)
    steps = [s.sample(rng) for _ in range(20)]
    for paths in steps:
        assert len(paths) == 5
        cols = np.array(paths)  # (5 paths, 6 edges)
        for e in range(6):
            assert sorted(cols[:, e]) == [0, 1, 2, 3, 4]
    assert len({tuple(p) for paths in steps for p in paths}) > 50  # a fresh list every step, not a fixed one


def test_pada_path_importance_update_by_hand():
    s = ImportancePath(n_edges=3, n_ops=3)  # op 0 parameter-free
    g = np.zeros((3, 3))
    g[0, 1], g[1, 1], g[2, 2] = 2.0, 4.0, 3.0
    s.observe([(1, 1, 2)], g)  # op 1: (2+4)/2 = 3 -> 0.5*0 + 0.5*3 = 1.5 ; op 2: 3 -> 1.5
    assert np.allclose(s.importance, [0.0, 1.5, 1.5])
    g = np.zeros((3, 3))
    g[0, 2], g[2, 2] = 1.0, 5.0
    s.observe([(2, 0, 2)], g)  # op 2: (1+5)/2 = 3 -> 0.5*1.5 + 0.5*3 = 2.25 ; op 0 has no gradient: stays 0
    assert np.allclose(s.importance, [0.0, 1.5, 2.25])
    s.end_epoch(1, 4)  # tau = 1/4: 0.25*[0, 1.5, 2.25]/3.75 + 0.75/3
    assert np.allclose(s.p, [0.25, 0.35, 0.40])
    assert np.allclose(s.importance, 0.0)  # reset each epoch
    rng = np.random.default_rng(2)
    ops = np.array([s.sample(rng)[0] for _ in range(4000)]).ravel()
    assert np.allclose(np.bincount(ops, minlength=3) / ops.size, [0.25, 0.35, 0.40], atol=0.02)
    s.end_epoch(2, 4)  # nothing observed this epoch: uniform
    assert np.allclose(s.p, 1 / 3)


def test_pada_path_state_round_trip_and_needs_norms():
    s = ImportancePath(6, 5)
    g = np.ones((6, 5))
    s.observe([(2, 3, 2, 3, 2, 3)], g)
    t = ImportancePath(6, 5)
    t.load_state_dict(s.state_dict())
    assert np.array_equal(t.importance, s.importance) and np.array_equal(t.p, s.p)
    with pytest.raises(ConfigError):
        s.observe([(0,) * 6], None)


def test_class_uniform_probabilities_by_hand():
    classes = [[(0, 0)], [(1, 0), (0, 1)], [(1, 1)]]  # one class holds two equivalent paths
    s = ClassUniformPath(2, 2, classes)
    # edge 0 op 1: class 2 half the time (1/3 * 1/2) + class 3 (1/3) = 1/2
    assert np.allclose(s.probs(), [[0.5, 0.5], [0.5, 0.5]])
    rng = np.random.default_rng(3)
    counts = {}
    for _ in range(6000):
        p = s.sample(rng)[0]
        counts[p] = counts.get(p, 0) + 1
    assert abs(counts[(0, 0)] / 6000 - 1 / 3) < 0.03 and abs(counts[(1, 0)] / 6000 - 1 / 6) < 0.03
    with pytest.raises(ConfigError):
        ClassUniformPath(2, 2, [[(0, 5)]])


def test_uniform_data_is_a_permutation():
    s = UniformData(10)
    order = s.epoch_order(0, np.random.default_rng(0))
    assert sorted(order) == list(range(10))


def test_pada_data_importance_update_by_hand():
    s = ImportanceData(4)
    first = s.epoch_order(0, np.random.default_rng(0))
    assert sorted(first) == [0, 1, 2, 3]  # epoch 0 sees everything once
    s.observe(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]))
    s.observe(np.array([0]), np.array([3.0]))  # seen twice: 0.5*1 + 0.5*3 = 2
    assert np.allclose(s.importance, [2.0, 2.0, 3.0, 0.0])
    s.end_epoch(2, 4)  # tau = 0.5: 0.5*[2,2,3,0]/7 + 0.5/4
    q = np.array([2 / 7, 2 / 7, 3 / 7, 0.0]) * 0.5 + 0.125
    assert np.allclose(s.q, q)
    assert np.allclose(s.importance, 0.0)
    draws = np.concatenate([s.epoch_order(3, np.random.default_rng(i)) for i in range(2000)])
    assert draws.size == 8000  # n draws per epoch, with replacement
    assert np.allclose(np.bincount(draws, minlength=4) / draws.size, q, atol=0.02)
    t = ImportanceData(4)
    t.load_state_dict(s.state_dict())
    assert np.array_equal(t.q, s.q)


def test_first_epoch_update_is_uniform():
    s = ImportanceData(3)
    s.observe(np.array([0, 1, 2]), np.array([5.0, 1.0, 1.0]))
    s.end_epoch(0, 5)  # tau = 0
    assert np.allclose(s.q, 1 / 3)


def test_nb201_op_grad_norms_sum_conv_weights_over_cells():
    torch = pytest.importorskip("torch")
    from evaluators.supernet.spaces import NB201Supernet
    from search_spaces.cells.torch_cells import NB201SuperCell

    task = NB201Supernet(channels=4, cells=2)
    torch.manual_seed(0)
    model = task.build()
    path = (3, 2, 3, 1, 4, 1)  # conv3x3 on edges 0 and 2, conv1x1 on edge 1 (all live)
    x = torch.randn(6, 3, 8, 8)
    torch.nn.functional.cross_entropy(task.forward(model, x, path), torch.arange(6) % 10).backward()
    g = task.op_grad_norms(model)
    cells = [m for m in model.layers if isinstance(m, NB201SuperCell)]
    assert len(cells) == 6
    expect = sum(float(c.ops[0][3][1].weight.grad.norm()) for c in cells)
    assert g[0, 3] == pytest.approx(expect, rel=1e-5) and g[0, 3] > 0
    assert g[1, 2] > 0 and g[2, 3] > 0
    mask = np.zeros((6, 5), bool)
    mask[0, 3] = mask[1, 2] = mask[2, 3] = True
    assert np.all(g[~mask] == 0.0)  # unused and parameter-free ops get 0
