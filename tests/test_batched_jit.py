"""The compiled (numba) backend of the batched program interpreter
(search_spaces/programs/_batched_jit.py) against the torch interpreter it replaces on the CPU:
every op with every kind of argument on special values, reductions across tiles, whole
populations through training, thread independence, options and the fidelity."""
import hashlib
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from automl.errors import ConfigError
from evaluators.optimizer_proxy import OptimizerProxy
from evaluators.optimizer_proxy import tasks as T
from evaluators.optimizer_proxy.batched import train_population
from search_spaces.programs import ProgramSpace
from search_spaces.programs import _batched_jit as J
from search_spaces.programs.batched import BatchedPrograms, CompiledPrograms, mixed_population, plan
from search_spaces.programs.ops import OP_LIST

SPACE = ProgramSpace()
#: tensor values every op meets (signed zeros, infinities, NaN, tiny, huge, ±1 and ordinary ones)
SPECIAL = [-math.inf, -1e30, -100.0, -3.5, -1.0, -0.5, -1e-12, -0.0, 0.0, 1e-12, 0.5, 1.0, 2.0, 3.5, 100.0,
           1e30, math.inf, math.nan, 0.3, -0.7]


def _agree(a, b, rtol=2e-6):
    """float32 results of two correct implementations: the same NaNs and infinities, finite values
    within a few ulp (torch's transcendentals are SLEEF's float32 ones, within 1 ulp)."""
    a, b = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(a[~fin & ~np.isnan(a)], b[~fin & ~np.isnan(b)])
    np.testing.assert_allclose(a[fin], b[fin], rtol=rtol, atol=1e-37)


def _program(expr):
    return SPACE.from_text(f"def train(w, g, m, v, lr):\n  x = {expr}\n  return x, m, v\n")


ARGS = {"t": "g", "t2": "m", "s": "global_norm(v)", "c": "0.75", "lr": "lr"}


def _cases():
    for op in OP_LIST:
        if op.reduction:
            continue
        kinds = [("t",) * op.arity]
        if op.arity >= 2:
            kinds += [("t", "s") + ("t",) * (op.arity - 2), ("t", "c") + ("t2",) * (op.arity - 2),
                      ("c", "t") + ("t2",) * (op.arity - 2), ("lr", "t") + ("c",) * (op.arity - 2)]
        for k in kinds:
            yield op.name, k


@pytest.mark.parametrize("name,kinds", list(_cases()))
def test_every_op_and_argument_kind_agrees_with_the_torch_interpreter(name, kinds):
    args = [ARGS[k] if k != "t2" else "m" for k in kinds]
    if name in ("add", "sub", "mul", "truediv", "pow"):
        sym = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "pow": "**"}[name]
        expr = f"({args[0]}) {sym} ({args[1]})"
    elif name == "neg":
        expr = f"-{args[0]}"
    else:
        expr = f"{name}({', '.join(args)})"
    p = _program(expr)
    assert p.info.error is None, (expr, p.info.error)
    vals = torch.tensor(SPECIAL, dtype=torch.float32)
    n = len(SPECIAL)
    # every pair of special values: g takes each value against each value of m
    g = vals.repeat_interleave(n).unsqueeze(0)
    m = vals.repeat(n).unsqueeze(0)
    N = g.shape[1]
    w = torch.linspace(-2, 2, N).unsqueeze(0)
    v = torch.full((1, N), 0.25)
    a = BatchedPrograms([p], N).step(w, g, m, v, 0.01, 3.0)[0]
    b = CompiledPrograms([p], N).step(w, g, m, v, 0.01, 3.0)[0]
    huge = name in ("sin", "cos", "tan") or (name == "pow" and "c" not in kinds)
    if huge:  # float32 range reduction of 1e30 (SLEEF) vs float64 (exact): not comparable
        ok = ((g.abs() < 1e29) & (m.abs() < 1e29))[0]
        a, b = a[0][ok], b[0][ok]
    _agree(a, b, rtol=1e-5 if name in ("pow", "tan") else 2e-6)


REDUCING = [
    "def train(w, g, m, v, lr):\n  n = global_norm(g)\n  u = g / n\n  return u * lr, m, v\n",
    "def train(w, g, m, v, lr):\n  c = clip_by_global_norm(g, 0.5)\n  m = interp(c, m, 0.9)\n  return m * lr, m, v\n",
    "def train(w, g, m, v, lr):\n  d = dot(g, w)\n  s = cosine_sim(g, m)\n  x = g * d\n  y = x * s\n"
    "  z = clip_by_global_norm(y, lr)\n  n = global_norm(z)\n  u = z / n\n  return u, g, v\n",
    # a transcendental chain before the norm, read again after it: saved in pass 0, loaded in pass 1
    "def train(w, g, m, v, lr):\n  a = tanh(g)\n  b = arcsinh(a)\n  n = global_norm(b)\n  u = b / n\n"
    "  m = interp(b, m, 0.9)\n  return u * lr, m, v\n",
]


