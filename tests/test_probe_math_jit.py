"""The compiled (numba) probe math gives the numpy fallback's bits on every input.

A digest must not depend on whether numba is installed: every kernel of
automl._probe_math_jit is compared bit for bit (NaN with NaN, whatever its payload: the quantizer
canonicalises NaN) with automl.probe_math's numpy version, run in this process, on wide random
inputs, special values, values at the path boundaries, and arrays that mix them."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")
from automl import probe_math as pm  # noqa: E402



@pytest.fixture(autouse=True, scope="module")
def _compiled():
    """Load the compiled kernels (at setup, not at collection: the rest of the suite starts on numpy)."""
    if not pm.enable_compiled():
        pytest.skip("compiled probe math disabled (AUTOML_PROBE_NUMBA=0)")

BOUNDARY = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e-310, 2.2250738585072014e-308, 0.5,
            2.0, 709.0, 709.5, -708.0, -745.2, 710.0, -746.0, 40.0, -40.0, 1e150, 1e151, 1.7976931348623157e308,
            -1.7976931348623157e308, 2.0**19 * 1.5707963267948966, 8.2e5, -8.3e5, 1e300, 0.9999999999999999,
            -0.9999999999999999, 1e-16, -1e-16]


def _inputs(n=40_000, seed=5):
    r = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = np.concatenate([r.standard_normal(n) * 10.0 ** r.uniform(-320, 308, n), r.uniform(-800, 800, n),
                            r.uniform(-1.2, 1.2, n), r.uniform(-50, 50, n), r.uniform(-2e6, 2e6, n // 4),
                            np.array(BOUNDARY * 20)])
    r.shuffle(x)
    return x


def _same_bits(got, ref):
    same = (got.view(np.int64) == ref.view(np.int64)) | (np.isnan(got) & np.isnan(ref))
    return np.flatnonzero(~same.ravel())


@pytest.mark.parametrize("name", sorted(pm._NUMPY_CORES))
def test_compiled_kernel_equals_numpy_bit_for_bit(name):
    x = _inputs()
    numpy_core, kernel = pm._NUMPY_CORES[name], pm.KERNELS[name]
    with np.errstate(all="ignore"):
        cases = [x, np.sort(x)[:50_000], np.sort(x)[-50_000:], x.reshape(-1, 7)[:, ::2],  # mixed, in-range, strided
                 x[:1152].reshape(9, 128)]
        for a in cases:
            got, ref = kernel(a), numpy_core(np.ascontiguousarray(a))
            bad = _same_bits(got, ref)
            assert got.shape == a.shape and not len(bad), (name, a.ravel()[bad[:5]], got.ravel()[bad[:5]],
                                                           ref.ravel()[bad[:5]])
        for v in BOUNDARY:  # alone (the fast paths) and as a numpy scalar
            got, ref = kernel(np.float64(v)), numpy_core(np.array([v]))[0]
            assert type(got) is np.float64 and not len(_same_bits(np.array([got]), np.array([ref]))), (name, v)
    assert kernel(np.empty(0)).shape == (0,)


def test_power_compiled_equals_numpy_bit_for_bit(monkeypatch):
    x = _inputs(4000, seed=9)
    r = np.random.default_rng(2)
    cases = [(x, 1.7), (x, -0.3), (x, 3.0), (x, 7.0), (x, np.nan), (np.float64(0.9), np.arange(0.0, 300.0)),
             (np.float64(1e-300), r.uniform(-2, 2, 500)), (x, r.choice(np.array(BOUNDARY + [2.0, 3.0, -1.5]), x.size)),
             (np.abs(x)[:500].reshape(20, 25), r.standard_normal(25))]
    with np.errstate(all="ignore"):
        got = [pm.KERNELS["power"](a, b) for a, b in cases]
        monkeypatch.setattr(pm, "_JIT_CORES", {})
        assert not pm.compiled()
        ref = [pm.KERNELS["power"](a, b) for a, b in cases]
    for (a, b), g, f in zip(cases, got, ref):
        assert g.shape == f.shape and not len(_same_bits(g, f)), (np.shape(a), np.shape(b))


def test_import_automl_does_not_import_numba_and_the_fallback_can_be_forced():
    code = ("import sys, automl, search_spaces.programs, search_spaces.expressions; assert 'numba' not in sys.modules;"
            "from automl import probe_math as pm; print(pm.compiled(), 'numba' in sys.modules)")
    outs = []
    for flag in ("1", "0", "auto"):
        r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, AUTOML_PROBE_NUMBA=flag),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout.split())
    assert outs == [["True", "True"], ["False", "False"], ["False", "False"]]
    # numba not importable: the numpy kernels, even when asked for the compiled ones
    no_numba = ("import sys; sys.modules['numba'] = None; from automl import probe_math as pm; import numpy as np;"
                "print(pm.compiled(), pm.KERNELS['exp'](np.zeros(3)).tolist() == [1.0, 1.0, 1.0])")
    r = subprocess.run([sys.executable, "-c", no_numba],
                       env=dict(os.environ, AUTOML_PROBE_NUMBA="1"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["False", "True"], r.stderr[-2000:]


def test_switching_to_compiled_mid_run_keeps_the_digests(monkeypatch):
    """The default mode starts on numpy and switches after AUTO_AFTER_CALLS calls."""
    import automl
    from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace, interp
    from search_spaces.programs.mutation import descendant
    from search_spaces.programs.parser import parse

    ps = ProgramSpace()
    rng = np.random.default_rng(4)
    progs = [descendant(parse(CLASSIC_PROGRAMS["adamw"]), rng, ps.config, 25, min_live=12) for _ in range(12)]
    progs += [parse(t) for t in CLASSIC_PROGRAMS.values()]
    h = automl.Hasher(ps)

    def digests():
        interp.clear_memos()
        return [h.functional(p) for p in progs]

    monkeypatch.setenv("AUTOML_PROBE_NUMBA", "0")
    monkeypatch.setattr(pm, "_JIT_CORES", None)
    ref = digests()
    assert not pm.compiled()
    monkeypatch.delenv("AUTOML_PROBE_NUMBA")
    monkeypatch.setattr(pm, "_JIT_CORES", None)
    monkeypatch.setattr(pm, "_calls", 0)
    monkeypatch.setattr(pm, "AUTO_AFTER_CALLS", 20)
    got = digests()
    assert pm.compiled() and 20 < pm._calls < 400  # switched during the run
    assert got == ref and digests() == ref


def test_compiled_module_matches_this_probe_math(monkeypatch):
    """numba's disk cache would keep old numbers if probe_math changed alone: the compiled module
    records probe_math's fingerprint and refuses (numpy kernels) when it differs."""
    from automl import _probe_math_jit as j

    assert j.fingerprint() == j.COMPILED_AGAINST, (
        "probe_math's tables/constants changed: check the compiled kernels still mirror them, then set "
        f"_probe_math_jit.COMPILED_AGAINST = {j.fingerprint()!r}")
    monkeypatch.setattr(pm, "_SIN_P", pm._SIN_P * (1 + 2.0 ** -52))
    assert j.fingerprint() != j.COMPILED_AGAINST
