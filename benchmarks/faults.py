"""Fault injection: kill -9 at random moments and resume, concurrent searches on one cache, hostile
inputs and evaluator faults.  Prints one table (faults injected per family, survived with nothing
lost) and writes benchmarks/results/faults.json.

Protocol (fixed; --cycles and --seed change it, the defaults are what results/faults.json holds):
  * space ``plugins_for_tests:ToySpace`` (200 texts, 100 functions: k and k+100 are equivalent),
    evaluator ``plugins_for_tests:Faulty`` (or ``NoisyFaulty`` for the aggregating and forgetful
    policies) sleeping 20 ms + U(0, 30 ms) per evaluation, regularized evolution, population 10;
  * kill -9 + resume: for each runner (serial, process with 2 workers, Ray with 2 actors) and each
    cache policy (deterministic, aggregating:3, forgetful:3), runs of budget 60 are started and
    SIGKILLed to the driver alone at a moment drawn from U(0 s, 1.5 s) after the (re)started search
    logs its first new record, and resumed, until ``--cycles`` kills have been injected (a run that finishes is checked and a new
    one started).  Then every run folder is resumed to its end and checked:
      - lost: evaluations charged in the log that the cache does not hold (for each digest,
        logged charged evaluations minus the cache entry's n); must be 0;
      - re-charged beyond the policy: deterministic, a digest charged more than once;
        aggregating:k, more than k times; forgetful:N (k=1), more than 1 + (hits logged for it +
        kills)/N times; must be 0;
      - the log: unique ids, charged total == budget;
      - orphans: worker processes of the killed driver still alive 3 s after the kill.
  * concurrent: 4 searches (seeds 0-3, serial runner, deterministic) share one cache file and
    run at once, each budget 60.  Errors (non-zero exits, "database is locked" anywhere) must be
    0; cache rows must equal the union of digests charged in the four logs; an evaluation charged
    again after another run's result for that digest was committed (its start later than the
    first evaluation's end + 0.25 s) counts as a re-charge and must be 0 (overlapping
    evaluations of one digest by two runs at the same moment are allowed and counted).
  * evaluator and input faults, in process: KeyboardInterrupt / SystemExit / OSError / 10**400
    from the evaluator, a worker that os._exits (crash blame), an evaluation deaf to signals with
    --timeout (serial and process runners), hostile candidate texts, hostile run folders and CLI
    paths (exit code 2 with one error line, no traceback), SIGTERM (graceful stop, snapshot,
    exit 143), a second writer on a run folder (refused), a stale lock (taken over).

    python benchmarks/faults.py [--cycles 20] [--runners serial,process,ray] [--policies ...]
    python benchmarks/faults.py --code ../main --cycles 5 --runners serial,process \
        --output benchmarks/results/faults_before.json      # the same faults against the old code
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

POLICIES = {"deterministic": "deterministic", "aggregating": "aggregating:3", "forgetful": "forgetful:3"}


# The project whose `automl` the searches run (--code: another checkout, for a before/after).  The
# subprocesses run in a neutral directory: `python -m` puts the working directory first on sys.path.
CODE = ROOT


def _allow_import() -> list[str]:
    """``--allow-import`` where the CLI has it: the toy plugins are named ``module:Class`` in run.json."""
    cli = os.path.join(CODE, "automl", "cli.py")
    try:
        with open(cli, encoding="utf-8") as f:
            return ["--allow-import"] if "--allow-import" in f.read() else []
    except OSError:
        return []


ALLOW = _allow_import()


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, CODE, e.get("PYTHONPATH", "")) if p)
    return e


def search_cmd(out: str, runner: str = "serial", policy: str = "deterministic", budget: int = 60, seed: int = 0,
               cache: str | None = None, resume: bool = False, journal: str | None = None,
               sleep: float = 0.02, jitter: float = 0.03, extra: list[str] | None = None) -> list[str]:
    if resume:
        return [sys.executable, "-m", "automl.cli", "search", "--resume", out, "--quiet", *ALLOW, *(extra or [])]
    noisy = policy != "deterministic"
    cmd = [sys.executable, "-m", "automl.cli", "search", "--space", "plugins_for_tests:ToySpace",
           "--evaluator", f"plugins_for_tests:{'NoisyFaulty' if noisy else 'Faulty'}",
           "--evaluator-opt", f"sleep={sleep}", "--evaluator-opt", f"jitter={jitter}",
           "--budget", str(budget), "--seed", str(seed), "--population", "10", "--tournament", "3",
           "--cache-policy", POLICIES.get(policy, policy), "--out", out, "--quiet"]
    if journal:
        cmd += ["--evaluator-opt", f"journal={journal}"]
    if cache:
        cmd += ["--cache", cache]
    if runner == "process":
        cmd += ["--workers", "2"]
    elif runner == "ray":
        cmd += ["--runner", "ray", "--workers", "2"]
    return cmd + list(extra or [])


def _where() -> dict[str, Any]:
    return {"env": env(), "cwd": tempfile.gettempdir()}


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:][:1] != b"Z"


def kill_at_random(cmd: list[str], delay: float, runner: str, log: str) -> dict[str, Any]:
    """Start ``cmd``; once it has logged a new record, SIGKILL the driver alone after ``delay`` s
    more (unless it ended); report orphaned workers."""
    size0 = os.path.getsize(log) if os.path.exists(log) else 0
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **_where(), start_new_session=True)
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < 120:
        if os.path.exists(log) and os.path.getsize(log) > size0:
            break
        time.sleep(0.01)
    try:
        p.wait(timeout=delay)
        return {"killed": False, "rc": p.returncode, "stderr": p.stderr.read().decode()[-2000:]}
    except subprocess.TimeoutExpired:
        pass
    kids = [c for c in children(p.pid)]
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stderr.close()
    orphans = 0
    if runner == "process":  # workers must notice the dead parent on their own
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(_alive(c) for c in kids):
            time.sleep(0.05)
        orphans = sum(_alive(c) for c in kids)
    try:  # whatever is left (a Ray instance the driver started lives in its session)
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for c in kids:
        try:
            os.kill(c, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return {"killed": True, "orphans": orphans, "workers": len(kids)}


def finish(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, **_where(), timeout=timeout, start_new_session=True)
    return p


def check_run(out: str, policy: str, budget: int, kills: int, cache: str | None = None) -> dict[str, Any]:
    """Lost and over-charged evaluations of a finished run (see the module docstring)."""
    from automl.cache import Cache
    from automl.log import read_records

    records = read_records(out)
    charged = collections.Counter(r["hash"] for r in records if r["charged"])
    hits = collections.Counter(r["hash"] for r in records if not r["charged"] and r["cache"] == "hit")
    c = Cache(cache or os.path.join(out, "cache.sqlite"))
    lost = overcharged = 0
    for h, n in charged.items():
        e = c.get(h)
        held = 0 if e is None else e.n
        if policy == "aggregating":
            allowed, expect = 3, min(n, 3)
        elif policy == "forgetful":
            allowed, expect = 1 + (hits[h] + kills) // 3, 1
        else:
            allowed, expect = 1, 1
        lost += max(expect - held, 0) if e is None or e.status == "ok" else 0
        overcharged += max(n - allowed, 0)
    c.close()
    ids = [r["id"] for r in records]
    return {"records": len(records), "charged": sum(charged.values()), "lost": lost, "overcharged": overcharged,
            "duplicate_ids": len(ids) - len(set(ids)), "budget_ok": sum(charged.values()) == budget}


def kill_resume(runner: str, policy: str, cycles: int, root: str, rng: np.random.Generator,
                budget: int = 60) -> dict[str, Any]:
    """Kill -9 at random moments and resume until ``cycles`` kills; check every run folder."""
    kills = orphans = errors = 0
    runs: list[dict[str, Any]] = []
    run_i = 0
    while kills < cycles:
        out = os.path.join(root, f"{runner}-{policy}-{run_i}")
        run_kills, started = 0, False
        while kills < cycles:
            cmd = search_cmd(out, runner, policy, budget, seed=run_i, resume=started)
            delay = float(rng.uniform(0.0, 1.5))
            r = kill_at_random(cmd, delay, runner, os.path.join(out, "candidates.jsonl"))
            started = started or os.path.exists(os.path.join(out, "run.json"))
            if not r["killed"]:
                if r["rc"] != 0:
                    errors += 1
                    print(f"  {runner}/{policy}: exit {r['rc']}: {r['stderr'][-500:]}", file=sys.stderr)
                break
            kills += 1
            run_kills += 1
            orphans += r["orphans"]
        if not started:
            continue
        p = finish(search_cmd(out, runner, policy, budget, resume=True))
        if p.returncode != 0:
            errors += 1
            print(f"  {runner}/{policy}: resume exit {p.returncode}: {p.stderr[-800:]}", file=sys.stderr)
            run_i += 1
            continue
        runs.append(check_run(out, policy, budget, run_kills))
        run_i += 1
    total = {k: sum(r[k] for r in runs) for k in ("lost", "overcharged", "duplicate_ids", "charged")}
    return {"family": f"kill -9 + resume ({runner}, {policy})", "injected": kills, "runs": len(runs),
            "errors": errors + sum(not r["budget_ok"] for r in runs), "orphans": orphans, **total,
            "survived": kills if runs and errors == 0 and total["lost"] == 0 and total["overcharged"] == 0
            and total["duplicate_ids"] == 0 and orphans == 0 and all(r["budget_ok"] for r in runs) else 0}


def concurrent(n: int, root: str, budget: int = 60, slack: float = 0.25) -> dict[str, Any]:
    """``n`` searches at once on one cache file (see the module docstring)."""
    from automl.cache import Cache
    from automl.log import read_records

    cache = os.path.join(root, "shared.sqlite")
    journal = os.path.join(root, "journal")
    os.makedirs(journal, exist_ok=True)
    procs = [subprocess.Popen(search_cmd(os.path.join(root, f"c{i}"), "serial", "deterministic", budget, seed=i,
                                         cache=cache, journal=journal), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, **_where())
             for i in range(n)]
    outs = [p.communicate(timeout=600) for p in procs]
    errors = sum(p.returncode != 0 for p in procs) + sum("locked" in o + e for o, e in outs)
    for p, (_, e) in zip(procs, outs):
        if p.returncode != 0:
            print(f"  concurrent: exit {p.returncode}: {e[-800:]}", file=sys.stderr)
    charged: set[str] = set()
    charged_n = 0
    for i in range(n):
        recs = read_records(os.path.join(root, f"c{i}"))
        charged |= {r["hash"] for r in recs if r["charged"]}
        charged_n += sum(r["charged"] for r in recs)
    c = Cache(cache)
    rows = len(c)
    keys = {r[0] for r in c._db.execute("SELECT key FROM results").fetchall()}
    c.close()
    evals: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for name in os.listdir(journal):
        with open(os.path.join(journal, name)) as f:
            for line in f:
                j = json.loads(line)
                evals[j["k"] % 100].append((j["start"], j["end"]))  # ToySpace: k and k+100 are one function
    overlapping = recharged = 0
    for spans in evals.values():
        spans.sort()
        first_end = spans[0][1]
        for start, _ in spans[1:]:
            if start > first_end + slack:
                recharged += 1
            else:
                overlapping += 1
    return {"family": f"{n} concurrent searches, one cache", "injected": n, "errors": errors,
            "cache_rows": rows, "charged_digests": len(charged), "rows_match": keys == charged,
            "charged": charged_n, "evaluations": sum(len(v) for v in evals.values()),
            "overlapping": overlapping, "recharged": recharged, "lost": 0, "overcharged": recharged,
            "survived": n if errors == 0 and keys == charged and recharged == 0 else 0}


# --- in-process faults ------------------------------------------------------------------------------

def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "automl.cli", *args], capture_output=True, text=True, **_where(),
                          timeout=kw.pop("timeout", 120), **kw)


def _clean_error(p: subprocess.CompletedProcess) -> bool:
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("automl ") and " error: " in ln]
    return p.returncode == 2 and "Traceback" not in p.stderr and len(errors) == 1


def evaluator_faults(root: str) -> dict[str, Any]:
    """Faults raised by the evaluator: each must be one failed (or invalid) record, never a stop."""
    import automl

    cases = {"KeyboardInterrupt": 3, "SystemExit": 4, "OSError": 5, "ValueError": 6}
    ok = injected = 0
    for runner, workers in (("serial", 1), ("process", 2)):
        exits = [8] if runner == "process" else []  # in process, os._exit would end the search itself
        automl.search(space="plugins_for_tests:ToySpace", evaluator="plugins_for_tests:Faulty",
                          strategy="random", budget=40, seed=0, out=os.path.join(root, f"ev-{runner}"),
                          workers=workers, evaluator_options={"raise_on": {str(k): v for v, k in cases.items()},
                                                              "huge_on": [7], "exit_on": exits},
                          space_options={"n": 10, "m": 10}, runner=runner, stall=50)
        from automl.log import read_records

        recs = {int(r["candidate"]): r for r in read_records(os.path.join(root, f"ev-{runner}"))}
        for name, k in cases.items():
            injected += 1
            r = recs.get(k)
            ok += r is not None and r["status"] == "failed" and name in (r["error"] or "")
        injected += 1
        ok += recs.get(7, {}).get("status") == "invalid"
        if exits:
            injected += 1
            ok += recs.get(8, {}).get("status") == "failed" and "died" in (recs[8].get("error") or "") \
                and all(r["status"] == "ok" for k, r in recs.items() if k not in (*cases.values(), 7, 8))
    return {"family": "evaluator raises / returns 10**400 / exits", "injected": injected, "survived": ok,
            "lost": 0, "overcharged": 0, "errors": injected - ok}


def timeout_faults(root: str) -> dict[str, Any]:
    """An evaluation deaf to signals (blocks SIGALRM, sleeps in C) under --timeout, serial and process."""
    injected = ok = 0
    for workers in (1, 2):
        out = os.path.join(root, f"deaf-{workers}")
        t0 = time.monotonic()
        p = _cli(["search", "--space", "plugins_for_tests:ToySpace", "--space-opt", "n=6", "--space-opt", "m=6",
                  "--evaluator", "plugins_for_tests:Quadratic", "--evaluator-opt", "deaf_hang_on=[2]",
                  "--strategy", "random", "--budget", "6", "--timeout", "1", "--workers", str(workers),
                  "--out", out, "--quiet", "--stall", "30"], timeout=120)
        injected += 1
        from automl.log import read_records

        recs = [r for r in read_records(out) if r["candidate"] == "2" and r["charged"]]
        ok += p.returncode == 0 and bool(recs) and "timed out" in recs[0]["error"] and time.monotonic() - t0 < 60
    return {"family": "evaluation deaf to signals + --timeout", "injected": injected, "survived": ok, "lost": 0,
            "overcharged": 0, "errors": injected - ok}


def hostile_inputs(root: str) -> dict[str, Any]:
    """Hostile texts and run folders: each must be a typed error (exit 2, one line), never a traceback."""
    from automl.errors import ParseError
    from automl.registry import get_space

    injected = ok = 0
    texts = ["[" * 100000, '{"matrix": [[%s]], "ops": ["input"]}' % ("9" * 5000), "x" * 100_000_000]
    for space in ("nb101", "nb201", "expressions", "optimizer-programs"):
        sp = get_space(space)
        for t in texts:
            injected += 1
            try:
                sp.from_text(t)
            except ParseError:
                ok += 1
            except Exception as exc:  # noqa: BLE001  (counted as a failure of the fault suite)
                print(f"  {space}: {type(exc).__name__} on a hostile text", file=sys.stderr)
    run = os.path.join(root, "good")
    _cli(["search", "--space", "plugins_for_tests:ToySpace", "--evaluator", "plugins_for_tests:Quadratic",
          "--budget", "5", "--out", run, "--quiet"])
    afile = os.path.join(root, "a-file")
    open(afile, "w").close()
    cases: list[list[str]] = [
        ["search", "--budget", "3", "--out", afile, "--quiet"],
        ["search", "--budget", "3", "--out", "/proc/automl-run", "--quiet"],
        ["search", "--budget", "3", "--out", "/dev/null", "--quiet"],
        ["search", "--budget", "3", "--timeout", "-1", "--out", os.path.join(root, "t1"), "--quiet"],
        ["search", "--budget", "3", "--timeout", "nan", "--out", os.path.join(root, "t2"), "--quiet"],
    ]
    for name, content in (("run.json", b"{not json"), ("state.json", b"\x00\x01garbage"),
                          ("cache.sqlite", b"SQLite format 3\x00" + b"\xff" * 8000)):
        bad = os.path.join(root, f"bad-{name}")
        subprocess.run(["cp", "-r", run, bad], check=True)
        with open(os.path.join(bad, name), "wb") as f:
            f.write(content)
        cases.append(["search", "--resume", bad, "--budget", "8", "--quiet", *ALLOW])
        cases.append(["show", bad])
    for args in cases:
        p = _cli(args)
        injected += 1
        good = _clean_error(p) or (args[0] == "show" and p.returncode == 0)
        ok += good
        if not good:
            print(f"  {' '.join(args)}: exit {p.returncode}: {p.stderr[-300:]}", file=sys.stderr)
    return {"family": "hostile texts, run folders, CLI paths", "injected": injected, "survived": ok, "lost": 0,
            "overcharged": 0, "errors": injected - ok}


def lock_and_signals(root: str) -> dict[str, Any]:
    """A second writer on a running search is refused; SIGTERM stops gracefully (snapshot, 143);
    a stale lock is taken over; a line-cut log with a newer state.json is refused with a message."""
    from automl.log import read_records

    injected = ok = 0
    out = os.path.join(root, "locked")
    p = subprocess.Popen(search_cmd(out, "process", "deterministic", 400, sleep=0.05, jitter=0.0),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **_where())
    t0 = time.monotonic()
    while not os.path.exists(os.path.join(out, "candidates.jsonl")) and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    q = _cli(["search", "--resume", out, "--quiet", *ALLOW])
    injected += 1
    ok += _clean_error(q) and "in use by pid" in q.stderr
    kids = children(p.pid)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    injected += 1
    with open(os.path.join(out, "state.json")) as f:
        state = json.load(f)
    n_logged = len(read_records(out))
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and any(_alive(c) for c in kids):
        time.sleep(0.05)
    ok += p.returncode == 143 and state["n_records"] == n_logged and not any(_alive(c) for c in kids) \
        and not os.path.exists(os.path.join(out, ".lock"))
    with open(os.path.join(out, ".lock"), "w") as f:  # a dead writer's lock
        json.dump({"pid": 2 ** 22 + 12345, "host": os.uname().nodename}, f)
    r = _cli(["search", "--resume", out, "--budget", str(n_logged + 5), "--quiet", *ALLOW])
    injected += 1
    ok += r.returncode == 0
    log = os.path.join(out, "candidates.jsonl")
    with open(log, "rb") as f:
        data = f.read()
    with open(log, "wb") as f:
        f.write(data[: len(data) // 2])
    r = _cli(["search", "--resume", out, "--quiet", *ALLOW])
    injected += 1
    ok += _clean_error(r) and "lost" in r.stderr
    return {"family": "second writer, SIGTERM, stale lock, cut log", "injected": injected, "survived": ok,
            "lost": 0, "overcharged": 0, "errors": injected - ok}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20, help="kill -9 + resume cycles per runner and policy")
    ap.add_argument("--runners", default="serial,process,ray")
    ap.add_argument("--policies", default="deterministic,aggregating,forgetful")
    ap.add_argument("--concurrent", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--code", help="run the searches (kill -9 and concurrent families only) with the automl of "
                    "this checkout, e.g. the code before the fixes; the checks still use this one")
    ap.add_argument("--output", default=os.path.join(RESULTS, "faults.json"))
    a = ap.parse_args(argv)
    global CODE
    if a.code:
        CODE = os.path.abspath(a.code)
        ALLOW[:] = _allow_import()
    rng = np.random.default_rng(a.seed)
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="automl-faults-") as root:
        in_process = () if a.code else (("evaluator", evaluator_faults), ("timeout", timeout_faults),
                                         ("hostile", hostile_inputs), ("lock", lock_and_signals))
        for name, fn in in_process:
            d = os.path.join(root, name)
            os.makedirs(d)
            rows.append(fn(d))
            print(f"{rows[-1]['family']}: {rows[-1]['survived']}/{rows[-1]['injected']}", flush=True)
        d = os.path.join(root, "concurrent")
        os.makedirs(d)
        rows.append(concurrent(a.concurrent, d))
        print(f"{rows[-1]['family']}: {rows[-1]['survived']}/{rows[-1]['injected']}", flush=True)
        for runner in a.runners.split(","):
            for policy in a.policies.split(","):
                d = os.path.join(root, f"kill-{runner}-{policy}")
                os.makedirs(d)
                rows.append(kill_resume(runner, policy, a.cycles, d, rng))
                print(f"{rows[-1]['family']}: {rows[-1]['survived']}/{rows[-1]['injected']}", flush=True)
    print()
    print(f"{'fault family':52s} {'injected':>8s} {'survived':>8s} {'lost':>5s} {'re-charged':>10s} {'errors':>6s}")
    for r in rows:
        print(f"{r['family']:52s} {r['injected']:8d} {r['survived']:8d} {r['lost']:5d} {r['overcharged']:10d} "
              f"{r['errors']:6d}")
    tot_i, tot_s = sum(r["injected"] for r in rows), sum(r["survived"] for r in rows)
    print(f"{'total':52s} {tot_i:8d} {tot_s:8d}")
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump({"code": CODE, "protocol": {"cycles": a.cycles, "runners": a.runners, "policies": a.policies,
                                "concurrent": a.concurrent, "seed": a.seed, "budget": 60},
                   "rows": rows, "seconds": time.time() - t0}, f, indent=1)
    print(f"wrote {a.output}")
    return 0 if tot_i == tot_s else 1


if __name__ == "__main__":
    sys.exit(main())
