"""Funnel selection (Chen et al. 2023, section 2.3): the proxy tasks a search runs on are small,
so programs that win there may only be exploiting them.  Re-evaluate the top-K distinct programs
of a run (one per functional digest) on a larger version of the same tasks (``scale``, default
10: about 10x the parameters and 10x the steps), next to AdamW on the same, and promote only the
programs that still beat AdamW there.

    automl funnel runs/opt --top 10 --scale 10
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

from automl.errors import ConfigError, RunDirError

FUNNEL_FILE = "funnel.json"


def top_programs(records: list[dict[str, Any]], top: int, objective: str = "val_loss",
                 tol: float = 0.0) -> list[dict[str, Any]]:
    """The ``top`` best valid records by ``objective`` (min), one per functional digest; with
    ``tol`` > 0 also one per objective value within a relative ``tol`` (programs whose digests
    differ only through float rounding, e.g. ``x + 1e-9``, score alike and would fill the list)."""
    ok = [r for r in records if r.get("status") == "ok"
          and isinstance((r.get("objectives") or {}).get(objective), (int, float))
          and math.isfinite(r["objectives"][objective])]
    ok.sort(key=lambda r: (r["objectives"][objective], r["id"]))
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for r in ok:
        h = r.get("hash") or r["candidate"]
        v = r["objectives"][objective]
        if h in seen or (tol > 0 and out and abs(v - out[-1]["objectives"][objective]) <= tol * abs(v)):
            continue
        seen.add(h)
        out.append(r)
        if len(out) >= top:
            break
    return out


def funnel(run_dir: str, top: int = 10, scale: float = 10.0, *, margin: float = 0.0, heldout: bool = False,
           device: str | None = None, steps: int | None = None, write: bool = True,
           progress: bool = False) -> dict[str, Any]:
    """Re-evaluate the run's ``top`` distinct programs at ``scale`` next to AdamW; promote those
    whose mean loss ratio to AdamW there is below ``1 - margin``.

    The run's own evaluator options (tasks, steps, lr, seed, device) are kept; ``scale`` (and
    ``device``, ``steps`` when given) replace theirs.  ``heldout=True`` also scores each promoted
    program on the held-out tasks (``heldout_score``).  Writes ``<run_dir>/funnel.json`` (unless
    ``write=False``) and returns the same dict: ``options``, ``adamw`` (per-task losses at
    scale), ``candidates`` (rows: id, hash, candidate, search_val_loss, funnel_val_loss, tasks,
    promoted, heldout) and ``promoted`` (ids).
    """
    from automl.api import read_run

    from .proxy import OptimizerProxy

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer, got {top!r}")
    if not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ConfigError(f"margin must be in [0, 1), got {margin!r}")
    meta, records = read_run(run_dir)
    cfg = meta["config"]
    if cfg["evaluator"]["name"] != OptimizerProxy.name:
        raise RunDirError(f"{run_dir} was searched with evaluator {cfg['evaluator']['name']!r}; the funnel "
                          f"re-evaluates {OptimizerProxy.name!r} runs")
    result = funnel_records(records, cfg["evaluator"]["options"], top, scale, margin=margin, heldout=heldout,
                            device=device, steps=steps, progress=progress)
    if not result["candidates"]:
        raise RunDirError(f"{run_dir} has no valid candidates to re-evaluate")
    result = {"run_dir": run_dir, **result}
    if write:
        path = os.path.join(run_dir, FUNNEL_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(jsonable(result), f, indent=1)
        os.replace(tmp, path)
        result["path"] = path
    return result


def funnel_records(records: list[dict[str, Any]], options: Mapping[str, Any], top: int = 10, scale: float = 10.0, *,
                   margin: float = 0.0, heldout: bool = False, device: str | None = None, steps: int | None = None,
                   progress: bool = False, tol: float = 0.0) -> dict[str, Any]:
    """:func:`funnel` on log-record-like dicts (``id``, ``candidate``, ``objectives``, ``status``,
    optional ``hash``) scored with the optimizer-proxy ``options`` they were searched with (e.g.
    trials of a tuner that is not an automl run).  The batched path's ``batch``/``screen`` are
    dropped: the funnel re-evaluates a few programs one at a time (the reference path); ``tol``:
    see :func:`top_programs`.  Returns
    :func:`funnel`'s dict without ``run_dir``; ``candidates`` is empty when no record is valid."""
    from .proxy import OptimizerProxy, heldout_score

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a positive integer, got {top!r}")
    if not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ConfigError(f"margin must be in [0, 1), got {margin!r}")
    base_opts = {k: v for k, v in OptimizerProxy(**options).options().items() if k not in ("batch", "screen")}
    opts = {**base_opts, "scale": float(scale), "normalize": True}
    if device is not None:
        opts["device"] = device
    if steps is not None:
        opts["steps"] = int(steps)
    ev = OptimizerProxy(**opts)
    chosen = top_programs(records, top, ev.primary, tol)

    t0 = time.perf_counter()
    adamw = {t: ev.baseline(t) for t in ev.tasks}
    rows = []
    for i, r in enumerate(chosen, 1):
        t1 = time.perf_counter()
        det = ev.details(_genome(r["candidate"]))
        ratios = [d["ratio"] for d in det.values()]
        diverged = any(d["diverged"] for d in det.values())
        score = math.nan if diverged else sum(ratios) / len(ratios)
        promoted = math.isfinite(score) and score < 1.0 - margin
        row = {"id": r["id"], "hash": r.get("hash"), "candidate": r["candidate"],
               "search_val_loss": r["objectives"]["val_loss"], "funnel_val_loss": score,
               "tasks": {t: {k: d[k] for k in ("loss", "acc", "ratio", "diverged")} for t, d in det.items()},
               "promoted": promoted, "seconds": time.perf_counter() - t1}
        if heldout and promoted:
            h = heldout_score(r["candidate"], seed=ev.seed, device=ev.device, lr=ev.lr)
            row["heldout"] = {"score": h["score"], "tasks": {t: d["ratio"] for t, d in h["tasks"].items()}}
        rows.append(row)
        if progress:
            print(f"  [{i}/{len(chosen)}] #{r['id']}: {score:.4f}", flush=True)
    return {"top": top, "scale": float(scale), "margin": float(margin),
            "options": ev.options(), "adamw": adamw, "candidates": rows,
            "promoted": [row["id"] for row in rows if row["promoted"]],
            "seconds": time.perf_counter() - t0}


