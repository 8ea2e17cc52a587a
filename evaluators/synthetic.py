"""Synthetic evaluators for benchmarks and tests: no training, deterministic values."""
from __future__ import annotations

import time
from typing import Any

import xxhash

from automl.evaluator import Evaluator


def _text_value(text: str) -> float:
    """A deterministic pseudo-fitness in [0, 1) from the candidate's text."""
    return xxhash.xxh3_64_intdigest(text.encode()) / 2.0**64


class ZeroCost(Evaluator):
    """Returns a deterministic number derived from the candidate text at (almost) no cost.
    ``batch`` > 1 offers ``evaluate_batch`` in generations of that many (the driver's rate as a
    batched evaluator meets it)."""

    name = "zero-cost"
    objectives = {"score": "max"}

    def __init__(self, batch: int = 1, **options: Any):
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            from automl.errors import ConfigError

            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        super().__init__(**({"batch": batch} if batch != 1 else {}), **options)
        self.batch_size = batch

    def evaluate(self, genome: Any, space: Any) -> dict[str, float]:
        return {"score": _text_value(space.to_text(genome))}

    def evaluate_batch(self, genomes: Any, space: Any) -> list[dict[str, float]]:
        return [self.evaluate(g, space) for g in genomes]


class Sleep(ZeroCost):
    """Sleeps ``seconds`` (default 0.1), then returns like zero-cost: a stand-in for real work."""

    name = "sleep"

    def __init__(self, seconds: float = 0.1, **options: Any):
        super().__init__(seconds=seconds, **options)
        self.seconds = float(seconds)

    def evaluate(self, genome: Any, space: Any) -> dict[str, float]:
        time.sleep(self.seconds)
        return super().evaluate(genome, space)
