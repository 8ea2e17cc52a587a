"""Parse program text into the IR with ``ast`` (nothing is ever evaluated or executed).

Accepted: one ``def NAME(w, g, m, v, lr[, t]):`` whose body is straight-line assignments
``x = <expr>`` (``x += <expr>`` etc. too) ending in ``return update, m, v``.  An expression is a
name, a number, ``-e``, ``e op e`` (op in + - * / **) or ``f(e, ...)`` with f from the function
table.  Nested expressions are flattened into temporaries (``flatten=False`` rejects them
instead).  ``x = y`` and ``x = 0.9`` bind names without an instruction.  ``-<number>`` is a
constant.  Everything else raises ``ParseError`` with the line and column of the offending node.
"""
from __future__ import annotations

import ast
import math

from automl.errors import ParseError

from .ir import INPUT_NAMES, N_INPUTS, Instr, Program
from .ops import BINOPS, FUNCTIONS, OPS

#: Most instructions a program may have after flattening.
MAX_STATEMENTS = 1000
#: Longest text accepted (checked before parsing).
MAX_CHARS = 100_000
#: Most ast nodes accepted (checked before flattening).
MAX_NODES = 20 * MAX_STATEMENTS
#: Deepest expression nesting accepted.
MAX_DEPTH = 64

_FORBIDDEN = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators are not allowed",
    ast.NamedExpr: "assignment expressions are not allowed",
    ast.Starred: "starred expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are only allowed in the return statement",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Slice: "subscripts are not allowed",
}
_FORBIDDEN_STMT = {
    ast.For: "loops are not allowed", ast.AsyncFor: "loops are not allowed", ast.While: "loops are not allowed",
    ast.If: "if statements are not allowed", ast.With: "with statements are not allowed",
    ast.AsyncWith: "with statements are not allowed", ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed", ast.FunctionDef: "nested functions are not allowed",
    ast.AsyncFunctionDef: "nested functions are not allowed", ast.ClassDef: "classes are not allowed",
    ast.Global: "global is not allowed", ast.Nonlocal: "nonlocal is not allowed",
    ast.Try: "try is not allowed", ast.Raise: "raise is not allowed", ast.Delete: "del is not allowed",
    ast.Assert: "assert is not allowed", ast.Pass: "pass is not allowed", ast.Break: "break is not allowed",
    ast.Continue: "continue is not allowed", ast.Expr: "expression statements are not allowed",
}


def _err(msg: str, node: ast.AST | None) -> ParseError:
    if node is None or not hasattr(node, "lineno"):
        return ParseError(msg, 1, 1)
    return ParseError(msg, node.lineno, node.col_offset + 1)


