"""The Python API: :func:`search` (one call: build, run, return a :class:`Run`), :func:`create_run`
(ask/tell for callers who drive their own loop), :func:`load_run` (a run folder as a read-only
:class:`Run`) and :func:`read_run` (its ``run.json`` and records as plain data).  The CLI is a thin
layer on :func:`search`.

    import automl

    def objective(genome):                     # any callable: genome -> float | dict
        return float(len(str(genome)))

    run = automl.search("expressions", objective, budget=50, seed=0, out="runs/mine")
    print(run.best["candidate"], run.best["value"], run["cache"]["hit_rate"])

Spaces, evaluators and strategies are given by registered name or as objects (an evaluator
instance or class, or a plain callable: see :class:`automl.evaluator.FunctionEvaluator` for how
its objectives are named).  Objects reach worker processes and Ray actors pickled by value
(:class:`automl.runners.base.ObjectPlugin`); a run folder never stores or loads pickles, so
resuming a run made with objects needs the same objects again.  docs/python-api.md walks through it.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import shutil
import time
from typing import Any, Callable, Iterator, KeysView, Mapping, Sequence, Union

from . import registry
from .cache import Cache, NullCache
from .engine import ALL_FAILED_AFTER, SNAPSHOT_EVERY_S, Budget, Engine, as_callback
from .errors import CallbackError, ConfigError, RunDirError, SearchFailed
from .evaluator import Evaluator, FunctionEvaluator, callable_label
from .lock import RunLock
from .log import CACHE_FILE, RUN_FILE, RunLog, read_records
from .objectives import best as best_row
from .objectives import feasible
from .objectives import pareto_front as front_rows
from .objectives import ranked_value
from .policy import CachePolicy
from .runners.base import ObjectPlugin, PluginSpec
from .runners.local import check_timeout
from .space import SearchSpace
from .strategies.base import Strategy
from .types import Candidate, Objective

#: What a callback is: ``fn(run, record)``, or an object with ``on_result(run, record)``.
Callback = Union[Callable[["Run", dict[str, Any]], Any], Any]

#: Options a resumed run may change; every other option must match the run's (or be left out).
SAFE_ON_RESUME = ("budget", "seconds", "max_candidates", "stall", "workers", "runner", "runner_options",
                  "progress", "callbacks", "evaluator_seconds")


# --- plugins given by name or as objects ----------------------------------------------------------

@dataclasses.dataclass
class _Plugin:
    """A space, evaluator or strategy as built for this run: the instance, its run.json entry,
    and whether it is a Python object (shipped by value; needed again on resume)."""

    obj: Any
    entry: dict[str, Any]
    is_object: bool


def _object_label(obj: Any, kind: str) -> str:
    name = getattr(obj, "name", "")
    return name if isinstance(name, str) and name else f"{kind}:{callable_label(type(obj))}"


def _options_of(obj: Any) -> dict[str, Any]:
    get = getattr(obj, "options", None)
    try:
        return dict(get()) if callable(get) else {}
    except AttributeError:  # a subclass whose __init__ skipped super().__init__()
        return {}


def _build_space(given: Any, options: Mapping[str, Any], trusted: bool) -> _Plugin:
    if isinstance(given, SearchSpace):
        if options:
            raise ConfigError("space_options apply to a space given by name or class, not to a space instance")
        label = _object_label(given, "object")
        given.name = label
        return _Plugin(given, {"name": label, "options": _options_of(given), "kind": "object"}, True)
    if isinstance(given, type) and issubclass(given, SearchSpace):
        label = getattr(given, "name", "") or f"object:{callable_label(given)}"
        registry.check_options("space", label, given, dict(options))
        sp = given(**options)
        sp.name = label
        return _Plugin(sp, {"name": label, "options": _options_of(sp), "kind": "object"}, True)
    if not isinstance(given, str):
        raise ConfigError(f"space must be a registered name, a SearchSpace or a SearchSpace subclass; got "
                          f"{type(given).__name__}")
    sp = PluginSpec(given, dict(options), trusted).build("space")
    return _Plugin(sp, {"name": given, "options": dict(options)}, registry.registered_as_object("space", given))


def _build_evaluator(given: Any, options: Mapping[str, Any], trusted: bool, objectives: Any,
                     direction: Any) -> _Plugin:
    if isinstance(given, str):
        if objectives is not None or direction is not None:
            raise ConfigError(f"objectives/direction apply to a callable evaluator; evaluator {given!r} declares "
                              "its own objectives")
        ev = PluginSpec(given, dict(options), trusted).build("evaluator")
        return _Plugin(ev, {"name": given, "options": dict(options)},
                       registry.registered_as_object("evaluator", given))
    if objectives is not None or direction is not None:
        if isinstance(given, Evaluator) or (isinstance(given, type) and issubclass(given, Evaluator)):
            raise ConfigError("objectives/direction apply to a plain callable; an Evaluator declares its own "
                              "objectives (its `objectives` attribute)")
    if isinstance(given, Evaluator):
        if options:
            raise ConfigError("evaluator_options apply to an evaluator given by name or class, not to an instance")
        ev, kind = given, "object"
    elif isinstance(given, type) and issubclass(given, Evaluator):
        label = getattr(given, "name", "") or f"object:{callable_label(given)}"
        registry.check_options("evaluator", label, given, dict(options))
        ev, kind = given(**options), "object"
    elif isinstance(given, type):
        raise ConfigError(f"evaluator class {given.__name__} is not an automl.Evaluator subclass; pass an "
                          "Evaluator subclass, an instance of one, or a function genome -> float | dict")
    elif callable(given):
        ev, kind = FunctionEvaluator(given, objectives, direction, **options), "callable"
    else:
        raise ConfigError(f"evaluator must be a registered name, an Evaluator (class or instance) or a callable; "
                          f"got {type(given).__name__}")
    ev.name = _object_label(ev, "object")
    return _Plugin(ev, {"name": ev.name, "options": _options_of(ev), "kind": kind}, True)


def _build_strategy(given: Any, options: Mapping[str, Any], trusted: bool) -> _Plugin:
    if isinstance(given, Strategy):
        if options:
            raise ConfigError("strategy_options apply to a strategy given by name, not to an instance")
        label = _object_label(given, "object")
        return _Plugin(given, {"name": label, "options": {}, "kind": "object"}, True)
    if not isinstance(given, str):
        raise ConfigError(f"strategy must be a registered name or a Strategy instance; got {type(given).__name__}")
    return _Plugin(registry.create("strategy", given, trusted, **options), {"name": given, "options": dict(options)},
                   False)


class _TellEvaluator(FunctionEvaluator):
    """The evaluator of an ask/tell run: objectives only; results come from :meth:`Run.tell`."""

    def __init__(self, objectives: Any = None, direction: Any = None):
        super().__init__(_told, objectives, direction, name="told")
        self.version = "1"

    @property
    def source(self) -> str:
        return "the value given to run.tell()"

    def evaluate(self, genome: Any, space: Any) -> Any:
        raise ConfigError("an ask/tell run has no evaluator: its results come from run.tell()")


def _told(genome: Any) -> None:  # the callable a _TellEvaluator stands for (never called)
    raise ConfigError("an ask/tell run has no evaluator: its results come from run.tell()")


def _strategy_default(name: str, key: str, trusted: bool) -> Any:
    try:
        param = inspect.signature(registry.get_class("strategy", name, trusted)).parameters.get(key)
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is param.empty else param.default


def _resume_changes(cfg: Mapping[str, Any], given: Mapping[str, Any], trusted: bool) -> list[str]:
    """``"what: old -> new"`` for every option the caller gave that differs from the run's."""
    changes = []

    def differ(what: str, old: Any, new: Any) -> None:
        if new is not None and old != new:
            changes.append(f"{what}: {old!r} -> {new!r}")

    differ("seed", cfg.get("seed"), given["seed"])
    differ("probe_seed", cfg.get("probe_seed"), given["probe_seed"])
    differ("dedupe", cfg.get("dedupe", "functional"), given["dedupe"])
    differ("timeout", cfg.get("timeout"), None if given["timeout"] is None else check_timeout(given["timeout"]))
    differ("cache", cfg["cache"].get("path"), None if given["cache"] is None else os.path.abspath(given["cache"]))
    differ("use_cache", cfg["cache"].get("enabled", True), given["use_cache"])
    for family in ("space", "evaluator", "strategy"):
        stored = cfg[family].get("options") or {}
        for k, v in (given[f"{family}_options"] or {}).items():
            old = stored[k] if k in stored else (_strategy_default(cfg[family]["name"], k, trusted)
                                                 if family == "strategy" else None)
            if old != v:
                changes.append(f"{family} option {k}: {old!r} -> {v!r}")
    return changes


