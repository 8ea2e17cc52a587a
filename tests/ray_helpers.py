"""Test-only plugins and helpers for the Ray tests.

Workers import this module as ``ray_helpers:Name`` (tests/conftest.py puts tests/ on PYTHONPATH,
which Ray's worker processes inherit).  Run as a script it is the driver of the placement check
on a separate ``ray start`` cluster: ``python ray_helpers.py placement`` prints one JSON line.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from automl.evaluator import Evaluator


class EnvReport(Evaluator):
    """Reports where it ran: the GPU id Ray made visible (CUDA_VISIBLE_DEVICES) and the pid."""

    name = "env-report"
    objectives = {"gpu": "max", "pid": "max"}

    def __init__(self, sleep: float = 0.0):
        super().__init__(sleep=sleep)
        self.sleep = float(sleep)

    def evaluate(self, genome, space):
        if self.sleep:
            time.sleep(self.sleep)
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return {"gpu": float(cvd) if cvd.isdigit() else -1.0, "pid": float(os.getpid())}


class Stubborn(Evaluator):
    """Blocks SIGALRM and hangs on the chosen candidates: only the driver can end it."""

    name = "stubborn"
    objectives = {"loss": "min"}

    def __init__(self, hang_on: list | None = None):
        super().__init__(hang_on=hang_on)
        self.hang_on = set(hang_on or ())

    def evaluate(self, genome, space):
        if int(genome) in self.hang_on:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return {"loss": float(genome)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _placement() -> None:
    """Driver side of the fake-GPU placement test (joins the cluster named by RAY_ADDRESS)."""
    from automl.runners.base import PluginSpec
    from automl.runners.ray import RayRunner

    r = RayRunner(num_gpus_per_actor=0.5, num_cpus_per_actor=0.25)
    r.start(PluginSpec("plugins_for_tests:ToySpace", {}), PluginSpec("ray_helpers:EnvReport", {"sleep": 0.2}))
    try:
        n = r.capacity
        for i in range(2 * n):
            r.submit(i, str(i))
        got = {}
        while len(got) < 2 * n:
            got.update(dict(r.poll(timeout=60)))
        import ray

        print(json.dumps({"capacity": n, "actors": r.actor_info(),
                          "results": {str(k): v for k, v in got.items()},
                          "cluster": ray.cluster_resources()}))
    finally:
        r.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["placement"]:
        _placement()
    else:
        sys.exit("usage: ray_helpers.py placement")
