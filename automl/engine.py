"""The search loop: ask → hash → dedupe → submit → tell, asynchronous and steady-state.

The engine owns the run log and the cache; strategies only ask and tell, runners only run.
Budgets count *charged* evaluations (misses and partial hits; a full hit is free) and/or
wall-clock seconds.  A candidate whose digest is already being evaluated waits for that
result instead of being submitted again (in-flight coalescing).
"""
from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from typing import Any

from .cache import Cache
from .evaluation import Seam, Ticket
from .lifecycle import StopSignals
from .log import RunLog, check_state
from .runners.base import PluginSpec, Runner
from .strategies.base import Strategy
from .types import OK, Candidate, EvalResult

SNAPSHOT_EVERY_S = 2.0
PROGRESS_LINE_EVERY_S = 10.0  # when stderr is not a terminal: one readable line this often


@dataclasses.dataclass
class Budget:
    evaluations: int | None = None  # charged evaluations for the whole run
    seconds: float | None = None  # wall-clock seconds for this invocation
    max_candidates: int | None = None  # candidates (hits included) for the whole run
    stall: int = 2_000  # stop after this many consecutive candidates that cost no evaluation

    def __post_init__(self):
        from .errors import ConfigError

        if self.evaluations is None and self.seconds is None and self.max_candidates is None:
            raise ConfigError("give a budget: evaluations (--budget), seconds (--seconds) or max candidates")
        for name in ("evaluations", "seconds", "max_candidates", "stall"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"budget {name} must be positive, got {v}")


