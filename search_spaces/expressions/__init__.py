"""Symbolic expressions / lambdas (space "expressions"): immutable trees over named variables."""
from .nodes import FUNCTIONS, OPS, Expr, Op, const, evaluate, node, structural_key, var
from .space import ExpressionSpace
from .syntax import MAX_PARSE_DEPTH, MAX_PARSE_NODES, MAX_TEXT_CHARS, parse, to_text

__all__ = ["ExpressionSpace", "Expr", "Op", "OPS", "FUNCTIONS", "var", "const", "node", "evaluate",
           "structural_key", "parse", "to_text", "MAX_TEXT_CHARS", "MAX_PARSE_DEPTH", "MAX_PARSE_NODES"]
