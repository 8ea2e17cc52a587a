"""search_spaces.programs.optim.ProgramOptimizer: programs as torch optimizers."""
import io
import itertools
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from automl.errors import ConfigError, InvalidCandidate, ParseError  # noqa: E402
from search_spaces.programs.optim import ProgramOptimizer  # noqa: E402
from search_spaces.programs import CLASSIC_PROGRAMS, OP_LIST, ProgramSpace, parse, run  # noqa: E402
from search_spaces.programs.interp import probe_data  # noqa: E402

STEPS = 300
H = "def train(w, g, m, v, lr):\n"


def make_model(dtype=torch.float64, device="cpu"):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(dtype).to(device)


def data(dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=g, dtype=torch.float64)
    y = torch.randn(64, 1, generator=g, dtype=torch.float64)
    return x.to(dtype).to(device), y.to(dtype).to(device)


def train(make_opt, steps=STEPS, dtype=torch.float64, device="cpu", schedule=True, model=None):
    net = model if model is not None else make_model(dtype, device)
    x, y = data(dtype, device)
    opt = make_opt(net.parameters())
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if schedule else None
    for s in range(steps):
        i = (s * 16) % 64
        opt.zero_grad()
        loss = ((net(x[i:i + 16]) - y[i:i + 16]) ** 2).mean()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()]), opt


def lion(ps):
    from lion_pytorch import Lion

    return Lion(ps, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.01)


REFERENCES = {
    "lion": (lion, 1e-3),
    "adamw": (lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01), 1e-2),
    "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-2), 1e-2),
    "momentum": (lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9), 1e-2),
    "sgd": (lambda ps: torch.optim.SGD(ps, lr=1e-2), 1e-2),
    "rmsprop": (lambda ps: torch.optim.RMSprop(ps, lr=1e-3), 1e-3),
    "adagrad": (lambda ps: torch.optim.Adagrad(ps, lr=1e-2), 1e-2),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["fast", "generic"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_classic_programs_match_torch_optimizers(name, foreach):
    if name == "lion":
        pytest.importorskip("lion_pytorch")
    make_ref, lr = REFERENCES[name]
    ref, _ = train(make_ref)
    got, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS[name], lr=lr, foreach=foreach))
    start = torch.cat([p.detach().flatten() for p in make_model().parameters()])
    assert (ref - start).abs().max() > 1e-2  # the weights really moved
    assert (ref - got).abs().max().item() <= 1e-12


def test_lr_schedule_is_fed_to_the_program():
    a, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["sgd"], lr=1e-2), steps=50)
    b, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["sgd"], lr=1e-2), steps=50, schedule=False)
    assert (a - b).abs().max() > 1e-6


def test_import_automl_does_not_import_torch():
    code = "import sys, automl, search_spaces.programs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_accepts_text_genome_and_log_record():
    text = CLASSIC_PROGRAMS["adamw"]
    results = []
    for program in (text, parse(text), {"candidate": text, "id": 3}, {"candidate": text, "space": "optimizer-programs"}):
        got, opt = train(lambda ps: ProgramOptimizer(ps, program, lr=1e-2), steps=20)
        assert opt.program_text == text
        results.append(got)
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_bad_programs_raise():
    net = make_model()
    with pytest.raises(ParseError):
        ProgramOptimizer(net.parameters(), H + "  u = g.real\n  return u, m, v\n")
    with pytest.raises(InvalidCandidate):
        ProgramOptimizer(net.parameters(), H + "  u = lr * 2.0\n  return u, m, v\n")
    with pytest.raises(ConfigError):
        ProgramOptimizer(net.parameters(), {"text": "no candidate key"})