class Engine:
    def __init__(self, space: Any, evaluator: Any, strategy: Strategy, runner: Runner, cache: Cache,
                 log: RunLog, budget: Budget, seed: int = 0, space_spec: PluginSpec | None = None,
                 evaluator_spec: PluginSpec | None = None, timeout: float | None = None,
                 progress: bool = False, probe_seed: int | None = None, dedupe: str = "functional"):
        self.space, self.evaluator, self.strategy, self.runner = space, evaluator, strategy, runner
        self.cache, self.log, self.budget, self.seed = cache, log, budget, seed
        self.seam = Seam(space, evaluator, cache, probe_seed, dedupe)
        self.space_spec, self.evaluator_spec, self.timeout = space_spec, evaluator_spec, timeout
        self.progress = progress
        self.next_id = 0
        self.reconciled = 0  # cache entries repaired from the log on resume
        self.n_records = 0
        self.charged = 0
        self.n_stall = 0
        self.best: dict[str, Any] | None = None
        self._inflight: dict[int, Ticket] = {}  # task id -> ticket
        self._by_hash: dict[str, int] = {}  # digest -> task id in flight
        self._waiters: dict[str, list[Ticket]] = {}
        self._gen: dict[int, int] = {}  # candidate id -> generation (lineage depth)
        self._t0 = time.perf_counter()
        self._t_offset = 0.0
        strategy.bind(space, evaluator.objectives, seed, self.seam.hasher)

    # --- resume --------------------------------------------------------------------------------------
    def restore(self, records: list[dict[str, Any]]) -> None:
        """Continue from a log: re-fill the cache from it, restore the strategy, count the budget."""
        state = self.log.load_state()
        check_state(self.log.dir, state, records)  # a log cut short (power loss) is an error, not a restart
        start = 0
        if state is not None and state.get("n_records", 0) <= len(records):
            self.strategy.load_state_dict(state["strategy"])
            start = state["n_records"]
        # Every key the log charged: the cache holds at least the log's aggregate (a kill -9 can
        # leave the log ahead of the cache; refilling only missing keys under-counted aggregates).
        self.reconciled = self.cache.reconcile_log(records)
        for i, rec in enumerate(records):
            h = rec.get("hash")
            if h and rec.get("structural_hash") and self.seam.dedupe == "functional":
                self.cache.set_alias(rec["structural_hash"], h)
            cand, res = self._from_record(rec)
            if i >= start:
                self.strategy.replay(cand, res)
            self._update_best(cand, res)
            self._gen[cand.id] = cand.generation
        self.cache.stats = type(self.cache.stats)()  # statistics count this invocation only
        self.cache.flush()
        self.next_id = max((r["id"] for r in records), default=-1) + 1
        self.n_records = len(records)
        self.charged = sum(int(r.get("charged", 0)) for r in records)
        self._t_offset = max((r.get("t", 0.0) for r in records), default=0.0)

    def _from_record(self, rec: dict[str, Any]) -> tuple[Candidate, EvalResult]:
        cand = Candidate(rec["id"], self.space.from_text(rec["candidate"]), rec["candidate"],
                         tuple(rec.get("parents", ())), rec.get("generation", 0), rec.get("params"))
        res = EvalResult(rec["status"], rec.get("objectives") or {}, rec.get("cost_s", 0.0), rec.get("cache", "miss"),
                         int(rec.get("charged", 0)), rec.get("error"), rec.get("n", 1), rec.get("structural_hash"),
                         rec.get("hash"))
        return cand, res

    # --- the loop ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.runner.start(self.space_spec, self.evaluator_spec, self.timeout, local_space=self.space,
                          local_evaluator=self.evaluator)
        bar = self._bar()
        reason = "budget"
        self._last_snapshot = time.monotonic()
        stops = StopSignals(escalate=self.runner.kill)
        try:
            stops.__enter__()
            while True:
                stop = self._stop_reason()
                if stop is None:
                    stop = self._fill()
                if stop is not None and not self._inflight:
                    reason = stop
                    break
                for task_id, raw in self.runner.poll(timeout=0.5 if stop is None else None):
                    ticket = self._inflight.pop(task_id)
                    del self._by_hash[ticket.hash]
                    res = self.seam.complete(ticket, raw)
                    self._finish(ticket.candidate, res)
                    for waiter in self._waiters.pop(ticket.hash, ()):
                        self._finish(waiter.candidate, self.seam.coalesced(waiter, res))
                if bar is not None:
                    bar.n = self.charged
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
        return self.summary(reason)

    def _stop_reason(self) -> str | None:
        b = self.budget
        if b.seconds is not None and time.perf_counter() - self._t0 >= b.seconds:
            return "seconds"
        if b.max_candidates is not None and self.next_id >= b.max_candidates:
            return "max-candidates"
        if self.n_stall >= b.stall:
            return "stalled"
        if b.evaluations is not None and self.charged + len(self._inflight) >= b.evaluations:
            return "budget"
        return None

    def _fill(self) -> str | None:
        """Ask until the runner is full; answer hits and coalesce duplicates on the way."""
        for _ in range(1024):  # then poll, even if every proposal was a hit
            if len(self._inflight) >= self.runner.capacity:
                return None
            stop = self._stop_reason()
            if stop is not None:
                return stop
            prop = self.strategy.ask()
            if prop is None:
                return "exhausted"
            parents = tuple(prop.parents)
            gen = 1 + max(self._gen.get(p, 0) for p in parents) if parents else 0
            cand = Candidate(self.next_id, prop.genome, self.space.to_text(prop.genome), parents,
                             gen, prop.params, prop.meta)
            self._gen[cand.id] = gen
            self.next_id += 1
            ticket = self.seam.prepare(cand)
            if ticket.result is not None:
                self._finish(cand, ticket.result)
            elif ticket.hash in self._by_hash:
                self._waiters.setdefault(ticket.hash, []).append(ticket)
            else:
                self._inflight[cand.id] = ticket
                self._by_hash[ticket.hash] = cand.id
                self.runner.submit(cand.id, cand.text, cand.genome)
        return None

    def _finish(self, cand: Candidate, res: EvalResult) -> None:
        self.charged += res.charged
        self.n_stall = 0 if res.charged else self.n_stall + 1
        rec = {"id": cand.id, "parents": list(cand.parents), "generation": cand.generation, "candidate": cand.text,
               "structural_hash": res.structural_hash, "hash": res.hash, "cache": res.cache, "status": res.status,
               "objectives": dict(res.objectives), "cost_s": res.cost_s, "charged": res.charged, "n": res.n,
               "error": res.error, "t": round(self._t_offset + time.perf_counter() - self._t0, 6)}
        if cand.params is not None:
            rec["params"] = dict(cand.params)
        if cand.meta and "origin" in cand.meta:
            rec["origin"] = cand.meta["origin"]
        stats = self.space.stats(cand.genome)
        if stats:
            rec["stats"] = dict(stats)
        if res.extra:
            rec.update(res.extra)
        self.log.append(rec)
        self.n_records += 1
        self.strategy.tell(cand, res)
        self._update_best(cand, res)

    def _update_best(self, cand: Candidate, res: EvalResult) -> None:
        if res.status != OK:
            return
        v = res.objectives.get(self.evaluator.primary)
        if v is None or not math.isfinite(v):
            return
        if self.best is None or self.evaluator.better(v, self.best["value"]):
            self.best = {"id": cand.id, "candidate": cand.text, "value": v, "objectives": dict(res.objectives)}

    # --- bookkeeping ---------------------------------------------------------------------------------
    def snapshot(self) -> None:
        """Write the strategy state for resume (atomic, after the log is fsynced: state.json never
        counts records the disk does not hold)."""
        self.log.sync()
        self.log.save_state({"n_records": self.n_records, "next_id": self.next_id,
                             "strategy": self.strategy.state_dict(), "time": time.time()})
        self._last_snapshot = time.monotonic()

    def _progress_line(self) -> None:
        self._last_line = time.monotonic()
        total = f"/{self.budget.evaluations}" if self.budget.evaluations else ""
        post = ", ".join(f"{k} {v}" for k, v in self._postfix().items())
        print(f"[{time.perf_counter() - self._t0:7.1f}s] {self.charged}{total} evaluations, {post}",
              file=sys.stderr, flush=True)

    def _bar(self):
        self._last_line = time.monotonic()
        if not self.progress or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        total = self.budget.evaluations
        return tqdm(total=total, initial=self.charged, unit="eval", file=sys.stderr, dynamic_ncols=True,
                    mininterval=0.2, desc="search")

    def _postfix(self) -> dict[str, Any]:
        st = self.cache.stats
        lookups = st.misses + st.partial_hits + st.hits
        out = {"cand": self.n_records, "hit%": f"{100.0 * st.hits / lookups:.0f}" if lookups else "0"}
        if self.best is not None:
            out["best"] = f"{self.best['value']:.6g}"
        return out

    def summary(self, reason: str) -> dict[str, Any]:
        return {"run_dir": self.log.dir, "stop_reason": reason, "candidates": self.n_records,
                "charged_evaluations": self.charged, "best": self.best, "cache": self.cache.stats.as_dict(),
                "elapsed_s": time.perf_counter() - self._t0}
