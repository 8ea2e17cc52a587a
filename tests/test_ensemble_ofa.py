"""NEAS ensembles over the OFA MobileNetV3 layer-wise base (``ofa-ensemble``): genome round trip,
the ensemble hash (members unordered, a duplicated member collapses), MACs with the shared trunk
counted once (analytic == forward hooks == the OFA counter), the K-path step's trunk gradient / K on
the OFA supernet through the supernet trainer, and the MACs budget as a core constraint."""
import numpy as np
import pytest

import automl
from automl.errors import ConfigError, InvalidCandidate, ParseError
from search_spaces.ensemble import Ensemble, OFAEnsembleSpace, OFALayers

L = 20
# three whole members (20 block slots each); a stage's first slot (0, 4, 8, 12, 16) is never skip
X = tuple(["k3e4", "k5e6", "skip", "k7e4"] * 5)
Y = tuple(["k7e6", "skip", "k3e6", "k5e4"] * 5)
Z = tuple(["k5e4", "k3e4", "k7e6", "skip"] * 5)


def ens(split, *members, space="ofa-ensemble"):
    return Ensemble(split, tuple(members[0][:split]), tuple(tuple(m[split:]) for m in members), space)


def test_genome_text_round_trip_and_validation():
    sp = OFAEnsembleSpace(k=2, splits=[16, 20])
    assert sp.base.ops == ("skip", "k3e4", "k3e6", "k5e4", "k5e6", "k7e4", "k7e6")  # NEAS: 3 kernels x 2 e + skip
    g = ens(16, X, Y)
    text = sp.to_text(g)
    assert text.startswith("split=16 ; shared: k3e4 k5e6 skip k7e4") and text.count("member:") == 2
    assert sp.from_text(text) == g and sp.to_text(sp.from_text(text)) == text
    assert sp.from_text(text).automl_space == "ofa-ensemble"
    rng = np.random.default_rng(0)
    h = sp.sample(rng)
    for _ in range(100):  # samples and mutants stay in the space: allowed split points, no skip at a stage's start
        h = sp.mutate(h, rng)
        assert h.split in (16, 20)
        sp.validate(h)
        assert sp.from_text(sp.to_text(h)) == h
    bad = text.replace("shared: k3e4", "shared: skip")  # slot 0 changes width: it cannot be skipped
    with pytest.raises(ParseError, match="cannot be skip"):
        sp.from_text(bad)
    with pytest.raises(ParseError, match="not an OFA"):
        sp.from_text(text.replace("k5e6", "k9e6", 1))
    with pytest.raises(InvalidCandidate):
        sp.validate(Ensemble(16, X[:16], (Y[16:], Y[15:])))
    with pytest.raises(ConfigError):  # shrinking's output may not re-allow skip at a stage's first slot
        OFAEnsembleSpace(allowed=[[[0, 1]]] + [[[1]]] * 19)
    with pytest.raises(ConfigError):
        OFALayers(expansions=(5,))


