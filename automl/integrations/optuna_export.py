"""Optuna integration: export a run to an Optuna study.

``import optuna`` happens inside the functions.

* :func:`export_to_optuna` writes a run log into an Optuna study in a journal file
  (``JournalStorage(JournalFileBackend(path))``) that optuna-dashboard can open.  CLI:
  ``automl export-optuna RUN_DIR --storage FILE [--study NAME]``.
Tuning one program's constants with Optuna lives with the programs
(``search_spaces.programs.tuning.tune_constants``).
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


def export_to_optuna(run_dir: str, storage_path: str, study_name: str | None = None,
                     allow_import: bool = False) -> dict[str, Any]:
    """Write every record of ``run_dir`` as a trial of a new Optuna study in the journal file
    ``storage_path``; return ``{"study_name", "storage", "trials", "complete", "failed"}``.

    Trials follow the record order.  Values are the objectives in the evaluator's order (one study
    direction per objective); failed and invalid records are ``FAIL`` trials.  Params are the
    record's ``params`` when the strategy proposed parameters, else ``candidate_id`` (an int).
    User attributes: candidate (text), id, hash, structural_hash, cache, charged, cost_s, status,
    error, parents, generation.  An existing study of that name is an error.  Plugin names in the
    run's files resolve only to registered plugins unless ``allow_import``.
    """
    from .._optional import require

    require("optuna", "exporting a run to Optuna")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from ..api import read_run as load_run
    from ..report import run_objectives

    meta, records = load_run(run_dir)
    if not records:
        raise RunDirError(f"{run_dir} has no candidates to export")
    cfg = meta["config"]
    objs = run_objectives(meta, allow_import)
    if not objs:
        raise RunDirError(f"{run_dir}: run.json names no objectives and its evaluator is not available here")
    names = [o.name for o in objs]
    directions: list[Any] = [o.optuna_direction for o in objs]
    study_name = study_name or os.path.basename(os.path.abspath(run_dir))
    space = None
    if any(r.get("params") for r in records):
        try:
            space = registry.create("space", cfg["space"]["name"], allow_import, **cfg["space"].get("options", {}))
        except (AutoMLError, ImportError):
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


__all__ = ["export_to_optuna"]
