"""Small plugins used by the engine tests (importable by worker processes as
``plugins_for_tests:Name``; pytest puts tests/ on sys.path and spawn workers inherit it)."""
from __future__ import annotations

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
