"""Any Optuna sampler as a strategy, driven through Optuna's ask/tell (``import optuna`` inside).

The engine's cache sits in front: a proposal whose functional digest is cached is told its
cached value and is not charged.  The study lives in memory; its state for a resumed run is
the list of told trials (parameters, values, state), which is plain data.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

from .._optional import require_all
from ..errors import ConfigError
from ..space import Categorical, Float, Int
from ..types import OK, Candidate, EvalResult, objectives_of
from .base import Proposal, Strategy

#: Sampler name -> class name in ``optuna.samplers``.
_SAMPLER_CLASSES = {"tpe": "TPESampler", "random": "RandomSampler", "nsga2": "NSGAIISampler", "cmaes": "CmaEsSampler",
                    "qmc": "QMCSampler", "gp": "GPSampler"}
SAMPLERS = tuple(_SAMPLER_CLASSES)
_NEEDS = {"cmaes": ("cmaes",), "qmc": ("scipy",), "gp": ("scipy", "torch")}  # beyond optuna itself


def _distributions(space: Any) -> dict[str, Any]:
    params = space.param_space()
    if not params:
        raise ConfigError(f"space {space.name!r} exposes no parameters, so Optuna samplers cannot drive it; "
                          "use --strategy evolution or random")
    out = {}
    for name, p in params.items():
        out[name] = to_optuna_distribution(p)
        if out[name] is None:
            raise ConfigError(f"parameter {name!r} of space {space.name!r} has unknown type {type(p).__name__}")
    return out


def to_optuna_distribution(p: Any) -> Any:
    """The Optuna distribution of one of our parameter specs (None for anything else)."""
    import optuna.distributions as od

    if isinstance(p, Categorical):
        return od.CategoricalDistribution(list(p.choices))
    if isinstance(p, Float):
        return od.FloatDistribution(p.low, p.high, log=p.log)
    if isinstance(p, Int):
        return od.IntDistribution(p.low, p.high, log=p.log)
    return None


class OptunaStrategy(Strategy):
    """Optuna sampler ``sampler`` (tpe, random, nsga2, cmaes, qmc, gp) through ask/tell.

    Options:
        sampler: which Optuna sampler (tpe, random, nsga2, cmaes, qmc, gp).
        multi_objective: optimise every objective of the evaluator, not only the primary one
            (default: true for nsga2 only).
        sampler_options: settings passed to the sampler's constructor, as one mapping (JSON on the
            command line: ``--strategy-opt 'sampler_options={"n_startup_trials": 5}'``).  Each
            setting may also be given as an option of its own (``--strategy-opt n_startup_trials=5``);
            ``automl strategies --options tpe`` lists them with their defaults and docs.  ``seed``
            is not one: the search's seed seeds the sampler.
    """

    name = "optuna"

    def __init__(self, sampler: str = "tpe", multi_objective: bool | None = None,
                 sampler_options: Mapping[str, Any] | None = None):
        if sampler not in SAMPLERS:
            raise ConfigError(f"unknown Optuna sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        # fail now, naming the pip extra, not at the first ask
        needs = ("optuna", *_NEEDS.get(sampler, ()))
        require_all(needs, f"Optuna's {sampler} sampler", extras=["optuna", "torch"] if "torch" in needs else ["optuna"])
        self.sampler_name = sampler
        self.multi_objective = (sampler == "nsga2") if multi_objective is None else bool(multi_objective)
        self.sampler_options = dict(sampler_options or {})
        self._check_sampler_options()
        self._trials: dict[int, Any] = {}  # optuna trial number -> trial, until told
        self._told: list[list[Any]] = []

    def options(self) -> dict[str, Any]:
        out = {"sampler": self.sampler_name, "multi_objective": self.multi_objective,
               "sampler_options": self.sampler_options}
        if type(self) is not OptunaStrategy:  # a per-sampler class: the sampler is its name
            del out["sampler"]
        return out

    def _sampler_class(self) -> Any:
        import optuna.samplers as s

        return getattr(s, _SAMPLER_CLASSES[self.sampler_name], None)

    def _check_sampler_options(self) -> None:
        """A typo in ``sampler_options`` is a ConfigError naming the valid options, raised when the
        strategy is built (before a run directory exists), not a TypeError at the first ask."""
        if not self.sampler_options:
            return
        if "seed" in self.sampler_options:
            raise ConfigError("sampler_options may not set seed: the search's seed seeds the sampler")
        cls = self._sampler_class()
        if cls is None:
            return  # reported with a clear message by _make_sampler
        from ..registry import check_options, forwarded_options

        if type(self) is OptunaStrategy:
            check_options("Optuna sampler", self.sampler_name, cls, {**self.sampler_options, "seed": 0})
            return
        # a registered per-sampler strategy: the settings `automl strategies --options NAME` lists
        valid = [o.name for o in forwarded_options(type(self))]
        unknown = sorted(set(self.sampler_options) - set(valid))
        if unknown:
            name = "optuna-random" if self.sampler_name == "random" else self.sampler_name
            raise ConfigError(f"Optuna sampler {self.sampler_name!r} has no setting {', '.join(map(repr, unknown))}; "
                              f"settings: {', '.join(valid)} (`automl strategies --options {name}` documents them)")

    def _make_sampler(self, seed: int) -> Any:
        import optuna
        import optuna.samplers as s

        if self.sampler_name == "gp" and not hasattr(s, "GPSampler"):
            raise ConfigError(f"this Optuna ({optuna.__version__}) has no GPSampler; upgrade optuna")
        cls = self._sampler_class()
        with warnings.catch_warnings():  # QMC/GP are marked experimental; the user chose them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(seed=seed, **self.sampler_options)

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, seam: Any = None) -> None:
        super().bind(space, objectives, seed, seam)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._dists = _distributions(space)
        self._objective_names = list(self.objectives) if self.multi_objective else [self.primary]
        objs = {o.name: o for o in objectives_of(self.objectives)}
        directions: list[Any] = [objs[k].optuna_direction for k in self._objective_names]
        self._seed = seed
        self.study = optuna.create_study(directions=directions, sampler=self._make_sampler(seed))

    def ask(self) -> Proposal:
        trial = self.study.ask(self._dists)
        params = dict(trial.params)
        self._trials[trial.number] = trial
        return Proposal(self.space.from_params(params), params=params, meta={"trial": trial.number})

    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        import optuna

        number = (candidate.meta or {}).get("trial")
        trial = self._trials.pop(number, None) if number is not None else None
        values = None
        if result.status == OK and all(k in result.objectives for k in self._objective_names):
            values = [float(result.objectives[k]) for k in self._objective_names]
        params = dict(candidate.params) if candidate.params is not None else dict(self.space.to_params(candidate.genome))
        self._told.append([params, values])
        if trial is None:  # a replayed or foreign candidate: add it as a finished trial
            self._add_trial(params, values)
            return
        if values is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, values if len(values) > 1 else values[0])

    def _add_trial(self, params: Mapping[str, Any], values: list[float] | None) -> None:
        import optuna

        state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
        self.study.add_trial(optuna.trial.create_trial(params=dict(params), distributions=self._dists,
                                                       values=values, state=state))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "told": self._told}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        # A fresh sampler seed so the restored study does not replay its first suggestions.
        self.study.sampler = self._make_sampler(self._seed + len(state["told"]) + 1)
        for params, values in state["told"]:
            self._told.append([params, values])
            self._add_trial(params, values)


# One class per registered name (see automl.registry.BUILTINS).  Its options are multi_objective,
# sampler_options and, forwarded through ``**settings``, the sampler's own JSON-settable constructor
# parameters (automl.registry reads them from the sampler's signature and docstring: listed by
# `automl strategies --options NAME`, checked by the same code).
def _per_sampler(class_name: str, sampler: str, doc: str) -> type[OptunaStrategy]:
    def __init__(self: OptunaStrategy, multi_objective: bool | None = None,
                 sampler_options: Mapping[str, Any] | None = None, **settings: Any) -> None:
        both = sorted(set(settings) & set(sampler_options or {}))
        if both:
            raise ConfigError(f"{', '.join(both)} given both as an option and in sampler_options; give each once")
        OptunaStrategy.__init__(self, sampler, multi_objective, {**(sampler_options or {}), **settings})

    def forwarded_options(cls: type[OptunaStrategy]) -> tuple[Any, tuple[str, ...]]:
        """The Optuna sampler class whose settings this strategy accepts as options (not ``seed``)."""
        import optuna.samplers

        cls_name = _SAMPLER_CLASSES[sampler]
        target = getattr(optuna.samplers, cls_name, None)
        if target is None:
            raise ConfigError(f"this Optuna ({optuna.__version__}) has no {cls_name}; upgrade optuna")
        return target, ("seed",)

    return type(class_name, (OptunaStrategy,), {"__init__": __init__, "__doc__": doc, "__module__": __name__,
                                                "forwarded_options": classmethod(forwarded_options)})


TPE = _per_sampler("TPE", "tpe", "Optuna TPE sampler.")
OptunaRandom = _per_sampler("OptunaRandom", "random", "Optuna random sampler.")
NSGA2 = _per_sampler("NSGA2", "nsga2", "Optuna NSGA-II (multi-objective).")
CMAES = _per_sampler("CMAES", "cmaes", "Optuna CMA-ES.")
QMC = _per_sampler("QMC", "qmc", "Optuna quasi-Monte Carlo.")
GP = _per_sampler("GP", "gp", "Optuna Gaussian-process sampler.")