def test_state_dict_round_trip():
    prog = CLASSIC_PROGRAMS["adam"]
    net = make_model()
    x, y = data()
    opt = ProgramOptimizer(net.parameters(), prog, lr=1e-2)

    def steps(net, opt, k, start):
        for s in range(start, start + k):
            opt.zero_grad()
            ((net(x[s % 4 * 16:s % 4 * 16 + 16]) - y[s % 4 * 16:s % 4 * 16 + 16]) ** 2).mean().backward()
            opt.step()

    steps(net, opt, 7, 0)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    sd = opt.state_dict()
    assert sd["program"] == prog
    first = next(iter(sd["state"].values()))
    assert set(first) == {"step", "m", "v"} and first["step"] == 7
    steps(net, opt, 5, 7)
    straight = torch.cat([p.detach().flatten() for p in net.parameters()])

    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    net2 = make_model()
    net2.load_state_dict(saved["model"])
    opt2 = ProgramOptimizer(net2.parameters(), prog, lr=1e-2)
    opt2.load_state_dict(saved["opt"])
    steps(net2, opt2, 5, 7)
    resumed = torch.cat([p.detach().flatten() for p in net2.parameters()])
    assert torch.equal(straight, resumed)

    other = ProgramOptimizer(make_model().parameters(), CLASSIC_PROGRAMS["adamw"], lr=1e-2)
    with pytest.raises(ConfigError):
        other.load_state_dict(saved["opt"])


def test_only_live_slots_are_stored():
    _, opt = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["lion"], lr=1e-3), steps=3)
    assert all(set(st) == {"step", "m"} for st in opt.state.values())
    _, opt = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["sgd"], lr=1e-3), steps=3)
    assert all(set(st) == {"step"} for st in opt.state.values())


def test_dtype_follows_the_parameters():
    got32, opt = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adam"], lr=1e-2), steps=30,
                       dtype=torch.float32)
    assert got32.dtype == torch.float32
    assert all(st["m"].dtype == torch.float32 for st in opt.state.values())
    got64, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adam"], lr=1e-2), steps=30)
    assert (got32.double() - got64).abs().max() < 1e-4


