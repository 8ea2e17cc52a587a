"""The one dispatch loop: ask -> candidate with lineage -> seam -> in-flight coalescing -> run ->
fold -> tell -> log.

Every front end uses a :class:`Dispatcher`: the :class:`~automl.engine.Engine` (budgets,
snapshots, a :class:`~automl.runners.base.Runner`), the Ray Tune searcher (Tune runs the
trials), constant tuning (Optuna proposes), and any new one — a supernet trainer that asks for
many subnets at once, a batched evaluator — without copying the loop:

    d = Dispatcher(seam, tell=strategy.tell, log=run_log.append_record)
    tickets = d.offer_many([d.candidate(p) for p in proposals])   # hits/duplicates answered here
    d.run(tickets, runner)                                          # submit; fold, tell, log, wake twins

A candidate's task id is its candidate id.  Tickets still to run are "in flight" from the
moment :meth:`offer` returns them until :meth:`complete` receives their raw outcome; a candidate
whose digest is in flight waits for that result (a coalesced hit, never charged).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from .evaluation import Seam, Ticket
from .objectives import ranked_value as objective_value
from .strategies.base import Proposal
from .types import Candidate, EvalResult, Record


class Dispatcher:
    """The loop's state: ids, lineage, tickets in flight, waiting twins, counters and best-so-far.

    ``tell(candidate, result)`` is called exactly once per candidate, after ``log(record)``.
    ``clock()`` gives the record's ``t`` (seconds; None leaves it out).  ``space_stats``: log the
    space's cheap per-candidate statistics with each record.
    """

    def __init__(self, seam: Seam, *, tell: Callable[[Candidate, EvalResult], None] | None = None,
                 log: Callable[[Record], None] | None = None, clock: Callable[[], float] | None = None,
                 space_stats: bool = True, next_id: int = 0):
        self.seam, self.space = seam, seam.space
        self._tell, self._log, self._clock, self._space_stats = tell, log, clock, space_stats
        self.objective = seam.evaluator.objective_list()[0]
        self.next_id = next_id
        self.n_done = 0  # candidates finished (logged and told)
        self.charged = 0  # real evaluations charged
        self.charged_s = 0.0  # their evaluator-seconds (cost_s of charged results)
        self.screened = 0  # charged candidates an evaluator's cheap filter rejected (info "screened": true)
        self.n_stall = 0  # consecutive finished candidates that cost no evaluation
        self.reconciled = 0  # cache entries the last restore repaired from the log
        self.best: Record | None = None  # best OK record on the primary objective
        self._best_v = 0.0
        self._gen: dict[int, int] = {}  # candidate id -> generation (lineage depth)
        self._inflight: dict[int, Ticket] = {}  # task id (= candidate id) -> ticket
        self._by_hash: dict[str, int] = {}  # digest -> task id in flight
        self._waiters: dict[str, list[Ticket]] = {}

    # --- proposals -> candidates ---------------------------------------------------------------
    def candidate(self, proposal: Any) -> Candidate:
        """An immutable candidate for ``proposal`` (a :class:`~automl.strategies.base.Proposal`, or a
        bare genome): the next id, generation = 1 + deepest parent."""
        if not isinstance(proposal, Proposal) and not hasattr(proposal, "genome"):
            proposal = Proposal(proposal)
        parents = tuple(proposal.parents)
        gen = 1 + max(self._gen.get(p, 0) for p in parents) if parents else 0
        cand = Candidate(self.next_id, proposal.genome, self.space.to_text(proposal.genome), parents, gen,
                         proposal.params, proposal.meta)
        self._gen[cand.id] = gen
        self.next_id += 1
        return cand

    # --- the seam + coalescing -----------------------------------------------------------------
    def offer(self, cand: Candidate) -> Ticket | None:
        """Pass ``cand`` through the seam.  Returns the ticket the caller must run (now in flight,
        task id ``cand.id``), or None when it was answered (hit, invalid: finished now) or waits
        on an in-flight twin (finished when the twin completes)."""
        ticket = self.seam.prepare(cand)
        if ticket.result is not None:
            self.finish(cand, ticket.result)
            return None
        if ticket.hash in self._by_hash:
            self._waiters.setdefault(ticket.hash, []).append(ticket)
            return None
        self._inflight[cand.id] = ticket
        self._by_hash[ticket.hash] = cand.id
        return ticket

    def offer_many(self, cands: Iterable[Candidate]) -> list[Ticket]:
        """:meth:`offer` each candidate (twins within the batch coalesce too); the tickets to run."""
        return [t for t in (self.offer(c) for c in cands) if t is not None]

    def fill(self, ask: Callable[[], Any], launch: Callable[[Ticket], None], room: int,
             stop: Callable[[], str | None] | None = None, max_asks: int = 1024) -> tuple[int, str | None]:
        """Ask until ``room`` more tickets are in flight, ``stop()`` names a reason, ``ask()``
        returns None ("exhausted") or ``max_asks`` proposals were made; answer hits and coalesce
        twins on the way, hand each ticket to ``launch``.  Returns (proposals asked, stop reason)."""
        target = len(self._inflight) + room
        for asked in range(max_asks):
            if len(self._inflight) >= target:
                return asked, None
            reason = stop() if stop is not None else None
            if reason is not None:
                return asked, reason
            prop = ask()
            if prop is None:
                return asked, "exhausted"
            ticket = self.offer(self.candidate(prop))
            if ticket is not None:
                launch(ticket)
        return max_asks, None

    # --- results -------------------------------------------------------------------------------
    def complete(self, task_id: int, raw: Mapping[str, Any], trial_id: str | None = None) -> EvalResult:
        """Fold the raw outcome of in-flight ``task_id``, finish it and every twin waiting on it
        (``trial_id``: the front end's name for the run, logged with the record)."""
        ticket = self._inflight.pop(task_id)
        del self._by_hash[ticket.hash]
        res = self.seam.complete(ticket, raw)
        self.finish(ticket.candidate, res, trial_id)
        for waiter in self._waiters.pop(ticket.hash, ()):
            self.finish(waiter.candidate, self.seam.coalesced(waiter, res))
        return res

    def complete_many(self, done: Sequence[tuple[int, Mapping[str, Any]]]) -> list[EvalResult]:
        """:meth:`complete` for several finished tasks (a batch): their results are folded into the
        cache in one write transaction, then each is finished (logged, told) in order."""
        if len(done) == 1:
            return [self.complete(*done[0])]
        tickets = []
        for task_id, _ in done:
            ticket = self._inflight.pop(task_id)
            del self._by_hash[ticket.hash]
            tickets.append(ticket)
        results = self.seam.complete_many([(t, raw) for t, (_, raw) in zip(tickets, done)])
        for ticket, res in zip(tickets, results):
            self.finish(ticket.candidate, res)
            for waiter in self._waiters.pop(ticket.hash, ()):
                self.finish(waiter.candidate, self.seam.coalesced(waiter, res))
        return results

    def run(self, tickets: Iterable[Ticket], runner: Any) -> None:
        """Submit ``tickets`` to a started ``runner`` and :meth:`pump` until nothing is in flight
        (a front end that offers a whole batch at once and waits for all of it)."""
        for t in tickets:
            runner.submit(t.candidate.id, t.candidate.text, t.candidate.genome)
        while self.in_flight:
            self.pump(runner)

    def pump(self, runner: Any, timeout: float | None = None) -> int:
        """Poll ``runner`` once (up to ``timeout`` s) and complete what it finished; how many."""
        done = runner.poll(timeout=timeout)
        if done:
            self.complete_many(done)
        return len(done)

    def finish(self, cand: Candidate, res: EvalResult, trial_id: str | None = None) -> Record:
        """Count, log and tell one finished candidate (exactly once per candidate)."""
        self.charged += res.charged
        if res.charged:
            self.charged_s += res.cost_s
            if res.info and res.info.get("screened") is True:
                self.screened += 1
        self.n_stall = 0 if res.charged else self.n_stall + 1
        stats = self.space.stats(cand.genome) if self._space_stats else None
        rec = Record.of(cand, res, t=None if self._clock is None else round(self._clock(), 6), stats=stats,
                        trial_id=trial_id)
        if self._log is not None:
            self._log(rec)
        self.n_done += 1
        if self._tell is not None:
            self._tell(cand, res)
        self._note_best(rec)
        return rec

    def _note_best(self, rec: Record) -> None:
        v = objective_value(rec, self.objective)
        if v is not None and (self.best is None or self.objective.better(v, self._best_v)):
            self.best, self._best_v = rec, v

    # --- state ---------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    def ticket(self, task_id: int) -> Ticket | None:
        return self._inflight.get(task_id)

    def restore(self, records: Sequence[Record], replay: Callable[[Candidate, EvalResult], None] | None = None,
                replay_from: int = 0) -> None:
        """Continue after ``records`` (a run log): refill the cache through the seam, re-tell
        records from index ``replay_from`` on to ``replay``, restore ids, lineage, counters, best.
        ``self.reconciled``: cache entries the refill repaired."""
        self.reconciled = self.seam.refill(records)
        for i, rec in enumerate(records):
            self._gen[rec.id] = rec.generation
            if replay is not None and i >= replay_from:
                cand, res = rec.candidate_and_result(self.space.from_text(rec.candidate))
                replay(cand, res)
            self._note_best(rec)
        self.next_id = max((r.id for r in records), default=-1) + 1
        self.n_done = len(records)
        self.charged = sum(r.charged for r in records)
        self.charged_s = sum(r.cost_s for r in records if r.charged)
        self.screened = sum(1 for r in records if r.charged and r.info and r.info.get("screened") is True)

    def pending_to_json(self) -> dict[str, Any]:
        """Tickets in flight and waiting, as JSON (a front end that checkpoints mid-flight)."""
        return {"live": {str(k): t.to_json() for k, t in self._inflight.items()},
                "waiters": [t.to_json() for ts in self._waiters.values() for t in ts]}

    def pending_from_json(self, d: Mapping[str, Any]) -> None:
        self._inflight = {}
        for t in (Ticket.from_json(x, self.space) for x in d["live"].values()):
            self._inflight[t.candidate.id] = t
            self._gen[t.candidate.id] = t.candidate.generation
        self._by_hash = {t.hash: k for k, t in self._inflight.items()}
        self._waiters = {}
        for x in d["waiters"]:
            t = Ticket.from_json(x, self.space)
            self._gen[t.candidate.id] = t.candidate.generation
            self._waiters.setdefault(t.hash, []).append(t)


def monotonic_clock(offset: float = 0.0) -> Callable[[], float]:
    """Seconds since now (plus ``offset``, e.g. the last ``t`` of a resumed log)."""
    t0 = time.perf_counter()
    return lambda: offset + time.perf_counter() - t0