def _genome(text: str):
    from search_spaces.programs.optim import load_program

    return load_program(text)[0]


def jsonable(x: Any) -> Any:
    """nan/inf become null (JSON has no such numbers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def _fmt(v: Any) -> str:
    return "diverged" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def format_table(result: Mapping[str, Any]) -> str:
    """The funnel result as a plain-text table (one row per program, AdamW first)."""
    tasks = list(result["adamw"])
    head = f"{'':3s}{'id':>7s}  {'search':>8s}  {'x' + format(result['scale'], 'g') + ' mean':>9s}  " + \
        "  ".join(f"{t:>9s}" for t in tasks) + "  promoted"
    lines = [f"funnel: top {len(result['candidates'])} distinct programs of {result['run_dir']} at scale "
             f"{result['scale']:g} (loss / AdamW's loss; < {1 - result['margin']:g} is promoted)", head,
             f"{'':3s}{'AdamW':>7s}  {1.0:8.4f}  {1.0:9.4f}  " + "  ".join(f"{result['adamw'][t]:9.4f}" for t in tasks)
             + "  (raw losses)"]
    for k, row in enumerate(result["candidates"], 1):
        cells = "  ".join(f"{_fmt(row['tasks'][t]['ratio']):>9s}" for t in tasks)
        extra = ""
        if "heldout" in row:
            extra = f"  held-out {_fmt(row['heldout']['score'])}"
        lines.append(f"{k:<3d}{'#' + str(row['id']):>7s}  {_fmt(row['search_val_loss']):>8s}  "
                     f"{_fmt(row['funnel_val_loss']):>9s}  {cells}  {'yes' if row['promoted'] else 'no'}{extra}")
    lines.append(f"promoted: {len(result['promoted'])} of {len(result['candidates'])}"
                 + (f"  -> {result['path']}" if result.get("path") else ""))
    best = [r for r in result["candidates"] if r["promoted"]]
    if best:
        b = min(best, key=lambda r: r["funnel_val_loss"])
        lines.append(f"best promoted #{b['id']} ({_fmt(b['funnel_val_loss'])} at scale {result['scale']:g}):")
        lines.append("  " + b["candidate"].strip().replace("\n", "\n  "))
    return "\n".join(lines)


class FunnelCommand:
    """``automl funnel RUN_DIR``: a CLI subcommand this plugin adds through the registry
    (``automl.registry.register_command``)."""

    description = ("Funnel selection (Chen et al. 2023): re-evaluate the top-K distinct programs of a run (one "
                   "per functional digest) on a SCALE-times larger version of its proxy tasks, next to AdamW on "
                   "the same, and promote only those that still beat AdamW.  Prints a table and writes "
                   "RUN_DIR/funnel.json.  Needs a run of the optimizer-proxy evaluator.")

    @staticmethod
    def add_arguments(p: Any) -> None:
        p.description = FunnelCommand.description
        p.epilog = "example:\n  automl funnel runs/opt --top 10 --scale 10 --heldout"
        p.add_argument("run_dir")
        p.add_argument("--top", type=int, default=10, help="how many distinct best programs to re-evaluate "
                       "(default 10)")
        p.add_argument("--scale", type=float, default=10.0, help="task size multiplier: about SCALE x the "
                       "parameters and SCALE x the steps (default 10)")
        p.add_argument("--margin", type=float, default=0.0, help="promote only programs whose loss ratio to AdamW "
                       "is below 1 - MARGIN (default 0)")
        p.add_argument("--heldout", action="store_true", help="also score promoted programs on the held-out tasks")
        p.add_argument("--device", help="override the run's evaluator device (cpu, cuda, cuda:1)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    @staticmethod
    def run(a: Any) -> int:
        import sys

        from automl.api import read_run
        from automl.errors import AutoMLError

        meta, _ = read_run(a.run_dir)
        name = meta["config"]["evaluator"]["name"]
        if name != "optimizer-proxy":
            raise AutoMLError(f"funnel selection needs a run of the optimizer-proxy evaluator, not {name!r}")
        result = funnel(a.run_dir, top=a.top, scale=a.scale, margin=a.margin, heldout=a.heldout, device=a.device,
                        progress=not a.json and sys.stderr.isatty())
        if a.json:
            with open(result["path"], encoding="utf-8") as f:
                print(f.read())
        else:
            print(format_table(result))
        return 0
