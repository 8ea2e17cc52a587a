"""The text form of expressions: canonical printing and an ``ast``-based parser (never eval/exec).

Text is Python-like infix over the space's variables, e.g. ``sin(x)**2 + cos(x)**2``; a
``lambda x: ...`` header is accepted (its parameters are mapped, in order, onto the variables).
Printing uses the fewest parentheses that keep the tree (``a + (b + c)`` keeps its parentheses,
since float addition is not associative) and writes constants exactly (``repr``, or an integer
when the value is one), so ``parse(to_text(e)) == e`` bit for bit.
"""
from __future__ import annotations

import ast
import math
from typing import Sequence

from automl.errors import InvalidCandidate, ParseError

from .nodes import ATOM, CONST, FUNCTIONS, OPS, POWER, PREFIX, VAR, Expr, const, var
from .nodes import node as make

#: Hard limits of the parser (independent of a space's search limits).
MAX_TEXT_CHARS = 10_000
MAX_PARSE_DEPTH = 100
MAX_PARSE_NODES = 1_000

_AST_OPS: dict[type, str] = {op.ast_op: name for name, op in OPS.items() if op.ast_op is not None}


# --- printing ----------------------------------------------------------------------------------------

def _const_text(v: float) -> str:
    if v.is_integer() and abs(v) < 2.0**53 and not (v == 0 and math.copysign(1.0, v) < 0):
        return str(int(v))  # exact: every integer below 2**53 is a float
    return repr(v)  # shortest text that round-trips the float exactly (keeps -0.0)


def _prec(e: Expr) -> int:
    if e.op == VAR:
        return ATOM
    if e.op == CONST:
        return PREFIX if math.copysign(1.0, e.value) < 0 else ATOM  # "-2" binds like unary minus
    return OPS[e.op].prec


def to_text(e: Expr) -> str:
    """Canonical text of ``e`` (see the module docstring)."""
    if not isinstance(e, Expr):
        raise InvalidCandidate(f"not an expression: {type(e).__name__}")
    if e.op == VAR:
        return e.value
    if e.op == CONST:
        return _const_text(e.value)
    op = OPS[e.op]
    if op.kind == "function":
        return f"{op.symbol}({', '.join(to_text(a) for a in e.args)})"
    if op.kind == "prefix":
        inner = to_text(e.args[0])
        return op.symbol + (f"({inner})" if _prec(e.args[0]) < op.prec else inner)
    left, right = e.args
    ls, rs = to_text(left), to_text(right)
    if op.prec == POWER:  # right-associative; the exponent may be a bare negative constant
        wrap_left, wrap_right = _prec(left) <= op.prec, _prec(right) < PREFIX
    else:
        wrap_left, wrap_right = _prec(left) < op.prec, _prec(right) <= op.prec
    ls = f"({ls})" if wrap_left else ls
    rs = f"({rs})" if wrap_right else rs
    sep = " " if op.prec < 2 else ""
    return f"{ls}{sep}{op.symbol}{sep}{rs}"


# --- parsing -----------------------------------------------------------------------------------------

