"""ProgramOptimizer honours what torch's generic optimizer tests (torch/testing/_internal/common_optimizers.py,
test/test_optim.py) expect of every torch optimizer: deepcopy/pickle, tensor lr, per-group hyper-parameters,
state_dict round trips, LR schedulers, step hooks, zero_grad, closures; and its backends agree."""
import copy
import io
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from automl.errors import ConfigError  # noqa: E402
from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace  # noqa: E402
from search_spaces.programs import optim as optim_mod  # noqa: E402
from search_spaces.programs.optim import ProgramOptimizer, hyperparameter_names  # noqa: E402
from search_spaces.programs.parser import named_constants, parse  # noqa: E402
from test_optim import REFERENCES  # noqa: E402  (the reference optimizers: one table for both files)

H = "def train(w, g, m, v, lr):\n"
CHEAP = ["interp", "foreach"]  # the compile backend has its own tests below (compiling costs seconds)


def make_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def batches():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 16, 5, generator=g, dtype=torch.float64), torch.randn(8, 16, 1, generator=g,
                                                                                 dtype=torch.float64)


X, Y = batches()


def run(net, opt, steps, start=0, sched=None, each=None):
    for s in range(start, start + steps):
        if each is not None:
            each(s, opt)
        opt.zero_grad()
        ((net(X[s % 8]) - Y[s % 8]) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()
    return flat(net)


def flat(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def groups(net, **no_decay):
    """torch's usual pattern: weights decay, biases not."""
    decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in net.named_parameters() if not n.endswith("weight")]
    return [{"params": decay}, {"params": rest, **no_decay}]


# --- deepcopy, pickle, torch.save ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", CHEAP)
def test_deepcopy_pickle_and_torch_save_keep_the_program_and_continue_identically(backend):
    net = make_net()
    opt = ProgramOptimizer(groups(net, weight_decay=0.0), CLASSIC_PROGRAMS["adamw"], lr=1e-2, backend=backend)
    run(net, opt, 5)
    buf = io.BytesIO()
    torch.save((net, opt), buf)
    buf.seek(0)
    copies = [copy.deepcopy((net, opt)), pickle.loads(pickle.dumps((net, opt))), torch.load(buf, weights_only=False)]
    straight = run(net, opt, 6, start=5)
    for net2, opt2 in copies:
        assert opt2.program_text == opt.program_text and opt2.backend == backend
        # the public attributes torch's test_deepcopy_copies_all_public_attrs compares
        for attr in ("defaults", "program_text", "backend", "hyperparameters"):
            assert getattr(opt2, attr) == getattr(opt, attr), attr
        assert torch.equal(run(net2, opt2, 6, start=5), straight)


def test_load_state_dict_keeps_the_program():
    """torch's load_state_dict calls __setstate__ with only state and param_groups."""
    net = make_net()
    opt = ProgramOptimizer(net.parameters(), CLASSIC_PROGRAMS["lion"], lr=1e-3)
    run(net, opt, 3)
    opt.load_state_dict(opt.state_dict())
    assert opt.program_text == CLASSIC_PROGRAMS["lion"]
    run(net, opt, 2, start=3)


# --- state_dict round trip into a fresh optimizer --------------------------------------------------

@pytest.mark.parametrize("backend", CHEAP)
def test_state_dict_into_a_fresh_optimizer_continues_bit_identically(backend):
    net = make_net()
    opt = ProgramOptimizer(groups(net, weight_decay=0.0, lr=3e-3), CLASSIC_PROGRAMS["adamw"], lr=1e-2,
                           backend=backend)
    run(net, opt, 7)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    straight = run(net, opt, 5, start=7)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # tensors, numbers and the program text only
    net2 = make_net(seed=3)
    net2.load_state_dict(saved["model"])
    opt2 = ProgramOptimizer(groups(net2), CLASSIC_PROGRAMS["adamw"], lr=0.5, backend=backend)  # defaults differ
    opt2.load_state_dict(saved["opt"])
    assert [g["weight_decay"] for g in opt2.param_groups] == [0.01, 0.0]  # per-group values come back
    assert [g["lr"] for g in opt2.param_groups] == [1e-2, 3e-3]
    assert torch.equal(run(net2, opt2, 5, start=7), straight)


# --- tensor lr ---------------------------------------------------------------------------------------

def test_tensor_lr_must_be_one_element_like_torch():
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="Tensor lr must be 1-element"):
        ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], lr=torch.tensor([0.1, 0.2]))
    with pytest.raises(ConfigError, match="Tensor lr must be 1-element"):
        ProgramOptimizer([{"params": [p], "lr": torch.tensor([0.1, 0.2])}], CLASSIC_PROGRAMS["sgd"])
    opt = ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], lr=0.1)
    opt.param_groups[0]["lr"] = torch.tensor([0.1, 0.2])  # set behind the optimizer's back
    p.grad = torch.ones_like(p)
    with pytest.raises(ConfigError, match="Tensor lr must be 1-element"):
        opt.step()
    assert torch.equal(p, torch.ones_like(p))
    with pytest.raises(ConfigError, match="Invalid learning rate"):
        ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], lr=-1.0)


