"""NEAS ensembles: MACs accounting at the split point, the ensemble hash, shrinking's invariants,
the K-path step's trunk-gradient rule, and resume after kill -9 (with shrinking) equal to an
uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import automl
from automl.errors import ConfigError, InvalidCandidate
from search_spaces.cells.nb201 import NB201Cell
from search_spaces.ensemble import Ensemble, EnsembleSpace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = NB201Cell.from_codes((3, 2, 1, 3, 0, 4))
B = NB201Cell.from_codes((2, 3, 3, 1, 2, 0))
C = NB201Cell.from_codes((4, 1, 3, 3, 3, 2))
# node 1 feeds nothing (edges 2<-1 and 3<-1 are "none"), so edge 1<-0 is dead: D and D_TWIN differ only there
D = NB201Cell.from_codes((3, 2, 0, 3, 0, 1))
D_TWIN = NB201Cell.from_codes((4, 2, 0, 3, 0, 1))


def test_ensemble_hash_is_symmetric_in_members_and_collapses_equal_members():
    sp = EnsembleSpace(base_options={"channels": 8, "cells": 1})
    f = lambda g: automl.functional_hash(g, space=sp)  # noqa: E731
    s = lambda g: automl.structural_hash(g, space=sp)  # noqa: E731
    ab = Ensemble(1, (A,), ((B, C), (C, A)))
    ba = Ensemble(1, (A,), ((C, A), (B, C)))
    assert f(ab) == f(ba) and s(ab) == s(ba)
    # the text form keeps the order it was given; the digests do not depend on it
    assert sp.to_text(ab) != sp.to_text(ba)
    # another member, another function
    assert f(ab) != f(Ensemble(1, (A,), ((B, C), (C, B))))
    # {X, X} is the single network X, whatever the split point
    x = (A, B, C)
    single = Ensemble(3, x, ((),))
    for split in range(4):
        twice = Ensemble(split, x[:split], (x[split:], x[split:]))
        assert f(twice) == f(single) and s(twice) == s(single)
        assert sp.macs(twice) == sp.macs(single)
    # k=3 with a duplicate is not equivalent to fewer members: (2X+Y)/3 != (X+Y)/2
    sp3 = EnsembleSpace(base_options={"channels": 8, "cells": 1}, k=3)
    xxy = Ensemble(0, (), (x, x, (C, B, A)))
    xy = Ensemble(0, (), (x, (C, B, A)))
    assert automl.functional_hash(xxy, space=sp3) != f(xy)
    # same members at another split point: same mean logits, other cost -> not merged
    assert f(Ensemble(0, (), ((A, B, C), (A, C, B)))) != f(Ensemble(1, (A,), ((B, C), (C, B))))


def test_functionally_equivalent_members_merge_through_the_base_probe():
    twin = D_TWIN
    assert automl.functional_hash(D, space="nb201") == automl.functional_hash(D_TWIN, space="nb201")
    sp = EnsembleSpace(base_options={"channels": 8, "cells": 1})
    g1 = Ensemble(1, (B,), ((D, C), (C, C)))
    g2 = Ensemble(1, (B,), ((C, C), (twin, C)))
    assert automl.functional_hash(g1, space=sp) == automl.functional_hash(g2, space=sp)
    assert sp.to_text(g1) != sp.to_text(g2)


def test_split_point_macs_count_the_trunk_once_and_match_the_built_network():
    torch = pytest.importorskip("torch")  # noqa: F841
    from evaluators.ensemble.network import build_ensemble_net, count_macs

    sp = EnsembleSpace(base_options={"channels": 4, "cells": 2})
    rng = np.random.default_rng(0)
    base = sp.base
    for split in range(3):  # (split 3: the members are one network, see the hash test)
        g = Ensemble(split, (A, B, C)[:split], ((A, B, C)[split:], (C, C, A)[split:]))
        trunk = base.fixed_macs() + sum(base.layer_macs(l, c) for l, c in enumerate(g.shared))
        members = [Ensemble(3, tuple(m), ((),)) for m in g.members()]
        expected = sum(sp.macs(m) for m in members) - (len(members) - 1) * trunk
        assert sp.macs(g) == expected  # two whole networks minus one copy of the shared trunk
        assert count_macs(build_ensemble_net(g, base)) == sp.macs(g)
    for _ in range(5):  # random ensembles: analytic count == counted on the real modules
        g = sp.sample(rng)
        assert count_macs(build_ensemble_net(g, base)) == sp.macs(g)
    # a later split shares more, so costs less (same members)
    m1, m2 = (A, B, C), (A, B, A)
    costs = [sp.macs(Ensemble(s, m1[:s], (m1[s:], m2[s:]))) for s in range(3)]
    assert costs[0] > costs[1] > costs[2]


def test_space_options_shrunk_ops_and_distinct():
    allowed = [[[1, 3]] * 6, [[0]] * 6, [[2, 4]] * 6]
    sp = EnsembleSpace(base_options={"channels": 8, "cells": 1}, allowed=allowed, splits=[0, 1], distinct=True)
    rng = np.random.default_rng(1)
    g = sp.sample(rng)
    for _ in range(200):
        g = sp.mutate(g, rng)
        assert g.split in (0, 1)
        for m in g.members():
            for layer, cell in enumerate(m):
                assert all(o in allowed[layer][d] for d, o in enumerate(cell.codes))
        assert not all(b == g.branches[0] for b in g.branches)
    with pytest.raises(InvalidCandidate, match="equal"):
        sp.validate(Ensemble(0, (), ((A, B, C), (A, B, C))))
    with pytest.raises(ConfigError):
        EnsembleSpace(allowed=[[[]] * 6] * 3)
    with pytest.raises(ConfigError):
        EnsembleSpace(splits=[5])


def test_shrinking_never_removes_the_last_op_of_a_decision():
    from evaluators.ensemble.shrink import EnsemblePath

    s = EnsemblePath(18, 5, per_layer=6, k=2, shrink_every=1, shrink_drop=3, score_samples=8)
    rng = np.random.default_rng(0)
    for epoch in range(6):  # far more drops asked for than there are ops
        ens = [s.sample(rng) for _ in range(40)]
        y = rng.integers(0, 10, 50)
        preds = [rng.integers(0, 10, (2, 50)) for _ in ens]
        s.shrink(epoch, ens, preds, [p[0] for p in preds], y)
        assert (s.alive.sum(1) >= 1).all()
    assert (s.alive.sum(1) == 1).all()  # everything that could go went, the last op stayed
    assert len(s.log) == 18 * 4 and all(e["alive_after"] >= 1 for e in s.log)
    for p in s.sample(rng):  # sampling only uses alive ops
        assert all(s.alive[d, o] for d, o in enumerate(p))
    with pytest.raises(ConfigError):
        EnsemblePath(18, 5, per_layer=6, min_ops=0)


def test_shrinking_drops_the_lowest_potential_plus_diversity():
    from evaluators.ensemble.shrink import EnsemblePath
    from evaluators.ensemble.network import EnsemblePaths

    s = EnsemblePath(2, 3, per_layer=1, k=2, shrink_drop=1, lam=1.0)
    y = np.zeros(10, dtype=int)
    right, wrong = np.zeros(10, dtype=int), np.ones(10, dtype=int)
    # op 0 at decision 1 always in accurate ensembles, op 1 in wrong ones, op 2 in wrong but diverse ones
    ens = [EnsemblePaths([(0, 0), (0, 0)], 0), EnsemblePaths([(1, 1), (1, 1)], 0),
           EnsemblePaths([(2, 2), (1, 2)], 0)]
    preds = [np.stack([right, right]), np.stack([wrong, wrong]), np.stack([wrong, np.full(10, 2)])]
    ens_pred = [right, wrong, wrong]
    pot, div, score = s.op_scores(ens, preds, ens_pred, y)
    assert pot[1, 0] == 1.0 and pot[1, 1] == 0.0 and div[1, 2] == 1.0 and score[1, 2] == 1.0
    s.shrink(0, ens, preds, ens_pred, y)
    assert s.alive[1].tolist() == [True, False, True]  # the diverse op survives, the merely wrong one goes
    assert s.log[-1]["op"] == 1 and s.log[-1]["decision"] == 1
    p_only = EnsemblePath(2, 3, per_layer=1, k=2, shrink_drop=1, score="potential")
    p_only.shrink(0, ens, preds, ens_pred, y)
    assert p_only.alive[1].tolist() == [True, True, False]  # without diversity ops 1 and 2 tie; the higher goes


def test_trunk_gradient_is_divided_by_k():
    torch = pytest.importorskip("torch")
    from evaluators.ensemble.network import EnsemblePaths, NB201StagesSupernet, ensemble_step
    from evaluators.supernet.trainer import accumulate_paths, init_model

    task = NB201StagesSupernet(channels=4, cells=1)
    x = torch.randn(8, 3, 8, 8)
    y = torch.arange(8) % 10
    path = tuple(int(v) for v in np.random.default_rng(0).integers(2, 4, 18))  # convs everywhere: all get grads

    def grads(rule, paths):
        model = init_model(task, 0)
        rule(task, model, paths, x, y)
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    single = grads(accumulate_paths, [path])
    twice = grads(ensemble_step, EnsemblePaths([path, path], 1))  # two equal members, stage 0 shared
    trunk = [n for n in single if n.startswith("stem") or n.startswith("layers.0.")]
    branch = [n for n in single if n not in trunk]
    assert trunk and branch
    for n in trunk:  # the mean of two equal members is the member; the trunk gets its gradient once
        assert torch.allclose(twice[n], single[n], atol=1e-6)
    for n in branch:  # each branch gets a single network's gradient; the shared weights receive both
        assert torch.allclose(twice[n], 2 * single[n], atol=1e-6)


CHILD = textwrap.dedent("""
    import sys, time
    from evaluators.supernet import trainer
    from evaluators.ensemble import network
    rule = network.ensemble_step
    def slow(*a):  # slow steps, so the parent can kill this process in the middle of the run
        time.sleep(0.2)
        return rule(*a)
    network.ensemble_step = slow
    from evaluators.ensemble import train_supernet
    train_supernet(sys.argv[1], channels=4, cells=1, epochs=4, batch_size=16, data="synthetic:64:20:8:0", seed=3,
                   shrink_every=1, score_samples=6, probe_images=20, device="cpu", threads=1, checkpoint_every=1)
