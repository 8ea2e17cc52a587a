"""A program's tunable constants, for per-program tuning (``automl.integrations.optuna_export.
tune_constants`` calls these through ``ProgramSpace.constants`` / ``with_constants``).

The tunable constants are the distinct float constants of live statements except the
structural ones (0, ±1, ±2, 0.5: they shape a program rather than tune it).  The learning rate is
scaled by inserting ``lr = lr * s`` as the first statement, which is exactly running the program
with ``lr * s``.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from automl.errors import ConfigError

from .ir import Program

#: Constants that shape a program rather than tune it (never offered for tuning).
STRUCTURAL_CONSTANTS = frozenset({0.0, 1.0, -1.0, 2.0, -2.0, 0.5})


def constants(p: Program) -> list[float]:
    """The tunable constants of ``p``, each distinct value once, in program order."""
    out: list[float] = []
    for ins, is_live in zip(p.instrs, p.info.live):
        for a in ins.args:
            if is_live and type(a) is float and a not in STRUCTURAL_CONSTANTS and a not in out:
                out.append(a)
    return out


def with_constants(p: Program, values: Sequence[float], lr_scale: float = 1.0) -> Program:
    """``p`` with ``constants(p)[i]`` replaced by ``values[i]`` everywhere and, unless
    ``lr_scale`` is 1, every read of ``lr`` multiplied by ``lr_scale``."""
    old = constants(p)
    if len(values) != len(old):
        raise ConfigError(f"expected {len(old)} constants, got {len(values)}")
    swap = {o: float(v) for o, v in zip(old, values)}
    instrs = [dataclasses.replace(ins, args=tuple(swap.get(a, a) if type(a) is float else a for a in ins.args))
              for ins in p.instrs]
    if lr_scale == 1.0:
        return dataclasses.replace(p, instrs=tuple(instrs))
    names = tuple(p.names)
    n_in = len(names) - len(instrs)  # registers 0..n_in-1 are the inputs
    lr = names.index("lr")

    def reg(a: int) -> int:
        return a + 1 if a >= n_in else (n_in if a == lr else a)

    if not instrs:
        raise ConfigError("cannot scale the learning rate of a program without statements")
    first = dataclasses.replace(instrs[0], dest=n_in, op="mul", args=(lr, float(lr_scale)))
    shifted = [dataclasses.replace(ins, dest=ins.dest + 1, args=tuple(reg(a) if type(a) is int else a for a in ins.args))
               for ins in instrs]
    return dataclasses.replace(p, instrs=(first, *shifted), outputs=tuple(reg(o) for o in p.outputs),
                               names=names[:n_in] + ("lr",) + names[n_in:])