def test_whole_model_reductions_sum_over_all_parameters():
    text = H + "  n = global_norm(g)\n  u = g / n\n  u = u * lr\n  d = dot(g, w)\n  u = u + d\n  return u, m, v\n"
    a = torch.randn(3, 4, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    ga, gb = torch.randn_like(a), torch.randn_like(b)
    for foreach in (True, False):
        pa, pb = a.clone(), b.clone()
        pa.grad, pb.grad = ga.clone(), gb.clone()
        ProgramOptimizer([pa, pb], text, lr=0.5, foreach=foreach).step()
        norm = torch.sqrt((ga ** 2).sum() + (gb ** 2).sum())
        dot = (ga * a).sum() + (gb * b).sum()
        torch.testing.assert_close(pa, a - (0.5 * ga / norm + dot), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(pb, b - (0.5 * gb / norm + dot), rtol=1e-14, atol=1e-14)


def test_params_at_different_step_counts_match_torch_adam():
    """A parameter without a gradient is skipped and keeps its own step count (bias correction)."""
    def run(make):
        torch.manual_seed(0)
        a = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
        b = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
        opt = make([a, b])
        for s in range(12):
            opt.zero_grad(set_to_none=True)
            loss = (a ** 2).sum() + ((b ** 3).sum() if s % 3 else 0.0)
            loss.backward()
            opt.step()
        return torch.cat([a.detach(), b.detach()]), opt

    ref, _ = run(lambda ps: torch.optim.Adam(ps, lr=0.1))
    for foreach in (True, False):
        got, opt = run(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adam"], lr=0.1, foreach=foreach))
        assert sorted(st["step"] for st in opt.state.values()) == [8, 12]
        assert (ref - got).abs().max() <= 1e-14


def test_param_groups_use_their_own_lr():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = ProgramOptimizer([{"params": [a], "lr": 0.1}, {"params": [b]}], CLASSIC_PROGRAMS["sgd"], lr=0.5)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt.step()
    assert torch.allclose(a, torch.full_like(a, 0.9)) and torch.allclose(b, torch.full_like(b, 0.5))


def test_closure_and_skipped_params():
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    q = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))  # never gets a gradient
    opt = ProgramOptimizer([p, q], CLASSIC_PROGRAMS["sgd"], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 2.0
    assert torch.allclose(p, torch.full_like(p, 0.8)) and torch.equal(q, torch.ones_like(q))
    assert q not in opt.state


def test_scratch_buffers_are_reused():
    big = [torch.nn.Parameter(torch.randn(200, 100)), torch.nn.Parameter(torch.randn(100))]
    opt = ProgramOptimizer(big, CLASSIC_PROGRAMS["adamw"], lr=1e-3)
    for _ in range(2):
        for p in big:
            p.grad = torch.randn_like(p)
        opt.step()
    (_, scratch), = opt._scratch.values()
    pool = len(scratch.free)
    ids = {id(t) for buf in scratch.free for t in buf}
    for _ in range(3):
        opt.step()
    assert len(scratch.free) == pool
    assert {id(t) for buf in scratch.free for t in buf} | {id(st[k]) for st in opt.state.values() for k in "mv"} \
        >= ids


# --- agreement with the numpy interpreter (the hash's semantics) -----------------------------------

def _torch_trajectory(p, foreach):
    w0, grads, lrs = probe_data(20231)
    ws = [torch.tensor(w0[:200].copy()), torch.tensor(w0[200:].copy())]
    opt = ProgramOptimizer(ws, p, lr=0.1, foreach=foreach)
    traj = [w0]
    for g, lr in zip(grads, lrs):
        ws[0].grad, ws[1].grad = torch.tensor(g[:200].copy()), torch.tensor(g[200:].copy())
        opt.param_groups[0]["lr"] = float(lr)
        opt.step()
        traj.append(torch.cat([w.detach() for w in ws]).numpy().copy())
    return np.array(traj)


def _numpy_trajectory(p):
    w0, grads, lrs = probe_data(20231)
    updates, _, _ = run(p, w0, grads, lrs)
    traj = [w0]
    for u in updates:
        traj.append(traj[-1] - u)
    return np.array(traj)


def test_optimizer_agrees_with_the_numpy_interpreter_on_random_programs():
    space = ProgramSpace()
    rng = np.random.default_rng(4)
    n, whole, first = 120, 0, 0
    for _ in range(n):
        p = space.sample(rng)
        for _ in range(int(rng.integers(0, 4))):
            p = space.mutate(p, rng)
        with np.errstate(all="ignore"):
            ref = _numpy_trajectory(p)
            for foreach in (True, False):
                got = _torch_trajectory(p, foreach)
                # one step from the same state agrees but for ill-conditioned programs: the interpreter's
                # transcendentals are automl.probe_math's (a few ulp from libm's), and e.g. tan(log(g*g)/1e-8)
                # amplifies an ulp of log by 1e10; chaotic programs (arctanh(tanh(w)), sqrt(w)**2 near 0)
                # may amplify last-bit differences over later steps
                first += np.allclose(ref[1], got[1], rtol=1e-9, atol=1e-12, equal_nan=True)
                whole += np.allclose(ref, got, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert first >= 0.98 * 2 * n and whole >= 0.95 * 2 * n


ORDINARY = np.array([-3.0, -1.5, -0.7, -0.2, -1e-9, 0.0, 1e-9, 0.3, 0.6, 0.95, 1.0, 2.5, 7.0])
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0])


@pytest.mark.parametrize("spec", [s for s in OP_LIST if s.arg_types is None], ids=lambda s: s.name)
def test_every_elementwise_op_matches_numpy(spec):
    """torch (fast and generic paths, tensor and scalar arguments) vs numpy, op by op."""
    from search_spaces.programs.optim import _apply

    values = ORDINARY if spec.name in ("pow", "interp") else np.concatenate([ORDINARY, SPECIAL])
    grids = np.meshgrid(*[values] * spec.arity, indexing="ij")
    cols = [g.ravel() for g in grids]
    for kinds in itertools.product(("tensor", "scalar"), repeat=spec.arity):
        if "tensor" not in kinds:
            continue
        # scalar arguments: each value in turn, with the tensor arguments over the full grid
        scalar_pos = [k for k, kind in enumerate(kinds) if kind == "scalar"]
        for svals in itertools.product(values[::3], repeat=len(scalar_pos)):
            args_np, args_t = [], []
            it = iter(svals)
            for k, kind in enumerate(kinds):
                if kind == "tensor":
                    args_np.append(cols[k])
                    args_t.append([torch.tensor(cols[k].copy())])
                else:
                    s = float(next(it))
                    args_np.append(np.float64(s))
                    args_t.append(s)
            with np.errstate(all="ignore"):
                ref = np.broadcast_to(spec.np(*args_np), cols[0].shape)
            for fast in (True, False):
                from search_spaces.programs.optim import _Scratch

                scratch = _Scratch([torch.empty(cols[0].shape, dtype=torch.float64)]) if fast else None
                out = _apply(spec, [list(a) if isinstance(a, list) else a for a in args_t], None, 1, scratch)
                np.testing.assert_allclose(out[0].numpy(), ref, rtol=1e-14, atol=0, equal_nan=True,
                                           err_msg=f"{spec.name} {kinds} {svals} fast={fast}")


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_torch_adamw_and_cpu():
    ref, _ = train(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.01), steps=100, device="cuda")
    got, opt = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adamw"], lr=1e-2), steps=100, device="cuda")
    assert got.device.type == "cuda"
    assert all(st["m"].device.type == "cuda" for st in opt.state.values())
    assert (ref - got).abs().max().item() <= 1e-12
    cpu, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["adamw"], lr=1e-2), steps=100)
    assert (cpu - got.cpu()).abs().max().item() <= 1e-10
    # whole-model reductions stay on the device; per-tensor (generic) path too
    text = H + "  n = global_norm(g)\n  c = cosine_sim(g, m)\n  u = g / n\n  u = u * lr\n  u = u + c\n" \
        "  m = clip_by_global_norm(g, 1.0)\n  return u, m, v\n"
    a, _ = train(lambda ps: ProgramOptimizer(ps, text, lr=1e-3), steps=5, device="cuda")
    b, _ = train(lambda ps: ProgramOptimizer(ps, text, lr=1e-3, foreach=False), steps=5, device="cuda")
    c, _ = train(lambda ps: ProgramOptimizer(ps, text, lr=1e-3), steps=5)
    assert (a - b).abs().max().item() <= 1e-12 and (a.cpu() - c).abs().max().item() <= 1e-12


