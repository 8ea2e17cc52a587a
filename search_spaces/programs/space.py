"""ProgramSpace: the "optimizer-programs" search space (Lion-style symbolic optimizer discovery)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from automl.errors import ConfigError, InvalidCandidate
from automl.space import SearchSpace

from . import constants, interp, mutation
from .classic import CLASSIC_PROGRAMS
from .ir import Program, structural_key, to_text
from .ops import OPS
from .parser import MAX_STATEMENTS, parse
from .simplify import simplify

_DEFAULTS = {"max_statements": 30, "sample_min": 2, "sample_max": 8, "ops": None}


class ProgramSpace(SearchSpace):
    """Optimizer update programs ``def train(w, g, m, v, lr[, t]) -> (update, m, v)``.

    Options: ``max_statements`` (cap for insert mutations), ``sample_min``/``sample_max``
    (statements of sampled programs), ``ops`` (op names search may use; default all).
    """

    name = "optimizer-programs"
    version = "2"
    probe_spec = interp.PROBE_SPEC
    #: The function table (name -> OpSpec), for interpreters outside this package.
    OPS = OPS

    def __init__(self, max_statements: int = 30, sample_min: int = 2, sample_max: int = 8,
                 ops: Sequence[str] | None = None):
        if not 1 <= int(max_statements) <= MAX_STATEMENTS:
            raise ConfigError(f"max_statements must be in 1..{MAX_STATEMENTS}, got {max_statements}")
        if not 1 <= int(sample_min) <= int(sample_max):
            raise ConfigError(f"need 1 <= sample_min <= sample_max, got {sample_min}, {sample_max}")
        if ops is not None:
            unknown = [o for o in ops if o not in OPS]
            if unknown or not ops:
                raise ConfigError(f"unknown ops {unknown}; known: {', '.join(OPS)}")
        self._options = {"max_statements": int(max_statements), "sample_min": int(sample_min),
                         "sample_max": int(sample_max), "ops": list(ops) if ops is not None else None}
        self.config = mutation.Config(tuple(ops) if ops is not None else tuple(OPS), int(max_statements),
                                      int(sample_min), int(sample_max))

    # --- making and changing genomes -----------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Program:
        return mutation.sample(rng, self.config)

    def mutate(self, genome: Program, rng: np.random.Generator) -> Program:
        return mutation.mutate(self._check(genome), rng, self.config)

    def validate(self, genome: Any) -> None:
        err = self._check(genome).info.error
        if err is not None:
            raise InvalidCandidate(err)

    def warm_start(self) -> list[Program]:
        return [parse(CLASSIC_PROGRAMS["adamw"])]

    @staticmethod
    def programs() -> dict[str, Program]:
        """The classic optimizers (see ``classic.CLASSIC_PROGRAMS``), parsed."""
        return {name: parse(text) for name, text in CLASSIC_PROGRAMS.items()}

    # --- text ------------------------------------------------------------------------------------
    def to_text(self, genome: Program) -> str:
        return to_text(self._check(genome))

    def from_text(self, text: str) -> Program:
        return parse(text)

    def simplify(self, genome: Program) -> Program:
        """Dead code and dead state slots removed, constants folded, exact identities applied."""
        return simplify(self._check(genome))

    def constants(self, genome: Program) -> list[float]:
        """Tunable constants (see ``search_spaces.programs.constants``)."""
        return constants.constants(self._check(genome))

    def with_constants(self, genome: Program, values: Sequence[float], lr_scale: float = 1.0) -> Program:
        """The program with its tunable constants replaced and its lr input scaled."""
        return constants.with_constants(self._check(genome), values, lr_scale)

    # --- hashing ---------------------------------------------------------------------------------
    def structural_key(self, genome: Program) -> str:
        return structural_key(self._check(genome))

    def probe(self, genome: Program, seed: int, domain: Mapping[str, Any] | None = None) -> list[np.ndarray]:
        """Updates on the probe built from the evaluator's ``domain`` (``interp.DEFAULT_DOMAIN``
        when None); see ``interp.PROBE_SPEC``."""
        return interp.probe(self._check(genome), seed, domain)

    # --- statistics / options --------------------------------------------------------------------
    def stats(self, genome: Program) -> Mapping[str, float]:
        p = self._check(genome)
        n = len(p.instrs)
        dead = sum(1 for live in p.info.live if not live)
        return {"statements": n, "dead_fraction": dead / n if n else 0.0,
                "live_slots": len(p.info.live_slots)}

    def options(self) -> dict[str, Any]:
        """Non-default options only (so the default space's digests carry no option suffix)."""
        return {k: v for k, v in self._options.items() if v != _DEFAULTS[k]}

    @staticmethod
    def _check(genome: Any) -> Program:
        if not isinstance(genome, Program):
            raise InvalidCandidate(f"expected a Program, got {type(genome).__name__}")
        return genome
