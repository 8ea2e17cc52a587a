"""Figures and reports of runs: ``automl plot``, ``automl compare`` and ``automl report``.

Everything is read from run directories (run.json + the candidate log); nothing here runs a
candidate.  The x axis of every progress curve is *charged* evaluations (the budget's unit): the
best-so-far and the cumulative cache-hit rate share it, so a flat stretch of best-so-far next to a
rising hit rate reads as "the search kept proposing what it had already seen".

matplotlib (the ``[plot]`` extra) is imported only when a figure is drawn; the series, counts and
references are plain data (:func:`series`, :func:`status_counts`, :func:`references`), so they can
be tested and reused without it.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import itertools
import json
import math
import os
from typing import Any, Sequence

from .api import read_run
from .errors import AutoMLError, ConfigError
from .objectives import best_so_far, feasible, pareto_front, value
from .report import run_objectives, summarize
from .types import HIT, MISS, OK, PARTIAL, Direction, Objective

#: How many objective pairs one figure draws (10 = every pair of 5 objectives).
MAX_PAIRS = 10


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra to install."""
    from ._optional import require

    matplotlib = require("matplotlib", "plots and reports")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- plain data ------------------------------------------------------------------------------------

def _objectives(meta: dict[str, Any], recs: list[dict[str, Any]], allow_import: bool) -> tuple[Objective, ...]:
    objs = run_objectives(meta, allow_import)
    if objs:
        return objs
    first = next((k for r in recs for k in (r.get("objectives") or {})), None)  # old runs: minimise
    return (Objective(first, Direction.MIN),) if first else ()


def series(recs: Sequence[dict[str, Any]], objective: Objective | None) -> dict[str, list[Any]]:
    """Per logged candidate, in log order: ``charged`` (cumulative charged evaluations after it),
    ``best`` (best feasible value of ``objective`` so far, None before the first) and ``hit_rate``
    (cumulative % of candidates answered by the cache, hits only: partial hits were evaluated)."""
    charged, best, hit_rate = [], [], []
    n_charged = n_hit = 0
    so_far = best_so_far(recs, objective) if objective is not None else itertools.repeat(None)
    for i, (r, b) in enumerate(zip(recs, so_far), 1):
        n_charged += int(r.get("charged", 0))
        n_hit += r.get("cache") == HIT
        charged.append(n_charged)
        best.append(b)
        hit_rate.append(100.0 * n_hit / i)
    return {"charged": charged, "best": best, "hit_rate": hit_rate}