def test_hash_is_symmetric_in_members_and_a_duplicated_member_collapses():
    sp = OFAEnsembleSpace(k=2)
    f = lambda g, s=sp: automl.functional_hash(g, space=s)  # noqa: E731
    s = lambda g: automl.structural_hash(g, space=sp)  # noqa: E731
    xy = ens(8, X, Y)
    yx = Ensemble(8, X[:8], (Y[8:], X[8:]), "ofa-ensemble")  # the same trunk, the branches the other way round
    assert sp.to_text(xy) != sp.to_text(yx)
    assert f(xy) == f(yx) and s(xy) == s(yx)  # A+B == B+A
    assert f(xy) != f(ens(8, X, Z))  # another member, another function
    w = X[:8] + Y[8:]  # the same two members cut at another split: same mean logits, other MACs
    assert f(ens(8, X, w)) != f(ens(4, X, w)) and sp.macs(ens(8, X, w)) < sp.macs(ens(4, X, w))
    # {X, X} is the single network X at every split point: same digests, same MACs
    single = Ensemble(L, X, ((),), "ofa-ensemble")
    for split in (0, 4, 13, 16, 20):
        twice = ens(split, X, X)
        assert f(twice) == f(single) and s(twice) == s(single)
        assert sp.macs(twice) == sp.macs(single)
    # K=3: {X, X, Y} is not {X, Y} (the mean weights X twice), but it is {X, Y, X} and {Y, X, X}
    sp3 = OFAEnsembleSpace(k=3)
    f3 = lambda g: automl.functional_hash(g, space=sp3)  # noqa: E731
    assert f3(ens(16, X, X, Y)) != f(ens(16, X, Y))
    yxx = Ensemble(16, X[:16], (Y[16:], X[16:], X[16:]), "ofa-ensemble")
    assert f3(ens(16, X, X, Y)) == f3(ens(16, X, Y, X)) == f3(yxx)


def test_split_point_macs_count_the_trunk_once_and_match_the_counter_and_the_built_network():
    from search_spaces.ofa import OFAConfig
    from search_spaces.ofa.counter import Counter

    sp = OFAEnsembleSpace(k=2)
    base = sp.base
    costs = []
    for split in (0, 8, 16):
        g = ens(split, X, Y)
        trunk = base.fixed_macs() + sum(base.layer_macs(li, c) for li, c in enumerate(g.shared))
        whole = [sp.macs(Ensemble(L, tuple(m), ((),))) for m in g.members()]
        assert sp.macs(g) == sum(whole) - trunk  # two networks minus one copy of the shared trunk
        costs.append(sp.macs(g))
    assert costs[0] > costs[1] > costs[2]  # sharing more costs less
    # one member whose skips are a stage's trailing slots is an OFA sub-network: the OFA counter agrees
    big = OFAEnsembleSpace(k=1, base_options={"num_classes": 1000, "resolution": 64})
    member = ("k3e4", "k5e6", "skip", "skip", "k7e6", "k7e4", "k3e6", "skip") * 2 + ("k5e4", "k3e6", "k7e4", "k7e6")
    ks = tuple(int(c[1]) if c != "skip" else 3 for c in member)
    e = tuple(int(c[3]) if c != "skip" else 3 for c in member)
    d = tuple(sum(c != "skip" for c in member[4 * s:4 * s + 4]) for s in range(5))
    assert big.macs(Ensemble(L, member, ((),))) == Counter(1.0).count(OFAConfig(ks, e, d, 64))[0]
    # the analytic count equals forward hooks on the stand-alone ensemble (trunk once, one head per branch)
    pytest.importorskip("torch")
    from evaluators.ensemble.network import build_ensemble_net, count_macs

    g = ens(13, X, Y)
    assert count_macs(build_ensemble_net(g, base), 32) == sp.macs(g)


def test_k_path_step_on_the_ofa_supernet_divides_trunk_gradients_by_k():
    torch = pytest.importorskip("torch")
    from evaluators.ensemble.network import EnsemblePaths, OFALayersSupernet, ensemble_step
    from evaluators.supernet.trainer import accumulate_paths, init_model

    task = OFALayersSupernet()
    assert task.default_alive()[0, 0] == False and task.default_alive()[1, 0] == True  # noqa: E712
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4) % 10
    path = task.path_of(X)

    def grads(rule, paths):
        model = init_model(task, 0)
        rule(task, model, paths, x, y)
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (several threads on a busy 2-core machine make this step ~100x slower)
    try:
        single = grads(accumulate_paths, [path])
        twice = grads(ensemble_step, EnsemblePaths([path, path], 8))  # two equal members sharing slots 0..7
    finally:
        torch.set_num_threads(threads)
    trunk = [n for n in single if n.startswith(("first_conv", "first_block"))
             or (n.startswith("blocks.") and int(n.split(".")[1]) < 8)]
    branch = [n for n in single if n not in trunk]
    assert len(trunk) > 10 and len(branch) > 10
    for n in trunk:  # the mean of two equal members is the member: the trunk gets its gradient once
        assert torch.allclose(twice[n], single[n], rtol=1e-4, atol=1e-7), n
    for n in branch:  # each member's branch a single network's gradient; the shared weights get both
        assert torch.allclose(twice[n], 2 * single[n], rtol=1e-4, atol=1e-7), n


