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
    """Reports where it ran: the GPU id Ray made visible (CUDA_VISIBLE_DEVICES) and the pid.

    ``barrier``: the name of a :class:`Rendezvous` actor; each evaluation first checks in there and
    waits until that many distinct processes have, so no evaluation finishes before every actor
    of the pool is placed and running one (up to ``barrier_timeout`` s, then it raises)."""

    name = "env-report"
    objectives = {"gpu": "max", "pid": "max"}

    def __init__(self, sleep: float = 0.0, barrier: str | None = None, barrier_timeout: float = 120.0):
        super().__init__(sleep=sleep, barrier=barrier, barrier_timeout=barrier_timeout)
        self.sleep, self.barrier, self.barrier_timeout = float(sleep), barrier, float(barrier_timeout)

    def evaluate(self, genome, space):
        if self.barrier:
            import ray

            ray.get(ray.get_actor(self.barrier).arrive.remote(os.getpid()), timeout=self.barrier_timeout)
        if self.sleep:
            time.sleep(self.sleep)
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return {"gpu": float(cvd) if cvd.isdigit() else -1.0, "pid": float(os.getpid())}


class Rendezvous:
    """A barrier as a Ray actor (asyncio, so waiting callers do not block each other): ``arrive(who)``
    returns once ``parties`` distinct callers have arrived."""

    def __init__(self, parties: int):
        import asyncio

        self.parties, self.seen, self.all_in = int(parties), set(), asyncio.Event()

    async def arrive(self, who) -> int:
        self.seen.add(who)
        if len(self.seen) >= self.parties:
            self.all_in.set()
        await self.all_in.wait()
        return len(self.seen)


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
    """Driver side of the fake-GPU placement test (joins the cluster named by RAY_ADDRESS).

    Every evaluation waits at a barrier until all the pool's actors are running one, so the
    pool's full placement is observed whatever the load: actors start at Ray's pace (worker
    processes start a few at a time), and without the barrier the first few ready actors could
    finish every evaluation before the others were built."""
    import ray

    from automl.runners.base import PluginSpec
    from automl.runners.ray import RayRunner

    r = RayRunner(num_gpus_per_actor=0.5, num_cpus_per_actor=0.25)
    r.start(PluginSpec("plugins_for_tests:ToySpace", {}),
            PluginSpec("ray_helpers:EnvReport", {"sleep": 0.2, "barrier": "placement-barrier"}))
    n = r.capacity  # the actors start() asked Ray for
    barrier = ray.remote(num_cpus=0)(Rendezvous).options(name="placement-barrier").remote(n)
    try:
        ray.get(barrier.__ray_ready__.remote(), timeout=120)  # registered before any evaluation looks it up
        for i in range(2 * n):
            r.submit(i, str(i))
        got = {}
        while len(got) < 2 * n:
            got.update(dict(r.poll(timeout=60)))
        print(json.dumps({"capacity": n, "actors": r.actor_info(),
                          "results": {str(k): v for k, v in got.items()},
                          "cluster": ray.cluster_resources()}))
    finally:
        r.close()
        ray.kill(barrier)


if __name__ == "__main__":
    if sys.argv[1:] == ["placement"]:
        _placement()
    else:
        sys.exit("usage: ray_helpers.py placement")
