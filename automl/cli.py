"""The ``automl`` command line.  Every subcommand is documented by ``automl <command> --help``."""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import warnings
from typing import Any, Sequence

from .errors import AutoMLError

EPILOG = """examples:
  automl search --space expressions --evaluator symbolic-regression --budget 2000 --seed 0 --out runs/sr
  automl search --out runs/sr --resume --budget 4000        # continue (or extend) a run
  automl search --space nb201 --evaluator nb201-tabular --strategy tpe --budget 200 --out runs/tpe
  automl show runs/sr
  automl plot runs/sr
"""


def _kv(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they are JSON (numbers, true, lists), else text."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AutoMLError(f"{flag} expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="automl", description="Evolutionary search over programs and architectures "
                                "with a functional equivalence cache.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("search", help="run or resume a search", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run a search: the strategy proposes candidates, the equivalence cache answers "
                       "duplicates (also ones written differently but computing the same), the runner evaluates "
                       "the rest.  Everything lands in the run directory.", epilog=EPILOG)
    s.add_argument("--space", help="registered search space (see `automl spaces`; default expressions)")
    s.add_argument("--evaluator", help="registered evaluator (see `automl evaluators`; default symbolic-regression)")
    s.add_argument("--strategy",
                   help="evolution (regularized evolution; the default), random, tpe, optuna-random, nsga2, cmaes, "
                   "qmc, gp")
    s.add_argument("--budget", type=int, help="charged evaluations for the whole run (cache hits are free)")
    s.add_argument("--seconds", type=float, help="wall-clock limit for this invocation")
    s.add_argument("--evaluator-seconds", type=float,
                   help="evaluator-seconds for the whole run: the summed cost of charged evaluations")
    s.add_argument("--max-candidates", type=int, help="stop after this many candidates, cache hits included")
    s.add_argument("--stall", type=int, help="stop after this many consecutive candidates answered by the cache "
                   "(converged or exhausted; default 2000)")
    s.add_argument("--seed", type=int, help="seed of the strategy (and of the cache's forgetting; default 0)")
    s.add_argument("--out", help="run directory (default runs/<space>-<strategy>-s<seed>)")
    s.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the run in DIR (or in --out) from its log, cache and strategy state.  Safe to "
                   "change on resume: --budget, --seconds, --evaluator-seconds, --max-candidates, --stall, "
                   "--workers, --runner (and --ray-address, --gpus-per-worker), --quiet; any other option that "
                   "differs from the run's is refused, listing old and new values.  A run whose budget is spent "
                   "prints 'nothing to do: run finished' (exit 0): raise --budget to continue it")
    s.add_argument("--overwrite", action="store_true", help="replace the run in --out (only a run folder, and not "
                   "while another process writes it)")
    s.add_argument("--workers", type=int, default=1, help="local worker processes (1: evaluate in-process)")
    s.add_argument("--runner", choices=["serial", "process", "ray"], help="where evaluations run (default: serial, "
                   "or process when --workers > 1)")
    s.add_argument("--ray-address", help="join this Ray cluster (e.g. auto); implies --runner ray")
    s.add_argument("--gpus-per-worker", type=float, help="GPUs per Ray evaluator actor (fractions allowed)")
    s.add_argument("--device", help="device for evaluators that train (cpu, cuda, cuda:1); passed as an evaluator option")
    s.add_argument("--cache", metavar="PATH", help="cache file to use and share across runs (default <out>/cache.sqlite)")
    s.add_argument("--no-cache", action="store_true", help="evaluate every candidate (hashes are still logged)")
    s.add_argument("--cache-policy", help="deterministic | aggregating[:K] | forgetful:N[:P] | "
                   "forgetful:p=P (auto: aggregating:3 for noisy evaluators, else deterministic)")
    s.add_argument("--dedupe", choices=["functional", "structural"],
                   help="what makes two candidates the same: the functional digest (default; runs the probe) "
                   "or the structural digest alone (no probe)")
    s.add_argument("--timeout", type=float, help="seconds allowed per evaluation (then it is recorded failed)")
    s.add_argument("--population", type=int, help="evolution: population size")
    s.add_argument("--tournament", type=int, help="evolution: tournament size")
    s.add_argument("--fcm", action="store_true", help="evolution: re-mutate until the child computes something new")
    s.add_argument("--space-opt", action="append", metavar="K=V", help="space option (repeatable)")
    s.add_argument("--evaluator-opt", action="append", metavar="K=V", help="evaluator option (repeatable)")
    s.add_argument("--strategy-opt", action="append", metavar="K=V", help="strategy option (repeatable)")
    s.add_argument("--quiet", action="store_true", help="no progress bar (or, off a terminal, no progress lines "
                   "every 10 s)")

    sh = sub.add_parser("show", help="summarise a run: best candidates, cache hits, evaluations saved")
    sh.add_argument("run_dir")
    sh.add_argument("--top", type=int, default=5, help="how many best candidates to list")
    sh.add_argument("--json", action="store_true", help="print the summary as JSON")

    for cmd, what, flag in (("spaces", "search spaces", "--space-opt"), ("evaluators", "evaluators", "--evaluator-opt"),
                            ("strategies", "strategies", "--strategy-opt"), ("runners", "runners", "--runner")):
        lp = sub.add_parser(cmd, help=f"list registered {what}, or one's options (--options NAME)",
                            description=f"List the registered {what}; with --options NAME, each option NAME "
                            f"takes (give it with {flag} K=V): its type, default and doc, from the constructor "
                            "that checks them.")
        lp.add_argument("--options", metavar="NAME", help="list this plugin's options")
        lp.add_argument("--json", action="store_true", help="print as JSON")

    pl = sub.add_parser("plot", help="PNG of best-so-far and cache-hit rate vs charged evaluations, status counts, "
                        "Pareto panels for every pair of objectives")
    pl.add_argument("run_dir")
    pl.add_argument("--output", "--out", help="PNG path (default <run_dir>/progress.png)")
    co = sub.add_parser("compare", help="several runs on one figure: best-so-far and cache-hit rate vs charged "
                        "evaluations, status counts", formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Draw several runs on one figure (PNG): best-so-far of their shared primary "
                        "objective and the cumulative cache-hit rate against charged evaluations, with the status "
                        "counts side by side, and the evaluator's reference line where it has one.",
                        epilog="example:\n  automl compare runs/evo runs/tpe runs/random --out compare.png")
    co.add_argument("run_dirs", nargs="+", metavar="RUN")
    co.add_argument("--out", "--output", dest="output", default="compare.png", help="PNG path (default compare.png)")
    co.add_argument("--label", action="append", metavar="TEXT", help="legend label of each run, in order "
                    "(repeat once per run; default: folder name, strategy and seed)")
    rt = sub.add_parser("report", help="a self-contained HTML page of a run: figure, statistics, status counts, "
                        "best candidates", formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Write one HTML file with everything about a run: the figure of `automl plot` "
                        "(embedded), statistics, status counts, reference values, the best distinct candidates and "
                        "the Pareto front.  It loads nothing from the network: open or mail it as it is.",
                        epilog="example:\n  automl report runs/nb201 --out nb201.html")
    rt.add_argument("run_dir")
    rt.add_argument("--out", "--output", dest="output", help="HTML path (default <run_dir>/report.html)")
    rt.add_argument("--top", type=int, default=10, help="how many best distinct candidates to list (default 10)")

    ha = sub.add_parser("hash", help="print the structural and functional digests of a candidate's text")
    ha.add_argument("--space", required=True)
    ha.add_argument("text", help="candidate text (use - to read it from stdin)")

    rp = sub.add_parser("reproduce", help="print a run's best candidates simplified (e.g. discovered optimizers)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Print the TOP best distinct candidates of a run, each simplified by its space "
                        "(dead code and dead state removed, constants folded, exact identities applied) and checked "
                        "to compute the same as the logged text.  For optimizer programs, the output is ready for "
                        "search_spaces.programs.optim.ProgramOptimizer(params, text, lr=...).",
                        epilog="example:\n  automl reproduce runs/opt --top 3")
    rp.add_argument("run_dir")
    rp.add_argument("--top", type=int, default=1, help="how many distinct best candidates (default 1)")
    rp.add_argument("--json", action="store_true", help="print records as JSON")

    si = sub.add_parser("simplify", help="print a candidate's text simplified by its space",
                        epilog="example:\n  automl simplify --space optimizer-programs my_program.txt",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    si.add_argument("--space", required=True)
    si.add_argument("source", help="a file holding the candidate's text, - for stdin, or the text itself")

    ex = sub.add_parser("export-optuna", help="write a run's candidates as trials of an Optuna study (journal "
                        "file) that optuna-dashboard can show",
                        description="Export a run log to an Optuna study stored in a journal file "
                        "(optuna.storages.JournalStorage with JournalFileBackend).  Each candidate becomes one "
                        "trial: values are the evaluator's objectives in order, failed and invalid candidates are "
                        "FAIL trials, params are the strategy's parameters when it proposed some (else "
                        "candidate_id), and the candidate text, digests and cache outcome are user attributes.",
                        epilog="example:\n  automl export-optuna runs/sr --storage runs/sr.journal\n"
                        "  optuna-dashboard runs/sr.journal", formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("run_dir")
    ex.add_argument("--storage", required=True, metavar="FILE", help="journal file to write (created if missing; "
                    "other studies in it are kept)")
    ex.add_argument("--study", metavar="NAME", help="study name (default: the run directory's name); must be new")
    da = sub.add_parser("dashboard", help="show a run in optuna-dashboard (needs the [dashboard] extra)",
                        description="Export a run to an Optuna study (as export-optuna does, into a temporary "
                        "journal file) and serve it with optuna-dashboard until Ctrl-C.  The page shows the run as "
                        "it was when the command started.",
                        epilog="example:\n  automl dashboard runs/nb201 --port 8080",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    da.add_argument("run_dir")
    da.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0 picks a free one)")
    da.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    da.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    da.add_argument("--study", metavar="NAME", help="study name (default: the run directory's name)")
    for parser in (s, sh, pl, co, rt, rp, ex, da):
        parser.add_argument("--allow-import", action="store_true",
                            help="let a run's files name plugins as module:Class paths that are not registered "
                            "(imports and runs that code: only for runs you trust)")
    for name, cmd in _plugin_commands().items():  # subcommands contributed by plugins (automl.registry)
        from . import registry

        cp = sub.add_parser(name, help=registry.describe("command", name),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.add_arguments(cp)
    return p


def _plugin_commands() -> dict[str, Any]:
    """Plugin subcommands by name (objects with ``add_arguments(parser)`` and ``run(args) -> int``)."""
    from . import registry

    return {name: registry.get_class("command", name) for name in registry.names("command")}


def _search(a: argparse.Namespace) -> int:
    from .api import search

    resume = a.resume
    out = a.out
    if isinstance(resume, str):
        if out and os.path.abspath(out) != os.path.abspath(resume):
            raise AutoMLError(f"--resume {resume} and --out {out} name different runs")
        out = resume
    if resume and not out:
        raise AutoMLError("--resume needs the run directory: --resume DIR or --out DIR --resume")
    if not resume and a.budget is None and a.seconds is None and a.max_candidates is None \
            and a.evaluator_seconds is None:
        raise AutoMLError("give a budget: --budget N (charged evaluations) and/or --seconds T")
    strategy_options = _kv(a.strategy_opt, "--strategy-opt")
    if a.population is not None:
        strategy_options["population_size"] = a.population
    if a.tournament is not None:
        strategy_options["tournament_size"] = a.tournament
    if a.fcm:
        strategy_options["fcm"] = True
    evaluator_options = _kv(a.evaluator_opt, "--evaluator-opt")
    if a.device:
        evaluator_options["device"] = a.device
    runner, runner_options = a.runner, {}
    if a.ray_address or a.gpus_per_worker is not None:
        runner = runner or "ray"
        if runner != "ray":
            raise AutoMLError("--ray-address and --gpus-per-worker need --runner ray")
    if runner == "ray":
        runner_options = {"address": a.ray_address, "num_actors": a.workers if a.workers > 1 else None}
        if a.gpus_per_worker is not None:
            runner_options["num_gpus_per_actor"] = a.gpus_per_worker
    summary = search(space=a.space, evaluator=a.evaluator, strategy=a.strategy, budget=a.budget, seed=a.seed,
                     out=out, resume=bool(resume), seconds=a.seconds, max_candidates=a.max_candidates,
                     workers=a.workers, runner=runner, runner_options=runner_options, cache=a.cache,
                     use_cache=False if a.no_cache else None, cache_policy=a.cache_policy, overwrite=a.overwrite,
                     space_options=_kv(a.space_opt, "--space-opt"), evaluator_options=evaluator_options,
                     strategy_options=strategy_options, timeout=a.timeout, dedupe=a.dedupe, stall=a.stall,
                     progress=not a.quiet, allow_import=a.allow_import, evaluator_seconds=a.evaluator_seconds)
    if summary["stop_reason"] == "finished":
        print(summary["message"])
        return 0
    c = summary["cache"]
    print(f"run {summary['run_dir']}: stopped ({summary['stop_reason']}) after {summary['candidates']} candidates, "
          f"{summary['charged_evaluations']} charged evaluations")
    print(f"cache ({summary['cache_policy']}): {c['hits']} hits, {c['partial_hits']} partial, {c['misses']} misses "
          f"this session; hit rate {100 * c['hit_rate']:.1f}%, {c['evaluations_saved']} evaluations saved")
    if summary.get("screened"):
        print(f"screened: {summary['screened']} candidates rejected by the evaluator's cheap filter; "
              f"{summary['evaluator_seconds']:.1f} evaluator seconds charged in all")
    if summary["best"]:
        b = summary["best"]
        print(f"best #{b['id']}: {b['value']:.6g}  {b['candidate']}")
    if summary.get("reconciled"):
        print(f"resume: {summary['reconciled']} cache entries repaired from the log (the run was killed between "
              "logging and caching)")
    print(f"details: automl show {summary['run_dir']}")
    # the shell's codes for Ctrl-C and SIGTERM
    return {"interrupted": 130, "terminated": 143}.get(summary["stop_reason"], 0)


def _list(family: str, a: argparse.Namespace) -> int:
    from . import registry

    if a.options is None:
        if a.json:
            print(json.dumps({n: registry.describe(family, n) for n in registry.names(family)}, indent=1))
            return 0
        from ._optional import extra_of, install_hint

        for name in registry.names(family):
            gone = registry.missing_requirements(family, name)
            needs = f"  [not installed: {install_hint(filter(None, map(extra_of, gone)))}]" if gone else ""
            print(f"{name:22s} {registry.describe(family, name)}{needs}")
        return 0
    opts = registry.options(family, a.options)
    more = registry.accepts_any_options(family, a.options)
    if a.json:
        print(json.dumps({"name": a.options, "family": family, "description": registry.describe(family, a.options),
                          "accepts_any_options": more, "options": [o.to_dict() for o in opts]}, indent=1))
        return 0
    print(f"{family} {a.options}: {registry.describe(family, a.options)}")
    if not opts:
        print("  no options" + (" declared (it accepts any)" if more else ""))
    import textwrap

    source = ""
    for o in opts:
        if o.source != source:
            source = o.source
            print(f"  settings passed to {source}:")
        default = "required" if o.required else f"default {o.default!r}"
        print(f"  {o.name}" + (f": {o.type}" if o.type else "") + f"  ({default})")
        for line in textwrap.wrap(o.doc or "(undocumented)", 96):
            print(f"      {line}")
    if more and opts:
        print("  (also accepts options not listed here)")
    return 0


def _hash(a: argparse.Namespace) -> int:
    from .hashing import functional_hash, structural_hash

    text = sys.stdin.read() if a.text == "-" else a.text
    print(f"structural {structural_hash(text, space=a.space)}")
    print(f"functional {functional_hash(text, space=a.space)}")
    return 0


def _read_source(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    if os.path.isfile(source):
        with open(source, encoding="utf-8") as f:
            return f.read()
    return source


def _reproduce(a: argparse.Namespace) -> int:
    from .report import reproduce

    rows = reproduce(a.run_dir, a.top, allow_import=a.allow_import)
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"{a.run_dir}: no successful candidate to reproduce")
    for i, r in enumerate(rows, 1):
        objs = ", ".join(f"{k} {v:.6g}" for k, v in r["objectives"].items())
        print(f"# {i}. candidate #{r['id']}  {objs}  hash {r['hash']}")
        print(r["simplified"].rstrip("\n") + "\n")
    return 0


def _simplify(a: argparse.Namespace) -> int:
    from .hashing import Hasher
    from .registry import get_space

    space = get_space(a.space)
    genome = space.from_text(_read_source(a.source))
    simple = space.simplify(genome)
    h = Hasher(space)
    if h.functional(simple) != h.functional(genome):
        raise AutoMLError("the simplified form computes something else (a bug in the space's simplifier)")
    print(space.to_text(simple).rstrip("\n"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    old = warnings.formatwarning
    warnings.formatwarning = lambda msg, *args, **kw: f"automl {a.command}: warning: {msg}\n"  # one line each
    try:
        return _main(parser, a)
    finally:
        warnings.formatwarning = old


def _main(parser: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    if a.command is None:
        parser.print_help()
        return 2
    try:
        if a.command == "search":
            return _search(a)
        if a.command == "show":
            from .report import show

            print(show(a.run_dir, top=a.top, as_json=a.json, allow_import=a.allow_import))
            return 0
        if a.command == "plot":
            from .report import plot

            print(plot(a.run_dir, a.output, allow_import=a.allow_import))
            return 0
        if a.command == "compare":
            from .plots import compare

            print(compare(a.run_dirs, a.output, a.label, allow_import=a.allow_import))
            return 0
        if a.command == "report":
            from .plots import report

            print(report(a.run_dir, a.output, a.top, allow_import=a.allow_import))
            return 0
        if a.command in ("spaces", "evaluators", "strategies", "runners"):
            return _list({"strategies": "strategy"}.get(a.command, a.command[:-1]), a)
        if a.command == "hash":
            return _hash(a)
        if a.command == "reproduce":
            return _reproduce(a)
        if a.command == "simplify":
            return _simplify(a)
        if a.command in _plugin_commands():
            from . import registry

            registry.check_requirements("command", a.command)
            return int(_plugin_commands()[a.command].run(a))
        if a.command == "dashboard":
            from .integrations.dashboard import serve_dashboard

            serve_dashboard(a.run_dir, port=a.port, host=a.host, open_browser=not a.no_browser, study_name=a.study,
                            allow_import=a.allow_import)
            return 0
        if a.command == "export-optuna":
            from .integrations.optuna_export import export_to_optuna

            r = export_to_optuna(a.run_dir, a.storage, a.study, allow_import=a.allow_import)
            print(f"exported {r['trials']} trials ({r['complete']} complete, {r['failed']} failed) to study "
                  f"{r['study_name']!r} in {r['storage']}")
            return 0
    except AutoMLError as exc:
        print(f"automl {a.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:  # `automl show … | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # disk full, permissions, a path that is not a directory...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"automl {a.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"automl {a.command}: error: cache database: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
