"""Readers for the shipped data (evaluators/hardware/data, see PROVENANCE.md there): DyNAS-T's
logged OFA MobileNetV3 evaluations and HELP's measured GPU latencies.  numpy + stdlib only."""
from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import os

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
DYNAST_RUNS = {"ga": "mbnv3w10_evoga_acc", "nsga2": "mbnv3w10_evonsga2_acc_macs",
               "unsga3": "mbnv3w10_evounsga3_acc_macs_params", "linas-ga": "mbnv3w10_linasga_acc",
               "linas-nsga2": "mbnv3w10_linasnsga2_acc_macs"}
HELP_DEVICES = ("2080ti", "titan_rtx", "titan_xp", "v100")
HELP_BATCHES = (1, 32, 64)


@dataclasses.dataclass(frozen=True)
class ConfigTable:
    """Configs as value arrays: ks, e (n, 20), d (n, 5), r (n,); plus named columns."""

    ks: np.ndarray
    e: np.ndarray
    d: np.ndarray
    r: np.ndarray
    columns: dict
    texts: tuple = ()

    def __len__(self) -> int:
        return len(self.r)

    def take(self, idx) -> "ConfigTable":
        idx = np.asarray(idx)
        return ConfigTable(self.ks[idx], self.e[idx], self.d[idx], self.r[idx],
                           {k: v[idx] for k, v in self.columns.items()},
                           tuple(self.texts[i] for i in idx) if self.texts else ())


def _read(name: str, data_dir: str | None) -> list[dict]:
    path = os.path.join(data_dir or DATA_DIR, name + ".csv.gz")
    if not os.path.exists(path):
        from automl.errors import ConfigError

        raise ConfigError(f"missing data file {path}; see evaluators/hardware/data/PROVENANCE.md")
    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(io.StringIO(fh.read())))


@functools.lru_cache(maxsize=8)
def load_dynast(run: str | None = None, data_dir: str | None = None) -> ConfigTable:
    """DyNAS-T's logged evaluations, in evaluation order: one run (a key of ``DYNAST_RUNS``) or all
    five concatenated (column ``run`` holds the run index).  Columns: top1, macs, params, run."""
    from search_spaces.ofa import OFASpace

    space = OFASpace()
    runs = [run] if run else list(DYNAST_RUNS)
    rows, run_idx = [], []
    for i, name in enumerate(runs):
        if name not in DYNAST_RUNS:
            from automl.errors import ConfigError

            raise ConfigError(f"unknown DyNAS-T run {name!r}; choose one of {', '.join(DYNAST_RUNS)}")
        got = _read(DYNAST_RUNS[name], data_dir)
        rows += got
        run_idx += [i] * len(got)
    cfgs = [space.from_text(r["Sub-network"]) for r in rows]
    return ConfigTable(np.array([c.ks for c in cfgs]), np.array([c.e for c in cfgs]), np.array([c.d for c in cfgs]),
                       np.array([c.r for c in cfgs]),
                       {"top1": np.array([float(r["Top-1 Acc (%)"]) for r in rows]),
                        "macs": np.array([float(r["MACs"]) for r in rows]),
                        "params": np.array([float(r["Model Parameters"]) for r in rows]),
                        "run": np.array(run_idx)},
                       tuple(space.to_text(c) for c in cfgs))


@functools.lru_cache(maxsize=2)
def load_help(data_dir: str | None = None) -> ConfigTable:
    """HELP's 5,000 OFA sub-networks; columns ``<device>_bs<batch>`` hold latency in ms."""
    rows = _read("ofa_mbv3_latency_5000", data_dir)

    def ints(s):
        return [int(v) for v in s.split("-")]

    cols = {f"{dev}_bs{b}": np.array([float(r[f"lat_ms_{dev}_{b}"]) for r in rows])
            for dev in HELP_DEVICES for b in HELP_BATCHES}
    return ConfigTable(np.array([ints(r["ks"]) for r in rows]), np.array([ints(r["e"]) for r in rows]),
                       np.array([ints(r["d"]) for r in rows]), np.array([int(r["r"]) for r in rows]), cols)
