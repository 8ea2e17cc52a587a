"""Ranking with a supernet: the checkpoint is in the cache key, and ranking is charged once per class."""
import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from automl.cli import main as cli_main  # noqa: E402
from automl.hashing import Hasher  # noqa: E402
from automl.registry import get_evaluator, get_space  # noqa: E402
from evaluators.supernet import SupernetAccuracy, rank  # noqa: E402
from evaluators.supernet.trainer import TrainConfig, train  # noqa: E402
from search_spaces.cells.nb201 import NB201Cell  # noqa: E402

N, S, C1, C3, P = 0, 1, 2, 3, 4
CELL = NB201Cell.from_codes((C3, C1, N, S, C1, P))
SWAPPED = NB201Cell.from_codes((C1, C3, N, S, P, C1))  # nodes 1 and 2 swapped: isomorphic
DEAD_A = NB201Cell.from_codes((N, C3, C3, S, C1, C3))  # node 1 unreachable: edges 2<-1, 3<-1 dead
DEAD_B = NB201Cell.from_codes((N, C3, P, S, C3, C3))  # same live part
OTHER = NB201Cell.from_codes((C3, C3, C3, C3, C3, C3))
EVAL = dict(test_per_class=2, batch_size=20)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("sn")
    out = []
    for seed in (0, 1):
        cfg = TrainConfig(channels=4, cells=1, epochs=1, batch_size=32, data="synthetic:64:20:8:0", seed=seed)
        train(root / f"s{seed}", cfg, device="cpu", threads=1)
        out.append(root / f"s{seed}")
    return out


def test_cache_key_changes_with_the_checkpoint_not_its_path(checkpoints, tmp_path):
    space = get_space("nb201")
    a, b = checkpoints
    moved = tmp_path / "moved"
    shutil.copytree(a, moved)
    key = {name: Hasher(space, get_evaluator("supernet", checkpoint=str(p), **EVAL)).functional(CELL)
           for name, p in (("a", a), ("b", b), ("moved", moved))}
    assert key["a"] != key["b"]
    assert key["a"] == key["moved"]
    other_eval = Hasher(space, SupernetAccuracy(checkpoint=str(a), test_per_class=1, batch_size=20)).functional(CELL)
    assert other_eval != key["a"]  # the held-out set is part of the fidelity too


def test_rank_is_charged_once_per_functional_class(checkpoints):
    r = rank(checkpoints[0], [CELL, SWAPPED, DEAD_A, DEAD_B, OTHER], **EVAL)
    assert r["cells"] == 5 and r["classes"] == 3 and r["charged"] == 3
    s = r["scores"]
    assert s[str(SWAPPED)] == s[str(CELL)] and s[str(DEAD_B)] == s[str(DEAD_A)]
    # BN without parameters and with batch statistics: dead edges really do not change the output
    ev = SupernetAccuracy(checkpoint=str(checkpoints[0]), **EVAL)
    assert ev.evaluate(DEAD_A)["supernet_accuracy"] == ev.evaluate(DEAD_B)["supernet_accuracy"]


def test_a_shared_cache_never_mixes_weights(checkpoints, tmp_path):
    db = str(tmp_path / "cache.sqlite")
    cells = [CELL, OTHER]
    assert rank(checkpoints[0], cells, cache=db, **EVAL)["charged"] == 2
    assert rank(checkpoints[1], cells, cache=db, **EVAL)["charged"] == 2  # other weights: evaluated again
    assert rank(checkpoints[0], cells, cache=db, **EVAL)["charged"] == 0  # same weights: all hits


def test_cli_train_rank_search(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["supernet", "train", "--out", str(out), "--data", "synthetic:64:20:8:0", "--channels", "4",
                     "--cells", "1", "--epochs", "1", "--batch-size", "32", "--path", "class-uniform",
                     "--data-sampler", "pada", "--device", "cpu", "--quiet"]) == 0
    assert "weights" in capsys.readouterr().out
    cells = tmp_path / "cells.txt"
    cells.write_text(f"{CELL}\n{SWAPPED}\n{OTHER}\n")
    assert cli_main(["supernet", "rank", str(out), "--cells", str(cells), "--test-per-class", "2",
                     "--batch-size", "20", "--quiet", "--out", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "ranked 3 cells with 2 charged evaluations" in text and "Kendall tau-b" in text
    assert json.loads((tmp_path / "r.json").read_text())["charged"] == 2
    assert cli_main(["supernet", "search", str(out), "--strategy", "random", "--budget", "4",
                     "--out", str(tmp_path / "search"), "--test-per-class", "2", "--batch-size", "20"]) == 0
    assert "NB201 CIFAR-10 test accuracy" in capsys.readouterr().out
    assert cli_main(["supernet", "train", "--out", str(out), "--path", "darts", "--data", "synthetic"]) == 2
    assert "path sampler" in capsys.readouterr().err
