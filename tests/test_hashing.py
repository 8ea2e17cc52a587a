import os
import subprocess
import sys

import numpy as np
import pytest

import automl
from automl.errors import ConfigError
from automl.hashing import FLUSH, Hasher, mix, quantize

fh, sh = automl.functional_hash, automl.structural_hash


def test_issue_examples():
    assert fh(lambda x: x * 2) == fh(lambda x: x + x)
    assert fh(lambda x: (x + 1) ** 2) == fh(lambda x: x * x + 2 * x + 1)
    assert fh(lambda x: x * 2) != fh(lambda x: x * 2.001)


def test_trig_identity_and_rounding_across_a_power_of_two():
    assert fh(lambda x: np.sin(x) ** 2 + np.cos(x) ** 2) == fh(lambda x: np.ones_like(x))
    # 0.9999999999999999 and 1.0 differ in every mantissa bit but round to the same 24-bit value
    assert quantize(np.array([1.0 - 2**-53])) == quantize(np.array([1.0]))
    assert quantize(np.array([2.0 - 2**-52])) == quantize(np.array([2.0]))


def test_quantize_tokens():
    q = lambda v: quantize(np.array([v]))  # noqa: E731
    assert q(float("nan")) == q(-float("nan")) == quantize(np.array([np.float64(np.nan) * 3]))
    assert len({q(np.inf), q(-np.inf), q(np.nan), q(0.0), q(1.0)}) == 5
    assert q(-0.0) == q(0.0)  # canonical +0.0: x*0 and 0 compute the same
    # the flush is relative to the row's scale: residues vanish next to large values, tiny
    # outputs keep their value and sign (x*1e-13 is neither 0 nor -x*1e-13)
    v = lambda *xs: quantize(np.array(xs))  # noqa: E731
    assert v(1.0, FLUSH / 4) == v(1.0, 0.0) == v(1.0, -FLUSH / 4)
    assert v(1.0, FLUSH * 4) != v(1.0, 0.0)
    assert len({q(1e-13), q(0.0), q(-1e-13)}) == 3
    assert quantize(np.array([[1.0, 1e-20], [1e-20, 3e-20]])) != quantize(np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert q(1.0) != q(1.0 + 2**-20)  # above the 24-bit resolution
    assert q(1.0) == q(1.0 + 2**-30)  # below it
    assert quantize(np.zeros(2)) != quantize(np.zeros((2, 1)))  # shapes are part of the digest
    with pytest.raises(ConfigError):
        quantize(np.zeros(1), bits=60)


def test_structural_hash_of_callables_ignores_names_not_code():
    assert sh(lambda x: x * 2) == sh(lambda y: y * 2)
    assert sh(lambda x: x * 2) != sh(lambda x: x + x)


def test_namespaces_separate_evaluators_and_kinds():
    class E(automl.Evaluator):
        name, version = "e", "1"

    f = lambda x: x  # noqa: E731
    assert fh(f) != fh(f, evaluator=E(steps=1)) != fh(f, evaluator=E(steps=2))
    assert fh(f) != sh(f)
    assert Hasher(seed=1).functional(f) != Hasher(seed=2).functional(f)
    assert mix("ab", "c") != mix("a", "bc")


def test_bad_inputs_name_the_problem():
    with pytest.raises(ConfigError, match="space="):
        fh("x*2")
    with pytest.raises(ConfigError, match="cannot hash"):
        fh(42)
    with pytest.raises(automl.RegistryError, match="unknown space"):
        fh("x", space="no-such-space")


def test_digests_stable_across_processes_and_hash_seeds():
    code = ("import automl, numpy as np; print(automl.functional_hash(lambda x: np.sin(x)*3+1), "
            "automl.structural_hash(lambda x: x*2))")
    outs = set()
    for seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    import numpy as np  # noqa: F811
    here = f"{fh(lambda x: np.sin(x)*3+1)} {sh(lambda x: x*2)}\n"
    assert outs == {here}


def test_import_automl_loads_no_heavy_library():
    code = ("import sys, automl, automl.engine, automl.api, automl.cli, automl.strategies, automl.runners; "
            "automl.registry.load_plugins(); "
            "print(sorted(m for m in ('torch','ray','optuna','matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_scalar_functions_and_constants_are_probed_like_array_functions():
    import math

    assert fh(lambda x: math.sin(x) * 2) == fh(lambda x: np.sin(x) + np.sin(x))
    assert fh(lambda x: 1.0) == fh(lambda x: np.ones_like(x)) == fh(lambda x: np.sin(x) ** 2 + np.cos(x) ** 2)
    assert fh(lambda x, y: x * y) == fh(lambda x, y: y * x) != fh(lambda x, y: x * x)
    assert fh(lambda x: (x, 2 * x)) == fh(lambda x: (x, x + x)) != fh(lambda x: (2 * x, x))

    def bad(x):
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        fh(bad)  # an error that is not about argument types is the user's to see
    with pytest.raises(ConfigError, match="cannot run"):
        fh(lambda x: math.sqrt(x))  # negative probe points: math domain error, named
