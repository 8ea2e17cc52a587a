"""The compiled program probe (search_spaces.programs._probe_jit) and the compiled quantizer give
the numpy interpreter's and quantizer's bits: on random and realistic programs, on every op with
every mix of tensor / scalar / constant arguments, and on special values (+-0, +-inf, NaN,
negative bases, huge and subnormal magnitudes)."""
import hashlib
import itertools
import os

import numpy as np
import pytest

from automl import hashing, probe_math as pm
from automl.errors import InvalidCandidate, ParseError
from search_spaces.programs import ProgramSpace, interp
from search_spaces.programs.classic import ADAMW
from search_spaces.programs.mutation import descendant
from search_spaces.programs.ops import OP_LIST, TENSOR
from search_spaces.programs.parser import parse


@pytest.fixture(scope="module")
def J():
    if not pm.enable_compiled() or interp._jit() is None:
        pytest.skip("compiled probe unavailable (numba missing or AUTOML_PROBE_NUMBA=0)")
    return interp._jit()


def _same(a, b):
    """Bit-identical, except that any NaN equals any NaN (the quantizer tokenizes NaN payloads)."""
    a, b = np.asarray(a), np.asarray(b)
    nan = np.isnan(a)
    return (a.shape == b.shape and np.array_equal(nan, np.isnan(b))
            and np.array_equal(a.view(np.uint64)[~nan], b.view(np.uint64)[~nan]))


def _special_data(seed):
    """Probe-shaped lanes full of special values (S=3, L=9, N=128)."""
    rng = np.random.default_rng(seed)
    S, L, N = 3, 9, 128
    specials = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, np.inf, -np.inf, np.nan, 1e-310, -1e-310,
                         1e300, -1e300, 3.0, 1e-8, -1e-8])
    g = rng.standard_normal((S, L, N)) * 10.0 ** rng.uniform(-12, 12, (S, L, N))
    mask = rng.random((S, L, N)) < 0.4
    g[mask] = rng.choice(specials, mask.sum())
    w0 = rng.standard_normal((L, N)) * 10.0 ** rng.uniform(-5, 5, (L, N))
    w0[rng.random((L, N)) < 0.3] = rng.choice(specials, 1)[0]
    lrs = 10.0 ** rng.uniform(-6, 0, (S, L, 1))
    lrs[0, :3, 0] = [0.0, -0.0, 1.0]
    ts = np.arange(1, S + 1, dtype=np.float64)[:, None, None] + np.zeros((1, L, 1))
    ts[:, 4, 0] = [1e6, 1e6 + 1, 1e6 + 2]
    return w0, g, lrs, ts


def _programs_for(op):
    """``op`` applied to every mix of argument kinds (tensors g, w; scalars lr and a reduction;
    constants including pow's easy exponents, a non-easy even and odd integer and non-integers),
    as programs returning a tensor: every pair for unary and binary ops, a sample for ternary."""
    tensors, scalars = ["g", "w"], ["lr", "s"]
    consts = ["2.0", "-3.0", "0.5", "1.7", "-0.0", "6.0", "-5.0", "0.0", "-2.5"]
    if op.arg_types is not None:
        pools = [tensors if k == TENSOR else scalars + consts for k in op.arg_types]
    else:
        pools = [tensors + scalars + consts] * op.arity
    combos = list(itertools.product(*pools))
    if len(combos) > 60:
        rng = np.random.default_rng(len(op.name))
        combos = [combos[i] for i in rng.choice(len(combos), 60, replace=False)]
    out = []
    for args in combos:
        if op.symbol == "neg":
            call = f"-{args[0]}"
        elif op.symbol:
            call = f"{args[0]} {op.symbol} {args[1]}"
        else:
            call = f"{op.name}({', '.join(args)})"
        out.append("def p(w, g, m, v, lr, t):\n    s = dot(g, w)\n    m = interp(g, m, 0.9)\n"
                   f"    x = {call}\n    u = g * lr + x\n    return u, m, v\n")
    return out


def test_compiled_probe_matches_numpy_on_random_and_realistic_programs(J):
    space = ProgramSpace()
    rng = np.random.default_rng(7)
    progs = [space.sample(rng) for _ in range(250)]
    progs += [descendant(parse(ADAMW), rng, space.config, 25, min_live=12) for _ in range(80)]
    dj = interp._domain_json(None)
    data = interp.batch_data(hashing.PROBE_SEED, dj)
    n = 0
    for p in progs:
        if p.info.error:
            continue
        n += 1
        assert _same(interp.updates_compiled(p, *data), interp.updates_numpy(p, *data)), str(p)
    assert n > 200


@pytest.mark.parametrize("op", OP_LIST, ids=lambda o: o.name)
def test_every_op_matches_numpy_on_special_values(J, op):
    data = _special_data(len(op.name))
    checked = 0
    for text in _programs_for(op):
        try:
            p = parse(text)
        except (ParseError, InvalidCandidate):  # a mix the parser or type checker refuses
            continue
        if p.info.error:
            continue
        checked += 1
        assert _same(interp.updates_compiled(p, *data), interp.updates_numpy(p, *data)), text
    assert checked >= 2


def test_probe_digests_do_not_depend_on_the_compiled_kernel(J, monkeypatch):
    """The hash itself (probe + quantizer) is the same compiled and as numpy passes."""
    import automl
    space = ProgramSpace()
    rng = np.random.default_rng(11)
    progs = [descendant(parse(ADAMW), rng, space.config, 25, min_live=12) for _ in range(40)]
    h = automl.Hasher(space)
    compiled = [h.functional(p) for p in progs]
    monkeypatch.setattr(interp, "_JIT_MODULE", False)
    monkeypatch.setattr(hashing, "_QUANTIZER", False)
    assert [h.functional(p) for p in progs] == compiled
    assert len(set(compiled)) > 30  # the programs are not all one function


def test_compiled_quantizer_matches_numpy(J):
    rng = np.random.default_rng(0)
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-320, 1.7976931348623157e308, -1.7976931348623157e308]
    for trial in range(300):
        shape = [(4, 9, 16, 8), (64,), (3, 5), (), (7, 1), (2, 0)][trial % 6]
        a = rng.standard_normal(shape) * 10.0 ** rng.uniform(-300, 300, shape)
        flat = a.reshape(-1)
        for i in rng.integers(0, max(a.size, 1), size=int(rng.integers(0, 1 + a.size // 3))) if a.size else []:
            flat[i] = specials[rng.integers(0, len(specials))]
        if trial % 11 == 0 and a.size:
            flat[:] = np.nan
        bits = int(rng.choice([24, 8, 52, 1]))
        with np.errstate(all="ignore"):
            outs = [a, a * 2]
            try:
                hashing._QUANTIZER = None
                compiled = hashing._quantize(outs, bits, hashing.FLUSH)
                hashing._QUANTIZER = False
                numpy_ = hashing._quantize(outs, bits, hashing.FLUSH)
            finally:
                hashing._QUANTIZER = None
        assert compiled == numpy_, (shape, bits)


def test_kernel_cache_follows_the_inlined_probe_math():
    """numba caches _probe_jit by its own file: it must name the _probe_math_jit it inlines."""
    pytest.importorskip("numba")
    from search_spaces.programs import _probe_jit
    src = os.path.join(os.path.dirname(pm.__file__), "_probe_math_jit.py")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    assert _probe_jit.COMPILED_AGAINST == digest, (
        "automl/_probe_math_jit.py changed: set search_spaces/programs/_probe_jit.COMPILED_AGAINST = "
        f"{digest!r} (so numba recompiles the program kernel)")
