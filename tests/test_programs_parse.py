"""Parser and printer of the optimizer-program language (search_spaces.programs)."""
import struct
import time

import numpy as np
import pytest

from automl.errors import InvalidCandidate, ParseError
from search_spaces.programs import (CLASSIC_PROGRAMS, MAX_STATEMENTS, OPS, Instr, Program, ProgramSpace,
                                    docs_table, parse, to_text)

H = "def train(w, g, m, v, lr):\n"

LION_TEXT = """\
def train(w, g, m, v, lr):
  c = interp(g, m, 0.9)
  update = sign(c)
  m = interp(g, m, 0.99)
  wd = w * 0.01
  update = update + wd
  update = update * lr
  return update, m, v
"""

# (name, text, expected line, expected column, words expected in the message)
HOSTILE = [
    ("syntax error", H + "  x = (g +\n  return x, m, v\n", 2, 7, "syntax"),
    ("unknown name", H + "  x = foo + g\n  return x, m, v\n", 2, 7, "unknown name 'foo'"),
    ("unknown function", H + "  x = foo(g)\n  return x, m, v\n", 2, 7, "unknown function 'foo'"),
    ("attribute call", H + "  x = np.exp(g)\n  return x, m, v\n", 2, 7, "attribute"),
    ("attribute", H + "  x = g.real\n  return x, m, v\n", 2, 7, "attribute"),
    ("__import__", H + "  x = __import__('os')\n  return x, m, v\n", 2, 7, "__import__"),
    ("dunder name", H + "  __x = g * 2\n  return g, m, v\n", 2, 3, "__x"),
    ("lambda", H + "  x = lambda: g\n  return x, m, v\n", 2, 7, "lambda"),
    ("for loop", H + "  for i in g:\n    x = i\n  return x, m, v\n", 2, 3, "loops"),
    ("while loop", H + "  while g:\n    x = g\n  return x, m, v\n", 2, 3, "loops"),
    ("comprehension", H + "  x = [a for a in g]\n  return x, m, v\n", 2, 7, "comprehension"),
    ("generator", H + "  x = sum(a for a in g)\n  return x, m, v\n", 2, 7, "unknown function"),
    ("subscript", H + "  x = g[0]\n  return x, m, v\n", 2, 7, "subscript"),
    ("if statement", H + "  if g:\n    x = g\n  return g, m, v\n", 2, 3, "if"),
    ("import", H + "  import os\n  return g, m, v\n", 2, 3, "import"),
    ("nested def", H + "  def f(): pass\n  return g, m, v\n", 2, 3, "nested function"),
    ("comparison", H + "  x = g < m\n  return x, m, v\n", 2, 7, "comparison"),
    ("floor division", H + "  x = g // m\n  return x, m, v\n", 2, 7, "FloorDiv"),
    ("walrus", H + "  x = (y := g)\n  return x, m, v\n", 2, 8, "assignment expression"),
    ("keyword argument", H + "  x = clip(g, lo=1.0, hi=2.0)\n  return x, m, v\n", 2, 18, "keyword"),
    ("wrong arity", H + "  x = sign(g, m)\n  return x, m, v\n", 2, 7, "takes 1 argument"),
    ("string constant", H + "  x = g * 'a'\n  return x, m, v\n", 2, 11, "not a number"),
    ("bool constant", H + "  x = g * True\n  return x, m, v\n", 2, 11, "not a number"),
    ("infinite constant", H + "  x = g * 1e999\n  return x, m, v\n", 2, 11, "not finite"),
    ("missing return", H + "  x = g * 2\n", 2, 1, "return"),
    ("return not last", H + "  return g, m, v\n  x = g\n", 3, 3, "last statement"),
    ("return two values", H + "  return g, m\n", 2, 10, "three values"),
    ("return constant", H + "  return 1.0, m, v\n", 2, 10, "not constants"),
    ("bad signature", "def train(w, g, m, v):\n  return g, m, v\n", 1, 1, "signature"),
    ("default argument", "def train(w, g, m, v, lr=1.0):\n  return g, m, v\n", 1, 1, "signature"),
    ("two functions", H + "  return g, m, v\ndef f(): pass\n", 3, 1, "one function"),
    ("module code", "import os\n" + H + "  return g, m, v\n", 1, 1, "one function"),
    ("decorator", "@foo\n" + H + "  return g, m, v\n", 1, 2, "decorator"),
    ("assign to a function name", H + "  sign = g * 2\n  return sign, m, v\n", 2, 3, "names a function"),
    ("tuple target", H + "  a, b = g, m\n  return a, m, v\n", 2, 3, "one plain name"),
    ("undeclared t", H + "  x = g * t\n  return x, m, v\n", 2, 11, "unknown name 't'"),
    ("expression statement", H + "  g\n  return g, m, v\n", 2, 3, "expression statement"),
    ("null byte", H + "  x = g\x00\n", None, None, ""),
    ("empty", "", 1, 1, "one function"),
]