def status_counts(recs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """What became of the candidates, in a fixed order: ``ok``, ``failed`` (of which
    ``failed (transient)``: retried by a later run), ``invalid``, ``infeasible`` (ok but violating a
    constraint), then how the cache answered: ``evaluated`` (miss), ``re-evaluated`` (partial hit,
    folded into the mean), ``cached`` (hit), of which ``coalesced``: answered by waiting on an
    in-flight twin's evaluation rather than from the stored cache (logs written before this was
    recorded count them as plain hits).
    Zero entries are kept, so tables and bars line up across runs."""
    out = {"ok": 0, "failed": 0, "failed (transient)": 0, "invalid": 0, "infeasible": 0,
           "evaluated": 0, "re-evaluated": 0, "cached": 0, "coalesced": 0}
    for r in recs:
        st = r.get("status")
        if st in out:
            out[st] += 1
        else:  # a status a newer writer added: shown under its own name
            out[str(st)] = out.get(str(st), 0) + 1
        if st == "failed" and r.get("failure") == "transient":
            out["failed (transient)"] += 1
        if st == OK and not feasible(r):
            out["infeasible"] += 1
        key = {str(MISS): "evaluated", str(PARTIAL): "re-evaluated", str(HIT): "cached"}.get(str(r.get("cache")))
        if key:
            out[key] += 1
        if r.get("coalesced"):
            out["coalesced"] += 1
    return out


def references(meta: dict[str, Any], allow_import: bool = False) -> dict[str, dict[str, Any]]:
    """The run's evaluator's :meth:`~automl.evaluator.Evaluator.reference` values (e.g. NB201's
    optimum, AdamW = 1.0 for the optimizer proxy), from the evaluator built with the run's options;
    {} when it names none or is not available here (a plugin not installed, or a ``module:Class``
    path without ``allow_import``: reading a run never imports code it names)."""
    ev = meta["config"]["evaluator"]
    from .registry import create

    try:
        evaluator = create("evaluator", ev["name"], allow_import, **ev.get("options", {}))
    except (AutoMLError, ImportError):
        return {}
    try:
        return {k: {"value": float(r["value"]), "label": str(r["label"])} for k, r in evaluator.reference().items()}
    finally:
        evaluator.close()


def _title(meta: dict[str, Any]) -> str:
    c = meta["config"]
    return f"{c['space']['name']} / {c['evaluator']['name']} / {c['strategy']['name']} (seed {c.get('seed')})"


# --- drawing ---------------------------------------------------------------------------------------

def _ref_line(ax: Any, name: str, ref: dict[str, Any] | None, axis: str = "y") -> None:
    if ref is None:
        return
    line = ax.axhline if axis == "y" else ax.axvline
    line(ref["value"], color="0.3", ls="--", lw=1, label=f"{ref['label']}: {name} {ref['value']:.6g}")


def _draw_progress(ax_best: Any, ax_hit: Any, s: dict[str, list[Any]], objective: Objective, label: str | None,
                   color: str | None = None) -> None:
    xs = [c for c, b in zip(s["charged"], s["best"]) if b is not None]
    ys = [b for b in s["best"] if b is not None]
    if xs:
        ax_best.step(xs, ys, where="post", label=label, color=color)
    ax_hit.plot(s["charged"], s["hit_rate"], label=label, color=color)


def _label_progress(ax_best: Any, ax_hit: Any, objective: Objective, ref: dict[str, Any] | None,
                    values: list[float]) -> None:
    _ref_line(ax_best, objective.name, ref)
    ax_best.set_xlabel("charged evaluations")
    ax_best.set_ylabel(f"best {objective.name} so far ({objective.direction.value})")
    every = values + ([ref["value"]] if ref else [])
    if objective.direction is Direction.MIN and every and min(every) > 0 and max(every) / min(every) > 20:
        ax_best.set_yscale("log")
    ax_hit.set_xlabel("charged evaluations")
    ax_hit.set_ylabel("cumulative cache-hit rate (%)")
    ax_hit.set_ylim(0, 100)
    if ax_best.get_legend_handles_labels()[0]:
        ax_best.legend(fontsize=8)


def _draw_status(ax: Any, counts: dict[str, int]) -> None:
    names = list(counts)[::-1]
    vals = [counts[k] for k in names]
    colors = ["C2" if k in ("ok", "evaluated") else "C3" if k.startswith("failed") or k in ("invalid", "infeasible")
              else "C0" for k in names]
    bars = ax.barh(names, vals, color=colors)
    for b, v in zip(bars, vals):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("candidates")
    ax.set_title("status and cache outcome", fontsize=10)
    ax.set_xlim(0, max(vals + [1]) * 1.2)


def _draw_pairs(axes: Sequence[Any], recs: Sequence[dict[str, Any]], objs: Sequence[Objective],
                refs: dict[str, dict[str, Any]]) -> None:
    """One panel per pair of objectives: every feasible ok candidate, the members of the full
    (all-objective) Pareto front, and the front of the pair itself."""
    dirs = {o.name: o.direction.value for o in objs}
    ok = [r for r in recs if r.get("status") == OK and feasible(r)
          and all(value(r, o) is not None for o in objs)]
    full = {id(r) for r in pareto_front(ok, dirs)}
    for ax, (a, b) in zip(axes, itertools.combinations(objs, 2)):
        pts = [(value(r, a), value(r, b)) for r in ok]
        if pts:
            ax.scatter(*zip(*pts), s=5, alpha=0.3, color="0.5", label="candidates")
        members = [(value(r, a), value(r, b)) for r in ok if id(r) in full]
        if members:
            ax.scatter(*zip(*members), s=14, color="C1", label=f"Pareto front ({len(objs)} objectives)")
        pair = sorted((value(r, a), value(r, b)) for r in pareto_front(ok, {a.name: dirs[a.name], b.name: dirs[b.name]}))
        if pair:
            ax.plot(*zip(*pair), color="C3", marker="o", ms=3, lw=1, label=f"front of {a.name}, {b.name}")
        _ref_line(ax, a.name, refs.get(a.name), "x")
        _ref_line(ax, b.name, refs.get(b.name), "y")
        ax.set_xlabel(f"{a.name} ({a.direction.value})")
        ax.set_ylabel(f"{b.name} ({b.direction.value})")
        ax.legend(fontsize=7)


def progress_figure(run_dir: str, allow_import: bool = False) -> Any:
    """The figure of one run (a matplotlib Figure): best-so-far and cumulative cache-hit rate
    against charged evaluations, status counts, and with several objectives one Pareto panel per
    pair of objectives; reference lines where the evaluator knows some."""
    plt = _pyplot()
    meta, recs = read_run(run_dir)
    objs = _objectives(meta, recs, allow_import)
    refs = references(meta, allow_import)
    primary = objs[0] if objs else None
    pairs = list(itertools.combinations(objs, 2))[:MAX_PAIRS] if len(objs) > 1 else []
    ncols = 3
    nrows = 1 + math.ceil(len(pairs) / ncols)
    fig = plt.figure(figsize=(5 * ncols, 4 * nrows))
    ax_best = fig.add_subplot(nrows, ncols, 1)
    ax_hit = fig.add_subplot(nrows, ncols, 2, sharex=ax_best)
    ax_status = fig.add_subplot(nrows, ncols, 3)
    s = series(recs, primary)
    if primary is not None:
        _draw_progress(ax_best, ax_hit, s, primary, None)
        _label_progress(ax_best, ax_hit, primary, refs.get(primary.name), [b for b in s["best"] if b is not None])
    _draw_status(ax_status, status_counts(recs))
    _draw_pairs([fig.add_subplot(nrows, ncols, ncols + 1 + i) for i in range(len(pairs))], recs, objs, refs)
    if len(objs) > 1 and len(pairs) < len(objs) * (len(objs) - 1) // 2:
        fig.text(0.5, 0.005, f"first {MAX_PAIRS} of {len(objs) * (len(objs) - 1) // 2} objective pairs shown",
                 ha="center", fontsize=8)
    fig.suptitle(_title(meta))
    fig.tight_layout()
    return fig


def _save(fig: Any, output: str) -> str:
    plt = _pyplot()
    try:
        fig.savefig(output, dpi=100)
    finally:
        plt.close(fig)
    return output


def plot(run_dir: str, output: str | None = None, allow_import: bool = False) -> str:
    """Write :func:`progress_figure` as a PNG (default ``<run_dir>/progress.png``); returns its path."""
    fig = progress_figure(run_dir, allow_import)
    return _save(fig, output or os.path.join(run_dir, "progress.png"))


def compare_figure(run_dirs: Sequence[str], labels: Sequence[str] | None = None, allow_import: bool = False) -> Any:
    """Several runs on one figure: best-so-far and cumulative cache-hit rate against charged
    evaluations, plus the status counts side by side.  The runs must share their primary objective
    (name and direction); reference lines are drawn when every run's evaluator agrees on them."""
    if not run_dirs:
        raise ConfigError("compare needs at least one run directory")
    if labels is not None and len(labels) != len(run_dirs):
        raise ConfigError(f"{len(labels)} labels for {len(run_dirs)} runs")
    plt = _pyplot()
    loaded = [read_run(d) for d in run_dirs]
    objs = [_objectives(m, r, allow_import) for m, r in loaded]
    primaries = {(o[0].name, o[0].direction) if o else None for o in objs}
    if len(primaries) != 1 or None in primaries:
        named = ", ".join(f"{d}: {o[0].name} ({o[0].direction.value})" if o else f"{d}: none"
                          for d, o in zip(run_dirs, objs))
        raise ConfigError(f"the runs do not share a primary objective, so their curves cannot share an axis: {named}")
    primary = objs[0][0]
    all_refs = [references(m, allow_import).get(primary.name) for m, _ in loaded]
    ref = all_refs[0] if all(r == all_refs[0] for r in all_refs) else None
    labels = list(labels) if labels is not None else _labels(run_dirs, [m for m, _ in loaded])
    fig, (ax_best, ax_hit, ax_status) = plt.subplots(1, 3, figsize=(16, 4.5))
    ax_hit.sharex(ax_best)
    values: list[float] = []
    counts = []
    for i, ((_meta, recs), label) in enumerate(zip(loaded, labels)):
        s = series(recs, primary)
        _draw_progress(ax_best, ax_hit, s, primary, label, color=f"C{i % 10}")
        values += [b for b in s["best"] if b is not None]
        counts.append(status_counts(recs))
    _label_progress(ax_best, ax_hit, primary, ref, values)
    ax_hit.legend(fontsize=8)
    keys = [k for k in counts[0] if any(c.get(k) for c in counts)] or list(counts[0])
    height = 0.8 / len(counts)
    for i, (c, label) in enumerate(zip(counts, labels)):
        ax_status.barh([j + i * height for j in range(len(keys))], [c.get(k, 0) for k in keys], height=height,
                       label=label, color=f"C{i % 10}")
    ax_status.set_yticks([j + 0.4 - height / 2 for j in range(len(keys))], keys)
    ax_status.invert_yaxis()
    ax_status.set_xlabel("candidates")
    ax_status.set_title("status and cache outcome", fontsize=10)
    fig.suptitle(f"{len(run_dirs)} runs: best {primary.name} ({primary.direction.value}) vs charged evaluations")
    fig.tight_layout()
    return fig


def _labels(run_dirs: Sequence[str], metas: Sequence[dict[str, Any]]) -> list[str]:
    """Each run's folder name, with its strategy and seed when the names alone are not distinct."""
    names = [os.path.basename(os.path.normpath(d)) or d for d in run_dirs]
    if len(set(names)) < len(names):
        names = [os.path.normpath(d) for d in run_dirs]
    return [f"{n} ({m['config']['strategy']['name']}, seed {m['config'].get('seed')})" for n, m in zip(names, metas)]


def compare(run_dirs: Sequence[str], output: str = "compare.png", labels: Sequence[str] | None = None,
            allow_import: bool = False) -> str:
    """Write :func:`compare_figure` as a PNG; returns its path."""
    return _save(compare_figure(run_dirs, labels, allow_import), output)


# --- the HTML report -------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;font-size:.85em}img{max-width:100%}.muted{color:#777;font-size:.9em}"""


def _png_b64(fig: Any) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return html.escape(str(v))


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], pre_cols: Sequence[int] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for j, v in enumerate(row):
            if j in pre_cols:
                cells.append(f"<td><pre>{html.escape(str(v))}</pre></td>")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="n">{_num(v)}</td>')
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def report_html(run_dir: str, top: int = 10, allow_import: bool = False) -> str:
    """A self-contained HTML page for one run: the figure (embedded PNG), statistics, status
    counts, reference values, the best distinct candidates and, with several objectives, the Pareto
    front.  No external resource: styles inline, images as data: URIs."""
    meta, recs = read_run(run_dir)
    s = summarize(run_dir, top, (meta, recs), allow_import)
    objs = _objectives(meta, recs, allow_import)
    refs = references(meta, allow_import)
    image = _png_b64(progress_figure(run_dir, allow_import))
    cfg = meta["config"]
    stats = [("candidates", s["candidates"]), ("charged evaluations", s["charged_evaluations"]),
             ("distinct functions", s["distinct_functions"]), ("cache hit rate", f"{100 * s['hit_rate']:.1f} %"),
             ("evaluations saved", s["evaluations_saved"]), ("evaluator seconds spent", float(s["evaluator_seconds"])),
             ("evaluator seconds saved (approx.)", float(s["evaluator_seconds_saved"]))]
    if "dead_statement_fraction" in s:
        stats.append(("dead statements (mean per candidate)", f"{100 * s['dead_statement_fraction']:.1f} %"))
    if "hypervolume" in s:
        stats.append(("hypervolume (reference: the run's nadir + 10 % of each range)", float(s["hypervolume"]["value"])))
    setup = [(k, f"{cfg[k]['name']} {json.dumps(cfg[k].get('options'))}" if cfg[k].get("options") else cfg[k]["name"])
             for k in ("space", "evaluator", "strategy")]
    setup += [("seed", str(cfg.get("seed"))),
             ("objectives", ", ".join(f"{o.name} ({o.direction.value})" for o in objs))]
    names = [o.name for o in objs] or sorted({k for b in s["best"] for k in b["objectives"]})
    best_rows = [[i, b["id"], *[b["objectives"].get(k, "") for k in names], b["candidate"]]
                 for i, b in enumerate(s["best"], 1)]
    parts = [f"<h1>Run {html.escape(os.path.basename(os.path.normpath(run_dir)))}</h1>",
             f'<p class="muted">{html.escape(_title(meta))} &middot; {html.escape(os.path.abspath(run_dir))} &middot; '
             f"report written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
             f'<img alt="best so far, cache-hit rate, status counts and Pareto panels" '
             f'src="data:image/png;base64,{image}">',
             "<h2>Setup</h2>", _table(None, setup),
             "<h2>Statistics</h2>", _table(None, stats),
             "<h2>Status counts</h2>", _table(["outcome", "candidates"], list(status_counts(recs).items()))]
    if refs:
        parts += ["<h2>Reference values</h2>",
                  _table(["objective", "reference", "value"], [[k, r["label"], r["value"]] for k, r in refs.items()])]
    parts += [f"<h2>Best {len(s['best'])} distinct candidates by {html.escape(str(s['primary']))}</h2>",
              _table(["#", "id", *names, "candidate"], best_rows, pre_cols=(len(names) + 2,))
              if best_rows else "<p>No successful candidate.</p>"]
    if s.get("pareto_front") is not None:
        front = s["pareto_front"]
        keys = s.get("front_objectives") or names
        parts += [f"<h2>Pareto front ({len(front)} points over {html.escape(', '.join(keys))})</h2>",
                  _table(["id", *keys, "candidate"],
                         [[r["id"], *[r["objectives"].get(k, "") for k in keys], r["candidate"]] for r in front],
                         pre_cols=(len(keys) + 1,))]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(_title(meta))}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def report(run_dir: str, output: str | None = None, top: int = 10, allow_import: bool = False) -> str:
    """Write :func:`report_html` to ``output`` (default ``<run_dir>/report.html``); returns its path."""
    output = output or os.path.join(run_dir, "report.html")
    page = report_html(run_dir, top, allow_import)
    with open(output, "w", encoding="utf-8") as f:
        f.write(page)
    return output
