"""The search loop: ask → hash → dedupe → submit → tell, asynchronous and steady-state.

The loop itself lives in :mod:`automl.dispatch`; the engine adds budgets, stop rules, progress
and checkpoint/resume around it.  Strategies only ask and tell, runners only run.
Budgets count *charged* evaluations (misses and partial hits; a full hit is free), evaluator-seconds
(what those evaluations cost, as charged: a batched evaluator charges each member its share)
and/or wall-clock seconds.  A candidate whose digest is already being evaluated waits for that
result instead of being submitted again (in-flight coalescing).
"""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from typing import Any, Sequence

from ._optional import progress_bar
from .cache import Cache
from .dispatch import Dispatcher, monotonic_clock
from .errors import CallbackError, ConfigError, SearchFailed
from .evaluation import Seam, Ticket
from .lifecycle import StopSignals
from .log import RunLog, check_state
from .policy import CachePolicy
from .runners.base import PluginSpec, Runner
from .strategies.base import Strategy
from .types import Record

SNAPSHOT_EVERY_S = 2.0
#: A run whose first this-many results all failed (and none succeeded) stops with SearchFailed:
#: a broken evaluator, a missing plugin in the workers, a device that is not there.
ALL_FAILED_AFTER = 10
PROGRESS_LINE_EVERY_S = 10.0  # when stderr is not a terminal: one readable line this often


@dataclasses.dataclass
class Budget:
    evaluations: int | None = None  # charged evaluations for the whole run
    seconds: float | None = None  # wall-clock seconds for this invocation
    max_candidates: int | None = None  # candidates (hits included) for the whole run
    stall: int = 2_000  # stop after this many consecutive candidates that cost no evaluation
    open_ended: bool = False  # no limit required (ask/tell: the caller's loop decides when to stop)
    #: evaluator-seconds for the whole run: the summed ``cost_s`` of charged evaluations (what
    #: ``automl show`` reports as evaluator seconds); in-flight work may overshoot it by one batch
    evaluator_seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.evaluations is None and self.seconds is None and self.max_candidates is None
                and self.evaluator_seconds is None and not self.open_ended):
            raise ConfigError("give a budget: evaluations (--budget), seconds (--seconds), evaluator-seconds "
                              "(--evaluator-seconds) or max candidates")
        for name in ("evaluations", "seconds", "max_candidates", "stall", "evaluator_seconds"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"budget {name} must be positive, got {v}")


def as_callback(cb: Any) -> Any:
    """A result callback as a function ``fn(run, record)``: ``cb`` itself, or its ``on_result``
    method (a tracker object); ConfigError for anything else."""
    fn = getattr(cb, "on_result", cb)
    if not callable(fn):
        raise ConfigError(f"a callback must be callable as fn(run, record) or have on_result(run, record); got "
                          f"{type(cb).__name__}")
    return fn


