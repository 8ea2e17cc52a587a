"""automl.probe_math: accuracy against numpy, special values, and results that do not depend on
the rest of the array (fast and wide paths agree) or on the entry point (public vs KERNELS)."""
import numpy as np
import pytest

from automl import probe_math as pm

RNG = np.random.default_rng(11)
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e-310, 0.5, 2.0])


def _inputs(name):
    r = RNG
    wide = r.standard_normal(4000) * 10.0 ** r.uniform(-12, 2.5, 4000)
    return {
        "exp": np.concatenate([r.uniform(-745, 709.7, 4000), r.uniform(-1, 1, 2000)]),
        "expm1": r.uniform(-40, 40, 4000),
        "log": np.concatenate([10.0 ** r.uniform(-320, 308, 4000), r.uniform(0.999, 1.001, 2000)]),
        "log1p": np.concatenate([r.uniform(-0.999, 10, 4000), 10.0 ** r.uniform(-20, 0, 1000)]),
        "arctanh": r.uniform(-1, 1, 4000), "arcsin": r.uniform(-1, 1, 4000), "arccos": r.uniform(-1, 1, 4000),
        "sinh": np.concatenate([r.uniform(-700, 700, 4000), wide]), "cosh": r.uniform(-700, 700, 4000),
        "arcsinh": wide * 1e100 ** r.integers(0, 2, 4000),
    }.get(name, wide)


ULP = {}  # every function is within 4 ulp of numpy's on these inputs


@pytest.mark.parametrize("name", sorted(set(pm.FUNCTIONS) - {"power"}))
def test_matches_numpy_within_a_few_ulp_and_on_special_values(name):
    x = _inputs(name)
    with np.errstate(all="ignore"):
        got, ref = pm.FUNCTIONS[name](x), getattr(np, name)(x)
        ok = np.isfinite(ref) & (ref != 0)
        ulps = np.abs(got[ok] - ref[ok]) / np.spacing(np.abs(ref[ok]))
        assert ulps.max() <= ULP.get(name, 4), (name, ulps.max())
        assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
        s_got, s_ref = pm.FUNCTIONS[name](SPECIAL), getattr(np, name)(SPECIAL)
        same = (s_got == s_ref) | (np.isnan(s_got) & np.isnan(s_ref)) | (np.abs(s_got - s_ref) <= 4 * np.spacing(
            np.abs(s_ref)))
    assert same.all(), (name, SPECIAL[~same], s_got[~same], s_ref[~same])


@pytest.mark.parametrize("y", [1.7, -1.7, 0.3, 5.0, -5.0, 6.0, 7.0, 1e-8, 0.5, 2.0, -3.0, 0.0])
def test_power_with_a_constant_exponent(y):
    a = np.concatenate([RNG.standard_normal(3000) * 10.0 ** RNG.uniform(-30, 30, 3000), [0.0, 1.0, -1.0, np.nan]])
    with np.errstate(all="ignore"):
        got, ref = pm.power(a, y), np.power(a, y)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.array_equal(np.isinf(got), np.isinf(ref))
    ok = np.isfinite(ref) & (ref != 0)
    # exp(y log x): log's last-bit error times |y log x| (up to ~700): ~2e-13 relative at worst
    np.testing.assert_allclose(got[ok], ref[ok], rtol=4e-13)
    assert pm.power(0.9, np.arange(1.0, 5.0)).shape == (4,) and type(pm.power(2.0, 0.5)) is np.float64


@pytest.mark.parametrize("name", sorted(pm.FUNCTIONS))
def test_a_value_does_not_depend_on_its_neighbours_or_the_entry_point(name):
    """Arrays with zeros, negatives, NaN or huge values take the wide paths; every element must get
    the value it gets alone (a digest must not depend on what else the probe computed)."""
    x = np.array([0.3, 1.7, -0.4, 3.0, 1e-3])
    args = (x, np.float64(1.3)) if name == "power" else (x,)
    alone = [pm.FUNCTIONS[name](*((np.array([v]),) + args[1:]))[0] for v in x]
    for extra in (0.0, -2.0, np.nan, np.inf, 1e-310, 800.0):
        mixed = np.concatenate([x, [extra]])
        with np.errstate(all="ignore"):
            got = pm.FUNCTIONS[name](*((mixed,) + args[1:]))[:-1]
            kern = pm.KERNELS[name](*((mixed,) + args[1:]))[:-1]
        assert np.array_equal(got, alone, equal_nan=True), (name, extra)
        assert np.array_equal(kern, got, equal_nan=True)
    assert type(pm.FUNCTIONS[name](*((np.float64(0.3),) + args[1:]))) is np.float64
