"""Small plugins the contract suites run on (a third-party runner or cache is checked against
them): ``ToySpace`` (integers; k and k+m compute the same) and ``Quadratic`` (a loss that can be
told to fail, return NaN, hang or kill its process on chosen candidates).  Importable by worker
processes as ``automl.testing.toys:ToySpace`` / ``:Quadratic``."""
from __future__ import annotations

import os
import time

from typing import Any, Mapping

import numpy as np

from automl.evaluator import Evaluator
from automl.space import Categorical, SearchSpace


class ToySpace(SearchSpace):
    """Integers 0..n-1; candidate k computes k mod m (so k and k+m are the same function)."""

    name = "toy"
    probe_spec = "toy:k mod m"

    def __init__(self, n: int = 200, m: int = 100) -> None:
        self.n, self.m = int(n), int(m)

    def options(self) -> dict[str, Any]:
        return {"n": self.n, "m": self.m}

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(0, self.n))

    def mutate(self, g: int, rng: np.random.Generator) -> int:
        return int((g + int(rng.integers(1, 26)) * (1 if rng.random() < 0.5 else -1)) % self.n)

    def to_text(self, g: int) -> str:
        return str(g)

    def from_text(self, t: str) -> int:
        from automl.errors import ParseError

        try:
            g = int(t)
        except ValueError:
            raise ParseError(f"not an integer: {t!r}", 1, 1) from None
        if not 0 <= g < self.n:
            raise ParseError(f"{g} out of range 0..{self.n - 1}", 1, 1)
        return g

    def structural_key(self, g: int) -> str:
        return str(g)

    def probe(self, g: int, seed: int) -> np.ndarray:
        return np.array([float(g % self.m)])

    def param_space(self) -> dict[str, Categorical]:
        return {"k": Categorical(tuple(range(self.n)))}

    def from_params(self, p: Mapping[str, Any]) -> int:
        return int(p["k"])

    def to_params(self, g: int) -> dict[str, Any]:
        return {"k": g}


class Quadratic(Evaluator):
    """loss = (k mod m - 42)^2 / 100, optionally sleeping, failing or returning NaN on chosen k."""

    name = "quadratic"
    objectives = {"loss": "min"}

    def __init__(self, sleep: float = 0.0, fail_on: list[int] | None = None, nan_on: list[int] | None = None,
                 hang_on: list[int] | None = None, exit_on: list[int] | None = None, counter_dir: str | None = None,
                 deaf_hang_on: list[int] | None = None) -> None:
        super().__init__(sleep=sleep, fail_on=fail_on, nan_on=nan_on, hang_on=hang_on, exit_on=exit_on,
                         counter_dir=counter_dir, deaf_hang_on=deaf_hang_on)
        self.deaf_hang_on = set(deaf_hang_on or ())
        self.sleep, self.fail_on, self.nan_on = sleep, set(fail_on or ()), set(nan_on or ())
        self.hang_on, self.exit_on, self.counter_dir = set(hang_on or ()), set(exit_on or ()), counter_dir

    def evaluate(self, genome: Any, space: Any) -> dict[str, float]:
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
