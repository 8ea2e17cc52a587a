"""The population-batched path of the optimizer proxy (issue 15): the batched interpreter
against the numpy reference interpreter, batched training against the per-candidate reference
path on a random population, screening, per-member cost and the evaluator-seconds budget."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import automl
from automl.api import read_run
from automl.errors import ConfigError, InvalidCandidate
from automl.evaluation import run_batch
from automl.evaluator import Evaluator
from automl.types import Evaluation
from evaluators.optimizer_proxy import OptimizerProxy
from evaluators.optimizer_proxy import tasks as T
from evaluators.optimizer_proxy.batched import train_population
from search_spaces.programs import ProgramSpace
from search_spaces.programs.batched import BatchedPrograms, mixed_population
from search_spaces.programs.interp import probe_data, run

SPACE = ProgramSpace()
DIVERGING = "def train(w, g, m, v, lr):\n  a = g * 10000.0\n  update = a * lr\n  return update, m, v\n"


def population(n, seed=0, random_share=0.3):
    return mixed_population(n, seed, random_share)


def test_batched_interpreter_equals_the_numpy_reference_interpreter():
    """float64: every op (reductions per row included) as interp.run computes it, NaN for NaN."""
    progs = population(64, seed=1, random_share=0.6)
    w0, grads, lrs = probe_data(0)
    P, N = len(progs), len(w0)
    bp = BatchedPrograms(progs, N, dtype=torch.float64)
    assert bp.calls_per_step < sum(sum(p.info.live) for p in progs)  # programs share torch calls
    w = torch.tensor(np.array(w0)).repeat(P, 1)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    got = []
    for s, (g, lr) in enumerate(zip(grads, lrs)):
        u, m, v = bp.step(w, torch.tensor(np.array(g)).repeat(P, 1), m, v, float(lr), float(1 + s))
        got.append(u.numpy())
        w = w - u
    w0_near = np.asarray(w0, dtype=np.float64) * (1.0 + 1e-10)
    compared = []  # per program: the share of elements still compared at the last step
    with np.errstate(all="ignore"):
        for c, p in enumerate(progs):
            ref, _, _ = run(p, w0, grads, lrs)
            # the reference again from weights 1e-10 (relative) away: an element that moves beyond the
            # tolerance is one where the program amplifies rounding 10**4-fold or more (cos(w ** m) once m
            # reaches 1e12, ...), so two correct implementations differ there too; from then on (chaos
            # carries over through w, m and v) that element is not compared
            ref_near, _, _ = run(p, w0_near, grads, lrs)
            trusted = np.ones(got[0][c].shape, dtype=bool)
            for s, (r, r_near) in enumerate(zip(ref, ref_near)):
                a = got[s][c]
                b = np.broadcast_to(np.asarray(r, dtype=np.float64), a.shape)
                b_near = np.broadcast_to(np.asarray(r_near, dtype=np.float64), a.shape)
                fin = np.isfinite(b)
                # transcendentals: torch's vs probe_math's (a few ulp), compounded over the steps (w -= tan(w)
                # amplifies them)
                scale = np.max(np.abs(b[fin]), initial=0.0)
                atol = 1e-12 + 1e-9 * scale
                same = (np.isnan(b) == np.isnan(b_near)) & (fin == np.isfinite(b_near))
                trusted &= same & (~fin | (np.abs(b_near - b) <= atol + 1e-6 * np.abs(b)))
                assert np.array_equal(np.isnan(a)[trusted], np.isnan(b)[trusted]), (c, s, SPACE.to_text(p))
                assert np.array_equal(np.isfinite(a)[trusted], fin[trusted]), (c, s)
                ok = trusted & fin
                np.testing.assert_allclose(a[ok], b[ok], rtol=1e-6, atol=atol, err_msg=SPACE.to_text(p))
            compared.append(trusted.mean())
    assert min(compared[:7]) == 1.0 and sum(compared) / len(compared) > 0.9  # classics in full, most of the rest


def test_batched_training_equals_the_per_candidate_reference_on_a_random_population():
    """Each program's result from one batched computation equals tasks.train (ProgramOptimizer,
    one at a time) within float32 rounding; divergence agrees program by program."""
    progs = population(40, seed=2)
    steps = 12
    batched = train_population(["mlp"], progs, steps=steps, lr=0.01)
    n_div = 0
    for p, b in zip(progs, batched):
        ref = T.train("mlp", p, steps=steps, lr=0.01)
        assert (b.diverged is None) == (ref.diverged is None), (SPACE.to_text(p), b.diverged, ref.diverged)
        if ref.diverged:
            n_div += 1
            assert b.diverged == f"mlp: {ref.diverged}"  # same rule, same step, same message
            continue
        r = b.results["mlp"]
        assert r.val_loss == pytest.approx(ref.val_loss, rel=1e-4)
        assert r.val_acc == pytest.approx(ref.val_acc, abs=1.5 / 1024)
    assert 3 <= n_div <= len(progs) - 10  # the population exercises both outcomes


def test_evaluator_batched_path_screening_and_member_cost():
    progs = population(24, seed=3) + [SPACE.from_text(DIVERGING)]
    plain = OptimizerProxy(tasks=["mlp", "regress"], steps=10, batch=32)
    screened = OptimizerProxy(tasks=["mlp", "regress"], steps=10, batch=32, screen=3)
    assert plain.fidelity() == screened.fidelity() and plain.fidelity()["batched"] is True
    assert "batched" not in OptimizerProxy(tasks=["mlp", "regress"], steps=10).fidelity()
    a, b = plain.evaluate_batch(progs), screened.evaluate_batch(progs)
    ref = OptimizerProxy(tasks=["mlp", "regress"], steps=10)
    for p, x, y in zip(progs, a, b):
        assert isinstance(x, Evaluation) and isinstance(y, Evaluation)
        assert x.objectives.keys() == y.objectives.keys()
        for k, val in x.objectives.items():  # screening reorders the work, never changes a result
            assert val == y.objectives[k] or (math.isnan(val) and math.isnan(y.objectives[k]))
        r = ref.evaluate(p)["val_loss"]
        assert math.isnan(r) == math.isnan(x.objectives["val_loss"])
        if not math.isnan(r):
            assert x.objectives["val_loss"] == pytest.approx(r, rel=1e-3)  # baselines from each path
        assert x.cost_s > 0 and y.cost_s > 0
    last = b[-1]
    assert last.info["screened"] is True and last.info["diverged"].startswith("mlp: train loss")
    full = [y.cost_s for y in b if y.info is None]
    assert last.cost_s < min(full) / 2  # it paid for a few shared steps, not an evaluation
    assert isinstance(plain.evaluate_batch([SPACE.from_text(DIVERGING), "not a program"])[1], InvalidCandidate)
    assert plain.evaluate(progs[5]).objectives == a[5].objectives  # alone = in a batch


def test_options_of_the_batched_path_are_checked():
    with pytest.raises(ConfigError, match="screen needs the batched path"):
        OptimizerProxy(screen=4)
    with pytest.raises(ConfigError, match="batch"):
        OptimizerProxy(batch=0)
    with pytest.raises(ConfigError, match="screen"):
        OptimizerProxy(batch=8, screen=-1)
    assert "batch" not in OptimizerProxy().options()  # the default options are as before
    from automl.engine import Budget

    assert Budget(evaluator_seconds=1.5).evaluator_seconds == 1.5  # a budget on its own
    with pytest.raises(ConfigError, match="evaluator_seconds"):
        Budget(evaluator_seconds=0)


class _Claims(Evaluator):
    name = "claims"
    objectives = {"x": "min"}
    batch_size = 4

    def evaluate(self, genome, space=None):
        return {"x": float(genome)}

    def evaluate_batch(self, genomes, space=None):
        return [Evaluation({"x": float(g)}, cost_s=0.01 * float(g)) for g in genomes]


class _Space:
    def from_text(self, t):
        return t


def test_run_batch_charges_each_member_what_it_claims_plus_an_even_share():
    raws = run_batch(_Claims(), _Space(), ["1", "2", "3"])
    costs = [r["cost_s"] for r in raws]
    assert costs[1] - costs[0] == pytest.approx(0.01) and costs[2] - costs[1] == pytest.approx(0.01)
    assert all(c >= 0.01 * (i + 1) for i, c in enumerate(costs))


def test_search_with_an_evaluator_seconds_budget_logs_screened_candidates(tmp_path):
    out = tmp_path / "run"
    s = automl.search(space="optimizer-programs", evaluator="optimizer-proxy", seed=0, out=str(out),
                      evaluator_seconds=0.5,
                      evaluator_options={"tasks": ["mlp"], "steps": 8, "batch": 16, "screen": 2},
                      strategy_options={"population_size": 16, "tournament_size": 4})
    assert s["stop_reason"] == "evaluator-seconds"
    meta, recs = read_run(str(out))
    real = [r for r in recs if r["charged"]]
    spent = sum(r["cost_s"] for r in real)
    assert spent == pytest.approx(s["evaluator_seconds"]) and spent >= 0.5
    scr = [r for r in real if (r.get("info") or {}).get("screened")]
    assert scr and all(r["status"] == "invalid" and "diverged" in r["info"] for r in scr)
    assert s["screened"] == len(scr)
    # resuming with a larger budget continues from what was spent
    s2 = automl.search(out=str(out), resume=True, evaluator_seconds=spent + 0.3)
    assert s2["evaluator_seconds"] >= spent + 0.3 and s2["candidates"] > s["candidates"]
    from automl.report import summarize

    assert summarize(str(out))["screened"]["candidates"] >= len(scr)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_batched_path_on_cuda_agrees_with_cpu():
    progs = population(32, seed=4)
    cpu = train_population(["mlp"], progs, steps=10, lr=0.01)
    gpu = train_population(["mlp"], progs, steps=10, lr=0.01, device="cuda", check_every=1)
    for a, b in zip(cpu, gpu):
        assert (a.diverged is None) == (b.diverged is None)
        if a.diverged is None:
            assert b.results["mlp"].val_loss == pytest.approx(a.results["mlp"].val_loss, rel=1e-3)


def test_cache_batch_folds_a_generation_in_one_transaction(tmp_path):
    from automl.cache import Cache

    path = tmp_path / "c.sqlite"
    c = Cache(path)
    with c.batch():
        for i in range(3):
            c.fold(f"k{i}", "ok", {"x": float(i)}, 0.1)
    assert [Cache(path).get(f"k{i}", fresh=True).objectives["x"] for i in range(3)] == [0.0, 1.0, 2.0]
    with pytest.raises(RuntimeError):
        with c.batch():
            c.fold("k9", "ok", {"x": 9.0}, 0.1)
            raise RuntimeError("boom")
    assert Cache(path).get("k9", fresh=True) is None  # rolled back together


def test_run_log_deferred_flushes_once_at_the_end(tmp_path):
    from automl.log import RunLog

    log = RunLog.create(str(tmp_path / "run"), {"x": 1})
    with log.deferred():
        log.append({"id": 0})
        log.append({"id": 1})
    assert (tmp_path / "run" / "candidates.jsonl").read_text().count("\n") == 2


@pytest.mark.parametrize("name", [n for n, t in T.TASKS.items() if t.chain is not None])
def test_hand_written_chain_backward_equals_autograd(name):
    """The batched path's hand-written forward/backward of a linear-chain task (no autograd) gives
    each copy autograd's loss and gradient within float32 rounding; dropped copies get zero gradient."""
    from evaluators.optimizer_proxy.batched import _copy_losses, chain_loss_and_grad

    task, data = T.TASKS[name], T.task_data(name, 0, 1.0, "cpu")
    params = task.make_params(torch.Generator().manual_seed(1), 1.0, data.meta)
    P = 5
    gen = torch.Generator().manual_seed(2)
    w = torch.cat([p.reshape(-1) for p in params]).repeat(P, 1)
    w = w + 0.3 * torch.randn(w.shape, generator=gen) * w.abs().mean()
    x, y = data.x_train[:64], data.y_train[:64]

    def views(t):
        out, o = [], 0
        for p in params:
            out.append(t[:, o:o + p.numel()].view(P, *p.shape))
            o += p.numel()
        return out

    leaves = [v.detach().requires_grad_(True) for v in views(w)]
    want_loss = _copy_losses(task.loss, T.batched_forward(name)(leaves, x), y)
    want = torch.cat([g.reshape(P, -1) for g in torch.autograd.grad(want_loss.sum(), leaves)], 1)
    got = torch.full_like(w, float("nan"))
    drop = torch.tensor([False, False, True, False, False])
    loss = chain_loss_and_grad(task.chain, task.loss, views(w), x, y, got, drop)
    torch.testing.assert_close(loss, want_loss.detach(), rtol=1e-5, atol=1e-6)
    keep = ~drop
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=1e-6 * want.abs().max().item())
    assert torch.equal(got[2], torch.zeros_like(got[2]))
    assert not torch.allclose(want[0], want[1])  # the copies differ: a mix-up would show