class Engine:
    """Budgets, stop rules, progress, checkpoint and resume around a :class:`~automl.dispatch.Dispatcher`."""

    def __init__(self, space: Any, evaluator: Any, strategy: Strategy, runner: Runner, cache: Cache,
                 log: RunLog, budget: Budget, seed: int = 0, space_spec: PluginSpec | None = None,
                 evaluator_spec: PluginSpec | None = None, timeout: float | None = None,
                 progress: bool = False, probe_seed: int | None = None, dedupe: str = "functional",
                 policy: CachePolicy | None = None, callbacks: Sequence[Any] = (), owner: Any = None,
                 all_failed_after: int | None = ALL_FAILED_AFTER):
        self.space, self.evaluator, self.strategy, self.runner = space, evaluator, strategy, runner
        self.cache, self.log, self.budget, self.seed = cache, log, budget, seed
        self.seam = Seam(space, evaluator, cache, policy, probe_seed, dedupe, seed=seed)
        self.space_spec, self.evaluator_spec, self.timeout = space_spec, evaluator_spec, timeout
        self.progress = progress
        self._t0 = time.perf_counter()
        self.reconciled = 0  # cache entries repaired from the log on resume
        self.callbacks = [as_callback(cb) for cb in callbacks]  # called after each record is logged
        self.owner = owner
        self.callback_error: CallbackError | None = None
        self.all_failed_after = all_failed_after
        self.n_failed = 0  # failed results in this invocation (a resumed run's old records do not count)
        self.n_succeeded = 0  # ok or invalid results: the evaluator works
        self.first_error: str | None = None
        self.last_record: dict[str, Any] | None = None  # the last record logged (as written)
        self.dispatcher = Dispatcher(self.seam, tell=strategy.tell, log=self._append, clock=monotonic_clock())
        strategy.bind(space, evaluator.objectives, seed, self.seam)

    def _append(self, rec: Record) -> None:
        d = rec.to_json()
        self.log.append(d)
        self.last_record = d
        self._count(rec)
        if self.callback_error is None:
            for cb in self.callbacks:
                try:
                    cb(self.owner, d)
                except Exception as exc:  # a user's callback: stop the run cleanly, keep every result
                    self.callback_error = CallbackError(
                        f"callback {getattr(cb, '__qualname__', type(cb).__name__)} raised {type(exc).__name__}: "
                        f"{exc}; the run stopped after candidate #{rec.id} with every result kept in "
                        f"{self.log.dir} (resume it to continue)")
                    self.callback_error.__cause__ = exc
                    break

    def _count(self, rec: Record) -> None:
        if rec.status == "failed":
            self.n_failed += 1
            if self.first_error is None:
                self.first_error = rec.error
        else:
            self.n_succeeded += 1

    @property
    def all_failed(self) -> bool:
        """True when every result so far failed (at least one)."""
        return self.n_failed > 0 and self.n_succeeded == 0

    def failed_error(self) -> SearchFailed:
        return SearchFailed(f"every evaluation failed ({self.n_failed} results, none succeeded); the search stopped early. "
                            f"First error: {self.first_error}.  Records are kept in {self.log.dir}")

    @property
    def charged(self) -> int:
        return self.dispatcher.charged

    @property
    def n_records(self) -> int:
        return self.dispatcher.n_done

    @property
    def next_id(self) -> int:
        return self.dispatcher.next_id

    @property
    def best(self) -> dict[str, Any] | None:
        b = self.dispatcher.best
        if b is None:
            return None
        return {"id": b.id, "candidate": b.candidate, "value": b.objectives[self.evaluator.primary],
                "objectives": dict(b.objectives)}

    # --- resume --------------------------------------------------------------------------------------
    def restore(self, records: list[dict[str, Any]]) -> None:
        """Continue from a log: re-fill the cache from it, restore the strategy, count the budget."""
        state = self.log.load_state()
        check_state(self.log.dir, state, records)  # a log cut short (power loss) is an error, not a restart
        start = 0
        if state is not None and state.get("n_records", 0) <= len(records):
            self.strategy.load_state_dict(state["strategy"])
            start = state["n_records"]
            if "policy_rng" in state:  # a forgetful/aggregating policy continues its own random stream
                self.seam.rng.bit_generator.state = state["policy_rng"]
        recs = [Record.from_json(r) for r in records]
        self.dispatcher.restore(recs, self.strategy.replay, start)
        self.reconciled = self.dispatcher.reconciled  # cache entries repaired from the log
        self.seam.stats = type(self.seam.stats)()  # statistics count this invocation only
        offset = max((r.t or 0.0 for r in recs), default=0.0)
        self.dispatcher._clock = monotonic_clock(offset)

    # --- the loop ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Search until a stop rule fires; the summary.  A resumed run whose budget is already
        spent does nothing (stop reason ``finished``)."""
        if self.n_records and self._stop_reason() in ("budget", "max-candidates", "evaluator-seconds"):
            return self.summary("finished")
        self.runner.start(self._spec(self.space_spec, self.space, "space"),
                          self._spec(self.evaluator_spec, self.evaluator, "evaluator"), self.timeout)
        d = self.dispatcher
        bar = self._bar()
        reason = "budget"
        self._last_snapshot = time.monotonic()
        launch = self._launch
        stops = StopSignals(escalate=self.runner.kill)
        try:
            stops.__enter__()
            while True:
                stop = self._stop_reason()
                with self.log.deferred():  # a generation's records: one flush, not one per record
                    if stop is None:
                        room = self.runner.capacity - d.in_flight
                        stop = None if room <= 0 else d.fill(self.strategy.ask, launch, room, self._stop_reason)[1]
                    if stop is not None and not d.in_flight:
                        reason = stop
                        break
                    d.pump(self.runner, timeout=0.5 if stop is None else None)
                if bar is not None:
                    bar.n = d.charged
                    bar.set_postfix(self._postfix(), refresh=False)
                    bar.refresh()
                elif self.progress and time.monotonic() - self._last_line >= PROGRESS_LINE_EVERY_S:
                    self._progress_line()
                if time.monotonic() - self._last_snapshot > SNAPSHOT_EVERY_S:
                    self.snapshot()
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (see automl.lifecycle)
            reason = "terminated" if getattr(exc, "signum", None) == signal.SIGTERM else "interrupted"
            print(f"\n{reason}: {self.n_records} candidates logged; continue with "
                  f"`automl search --resume {self.log.dir}`", file=sys.stderr)
        finally:
            try:
                if bar is not None:
                    bar.close()
                if reason in ("interrupted", "terminated"):
                    self.runner.kill()  # in-flight work is not logged, so not charged: nothing to wait for
                self.runner.close()
            finally:
                try:
                    self.snapshot()
                    self.cache.flush()
                finally:
                    stops.__exit__(None, None, None)
        if reason not in ("interrupted", "terminated", "callback-error") and self.all_failed:
            reason = "all-failed"
        return self.summary(reason)

    def _launch(self, ticket: Ticket) -> None:
        c = ticket.candidate
        self.runner.submit(c.id, c.text, c.genome)

    def _stop_reason(self) -> str | None:
        b, d = self.budget, self.dispatcher
        if self.callback_error is not None:
            return "callback-error"
        if self.all_failed_after is not None and self.all_failed and self.n_failed >= self.all_failed_after:
            return "all-failed"
        if b.seconds is not None and time.perf_counter() - self._t0 >= b.seconds:
            return "seconds"
        if b.max_candidates is not None and d.next_id >= b.max_candidates:
            return "max-candidates"
        if d.n_stall >= b.stall:
            return "stalled"
        if b.evaluations is not None and d.charged + len(d._inflight) >= b.evaluations:
            return "budget"
        if b.evaluator_seconds is not None and d.charged_s >= b.evaluator_seconds:
            return "evaluator-seconds"
        return None

    # --- bookkeeping ---------------------------------------------------------------------------------
    @staticmethod
    def _spec(spec: PluginSpec | None, obj: Any, family: str) -> PluginSpec:
        """What the runner gets: the given spec carrying the engine's own object (in-process
        runners reuse it), or, for an engine built from objects alone, the object's own spec."""
        return spec.with_instance(obj) if spec is not None else PluginSpec.of(obj, family)

    def snapshot(self) -> None:
        """Write the strategy state for resume (atomic, after the log is fsynced: state.json never
        counts records the disk does not hold); the cache's held writes are committed too."""
        self.log.sync()
        self.cache.flush()
        self.log.save_state({"n_records": self.n_records, "next_id": self.next_id,
                             "strategy": self.strategy.state_dict(), "policy_rng": self.seam.rng.bit_generator.state,
                             "time": time.time()})
        self._last_snapshot = time.monotonic()

    def _progress_line(self) -> None:
        self._last_line = time.monotonic()
        total = f"/{self.budget.evaluations}" if self.budget.evaluations else ""
        post = ", ".join(f"{k} {v}" for k, v in self._postfix().items())
        print(f"[{time.perf_counter() - self._t0:7.1f}s] {self.charged}{total} evaluations, {post}",
              file=sys.stderr, flush=True)

    def _bar(self) -> Any:  # a tqdm bar, or None
        self._last_line = time.monotonic()
        if not self.progress or not sys.stderr.isatty():
            return None
        # without the [progress] extra (None) a terminal gets the progress lines too
        return progress_bar(total=self.budget.evaluations, initial=self.charged, unit="eval", mininterval=0.2,
                            desc="search")

    def _postfix(self) -> dict[str, Any]:
        st = self.seam.stats
        lookups = st.misses + st.partial_hits + st.hits
        out = {"cand": self.n_records, "hit%": f"{100.0 * st.hits / lookups:.0f}" if lookups else "0"}
        if self.best is not None:
            out["best"] = f"{self.best['value']:.6g}"
        return out

    def summary(self, reason: str) -> dict[str, Any]:
        return {"run_dir": self.log.dir, "stop_reason": reason, "candidates": self.n_records,
                "charged_evaluations": self.charged, "evaluator_seconds": self.dispatcher.charged_s,
                "screened": self.dispatcher.screened, "best": self.best, "cache": self.seam.stats.as_dict(),
                "elapsed_s": time.perf_counter() - self._t0}
