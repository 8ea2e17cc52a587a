"""Hardware-aware evaluators for OFA MobileNetV3 sub-networks.

``ofa-hw`` combines, per candidate:
  * ``top1`` (max): the accuracy oracle, RBF kernel ridge fitted on all 2,373 real ImageNet
    evaluations DyNAS-T logged (held-out 5-fold RMSE in docs/hardware-aware.md);
  * ``macs`` (min) and ``params``: the analytic counter (equal to DyNAS-T's columns);
  * ``latency_ms`` (min) when ``latency`` is ``"lut"`` (the per-layer lookup table fitted on HELP's
    measured table ``latency_table``, e.g. ``v100_bs1``) or ``"measured"`` (the sub-network is
    extracted from the elastic supernet — random init, or OFA's weights from ``checkpoint`` — and
    timed here with :mod:`evaluators.hardware.latency`);
  * constraints (core's mechanism, :class:`automl.types.Evaluation`, never objectives): one per
    budget given, ``latency_ms`` for ``max_latency_ms`` and ``macs`` for ``max_macs``, each the
    relative excess ``value / budget - 1`` (<= 0: the budget holds).  They are cached with the
    result like objectives.  Strategies rank infeasible results after every feasible one, by total
    violation (Deb's rule); ``automl show`` and the Pareto fronts leave them out.

Every option is in the fidelity (so the cache keys measured latency by device, batch, dtype,
threads and resolution).  Measured latency is ``noisy`` (the cache aggregates repeats).
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from automl.errors import ConfigError
from automl.evaluator import Evaluator
from automl.types import Evaluation

from .counter import Counter
from .predictors import KernelRidge, LatencyLUT, config_features
from .tables import HELP_BATCHES, HELP_DEVICES, load_dynast, load_help



@functools.lru_cache(maxsize=2)
def accuracy_oracle(data_dir: str | None = None) -> KernelRidge:
    t = load_dynast(None, data_dir)
    return KernelRidge().fit(config_features(t.ks, t.e, t.d), t.columns["top1"])


@functools.lru_cache(maxsize=16)
def latency_lut(table: str, data_dir: str | None = None) -> LatencyLUT:
    h = load_help(data_dir)
    if table not in h.columns:
        raise ConfigError(f"unknown HELP latency table {table!r}; choose one of {', '.join(sorted(h.columns))}")
    return LatencyLUT().fit(h.ks, h.e, h.d, h.r, h.columns[table])


@functools.lru_cache(maxsize=2)
def _supernet(checkpoint: str | None, width: float):
    import torch

    from search_spaces.ofa.supernet import OFAMobileNetV3, load_ofa_checkpoint

    if checkpoint:
        return load_ofa_checkpoint(checkpoint, width).eval()
    torch.manual_seed(0)  # random init, fixed: latency does not depend on the weights' values
    return OFAMobileNetV3(width).eval()


class OFAHardware(Evaluator):
    """OFA MobileNetV3: oracle top-1, counted MACs, optional LUT or measured latency, constraints.

    Options:
        latency: ``"none"`` (default), ``"lut"`` (HELP lookup table) or ``"measured"`` (timed on
            this machine); anything but none adds the ``latency_ms`` objective.
        latency_table: the HELP table the LUT is fitted on, ``<device>_bs<batch>`` (default v100_bs1).
        max_latency_ms: latency budget; gives the constraint ``latency_ms`` (relative excess).
        max_macs: MACs budget; gives the constraint ``macs`` (relative excess).
        device: measured latency: where to time (cpu, cuda, cuda:N).
        batch: measured latency: batch size.
        dtype: measured latency: float32, float16 or bfloat16.
        threads: measured latency: torch threads pinned while timing.
        repeats: measured latency: timed repeats; the median is reported.
        warmup: measured latency: untimed runs before timing.
        inner: measured latency: forward passes per timed repeat.
        measure_resolution: measured latency: input resolution to time at (default: the genome's).
        checkpoint: measured latency: OFA supernet weights to extract from (default: a fixed random
            init; latency does not depend on the weights' values).
    """

    name = "ofa-hw"
    version = "2"  # 2: budgets are core constraints, no longer a constraint_violation objective (old cache keys retire)
    spaces = ("ofa-mbv3",)
    test_options = {"latency": "lut", "max_latency_ms": 12.0}

    def __init__(self, latency: str = "none", latency_table: str = "v100_bs1", max_latency_ms: float | None = None,
                 max_macs: float | None = None, device: str = "cpu", batch: int = 1, dtype: str = "float32",
                 threads: int = 1, repeats: int = 11, warmup: int = 5, inner: int = 3,
                 measure_resolution: int | None = None, checkpoint: str | None = None):
        super().__init__(latency=latency, latency_table=latency_table, max_latency_ms=max_latency_ms,
                         max_macs=max_macs, device=device, batch=batch, dtype=dtype, threads=threads,
                         repeats=repeats, warmup=warmup, inner=inner, measure_resolution=measure_resolution,
                         checkpoint=checkpoint)
        if latency not in ("none", "lut", "measured"):
            raise ConfigError(f"latency must be 'none', 'lut' or 'measured', got {latency!r}")
        if max_latency_ms is not None and latency == "none":
            raise ConfigError("max_latency_ms needs latency='lut' or 'measured'")
        known = {f"{d}_bs{b}" for d in HELP_DEVICES for b in HELP_BATCHES}
        if latency == "lut" and latency_table not in known:
            raise ConfigError(f"unknown HELP latency table {latency_table!r}; choose one of {', '.join(sorted(known))}")
        self.latency = latency
        self.max_latency_ms, self.max_macs = max_latency_ms, max_macs
        self.counter = Counter()
        self.objectives = {"top1": "max", "macs": "min"}
        if latency != "none":
            self.objectives["latency_ms"] = "min"
        self.noisy = latency == "measured"
        if latency == "measured":
            from automl._optional import require

            require("torch", "ofa-hw with latency='measured'")  # the lookups (none, lut) need no torch
            from .latency import LatencySetting

            self.setting = LatencySetting(device, int(batch), dtype, int(threads), int(warmup), int(repeats), int(inner))

    def fidelity(self) -> dict[str, Any]:
        f = self.options()
        if self.latency != "measured":  # measurement settings do not change a lookup
            for k in ("device", "batch", "dtype", "threads", "repeats", "warmup", "inner", "measure_resolution",
                      "checkpoint"):
                f.pop(k)
        if self.latency != "lut":
            f.pop("latency_table")
        return f

    def evaluate(self, genome: Any, space: Any) -> Evaluation:
        ks, e, d = np.array([genome.ks]), np.array([genome.e]), np.array([genome.d])
        if genome.r != 224:
            raise ConfigError("the accuracy oracle is fitted at r=224 (DyNAS-T's setting); use resolutions=[224]")
        top1 = float(accuracy_oracle().predict(config_features(ks, e, d))[0])
        macs, params = self.counter.count(genome)
        out: dict[str, float] = {"top1": top1, "macs": float(macs), "params": float(params)}
        if self.latency == "lut":
            out["latency_ms"] = float(latency_lut(self.options()["latency_table"]).predict(ks, e, d, genome.r)[0])
        elif self.latency == "measured":
            from search_spaces.ofa.supernet import extract

            from .latency import measure

            opts = self.options()
            net = extract(_supernet(opts["checkpoint"], getattr(space, "width", 1.0)), genome)
            res = measure(net, int(opts["measure_resolution"] or genome.r), self.setting)
            out.update(res)
        return Evaluation(out, self.constraints(out) or None)

    def constraints(self, out: Mapping[str, float]) -> dict[str, float]:
        """``{name: value / budget - 1}`` for each budget given (<= 0: the budget holds)."""
        c: dict[str, float] = {}
        if self.max_latency_ms is not None:
            c["latency_ms"] = out["latency_ms"] / self.max_latency_ms - 1.0
        if self.max_macs is not None:
            c["macs"] = out["macs"] / self.max_macs - 1.0
        return c
