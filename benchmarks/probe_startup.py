"""Start-up cost of the compiled probe math (numba) in fresh processes.

The compiled kernels (automl/_probe_math_jit.py) are imported on the first probe-math call and
compiled once per machine: numba's disk cache (``cache=True``) keeps the machine code beside the
module, or in numba's user cache directory when the package directory is read-only.  Measured
here, each in a fresh ``python`` process (median of ``--repeats``), for three set-ups side by side:
  * ``numpy``: the numpy fallback (``AUTOML_PROBE_NUMBA=0``, as on a machine without numba);
  * ``numba-cold``: compiled, with an empty cache directory (``NUMBA_CACHE_DIR``: the first
    process after install or after a change of the module);
  * ``numba-warm``: compiled, with that cache filled by the previous process.
For each: ``import automl`` (ms), the first functional hash of AdamW (ms, import excluded), the
median cold hash of 200 realistic 25-statement AdamW descendants after it (us), and the wall time
of the ``automl hash --space optimizer-programs`` CLI on AdamW (ms).  Prints a table and writes
benchmarks/results/probe_startup.json.

    python benchmarks/probe_startup.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

CODE = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
import automl
t1 = time.perf_counter()
import numpy as np
from search_spaces.programs import ProgramSpace, CLASSIC_PROGRAMS
from search_spaces.programs import interp
from search_spaces.programs.parser import parse
from search_spaces.programs.mutation import descendant
ps = ProgramSpace()
h = automl.Hasher(ps)
adamw = parse(CLASSIC_PROGRAMS["adamw"])
rng = np.random.default_rng(0)
progs = [descendant(adamw, rng, ps.config, 25, min_live=12) for _ in range(200)]
t2 = time.perf_counter()
h.functional(adamw)
t3 = time.perf_counter()
times = []
for p in progs:
    interp.clear_memos()
    s = time.perf_counter()
    h.functional(p)
    times.append(time.perf_counter() - s)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_hash_ms": (t3 - t2) * 1e3,
                  "cold_hash_us": statistics.median(times) * 1e6,
                  "compiled": automl.probe_math.compiled()}))
"""


def _run(env, argv):
    s = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - s
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {r.stderr[-2000:]}")
    return r.stdout, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per set-up")
    ap.add_argument("--output", default=os.path.join(RESULTS, "probe_startup.json"), help="JSON file to write")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from search_spaces.programs import CLASSIC_PROGRAMS
    cli = [sys.executable, "-m", "automl.cli", "hash", "--space", "optimizer-programs", CLASSIC_PROGRAMS["adamw"]]
    rows = []
    for setup in ("numpy", "numba-cold", "numba-warm"):
        runs = []
        for _ in range(args.repeats):
            env = dict(os.environ)
            cache = None
            if setup == "numpy":
                env["AUTOML_PROBE_NUMBA"] = "0"
            else:
                env["AUTOML_PROBE_NUMBA"] = "1"
                cache = tempfile.mkdtemp(prefix="numba-cache-")
                env["NUMBA_CACHE_DIR"] = cache
                if setup == "numba-warm":  # fill the cache first
                    _run(env, [sys.executable, "-c", CODE])
            out, _ = _run(env, [sys.executable, "-c", CODE])
            rec = json.loads(out.strip().splitlines()[-1])
            if setup == "numba-cold":  # the CLI in a cold cache of its own
                shutil.rmtree(cache)
                os.makedirs(cache)
            _, rec["cli_ms"] = _run(env, cli)
            rec["cli_ms"] *= 1e3
            if cache:
                shutil.rmtree(cache)
            runs.append(rec)
        row = {"setup": setup, "compiled": runs[0]["compiled"]}
        for k in ("import_ms", "first_hash_ms", "cold_hash_us", "cli_ms"):
            row[k] = statistics.median(r[k] for r in runs)
        rows.append(row)
    load = os.getloadavg()
    print(f"{'setup':12s} {'compiled':>8s} {'import ms':>10s} {'1st hash ms':>12s} {'cold hash us':>13s} {'CLI ms':>8s}")
    for r in rows:
        print(f"{r['setup']:12s} {str(r['compiled']):>8s} {r['import_ms']:10.0f} {r['first_hash_ms']:12.0f} "
              f"{r['cold_hash_us']:13.0f} {r['cli_ms']:8.0f}")
    print(f"load average {load[0]:.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"rows": rows, "repeats": args.repeats, "load_average": load, "python": sys.version.split()[0]},
                  f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
