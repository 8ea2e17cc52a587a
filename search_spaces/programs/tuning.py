"""Tune the numeric constants of one discovered program (betas, eps, weight decay...) and a
learning-rate multiplier with an Optuna sampler — the per-program tuning of the symbolic-optimizer
papers — running its trials on any runner (serial, process, Ray) through the one dispatch loop
(:class:`automl.dispatch.Dispatcher`), so repeated settings are answered by the cache.
``import optuna`` happens inside the function.

The constants interface a space offers for :func:`tune_constants` (two methods):

``space.constants(genome) -> list[float]``
    The tunable constants of ``genome``, each distinct value once, in a fixed order.
``space.with_constants(genome, values, lr_scale=1.0) -> genome``
    The same program with ``constants(genome)[i]`` replaced by ``values[i]`` everywhere, and every
    read of the learning-rate input multiplied by ``lr_scale`` (1.0: unchanged).

The optimizer-program space implements them (``search_spaces/programs/constants.py``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from automl import registry
from automl.errors import ConfigError
from automl.types import OK


# --- the constants interface on the optimizer-program IR -------------------------------------------

def _constants_api(space: Any, genome: Any) -> tuple[Any, Any]:
    if hasattr(space, "constants") and hasattr(space, "with_constants"):
        return space.constants, space.with_constants
    raise ConfigError(f"space {getattr(space, 'name', space)!r} does not expose constants: it needs "
                      "constants(genome) and with_constants(genome, values, lr_scale) (see "
                      "search_spaces.programs.tuning)")


# --- tune a program's constants ---------------------------------------------------------------------

def _search_dims(values: Sequence[float], spread: float) -> list[tuple[str, float, float, str]]:
    """(kind, low, high, name) per constant: beta-like c in [0.5, 1) is searched as 1 - c on a log
    scale (so 0.9 and 0.999 move by orders of magnitude of 1 - c), anything else as |c| on a log scale
    between |c| / spread and |c| * spread, keeping its sign."""
    dims = []
    for i, c in enumerate(values):
        if not math.isfinite(c) or c == 0.0:
            raise ConfigError(f"constant {i} is {c!r}: only finite non-zero constants can be tuned")
        if 0.5 <= c < 1.0:
            x = 1.0 - c
            dims.append(("one_minus", x / spread, min(x * spread, 0.5), f"c{i}"))
        else:
            dims.append(("log_abs", abs(c) / spread, abs(c) * spread, f"c{i}"))
    return dims


def tune_constants(program_text: str, space: str = "optimizer-programs", evaluator: str = "optimizer-proxy", *,
                   n_trials: int = 30, runner: str = "serial", runner_options: Mapping[str, Any] | None = None,
                   space_options: Mapping[str, Any] | None = None,
                   evaluator_options: Mapping[str, Any] | None = None, sampler: str = "tpe", seed: int = 0,
                   spread: float = 10.0, lr_spread: float = 10.0, tune_lr: bool = True,
                   timeout: float | None = None, cache: str | None = None,
                   study_name: str | None = None, storage: Any = None) -> dict[str, Any]:
    """Tune the constants (and a learning-rate multiplier) of one program with Optuna.

    The first trial is the program as given; then ``n_trials - 1`` settings from ``sampler`` (tpe
    or random, seeded by ``seed``).  Each constant is searched log-uniformly within a factor
    ``spread`` (beta-like constants in [0.5, 1) as 1 - c), the learning-rate multiplier
    log-uniformly in [1/lr_spread, lr_spread].  Trials run on ``runner`` (serial, process, ray)
    as candidate texts through the evaluation seam: settings computing the same function are
    answered from the cache (``cache``: a file to share, default in memory).

    Returns ``{"best_text", "best_value", "best_constants", "best_lr_scale", "original_text",
    "original_value", "objective", "direction", "trials", "charged", "study"}``; ``trials`` lists
    ``{"number", "text", "value", "status", "cache"}``.
    """
    from automl._optional import require

    optuna = require("optuna", "tune_constants")

    from automl.cache import Cache
    from automl.dispatch import Dispatcher
    from automl.evaluation import Seam
    from automl.policy import CachePolicy
    from automl.runners.base import PluginSpec

    if n_trials < 1:
        raise ConfigError(f"n_trials must be >= 1, got {n_trials}")
    if spread <= 1.0 or lr_spread <= 1.0:
        raise ConfigError("spread and lr_spread must be > 1")
    space_spec = PluginSpec(space, dict(space_options or {}))
    ev_spec = PluginSpec(evaluator, dict(evaluator_options or {}))
    sp, ev = space_spec.build("space"), ev_spec.build("evaluator")
    genome = sp.from_text(program_text)
    get_constants, set_constants = _constants_api(sp, genome)
    original = [float(c) for c in get_constants(genome)]
    dims = _search_dims(original, spread)
    objective, direction = ev.primary, ev.objectives[ev.primary]
    dists: dict[str, Any] = {name: optuna.distributions.FloatDistribution(lo, hi, log=True)
                             for _, lo, hi, name in dims}
    if tune_lr:
        dists["lr_scale"] = optuna.distributions.FloatDistribution(1.0 / lr_spread, lr_spread, log=True)
    if sampler == "tpe":
        smp = optuna.samplers.TPESampler(seed=seed)
    elif sampler == "random":
        smp = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ConfigError(f"sampler must be tpe or random, got {sampler!r}")
    start = {name: (1.0 - c if kind == "one_minus" else abs(c)) for (kind, _, _, name), c in zip(dims, original)}
    if tune_lr:
        start["lr_scale"] = 1.0

    def decode(params: Mapping[str, Any]) -> tuple[list[float], float]:
        vals = [1.0 - params[name] if kind == "one_minus" else math.copysign(params[name], c)
                for (kind, _, _, name), c in zip(dims, original)]
        return vals, float(params.get("lr_scale", 1.0))

    trials_out: list[dict[str, Any]] = []
    trials: dict[int, Any] = {}  # candidate id -> optuna trial

    def tell(cand: Any, res: Any) -> None:
        trial = trials.pop(cand.id)
        value = res.objectives.get(objective) if res.status == OK else None
        if value is not None and math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            value = None
        trials_out.append({"number": trial.number, "text": cand.text, "value": value,
                           "status": res.status.value, "cache": res.cache.value, "error": res.error,
                           "constants": trial.user_attrs.get("constants"),
                           "lr_scale": trial.user_attrs.get("lr_scale")})

    def ask() -> Any:
        trial = study.ask(dists)
        vals, lr_scale = decode(trial.params)
        trial.set_user_attr("constants", vals)
        trial.set_user_attr("lr_scale", lr_scale)
        trials[d.next_id] = trial  # the id the dispatcher gives this proposal
        return set_constants(genome, vals, lr_scale) if tune_lr else set_constants(genome, vals)

    def launch(ticket: Any) -> None:
        c = ticket.candidate
        run.submit(c.id, c.text, c.genome)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    cache_obj = run = None
    try:
        study = optuna.create_study(direction="minimize" if direction == "min" else "maximize", sampler=smp,
                                    study_name=study_name, storage=storage)
        study.enqueue_trial(start)
        cache_obj = Cache(cache)
        seam = Seam(sp, ev, cache_obj, CachePolicy.resolve("auto", ev), seed=seed)
        d = Dispatcher(seam, tell=tell, space_stats=False)
        run = registry.create("runner", runner, **dict(runner_options or {}))
        run.start(space_spec.with_instance(sp), ev_spec.with_instance(ev), timeout)
        while d.next_id < n_trials or d.in_flight:
            d.fill(ask, launch, run.capacity - d.in_flight,
                   lambda: "done" if d.next_id >= n_trials else None)
            if d.in_flight:
                d.pump(run, timeout=None)
        charged = d.charged
    finally:
        if run is not None:
            run.close()
        if cache_obj is not None:
            cache_obj.close()
        ev.close()
        optuna.logging.set_verbosity(verbosity)
    trials_out.sort(key=lambda t: t["number"])
    done = [t for t in trials_out if t["value"] is not None]
    orig = trials_out[0]
    sign = 1.0 if direction == "min" else -1.0
    best = min(done, key=lambda t: sign * t["value"]) if done else None
    return {"best_text": best["text"] if best else None, "best_value": best["value"] if best else None,
            "best_constants": best["constants"] if best else None,
            "best_lr_scale": best["lr_scale"] if best else None, "original_text": sp.to_text(genome),
            "original_constants": original, "original_value": orig["value"], "objective": objective,
            "direction": direction, "trials": trials_out, "charged": charged, "study": study}


__all__ = ["tune_constants"]
