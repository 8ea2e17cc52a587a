"""Small plugins used by the engine tests (importable by worker processes as
``plugins_for_tests:Name``; pytest puts tests/ on sys.path and spawn workers inherit it)."""
from __future__ import annotations

import os
import time

import numpy as np

# ToySpace and Quadratic ship with the package (the contract suites use them); tests name them
# plugins_for_tests:ToySpace / :Quadratic as well.
from automl.testing.toys import Quadratic, ToySpace  # noqa: F401


class NoisyQuadratic(Quadratic):
    name = "noisy-quadratic"
    noisy = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self._rng = np.random.default_rng(0)

    def evaluate(self, genome, space):
        out = super().evaluate(genome, space)
        return {"loss": out["loss"] + float(self._rng.normal())}


class Faulty(Quadratic):
    """The fault-injecting evaluator of the fault suite (tests/test_faults.py, benchmarks/faults.py).

    Besides Quadratic's faults: ``raise_on`` maps a candidate to the name of an exception it
    raises (``KeyboardInterrupt``, ``SystemExit``, ``OSError``, ``ValueError``); ``huge_on`` returns
    ``10**400``; ``journal`` names a directory where every *completed* evaluation appends one JSON
    line (candidate, pid, start and end wall time) to ``<pid>.jsonl``, so tests can count real
    evaluations across processes and kills; ``jitter`` adds a random sleep up to that many seconds
    (random kill moments land anywhere in an evaluation).
    """

    name = "faulty"

    def __init__(self, raise_on: dict | None = None, huge_on: list | None = None, journal: str | None = None,
                 jitter: float = 0.0, **kw):
        super().__init__(**kw)
        self._options.update(raise_on=raise_on, huge_on=huge_on, journal=journal, jitter=jitter)
        self.raise_on = {int(k): v for k, v in (raise_on or {}).items()}
        self.huge_on, self.journal, self.jitter = set(huge_on or ()), journal, float(jitter)
        self._jrng = np.random.default_rng()

    def fidelity(self):  # where the journal lives is not part of what a result means
        return {k: v for k, v in self.options().items() if k not in ("journal", "counter_dir")}

    def evaluate(self, genome, space):
        import json

        start = time.time()
        k = int(genome)
        if self.jitter:
            time.sleep(float(self._jrng.uniform(0.0, self.jitter)))
        name = self.raise_on.get(k)
        if name is not None:
            exc = {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit, "OSError": OSError,
                   "ValueError": ValueError}[name]
            raise exc(f"injected {name} on {k}")
        if k in self.huge_on:
            return {"loss": 10 ** 400}
        out = self._value(genome, space)
        if self.journal:
            with open(os.path.join(self.journal, f"{os.getpid()}.jsonl"), "a") as f:
                f.write(json.dumps({"k": k, "pid": os.getpid(), "start": start, "end": time.time()}) + "\n")
        return out

    def _value(self, genome, space):
        return Quadratic.evaluate(self, genome, space)


class NoisyFaulty(Faulty):
    name = "noisy-faulty"
    noisy = True

    def _value(self, genome, space):
        out = super()._value(genome, space)
        return {"loss": out["loss"] + float(self._jrng.normal())}