@pytest.mark.parametrize("N", [7, 1024, 5000])
def test_reductions_across_tiles_and_passes(N):
    """Whole-model reductions over rows longer than a tile (several passes, tiles recomputed),
    chained (a reduction of a value computed from another): as the torch interpreter."""
    progs = [SPACE.from_text(t) for t in REDUCING]
    gen = torch.Generator().manual_seed(N)
    w, g, m, v = (torch.randn(len(progs), N, generator=gen) for _ in range(4))
    cp = CompiledPrograms(progs, N)
    assert list(cp._progs[:, J.N_PASSES]) == [2, 2, 4, 2]
    assert list(cp._progs[:, J.N_SAVED]) == [0, 0, 1, 1]  # y (program 3), b (program 4)
    for x, y in zip(BatchedPrograms(progs, N).step(w, g, m, v, 0.01, 1.0), cp.step(w, g, m, v, 0.01, 1.0)):
        _agree(x, y, rtol=1e-5)


def test_random_populations_step_like_the_torch_interpreter():
    pop = mixed_population(96, seed=5, random_share=0.6)
    N = 2500
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(len(pop), N, generator=gen)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    g = torch.randn(len(pop), N, generator=gen) * 0.1
    a = BatchedPrograms(pop, N).step(w, g, m, v, 0.01, 1.0)
    b = CompiledPrograms(pop, N).step(w, g, m, v, 0.01, 1.0)
    close = 0
    for c in range(len(pop)):
        x = [t[c].numpy() for t in a]
        y = [t[c].numpy() for t in b]
        same = all(np.array_equal(np.isnan(p), np.isnan(q)) and np.allclose(p, q, rtol=1e-4, atol=1e-6,
                                                                                equal_nan=True)
                   for p, q in zip(x, y))
        close += same
    # a program that cancels catastrophically (m - lr / (1 - 0.9 m)) amplifies one float32 rounding
    # difference (torch and IEEE float32 differ in the last bit of some divisions); all others agree
    assert close >= len(pop) - 3


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_training_with_either_backend_equals_the_per_candidate_reference(backend):
    progs = mixed_population(40, seed=2)
    batched = train_population(["mlp"], progs, steps=12, lr=0.01, backend=backend)
    for p, b in zip(progs, batched):
        ref = T.train("mlp", p, steps=12, lr=0.01)
        assert (b.diverged is None) == (ref.diverged is None), (SPACE.to_text(p), b.diverged, ref.diverged)
        if ref.diverged is None:
            assert b.results["mlp"].val_loss == pytest.approx(ref.val_loss, rel=1e-4)


def test_results_do_not_depend_on_threads_or_the_generation():
    """Each row is computed alone: the same bits on 1 or 2 threads and inside any generation."""
    pop = mixed_population(48, seed=7)
    before = torch.get_num_threads()
    base = dict(tasks=["mlp", "charlm"], steps=10, batch=48, screen=2, backend="numba")
    one = OptimizerProxy(**base).evaluate_batch(pop)
    two = OptimizerProxy(**base, threads=2)
    assert two.fidelity() == OptimizerProxy(**base).fidelity()
    got = two.evaluate_batch(pop)
    alone = OptimizerProxy(**base).evaluate_batch(pop[5:9])
    for x, y in zip(one, got):
        assert x.objectives.keys() == y.objectives.keys()
        assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(x.objectives.values(),
                                                                               y.objectives.values()))
    for x, y in zip(one[5:9], alone):
        assert x.objectives == y.objectives or math.isnan(x.objectives["val_loss"])
    assert torch.get_num_threads() == before  # restored


def test_backend_option_fidelity_and_errors():
    auto = OptimizerProxy(tasks=["mlp"], steps=5, batch=8)
    assert auto.backend == "numba" and auto.fidelity()["kernel"] == "numba"
    tor = OptimizerProxy(tasks=["mlp"], steps=5, batch=8, backend="torch")
    assert "kernel" not in tor.fidelity() and tor.fidelity()["batched"] is True
    assert "kernel" not in OptimizerProxy(tasks=["mlp"], steps=5).fidelity()
    with pytest.raises(ConfigError, match="backend must be one of"):  # (named by resolve_backend)
        OptimizerProxy(batch=8, backend="fast")
    with pytest.raises(ConfigError, match="batch > 1"):
        OptimizerProxy(backend="numba")
    with pytest.raises(ConfigError, match="threads"):
        OptimizerProxy(batch=8, threads=0)
    with pytest.raises(ValueError, match="CPU"):
        plan(mixed_population(2), 10, device="cpu", dtype=torch.float64, backend="numba")
    assert isinstance(plan(mixed_population(2), 10, dtype=torch.float64), BatchedPrograms)
    with pytest.raises(ValueError, match="float32 CPU"):
        CompiledPrograms(mixed_population(2), 10).step(*(torch.zeros(2, 11) for _ in range(4)), 0.1, 1.0)


def test_numba_cache_names_the_inlined_kernels_digest():
    import automl

    path = os.path.join(os.path.dirname(automl.__file__), "_probe_math_jit.py")
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
    assert J.COMPILED_AGAINST == digest, (
        f"automl/_probe_math_jit.py changed: set search_spaces/programs/_batched_jit.COMPILED_AGAINST = {digest!r}")