class _Converter:
    """Turns a checked ``ast`` expression into an Expr; every error names its line and column."""

    def __init__(self, lines: list[str], names: dict[str, str], line_shift: int, col_shift: int):
        self.lines, self.names = lines, names
        self.line_shift, self.col_shift = line_shift, col_shift
        self.count = 0

    def where(self, node: ast.AST) -> tuple[int, int]:
        line = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = len(text.encode()[:offset].decode(errors="ignore")) + 1  # ast columns count UTF-8 bytes
        return self.shift(line, col)

    def shift(self, line: int, col: int) -> tuple[int, int]:
        return line + self.line_shift, col + (self.col_shift if line == 1 else 0)

    def fail(self, message: str, node: ast.AST) -> ParseError:
        return ParseError(message, *self.where(node))

    def number(self, node: ast.AST, negate: bool = False) -> Expr | None:
        """A numeric literal (optionally negated) as a constant, or None when ``node`` is not one."""
        if not isinstance(node, ast.Constant) or isinstance(node.value, bool) \
                or not isinstance(node.value, (int, float)):
            return None
        try:
            v = float(node.value)
        except OverflowError:
            raise self.fail(f"number {node.value} is too large", node) from None
        if not math.isfinite(v):
            raise self.fail(f"constant {node.value!r} is not finite", node)
        return const(-v if negate else v)

    def convert(self, node: ast.AST, depth: int) -> Expr:
        if depth > MAX_PARSE_DEPTH:
            raise self.fail(f"expression nests deeper than {MAX_PARSE_DEPTH} levels", node)
        self.count += 1
        if self.count > MAX_PARSE_NODES:
            raise self.fail(f"expression has more than {MAX_PARSE_NODES} nodes", node)
        if isinstance(node, ast.Constant):
            num = self.number(node)
            if num is None:
                raise self.fail(f"unsupported constant {node.value!r} (only real numbers)", node)
            return num
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return var(self.names[node.id])
            if node.id in FUNCTIONS:
                raise self.fail(f"function {node.id!r} must be called, e.g. {node.id}(x)", node)
            known = ", ".join(self.names) or "none"
            raise self.fail(f"unknown name {node.id!r} (variables: {known})", node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self.convert(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                num = self.number(node.operand, negate=True)  # a literal: keep its exact value
                return num if num is not None else make("neg", self.convert(node.operand, depth + 1))
            raise self.fail(f"unsupported operator {type(node.op).__name__}", node)
        if isinstance(node, ast.BinOp):
            name = _AST_OPS.get(type(node.op))
            if name is None or OPS[name].arity != 2:
                hint = " (use ** for powers)" if isinstance(node.op, ast.BitXor) else ""
                raise self.fail(f"unsupported operator {type(node.op).__name__}{hint}", node)
            left = self.convert(node.left, depth + 1)
            right = self.convert(node.right, depth + 1)
            if name == "**" and right.op != CONST:
                raise self.fail("the exponent of ** must be a number", node.right)
            return make(name, left, right)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                raise self.fail(f"attribute access is not allowed (write {node.func.attr}(x), "
                                f"not ...{node.func.attr}(x))", node.func)
            if not isinstance(node.func, ast.Name):
                raise self.fail("only named functions can be called", node.func)
            fn = FUNCTIONS.get(node.func.id)
            if fn is None:
                raise self.fail(f"unknown function {node.func.id!r} (functions: {', '.join(FUNCTIONS)})",
                                node.func)
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise self.fail(f"{fn.name}() takes positional arguments only", node)
            if len(node.args) != fn.arity:
                raise self.fail(f"{fn.name}() takes {fn.arity} argument(s), got {len(node.args)}", node)
            return make(fn.name, *(self.convert(a, depth + 1) for a in node.args))
        if isinstance(node, ast.Attribute):
            raise self.fail("attribute access is not allowed", node)
        if isinstance(node, ast.Subscript):
            raise self.fail("subscripts are not allowed", node)
        if isinstance(node, ast.Lambda):
            raise self.fail("lambda is only allowed around the whole expression", node)
        raise self.fail(f"unsupported syntax: {type(node).__name__}", node)


def _lambda_names(fn: ast.Lambda, variables: Sequence[str], conv: _Converter) -> dict[str, str]:
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults:
        raise conv.fail("lambda may only take plain positional parameters", fn)
    params = [p.arg for p in a.posonlyargs + a.args]
    if len(params) != len(variables):
        raise conv.fail(f"lambda takes {len(params)} parameter(s); the space has {len(variables)} "
                        f"variable(s) ({', '.join(variables)})", fn)
    return dict(zip(params, variables))


def parse(text: str, variables: Sequence[str]) -> Expr:
    """Parse the text form over ``variables``; raise ``ParseError`` (with line/column) for anything
    outside the language: unknown names or functions, attribute access, subscripts, strings,
    nested lambdas, or text longer/deeper than the parser limits."""
    if not isinstance(text, str):
        raise ParseError(f"expression text must be a string, got {type(text).__name__}", 1, 1)
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"expression text is {len(text)} characters long (limit {MAX_TEXT_CHARS})", 1, 1)
    body_text = text.lstrip()  # ast's "eval" mode rejects leading indentation
    removed = text[:len(text) - len(body_text)]
    line_shift = removed.count("\n")
    col_shift = len(removed) - (removed.rfind("\n") + 1)
    conv = _Converter(body_text.splitlines() or [""], {v: v for v in variables}, line_shift, col_shift)
    if not body_text:
        raise ParseError("empty expression", 1, 1)
    try:
        tree = ast.parse(body_text, mode="eval")
    except SyntaxError as exc:
        line, col = conv.shift(exc.lineno or 1, exc.offset or 1)
        raise ParseError(f"syntax error: {exc.msg}", line, col) from None
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, huge literals, deep nesting
        raise ParseError(f"cannot parse expression: {type(exc).__name__}: {exc}".rstrip(": "),
                         *conv.shift(1, 1)) from None
    body = tree.body
    if isinstance(body, ast.Lambda):
        conv.names = _lambda_names(body, variables, conv)
        body = body.body
    return conv.convert(body, 1)
