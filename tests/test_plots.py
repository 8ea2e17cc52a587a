"""Figures and reports (automl.plots): hit rate and best-so-far on the same charged-evaluations
axis, pairwise Pareto panels for >= 3 objectives, reference lines, status counts, multi-run
comparison, and a self-contained HTML report checked in a real headless browser when one is here."""
import base64
import html
import os
import re
import shutil
import sys

import pytest

pytest.importorskip("matplotlib")

from automl import plots, registry  # noqa: E402
from automl.cli import main  # noqa: E402
from automl.errors import AutoMLError, ConfigError  # noqa: E402
from automl.report import summarize  # noqa: E402
from automl.runners.base import PluginSpec  # noqa: E402
from automl.types import Direction, Objective  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _search(out, *args):
    assert main(["search", "--quiet", "--out", str(out), *args]) == 0
    return str(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    nb = ["--space", "nb201", "--evaluator", "nb201-tabular", "--budget", "40"]
    return {
        # small population + tournament: evolution re-proposes cells, so the cache answers some
        "evo": _search(d / "evo", *nb, "--population", "8", "--tournament", "4", "--seed", "1"),
        "random": _search(d / "random", *nb, "--strategy", "random", "--seed", "2"),
        # fails on k=3 and 5, NaN (invalid) on k=7: every status in one run
        "faulty": _search(d / "faulty", "--space", "automl.testing.toys:ToySpace", "--space-opt", "n=12",
                          "--evaluator", "automl.testing.toys:Quadratic", "--evaluator-opt", "fail_on=[3,5]",
                          "--evaluator-opt", "nan_on=[7]", "--strategy", "random", "--max-candidates", "40",
                          "--allow-import"),
        "sr": _search(d / "sr", "--space", "expressions", "--evaluator", "symbolic-regression",
                      "--evaluator-opt", "n=32", "--max-candidates", "60"),
    }


def test_hit_rate_and_best_so_far_share_the_charged_axis(runs):
    from automl.api import read_run

    meta, recs = read_run(runs["evo"])
    s = plots.series(recs, Objective("cifar10", Direction.MAX))
    summary = summarize(runs["evo"])
    assert s["charged"][-1] == summary["charged_evaluations"] == 40
    assert summary["cache"]["hit"] > 0, "the fixture run should have cache hits"
    assert s["hit_rate"][-1] == pytest.approx(100 * summary["hit_rate"])
    assert all(a <= b for a, b in zip(s["charged"], s["charged"][1:]))
    fig = plots.progress_figure(runs["evo"])
    best_ax, hit_ax = fig.axes[0], fig.axes[1]
    assert best_ax.get_xlabel() == hit_ax.get_xlabel() == "charged evaluations"
    hit_line = hit_ax.lines[0]
    assert list(hit_line.get_xdata()) == s["charged"]  # not candidates: hits leave x unchanged
    assert list(hit_line.get_ydata()) == pytest.approx(s["hit_rate"])
    assert max(best_ax.lines[0].get_xdata()) <= 40


def test_three_objectives_get_every_pairwise_pareto_panel_and_reference_lines(runs):
    fig = plots.progress_figure(runs["evo"])
    pairs = {(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes[3:]}
    assert pairs == {("cifar10 (max)", "cifar100 (max)"), ("cifar10 (max)", "imagenet16 (max)"),
                     ("cifar100 (max)", "imagenet16 (max)")}
    ref = registry.get_evaluator("nb201-tabular").reference()
    assert ref["cifar10"]["value"] == pytest.approx(94.3733, abs=1e-3) and ref["cifar10"]["label"]
    best_ax = fig.axes[0]
    refs_drawn = [ln for ln in best_ax.lines if "NB201 optimum" in ln.get_label()]
    assert refs_drawn and refs_drawn[0].get_ydata()[0] == pytest.approx(ref["cifar10"]["value"])
    # every pair panel carries both objectives' optimum lines
    for ax in fig.axes[3:]:
        assert sum("NB201 optimum" in ln.get_label() for ln in ax.lines) == 2
    # one panel per pair of a two-objective run, no reference when the evaluator knows none
    fig2 = plots.progress_figure(runs["sr"])
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig2.axes[3:]] == [("mse (min)", "size (min)")]
    assert not any("optimum" in ln.get_label() for ax in fig2.axes for ln in ax.lines)


def test_reference_hook():
    assert registry.get_evaluator("optimizer-proxy").reference() == {"val_loss": {"value": 1.0, "label": "AdamW"}}
    assert registry.get_evaluator("optimizer-proxy", normalize=False).reference() == {}
    assert registry.get_evaluator("symbolic-regression").reference() == {}
    # the tables' optimum is what evaluating every cell finds
    nb101 = registry.get_evaluator("nb101-tabular")
    best = max(nb101.evaluate(c)["val_accuracy"] for c in nb101.cells())
    assert nb101.reference()["val_accuracy"]["value"] == pytest.approx(best)


def test_status_counts_in_figure_and_report(runs):
    from automl.api import read_run

    _, recs = read_run(runs["faulty"])
    counts = plots.status_counts(recs)
    by_status = summarize(runs["faulty"])["status"]
    assert counts["failed"] == by_status["failed"] > 0 and counts["invalid"] == by_status["invalid"] > 0
    assert counts["ok"] == by_status["ok"]
    assert counts["cached"] + counts["evaluated"] + counts["re-evaluated"] == len(recs) == 40
    fig = plots.progress_figure(runs["faulty"])
    bars = {t.get_text(): p.get_width() for t, p in zip(fig.axes[2].get_yticklabels(), fig.axes[2].patches)}
    assert bars["failed"] == counts["failed"] and bars["invalid"] == counts["invalid"]
    assert bars["cached"] == counts["cached"]
    page = plots.report_html(runs["faulty"])
    for name in ("failed", "invalid", "cached"):
        assert re.search(rf"<td>{re.escape(name)}</td><td class=\"n\">{counts[name]}</td>", page), name


def test_coalesced_twins_are_logged_and_counted():
    """Candidates that waited on an in-flight twin are hits marked ``coalesced`` in the log."""
    from automl.cache import Cache
    from automl.dispatch import Dispatcher
    from automl.evaluation import Seam
    from automl.runners.local import SerialRunner
    from automl.strategies.base import Proposal
    from automl.testing.toys import Quadratic, ToySpace
    from automl.types import Record

    space, ev, recs = ToySpace(n=200, m=50), Quadratic(), []
    d = Dispatcher(Seam(space, ev, Cache(None)), tell=lambda c, r: None, log=recs.append)
    tickets = d.offer_many([d.candidate(Proposal(k)) for k in (3, 53, 103, 7, 7, 8)])  # 3 ~ 53 ~ 103; 7 twice
    runner = SerialRunner()
    runner.start(PluginSpec.of(space, "space"), PluginSpec.of(ev, "evaluator"))
    d.run(tickets, runner)
    logged = [Record.from_json(r.to_json()).to_json() for r in recs]  # survives the log's round trip
    counts = plots.status_counts(logged)
    assert counts["coalesced"] == counts["cached"] == 3 and counts["evaluated"] == 3
    assert sorted(r["id"] for r in logged if r.get("coalesced")) == [1, 2, 4]


def test_compare_draws_runs_on_one_figure(runs, tmp_path):
    fig = plots.compare_figure([runs["evo"], runs["random"]])
    best_ax, hit_ax = fig.axes[0], fig.axes[1]
    labels = [ln.get_label() for ln in best_ax.lines]
    assert any("evo (evolution, seed 1)" in lb for lb in labels) and any("random (random, seed 2)" in lb
                                                                        for lb in labels)
    assert any("NB201 optimum" in lb for lb in labels)
    assert len(hit_ax.lines) == 2 and hit_ax.get_xlabel() == "charged evaluations"
    out = tmp_path / "cmp.png"
    assert main(["compare", runs["evo"], runs["random"], "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="do not share a primary objective"):
        plots.compare_figure([runs["evo"], runs["sr"]])
    assert main(["compare", runs["evo"], runs["sr"], "--out", str(out)]) == 2


def _check_self_contained(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert imgs and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)


def test_html_report_is_self_contained_and_holds_the_numbers(runs, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", runs["evo"], "--out", str(out), "--top", "3"]) == 0
    page = out.read_text()
    _check_self_contained(page)
    s = summarize(runs["evo"], top=3)
    assert f'<td>charged evaluations</td><td class="n">{s["charged_evaluations"]}</td>' in page
    assert f"{100 * s['hit_rate']:.1f} %" in page
    for b in s["best"]:
        assert html.escape(b["candidate"]) in page and f"{b['objectives']['cifar10']:.6g}" in page
    assert "NB201 optimum" in page and "Pareto front" in page
    # default location
    assert plots.report(runs["sr"]) == os.path.join(runs["sr"], "report.html")


def test_missing_matplotlib_names_the_extra(monkeypatch, runs):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AutoMLError, match=r"\[plot\]"):
        plots.plot(runs["sr"])


def _browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright if CHROMIUM else None


@pytest.mark.skipif(_browser() is None, reason="needs playwright (pip) and a chromium binary (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(runs, tmp_path):
    page_path = tmp_path / "report.html"
    plots.report(runs["faulty"], str(page_path), allow_import=True)
    errors, remote = [], []
    with _browser()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(page_path.as_uri())
            shot = page.screenshot(full_page=True)
            loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth)")
            text = page.inner_text("body")
        finally:
            browser.close()
    assert not errors and not remote
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    assert loaded and all(w and w > 500 for w in loaded)
    assert "Status counts" in text and "invalid" in text
