"""NAS-Bench tables shipped with the project (see data/PROVENANCE.md) and their lookup evaluators.

Data is read lazily, once per process, on the first lookup.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xxhash

from automl.errors import AutoMLError, ConfigError, InvalidCandidate
from automl.evaluator import Evaluator

DATA_DIR = Path(__file__).resolve().parent / "data"
NB201_CSV = DATA_DIR / "nb201_nats_bench.csv.gz"
NB101_JSON = DATA_DIR / "nb101_naslib_zc_subset500.json.gz"

#: objective name -> CSV column (test accuracy in %, 200 epochs, mean over the benchmark's seeds)
NB201_COLUMNS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
                 "imagenet16": "ImageNetTestAccuracy200Epochs"}
_DATASET_ALIASES = {"cifar10": "cifar10", "cifar-10": "cifar10", "cifar100": "cifar100", "cifar-100": "cifar100",
                    "imagenet16": "imagenet16", "imagenet16-120": "imagenet16", "imagenet": "imagenet16"}


class CellNotInTable(AutoMLError, LookupError):
    """The candidate is a valid cell but the shipped table has no record of it."""


# --- NB201 -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NB201Table:
    """All 15,625 rows in NATS-Bench index order."""

    arch: tuple[str, ...]  # ArchitectureString (the cell's text form)
    unique: tuple[str, ...]  # NB201's canonical string (get_unique_str)
    acc: np.ndarray  # (15625, 3) test accuracy in %, columns in NB201_COLUMNS order
    index: Mapping[str, int]  # text -> row

    def row(self, text: str) -> int:
        try:
            return self.index[text]
        except KeyError:
            raise CellNotInTable(f"not an NB201 cell in the table: {text!r}") from None


@functools.lru_cache(maxsize=None)
def nb201_table() -> NB201Table:
    """Load the shipped NATS-Bench CSV (once per process)."""
    with gzip.open(NB201_CSV, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    arch = tuple(r["ArchitectureString"] for r in rows)
    acc = np.array([[float(r[c]) for c in NB201_COLUMNS.values()] for r in rows])
    acc.flags.writeable = False
    return NB201Table(arch, tuple(r["UniqueString"] for r in rows), acc, {a: i for i, a in enumerate(arch)})


def _check_genome(genome: Any, space_name: str) -> None:
    if getattr(genome, "automl_space", None) != space_name:
        raise InvalidCandidate(f"expected an {space_name} cell, got {type(genome).__name__}")


class NB201Tabular(Evaluator):
    """NAS-Bench-201 lookup: test accuracy (%) on CIFAR-10, CIFAR-100 and ImageNet16-120.

    ``dataset`` picks the primary objective (all three are returned, all maximised).  With
    ``noise > 0`` each call adds independent Gaussian noise of std ``noise`` percentage points,
    seeded from (seed, cell text, this instance's call counter): repeated evaluations differ and
    the evaluator is ``noisy``.  Unreachable-output cells are in the table (10% on CIFAR-10).

    Options:
        dataset: primary objective: cifar10 (default), cifar100 or imagenet16.
        noise: std of the Gaussian noise added to each lookup, in percentage points (default 0).
        seed: seeds the noise.
    """

    name = "nb201-tabular"
    version = "1"
    spaces = ("nb201",)
    test_options: Mapping[str, Any] = {}

    def __init__(self, dataset: str = "cifar10", noise: float = 0.0, seed: int = 0):
        ds = _DATASET_ALIASES.get(str(dataset).lower())
        if ds is None:
            raise ConfigError(f"unknown NB201 dataset {dataset!r}; choose one of {', '.join(NB201_COLUMNS)}")
        noise = float(noise)
        if not math.isfinite(noise) or noise < 0:
            raise ConfigError(f"noise must be a finite number >= 0, got {noise}")
        super().__init__(dataset=ds, noise=noise, seed=int(seed))
        self.dataset, self.noise, self.seed = ds, noise, int(seed)
        self.objectives = {ds: "max", **{k: "max" for k in NB201_COLUMNS if k != ds}}
        self.noisy = noise > 0
        self._calls = 0

    def fidelity(self) -> dict[str, Any]:
        fid: dict[str, Any] = {"dataset": self.dataset, "metric": "test-accuracy@200ep"}
        if self.noisy:
            fid.update(noise=self.noise, seed=self.seed)
        return fid

    def reference(self) -> dict[str, dict[str, Any]]:
        """The table's optimum of each objective (the best of all 15,625 cells, noise-free)."""
        best = nb201_table().acc.max(axis=0)
        return {k: {"value": float(v), "label": "NB201 optimum"} for k, v in zip(NB201_COLUMNS, best)}

    def evaluate(self, genome: Any, space: Any = None) -> dict[str, float]:
        from search_spaces.cells.nb201 import to_text

        _check_genome(genome, "nb201")
        text = to_text(genome)
        table = nb201_table()
        acc = table.acc[table.row(text)]
        values = dict(zip(NB201_COLUMNS, (float(a) for a in acc)))
        if self.noisy:
            self._calls += 1
            seed = xxhash.xxh3_64_intdigest(f"{self.seed}|{text}|{self._calls}".encode())
            eps = np.random.default_rng(seed).normal(0.0, self.noise, size=len(values))
            values = {k: v + float(e) for (k, v), e in zip(values.items(), eps)}
        return {k: values[k] for k in self.objectives}


# --- NB101 -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NB101Table:
    """The 500 NASLib records grouped by the structural key of their pruned cell."""

    records: tuple[tuple[Any, Mapping[str, float]], ...]  # (NB101Cell, record) in file order
    by_key: Mapping[str, tuple[int, ...]]  # structural key -> record indices


def _parse_tuple(key: str) -> tuple[int, ...]:
    body = key.strip()
    if not (body.startswith("(") and body.endswith(")")):
        raise ConfigError(f"bad NB101 record key {key[:40]!r}")
    return tuple(int(v) for v in body[1:-1].split(","))


@functools.lru_cache(maxsize=None)
def nb101_table() -> NB101Table:
    """Load the shipped NASLib subset (once per process)."""
    from search_spaces.cells.nb101 import NB101Space, from_naslib_tuple

    with gzip.open(NB101_JSON, "rt") as f:
        raw = json.load(f)["nasbench101"]["cifar10"]
    space = NB101Space()
    records, by_key = [], {}
    for key, rec in raw.items():
        cell = from_naslib_tuple(_parse_tuple(key))
        by_key.setdefault(space.structural_key(cell), []).append(len(records))
        records.append((cell, dict(rec)))
    return NB101Table(tuple(records), {k: tuple(v) for k, v in by_key.items()})


class NB101Tabular(Evaluator):
    """NAS-Bench-101 lookup on the shipped 500-record NASLib subset (CIFAR-10 validation accuracy, %).

    A cell is found by the structural key of its pruned graph, so any isomorphic or unpruned form
    matches.  The subset holds 292 distinct cells; where several records share a cell (they are
    different training seeds) their mean is returned.  A cell outside the subset raises
    ``CellNotInTable`` (a failed evaluation), or gives NaN objectives with ``missing="nan"``.

    Options:
        missing: ``"raise"`` (default: a cell outside the subset fails) or ``"nan"`` (it is invalid).
    """

    name = "nb101-tabular"
    version = "1"
    spaces = ("nb101",)
    objectives = {"val_accuracy": "max", "params": "min", "flops": "min"}
    test_options: Mapping[str, Any] = {"missing": "nan"}

    def __init__(self, missing: str = "raise"):
        if missing not in ("raise", "nan"):
            raise ConfigError(f"missing must be 'raise' or 'nan', got {missing!r}")
        super().__init__(missing=missing)
        self.missing = missing

    def fidelity(self) -> dict[str, Any]:
        return {"metric": "val-accuracy@108ep", "subset": "naslib-zc-500"}

    def evaluate(self, genome: Any, space: Any = None) -> dict[str, float]:
        from search_spaces.cells.nb101 import NB101Space, to_text

        _check_genome(genome, "nb101")
        table = nb101_table()
        idx = table.by_key.get(NB101Space().structural_key(genome))
        if idx is None:
            if self.missing == "nan":
                return {k: math.nan for k in self.objectives}
            raise CellNotInTable(f"NB101 cell not in the shipped 500-record NASLib subset: {to_text(genome)}")
        recs = [table.records[i][1] for i in idx]
        return {"val_accuracy": float(np.mean([r["val_accuracy"] for r in recs])),
                "params": float(np.mean([r["params"] for r in recs])),
                "flops": float(np.mean([r["flops"] for r in recs]))}

    def reference(self) -> dict[str, dict[str, Any]]:
        """The subset's best ``val_accuracy`` (over its distinct cells, seeds averaged as evaluate does)."""
        table = nb101_table()
        best = max(np.mean([table.records[i][1]["val_accuracy"] for i in idx]) for idx in table.by_key.values())
        return {"val_accuracy": {"value": float(best), "label": "best of the NB101 subset"}}

    @staticmethod
    def cells() -> list[Any]:
        """One cell per distinct (pruned, up to isomorphism) cell in the subset, in file order."""
        table = nb101_table()
        return [table.records[idx[0]][0] for idx in table.by_key.values()]
