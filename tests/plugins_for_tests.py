"""Small plugins used by the engine tests (importable by worker processes as
``plugins_for_tests:Name``; pytest puts tests/ on sys.path and spawn workers inherit it)."""
from __future__ import annotations

import os
import time

import numpy as np

from automl.evaluator import Evaluator
from automl.space import Categorical, SearchSpace


class ToySpace(SearchSpace):
    """Integers 0..n-1; candidate k computes k mod m (so k and k+m are the same function)."""

    name = "toy"
    probe_spec = "toy:k mod m"

    def __init__(self, n: int = 200, m: int = 100):
        self.n, self.m = int(n), int(m)

    def options(self):
        return {"n": self.n, "m": self.m}

    def sample(self, rng):
        return int(rng.integers(0, self.n))

    def mutate(self, g, rng):
        return int((g + int(rng.integers(1, 26)) * (1 if rng.random() < 0.5 else -1)) % self.n)

    def to_text(self, g):
        return str(g)

    def from_text(self, t):
        from automl.errors import ParseError

        try:
            g = int(t)
        except ValueError:
            raise ParseError(f"not an integer: {t!r}", 1, 1) from None
        if not 0 <= g < self.n:
            raise ParseError(f"{g} out of range 0..{self.n - 1}", 1, 1)
        return g

    def structural_key(self, g):
        return str(g)

    def probe(self, g, seed):
        return np.array([float(g % self.m)])

    def param_space(self):
        return {"k": Categorical(tuple(range(self.n)))}

    def from_params(self, p):
        return int(p["k"])

    def to_params(self, g):
        return {"k": g}


class Quadratic(Evaluator):
    """loss = (k mod m - 42)^2 / 100, optionally sleeping, failing or returning NaN on chosen k."""

    name = "quadratic"
    objectives = {"loss": "min"}

    def __init__(self, sleep: float = 0.0, fail_on: list | None = None, nan_on: list | None = None,
                 hang_on: list | None = None, exit_on: list | None = None, counter_dir: str | None = None,
                 deaf_hang_on: list | None = None):
        super().__init__(sleep=sleep, fail_on=fail_on, nan_on=nan_on, hang_on=hang_on, exit_on=exit_on,
                         counter_dir=counter_dir, deaf_hang_on=deaf_hang_on)
        self.deaf_hang_on = set(deaf_hang_on or ())
        self.sleep, self.fail_on, self.nan_on = sleep, set(fail_on or ()), set(nan_on or ())
        self.hang_on, self.exit_on, self.counter_dir = set(hang_on or ()), set(exit_on or ()), counter_dir

    def evaluate(self, genome, space):
        k = int(genome)
        if self.counter_dir:  # one file per real evaluation: lets tests count them across processes
            with open(os.path.join(self.counter_dir, f"{k}-{os.getpid()}-{time.time_ns()}"), "w"):
                pass
        if self.sleep:
            time.sleep(self.sleep)
        if k in self.fail_on:
            raise RuntimeError(f"cannot evaluate {k}")
        if k in self.nan_on:
            return {"loss": float("nan")}
        if k in self.hang_on:
            time.sleep(3600)
        if k in self.exit_on:
            os._exit(3)
        if k in self.deaf_hang_on:  # like a C call that never returns to Python: the alarm is held back
            import signal

            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return {"loss": ((k % space.m) - 42) ** 2 / 100.0}


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
