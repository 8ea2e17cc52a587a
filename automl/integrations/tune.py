"""Our strategies inside Ray Tune: :class:`AutoMLSearcher` is a ``ray.tune.search.Searcher``.

This module imports ``ray.tune``; ``import automl`` never imports it.

Tune asks the searcher for a trial config; the searcher asks the strategy for a candidate,
hashes it through the evaluation seam (:class:`automl.evaluation.Seam`) and answers functional
duplicates from the equivalence cache *without launching a trial* (the strategy is told at once
and asked again, a bounded number of times per ``suggest``).  A candidate whose digest is already
running in another trial waits for that trial.  Only new functions become trials, with the config
``{"candidate": text, "candidate_id": id}``.  ``on_trial_complete`` records the result in the
cache and tells the strategy.  ``suggest`` returns ``Searcher.FINISHED`` when the strategy has
nothing left (``ask()`` is None), after ``max_candidates`` candidates (cache hits included), or
after ``stall`` consecutive proposals that the cache answered.

**Metric and mode.** The strategy ranks by the searcher's ``metric`` and ``mode``: any objective the
evaluator declares (default: its primary one), in either direction (``mode`` opposite to the
declared direction searches the other way, e.g. the largest expressions); a multi-objective strategy
keeps the declared directions of the other objectives. They can be given to the constructor or late
through ``set_search_properties`` (what ``TuneConfig(metric=, mode=)`` sends, Tune does so only for
a Tuner with a non-empty ``param_space``) until the first ``suggest``; after that a different metric
or mode raises :class:`~automl.errors.ConfigError` (the strategy's population was ranked by the old
one), and so does one that contradicts a metric or mode given to the constructor. An unknown metric,
a list of metrics, a mode other than min/max, or a ``param_space`` with search domains (the strategy
owns the search space; constants are fine, Tune adds them to each config) raise
:class:`~automl.errors.ConfigError` naming the problem.

**Results.** A trial that errored, reported no value for an objective the trial must report (the
evaluator's ``per_candidate`` objectives are recomputed here), or reported ``automl_error`` is
recorded ``failed`` (an errored trial as a ``transient`` failure, which a later run retries; the
trainable's own failures keep the kind it reports in ``automl_failure``); a NaN or infinite value is
recorded ``invalid``. Neither ever ranks, and the strategy is told, so it keeps proposing.

The state (``save``/``restore``, ``get_state``/``set_state``) is JSON: the constructor arguments
and the current metric and mode, the strategy's ``state_dict``, the records of every candidate,
the trials still running, the cache policy's RNG and (in-memory cache) its hit counts. Restoring it
into any ``AutoMLSearcher`` (a default-constructed one included, as Tune's searchers allow) makes
that searcher the saved one. Pickling and ``copy.deepcopy`` (Tune pickles its search algorithm with
the experiment) carry only that JSON state.

Example (see docs/ray.md)::

    from ray import tune
    from automl.integrations.tune import AutoMLSearcher, trainable

    searcher = AutoMLSearcher("expressions", "symbolic-regression", "evolution", seed=0,
                              strategy_options={"population_size": 20, "tournament_size": 5})
    tuner = tune.Tuner(trainable("expressions", "symbolic-regression"),
                       tune_config=tune.TuneConfig(search_alg=searcher, num_samples=200))
    best = tuner.fit().get_best_result(metric="mse", mode="min")
    print(best.config["candidate"], best.metrics["mse"])
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Mapping

from .._optional import missing_error

try:
    from ray.tune.search import Searcher
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "ray"], "automl.integrations.tune") from exc

from .. import registry
from ..cache import FINAL, TIMEOUT, TRANSIENT, Cache, NullCache
from ..dispatch import Dispatcher
from ..errors import ConfigError
from ..evaluation import Seam, Ticket, run_evaluation
from ..objectives import best
from ..policy import CachePolicy
from ..runners.base import PluginSpec
from ..types import Direction, Objective, Record

STATE_FORMAT = 2
#: Older state formats set_state still reads (format 1 carried no constructor arguments).
READABLE_FORMATS = (1, 2)
#: Proposals one ``suggest`` call may answer from the cache before it returns None (Tune asks again).
MAX_ASKS_PER_SUGGEST = 1000



class AutoMLSearcher(Searcher):
    """A registered strategy driving Tune trials, with the equivalence cache in front.

    ``space``/``evaluator``/``strategy`` are registered names (or ``module:Class`` paths) with their
    ``*_options``. ``metric``/``mode``: what the strategy ranks by, any objective the evaluator
    declares in either direction (default: its primary objective and its declared direction); see
    the module docstring for setting them late. ``cache``: None keeps the cache in memory (restored
    from the saved records); a path shares a persistent cache file with other runs. ``records``
    lists every candidate (hits included) in the run-log record format.
    """

    def __init__(self, space: str | None = None, evaluator: str | None = None, strategy: str | None = None, *,
                 space_options: Mapping[str, Any] | None = None,
                 evaluator_options: Mapping[str, Any] | None = None,
                 strategy_options: Mapping[str, Any] | None = None, metric: str | None = None,
                 mode: str | None = None, cache: str | os.PathLike[str] | None = None, cache_policy: Any = "auto",
                 use_cache: bool = True, seed: int = 0, max_candidates: int | None = None, stall: int = 1000,
                 probe_seed: int | None = None):
        space, evaluator = space or registry.default("space"), evaluator or registry.default("evaluator")
        strategy = strategy or registry.default("strategy")
        self._init_args: dict[str, Any] = {"space": space, "evaluator": evaluator, "strategy": strategy,
                           "space_options": dict(space_options or {}),
                           "evaluator_options": dict(evaluator_options or {}),
                           "strategy_options": dict(strategy_options or {}), "metric": metric, "mode": mode,
                           "cache": None if cache is None else os.fspath(cache),
                           "cache_policy": cache_policy.to_json() if isinstance(cache_policy, CachePolicy)
                           else cache_policy, "use_cache": use_cache, "seed": int(seed),
                           "max_candidates": max_candidates, "stall": int(stall), "probe_seed": probe_seed}
        if stall < 1:
            raise ConfigError(f"stall must be >= 1, got {stall}")
        self.space = PluginSpec(space, self._init_args["space_options"]).build("space")
        self.evaluator = PluginSpec(evaluator, self._init_args["evaluator_options"]).build("evaluator")
        metric, mode = self._resolve(metric, mode)
        super().__init__(metric=metric, mode=mode)
        self.cache = Cache(self._init_args["cache"]) if use_cache else NullCache()
        self.seam = Seam(self.space, self.evaluator, self.cache, CachePolicy.resolve(cache_policy, self.evaluator),
                         probe_seed, seed=int(seed))
        self.max_candidates, self.stall = max_candidates, int(stall)
        self.records: list[dict[str, Any]] = []
        self._bind(metric, mode)
        self.n_stall = 0
        self._trials: dict[str, int] = {}  # trial id -> candidate id running in it
        self._finished = False

    # --- metric and mode ---------------------------------------------------------------------------
    def _resolve(self, metric: Any, mode: Any) -> tuple[str, str]:
        """``(metric, mode)`` checked against the evaluator's objectives; None picks the primary
        objective and the metric's declared direction."""
        declared = dict(self.evaluator.objectives)
        names = ", ".join(declared)
        if isinstance(metric, (list, tuple)) or isinstance(mode, (list, tuple)):
            raise ConfigError(f"AutoMLSearcher optimises one metric (one of {names}), got metric={metric!r} "
                              f"mode={mode!r}; a multi-objective strategy already uses every objective")
        metric = metric or self.evaluator.primary
        if metric not in declared:
            raise ConfigError(f"metric {metric!r} is not an objective of evaluator "
                              f"{self._init_args['evaluator']!r}; its objectives are: {names}")
        mode = mode or declared[metric]
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        return str(metric), str(mode)

    def _bind(self, metric: str, mode: str) -> None:
        """A fresh strategy (and dispatch loop) ranking by ``metric`` in direction ``mode``: the metric
        comes first (strategies rank by the first objective), the others keep their declared directions."""
        objectives = {metric: mode, **{k: d for k, d in self.evaluator.objectives.items() if k != metric}}
        self.strategy = registry.create("strategy", self._init_args["strategy"], **self._init_args["strategy_options"])
        self.strategy.bind(self.space, objectives, self._init_args["seed"], self.seam)
        self.dispatcher = Dispatcher(self.seam, tell=self.strategy.tell, log=self._log)
        self.dispatcher.objective = Objective(metric, Direction(mode))  # its best-so-far ranks the same way
        self._metric, self._mode = metric, mode

    @property
    def started(self) -> bool:
        """True once a candidate was proposed (the strategy has ranked by the current metric)."""
        return self.dispatcher.next_id > 0 or bool(self._trials)

    def _log(self, rec: Record) -> None:
        self.records.append(rec.to_json())

    @property
    def next_id(self) -> int:
        return self.dispatcher.next_id

    # --- Tune's interface ------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Take Tune's ``metric``/``mode`` (``TuneConfig(metric=, mode=)``; None keeps the current one).

        Returns True: the strategy now ranks by them.  Raises :class:`~automl.errors.ConfigError`
        for what the searcher cannot do: an unknown or multi-objective metric, a bad mode, a
        ``config`` with search domains (the strategy owns the search space; constants are fine),
        a metric/mode other than one given to the constructor, or a different metric/mode after
        the first ``suggest``.
        Tune calls this only when the Tuner has a non-empty ``param_space``; without one, give
        ``metric``/``mode`` to the constructor (see docs/ray.md)."""
        _refuse_search_domains(config)
        new_metric = metric or self._metric
        if mode is None and new_metric == self._metric:
            mode = self._mode
        new_metric, new_mode = self._resolve(new_metric, mode)
        if (new_metric, new_mode) == (self._metric, self._mode):
            return True
        given = {k: self._init_args[k] for k in ("metric", "mode") if self._init_args[k] is not None}
        if given and (new_metric, new_mode) != (given.get("metric", new_metric), given.get("mode", new_mode)):
            raise ConfigError(f"the searcher was built with {', '.join(f'{k}={v!r}' for k, v in given.items())} "
                              f"but Tune asks for metric={new_metric!r} mode={new_mode!r} (TuneConfig): "
                              f"give them in one place only")
        if self.started:
            raise ConfigError(f"the searcher has already proposed {self.dispatcher.next_id} candidates ranked by "
                              f"{self._metric!r} ({self._mode}); it cannot switch to {new_metric!r} ({new_mode}). "
                              f"Give metric/mode to AutoMLSearcher(...) or to a fresh searcher")
        self._bind(new_metric, new_mode)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED is a str
        """A trial config for a new function, ``FINISHED``, or None (ask again later)."""
        if self._finished:
            return Searcher.FINISHED
        launched: list[Ticket] = []

        def ask() -> Any:
            self.n_stall += 1  # reset below when the proposal becomes a trial
            return self.strategy.ask()

        def launch(ticket: Ticket) -> None:
            self.n_stall = 0
            launched.append(ticket)

        def stop() -> str | None:
            if self.max_candidates is not None and self.dispatcher.next_id >= self.max_candidates:
                return "max-candidates"
            return "stalled" if self.n_stall >= self.stall else None

        _, reason = self.dispatcher.fill(ask, launch, 1, stop, MAX_ASKS_PER_SUGGEST)
        if launched:
            cand = launched[0].candidate
            self._trials[trial_id] = cand.id
            return {"candidate": cand.text, "candidate_id": cand.id}
        if reason is not None:
            if reason == "exhausted":
                self.n_stall -= 1  # that ask proposed nothing
            return self._finish()
        return None

    def _finish(self) -> str:
        self._finished = True
        return Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        cid = self._trials.pop(trial_id, None)
        if cid is None:  # not one of ours (or already completed)
            return
        self.dispatcher.complete(cid, self._raw(result, error), trial_id=trial_id)
        self.cache.flush()

    def add_evaluated_point(self, parameters: dict[str, Any], value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list[float] | None = None) -> None:
        """Not supported: a point carries one metric value, but the cache and the strategy need every
        objective of the candidate.  Warm-start with ``cache=PATH`` (a cache file earlier runs
        filled) or ``restore`` instead."""
        raise NotImplementedError("AutoMLSearcher takes no single evaluated points (they carry one metric, the "
                                  "cache needs every objective): share a cache file (cache=PATH) or restore a "
                                  "saved searcher state instead")

    def _raw(self, result: Mapping[str, Any] | None, error: bool) -> dict[str, Any]:
        """A Tune result as a runner's raw outcome (see automl.evaluation.run_evaluation)."""
        if error or not result:  # the worker or the trainable died: nothing says the candidate is at fault
            return {"objectives": None, "error": "the Tune trial failed (see its error file)", "cost_s": 0.0,
                    "failure": TRANSIENT}
        cost = float(result.get("automl_cost_s", result.get("time_total_s", 0.0)) or 0.0)
        if result.get("automl_error"):
            kind = result.get("automl_failure")
            return {"objectives": None, "error": str(result["automl_error"]), "cost_s": cost,
                    "failure": kind if kind in (FINAL, TRANSIENT, TIMEOUT) else FINAL}
        own = set(getattr(self.evaluator, "per_candidate", ()) or ())  # recomputed here (Seam.own_objectives)
        needed = [k for k in self.evaluator.objectives if k not in own]
        missing = [k for k in needed if k not in result]
        if missing:
            return {"objectives": None, "error": f"the trial reported no {', '.join(missing)}", "cost_s": cost}
        return {"objectives": {k: result[k] for k in needed}, "error": None, "cost_s": cost}

    @property
    def best(self) -> dict[str, Any] | None:
        """The best OK record on the searcher's metric, or None."""
        return best(self.records, Objective(str(self._metric), Direction(self._mode)))

    # --- state (JSON) --------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        d = self.dispatcher
        pending = d.pending_to_json()
        return {"format": STATE_FORMAT, "init": json.loads(json.dumps(self._init_args)),
                "metric": self._metric, "mode": self._mode, "strategy": self.strategy.state_dict(), "next_id": d.next_id,
                "n_stall": self.n_stall, "finished": self._finished, "records": self.records,
                "live": {tid: pending["live"][str(cid)] for tid, cid in self._trials.items()},
                "waiters": pending["waiters"], "policy_rng": self.seam.rng.bit_generator.state,
                "hits": self._hit_counts()}

    def _hit_counts(self) -> dict[str, int]:
        """Full hits counted per key of an in-memory cache (a forgetful policy's clock); a cache file
        keeps its own."""
        if self._init_args["cache"] is not None or not self._init_args["use_cache"]:
            return {}
        out = {}
        for h in {r["hash"] for r in self.records if r.get("hash")}:
            e = self.cache.get(h)
            if e is not None and e.hits:
                out[h] = e.hits
        return out

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Become the searcher ``state`` describes (see the module docstring)."""
        if state.get("format") not in READABLE_FORMATS:
            raise ConfigError(f"searcher state format {state.get('format')!r}, this version reads "
                              f"{', '.join(map(str, READABLE_FORMATS))}")
        init = state.get("init", self._init_args)  # (format 1 carried none: this searcher's own)
        if self.started or json.loads(json.dumps(init)) != json.loads(json.dumps(self._init_args)):
            self.cache.close()  # start from scratch: nothing of this searcher's own run may linger
            AutoMLSearcher.__init__(self, **init)
        self._load(state)

    def _load(self, state: Mapping[str, Any]) -> None:
        """Load ``state`` into this freshly built searcher."""
        if (state.get("metric", self._metric), state.get("mode", self._mode)) != (self._metric, self._mode):
            self._bind(*self._resolve(state["metric"], state["mode"]))  # set late, by set_search_properties
        self.strategy.load_state_dict(state["strategy"])
        self.records = [dict(r) for r in state["records"]]
        d = self.dispatcher
        d.restore([Record.from_json(r) for r in self.records])  # an in-memory cache is refilled from them
        d.pending_from_json({"live": state["live"], "waiters": state["waiters"]})
        self._trials = {tid: int(t["id"]) for tid, t in state["live"].items()}
        d.next_id, self.n_stall = int(state["next_id"]), int(state["n_stall"])
        self._finished = bool(state.get("finished", False))
        if "policy_rng" in state:
            self.seam.rng.bit_generator.state = state["policy_rng"]
        for h, n in state.get("hits", {}).items():
            e = self.cache.get(h)
            if e is not None:
                self.cache.put(h, dataclasses.replace(e, hits=int(n)))

    def save(self, checkpoint_path: str) -> None:
        """Write the state as JSON (atomically) to ``checkpoint_path``."""
        tmp = f"{checkpoint_path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.get_state(), f)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            self.set_state(json.load(f))

    def __getstate__(self) -> dict[str, Any]:
        """The JSON state only (constructor arguments included; no open cache, no live objects)."""
        return {"state": self.get_state()}

    def __setstate__(self, d: Mapping[str, Any]) -> None:
        AutoMLSearcher.__init__(self, **d["state"]["init"])
        self._load(d["state"])


def _refuse_search_domains(config: Mapping[str, Any] | None) -> None:
    """Raise ConfigError when a Tune ``param_space`` holds search domains (``tune.uniform``,
    ``tune.grid_search``...): the strategy owns the search space, so they would never be searched."""
    if not config:
        return
    from ray.tune.search.variant_generator import parse_spec_vars

    _, domains, grids = parse_spec_vars(dict(config))
    paths = ["/".join(map(str, path)) for path, _ in domains + grids]
    if paths:
        raise ConfigError(f"AutoMLSearcher searches its space with its strategy; the param_space may hold only "
                          f"constants (added to every trial's config), but {', '.join(sorted(paths))} "
                          f"{'is a search domain' if len(paths) == 1 else 'are search domains'}")


# --- a trainable that evaluates the candidate with a registered evaluator ----------------------------

_built: dict[str, tuple[Any, Any]] = {}  # per worker process: spec key -> (space, evaluator)


def trainable(space: str, evaluator: str, space_options: Mapping[str, Any] | None = None,
              evaluator_options: Mapping[str, Any] | None = None,
              timeout: float | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A Tune function trainable: evaluates ``config["candidate"]`` with the registered evaluator
    (built once per worker process) and returns its objectives, plus ``automl_cost_s`` and
    ``automl_error`` ("" when it succeeded) with ``automl_failure``, its kind (``final``: the
    candidate's own fault; ``transient``: retried by a later run; ``timeout``). When the evaluation
    failed, or any objective is NaN or infinite (an invalid result), every objective is NaN: the
    worst value under either mode (Tune's ``get_best_result`` skips NaN), so Tune never ranks a
    result the searcher does not."""
    specs = (PluginSpec(space, dict(space_options or {})), PluginSpec(evaluator, dict(evaluator_options or {})))
    key = json.dumps([[s.name, s.options] for s in specs], sort_keys=True, default=str)

    def automl_trial(config: dict[str, Any]) -> dict[str, Any]:
        if key not in _built:
            _built[key] = (specs[0].build("space"), specs[1].build("evaluator"))
        sp, ev = _built[key]
        raw = run_evaluation(ev, sp, config["candidate"], timeout)
        out: dict[str, Any] = {"automl_cost_s": raw["cost_s"], "automl_error": raw["error"] or "",
                               "automl_failure": raw.get("failure") or ""}
        objectives = raw["objectives"] if isinstance(raw["objectives"], Mapping) else None
        bad = raw["error"] is not None or objectives is None or any(
            not isinstance(objectives.get(k), (int, float)) for k in ev.objectives)
        values = {} if bad or objectives is None else {k: float(objectives[k]) for k in ev.objectives}
        if not all(math.isfinite(v) for v in values.values()):
            values = {}  # an invalid result (the searcher records it so): no objective of it may rank in Tune
        for o in ev.objective_list():
            out[o.name] = values.get(o.name, math.nan)
        if bad and not out["automl_error"]:
            out["automl_error"] = f"evaluator returned {objectives!r}"
        return out

    automl_trial.__name__ = automl_trial.__qualname__ = f"automl_{evaluator.replace(':', '_').replace('.', '_')}"
    return automl_trial


__all__ = ["AutoMLSearcher", "trainable"]
