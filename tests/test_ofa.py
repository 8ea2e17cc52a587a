"""OFA MobileNetV3 space, supernet and counter."""
import numpy as np
import pytest

import automl
from automl.errors import ParseError
from search_spaces.ofa import OFAConfig, OFASpace
from search_spaces.ofa.space import E_CHOICES, KS_CHOICES, MAX_DEPTH

DYNAST_ROW = ("{'wid': None, 'ks': [7, 3, 3, 7, 5, 3, 3, 3, 7, 3, 7, 7, 7, 3, 7, 5, 3, 3, 3, 3], "
              "'e': [3, 6, 6, 3, 6, 3, 6, 6, 6, 6, 4, 3, 4, 6, 4, 3, 3, 6, 4, 4], 'd': [3, 2, 2, 3, 2], 'r': [224]}")


def _with(cfg: OFAConfig, gene: str, i: int, v: int) -> OFAConfig:
    vals = {"ks": list(cfg.ks), "e": list(cfg.e), "d": list(cfg.d), "r": cfg.r}
    if gene == "r":
        vals["r"] = v
    else:
        vals[gene][i] = v
    return OFAConfig(tuple(vals["ks"]), tuple(vals["e"]), tuple(vals["d"]), vals["r"])


def test_canonical_form_merges_exactly_the_inactive_gene_changes():
    """Every single-gene change of several configs: the digests (structural and functional) are
    equal iff the changed gene is a ks/e gene of an inactive block slot."""
    space = OFASpace(resolutions=(160, 224))
    rng = np.random.default_rng(0)
    n_equal = n_diff = 0
    for _ in range(4):
        cfg = space.sample(rng)
        s0, f0 = automl.structural_hash(cfg, space=space), automl.functional_hash(cfg, space=space)
        changes = [("ks", i, v) for i in range(20) for v in KS_CHOICES if v != cfg.ks[i]]
        changes += [("e", i, v) for i in range(20) for v in E_CHOICES if v != cfg.e[i]]
        changes += [("d", s, v) for s in range(5) for v in (2, 3, 4) if v != cfg.d[s]]
        changes += [("r", 0, r) for r in (160, 224) if r != cfg.r]
        for gene, i, v in changes:
            other = _with(cfg, gene, i, v)
            inactive = gene in ("ks", "e") and i % MAX_DEPTH >= cfg.d[i // MAX_DEPTH]
            same_s = automl.structural_hash(other, space=space) == s0
            same_f = automl.functional_hash(other, space=space) == f0
            assert same_s == inactive and same_f == inactive, (gene, i, v, cfg)
            n_equal += inactive
            n_diff += not inactive
    assert n_equal > 0 and n_diff > 0


def test_text_form_reads_dynast_dicts_and_rejects_bad_text():
    space = OFASpace()
    cfg = space.from_text(DYNAST_ROW)
    assert cfg.d == (3, 2, 2, 3, 2) and cfg.r == 224
    assert space.from_text(space.to_text(cfg)) == cfg
    for bad in ("{'ks': [3]}", "__import__('os')", "{'ks': [9]*20}", DYNAST_ROW.replace("'r': [224]", "'r': [224], 'x': 1"),
                DYNAST_ROW.replace("[3, 2, 2, 3, 2]", "[3, 2, 2, 3, 5]")):
        with pytest.raises(ParseError):
            space.from_text(bad)


def test_mutation_changes_the_active_network_and_crossover_mixes_parents():
    space = OFASpace()
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = space.sample(rng), space.sample(rng)
        assert space.mutate(a, rng).canonical() != a.canonical()
        c = space.crossover(a, b, rng)
        assert all(x in (y, z) for x, y, z in zip(c.ks + c.e + c.d, a.ks + a.e + a.d, b.ks + b.e + b.d))


def test_counter_matches_dynast_columns_and_vectorised_form():
    from evaluators.hardware.counter import Counter

    space, c = OFASpace(), Counter()
    # DyNAS-T logged 244,945,104 MACs and 4,536,768 parameters for this sub-network
    assert c.count(space.from_text(DYNAST_ROW)) == (244945104, 4536768)
    rng = np.random.default_rng(2)
    cfgs = [space.sample(rng) for _ in range(20)]
    m, p = c.count_arrays(np.array([g.ks for g in cfgs]), np.array([g.e for g in cfgs]), np.array([g.d for g in cfgs]))
    assert [c.count(g) for g in cfgs] == list(zip(m.astype(int), p.astype(int)))
    assert len(set(m)) == 20


def test_extracted_subnet_computes_what_the_supernet_computes():
    torch = pytest.importorskip("torch")
    from evaluators.hardware.counter import Counter
    from search_spaces.ofa.supernet import OFAMobileNetV3, extract

    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=10)
    with torch.no_grad():  # non-trivial BN statistics and kernel transforms, so slicing mistakes show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0, 0.2)
        for b in net.blocks:
            b.t7to5.add_(0.05 * torch.randn(25, 25))
            b.t5to3.add_(0.05 * torch.randn(9, 9))
    net.eval()
    space = OFASpace()
    x = torch.randn(2, 3, 48, 48)
    rng = np.random.default_rng(3)
    outs = []
    for cfg in [space.sample(rng), *space.warm_start()]:
        sub = extract(net, cfg).eval()
        with torch.no_grad():
            a, b = net(x, cfg), sub(x)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        head_delta = (1280 + 1) * (1000 - 10)  # the counter counts the 1000-class classifier (weight + bias)
        assert sum(p.numel() for p in sub.parameters()) + head_delta == Counter().count(cfg)[1]
        outs.append(a)
    assert not torch.allclose(outs[0], outs[1])  # different configs compute different things


def test_bn_recalibration_sets_the_batch_statistics():
    torch = pytest.importorskip("torch")
    from search_spaces.ofa.supernet import OFAMobileNetV3, extract, recalibrate_bn

    torch.manual_seed(0)
    sub = extract(OFAMobileNetV3(n_classes=10), OFASpace().warm_start()[0]).eval()
    batches = [torch.randn(4, 3, 32, 32) + k for k in range(3)]
    assert recalibrate_bn(sub, batches) == 3
    assert not sub.training
    conv, bn = sub[0][0], sub[0][1]
    with torch.no_grad():
        expect = torch.stack([conv(b).mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expect, rtol=1e-4, atol=1e-5)
