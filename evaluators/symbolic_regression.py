"""Symbolic regression: mean squared error of an expression against a target on seeded data."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from automl.errors import ConfigError, InvalidCandidate, ParseError
from automl.evaluator import Evaluator
from search_spaces.expressions import Expr, evaluate, parse, to_text

#: Named targets: name -> (expression, variables, default (low, high)).  Nguyen benchmarks
#: (Uy et al. 2011); Nguyen-11 (x**y) is left out: exponents here are constants.
BENCHMARKS: dict[str, tuple[str, tuple[str, ...], tuple[float, float]]] = {
    "nguyen1": ("x**3 + x**2 + x", ("x",), (-1.0, 1.0)),
    "nguyen2": ("x**4 + x**3 + x**2 + x", ("x",), (-1.0, 1.0)),
    "nguyen3": ("x**5 + x**4 + x**3 + x**2 + x", ("x",), (-1.0, 1.0)),
    "nguyen4": ("x**6 + x**5 + x**4 + x**3 + x**2 + x", ("x",), (-1.0, 1.0)),
    "nguyen5": ("sin(x**2)*cos(x) - 1", ("x",), (-1.0, 1.0)),
    "nguyen6": ("sin(x) + sin(x + x**2)", ("x",), (-1.0, 1.0)),
    "nguyen7": ("log(x + 1) + log(x**2 + 1)", ("x",), (0.0, 2.0)),
    "nguyen8": ("sqrt(x)", ("x",), (0.0, 4.0)),
    "nguyen9": ("sin(x) + sin(y**2)", ("x", "y"), (-1.0, 1.0)),
    "nguyen10": ("2*sin(x)*cos(y)", ("x", "y"), (-1.0, 1.0)),
    "nguyen12": ("x**4 - x**3 + y**2/2 - y", ("x", "y"), (-1.0, 1.0)),
}
MAX_N = 10_000_000


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class SymbolicRegression(Evaluator):
    """Fit a target function on seeded data: objectives mse (primary) and size (node count).

    ``target``: expression text over ``variables`` (parsed, never eval'd) or a name in
    ``BENCHMARKS`` (then ``variables``, ``low`` and ``high`` default to the benchmark's).
    Data: ``n`` points, each variable ~ U(low, high), drawn from ``seed``; ``noise`` > 0 adds
    N(0, noise**2) to the targets (fixed by ``seed``, so evaluation stays deterministic).
    Non-finite predictions give a non-finite mse (the engine marks those invalid).
    """

    name = "symbolic-regression"
    version = "2"
    objectives = {"mse": "min", "size": "min"}
    per_candidate = ("size",)  # the size of this text, not of its equivalence class
    noisy = False
    spaces = ("expressions",)
    test_options = {"n": 64}

    def __init__(self, target: str = "x**3 + x**2 + x", n: int = 256, low: float | None = None,
                 high: float | None = None, seed: int = 0, noise: float = 0.0,
                 variables: Sequence[str] | None = None):
        if not isinstance(target, str):
            raise ConfigError(f"target must be expression text or a benchmark name, got {target!r}")
        bench = BENCHMARKS.get(target.strip().lower())
        text, bench_vars, (b_low, b_high) = bench if bench else (target, ("x",), (-1.0, 1.0))
        if isinstance(variables, str):
            variables = (variables,)
        variables = tuple(bench_vars if variables is None else variables)
        low = _number("low", b_low if low is None else low)
        high = _number("high", b_high if high is None else high)
        if not low < high:
            raise ConfigError(f"need low < high, got low={low}, high={high}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
            raise ConfigError(f"n must be an integer in 1..{MAX_N}, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        noise = _number("noise", noise)
        if noise < 0:
            raise ConfigError(f"noise must be >= 0, got {noise}")
        try:
            self.target = parse(text, variables)
        except ParseError as exc:
            raise ConfigError(f"bad target {target!r}: {exc}; named targets: {', '.join(BENCHMARKS)}") from None
        super().__init__(target=target, n=n, low=low, high=high, seed=seed, noise=noise,
                         variables=list(variables))
        self.n, self.variables = n, variables
        rng = np.random.default_rng(seed)
        self._env = {v: rng.uniform(low, high, size=n) for v in variables}
        y = evaluate(self.target, self._env, n).copy()
        if not np.all(np.isfinite(y)):
            raise ConfigError(f"target {target!r} is not finite on [{low}, {high}]")
        if noise > 0:
            y += rng.normal(0.0, noise, size=n)
        for a in (*self._env.values(), y):
            a.flags.writeable = False
        self.y = y

    def fidelity(self) -> dict[str, Any]:
        """Options with the target as canonical text (a benchmark name and its text share a cache)."""
        return {**self.options(), "target": to_text(self.target)}

    def probe_domain(self) -> dict[str, Any]:
        """The data this evaluator scores on (its points when there are at most 1,024, else a
        seeded subsample) and its range: the expressions probe then sees what the mse sees."""
        idx = np.arange(self.n) if self.n <= 1024 else np.random.default_rng(self.seed).choice(self.n, 1024, False)
        lo, hi = self._options["low"], self._options["high"]
        return {"points": {v: [float(x) for x in self._env[v][idx]] for v in self.variables},
                "ranges": {v: [lo, hi] for v in self.variables}}

    def candidate_objectives(self, genome: Any, space: Any = None) -> Mapping[str, float]:
        if not isinstance(genome, Expr):
            raise InvalidCandidate(f"symbolic-regression evaluates expressions, got {type(genome).__name__}")
        return {"size": float(genome.size)}

    def evaluate(self, genome: Any, space: Any = None) -> Mapping[str, float]:
        if not isinstance(genome, Expr):
            raise InvalidCandidate(f"symbolic-regression evaluates expressions, got {type(genome).__name__}")
        pred = evaluate(genome, self._env, self.n)
        with np.errstate(all="ignore"):
            mse = float(np.mean(np.square(pred - self.y)))
        return {"mse": mse, "size": float(genome.size)}
