"""The Python search API: one call builds a space, evaluator, strategy, runner, cache and run
log by registry name, runs the engine, and returns a summary.  The CLI is a thin layer on this.

    import automl
    summary = automl.search(space="expressions", evaluator="symbolic-regression",
                            strategy="evolution", budget=500, seed=0, out="runs/sr")
    print(summary["best"], summary["cache"]["hit_rate"])
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Mapping

from . import registry
from .cache import Cache, NullCache
from .policy import CachePolicy
from .engine import Budget, Engine
from .errors import ConfigError, RunDirError
from .lock import RunLock
from .log import CACHE_FILE, RunLog, read_records
from .runners.base import PluginSpec
from .runners.local import check_timeout



def _check_compatible(space_name: str, evaluator: Any) -> None:
    spaces = getattr(evaluator, "spaces", None)
    if spaces is not None and space_name not in spaces:
        raise ConfigError(f"evaluator {evaluator.name!r} works on spaces {', '.join(spaces)}, not {space_name!r}")


def search(space: str | None = None, evaluator: str | None = None, strategy: str | None = None,
           budget: int | None = None, seed: int = 0, out: str | None = None, *, resume: bool = False,
           seconds: float | None = None, max_candidates: int | None = None, workers: int = 1,
           runner: str | None = None, runner_options: Mapping[str, Any] | None = None,
           cache: str | None = None, use_cache: bool = True, cache_policy: Any = "auto",
           space_options: Mapping[str, Any] | None = None, evaluator_options: Mapping[str, Any] | None = None,
           strategy_options: Mapping[str, Any] | None = None, timeout: float | None = None,
           progress: bool = False, probe_seed: int | None = None, dedupe: str = "functional",
           stall: int | None = None, allow_import: bool = False,
           evaluator_seconds: float | None = None) -> dict[str, Any]:
    """Run (or, with ``resume=True``, continue) a search; return its summary dict.

    ``out`` is the run directory (default ``runs/<space>-<strategy>-s<seed>``).  ``cache`` is a
    cache file to share across runs (default ``<out>/cache.sqlite``); ``use_cache=False`` turns
    the equivalence cache off (every candidate is evaluated; hashes are still logged);
    ``dedupe="structural"`` keys the cache by the structural digest only (no probe).  ``stall``
    stops the run after that many consecutive candidates answered by the cache (default 2,000).
    ``evaluator_seconds`` bounds the summed cost of charged evaluations (see ``Budget``).
    Unset ``space``/``evaluator``/``strategy`` default to the registered defaults
    (:func:`automl.registry.default`; this project's plugins make them expressions /
    symbolic-regression / evolution).  On resume the configuration comes from the run's ``run.json``; ``budget``,
    ``seconds``, ``max_candidates``, ``stall``, ``workers``, ``runner`` and ``progress`` may be
    changed, and naming a different space, evaluator or strategy is an error.

    Names given here may be ``"package.module:Class"`` paths (you vouch for them).  On resume the
    names come from run.json and resolve only to registered plugins unless ``allow_import=True``
    (opening a run must not import code named in its files).
    """
    caller_runner = runner
    if resume:
        if out is None:
            raise ConfigError("resume needs the run directory (out=...)")
        log, meta = RunLog.open_existing(out)
        cfg = meta["config"]
        for key, given in (("space", space), ("evaluator", evaluator), ("strategy", strategy)):
            if given is not None and given != cfg[key]["name"]:
                raise ConfigError(f"{out} is a run with {key} {cfg[key]['name']!r}; resuming continues it as it "
                                  f"was made, so {key} {given!r} cannot apply (start a new run instead)")
        b = dict(cfg.get("budget") or {})
        prev_budget, orig_cfg = dict(b), copy.deepcopy(cfg)
        stall = stall if stall is not None else b.get("stall")
        budget = budget if budget is not None else b.get("evaluations")
        seconds = seconds if seconds is not None else b.get("seconds")
        max_candidates = max_candidates if max_candidates is not None else b.get("max_candidates")
        if evaluator_seconds is None:
            evaluator_seconds = b.get("evaluator_seconds")
        if runner is None and workers == 1:
            runner, runner_options = cfg["runner"]["name"], cfg["runner"]["options"]
    else:
        space, evaluator, strategy = (space or registry.default("space"), evaluator or registry.default("evaluator"),
                                      strategy or registry.default("strategy"))
        out = out or os.path.join("runs", f"{space}-{strategy}-s{seed}")
        cfg = {"space": {"name": space, "options": dict(space_options or {})},
               "evaluator": {"name": evaluator, "options": dict(evaluator_options or {})},
               "strategy": {"name": strategy, "options": dict(strategy_options or {})},
               "seed": int(seed), "timeout": check_timeout(timeout), "probe_seed": probe_seed, "dedupe": dedupe,
               "cache": {"path": os.path.abspath(cache) if cache else None, "enabled": bool(use_cache),
                         "policy": cache_policy.to_json() if isinstance(cache_policy, CachePolicy)
                         else cache_policy}}
        prev_budget = None
    runner_name = runner or ("process" if workers > 1 else "serial")
    runner_opts = dict(runner_options or {})
    if runner_name == "process":
        runner_opts.setdefault("workers", workers)
    cfg["runner"] = {"name": runner_name, "options": runner_opts}
    cfg["budget"] = {"evaluations": budget, "seconds": seconds, "max_candidates": max_candidates, "stall": stall}
    if evaluator_seconds is not None:  # (absent otherwise: run.json as before)
        cfg["budget"]["evaluator_seconds"] = evaluator_seconds
    bud = Budget(budget, seconds, max_candidates, evaluator_seconds=evaluator_seconds) if stall is None else \
        Budget(budget, seconds, max_candidates, stall, evaluator_seconds=evaluator_seconds)

    trusted = allow_import or not resume  # names from the caller, or the explicit opt-in
    space_spec = PluginSpec(cfg["space"]["name"], cfg["space"]["options"], trusted)
    ev_spec = PluginSpec(cfg["evaluator"]["name"], cfg["evaluator"]["options"], trusted)
    sp = space_spec.build("space")
    ev = ev_spec.build("evaluator")
    _check_compatible(sp.name, ev)
    if not resume:
        # Record the options as built, defaults included: a later change of a default must not
        # silently change what resuming (or re-evaluating) this run means.  The objectives and their
        # directions are stored too: readers rank the run without importing the evaluator.
        cfg["space"]["options"], cfg["evaluator"]["options"] = sp.options(), ev.options()
        cfg["objectives"] = [o.to_json() for o in ev.objective_list()]
        cfg["evaluator"]["version"] = str(ev.version)
    else:
        check_timeout(cfg.get("timeout"))
        logged = cfg["evaluator"].get("version")
        if logged is not None and str(logged) != str(ev.version):
            raise ConfigError(f"{out} was made with evaluator {ev.name!r} version {logged}; the installed one is "
                              f"version {ev.version}: its results would not be comparable in one log.  Start a new "
                              "run (the cache keeps the old version's results apart)")
    strat = registry.create("strategy", cfg["strategy"]["name"], trusted, **cfg["strategy"]["options"])
    run = registry.create("runner", runner_name, trusted or caller_runner is not None, **runner_opts)

    policy = CachePolicy.resolve(cfg["cache"]["policy"], ev)
    if not resume:
        cfg["cache"]["policy"] = policy.to_json()  # as resolved: "auto" means what it meant today
    if cfg.get("dedupe", "functional") not in ("functional", "structural"):
        raise ConfigError(f"dedupe must be 'functional' or 'structural', got {cfg['dedupe']!r}")
    # Everything is validated before the run directory is created: a bad option leaves nothing behind.
    settings = {"timeout": cfg.get("timeout")}  # what a cached failure is judged against
    log: RunLog | None = log if resume else None  # type: ignore[no-redef]
    lock = RunLock(out)
    lock.acquire(create_dir=not resume)  # one writer per run folder (before run.json is written); readers never lock
    cache_obj = None
    try:
        if resume:
            records = read_records(out, repair=True)
            if cfg["budget"] != prev_budget:  # every budget change is on record
                log.update_run(config={**orig_cfg, "budget": cfg["budget"]}, budget_changes=[
                    *meta.get("budget_changes", []), {"time": time.time(), "from": prev_budget, "to": cfg["budget"]}])
        else:
            log = RunLog.create(out, cfg)
            records = []
        if cfg["cache"]["enabled"]:
            cache_obj = Cache(cfg["cache"]["path"] or os.path.join(out, CACHE_FILE), settings=settings)
        else:
            cache_obj = NullCache(settings)
        engine = Engine(sp, ev, strat, run, cache_obj, log, bud, seed=cfg["seed"], space_spec=space_spec,
                        evaluator_spec=ev_spec, timeout=cfg.get("timeout"), progress=progress,
                        probe_seed=cfg.get("probe_seed"), dedupe=cfg.get("dedupe", "functional"), policy=policy)
        if resume:
            engine.restore(records)
        summary = engine.run()
        summary["cache_policy"] = policy.describe()
        if engine.reconciled:
            summary["reconciled"] = engine.reconciled
        log.update_run(last_summary={k: v for k, v in summary.items() if k != "run_dir"})
        return summary
    finally:
        try:
            if log is not None:
                log.close()
            if cache_obj is not None:
                cache_obj.close()
            ev.close()
        finally:
            lock.release()


def load_run(run_dir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(run.json contents, records) of a run directory."""
    _, meta = RunLog.open_existing(run_dir)
    return meta, read_records(run_dir)


__all__ = ["search", "load_run", "RunDirError"]
