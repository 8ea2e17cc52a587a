"""Reading a run back: the ``automl show`` summary, ``automl reproduce``; the figures and the HTML
report are in :mod:`automl.plots`."""
from __future__ import annotations

import json
import warnings
from typing import Any

from .api import read_run
from .hypervolume import hypervolume
from .objectives import feasible, fitness, pareto_front, value
from .policy import seconds_saved
from .types import HIT, MISS, PARTIAL, Direction, Objective, objectives_of

Loaded = tuple[dict[str, Any], list[dict[str, Any]]]  # (run.json, log records): what read_run returns


def run_objectives(meta: dict[str, Any], allow_import: bool = False) -> tuple[Objective, ...]:
    """The run's objectives (name, direction) in order, as stored in its run.json.  Runs written
    before directions were stored: from the evaluator built with the run's options when it is
    registered here, else () with a warning (the reader then ranks by minimising)."""
    cfg = meta["config"]
    if cfg.get("objectives"):
        return objectives_of(cfg["objectives"])
    from .errors import AutoMLError
    from .registry import create

    ev = cfg["evaluator"]
    try:
        objectives: tuple[Objective, ...] = tuple(create("evaluator", ev["name"], allow_import, **ev["options"])
                                                  .objective_list())
        return objectives
    except (AutoMLError, ImportError):
        warnings.warn(f"run.json names no objective directions and evaluator {ev['name']!r} is not available "
                      "here: ranking assumes every objective is minimised", stacklevel=2)
        return ()


def _directions(meta: dict[str, Any], allow_import: bool = False) -> dict[str, str]:
    return {o.name: o.direction.value for o in run_objectives(meta, allow_import)}


def summarize(run_dir: str, top: int = 5, loaded: Loaded | None = None, allow_import: bool = False) -> dict[str, Any]:
    """Counts, hit rates, evaluations saved and the best candidates of a run (from its log;
    ``loaded`` is its ``read_run`` result when the caller already has it)."""
    meta, recs = loaded or read_run(run_dir)
    dirs = _directions(meta, allow_import)
    primary: str | None = next(iter(dirs), None) or next((k for r in recs for k in (r.get("objectives") or {})),
                                                         None)
    objective = Objective(primary or "", Direction(dirs.get(primary or "", "min")))
    by_cache = {k: sum(1 for r in recs if r.get("cache") == k) for k in (MISS, PARTIAL, HIT)}
    by_status: dict[str, int] = {}
    for r in recs:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    charged = sum(int(r.get("charged", 0)) for r in recs)
    real = [r for r in recs if r.get("charged")]
    seconds_saved = _seconds_saved(recs)
    ok = [r for r in recs if value(r, objective) is not None]
    # best distinct functions: one row per digest
    seen, best = set(), []
    for r in sorted((r for r in ok if feasible(r)), key=lambda r: -fitness(r, objective)):
        if r.get("hash") in seen:
            continue
        seen.add(r.get("hash"))
        best.append({"id": r["id"], primary: r["objectives"][primary], "objectives": r["objectives"],
                     "candidate": r["candidate"], "hash": r.get("hash")})
        if len(best) >= top:
            break
    if len(dirs) > 1:  # constrained runs: only feasible results (no constraint violated) make the front
        ok_feasible = [r for r in ok if feasible(r)]
        out_front = pareto_front(ok_feasible, dirs)
    dead = [r["stats"]["dead_fraction"] for r in recs if "dead_fraction" in (r.get("stats") or {})]
    out = {"run_dir": run_dir, "space": meta["config"]["space"]["name"],
           "evaluator": meta["config"]["evaluator"]["name"], "strategy": meta["config"]["strategy"]["name"],
           "seed": meta["config"]["seed"], "candidates": len(recs), "charged_evaluations": charged,
           "cache": by_cache, "status": by_status, "coalesced": sum(1 for r in recs if r.get("coalesced")),
           "hit_rate": by_cache[HIT] / len(recs) if recs else 0.0,
           "distinct_functions": len({r.get("hash") for r in recs if r.get("hash")}),
           "evaluations_saved": by_cache[HIT], "evaluator_seconds": sum(r.get("cost_s", 0.0) for r in real),
           "evaluator_seconds_saved": seconds_saved, "primary": primary, "best": best}
    screened = [r for r in real if (r.get("info") or {}).get("screened") is True]
    if screened:  # an evaluator's cheap filter rejected these before the full evaluation
        out["screened"] = {"candidates": len(screened), "evaluator_seconds": sum(r.get("cost_s", 0.0)
                                                                                   for r in screened)}
    if dead:
        out["dead_statement_fraction"] = sum(dead) / len(dead)
    if len(dirs) > 1:
        out["pareto_front"] = [{"id": r["id"], "objectives": r["objectives"], "candidate": r["candidate"]}
                               for r in out_front]
        out["infeasible"] = len(ok) - len(ok_feasible)
        keys = list(dirs)
        out["front_objectives"] = keys
        pts = [[r["objectives"][k] for k in keys] for r in ok_feasible if all(k in r["objectives"] for k in keys)]
        if pts:  # reference point: the run's feasible nadir, pushed out by 10 % of each objective's range
            # (of the value itself when the range is 0)
            pad = [0.1 * ((max(c) - min(c)) or abs(c[0]) or 1.0) for c in zip(*pts)]
            ref = [max(c) + p if dirs[k] == "min" else min(c) - p for k, c, p in zip(keys, zip(*pts), pad)]
            out["hypervolume"] = {"value": hypervolume(pts, ref, [dirs[k] for k in keys]), "reference": dict(zip(keys, ref))}
    return out


