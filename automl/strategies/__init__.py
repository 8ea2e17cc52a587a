"""Search strategies (ask/tell).  Registered names: evolution, random, and the Optuna samplers
tpe, optuna-random, nsga2, cmaes, qmc, gp (Optuna imported only when one is used)."""
from __future__ import annotations

from functools import partial

from ..registry import register_strategy
from .base import Proposal, Strategy
from .evolution import RandomSearch, RegularizedEvolution
from .moo import LINAS, NSGA2
from .optuna_sampler import OptunaStrategy

register_strategy("evolution", RegularizedEvolution, "regularized (aging) evolution with tournament selection")
register_strategy("random", RandomSearch, "independent random samples")
register_strategy("nsga2-native", NSGA2, "native vectorised NSGA-II on categorical parameters (multi-objective)")
register_strategy("linas", LINAS, "LINAS: ridge predictors refit every loop + inner NSGA-II on predictions")
for _name, _sampler, _desc in [("tpe", "tpe", "Optuna TPE sampler"), ("optuna-random", "random", "Optuna random sampler"),
                               ("nsga2", "nsga2", "Optuna NSGA-II (multi-objective)"), ("cmaes", "cmaes", "Optuna CMA-ES"),
                               ("qmc", "qmc", "Optuna quasi-Monte Carlo"), ("gp", "gp", "Optuna Gaussian-process sampler")]:
    register_strategy(_name, partial(OptunaStrategy, _sampler), _desc)

__all__ = ["Proposal", "Strategy", "RegularizedEvolution", "RandomSearch", "OptunaStrategy", "NSGA2", "LINAS"]
