"""Reading a run back: the ``automl show`` summary and the ``automl plot`` figure."""
from __future__ import annotations

import json
import os
import warnings
from typing import Any

from .api import load_run
from .hypervolume import hypervolume
from .objectives import best_so_far, feasible, fitness, pareto_front, value
from .policy import seconds_saved
from .types import HIT, MISS, OK, PARTIAL, Direction, Objective, objectives_of


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
        return create("evaluator", ev["name"], allow_import, **ev["options"]).objective_list()
    except (AutoMLError, ImportError):
        warnings.warn(f"run.json names no objective directions and evaluator {ev['name']!r} is not available "
                      "here: ranking assumes every objective is minimised", stacklevel=2)
        return ()


def _directions(meta: dict[str, Any], allow_import: bool = False) -> dict[str, str]:
    return {o.name: o.direction.value for o in run_objectives(meta, allow_import)}


def summarize(run_dir: str, top: int = 5, loaded: tuple | None = None, allow_import: bool = False) -> dict[str, Any]:
    """Counts, hit rates, evaluations saved and the best candidates of a run (from its log;
    ``loaded`` is its ``load_run`` result when the caller already has it)."""
    meta, recs = loaded or load_run(run_dir)
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
           "cache": by_cache, "status": by_status,
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
             f"cache: {s['cache'][HIT]} hits, {s['cache'][PARTIAL]} partial, {s['cache'][MISS]} misses   "
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
    """Write a PNG: best-so-far vs charged evaluations, cumulative cache-hit rate, and the Pareto
    front when the evaluator has several objectives.  Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, recs = load_run(run_dir)
    dirs = _directions(meta, allow_import)
    primary = next(iter(dirs), None) or next((k for r in recs for k in (r.get("objectives") or {})), "objective")
    objective = Objective(primary, Direction(dirs.get(primary, "min")))
    maximize = objective.direction is Direction.MAX
    multi = len(dirs) > 1
    fig, axes = plt.subplots(1, 3 if multi else 2, figsize=(15 if multi else 10, 4))
    xs, ys, charged = [], [], 0
    hit_x, hit_y, n_hit = [], [], 0
    so_far = best_so_far(recs, objective)
    for i, (r, best_v) in enumerate(zip(recs, so_far), 1):
        charged += int(r.get("charged", 0))
        n_hit += r.get("cache") == HIT
        hit_x.append(i)
        hit_y.append(100.0 * n_hit / i)
        if best_v is not None:
            xs.append(charged)
            ys.append(best_v)
    axes[0].step(xs, ys, where="post")
    axes[0].set_xlabel("charged evaluations")
    axes[0].set_ylabel(f"best {primary} so far")
    if not maximize and ys and min(ys) > 0:
        axes[0].set_yscale("log")
    axes[1].plot(hit_x, hit_y)
    axes[1].set_xlabel("candidates")
    axes[1].set_ylabel("cumulative cache-hit rate (%)")
    if multi:
        a, b = list(dirs)[:2]
        ok = [r for r in recs if r["status"] == OK and a in r["objectives"] and b in r["objectives"]
              and feasible(r)]
        pts = [(r["objectives"][a], r["objectives"][b]) for r in ok]
        front = [(r["objectives"][a], r["objectives"][b]) for r in pareto_front(ok, {a: dirs[a], b: dirs[b]})]
        if pts:
            axes[2].scatter(*zip(*pts), s=4, alpha=0.3, label="candidates")
        if front:
            axes[2].step(*zip(*front), where="post", color="C3", marker="o", ms=3, label="Pareto front")
        axes[2].set_xlabel(a)
        axes[2].set_ylabel(b)
        if Direction(dirs[a]) is Direction.MIN and pts and min(p[0] for p in pts) > 0:
            axes[2].set_xscale("log")
        axes[2].legend()
    fig.suptitle(f"{meta['config']['space']['name']} / {meta['config']['evaluator']['name']} / "
                 f"{meta['config']['strategy']['name']}")
    fig.tight_layout()
    output = output or os.path.join(run_dir, "progress.png")
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def reproduce(run_dir: str, top: int = 1, allow_import: bool = False) -> list[dict[str, Any]]:
    """The run's ``top`` best distinct candidates, each simplified by its space (the simplified
    form is checked to hash equal to the logged one).  Each dict has the log record's id,
    objectives, hash, the logged text and the simplified text."""
    from .errors import AutoMLError
    from .hashing import Hasher
    from .registry import create

    loaded = load_run(run_dir)
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