""")


def test_kill_9_then_resume_reproduces_the_uninterrupted_run_with_shrinking(tmp_path):
    pytest.importorskip("torch")
    from evaluators.ensemble import train_supernet
    from evaluators.supernet.trainer import CHECKPOINT, load_checkpoint

    kw = dict(channels=4, cells=1, epochs=4, batch_size=16, data="synthetic:64:20:8:0", seed=3, shrink_every=1,
              score_samples=6, probe_images=20, device="cpu", threads=1)
    folder = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        ck = folder / CHECKPOINT
        while time.monotonic() < deadline:  # wait until a shrink has happened (after epoch 0)
            if ck.exists():
                try:
                    if int(load_checkpoint(folder)["state"]["epoch"]) >= 1:
                        break
                except (RuntimeError, EOFError, OSError):
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote a checkpoint")
        time.sleep(0.3)  # land inside a later step (epoch 1 or 2)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    killed = load_checkpoint(folder)
    assert not bool(killed["state"]["done"]) and killed["path_sampler"]["log"]  # killed after a shrink
    resumed = train_supernet(folder, **kw)
    full = train_supernet(tmp_path / "full", **kw)
    assert resumed["weights_digest"] == full["weights_digest"]
    a, b = load_checkpoint(folder), load_checkpoint(tmp_path / "full")
    assert a["path_sampler"]["log"] == b["path_sampler"]["log"] and len(b["path_sampler"]["log"]) == 18 * 3
    assert np.array_equal(np.asarray(a["path_sampler"]["alive"]), np.asarray(b["path_sampler"]["alive"]))
    assert [h["dropped"] for h in resumed["history"]] == [h["dropped"] for h in full["history"]]


def test_search_under_a_macs_budget_and_cli(tmp_path):
    pytest.importorskip("torch")
    from evaluators.ensemble import search, train_supernet

    ck = tmp_path / "sn"
    train_supernet(ck, channels=4, cells=1, epochs=1, batch_size=32, data="synthetic:200:20:8:0",
                   train_per_class=10, device="cpu", threads=1)
    budget = 1.2e6
    s = search(ck, tmp_path / "run", k=2, macs_budget=budget, budget=12, val_per_class=5, splits=[0, 1, 2],
               distinct=True)
    assert s["charged_evaluations"] <= 12
    with open(tmp_path / "run" / "candidates.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    seen = [r for r in rows if r.get("status") == "ok"]
    assert seen
    for r in seen:  # the budget is a constraint field of every result (relative excess), not an objective
        o = r["objectives"]
        assert set(o) == {"ensemble_accuracy", "macs"}
        assert r["constraints"]["macs"] == pytest.approx(o["macs"] / budget - 1.0)
    feasible = [r for r in seen if r["objectives"]["macs"] <= budget]
    if feasible:
        assert s["best_feasible"]["objectives"]["macs"] <= budget
        assert s["best_feasible"]["objectives"]["ensemble_accuracy"] == max(
            r["objectives"]["ensemble_accuracy"] for r in feasible)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "automl.cli", "ensemble", "search", str(ck), "--k", "1", "--out",
                          str(tmp_path / "single"), "--budget", "5", "--val-per-class", "5"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "member:" in out.stdout and "MMACs" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "automl.cli", "ensemble", "search", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "x")], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "no supernet checkpoint" in bad.stderr


def test_a_macs_floor_keeps_the_search_at_equal_macs(tmp_path):
    """budget + floor are a MACs window: below the floor is a constraint violation (relative
    shortfall), never the best; the CLI takes --macs-floor; a floor above the
    budget is refused before any work."""
    pytest.importorskip("torch")
    from automl.errors import ConfigError
    from evaluators.ensemble import search, train_supernet
    from evaluators.ensemble.evaluate import EnsembleSupernetAccuracy

    ck = tmp_path / "sn"
    train_supernet(ck, channels=4, cells=1, epochs=1, batch_size=32, data="synthetic:200:20:8:0",
                   train_per_class=10, device="cpu", threads=1)
    search(ck, tmp_path / "free", k=1, budget=16, val_per_class=5)
    with open(tmp_path / "free" / "candidates.jsonl", encoding="utf-8") as f:
        macs = sorted({json.loads(line)["objectives"]["macs"] for line in f if '"ok"' in line})
    assert len(macs) >= 4, macs
    floor, cap = macs[len(macs) // 2], macs[-1]  # the upper half of what a free search met
    s = search(ck, tmp_path / "window", k=1, macs_budget=cap, macs_floor=floor, budget=16, val_per_class=5)
    with open(tmp_path / "window" / "candidates.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    ok = [r for r in rows if r.get("status") == "ok"]
    assert ok
    for r in ok:
        m = r["objectives"]["macs"]
        assert r["constraints"]["macs_floor"] == pytest.approx(1.0 - m / floor)
        assert r["constraints"]["macs"] == pytest.approx(m / cap - 1.0)
    inside = [r for r in ok if floor <= r["objectives"]["macs"] <= cap]
    assert inside, "no candidate in the window"
    assert floor <= s["best_feasible"]["objectives"]["macs"] <= cap
    assert s["best_feasible"]["objectives"]["ensemble_accuracy"] == max(
        r["objectives"]["ensemble_accuracy"] for r in inside)
    with pytest.raises(ConfigError, match="macs_floor .* is above macs_budget"):
        EnsembleSupernetAccuracy(checkpoint=str(ck), macs_budget=1e6, macs_floor=2e6)
    with pytest.raises(ConfigError, match="macs_floor must be a number > 0"):
        EnsembleSupernetAccuracy(checkpoint=str(ck), macs_floor=-1)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "automl.cli", "ensemble", "search", str(ck), "--k", "1", "--out",
                          str(tmp_path / "cli"), "--budget", "6", "--val-per-class", "5", "--macs-floor",
                          str(cap * 2)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no candidate within the MACs budget and floor" in out.stdout, out.stdout
