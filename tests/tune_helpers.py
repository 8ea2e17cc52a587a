"""Test plugins for the Tune searcher tests (Ray workers import them as ``tune_helpers:Name``)."""
from __future__ import annotations

from automl.testing.toys import Quadratic


class SizedQuadratic(Quadratic):
    """Quadratic's loss (functional: k and k + m share it) plus ``size`` = k, a per-candidate
    objective like an expression's node count (k and k + m differ), so "loss" and "size" pull a
    search to different places: k mod m = 42 versus k = 0."""

    name = "sized-quadratic"
    objectives = {"loss": "min", "size": "min"}
    per_candidate = ("size",)

    def candidate_objectives(self, genome, space=None):
        return {"size": float(genome)}

    def evaluate(self, genome, space):
        out = super().evaluate(genome, space)
        return {**out, "size": float(genome)}