@pytest.mark.parametrize("name,text,line,col,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_text_raises_parse_error_with_position(name, text, line, col, words):
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert err.line is not None and err.col is not None and err.line >= 1 and err.col >= 1
    if line is not None:
        assert (err.line, err.col) == (line, col), str(err)
    assert words in err.message, err.message


def test_nested_expression_rejected_in_strict_mode_and_flattened_otherwise():
    text = H + "  update = (sign(g) + w * 0.01) * lr\n  return update, m, v\n"
    with pytest.raises(ParseError) as info:
        parse(text, flatten=False)
    assert (info.value.line, info.value.col) == (2, 13) and "one operation" in info.value.message
    p = parse(text)
    assert [ins.op for ins in p.instrs] == ["sign", "mul", "add", "mul"]
    assert to_text(p).splitlines()[-2] == "  update = tmp3 * lr"
    # flattening is the same program as writing one op per line
    flat = parse(H + "  a = sign(g)\n  b = w * 0.01\n  c = a + b\n  update = c * lr\n  return update, m, v\n")
    assert p == flat


def test_too_many_statements_rejected_quickly():
    huge = H + "".join(f"  x{i} = g * 2.0\n" for i in range(100_000)) + "  return g, m, v\n"
    t0 = time.perf_counter()
    with pytest.raises(ParseError):
        parse(huge)
    assert time.perf_counter() - t0 < 0.5
    over = H + "  x = g\n" + "  x = x * g\n" * (MAX_STATEMENTS + 1) + "  return x, m, v\n"
    with pytest.raises(ParseError) as info:
        parse(over)
    assert "more than" in info.value.message and info.value.line == MAX_STATEMENTS + 3
    ok = H + "  x = g\n" + "  x = x * g\n" * MAX_STATEMENTS + "  return x, m, v\n"
    assert len(parse(ok)) == MAX_STATEMENTS


def test_deep_nesting_rejected():
    for text in (H + "  x = " + "+".join(["g"] * 500) + "\n  return x, m, v\n",
                 H + "  x = " + "+".join(["g"] * 5000) + "\n  return x, m, v\n",
                 H + "  x = " + "(" * 300 + "g" + ")" * 300 + "\n  return x, m, v\n"):
        with pytest.raises(ParseError):
            parse(text)


def test_never_executes_anything(monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval/exec must not be used")

    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, boom)
    p = parse(LION_TEXT)
    assert len(p) == 6
    # a program that would have side effects if executed just fails to parse
    with pytest.raises(ParseError):
        parse(H + "  x = exec('import os')\n  return g, m, v\n")


def test_round_trip_canonical_text():
    p = parse(LION_TEXT)
    assert to_text(p) == LION_TEXT
    for text in CLASSIC_PROGRAMS.values():
        q = parse(text)
        assert to_text(q) == text
        assert parse(to_text(q)) == q


def test_sugar_canonicalises():
    text = (H + "  beta = 0.9\n  mom = m\n  c = interp(g, mom, beta)\n  c += w\n  u = +c\n"
            "  neg = -0.5\n  u = u * neg\n  return u, m, v\n")
    p = parse(text)
    assert to_text(p) == (H + "  c = interp(g, m, 0.9)\n  c = c + w\n  u = c * -0.5\n  return u, m, v\n")
    assert parse(to_text(p)) == p


def test_constants_round_trip_bit_exactly():
    f32 = float(np.float32(0.899))
    assert repr(f32) == "0.8989999890327454"
    rng = np.random.default_rng(0)
    consts = [f32, 0.1, 1e-8, -0.0, 5e-324, 1.7976931348623157e308, -2.5e-300, 1 / 3]
    consts += [float(np.float32(x)) for x in rng.standard_normal(20)]
    consts += [float(x) for x in rng.standard_normal(20) * 10.0 ** rng.integers(-30, 30, 20)]
    for c in consts:
        p = parse(H + f"  x = g * {c!r}\n  return x, m, v\n")
        got = p.instrs[0].args[1]
        assert struct.pack("<d", got) == struct.pack("<d", c)
        q = parse(to_text(p))
        assert struct.pack("<d", q.instrs[0].args[1]) == struct.pack("<d", c)


def test_negative_constant_base_of_power_keeps_its_meaning():
    p = Program((Instr(6, "pow", (-0.5, 1)),), (6, 2, 3))
    text = to_text(p)
    assert "(-0.5) ** g" in text
    assert parse(text) == p


def test_shadowed_registers_are_renamed_when_printing():
    # m is reassigned, then the *input* m is read again: the printer must keep both apart
    p = Program((Instr(6, "mul", (2, 0.9)), Instr(7, "add", (2, 1)), Instr(8, "add", (6, 7))), (8, 6, 3),
                ("w", "g", "m", "v", "lr", "t", "m", "x", "m"))
    text = to_text(p)
    assert parse(text) == p
    assert to_text(parse(text)) == text


def test_t_is_declared_only_when_read():
    p = parse("def train(w, g, m, v, lr, t):\n  x = g * lr\n  return x, m, v\n")
    assert to_text(p).startswith("def train(w, g, m, v, lr):")
    q = parse("def train(w, g, m, v, lr, t):\n  x = g * t\n  return x, m, v\n")
    assert to_text(q).startswith("def train(w, g, m, v, lr, t):")


def test_malformed_ir_is_rejected():
    with pytest.raises(InvalidCandidate):
        Program((Instr(7, "sign", (1,)),), (6, 2, 3))  # not SSA
    with pytest.raises(InvalidCandidate):
        Program((Instr(6, "sign", (6,)),), (6, 2, 3))  # reads itself
    with pytest.raises(InvalidCandidate):
        Program((Instr(6, "nope", (1,)),), (6, 2, 3))
    with pytest.raises(InvalidCandidate):
        Program((Instr(6, "mul", (1, 2)),), (6, 2, 30))  # output out of range
    with pytest.raises(InvalidCandidate):
        Program((Instr(6, "mul", (1, float("nan"))),), (6, 2, 3))
    with pytest.raises(InvalidCandidate):
        Program((Instr(6, "mul", (1, 2)),), (6, 2, 3), names=("a",))


def test_function_table_is_the_documentation():
    table = docs_table()
    for name, spec in OPS.items():
        assert spec.doc and spec.doc in table
        assert callable(spec.np) and callable(spec.torch)
    for fn in ("abs", "sign", "sqrt", "square", "exp", "log", "sin", "cos", "tan", "arcsin", "arccos",
               "arctan", "sinh", "cosh", "tanh", "arcsinh", "arctanh", "min", "max", "interp", "clip", "div",
               "dot", "global_norm", "cosine_sim", "clip_by_global_norm"):
        assert fn in OPS


def test_space_from_text_and_to_text():
    space = ProgramSpace()
    p = space.from_text(LION_TEXT)
    assert space.to_text(p) == LION_TEXT
    with pytest.raises(ParseError):
        space.from_text("}}{{")
