"""Structural and functional digests of optimizer programs."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import automl
from search_spaces.programs import CLASSIC_PROGRAMS, ProgramSpace, parse, probe, structural_key

SPACE = "optimizer-programs"
H = "def train(w, g, m, v, lr):\n"


def F(text):
    return automl.functional_hash(text, space=SPACE)


def S(text):
    return automl.structural_hash(text, space=SPACE)


def prog(*lines, ret="u, m, v", sig=H):
    return sig + "".join(f"  {line}\n" for line in lines) + f"  return {ret}\n"


LION = CLASSIC_PROGRAMS["lion"]
# Lion with renamed variables, independent statements reordered, dead code added and the
# (dead) v slot given a dead computation
LION_DISGUISED = """\
def train(w, g, m, v, lr):
  decay = w * 0.01
  junk = exp(g)
  mom = interp(g, m, 0.99)
  mix = interp(g, m, 0.9)
  s = sign(mix)
  junk2 = junk * mix
  s = s + decay
  step = s * lr
  unused = step * 3.0
  v = v + junk2
  return step, mom, v
"""


def test_renamed_reordered_dead_code_hash_equal():
    assert S(LION) == S(LION_DISGUISED)
    assert F(LION) == F(LION_DISGUISED)
    assert parse(LION) != parse(LION_DISGUISED)


def test_hashes_of_text_and_genome_agree_and_are_stable():
    p = parse(LION)
    assert automl.functional_hash(p) == F(LION)  # the genome finds its space by automl_space
    assert automl.structural_hash(p) == S(LION)
    space = ProgramSpace()
    assert automl.Hasher(space).functional(p) == F(LION)


ALGEBRAIC_PAIRS = [
    ("a + b vs b + a", ["u = g + w"], ["u = w + g"]),
    ("x * 2 vs x + x", ["a = g * 2.0", "u = a * lr"], ["a = g + g", "u = a * lr"]),
    ("interp vs explicit", ["c = interp(g, m, 0.9)", "u = c * lr", "m = c + g"],
     ["a = g * 0.1", "b = m * 0.9", "c = a + b", "u = c * lr", "m = c + g"]),
    ("x + 0", ["u = g * lr", "u = u + 0.0"], ["u = g * lr"]),
    ("regrouped sum", ["a = abs(g)", "b = abs(w)", "c = a + b", "u = c + lr"],
     ["a = abs(g)", "b = abs(w)", "c = b + lr", "u = a + c"]),
    ("sign(x) * |x| vs x", ["s = sign(g)", "a = abs(g)", "u = s * a"], ["u = g * 1.0"]),
    ("scaling order", ["u = g * lr", "u = u * 0.5"], ["u = g * 0.5", "u = u * lr"]),
    ("sqrt(x*x) vs |x|", ["a = g * g", "u = sqrt(a)"], ["u = abs(g)"]),
    ("square vs mul", ["a = square(g)", "u = a * lr"], ["a = g * g", "u = lr * a"]),
]


@pytest.mark.parametrize("name,a,b", ALGEBRAIC_PAIRS, ids=[p[0] for p in ALGEBRAIC_PAIRS])
def test_algebraic_pairs_hash_equal_functionally(name, a, b):
    assert F(prog(*a)) == F(prog(*b))


def test_commutative_operands_hash_equal_structurally():
    assert S(prog("u = g + w")) == S(prog("u = w + g"))
    assert S(prog("a = g * 2.0", "u = a * lr")) != S(prog("a = g + g", "u = a * lr"))


DIFFERENT = [
    ("lion beta1 0.9 -> 0.91", LION, LION.replace("interp(g, m, 0.9)", "interp(g, m, 0.91)")),
    ("lion beta2 0.99 -> 0.991", LION, LION.replace("interp(g, m, 0.99)", "interp(g, m, 0.991)")),
    ("lion wd 0.01 -> 0.011", LION, LION.replace("w * 0.01", "w * 0.011")),
    ("adam eps 1e-8 -> 1.1e-8", CLASSIC_PROGRAMS["adam"], CLASSIC_PROGRAMS["adam"].replace("1e-08", "1.1e-08")),
    ("adam beta2", CLASSIC_PROGRAMS["adam"], CLASSIC_PROGRAMS["adam"].replace("interp(g2, v, 0.999)",
                                                                            "interp(g2, v, 0.9991)")),
    ("lr vs its probe-range constant", prog("u = g * lr"), prog("u = g * 0.05")),
    ("x vs x * (1 + 1e-7)", prog("u = g * lr"), prog("u = g * lr", "u = u * 1.0000001")),
    ("t vs 1", prog("u = g * t", sig="def train(w, g, m, v, lr, t):\n"), prog("u = g * 1.0")),
    ("adam vs adamw", CLASSIC_PROGRAMS["adam"], CLASSIC_PROGRAMS["adamw"]),
]


@pytest.mark.parametrize("name,a,b", DIFFERENT, ids=[d[0] for d in DIFFERENT])
def test_different_programs_hash_differently(name, a, b):
    assert F(a) != F(b)
    assert S(a) != S(b)


def test_classic_programs_all_differ():
    digests = {name: F(text) for name, text in CLASSIC_PROGRAMS.items()}
    assert len(set(digests.values())) == len(digests)


def test_dead_state_slot_does_not_matter():
    # v is never read by the update: what it holds cannot change the weights
    a = prog("u = g * lr", "v = v + g", ret="u, m, v")
    b = prog("u = g * lr", "v = exp(w)", ret="u, m, v")
    c = prog("u = g * lr")
    assert F(a) == F(b) == F(c)
    assert S(a) == S(b) == S(c)
    # ... but a live slot does
    d = prog("v = v + g", "u = v * lr", ret="u, m, v")
    e = prog("v = v * 0.5", "v = v + g", "u = v * lr", ret="u, m, v")
    assert F(d) != F(e)


def test_slot_liveness_through_the_other_slot():
    # the update reads v, v reads m: both live; m's computation matters
    a = prog("m = m + g", "v = v + m", "u = v * lr")
    b = prog("m = m * 0.5", "m = m + g", "v = v + m", "u = v * lr")
    assert parse(a).info.live_slots == (2, 3)
    assert F(a) != F(b)


def test_swapping_the_slots_is_the_same_optimizer():
    a = CLASSIC_PROGRAMS["momentum"]
    b = a.replace("m = m * 0.9", "v = v * 0.9").replace("m = m + g", "v = v + g").replace(
        "update = m * lr", "update = v * lr")
    assert parse(b).info.live_slots == (3,)
    assert F(a) == F(b) and S(a) == S(b)
    adam = CLASSIC_PROGRAMS["adam"]
    swapped = adam.replace("m = interp(g, m, 0.9)", "M = interp(g, v, 0.9)").replace(
        "v = interp(g2, v, 0.999)", "V = interp(g2, m, 0.999)").replace("sqrt(v)", "sqrt(V)").replace(
        "num = m * step_size", "num = M * step_size").replace("return update, m, v", "return update, V, M")
    assert F(adam) == F(swapped) and S(adam) == S(swapped)


def test_probe_outputs_and_seed():
    p = parse(LION)
    out = probe(p, 1)
    from search_spaces.programs.interp import PROBE_LANES, PROBE_N, PROBE_STEPS, ROW
    # only the updates are hashed (never the state slots)
    assert len(out) == 1 and out[0].shape == (PROBE_STEPS, PROBE_LANES, PROBE_N // ROW, ROW)
    assert automl.functional_hash(p, seed=1) != automl.functional_hash(p, seed=2)
    assert np.array_equal(probe(p, 1)[0], out[0])


def test_structural_key_is_name_free():
    key = structural_key(parse(LION_DISGUISED))
    assert key == structural_key(parse(LION))
    for name in ("decay", "mom", "mix", "junk", "step"):
        assert name not in key


def test_functional_hash_is_fast():
    hasher = automl.Hasher(ProgramSpace())
    p = parse(LION)
    hasher.functional(p)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(100):
            hasher.functional(p)
        best = min(best, (time.perf_counter() - t0) / 100)
    assert best < 2e-3, f"functional hash of Lion took {best * 1e3:.2f} ms"


def test_digests_stable_across_processes():
    code = ("import automl\nfrom search_spaces.programs import CLASSIC_PROGRAMS as C\n"
            "print(automl.functional_hash(C['lion'], space='optimizer-programs'), "
            "automl.structural_hash(C['adamw'], space='optimizer-programs'))")
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [F(LION), S(CLASSIC_PROGRAMS["adamw"])]


def _prog(*lines):
    return parse("def train(w, g, m, v, lr, t):\n" + "".join(f"  {s}\n" for s in lines) + "  return update, m, v\n")


def test_differences_late_small_or_near_sign_changes_split_under_the_proxy_domain():
    """The issue's examples: each scores differently on optimizer-proxy, each merged under the v1 probe."""
    from evaluators.optimizer_proxy.proxy import OptimizerProxy

    h = automl.Hasher(ProgramSpace(), OptimizerProxy())
    sgd = _prog("update = g * lr")
    pairs = [
        (_prog("a = min(t / 10.0, 1.0)", "update = g * a * lr"), _prog("update = g * (t / 10.0) * lr")),  # warm-up
        (_prog("d = 1.0 - max(t - 50.0, 0.0) * 0.01", "update = g * d * lr"), sgd),  # decay from step 50
        (_prog("a = max(lr, 0.01)", "update = g * a"), sgd),  # the cosine schedule goes below 0.01
        (_prog("a = clip(g, -1000.0, 1000.0)", "update = a * lr"), sgd),  # clipping above the old magnitudes
        (_prog("d = 1.0 / (1.0 + max(t - 10000.0, 0.0) * 0.001)", "update = g * d * lr"), sgd),  # t > 1e4
        (parse(LION), parse(LION.replace("interp(g, m, 0.9)", "interp(g, m, 0.901)"))),  # sign boundary
    ]
    for a, b in pairs:
        assert h.functional(a) != h.functional(b), ProgramSpace().to_text(a)
    lion_b2 = parse(LION.replace("interp(g, m, 0.99)", "interp(g, m, 0.991)"))
    assert sum(automl.Hasher(ProgramSpace(), None, s).functional(parse(LION)) !=
               automl.Hasher(ProgramSpace(), None, s).functional(lion_b2) for s in range(5)) == 5


def test_state_stored_scaled_or_negated_hashes_equal():
    momentum = parse(CLASSIC_PROGRAMS["momentum"])
    negated = _prog("m = m * 0.9", "m = m - g", "update = -(m * lr)")
    scaled = _prog("m = m * 0.9", "m = m + 2.0 * g", "update = m * lr * 0.5")
    assert F(momentum) == F(negated) == F(scaled)
    assert F(momentum) != F(_prog("m = m * 0.9001", "m = m + g", "update = m * lr"))