@pytest.mark.parametrize("backend", CHEAP)
def test_one_element_tensor_lr_equals_float_lr_on_scalar_and_matrix_params(backend):
    results = []
    f64 = dict(dtype=torch.float64)
    for lr in (0.05, torch.tensor(0.05, **f64), torch.tensor([0.05], **f64), torch.tensor([[0.05]], **f64)):
        torch.manual_seed(0)
        ps = [torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64)),  # a 0-dim parameter
              torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))]
        opt = ProgramOptimizer(ps, CLASSIC_PROGRAMS["adam"], lr=lr, backend=backend)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)  # fill_() on a tensor lr
        for _ in range(5):
            for p in ps:
                p.grad = torch.cos(p.detach() * 3)
            opt.step()
            sched.step()
        assert ps[0].shape == ()
        results.append(torch.cat([p.detach().flatten() for p in ps]))
    assert all(torch.equal(results[0], r) for r in results[1:])


# --- per-group hyper-parameters ------------------------------------------------------------------------

def test_hyperparameter_names():
    assert ProgramOptimizer([torch.zeros(1, requires_grad=True)], CLASSIC_PROGRAMS["adamw"]).hyperparameters == {
        "beta1": 0.9, "beta2": 0.999, "eps": 1e-08, "weight_decay": 0.01}
    text = H + "  b = 0.9\n  decay = 0.003\n  c = interp(g, m, b)\n  u = sign(c)\n  wd = w * decay\n" \
        "  u = u + wd\n  u = u * lr\n  m2 = interp(g, m, 0.97)\n  return u, m2, v\n"
    assert named_constants(text) == [("b", 0.9), ("decay", 0.003)]
    prog = parse(text)
    assert hyperparameter_names(prog, text) == {"b": 0.9, "decay": 0.003, "c3": 0.97}
    assert hyperparameter_names(prog) == {"c1": 0.9, "c2": 0.003, "c3": 0.97}  # stable positional names
    assert hyperparameter_names(prog, text, {"beta2": 0.97}) == {"b": 0.9, "decay": 0.003, "beta2": 0.97}
    with pytest.raises(ConfigError, match="not a tunable constant"):
        hyperparameter_names(prog, None, {"beta2": 0.5})
    with pytest.raises(ConfigError, match="cannot name"):
        hyperparameter_names(prog, None, {"lr": 0.9})
    with pytest.raises(ConfigError, match="two names"):
        hyperparameter_names(prog, None, {"a": 0.9, "b": 0.9})
    # structural constants (0, ±1, ±2, 0.5) shape the program and are not offered
    assert hyperparameter_names(parse(H + "  u = g * 0.5\n  u = u * lr\n  return u, m, v\n")) == {}


def test_no_decay_group_matches_torch_adamw():
    def make(opt_factory):
        net = make_net()
        return net, opt_factory(groups(net, weight_decay=0.0, lr=3e-3))

    net_ref, ref = make(lambda gs: torch.optim.AdamW(gs, lr=1e-2, weight_decay=0.05, betas=(0.8, 0.99)))
    want = run(net_ref, ref, 100)
    for backend in CHEAP:
        net, opt = make(lambda gs: ProgramOptimizer(gs, CLASSIC_PROGRAMS["adamw"], lr=1e-2, weight_decay=0.05,
                                                    beta1=0.8, beta2=0.99, backend=backend))
        got = run(net, opt, 100)
        assert (got - want).abs().max().item() <= 1e-12
    # without the per-group override the biases decay: a different trajectory
    net, opt = make(lambda gs: ProgramOptimizer([{"params": gs[0]["params"] + gs[1]["params"]}],
                                                CLASSIC_PROGRAMS["adamw"], lr=1e-2, weight_decay=0.05, beta1=0.8,
                                                beta2=0.99))
    assert (run(net, opt, 100) - want).abs().max().item() > 1e-6


