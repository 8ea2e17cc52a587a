"""Test-only plugins for the Optuna / Tune integration tests (importable by worker processes as
``integration_helpers:Name``; tests/ is on PYTHONPATH)."""
from __future__ import annotations

import math

import numpy as np

from automl.errors import ParseError
from automl.evaluator import Evaluator
from automl.space import SearchSpace


class ConstSpace(SearchSpace):
    """A fake "program" that is just two constants and a learning-rate scale: text ``a b s``.

    Implements the constants interface of automl.integrations.optuna_export:
    ``constants(g) -> [a, b]`` and ``with_constants(g, values, lr_scale) -> (a', b', s * lr_scale)``.
    """

    name = "const-toy"
    probe_spec = "const-toy: the three numbers"

    def to_text(self, g):
        return " ".join(repr(float(x)) for x in g)

    def from_text(self, t):
        try:
            g = tuple(float(x) for x in t.split())
        except ValueError:
            raise ParseError(f"not three numbers: {t!r}", 1, 1) from None
        if len(g) != 3:
            raise ParseError(f"not three numbers: {t!r}", 1, 1)
        return g

    def structural_key(self, g):
        return self.to_text(g)

    def probe(self, g, seed):
        return np.array(g, dtype=np.float64)

    def constants(self, g):
        return [g[0], g[1]]

    def with_constants(self, g, values, lr_scale=1.0):
        return (float(values[0]), float(values[1]), g[2] * float(lr_scale))


class ConstLoss(Evaluator):
    """Smallest at a = 0.99, b = 3e-3, s = 2 (log distances)."""

    name = "const-loss"
    objectives = {"loss": "min"}

    def evaluate(self, g, space):
        a, b, s = g
        return {"loss": (math.log10(1.0 - a) + 2.0) ** 2 + math.log(b / 3e-3) ** 2 + math.log(s / 2.0) ** 2}


class ProgramStepSize(Evaluator):
    """For optimizer programs: how far the mean |update| over the fixed probe steps is from 0.02
    (log distance) — cheap, smooth in the learning-rate multiplier and the constants."""

    name = "program-step-size"
    objectives = {"loss": "min"}

    def evaluate(self, p, space):
        from search_spaces.programs import interp

        w0, grads, lrs = interp.probe_data(0)
        with np.errstate(all="ignore"):
            updates, _, _ = interp.run(p, w0, grads, lrs)
            size = float(np.mean([np.mean(np.abs(u)) for u in updates]))
        return {"loss": math.log(size / 0.02) ** 2 if size > 0 and math.isfinite(size) else math.inf}