class _Builder:
    def __init__(self, flatten: bool, used_names: set[str]):
        self.flatten = flatten
        self.instrs: list[Instr] = []
        self.names: list[str] = list(INPUT_NAMES)
        self.env: dict[str, int | float] = {}
        self.used = used_names
        self.tmp = 0
        self.bound_constants: list[tuple[str, float]] = []  # ``name = <number>`` bindings, in text order

    def emit(self, op: str, args: list[int | float], name: str, node: ast.AST) -> int:
        if len(self.instrs) >= MAX_STATEMENTS:
            raise _err(f"program too long: more than {MAX_STATEMENTS} statements", node)
        dest = N_INPUTS + len(self.instrs)
        self.instrs.append(Instr(dest, op, tuple(args)))
        self.names.append(name)
        return dest

    def temp_name(self) -> str:
        while True:
            self.tmp += 1
            name = f"tmp{self.tmp}"
            if name not in self.used and name not in self.env:
                return name

    # An "operand" is a register (int) or a constant (float).
    def operand(self, node: ast.expr, depth: int) -> int | float:
        """Flatten ``node`` to an operand, emitting temporaries for nested operations."""
        atom = self.atom(node)
        if atom is not None:
            return atom
        if not self.flatten:
            raise _err("nested expression: write one operation per statement", node)
        op, args = self.operation(node, depth + 1)
        return self.emit(op, args, self.temp_name(), node)

    def atom(self, node: ast.expr) -> int | float | None:
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise _err(f"name {node.id!r} is not allowed", node)
            if node.id not in self.env:
                what = "function" if node.id in FUNCTIONS else "name"
                raise _err(f"unknown {what} {node.id!r}" + (" (call it)" if what == "function" else ""), node)
            return self.env[node.id]
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _err(f"constant {v!r} is not a number", node)
            try:
                f = float(v)
            except OverflowError:
                raise _err("numeric constant too large", node) from None
            if not math.isfinite(f):
                raise _err(f"constant {v!r} is not finite", node)
            return f
        if isinstance(node, ast.UnaryOp):
            # a chain of unary +/- around a number is a number; +name is the name
            negate, inner = False, node
            while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, (ast.USub, ast.UAdd)):
                negate ^= isinstance(inner.op, ast.USub)
                inner = inner.operand
            if isinstance(inner, ast.Constant):
                value = self.atom(inner)
                return -value if negate else value
            if isinstance(node.op, ast.UAdd) and isinstance(node.operand, ast.Name):
                return self.atom(node.operand)
        return None

    def operation(self, node: ast.expr, depth: int) -> tuple[str, list[int | float]]:
        """``node`` as one op with flattened operands."""
        if depth > MAX_DEPTH:
            raise _err(f"expression nested more than {MAX_DEPTH} deep", node)
        if isinstance(node, ast.BinOp):
            op = BINOPS.get(type(node.op).__name__)
            if op is None:
                raise _err(f"operator {type(node.op).__name__} is not allowed (use + - * / **)", node)
            return op, [self.operand(node.left, depth), self.operand(node.right, depth)]
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return "neg", [self.operand(node.operand, depth)]
            if isinstance(node.op, ast.UAdd):
                return self.operation(node.operand, depth + 1)
            raise _err(f"unary operator {type(node.op).__name__} is not allowed", node)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                if isinstance(node.func, ast.Attribute):
                    raise _err("attribute access is not allowed", node.func)
                raise _err("only functions of the table can be called", node.func)
            fname = node.func.id
            if fname.startswith("__"):
                raise _err(f"name {fname!r} is not allowed", node.func)
            if fname not in FUNCTIONS:
                raise _err(f"unknown function {fname!r}", node.func)
            if node.keywords:
                raise _err(f"{fname}() takes no keyword arguments", node.keywords[0].value)
            spec = OPS[fname]
            if len(node.args) != spec.arity:
                raise _err(f"{fname}() takes {spec.arity} argument{'s' * (spec.arity != 1)}, "
                           f"got {len(node.args)}", node)
            return fname, [self.operand(a, depth) for a in node.args]
        for cls, msg in _FORBIDDEN.items():
            if isinstance(node, cls):
                raise _err(msg, node)
        raise _err(f"{type(node).__name__} is not allowed here", node)

    def assign(self, name: str, value: ast.expr, target: ast.AST, aug_op: str | None = None) -> None:
        if name.startswith("__"):
            raise _err(f"name {name!r} is not allowed", target)
        if name in FUNCTIONS:
            raise _err(f"cannot assign to {name!r}: it names a function", target)
        if aug_op is not None:
            if name not in self.env:
                raise _err(f"unknown name {name!r}", target)
            args = [self.env[name], self.operand(value, 0)]
            self.env[name] = self.emit(aug_op, args, name, value)
            return
        atom = self.atom(value)
        if atom is not None:
            self.env[name] = atom
            if type(atom) is float:
                self.bound_constants.append((name, atom))
            return
        op, args = self.operation(value, 1)
        self.env[name] = self.emit(op, args, name, value)