def test_lion_groups_match_lion_pytorch():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    net_ref = make_net()
    ref = lion_pytorch.Lion(groups(net_ref, weight_decay=0.0, betas=(0.95, 0.98)), lr=1e-3, weight_decay=0.1)
    want = run(net_ref, ref, 60)
    net = make_net()
    opt = ProgramOptimizer(groups(net, weight_decay=0.0, beta1=0.95, beta2=0.98), CLASSIC_PROGRAMS["lion"], lr=1e-3,
                           weight_decay=0.1)
    assert (run(net, opt, 60) - want).abs().max().item() <= 1e-12


def test_unknown_hyperparameters_are_errors():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ConfigError, match="'weight_decay'.*hyper-parameters are: lr$|'weight_decay'"):
        ProgramOptimizer([{"params": [p], "weight_decay": 0.0}], CLASSIC_PROGRAMS["sgd"])  # SGD has no constant
    with pytest.raises(ConfigError, match="'maximize'"):
        ProgramOptimizer([p], CLASSIC_PROGRAMS["adamw"], maximize=True)
    opt = ProgramOptimizer([p], CLASSIC_PROGRAMS["adamw"])
    with pytest.raises(ConfigError, match="'betas'"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "betas": (0.9, 0.99)})
    with pytest.raises(ConfigError, match="weight_decay must be a real number"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "weight_decay": "0.1"})
    with pytest.raises(ConfigError, match="unknown backend"):
        ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], backend="triton")
    with pytest.raises(ConfigError, match="contradicts"):
        ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], backend="compile", foreach=False)


# --- schedulers --------------------------------------------------------------------------------------

def test_one_cycle_lr_cycles_the_momentum_hyperparameter_like_torch_sgd():
    """OneCycleLR writes both lr and the group's "momentum" every step; the momentum program reads both."""
    def train(make):
        net = make_net()
        opt = make(net.parameters())
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=40, base_momentum=0.8,
                                                    max_momentum=0.95)
        return run(net, opt, 40, sched=sched), opt

    want, _ = train(lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9))
    for backend in CHEAP:
        got, opt = train(lambda ps: ProgramOptimizer(ps, CLASSIC_PROGRAMS["momentum"], lr=0.01, backend=backend))
        assert opt.param_groups[0]["momentum"] != 0.9  # the scheduler really moved it
        assert (got - want).abs().max().item() <= 1e-12


def test_a_weight_decay_schedule_takes_effect_per_group():
    def sched(s, opt):
        opt.param_groups[0]["weight_decay"] = 0.1 * (1 + s % 3)

    net_ref = make_net()
    ref = torch.optim.AdamW(groups(net_ref, weight_decay=0.0), lr=1e-2)
    want = run(net_ref, ref, 30, each=sched)
    net = make_net()
    opt = ProgramOptimizer(groups(net, weight_decay=0.0), CLASSIC_PROGRAMS["adamw"], lr=1e-2)
    assert (run(net, opt, 30, each=sched) - want).abs().max().item() <= 1e-12


# --- hooks, zero_grad, closures, printing ----------------------------------------------------------

def test_step_hooks_run_in_order():
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    opt = ProgramOptimizer([p], CLASSIC_PROGRAMS["sgd"], lr=0.1)
    calls = []
    handles = [opt.register_step_pre_hook(lambda o, a, k: calls.append(("pre", p[0].item()))),
               opt.register_step_post_hook(lambda o, a, k: calls.append(("post", p[0].item()))),
               register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global pre", p[0].item()))),
               register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global post", p[0].item())))]
    try:
        p.grad = torch.ones_like(p)
        opt.step()
    finally:
        for h in handles:
            h.remove()
    assert calls == [("global pre", 1.0), ("pre", 1.0), ("post", 0.9), ("global post", 0.9)]
    p.grad = torch.ones_like(p)
    opt.step()  # removed hooks stay removed
    assert len(calls) == 4


def test_zero_grad_and_steps_without_gradients_are_no_ops():
    net = make_net()
    opt = ProgramOptimizer(net.parameters(), CLASSIC_PROGRAMS["adam"], lr=1e-2)
    before = flat(net)
    opt.step()  # no gradients at all
    assert torch.equal(flat(net), before) and len(opt.state) == 0
    run(net, opt, 2)
    opt.zero_grad()  # set_to_none=True (torch's default)
    assert all(p.grad is None for p in net.parameters())
    ((net(X[0]) - Y[0]) ** 2).mean().backward()
    opt.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in net.parameters())
    after = flat(net)
    opt.step()  # zero gradients still move Adam's weights through its momentum, as torch.optim.Adam does
    assert not torch.equal(flat(net), after)
    assert all(st["step"] == 3 for st in opt.state.values())


