"""Optuna integration: export a run to an Optuna study, and tune a program's constants with Optuna.

``import optuna`` happens inside the functions.

* :func:`export_to_optuna` writes a run log into an Optuna study in a journal file
  (``JournalStorage(JournalFileBackend(path))``) that optuna-dashboard can open.  CLI:
  ``automl export-optuna RUN_DIR --storage FILE [--study NAME]``.
* :func:`tune_constants` tunes the numeric constants of one discovered program (betas, eps,
  weight decay...) and a learning-rate multiplier with an Optuna sampler — the per-program tuning
  of the symbolic-optimizer papers — running its trials on any runner (serial, process, Ray)
  through the evaluation seam, so repeated settings are answered by the cache.

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
import os
import warnings
from typing import Any, Mapping, Sequence

from .. import registry
from ..errors import AutoMLError, ConfigError, RunDirError
from ..types import FAILED, INVALID, OK

# --- export a run to an Optuna study ----------------------------------------------------------------


def _objectives(evaluator_name: str, options: Mapping[str, Any]) -> dict[str, str]:
    """The evaluator's objectives {name: "min"|"max"} in order, from an instance built with the run's
    options (objectives may depend on them; construction is cheap by contract), else the class."""
    try:
        return dict(registry.create("evaluator", evaluator_name, **options).objectives)
    except (AutoMLError, ImportError, OSError):
        objectives = getattr(registry.get_class("evaluator", evaluator_name), "objectives", None)
        if not isinstance(objectives, Mapping):
            raise
        return dict(objectives)


def _param_distributions(records: Sequence[Mapping[str, Any]], space: Any) -> dict[str, Any]:
    """One Optuna distribution per parameter name, shared by every trial (Optuna requires it)."""
    import optuna.distributions as od

    from ..strategies.optuna_sampler import to_optuna_distribution

    declared = {}
    try:
        declared = dict(space.param_space() or {}) if space is not None else {}
    except NotImplementedError:
        declared = {}
    values: dict[str, list[Any]] = {}
    for r in records:
        for k, v in (r.get("params") or {}).items():
            values.setdefault(k, []).append(v)
    out: dict[str, Any] = {}
    for name, vs in values.items():
        dist = to_optuna_distribution(declared.get(name))
        if dist is not None:
            out[name] = dist
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vs):
            out[name] = od.IntDistribution(min(vs), max(vs))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vs):
            lo, hi = float(min(vs)), float(max(vs))
            out[name] = od.FloatDistribution(lo, hi if hi > lo else lo + 1.0)
        else:
            choices = sorted({v for v in vs if v is None or isinstance(v, (bool, int, float, str))},
                             key=lambda v: (str(type(v)), str(v)))
            out[name] = od.CategoricalDistribution(choices)
    return out


def export_to_optuna(run_dir: str, storage_path: str, study_name: str | None = None) -> dict[str, Any]:
    """Write every record of ``run_dir`` as a trial of a new Optuna study in the journal file
    ``storage_path``; return ``{"study_name", "storage", "trials", "complete", "failed"}``.

    Trials follow the record order.  Values are the objectives in the evaluator's order (one study
    direction per objective); failed and invalid records are ``FAIL`` trials.  Params are the
    record's ``params`` when the strategy proposed parameters, else ``candidate_id`` (an int).
    User attributes: candidate (text), id, hash, structural_hash, cache, charged, cost_s, status,
    error, parents, generation.  An existing study of that name is an error.
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from ..api import load_run

    meta, records = load_run(run_dir)
    if not records:
        raise RunDirError(f"{run_dir} has no candidates to export")
    cfg = meta["config"]
    objectives = _objectives(cfg["evaluator"]["name"], cfg["evaluator"].get("options", {}))
    names = list(objectives)
    directions = ["minimize" if objectives[n] == "min" else "maximize" for n in names]
    study_name = study_name or os.path.basename(os.path.abspath(run_dir))
    space = None
    if any(r.get("params") for r in records):
        try:
            space = registry.create("space", cfg["space"]["name"], **cfg["space"].get("options", {}))
        except (ConfigError, ImportError):
            space = None  # distributions are then inferred from the logged values
    dists = _param_distributions(records, space)
    max_id = max(int(r["id"]) for r in records)
    id_dist = optuna.distributions.IntDistribution(0, max(max_id, 1))

    storage = JournalStorage(JournalFileBackend(os.fspath(storage_path)))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(f"study {study_name!r} already exists in {storage_path}; pass another --study") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.set_user_attr("automl_run_dir", os.path.abspath(run_dir))
    study.set_user_attr("automl_config", cfg)
    with warnings.catch_warnings():  # set_metric_names is marked experimental in Optuna
        warnings.simplefilter("ignore")
        study.set_metric_names(names)

    trials, n_ok, n_fail = [], 0, 0
    for r in sorted(records, key=lambda r: r["id"]):
        obj = r.get("objectives") or {}
        ok = r.get("status") == OK and all(n in obj and math.isfinite(obj[n]) for n in names)
        if r.get("params"):
            params = {k: v for k, v in r["params"].items() if k in dists}
            distributions = {k: dists[k] for k in params}
        else:
            params, distributions = {"candidate_id": int(r["id"])}, {"candidate_id": id_dist}
        attrs = {"candidate": r["candidate"], "id": r["id"], "hash": r.get("hash"),
                 "structural_hash": r.get("structural_hash"), "cache": r.get("cache"), "charged": r.get("charged"),
                 "cost_s": r.get("cost_s"), "status": r.get("status"), "parents": r.get("parents", []),
                 "generation": r.get("generation", 0)}
        if r.get("error"):
            attrs["error"] = r["error"]
        if r.get("status") not in (OK, FAILED, INVALID):
            attrs["status"] = str(r.get("status"))
        trials.append(optuna.trial.create_trial(
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            values=[float(obj[n]) for n in names] if ok else None,
            params=params, distributions=distributions, user_attrs=attrs))
        n_ok, n_fail = n_ok + ok, n_fail + (not ok)
    study.add_trials(trials)
    return {"study_name": study_name, "storage": os.fspath(storage_path), "trials": len(trials),
            "complete": n_ok, "failed": n_fail}


# --- the constants interface on the optimizer-program IR -------------------------------------------

def _constants_api(space: Any, genome: Any) -> tuple[Any, Any]:
    if hasattr(space, "constants") and hasattr(space, "with_constants"):
        return space.constants, space.with_constants
    raise ConfigError(f"space {getattr(space, 'name', space)!r} does not expose constants: it needs "
                      "constants(genome) and with_constants(genome, values, lr_scale) (see "
                      "automl.integrations.optuna_export)")


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
    import optuna

    from ..cache import Cache
    from ..dispatch import Dispatcher
    from ..evaluation import Seam
    from ..policy import CachePolicy
    from ..runners.base import PluginSpec

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
        run.start(space_spec, ev_spec, timeout, local_space=sp, local_evaluator=ev)
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


__all__ = ["export_to_optuna", "tune_constants"]