@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_lion():
    pytest.importorskip("lion_pytorch")
    ref, _ = train(lion, steps=100, device="cuda")
    got, _ = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["lion"], lr=1e-3), steps=100, device="cuda")
    assert (ref - got).abs().max().item() <= 1e-12


def test_interp_of_a_reduction_and_a_tensor_broadcasts():
    """interp(scalar from a reduction, tensor, a) once tried to add in place into the scalar."""
    import torch

    from search_spaces.programs.optim import ProgramOptimizer

    text = ("def train(w, g, m, v, lr):\n  c = cosine_sim(g, g)\n  v = interp(c, v, 0.9)\n"
            "  u = v * g\n  update = u * lr\n  return update, m, v\n")
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    for foreach in (True, False):
        opt = ProgramOptimizer([p], text, lr=0.1, foreach=foreach)
        p.grad = torch.full_like(p, 2.0)
        opt.step()
    assert torch.isfinite(p).all()


@pytest.mark.parametrize("backend", ["foreach", "interp"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_min_max_clip_constants_beyond_the_dtype_range(backend, dtype):
    """A program constant a float32 (or half) tensor cannot hold, as a min/max/clip bound, acts as
    the dtype's conversion of it (inf) instead of torch refusing the clamp (an evolved program
    with clip(g, -1e300, 1e300) crashed a batched-benchmark step)."""
    text = ("def train(w, g, m, v, lr):\n  a = clip(g, -1e300, 1e300)\n  b = min(a, 1e300)\n"
            "  c = max(-1e300, b)\n  update = c * lr\n  return update, m, v\n")
    plain = "def train(w, g, m, v, lr):\n  update = g * lr\n  return update, m, v\n"
    g = torch.randn(6, dtype=dtype)
    out = []
    for prog in (text, plain):
        w = torch.nn.Parameter(torch.linspace(-1, 1, 6, dtype=dtype))
        w.grad = g.clone()
        ProgramOptimizer([w], prog, lr=0.1, backend=backend).step()
        out.append(w.detach())
    assert torch.equal(out[0], out[1])
