"""Digests do not depend on the CPU's SIMD level or on thread counts.

numpy picks SIMD kernels for exp/log/sin/power... at import (AVX-512, AVX2, baseline), and their
last bits differ; the probes use automl.probe_math and fixed-order sums instead.  Each subprocess
below runs with another ``NPY_DISABLE_CPU_FEATURES`` (every dispatch level this machine has, down
to the baseline) or thread count and prints the digests of programs, expressions (on an
evaluator's domain) and cells with transcendental ops; all must agree, with the probe math compiled
(numba) and with its numpy fallback forced (``AUTOML_PROBE_NUMBA=0``).
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

CODE = r"""
import json, numpy as np, automl
from search_spaces.programs import ProgramSpace, CLASSIC_PROGRAMS
from search_spaces.programs.parser import parse
from search_spaces.programs.mutation import descendant
from search_spaces.expressions import ExpressionSpace
from search_spaces.cells.nb101 import NB101Space
from search_spaces.cells.nb201 import NB201Space
from evaluators.symbolic_regression import SymbolicRegression
from evaluators.optimizer_proxy.proxy import OptimizerProxy

out = {}
ps = ProgramSpace()
progs = [parse(t) for t in CLASSIC_PROGRAMS.values()]
rng = np.random.default_rng(3)
progs += [descendant(progs[3], rng, ps.config, 25, min_live=10) for _ in range(12)]
for ev in (None, OptimizerProxy()):
    h = automl.Hasher(ps, ev)
    out["programs" + ("+proxy" if ev else "")] = [h.functional(p) for p in progs]
es = ExpressionSpace()
exprs = ["exp(sin(x)) * tanh(x) + log(x*x + 1)", "x ** 0.5 + cos(x) ** 3", "exp(x) / (1 + exp(x))",
         "sin(x)*sin(x) + cos(x)*cos(x)", "log(abs(x) + 0.5) * exp(-x)"]
h = automl.Hasher(es, SymbolicRegression(target="nguyen5"))
out["expressions"] = [h.functional(es.from_text(e)) for e in exprs]
for sp in (NB101Space(), NB201Space()):
    r = np.random.default_rng(0)
    out[sp.name] = [automl.functional_hash(sp.sample(r), space=sp) for _ in range(20)]
x = np.linspace(-5, 5, 1001)
out["numpy_exp_bits"] = automl.hashing.mix(np.exp(x).tobytes())  # what numpy itself does (not asserted)
out["compiled"] = automl.probe_math.compiled()
print(json.dumps(out))
"""


def _levels():
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as mu
    have = [f for f in mu.__cpu_dispatch__ if mu.__cpu_features__.get(f)]
    # disable from the top: all, all but the highest, ..., baseline only
    return [" ".join(reversed(have[i:])) for i in range(len(have), -1, -1)]


def _run(extra_env):
    env = dict(os.environ, **extra_env)
    r = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_digests_identical_across_simd_levels_and_threads():
    envs = [{"NPY_DISABLE_CPU_FEATURES": lv, "AUTOML_PROBE_NUMBA": "1"} for lv in _levels()]
    envs.append({"NPY_DISABLE_CPU_FEATURES": "", "AUTOML_PROBE_NUMBA": "1", "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4",
                 "MKL_NUM_THREADS": "4", "PYTHONHASHSEED": "7"})
    # the numpy fallback of the probe math (as on a machine without numba), at the top and baseline levels
    envs += [{"AUTOML_PROBE_NUMBA": "0"}, {"AUTOML_PROBE_NUMBA": "0", "NPY_DISABLE_CPU_FEATURES": _levels()[-1]}]
    results = [_run(e) for e in envs]
    numpy_exp = {r.pop("numpy_exp_bits") for r in results}
    compiled = [r.pop("compiled") for r in results]
    assert not any(compiled[-2:])
    if importlib.util.find_spec("numba") is not None:
        assert all(compiled[:-2]), "numba is installed but the probe math did not run compiled"
    for env, r in zip(envs[1:], results[1:]):
        assert r == results[0], f"digests changed under {env}"
    assert len(results[0]["programs"]) == 19 and len(set(results[0]["programs"])) >= 15
    print(f"{len(envs)} environments; numpy's own exp gave {len(numpy_exp)} distinct bit patterns")