def test_closure_is_called_once_and_its_loss_returned():
    net = make_net()
    opt = ProgramOptimizer(net.parameters(), CLASSIC_PROGRAMS["lion"], lr=1e-3)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = ((net(X[0]) - Y[0]) ** 2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1 and loss.requires_grad and "Parameter Group 0" in repr(opt) and "weight_decay" in repr(opt)


# --- backends -----------------------------------------------------------------------------------------

def _trajectory(program, backend, steps=4, lowered=False, late=False):
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(6, 3, dtype=torch.float64)), torch.nn.Parameter(torch.randn(5, dtype=torch.float64))]
    opt = ProgramOptimizer(ps, program, lr=0.05, backend=backend)
    if lowered:  # the compile backend's lowered step, run eagerly (what torch.compile traces)
        opt._compiled = lambda *a: optim_mod._lowered_step(opt._straight, *a)
        opt._compiled_ran = True
    g = torch.Generator().manual_seed(5)
    out = []
    for s in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
        if late and s == 0:
            ps[1].grad = None  # then the two parameters' step counts differ: t per parameter
        opt.step()
        out.append(torch.cat([p.detach().flatten() for p in ps]).numpy().copy())
    return np.array(out)


def test_lowered_step_agrees_with_the_interpreter_on_random_programs():
    """The straight-line lowering that backend "compile" hands to torch.compile (host prelude + body), run
    eagerly, on random programs (reductions, swapped and aliased slots, per-parameter t) against "interp"."""
    space = ProgramSpace()
    rng = np.random.default_rng(7)
    agree = 0
    for k in range(60):
        p = space.sample(rng)
        for _ in range(int(rng.integers(0, 4))):
            p = space.mutate(p, rng)
        with np.errstate(all="ignore"):
            a = _trajectory(p, "interp", late=k % 2 == 1)
            b = _trajectory(p, "compile", lowered=True, late=k % 2 == 1)
        agree += np.allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True)
    assert agree >= 57  # chaotic programs may amplify last-bit differences (see test_optim.py)
    adam = CLASSIC_PROGRAMS["adam"]  # bias corrections with t per parameter
    np.testing.assert_allclose(_trajectory(adam, "compile", lowered=True, late=True),
                               _trajectory(adam, "interp", late=True), rtol=1e-14, atol=0)
    assert not np.allclose(_trajectory(adam, "interp", late=True), _trajectory(adam, "interp"))
    swap = H + "  u = g * lr\n  return u, v, m\n"  # m and v exchange buffers every step
    alias = H + "  m2 = m + g\n  u = m * lr\n  return u, m2, m\n"  # v takes m's old value while m moves on
    for text in (swap, alias):
        np.testing.assert_array_equal(_trajectory(text, "interp"), _trajectory(text, "compile", lowered=True))


@pytest.mark.parametrize("name", list(REFERENCES))
def test_lowered_step_matches_every_classic_optimizer(name):
    """What backend "compile" traces, run eagerly: float64 within 1e-12 of torch.optim / lion-pytorch over
    200 steps with a cosine schedule (the compiled graph itself is checked below for AdamW and Lion)."""
    make_ref, lr = REFERENCES[name]

    def train(make):
        net = make_net()
        opt = make(net.parameters())
        return run(net, opt, 200, sched=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200))

    want = train(make_ref)

    def lowered(ps):
        opt = ProgramOptimizer(ps, CLASSIC_PROGRAMS[name], lr=lr, backend="compile")
        opt._compiled = lambda *a: optim_mod._lowered_step(opt._straight, *a)
        opt._compiled_ran = True
        return opt

    assert (train(lowered) - want).abs().max().item() <= 1e-12