def _seconds_saved(recs: list[dict[str, Any]]) -> float:
    """Sum of the hits' logged ``saved_s`` (see :func:`automl.policy.seconds_saved`: the same
    figure the session statistics report).  Logs written before ``saved_s`` existed: each hit
    saved the mean cost of its key's real evaluations in this log, less its own probe cost."""
    cost: dict[str, list[float]] = {}
    for r in recs:
        if r.get("charged") and r.get("hash"):
            cost.setdefault(r["hash"], []).append(r.get("cost_s", 0.0))
    total = 0.0
    for r in recs:
        if r.get("cache") != HIT:
            continue
        if "saved_s" in r:
            total += r["saved_s"]
        elif r.get("hash") in cost:
            c = cost[r["hash"]]
            total += seconds_saved(sum(c) / len(c), r.get("cost_s", 0.0))
    return total


def show(run_dir: str, top: int = 5, as_json: bool = False, allow_import: bool = False) -> str:
    s = summarize(run_dir, top, allow_import=allow_import)
    if as_json:
        return json.dumps(s, indent=1)
    lines = [f"run {s['run_dir']}  ({s['space']} / {s['evaluator']} / {s['strategy']}, seed {s['seed']})",
             f"candidates {s['candidates']}   charged evaluations {s['charged_evaluations']}   "
             f"distinct functions {s['distinct_functions']}",
             f"cache: {s['cache'][HIT]} hits"
             + (f" ({s['coalesced']} waited on an in-flight twin)" if s.get("coalesced") else "")
             + f", {s['cache'][PARTIAL]} partial, {s['cache'][MISS]} misses   "
             f"hit rate {100 * s['hit_rate']:.1f}%   evaluations saved {s['evaluations_saved']}   "
             f"evaluator seconds spent {s['evaluator_seconds']:.2f}, saved ~{s['evaluator_seconds_saved']:.2f}",
             "status: " + ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items()))]
    if "screened" in s:
        sc = s["screened"]
        lines.append(f"screened: {sc['candidates']} candidates rejected by the evaluator's cheap filter before the "
                     f"full evaluation, {sc['evaluator_seconds']:.2f} evaluator seconds")
    if "dead_statement_fraction" in s:
        lines.append(f"dead statements: {100 * s['dead_statement_fraction']:.1f}% of statements (mean per candidate)")
    if s.get("pareto_front"):
        front = s["pareto_front"]
        lines.append(f"Pareto front over {', '.join(s.get('front_objectives') or front[0]['objectives'])}: "
                     f"{len(front)} points"
                     + (f" ({s['infeasible']} infeasible results left out)" if s.get("infeasible") else ""))
        if "hypervolume" in s:
            ref = ", ".join(f"{k} {v:.6g}" for k, v in s["hypervolume"]["reference"].items())
            lines.append(f"hypervolume {s['hypervolume']['value']:.6g} "
                         f"(reference: the run's nadir + 10 % of each range: {ref})")
        for r in front[:top]:
            objs = ", ".join(f"{k} {v:.6g}" for k, v in r["objectives"].items())
            lines.append(f"  #{r['id']:<6d} {objs}   {r['candidate'].splitlines()[0][:60]}")
    if s["best"]:
        lines.append(f"best by {s['primary']}:")
        for i, b in enumerate(s["best"], 1):
            cand = b["candidate"].replace("\n", "\n" + " " * 8)
            lines.append(f"  {i}. #{b['id']:<6d} {b[s['primary']]:.6g}\n        {cand}")
    return "\n".join(lines)


def plot(run_dir: str, output: str | None = None, allow_import: bool = False) -> str:
    """Write the run's PNG (default ``<run_dir>/progress.png``): best-so-far and cumulative
    cache-hit rate against charged evaluations, status counts, one Pareto panel per pair of
    objectives, reference lines where the evaluator knows them (see :mod:`automl.plots`).
    Returns the PNG path."""
    from .plots import plot as _plot

    return _plot(run_dir, output, allow_import)


def reproduce(run_dir: str, top: int = 1, allow_import: bool = False) -> list[dict[str, Any]]:
    """The run's ``top`` best distinct candidates, each simplified by its space (the simplified
    form is checked to hash equal to the logged one).  Each dict has the log record's id,
    objectives, hash, the logged text and the simplified text."""
    from .errors import AutoMLError
    from .hashing import Hasher
    from .registry import create

    loaded = read_run(run_dir)
    meta = loaded[0]
    space = create("space", meta["config"]["space"]["name"], allow_import, **meta["config"]["space"]["options"])
    hasher = Hasher(space, seed=meta["config"].get("probe_seed"))
    out = []
    for b in summarize(run_dir, top, loaded, allow_import)["best"]:
        genome = space.from_text(b["candidate"])
        simple = space.simplify(genome)
        if hasher.functional(simple) != hasher.functional(genome):
            raise AutoMLError(f"simplifying candidate #{b['id']} changed what it computes (a bug in the space's "
                              "simplifier); its logged text is the one to trust")
        out.append({"id": b["id"], "objectives": b["objectives"], "hash": b["hash"], "candidate": b["candidate"],
                    "simplified": space.to_text(simple)})
    return out
