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

The state (``save``/``restore``, ``get_state``/``set_state``) is JSON: the strategy's
``state_dict``, the records of every candidate, and the trials still running.  Pickling the
searcher (Tune pickles its search algorithm with the experiment) carries only the constructor
arguments and that JSON state.

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

import json
import os
from typing import Any, Callable, Mapping

from .._optional import missing_error

try:
    from ray.tune.search import Searcher
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "ray"], "automl.integrations.tune") from exc

from .. import registry
from ..cache import Cache, NullCache
from ..dispatch import Dispatcher
from ..errors import ConfigError
from ..evaluation import Seam, Ticket, run_evaluation
from ..objectives import best
from ..policy import CachePolicy
from ..runners.base import PluginSpec
from ..types import Direction, Objective, Record

STATE_FORMAT = 1
#: Proposals one ``suggest`` call may answer from the cache before it returns None (Tune asks again).
MAX_ASKS_PER_SUGGEST = 1000



class AutoMLSearcher(Searcher):
    """A registered strategy driving Tune trials, with the equivalence cache in front.

    ``space``/``evaluator``/``strategy`` are registered names (or ``module:Class`` paths) with
    their ``*_options``.  ``metric``/``mode`` default to the evaluator's primary objective and its
    direction.  ``cache``: None keeps the cache in memory (restored from the saved records);
    a path shares a persistent cache file with other runs.  ``records`` lists every candidate
    (hits included) in the run-log record format.
    """

    def __init__(self, space: str | None = None, evaluator: str | None = None, strategy: str | None = None, *,
                 space_options: Mapping[str, Any] | None = None,
                 evaluator_options: Mapping[str, Any] | None = None,
                 strategy_options: Mapping[str, Any] | None = None, metric: str | None = None,
                 mode: str | None = None, cache: str | os.PathLike | None = None, cache_policy: Any = "auto",
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
        objectives = dict(self.evaluator.objectives)
        metric = metric or self.evaluator.primary
        if metric not in objectives:
            raise ConfigError(f"metric {metric!r} is not an objective of evaluator {evaluator!r} "
                              f"({', '.join(objectives)})")
        mode = mode or objectives[metric]
        if mode != objectives[metric]:
            raise ConfigError(f"evaluator {evaluator!r} has {metric!r} as {objectives[metric]}, not {mode}")
        super().__init__(metric=metric, mode=mode)
        self.cache = Cache(self._init_args["cache"]) if use_cache else NullCache()
        self.seam = Seam(self.space, self.evaluator, self.cache, CachePolicy.resolve(cache_policy, self.evaluator),
                         probe_seed, seed=int(seed))
        self.strategy = registry.create("strategy", strategy, **self._init_args["strategy_options"])
        self.strategy.bind(self.space, objectives, int(seed), self.seam)
        self.max_candidates, self.stall = max_candidates, int(stall)
        self.records: list[dict[str, Any]] = []
        self.dispatcher = Dispatcher(self.seam, tell=self.strategy.tell, log=self._log)
        self.n_stall = 0
        self._trials: dict[str, int] = {}  # trial id -> candidate id running in it
        self._finished = False

    def _log(self, rec: Record) -> None:
        self.records.append(rec.to_json())

    @property
    def next_id(self) -> int:
        return self.dispatcher.next_id

    # --- Tune's interface ------------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """The search space is the strategy's: a Tune ``param_space`` only adds constants to each config."""
        return False

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

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        cid = self._trials.pop(trial_id, None)
        if cid is None:  # not one of ours (or already completed)
            return
        self.dispatcher.complete(cid, self._raw(result, error), trial_id=trial_id)
        self.cache.flush()

    def _raw(self, result: Mapping[str, Any] | None, error: bool) -> dict[str, Any]:
        """A Tune result as a runner's raw outcome (see automl.evaluation.run_evaluation)."""
        if error or not result:
            return {"objectives": None, "error": "the Tune trial failed (see its error file)", "cost_s": 0.0}
        cost = float(result.get("automl_cost_s", result.get("time_total_s", 0.0)) or 0.0)
        if result.get("automl_error"):
            return {"objectives": None, "error": str(result["automl_error"]), "cost_s": cost}
        missing = [k for k in self.evaluator.objectives if k not in result]
        if missing:
            return {"objectives": None, "error": f"the trial reported no {', '.join(missing)}", "cost_s": cost}
        return {"objectives": {k: result[k] for k in self.evaluator.objectives}, "error": None, "cost_s": cost}

    @property
    def best(self) -> dict[str, Any] | None:
        """The best OK record on the searcher's metric, or None."""
        return best(self.records, Objective(str(self._metric), Direction(self._mode)))

    # --- state (JSON) --------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        d = self.dispatcher
        pending = d.pending_to_json()
        return {"format": STATE_FORMAT, "strategy": self.strategy.state_dict(), "next_id": d.next_id,
                "n_stall": self.n_stall, "finished": self._finished, "records": self.records,
                "live": {tid: pending["live"][str(cid)] for tid, cid in self._trials.items()},
                "waiters": pending["waiters"]}

    def set_state(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"searcher state format {state.get('format')!r}, this version reads {STATE_FORMAT}")
        self.strategy.load_state_dict(state["strategy"])
        self.records = [dict(r) for r in state["records"]]
        d = self.dispatcher
        d.restore([Record.from_json(r) for r in self.records])  # an in-memory cache is refilled from them
        d.pending_from_json({"live": state["live"], "waiters": state["waiters"]})
        self._trials = {tid: int(t["id"]) for tid, t in state["live"].items()}
        d.next_id, self.n_stall = int(state["next_id"]), int(state["n_stall"])
        self._finished = bool(state.get("finished", False))

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
        """Constructor arguments and the JSON state only (no open cache, no live objects)."""
        return {"init": self._init_args, "state": self.get_state(), "metric": self._metric, "mode": self._mode}

    def __setstate__(self, d: Mapping[str, Any]) -> None:
        AutoMLSearcher.__init__(self, **d["init"])
        self._metric, self._mode = d["metric"], d["mode"]
        self.set_state(d["state"])


# --- a trainable that evaluates the candidate with a registered evaluator ----------------------------

_built: dict[str, tuple[Any, Any]] = {}  # per worker process: spec key -> (space, evaluator)


def trainable(space: str, evaluator: str, space_options: Mapping[str, Any] | None = None,
              evaluator_options: Mapping[str, Any] | None = None,
              timeout: float | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A Tune function trainable: evaluates ``config["candidate"]`` with the registered evaluator
    (built once per worker process) and returns its objectives, plus ``automl_cost_s`` and
    ``automl_error`` ("" when it succeeded; the objectives are then the worst values)."""
    specs = (PluginSpec(space, dict(space_options or {})), PluginSpec(evaluator, dict(evaluator_options or {})))
    key = json.dumps([[s.name, s.options] for s in specs], sort_keys=True, default=str)

    def automl_trial(config: dict[str, Any]) -> dict[str, Any]:
        if key not in _built:
            _built[key] = (specs[0].build("space"), specs[1].build("evaluator"))
        sp, ev = _built[key]
        raw = run_evaluation(ev, sp, config["candidate"], timeout)
        out: dict[str, Any] = {"automl_cost_s": raw["cost_s"], "automl_error": raw["error"] or ""}
        objectives = raw["objectives"] if isinstance(raw["objectives"], Mapping) else None
        bad = raw["error"] is not None or objectives is None or any(
            not isinstance(objectives.get(k), (int, float)) for k in ev.objectives)
        for o in ev.objective_list():
            out[o.name] = o.worst if bad or objectives is None else float(objectives[o.name])
        if bad and not out["automl_error"]:
            out["automl_error"] = f"evaluator returned {objectives!r}"
        return out

    automl_trial.__name__ = automl_trial.__qualname__ = f"automl_{evaluator.replace(':', '_').replace('.', '_')}"
    return automl_trial


__all__ = ["AutoMLSearcher", "trainable"]
