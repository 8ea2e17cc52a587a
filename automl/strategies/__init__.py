"""Search strategies (ask/tell).  Registered names (see ``automl.registry.BUILTINS``): evolution,
random, and the Optuna samplers tpe, optuna-random, nsga2, cmaes, qmc, gp (Optuna imported only
when one is used)."""
from __future__ import annotations

from .base import Proposal, Strategy
from .evolution import RandomSearch, RegularizedEvolution
from .optuna_sampler import OptunaStrategy

__all__ = ["Proposal", "Strategy", "RegularizedEvolution", "RandomSearch", "OptunaStrategy"]