def _check_signature(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    if fn.decorator_list:
        raise _err("decorators are not allowed", fn.decorator_list[0])
    if a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or a.defaults or a.kw_defaults:
        raise _err("the signature must be (w, g, m, v, lr) or (w, g, m, v, lr, t)", fn)
    if fn.returns is not None or any(x.annotation is not None for x in a.args):
        raise _err("annotations are not allowed", fn)
    names = [x.arg for x in a.args]
    if names not in (list(INPUT_NAMES[:5]), list(INPUT_NAMES)):
        raise _err(f"the signature must be (w, g, m, v, lr) or (w, g, m, v, lr, t), got ({', '.join(names)})", fn)
    return names


def parse(text: str, *, flatten: bool = True) -> Program:
    """Parse program text (see the module docstring); raise ``ParseError(message, line, col)``."""
    return _parse(text, flatten)[0]


def named_constants(text: str) -> list[tuple[str, float]]:
    """The names the text binds to constants (``beta1 = 0.9``, ``eps = 1e-8``), as ``(name,
    value)`` pairs in text order (a name bound twice appears twice).  The IR keeps constants
    inline and nameless; ProgramOptimizer uses these names for the program's hyper-parameters.
    Raises ParseError like :func:`parse`."""
    return list(_parse(text, True)[1].bound_constants)


def _parse(text: str, flatten: bool) -> tuple[Program, _Builder]:
    if not isinstance(text, str):
        raise ParseError(f"program text must be a str, got {type(text).__name__}", 1, 1)
    if len(text) > MAX_CHARS:
        raise ParseError(f"program text longer than {MAX_CHARS} characters", 1, 1)
    try:
        tree = ast.parse(text, mode="exec")
    except SyntaxError as exc:
        raise ParseError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes; pathological nesting
        raise ParseError(f"cannot parse: {exc}", 1, 1) from None
    n_nodes = 0
    for node in ast.walk(tree):
        n_nodes += 1
        if n_nodes > MAX_NODES:
            raise _err(f"program too large (more than {MAX_NODES} syntax nodes)", node)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        bad = tree.body[1] if len(tree.body) > 1 and isinstance(tree.body[0], ast.FunctionDef) else (
            tree.body[0] if tree.body else None)
        raise _err("expected exactly one function definition: def train(w, g, m, v, lr): ...", bad)
    fn = tree.body[0]
    params = _check_signature(fn)
    if len(fn.body) > 2 * MAX_STATEMENTS:  # coarse guard; the instruction count is checked exactly below
        raise _err(f"program too long: more than {MAX_STATEMENTS} statements", fn.body[2 * MAX_STATEMENTS])
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
    b = _Builder(flatten, used)
    b.env = {name: i for i, name in enumerate(params)}
    body = fn.body
    for k, stmt in enumerate(body):
        if isinstance(stmt, ast.Return):
            if k != len(body) - 1:
                raise _err("return must be the last statement", body[k + 1])
            break
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise _err("assign to one plain name per statement", stmt.targets[0])
            b.assign(stmt.targets[0].id, stmt.value, stmt.targets[0])
        elif isinstance(stmt, ast.AugAssign):
            op = BINOPS.get(type(stmt.op).__name__)
            if op is None or not isinstance(stmt.target, ast.Name):
                raise _err("only x += e, x -= e, x *= e, x /= e and x **= e are allowed", stmt)
            b.assign(stmt.target.id, stmt.value, stmt.target, aug_op=op)
        elif isinstance(stmt, ast.AnnAssign):
            raise _err("annotations are not allowed", stmt)
        else:
            raise _err(_FORBIDDEN_STMT.get(type(stmt), f"{type(stmt).__name__} is not allowed"), stmt)
    else:
        last = body[-1]
        raise ParseError("missing final 'return update, m, v'", getattr(last, "end_lineno", last.lineno), 1)
    ret = body[-1]
    if not isinstance(ret.value, ast.Tuple) or len(ret.value.elts) != 3:
        raise _err("return exactly three values: return update, m, v", ret.value or ret)
    outputs = []
    for elt in ret.value.elts:
        r = b.operand(elt, 0)
        if isinstance(r, float):
            raise _err("return values must be variables, not constants", elt)
        outputs.append(r)
    return Program(tuple(b.instrs), tuple(outputs), tuple(b.names)), b