def _check_jsonable(family: str, options: Mapping[str, Any]) -> None:
    """Options are recorded in run.json and are part of every cache key: JSON only."""
    for k, v in options.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{family} option {k!r} is a {type(v).__name__}, not JSON (options are recorded in run.json "
                              "and are part of every cache key); pass data to a function through a closure or "
                              "functools.partial instead") from None


def _check_compatible(space_name: str, evaluator: Any) -> None:
    spaces = getattr(evaluator, "spaces", None)
    if spaces is not None and space_name not in spaces:
        raise ConfigError(f"evaluator {evaluator.name!r} works on spaces {', '.join(spaces)}, not {space_name!r}")


def _clear_run_dir(out: str) -> None:
    """Remove what an old run left in ``out`` (the caller holds its lock): only a run folder (a
    run.json this program wrote), never the working directory or one above it."""
    here, target = os.path.realpath(os.getcwd()), os.path.realpath(out)
    if target in (os.path.realpath(os.path.expanduser("~")), os.path.sep) or \
            here == target or here.startswith(target + os.sep):
        raise RunDirError(f"overwrite refuses to delete {out}: it is the working directory, one above it, or the "
                          "home or root directory")
    RunLog.open_existing(out)  # RunDirError unless it is a run folder
    if os.path.isdir(os.path.join(out, ".git")):
        raise RunDirError(f"overwrite refuses to delete {out}: it holds a git repository")
    for name in os.listdir(out):
        if name == ".lock":
            continue
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


# --- a run being made -------------------------------------------------------------------------------

