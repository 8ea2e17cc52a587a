"""Measured latency of a torch module: warm-up, median over repeats, pinned threads, denormals
flushed on CPU, CUDA events on GPU.  Everything the number depends on (device, batch size,
dtype, threads, resolution) is in :class:`LatencySetting`, which the evaluator puts in its
fidelity so the cache never mixes settings.  torch is imported inside the functions."""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any

from automl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LatencySetting:
    device: str = "cpu"  # "cpu" or "cuda[:i]"
    batch: int = 1
    dtype: str = "float32"  # float32 / float16 / bfloat16
    threads: int = 1  # torch intra-op threads on CPU (pinned for the measurement)
    warmup: int = 5  # untimed forward passes first
    repeats: int = 11  # timed repeats; the median is reported
    inner: int = 3  # forward passes per timed repeat (latency = repeat time / inner)

    def __post_init__(self):
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"latency device must be 'cpu' or 'cuda[:i]', got {self.device!r}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"latency dtype must be float32, float16 or bfloat16, got {self.dtype!r}")
        for name in ("batch", "threads", "repeats", "inner"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"latency {name} must be >= 1, got {getattr(self, name)!r}")
        if self.warmup < 0:
            raise ConfigError(f"latency warmup must be >= 0, got {self.warmup!r}")


def measure(module: Any, resolution: int, setting: LatencySetting) -> dict[str, float]:
    """Latency of ``module`` on a ``(batch, 3, r, r)`` input: ``latency_ms`` (median over repeats),
    ``latency_cv`` (repeat-to-repeat standard deviation / mean), ``latency_mad_rel`` (median absolute
    deviation / median: the spread without the outliers a shared machine adds), ``latency_min_ms``."""
    import torch

    dtype = getattr(torch, setting.dtype)
    cuda = setting.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"latency device {setting.device!r} requested but CUDA is not available")
    prev_threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(setting.threads)
        torch.set_flush_denormal(True)
    try:
        module = module.to(setting.device, dtype).eval()
        x = torch.randn(setting.batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
        x = x.to(setting.device, dtype)
        times = []
        with torch.inference_mode():
            for _ in range(setting.warmup):
                module(x)
            for _ in range(setting.repeats):
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(setting.inner):
                        module(x)
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end) / setting.inner)
                else:
                    t0 = time.perf_counter()
                    for _ in range(setting.inner):
                        module(x)
                    times.append((time.perf_counter() - t0) * 1e3 / setting.inner)
    finally:
        if not cuda:  # restore the process's defaults: FTZ/DAZ would also change numpy and float parsing
            torch.set_num_threads(prev_threads)
            torch.set_flush_denormal(False)
    mean, med = statistics.fmean(times), statistics.median(times)
    cv = statistics.pstdev(times) / mean if mean > 0 else 0.0
    mad = statistics.median(abs(t - med) for t in times) / med if med > 0 else 0.0
    return {"latency_ms": med, "latency_cv": cv, "latency_mad_rel": mad, "latency_min_ms": min(times)}


def machine_load() -> dict[str, float]:
    """1-minute load average and CPU count, to report next to CPU measurements."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return {"loadavg_1m": load1, "cpus": float(os.cpu_count() or 0)}
