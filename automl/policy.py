"""Cache policy and session statistics: what the seam decides per lookup, and what it counts.

Policies (:class:`CachePolicy`), decided per lookup:
  * deterministic (``k=1``): the first result stands; every later lookup is a *hit*.
  * aggregating (``k>1``): up to ``k`` real evaluations per key; while fewer exist, a lookup is a
    *partial* hit (the candidate is evaluated again and the result folded into a running mean);
    afterwards a full *hit*.
  * forgetful (``forget_after=n`` and/or ``forget_prob=p``): after ``n`` hits since the last real
    evaluation, or with probability ``p`` on each hit, the lookup becomes *partial* again.
A *miss* is a key never evaluated.  Failed and invalid results are final for their key.

A policy round-trips through text (``CachePolicy.parse(p.to_text()) == p``) and JSON
(``CachePolicy.from_json(p.to_json()) == p``); run.json and the Tune searcher's pickled state
store it that way.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError
from .types import HIT, MISS, OK, PARTIAL, CacheOutcome


@dataclasses.dataclass(frozen=True)
class CachePolicy:
    k: int = 1
    forget_after: int | None = None
    forget_prob: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"cache policy k must be an integer >= 1, got {self.k!r}")
        if self.forget_after is not None and self.forget_after < 1:
            raise ConfigError(f"forget_after must be >= 1, got {self.forget_after}")
        if not 0.0 <= self.forget_prob <= 1.0:
            raise ConfigError(f"forget_prob must be in [0, 1], got {self.forget_prob}")

    @classmethod
    def parse(cls, text: str) -> "CachePolicy":
        """``deterministic`` | ``aggregating[:K]`` | ``forgetful:N[:P][:k=K]`` | ``forgetful:p=P[:k=K]``."""
        name, _, rest = text.partition(":")
        try:
            if name == "deterministic" and not rest:
                return cls()
            if name == "aggregating":
                return cls(k=int(rest) if rest else 3)
            if name == "forgetful" and rest:
                parts = rest.split(":")
                k = 1
                if parts[-1].startswith("k="):
                    k = int(parts.pop()[2:])
                if len(parts) == 1 and parts[0].startswith("p="):
                    return cls(k=k, forget_prob=float(parts[0][2:]))
                if 1 <= len(parts) <= 2:
                    return cls(k=k, forget_after=int(parts[0]),
                               forget_prob=float(parts[1]) if len(parts) > 1 else 0.0)
        except ValueError:
            pass
        raise ConfigError(f"bad cache policy {text!r}: use deterministic, aggregating[:K], forgetful:N[:P][:k=K] "
                          "or forgetful:p=P[:k=K]")

    def to_text(self) -> str:
        """The text :meth:`parse` reads back to this policy."""
        if self.forget_after is None and not self.forget_prob:
            return "deterministic" if self.k == 1 else f"aggregating:{self.k}"
        head = f"p={self.forget_prob!r}" if self.forget_after is None else (
            f"{self.forget_after}" + (f":{self.forget_prob!r}" if self.forget_prob else ""))
        return f"forgetful:{head}" + (f":k={self.k}" if self.k != 1 else "")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CachePolicy":
        unknown = set(d) - {"k", "forget_after", "forget_prob"}
        if unknown:
            raise ConfigError(f"unknown cache policy field(s) {sorted(unknown)}; valid: k, forget_after, forget_prob")
        return cls(**d)

    @classmethod
    def resolve(cls, value: "CachePolicy | Mapping[str, Any] | str | None", evaluator: Any = None) -> "CachePolicy":
        """A policy from a policy, its JSON or text form, or ``None``/``"auto"`` (aggregating:3 for a
        noisy evaluator, else deterministic)."""
        if isinstance(value, CachePolicy):
            return value
        if isinstance(value, Mapping):
            return cls.from_json(value)
        if value in (None, "auto"):
            return cls(k=3) if getattr(evaluator, "noisy", False) else cls()
        return cls.parse(str(value))

    def describe(self) -> str:
        if self.forget_after is not None or self.forget_prob:
            return f"forgetful(after={self.forget_after}, p={self.forget_prob}, k={self.k})"
        return "deterministic" if self.k == 1 else f"aggregating(k={self.k})"

    def decide(self, entry: Any, rng: np.random.Generator) -> CacheOutcome:
        """The outcome of a lookup that found ``entry`` (None: never evaluated).  Pure but for ``rng``
        (drawn only by a probabilistic forgetful policy, only for an OK entry it would otherwise hit)."""
        if entry is None:
            return MISS
        if entry.status == OK and (
            entry.n < self.k
            or (self.forget_after is not None and entry.hits >= self.forget_after)
            or (self.forget_prob > 0.0 and rng.random() < self.forget_prob)
        ):
            return PARTIAL
        return HIT


def seconds_saved(entry_mean_cost_s: float, probe_cost_s: float) -> float:
    """Evaluator seconds one full hit saved: the mean cost of the real evaluations stored under its
    key, less the probe cost the hit still paid (never negative).  The one definition: the seam
    logs it per hit record (``saved_s``), the session statistics and ``automl show`` sum those."""
    return max(entry_mean_cost_s - probe_cost_s, 0.0)


@dataclasses.dataclass
class SessionStats:
    """What the seam counted in this session (resets with each process; the log holds the rest)."""

    misses: int = 0
    partial_hits: int = 0
    hits: int = 0  # full hits, coalesced twins included
    structural_hits: int = 0  # lookups answered from the structural table, no probe run
    evaluations: int = 0  # real evaluations folded in
    evaluations_saved: int = 0
    seconds_saved: float = 0.0  # sum of saved_s over hits (see seconds_saved)
    probes: int = 0  # functional probes run (candidates and strategy requests)
    probe_s: float = 0.0  # seconds spent in them
    strategy_digests: int = 0  # digests a strategy asked for (e.g. FCM)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        lookups = self.misses + self.partial_hits + self.hits
        d["hit_rate"] = self.hits / lookups if lookups else 0.0
        return d


CacheStats = SessionStats  # the name used before the seam owned the statistics