class _Session:
    """What a live run holds: the engine, its log, cache and the run folder's lock."""

    def __init__(self, engine: Engine, log: RunLog, cache: Any, evaluator: Any, lock: RunLock, policy: CachePolicy,
                 resumed: bool):
        self.engine, self.log, self.cache, self.evaluator, self.lock = engine, log, cache, evaluator, lock
        self.policy, self.resumed = policy, resumed
        self.asked: dict[int, tuple[Any, float]] = {}  # ask/tell: task id -> (ticket, when asked)
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            try:
                if self.asked:
                    self.engine.snapshot()
                self.cache.flush()
            finally:
                self.log.close()
                self.cache.close()
                self.evaluator.close()
        finally:
            self.lock.release()


def _open(space: Any, evaluator: Any, strategy: Any, *, budget: int | None, seed: int | None, out: Any,
          resume: bool, overwrite: bool, seconds: float | None, max_candidates: int | None, stall: int | None,
          objectives: Any, direction: Any, callbacks: Sequence[Callback], workers: int, runner: str | None,
          runner_options: Mapping[str, Any] | None, cache: Any, use_cache: bool | None, cache_policy: Any,
          space_options: Mapping[str, Any] | None, evaluator_options: Mapping[str, Any] | None,
          strategy_options: Mapping[str, Any] | None, timeout: float | None, progress: bool,
          probe_seed: int | None, dedupe: str | None, allow_import: bool, ask_tell: bool,
          evaluator_seconds: float | None = None) -> tuple["Run", _Session]:
    """Validate everything, take the run folder, build the engine; nothing runs yet."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned worker re-running the caller's script while it starts (Python's spawn start method)
        raise ConfigError("automl.search was called while a worker process was starting: it re-ran the script that "
                          "started it.  In a script that uses workers, call automl.search under "
                          "`if __name__ == \"__main__\":`")
    out = None if out is None else os.fspath(out)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if resume and overwrite:
        raise ConfigError("resume and overwrite contradict each other: resume continues the run in out, "
                          "overwrite deletes it")
    caller_runner = runner
    trusted = allow_import or not resume  # names from the caller, or the explicit opt-in
    if resume:
        if out is None:
            raise ConfigError("resume needs the run directory (out=...)")
        log, meta = RunLog.open_existing(out)
        cfg = meta["config"]
        told_run = cfg["evaluator"].get("kind") == "told"
        if told_run != ask_tell:
            raise ConfigError(f"{out} is an ask/tell run: reopen it with automl.create_run(out=..., resume=True)"
                              if told_run else f"{out} is a search run with evaluator {cfg['evaluator']['name']!r}: "
                              "continue it with automl.search(out=..., resume=True); create_run reopens ask/tell "
                              "runs only")
        for key, given in (("space", space), ("evaluator", evaluator), ("strategy", strategy)):
            if isinstance(given, str) and given != cfg[key]["name"]:
                raise ConfigError(f"{out} is a run with {key} {cfg[key]['name']!r}; resuming continues it as it "
                                  f"was made, so {key} {given!r} cannot apply (start a new run instead)")
        changes = _resume_changes(cfg, {"seed": seed, "probe_seed": probe_seed, "dedupe": dedupe,
                                        "timeout": timeout, "cache": cache, "use_cache": use_cache,
                                        "space_options": space_options, "evaluator_options": evaluator_options,
                                        "strategy_options": strategy_options}, trusted)
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
        plugins = {}
        for family, given in (("space", space), ("evaluator", evaluator), ("strategy", strategy)):
            entry = cfg[family]
            kind = entry.get("kind")
            if kind == "told":
                told = {o["name"]: o["direction"] for o in cfg["objectives"]}
                plugins[family] = _Plugin(_TellEvaluator(told), entry, True)
                continue
            if kind is not None and (given is None or isinstance(given, str)):
                raise ConfigError(f"{out} was made with the {family} {entry['name']!r}, a Python object; a run "
                                  f"folder never stores code, so resuming needs it again: pass {family}=<the same "
                                  f"object> with resume=True")
            if kind is None and given is not None and not isinstance(given, str):
                raise ConfigError(f"{out} was made with the registered {family} {entry['name']!r}, not an object; "
                                  "resume it by name")
            if kind is None:
                given = entry["name"]
            # options: the stored ones for what is built here (a name, a class, a callable's keyword
            # arguments); an instance brings its own
            opts = entry["options"] if isinstance(given, (str, type)) or kind == "callable" else {}
            if family == "space":
                plugins[family] = _build_space(given, opts, trusted)
            elif family == "evaluator":
                olds = cfg.get("objectives")
                if kind == "callable" and olds:  # the objectives it was made with (objectives= compared below)
                    o = {d["name"]: d["direction"] for d in olds}
                    plugins[family] = _build_evaluator(given, opts, trusted, o, None)
                else:
                    plugins[family] = _build_evaluator(given, opts, trusted, None, None)
            else:
                plugins[family] = _build_strategy(given, opts if isinstance(given, str) else {}, trusted)
            if kind is not None and plugins[family].entry["name"] != entry["name"]:
                changes.append(f"{family}: {entry['name']!r} -> {plugins[family].entry['name']!r}")
            elif kind == "object":  # an object brings its own options: they must be the run's
                was, now = entry["options"], plugins[family].entry["options"]
                changes += [f"{family} option {k}: {was.get(k)!r} -> {now.get(k)!r}"
                            for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
        if objectives is not None or direction is not None:
            new = [o.to_json() for o in FunctionEvaluator(_told, objectives, direction).objective_list()]
            if new != cfg.get("objectives"):
                changes.append(f"objectives: {cfg.get('objectives')!r} -> {new!r}")
        if cache_policy is not None:
            old_policy = CachePolicy.resolve(cfg["cache"]["policy"], plugins["evaluator"].obj)
            new_policy = CachePolicy.resolve(cache_policy, plugins["evaluator"].obj)
            if new_policy.to_json() != old_policy.to_json():
                changes.append(f"cache_policy: {old_policy.describe()} -> {new_policy.describe()}")
        if changes:
            raise ConfigError(f"cannot resume {out} with changed options: {'; '.join(changes)}.  Resuming continues a "
                              f"run as it was made; only {', '.join(SAFE_ON_RESUME)} may change (start a new run, "
                              "or pass overwrite=True / --overwrite to replace this one)")
    else:
        if ask_tell:
            if evaluator is not None:
                raise ConfigError("create_run is for callers who evaluate themselves (run.ask/run.tell): give "
                                  "objectives=/direction=, not an evaluator (automl.search runs an evaluator)")
            ev_plugin = _Plugin(_TellEvaluator(objectives, direction), {}, True)
            ev_plugin.entry = {"name": "told", "options": {}, "kind": "told"}
        else:
            ev_plugin = _build_evaluator(evaluator if evaluator is not None else registry.default("evaluator"),
                                         evaluator_options or {}, True, objectives, direction)
        plugins = {"space": _build_space(space if space is not None else registry.default("space"),
                                         space_options or {}, True),
                   "evaluator": ev_plugin,
                   "strategy": _build_strategy(strategy if strategy is not None else registry.default("strategy"),
                                               strategy_options or {}, True)}
        seed = 0 if seed is None else int(seed)
        dedupe = dedupe or "functional"
        out = out or os.path.join("runs", f"{plugins['space'].entry['name']}-{plugins['strategy'].entry['name']}-s{seed}"
                                  .replace(":", "_"))
        cfg = {"space": plugins["space"].entry, "evaluator": plugins["evaluator"].entry,
               "strategy": plugins["strategy"].entry, "seed": seed, "timeout": check_timeout(timeout),
               "probe_seed": probe_seed, "dedupe": dedupe,
               "cache": {"path": os.path.abspath(cache) if cache else None,
                         "enabled": True if use_cache is None else bool(use_cache),
                         "policy": cache_policy.to_json() if isinstance(cache_policy, CachePolicy)
                         else (cache_policy if cache_policy is not None else "auto")}}
        prev_budget = None
    sp, ev, strat = plugins["space"].obj, plugins["evaluator"].obj, plugins["strategy"].obj
    runner_name = runner or ("process" if workers > 1 else "serial")
    runner_opts = dict(runner_options or {})
    if runner_name == "process":
        runner_opts.setdefault("workers", workers)
    cfg["runner"] = {"name": runner_name, "options": runner_opts}
    cfg["budget"] = {"evaluations": budget, "seconds": seconds, "max_candidates": max_candidates, "stall": stall}
    if evaluator_seconds is not None:  # (absent otherwise: run.json as before)
        cfg["budget"]["evaluator_seconds"] = evaluator_seconds
    budget_kw: dict[str, Any] = {} if stall is None else {"stall": stall}
    bud = Budget(budget, seconds, max_candidates, open_ended=ask_tell, evaluator_seconds=evaluator_seconds,
                 **budget_kw)

    _check_compatible(sp.name, ev)
    if not resume:
        # Record the options as built, defaults included: a later change of a default must not
        # silently change what resuming (or re-evaluating) this run means.  The objectives and their
        # directions are stored too: readers rank the run without importing the evaluator.
        cfg["space"]["options"], cfg["evaluator"]["options"] = _options_of(sp), _options_of(ev)
        cfg["objectives"] = [o.to_json() for o in ev.objective_list()]
        cfg["evaluator"]["version"] = str(ev.version)
    else:
        check_timeout(cfg.get("timeout"))
        logged = cfg["evaluator"].get("version")
        if logged is not None and str(logged) != str(ev.version):
            what = "edited since" if cfg["evaluator"].get("kind") == "callable" else f"version {ev.version}"
            raise ConfigError(f"{out} was made with evaluator {ev.name!r} version {logged}; the one given now is "
                              f"{what}: its results would not be comparable in one log.  Start a new run (the cache "
                              "keeps the old version's results apart)")
    run_obj = None if ask_tell else registry.create("runner", runner_name, trusted or caller_runner is not None,
                                                    **runner_opts)
    # Objects reach worker processes and Ray actors by value; the in-process serial runner uses them as they are.
    in_process = runner_name == "serial" and cfg.get("timeout") is None
    specs: dict[str, PluginSpec | None] = {}
    for family, p in (("space", plugins["space"]), ("evaluator", plugins["evaluator"])):
        if p.is_object:
            specs[family] = None if in_process or ask_tell else ObjectPlugin.ship(p.obj, repr(p.entry["name"]), family)
        else:
            specs[family] = PluginSpec(p.entry["name"], p.entry["options"], trusted)

    policy = CachePolicy.resolve(cfg["cache"]["policy"], ev)
    if not resume:
        cfg["cache"]["policy"] = policy.to_json()  # as resolved: "auto" means what it meant today
    if cfg.get("dedupe", "functional") not in ("functional", "structural"):
        raise ConfigError(f"dedupe must be 'functional' or 'structural', got {cfg['dedupe']!r}")
    for cb in callbacks:
        as_callback(cb)  # ConfigError now, before the run folder is made
    for family in ("space", "evaluator", "strategy"):
        _check_jsonable(family, cfg[family]["options"])
    # Everything is validated before the run directory is created: a bad option leaves nothing behind.
    settings = {"timeout": cfg.get("timeout")}  # what a cached failure is judged against
    lock = RunLock(out)
    lock.acquire(create_dir=not resume)  # one writer per run folder (before run.json is written); readers never lock
    cache_obj = None
    log_obj: RunLog | None = None
    try:
        if resume:
            log_obj = log
            records = read_records(out, repair=True)
            if cfg["budget"] != prev_budget:  # every budget change is on record
                log_obj.update_run(config={**orig_cfg, "budget": cfg["budget"]}, budget_changes=[
                    *meta.get("budget_changes", []), {"time": time.time(), "from": prev_budget, "to": cfg["budget"]}])
        else:
            if overwrite and os.path.exists(os.path.join(out, RUN_FILE)):
                _clear_run_dir(out)
            log_obj = RunLog.create(out, cfg)
            records = []
        if cfg["cache"]["enabled"]:
            cache_obj = Cache(cfg["cache"]["path"] or os.path.join(out, CACHE_FILE), settings=settings)
        else:
            cache_obj = NullCache(settings)
        result = Run(out)
        engine = Engine(sp, ev, strat, run_obj, cache_obj, log_obj, bud, seed=cfg["seed"],  # type: ignore[arg-type]
                        space_spec=specs["space"], evaluator_spec=specs["evaluator"], timeout=cfg.get("timeout"),
                        progress=progress, probe_seed=cfg.get("probe_seed"), dedupe=cfg.get("dedupe", "functional"),
                        policy=policy, callbacks=callbacks, owner=result,
                        all_failed_after=None if ask_tell else ALL_FAILED_AFTER)
        if resume:
            engine.restore(records)
    except BaseException:
        try:
            if log_obj is not None:
                log_obj.close()
            if cache_obj is not None:
                cache_obj.close()
            ev.close()
        finally:
            lock.release()
        raise
    session = _Session(engine, log_obj, cache_obj, ev, lock, policy, resume)
    result._session = session
    return result, session


def search(space: str | SearchSpace | type[SearchSpace] | None = None,
           evaluator: str | Evaluator | type[Evaluator] | Callable[..., Any] | None = None,
           strategy: str | Strategy | None = None, budget: int | None = None, seed: int | None = None,
           out: str | os.PathLike[str] | None = None, *, resume: bool = False, overwrite: bool = False,
           seconds: float | None = None, max_candidates: int | None = None, stall: int | None = None,
           objectives: Mapping[str, str] | Sequence[str] | str | None = None, direction: str | None = None,
           callbacks: Sequence[Callback] = (), workers: int = 1, runner: str | None = None,
           runner_options: Mapping[str, Any] | None = None, cache: str | os.PathLike[str] | None = None,
           use_cache: bool | None = None, cache_policy: CachePolicy | str | None = None,
           space_options: Mapping[str, Any] | None = None, evaluator_options: Mapping[str, Any] | None = None,
           strategy_options: Mapping[str, Any] | None = None, timeout: float | None = None, progress: bool = False,
           probe_seed: int | None = None, dedupe: str | None = None, allow_import: bool = False,
           evaluator_seconds: float | None = None) -> "Run":
    """Run (or, with ``resume=True``, continue) a search; return its :class:`Run`.

    What to search:
      ``space``: a registered name (``automl spaces``), a :class:`~automl.SearchSpace` or subclass.
      ``evaluator``: a registered name (``automl evaluators``), an :class:`~automl.Evaluator`
      instance or subclass, or a plain callable ``f(genome, **evaluator_options) -> float | dict``
      (see :class:`~automl.evaluator.FunctionEvaluator`: a float is the objective ``"value"``; a dict
      needs ``objectives=``; ``direction`` is ``"min"`` (default) or ``"max"``).
      ``strategy``: a registered name (default ``evolution``) or a Strategy instance.
      ``*_options``: constructor options (JSON-able; they are part of every cache key).

    How long: ``budget`` charged evaluations for the whole run (cache hits are free), ``seconds``
    of wall clock for this call, ``max_candidates`` (hits included), ``stall`` consecutive cache
    hits (default 2,000), ``evaluator_seconds`` (the summed cost of charged evaluations for the
    whole run).  At least one of budget/seconds/max_candidates/evaluator_seconds.  A run whose first 10
    results all failed stops with :class:`~automl.errors.SearchFailed` (records kept).

    Where: ``out`` is the run folder (default ``runs/<space>-<strategy>-s<seed>``); ``overwrite``
    replaces a finished run there (only a run folder, never while another process writes it).
    ``workers`` local processes or ``runner="ray"``: objects and callables are pickled by value
    (cloudpickle) and a ConfigError names what cannot be sent, before the run starts.
    ``cache``: a cache file shared across runs (default ``<out>/cache.sqlite``); ``use_cache=False``
    evaluates everything; ``cache_policy``: ``"deterministic"``, ``"aggregating:K"``,
    ``"forgetful:N"`` or a CachePolicy (default: by the evaluator's noise); ``dedupe="structural"``
    keys the cache by the structural digest only; ``timeout`` seconds per evaluation (enforced by
    killing a worker process); ``seed`` (default 0) seeds the strategy; ``probe_seed`` the hash probe.

    ``callbacks``: each called after every logged result as ``fn(run, record)`` (or
    ``obj.on_result(run, record)``; ``record`` is the run-log dict).  An exception in a callback
    stops the run cleanly (results kept, resumable) and is raised as
    :class:`~automl.errors.CallbackError` from the original.

    Resume (``resume=True``, ``out`` the run folder): options not given are the run's; giving a
    different seed, probe seed, dedupe, timeout, cache, cache policy, objectives or a different
    space/evaluator/strategy option is refused with a ConfigError listing old and new values.
    Only :data:`SAFE_ON_RESUME` may change (budget, seconds, max_candidates, evaluator_seconds, stall, workers,
    runner, progress, callbacks).  A run made with objects needs the same objects again (a run
    folder never stores code).  Resuming a run whose budget is spent does nothing: the Run's
    ``stop_reason`` is ``"finished"`` and ``run["message"]`` says so; pass a larger budget to continue.

    Names given here may be ``"package.module:Class"`` paths (you vouch for them).  On resume the
    names come from run.json and resolve only to registered plugins unless ``allow_import=True``
    (opening a run must not import code named in its files).
    """
    result, session = _open(space, evaluator, strategy, budget=budget, seed=seed, out=out, resume=resume,
                            overwrite=overwrite, seconds=seconds, max_candidates=max_candidates, stall=stall,
                            objectives=objectives, direction=direction, callbacks=callbacks, workers=workers,
                            runner=runner, runner_options=runner_options, cache=cache, use_cache=use_cache,
                            cache_policy=cache_policy, space_options=space_options,
                            evaluator_options=evaluator_options, strategy_options=strategy_options, timeout=timeout,
                            progress=progress, probe_seed=probe_seed, dedupe=dedupe, allow_import=allow_import,
                            ask_tell=False, evaluator_seconds=evaluator_seconds)
    engine = session.engine
    try:
        summary = engine.run()
        summary["cache_policy"] = session.policy.describe()
        if engine.reconciled:
            summary["reconciled"] = engine.reconciled
        if summary["stop_reason"] == "finished":
            summary["message"] = _finished_message(result.dir, engine)
        else:
            session.log.update_run(last_summary={k: v for k, v in summary.items() if k != "run_dir"})
    finally:
        session.close()
    result._summary = summary
    result._session = None
    if engine.callback_error is not None:
        raise engine.callback_error
    if summary["stop_reason"] == "all-failed":
        raise engine.failed_error()
    return result


def _finished_message(run_dir: str, engine: Engine) -> str:
    b = engine.budget
    if b.evaluations is not None and engine.charged >= b.evaluations:
        spent = f"its budget of {b.evaluations} charged evaluations is spent ({engine.charged} charged)"
        more = f"pass a larger budget (--budget N > {b.evaluations})"
    elif b.evaluator_seconds is not None and engine.dispatcher.charged_s >= b.evaluator_seconds:
        spent = (f"its budget of {b.evaluator_seconds:g} evaluator-seconds is spent "
                 f"({engine.dispatcher.charged_s:.1f} charged)")
        more = f"pass a larger evaluator_seconds (--evaluator-seconds S > {b.evaluator_seconds:g})"
    else:
        spent = f"its limit of {b.max_candidates} candidates is reached ({engine.n_records} logged)"
        more = f"pass a larger max_candidates (--max-candidates N > {b.max_candidates})"
    return f"nothing to do: run finished: {run_dir}: {spent}; {more} to continue it"


def create_run(space: str | SearchSpace | type[SearchSpace] | None = None, strategy: str | Strategy | None = None,
               *, objectives: Mapping[str, str] | Sequence[str] | str | None = None, direction: str | None = None,
               seed: int | None = None, out: str | os.PathLike[str] | None = None, resume: bool = False,
               overwrite: bool = False, budget: int | None = None, max_candidates: int | None = None,
               stall: int | None = None, callbacks: Sequence[Callback] = (), cache: str | os.PathLike[str] | None = None,
               use_cache: bool | None = None, cache_policy: CachePolicy | str | None = None,
               space_options: Mapping[str, Any] | None = None, strategy_options: Mapping[str, Any] | None = None,
               probe_seed: int | None = None, dedupe: str | None = None, allow_import: bool = False) -> "Run":
    """A run you drive yourself (like ``optuna.create_study`` + ``study.ask/tell``)::

        with automl.create_run("nb201", objectives={"acc": "max"}, out="runs/mine") as run:
            while (trial := run.ask()) is not None:
                run.tell(trial, {"acc": train(trial.genome)})

    :meth:`Run.ask` returns a :class:`Trial` to evaluate, or None when the budget (optional here),
    ``max_candidates`` or ``stall`` stops the run; candidates equivalent to one already told are
    answered from the cache inside ``ask`` and never handed out.  Everything goes through the one
    dispatch loop (:class:`automl.dispatch.Dispatcher`): the cache, hashes, run log, strategy and
    callbacks see told results exactly like evaluated ones.  The run holds its folder's lock until
    :meth:`Run.close` (or the ``with`` block ends); ``resume=True`` continues it later.
    ``objectives``/``direction`` as for a callable in :func:`search`: ``tell`` takes a float (the
    objective ``"value"``), a dict, an :class:`~automl.Evaluation`, or an exception (a failed trial).
    Call ``ask``/``tell`` from one thread (several trials may be out at once).
    """
    result, _ = _open(space, None, strategy, budget=budget, seed=seed, out=out, resume=resume, overwrite=overwrite,
                      seconds=None, max_candidates=max_candidates, stall=stall, objectives=objectives,
                      direction=direction, callbacks=callbacks, workers=1, runner=None, runner_options=None,
                      cache=cache, use_cache=use_cache, cache_policy=cache_policy, space_options=space_options,
                      evaluator_options=None, strategy_options=strategy_options, timeout=None, progress=False,
                      probe_seed=probe_seed, dedupe=dedupe, allow_import=allow_import, ask_tell=True)
    return result


# --- the run object -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Trial:
    """A candidate handed out by :meth:`Run.ask`: evaluate ``genome`` (or ``text``), then
    :meth:`Run.tell` the result.  ``params`` holds the strategy's parameters when it proposes some."""

    id: int
    genome: Any
    text: str
    params: Mapping[str, Any] | None
    candidate: Candidate


def read_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(run.json contents, records) of a run directory, as plain data (never imports code)."""
    run_dir = os.fspath(run_dir)
    _, meta = RunLog.open_existing(run_dir)
    return meta, read_records(run_dir)


def load_run(run_dir: str | os.PathLike[str]) -> "Run":
    """A run folder as a read-only :class:`Run` (the object :func:`search` returns).  Reads
    run.json and the log; never imports code named in them."""
    run_dir = os.fspath(run_dir)
    RunLog.open_existing(run_dir)  # RunDirError unless it is a run folder
    return Run(run_dir)


class Run:
    """A run folder: what :func:`search` returns and :func:`load_run` opens.

    Results: :attr:`best`, :attr:`pareto_front`, :meth:`candidates` (run-log records as dicts),
    :meth:`to_dataframe` (pandas), :meth:`plot`, :meth:`reproduce`, :attr:`summary`.  Mapping
    access reads the summary (``run["best"]``, ``run["cache"]["hit_rate"]``: the dict
    :func:`search` returned before it returned a Run).  A run from :func:`create_run` also has
    :meth:`ask`, :meth:`tell` and :meth:`close`.  Everything is read from the folder when asked,
    so a Run of a search still running elsewhere shows its progress.
    """

    def __init__(self, run_dir: str):
        self.dir = run_dir
        self._summary: dict[str, Any] | None = None
        self._session: _Session | None = None

    def __repr__(self) -> str:
        state = "live" if self._session is not None and not self._session.closed else "read-only"
        return f"<automl.Run {self.dir!r} ({state})>"

    # --- what the folder holds ---------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """run.json: configuration, library versions, budget changes, the last summary."""
        return RunLog.open_existing(self.dir)[1]

    @property
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.meta["config"]
        return cfg

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The objectives (name, direction) in order; the first is primary."""
        from .report import run_objectives

        return run_objectives(self.meta)

    def candidates(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every logged record in order (cache hits included), or only those of ``status``
        (``"ok"``, ``"failed"``, ``"invalid"``).  Fields: README's "The run directory"."""
        recs = read_records(self.dir)
        return recs if status is None else [r for r in recs if r["status"] == status]

    @property
    def best(self) -> dict[str, Any] | None:
        """The best feasible ``ok`` record on the primary objective, with its ``value``; None when
        nothing succeeded."""
        objs = self.objectives
        if not objs:
            return None
        rec = best_row(self.candidates("ok"), objs[0])
        return None if rec is None else {**rec, "value": ranked_value(rec, objs[0])}

    @property
    def pareto_front(self) -> list[dict[str, Any]]:
        """Feasible ``ok`` records not dominated on all objectives (one per distinct objective
        vector, best first on the primary); with one objective, the best."""
        return front_rows([r for r in self.candidates("ok") if feasible(r)], self.objectives)

    def to_dataframe(self) -> Any:
        """The records as a pandas DataFrame: one row per candidate, a column per objective
        (prefixed ``objective_`` only where a name clashes with a record field), ``params_<name>``
        for strategy parameters, ``constraint_<name>`` for constraint violations."""
        from ._optional import require

        pd = require("pandas", "Run.to_dataframe() (run.candidates() gives the same records as dicts)")
        base = ("id", "generation", "parents", "candidate", "status", "cache", "charged", "cost_s", "n", "t",
                "hash", "structural_hash", "error")
        rows = []
        for r in self.candidates():
            row = {k: r.get(k) for k in base}
            for k, v in (r.get("objectives") or {}).items():
                row[f"objective_{k}" if k in base else k] = v
            for prefix, field in (("params_", "params"), ("constraint_", "constraints")):
                for k, v in (r.get(field) or {}).items():
                    row[prefix + k] = v
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else list(base))

    def plot(self, output: str | None = None) -> str:
        """Draw the run's figure with :func:`automl.report.plot`; the image's path."""
        from .report import plot

        return plot(self.dir, output)

    def reproduce(self, top: int = 1) -> list[dict[str, Any]]:
        """The ``top`` best distinct candidates simplified by their space (see
        :func:`automl.report.reproduce`); each dict has ``id``, ``objectives``, ``hash``,
        ``candidate`` and ``simplified``.  For optimizer programs, ``simplified`` is ready for
        ``ProgramOptimizer(params, text, lr=...)``."""
        from .report import reproduce

        if self.config["space"].get("kind") == "object":
            raise ConfigError(f"{self.dir} was searched over a space object ({self.config['space']['name']}): "
                              "reproduce rebuilds spaces by registered name only")
        return reproduce(self.dir, top)

    @property
    def summary(self) -> dict[str, Any]:
        """What the last search invocation reported (stop reason, candidates, charged evaluations,
        best, this invocation's cache statistics); for a loaded run, the one stored in run.json
        (empty but for ``run_dir`` when the run was killed before it finished)."""
        if self._summary is not None:
            return self._summary
        return {**(self.meta.get("last_summary") or {}), "run_dir": self.dir}

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)

    def keys(self) -> KeysView[str]:
        return self.summary.keys()

    def __contains__(self, key: object) -> bool:
        return key in self.summary

    def __iter__(self) -> Iterator[str]:
        raise TypeError("a Run is not a (meta, records) pair: use automl.api.read_run(dir) for that, or "
                        "run.meta and run.candidates()")

    # --- ask/tell (runs from create_run) -------------------------------------------------------
    def _live(self) -> _Session:
        s = self._session
        if s is None or s.closed:
            raise ConfigError(f"{self.dir}: ask/tell needs a run opened with automl.create_run(...) and not closed "
                              "(resume=True reopens it)")
        return s

    def ask(self) -> Trial | None:
        """The next candidate to evaluate, or None when a stop rule fired (budget, max_candidates,
        stall) or the strategy has nothing left.  Cache hits and candidates equivalent to one
        in flight are answered here and never handed out."""
        s = self._live()
        e = s.engine
        got: list[Any] = []
        reason = None
        while not got and reason is None:  # fill gives up after 1,024 hits in a row; the stall rule ends this
            _, reason = e.dispatcher.fill(e.strategy.ask, got.append, 1, e._stop_reason)
        if not got:
            return None
        ticket = got[0]
        s.asked[ticket.candidate.id] = (ticket, time.perf_counter())
        c = ticket.candidate
        return Trial(c.id, c.genome, c.text, c.params, c)

    def tell(self, trial: Trial | int, value: Any) -> dict[str, Any]:
        """Record the result of an asked trial: a float, a dict of objectives, an
        :class:`~automl.Evaluation`, or an exception (a failed evaluation).  Returns the logged
        record.  A value that does not fit the run's objectives raises ConfigError and records nothing."""
        from .evaluation import _raw_error, _raw_of

        s = self._live()
        tid = trial.id if isinstance(trial, Trial) else int(trial)
        if tid not in s.asked:
            raise ConfigError(f"trial {tid} was not asked from this run, or was already told")
        t_asked = s.asked[tid][1]
        if isinstance(value, BaseException):
            raw = _raw_error(value)
        else:
            raw = _raw_of(s.evaluator.convert(value))
        raw["cost_s"] = time.perf_counter() - t_asked
        del s.asked[tid]
        e = s.engine
        e.dispatcher.complete(tid, raw)
        if time.monotonic() - getattr(e, "_last_snapshot", 0.0) > SNAPSHOT_EVERY_S:
            e.snapshot()
        if e.callback_error is not None:
            err = e.callback_error
            self.close()
            raise err
        return dict(e.last_record or {})

    def close(self) -> None:
        """End an ask/tell run: write the strategy snapshot, close the cache and log, release the
        folder's lock (trials asked but not told are dropped: they were never logged or charged)."""
        s = self._session
        if s is not None and not s.closed:
            s.engine.snapshot()
            s.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



def reproduce(run_dir: str | os.PathLike[str], top: int = 1, allow_import: bool = False) -> list[dict[str, Any]]:
    """The run's ``top`` best distinct candidates, simplified and checked (see
    :func:`automl.report.reproduce`)."""
    from .report import reproduce as _reproduce

    return _reproduce(os.fspath(run_dir), top, allow_import=allow_import)


__all__ = ["search", "create_run", "load_run", "read_run", "reproduce", "Run", "Trial", "SAFE_ON_RESUME",
           "RunDirError", "SearchFailed", "CallbackError"]
