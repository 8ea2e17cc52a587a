"""The search-space contract.  Genomes are data; a space knows how to make, change, print,
parse and probe them (and, optionally, cross over).  Every registered space runs the contract
suite in automl/testing/contracts.py.

A genome must be immutable (or never mutated after creation) and its class should carry an
``automl_space = "<registered name>"`` attribute so ``automl.functional_hash(genome)`` can find
its space without being told.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False


ParamSpec = Categorical | Float | Int


class SearchSpace:
    """Base class of search spaces.  Subclasses set ``name`` and implement the abstract methods."""

    name: str = ""
    version: str = "1"
    #: What the functional probe is, in words precise enough to be a hash namespace.
    probe_spec: str = ""
    #: dtype and device class of the probe computation (part of the hash namespace).
    probe_dtype: str = "float64"
    probe_device: str = "cpu"
    #: Mantissa bits kept when quantizing probe outputs (see automl.hashing.quantize).
    quantize_bits: int = 24

    # --- making and changing genomes -------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        """A random genome drawn only from ``rng`` (same rng state, same genome)."""
        raise NotImplementedError

    def mutate(self, genome: Any, rng: np.random.Generator) -> Any:
        """Return a new genome near ``genome``, drawn only from ``rng``; never modify ``genome``."""
        raise NotImplementedError

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        """Optional: a new genome combining parents ``a`` and ``b`` (neither modified), drawing only
        from ``rng``.  Spaces without one raise NotImplementedError (the default); strategies check
        :func:`has_crossover` first."""
        raise NotImplementedError(f"space {self.name!r} has no crossover")

    def validate(self, genome: Any) -> None:
        """Raise ``InvalidCandidate`` for a genome that cannot run (checked before any evaluation)."""

    def warm_start(self) -> list[Any]:
        """Genomes a search should start from (e.g. AdamW for optimizer programs)."""
        return []

    # --- text form ----------------------------------------------------------------------------
    def to_text(self, genome: Any) -> str:
        """The canonical text form (what is logged; ``from_text(to_text(g))`` prints the same)."""
        raise NotImplementedError

    def from_text(self, text: str) -> Any:
        """Parse the text form; raise ``ParseError`` naming the problem (never eval/exec)."""
        raise NotImplementedError

    # --- hashing ------------------------------------------------------------------------------
    def structural_key(self, genome: Any) -> bytes | str:
        """Canonical form of the genome: equal for candidates that are the same up to naming,
        ordering and dead parts.  Hashed (and namespaced) by automl.hashing."""
        raise NotImplementedError

    def probe(self, genome: Any, seed: int) -> Sequence[np.ndarray] | np.ndarray:
        """Run the candidate on the fixed probe drawn from ``seed``; return its outputs."""
        raise NotImplementedError

    def simplify(self, genome: Any) -> Any:
        """An equivalent, simpler genome (must hash equal functionally); default: unchanged."""
        return genome

    # --- optional: parameters for Optuna samplers ---------------------------------------------
    def param_space(self) -> Mapping[str, ParamSpec] | None:
        """The space as named parameters, or None when it has none (then Optuna can't drive it)."""
        return None

    def from_params(self, params: Mapping[str, Any]) -> Any:
        raise NotImplementedError(f"space {self.name!r} has no parameter form")

    def to_params(self, genome: Any) -> Mapping[str, Any]:
        raise NotImplementedError(f"space {self.name!r} has no parameter form")

    # --- optional: statistics logged with each candidate --------------------------------------
    def stats(self, genome: Any) -> Mapping[str, float]:
        """Cheap per-candidate statistics for the log (e.g. fraction of dead statements)."""
        return {}

    def options(self) -> dict[str, Any]:
        """JSON-able constructor options, so a worker process can rebuild this space."""
        return {}


def has_crossover(space: Any) -> bool:
    """True when ``space`` overrides :meth:`SearchSpace.crossover` (or, for a space not derived from
    SearchSpace, has a callable ``crossover``)."""
    fn = getattr(type(space), "crossover", None)
    return callable(fn) and fn is not SearchSpace.crossover
