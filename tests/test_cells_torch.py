"""Torch modules of the cells: shapes, parameter counts, supernet paths."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from search_spaces.cells import NB101Space, NB201Space, nb101, nb201  # noqa: E402
from search_spaces.cells import torch_cells as tc  # noqa: E402

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_nb201_cell_and_network():
    torch.manual_seed(0)
    cell = tc.NB201CellModule(BEST, 16)
    assert cell(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)
    rng = np.random.default_rng(0)
    for _ in range(30):
        g = NB201Space().sample(rng)
        pruned = tc.NB201CellModule(g, 16, prune=True)
        assert tc.count_parameters(pruned) == nb201.live_param_count(g)
        x = torch.randn(2, 16, 6, 6)
        full = tc.NB201CellModule(g, 16)
        full.load_state_dict(pruned.state_dict(), strict=False)
        full.eval(), pruned.eval()
        assert torch.allclose(full(x), pruned(x), atol=1e-6)  # dead edges change nothing
    net = tc.NB201Network(BEST, channels=8)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_nb201_supernet():
    torch.manual_seed(0)
    net = tc.NB201Network(None, channels=8)
    x = torch.randn(2, 3, 16, 16)
    assert net(x, BEST).shape == (2, 10)
    cell = tc.NB201SuperCell(4)
    w = torch.softmax(torch.randn(6, 5), dim=1)
    assert cell(torch.randn(2, 4, 6, 6), weights=w).shape == (2, 4, 6, 6)
    with pytest.raises(Exception):
        net(x)


def test_nb101_cell_and_network():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    space = NB101Space()
    for _ in range(20):
        g = space.sample(rng)
        cell = tc.NB101CellModule(g, 60, 60)
        assert tc.count_parameters(cell) == nb101.live_param_count(g)
        assert cell(torch.randn(2, 60, 6, 6)).shape == (2, 60, 6, 6)
        assert tc.NB101CellModule(g, 16, 32)(torch.randn(2, 16, 6, 6)).shape == (2, 32, 6, 6)
    net = tc.NB101Network(space.to_text(g), channels=8)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
