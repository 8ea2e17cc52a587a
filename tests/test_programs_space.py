"""ProgramSpace: sampling, mutation, validation, statistics, the simplifier."""
import json

import numpy as np
import pytest

import automl
from automl.testing import contracts
from automl.errors import ConfigError, InvalidCandidate
from search_spaces.programs import (CLASSIC_PROGRAMS, OP_LIST, Instr, Program, ProgramSpace, parse, simplify,
                                    to_text)

H = "def train(w, g, m, v, lr):\n"


def prog(*lines, ret="u, m, v", sig=H):
    return sig + "".join(f"  {line}\n" for line in lines) + f"  return {ret}\n"


@pytest.fixture(scope="module")
def space():
    return ProgramSpace()


def corpus(space, n, seed):
    """Sampled programs, each mutated 0..5 times."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = space.sample(rng)
        for _ in range(int(rng.integers(0, 6))):
            p = space.mutate(p, rng)
        out.append(p)
    return out


def test_registered_and_passes_the_space_contract():
    space = automl.get_space("optimizer-programs")
    assert isinstance(space, ProgramSpace) and space.name == "optimizer-programs"
    assert Program.automl_space == "optimizer-programs"
    contracts.space_contract("optimizer-programs")


def test_sample_is_valid_deterministic_and_varied(space):
    a = [to_text(space.sample(np.random.default_rng(3))) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    programs = [space.sample(rng) for _ in range(200)]
    for p in programs:
        space.validate(p)
        assert 2 <= len(p) <= 8
    assert len({to_text(p) for p in programs}) > 150
    used = {ins.op for p in programs for ins in p.instrs}
    assert len(used) > 0.8 * len(OP_LIST)


def test_mutate_is_pure_valid_and_uses_only_its_rng(space):
    rng = np.random.default_rng(1)
    parents = [space.sample(rng) for _ in range(100)]
    texts = [to_text(p) for p in parents]
    kids = [space.mutate(p, np.random.default_rng(i)) for i, p in enumerate(parents)]
    again = [space.mutate(p, np.random.default_rng(i)) for i, p in enumerate(parents)]
    assert kids == again
    assert [to_text(p) for p in parents] == texts  # parents untouched
    changed = 0
    for p, k in zip(parents, kids):
        space.validate(k)
        changed += k != p
    assert changed >= 95


def test_mutation_kinds_all_occur(space):
    rng = np.random.default_rng(2)
    lion = parse(CLASSIC_PROGRAMS["lion"])
    deltas, const_changes, op_changes = set(), 0, 0
    for _ in range(300):
        k = space.mutate(lion, rng)
        deltas.add(len(k) - len(lion))
        if len(k) == len(lion):
            diff = [(a, b) for a, b in zip(lion.instrs, k.instrs) if a != b]
            if diff and any(a.op != b.op for a, b in diff):
                op_changes += 1
            elif diff and any(type(x) is float and type(y) is float and x != y
                              for a, b in diff for x, y in zip(a.args, b.args)):
                const_changes += 1
    assert {-1, 0, 1} <= deltas  # delete, modify, insert
    assert const_changes > 10 and op_changes > 10


def test_mutation_respects_max_statements():
    space = ProgramSpace(max_statements=6)
    lion = parse(CLASSIC_PROGRAMS["lion"])
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert len(space.mutate(lion, rng)) <= 6


def test_validate_rejects_type_errors(space):
    bad = [
        prog("u = lr * 2.0"),  # scalar update
        prog("u = g * lr", ret="u, lr, v"),  # scalar state
        prog("d = dot(lr, g)", "u = g * d"),  # reduction of a scalar
        prog("u = clip_by_global_norm(g, w)"),  # tensor where a scalar is needed
        prog("n = global_norm(g)", "u = g * n", "k = global_norm(n)"),  # dead but still ill-typed
    ]
    for text in bad:
        with pytest.raises(InvalidCandidate):
            space.validate(parse(text))
    with pytest.raises(InvalidCandidate):
        space.validate("not a program")
    with pytest.raises(InvalidCandidate):
        space.probe(parse(bad[0]), 1)
    space.validate(parse(prog("n = global_norm(g)", "u = g / n")))


def test_warm_start_is_adamw_and_classics_parse(space):
    (adamw,) = space.warm_start()
    assert to_text(adamw) == CLASSIC_PROGRAMS["adamw"]
    progs = ProgramSpace.programs()
    assert set(progs) >= {"sgd", "momentum", "adam", "adamw", "lion", "rmsprop", "adagrad"}
    for p in progs.values():
        space.validate(p)


def test_stats(space):
    lion = parse(CLASSIC_PROGRAMS["lion"])
    assert space.stats(lion) == {"statements": 6, "dead_fraction": 0.0, "live_slots": 1}
    dead = parse(prog("u = g * lr", "a = exp(w)", "b = a + g", "v = b * 2.0"))
    assert space.stats(dead) == {"statements": 4, "dead_fraction": 0.75, "live_slots": 0}


def test_options(space):
    assert space.options() == {}
    s = ProgramSpace(max_statements=12, ops=["add", "mul", "sign", "interp"])
    opts = json.loads(json.dumps(s.options()))
    rebuilt = automl.get_space("optimizer-programs", **opts)
    assert rebuilt.options() == opts
    rng = np.random.default_rng(0)
    for _ in range(30):
        p = rebuilt.sample(rng)
        assert {ins.op for ins in p.instrs} <= {"add", "mul", "sign", "interp"}
    for bad in ({"max_statements": 0}, {"ops": ["nope"]}, {"sample_min": 5, "sample_max": 2}):
        with pytest.raises(ConfigError):
            ProgramSpace(**bad)


def test_encode_is_flat_arrays():
    p = parse(CLASSIC_PROGRAMS["lion"])
    enc = p.encode()
    assert enc["opcode"].shape == (6,) and enc["arg_reg"].shape == (6, 3)
    assert [OP_LIST[i].name for i in enc["opcode"]] == [ins.op for ins in p.instrs]
    assert enc["arg_reg"][0].tolist() == [1, 2, -1] and enc["arg_const"][0, 2] == 0.9
    assert enc["outputs"].tolist() == list(p.outputs)


# --- simplifier ---------------------------------------------------------------------------------

def test_simplify_preserves_functional_hash_on_a_corpus(space):
    hasher = automl.Hasher(space)
    programs = corpus(space, 300, seed=11)
    shrunk = 0
    for p in programs:
        q = simplify(p)
        assert hasher.functional(q) == hasher.functional(p), to_text(p)
        assert simplify(q) == q  # idempotent
        assert len(q) <= len(p)
        assert parse(to_text(q)) == q
        space.validate(q)
        shrunk += len(q) < len(p)
    assert shrunk > 100


def test_simplify_rules():
    text = prog("a = g * 1.0", "b = 1.0 - 0.9", "c = a * b", "d = -c", "e = -d", "f = square(e)",
                "k = g * 1.0", "q = k * b", "r = f + q", "s = r + 0.0", "z = exp(w)", "v = v + z",
                "u = s * lr")
    q = simplify(parse(text))
    assert to_text(q) == prog("c = g * 0.09999999999999998", "f = c * c", "r = c + f", "s = r + 0.0",
                              "u = lr * s")
    assert automl.functional_hash(q) == automl.functional_hash(parse(text))


@pytest.mark.parametrize("before,after", [
    (["u = g / 1.0"], "g"), (["u = div(g, 1.0)"], "g"), (["u = g + -0.0"], "g"), (["u = g - 0.0"], "g"),
    (["a = -g", "u = -a"], "g"), (["u = min(g, g)"], "g"), (["u = max(g, g)"], "g"),
    (["a = sign(g)", "u = sign(a)"], "a"), (["a = abs(g)", "u = abs(a)"], "a"),
])
def test_simplify_identity_rules(before, after):
    q = simplify(parse(prog(*before)))
    assert q.names[q.outputs[0]] == after


@pytest.mark.parametrize("kept", [
    ["u = g + 0.0"],  # -0.0 + 0.0 is +0.0
    ["u = g * 0.0"],  # inf * 0 is nan
    ["a = g - g", "u = w + a"],  # inf - inf is nan
    ["u = interp(g, w, 0.0)"],  # 0 * inf in the other operand
    ["a = g * g", "b = sqrt(a)", "u = g / b"],  # not sign(g): nan at 0
    ["u = min(g, w)"],  # min is not commutative at signed zeros: no reordering
])
def test_simplify_does_not_apply_unsound_rules(kept):
    p = parse(prog(*kept))
    assert simplify(p) == p


def test_simplify_dead_slots_return_their_input():
    p = parse(prog("u = g * lr", "m = m + g", "v = exp(w)", ret="u, m, v"))
    q = simplify(p)
    assert to_text(q) == prog("u = g * lr")
    assert automl.functional_hash(q) == automl.functional_hash(p)


def test_simplify_rejects_invalid_programs():
    with pytest.raises(InvalidCandidate):
        simplify(Program((Instr(6, "mul", (4, 2.0)),), (6, 2, 3)))


def test_docs_page_holds_the_current_function_table():
    import os

    from search_spaces.programs import docs_table

    page = open(os.path.join(os.path.dirname(__file__), "..", "docs", "programs.md")).read()
    assert docs_table() in page, "docs/programs.md is out of date: regenerate its function table"
