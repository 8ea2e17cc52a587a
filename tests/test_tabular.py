"""Tabular evaluators: lookups return the shipped tables' values (read from the project's copies)."""
from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import automl
from automl.errors import ConfigError, InvalidCandidate
from evaluators.tabular import CellNotInTable, NB101Tabular, NB201Tabular, nb101_table, nb201_table
from evaluators.tabular.tables import NB101_JSON, NB201_CSV
from search_spaces.cells import NB101Cell, NB101Space, NB201Space, nb101

NB201 = NB201Space()
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_shipped_files_are_the_documented_bytes():
    """sha256 of the decompressed files equals data/PROVENANCE.md."""
    with gzip.open(NB201_CSV, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == \
            "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e"
    with gzip.open(NB101_JSON, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == \
            "c34840bc9af68b6ebaa7f052e42c1749a9a737d7243078be2a5548052bc5a0c2"


def test_nb201_lookup_matches_csv():
    with gzip.open(NB201_CSV, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15625
    ev = NB201Tabular()
    for i in (0, 11, 284, 6111, 15624, *np.random.default_rng(0).integers(0, 15625, 40).tolist()):
        r = rows[i]
        out = ev.evaluate(NB201.from_text(r["ArchitectureString"]), NB201)
        assert out == {"cifar10": float(r["CIFAR10TestAccuracy200Epochs"]),
                       "cifar100": float(r["CIFAR100TestAccuracy200Epochs"]),
                       "imagenet16": float(r["ImageNetTestAccuracy200Epochs"])}


def test_nb201_known_optimum():
    out = NB201Tabular().evaluate(NB201.from_text(BEST), NB201)
    assert round(out["cifar10"], 3) == 94.373
    acc = nb201_table().acc
    assert round(acc[:, 0].max(), 3) == 94.373 and round(acc[:, 1].max(), 3) == 73.513
    assert round(acc[:, 2].max(), 3) == 47.311
    assert nb201_table().index[BEST] == 6111


def test_nb201_dataset_orders_objectives():
    ev = NB201Tabular(dataset="ImageNet16-120")
    assert list(ev.objectives) == ["imagenet16", "cifar10", "cifar100"]
    assert ev.primary == "imagenet16" and ev.better(47.0, 46.0)
    out = ev.evaluate(NB201.from_text(BEST), NB201)
    assert list(out) == list(ev.objectives)
    assert ev.fidelity() == {"dataset": "imagenet16", "metric": "test-accuracy@200ep"}
    assert not ev.noisy
    with pytest.raises(ConfigError, match="unknown NB201 dataset"):
        NB201Tabular(dataset="mnist")
    with pytest.raises(ConfigError, match="noise"):
        NB201Tabular(noise=-1)


def test_nb201_noise_is_seeded_and_varies():
    g = NB201.from_text(BEST)
    a, b = NB201Tabular(noise=0.5, seed=3), NB201Tabular(noise=0.5, seed=3)
    assert a.noisy and "noise" in a.fidelity()
    seq_a = [a.evaluate(g, NB201)["cifar10"] for _ in range(200)]
    seq_b = [b.evaluate(g, NB201)["cifar10"] for _ in range(200)]
    assert seq_a == seq_b
    assert len(set(seq_a)) == 200
    assert abs(np.mean(seq_a) - 94.3733) < 0.15 and 0.35 < np.std(seq_a) < 0.65
    assert NB201Tabular(noise=0.5, seed=4).evaluate(g, NB201)["cifar10"] != seq_a[0]


def test_nb201_rejects_other_genomes():
    with pytest.raises(InvalidCandidate):
        NB201Tabular().evaluate("not a cell", NB201)


def test_registered():
    ev = automl.get_evaluator("nb201-tabular", dataset="cifar100", noise=0.1, seed=1)
    assert isinstance(ev, NB201Tabular) and ev.primary == "cifar100"
    assert isinstance(automl.get_evaluator("nb101-tabular"), NB101Tabular)


def test_nb101_lookup_matches_json():
    with gzip.open(NB101_JSON, "rt") as f:
        raw = json.load(f)["nasbench101"]["cifar10"]
    by_cell = {}
    space = NB101Space()
    for key, rec in raw.items():
        cell = nb101.from_naslib_tuple([int(v) for v in key.strip("()").split(",")])
        by_cell.setdefault(space.structural_key(cell), []).append((cell, rec))
    assert len(raw) == 500 and len(by_cell) == 292 == len(NB101Tabular.cells())
    ev = NB101Tabular()
    for records in list(by_cell.values())[::7]:
        cell = records[0][0]
        expect = np.mean([r["val_accuracy"] for _, r in records])
        assert ev.evaluate(cell, space)["val_accuracy"] == pytest.approx(expect, abs=1e-12)
        # an isomorphic, renumbered copy finds the same record
        m, ops = cell.pruned
        n = len(ops)
        interior = list(range(1, n - 1))
        for perm in itertools.islice(itertools.permutations(interior), 5):
            order = [0, *perm, n - 1]
            pos = {v: k for k, v in enumerate(order)}
            mm = [[0] * n for _ in range(n)]
            ok = True
            for i in range(n):
                for j in range(n):
                    if m[i][j]:
                        ok &= pos[i] < pos[j]
                        mm[pos[i]][pos[j]] = 1
            if ok:
                copy = NB101Cell.make(mm, [ops[v] for v in order])
                assert ev.evaluate(copy, space) == ev.evaluate(cell, space)
    single = next(r for r in by_cell.values() if len(r) == 1)
    assert ev.evaluate(single[0][0], space)["val_accuracy"] == single[0][1]["val_accuracy"]


def test_nb101_missing_cell():
    rng = np.random.default_rng(11)
    space = NB101Space()
    known = set(nb101_table().by_key)
    cell = next(c for c in (space.sample(rng) for _ in range(1000)) if space.structural_key(c) not in known)
    with pytest.raises(CellNotInTable, match="not in the shipped 500-record NASLib subset"):
        NB101Tabular().evaluate(cell, space)
    out = NB101Tabular(missing="nan").evaluate(cell, space)
    assert all(math.isnan(v) for v in out.values())
    with pytest.raises(ConfigError):
        NB101Tabular(missing="zero")
    assert isinstance(CellNotInTable("x"), LookupError)


def test_imports_are_lazy():
    code = ("import sys, search_spaces.cells, evaluators.tabular;"
            "assert 'torch' not in sys.modules, 'torch';"
            "assert 'networkx' not in sys.modules, 'networkx';"
            "import evaluators.tabular.tables as t; assert t.nb201_table.cache_info().currsize == 0")
    subprocess.run([sys.executable, "-c", code], check=True)