def test_host_prelude_blocks_agree_with_the_per_step_scalars(monkeypatch):
    """Backend "compile" computes the costly part of its host scalars (``1 - 0.999 ** t``: what does
    not read lr) for a block of steps ahead: bit for bit the per-step path's values, inside and across
    blocks, on classic and random programs, with lr constant or changing at every step (the block is
    kept then: it does not depend on lr); a new hyper-parameter value starts a new block."""
    space = ProgramSpace()
    rng = np.random.default_rng(3)
    texts = [CLASSIC_PROGRAMS[n] for n in ("adamw", "adam", "lion")]
    while len(texts) < 12:
        p = space.sample(rng)
        if optim_mod._Plan(p, type(space).OPS, fuse=False).prelude:
            texts.append(p)
    block = optim_mod._HostPrelude.BLOCK
    steps = [*range(1, 12), 100, block - 1, block + 4, block + 5, block + 6, 3 * block, 3 * block + 1]
    for text in texts:
        opt = ProgramOptimizer([torch.nn.Parameter(torch.zeros(3))], text, lr=0.01, backend="compile")
        plan, pre, hp = opt._straight, opt._prelude, list(opt.hyperparameters.values())
        for k, t in enumerate(steps):
            for lr in (0.01, 0.01 / (k + 2)):
                want = np.array(optim_mod._host_scalars(plan, lr, [float(t)], hp))
                np.testing.assert_array_equal(pre.row(lr, float(t), hp), want)
    adamw = ProgramOptimizer([torch.nn.Parameter(torch.zeros(3))], CLASSIC_PROGRAMS["adamw"], backend="compile")
    pre, hp = adamw._prelude, list(adamw.hyperparameters.values())
    assert pre.lr_part and pre.t_part  # lr / bc1 per step; the bias corrections in blocks
    pre.row(0.1, 10.0, hp)
    t0 = pre.t0
    for k in range(5):  # a scheduler changing lr every step: same block
        pre.row(0.1 / (k + 2), 11.0 + k, hp)
    assert pre.t0 == t0
    pre.row(0.1, 17.0, [x * 1.01 for x in hp])  # a new hyper-parameter value: a new block
    assert pre.t0 == 17.0
    monkeypatch.setattr(optim_mod._HostPrelude, "BLOCK", 8)  # constant lr over several blocks, against "interp"
    adamw = CLASSIC_PROGRAMS["adamw"]
    np.testing.assert_allclose(_trajectory(adamw, "compile", steps=30, lowered=True),
                               _trajectory(adamw, "interp", steps=30), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["adamw", "lion"])
def test_compile_backend_matches_the_reference_optimizers(name):
    """Really compiled (seconds): float64 agreement <= 1e-12 with per-group hyper-parameters and a scheduler,
    and changing lr / weight decay between steps does not recompile."""
    from torch._dynamo.utils import counters

    if name == "lion":
        lion_pytorch = pytest.importorskip("lion_pytorch")
        make_ref = lambda gs: lion_pytorch.Lion(gs, lr=1e-3, weight_decay=0.1)  # noqa: E731
        lr = 1e-3
    else:
        make_ref = lambda gs: torch.optim.AdamW(gs, lr=1e-2, weight_decay=0.1)  # noqa: E731
        lr = 1e-2

    def train(make):  # AdamW: two param groups (two graphs); Lion: one, to keep the compile time down
        net = make_net()
        opt = make(groups(net, weight_decay=0.0) if name == "adamw" else net.parameters())
        return run(net, opt, 100, sched=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)), opt

    want, _ = train(make_ref)
    graphs = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn
        got, opt = train(lambda gs: ProgramOptimizer(gs, CLASSIC_PROGRAMS[name], lr=lr, weight_decay=0.1,
                                                     backend="compile"))
    assert opt._compile_failed is None and opt._compiled is not None
    assert counters["stats"]["unique_graphs"] - graphs <= 2  # one graph per param group, none per step
    assert (got - want).abs().max().item() <= 1e-12


def test_compile_falls_back_to_foreach_when_no_compiler(monkeypatch):
    from torch._inductor.exc import InvalidCxxCompiler

    def no_compiler(fn, **kw):
        def run(*a):
            raise InvalidCxxCompiler()
        return run

    monkeypatch.setattr(optim_mod.torch, "compile", no_compiler)
    want = _trajectory(CLASSIC_PROGRAMS["adamw"], "foreach")
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = _trajectory(CLASSIC_PROGRAMS["adamw"], "compile")
    np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(optim_mod, "AUTO_COMPILE_NUMEL", 1)  # "auto" would compile these: falls back silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        np.testing.assert_array_equal(_trajectory(CLASSIC_PROGRAMS["adamw"], "auto"), want)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compile_backend_on_cuda_matches_torch_adamw():
    """The lowered step through inductor's Triton path (host prelude values copied to the device)."""
    def train(make):
        net = make_net().cuda()
        opt = make(groups(net, weight_decay=0.0))
        xs, ys = X.cuda(), Y.cuda()
        for s in range(50):
            opt.zero_grad()
            ((net(xs[s % 8]) - ys[s % 8]) ** 2).mean().backward()
            opt.step()
        return flat(net).cpu(), opt

    want, _ = train(lambda gs: torch.optim.AdamW(gs, lr=1e-2, weight_decay=0.1))
    got, opt = train(lambda gs: ProgramOptimizer(gs, CLASSIC_PROGRAMS["adamw"], lr=1e-2, weight_decay=0.1,
                                                 backend="compile"))
    assert opt._compile_failed is None
    assert (got - want).abs().max().item() <= 1e-12