@pytest.fixture(scope="module")
def ofa_supernet(tmp_path_factory):
    """A NEAS K=2 OFA supernet after two steps of the supernet trainer (tiny data)."""
    pytest.importorskip("torch")
    from evaluators.ensemble import train_supernet

    out = tmp_path_factory.mktemp("ofa") / "sn"
    s = train_supernet(out, base="ofa-mbv3", epochs=1, batch_size=16, data="synthetic:200:20:32:0",
                       train_per_class=3, k=2, splits=[12, 16], lr=0.01, seed=0, device="cpu", threads=1,
                       max_steps=2)
    return out, s


def test_the_supernet_trainer_runs_k_path_steps_on_the_ofa_supernet(ofa_supernet):
    from evaluators.supernet.trainer import load_checkpoint, load_supernet

    out, s = ofa_supernet
    ck = load_checkpoint(out)
    assert ck["space"]["name"] == "ofa-mbv3" and ck["space"]["num_classes"] == 10
    assert ck["config"]["step_rule"] == "ensemble" and ck["config"]["path_sampler"] == "ensemble"
    assert ck["state"]["epoch"] == 1 and s["finished"] and s["timing"]["steps"] == 2  # 30 images, batch 16
    alive = np.asarray(ck["path_sampler"]["alive"])
    assert alive.shape == (20, 7) and not alive[[0, 4, 8, 12, 16], 0].any() and alive[1].all()
    _, _, init = load_supernet("init", ck["config"])
    moved = [n for n, t in ck["model"].items() if not np.array_equal(t.numpy(), init.state_dict()[n].numpy())]
    assert any(n.startswith("first_conv") for n in moved) and any(n.startswith("head") for n in moved)
    with pytest.raises(ConfigError, match="width"):
        from evaluators.ensemble import train_supernet

        train_supernet(out / "x", base="ofa-mbv3", base_options={"width": 0.5}, epochs=1, data="synthetic:20:10:32:0")


def test_macs_budget_is_a_constraint_and_an_over_budget_ensemble_never_ranks(ofa_supernet, tmp_path):
    import json

    from evaluators.ensemble import search

    ck, _ = ofa_supernet
    kw = dict(k=2, strategy="random", budget=6, val_per_class=2, batch_size=50, seed=1, distinct=True, threads=1)
    free = search(ck, tmp_path / "free", **kw)
    assert free["space"] == "ofa-ensemble" and free["best"] is not None
    top = free["best"]["objectives"]
    budget = top["macs"] - 1.0  # the unconstrained winner is now over budget
    run = search(ck, tmp_path / "capped", macs_budget=budget, **kw)
    with open(tmp_path / "capped" / "candidates.jsonl", encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if r.get("status") == "ok"]
    assert len(rows) >= 2
    for r in rows:  # the budget reaches every result as a constraint field, not an objective
        assert set(r["objectives"]) == {"ensemble_accuracy", "macs"}
        assert r["constraints"]["macs"] == pytest.approx(r["objectives"]["macs"] / budget - 1.0)
    over = [r for r in rows if r["constraints"]["macs"] > 0]
    assert any(r["candidate"] == free["best"]["candidate"] for r in over)  # same candidates, the winner infeasible
    best = run["best_feasible"]
    assert best is None or (best["candidate"] != free["best"]["candidate"] and best["objectives"]["macs"] <= budget)
    assert run["best"] == best
