"""ExpressionSpace: symbolic expressions / lambdas over named variables (symbolic regression)."""
from __future__ import annotations

import keyword
import math
from typing import Any, Sequence

import numpy as np

from automl import probe_math
from automl.errors import ConfigError, InvalidCandidate
from automl.hashing import LAMBDA_PROBE_N, probe_inputs
from automl.space import SearchSpace

from .nodes import CONST, OPS, VAR, Expr, const, evaluate, node, structural_key, var
from .syntax import parse, to_text

_P_LEAF = 0.3          # grow: chance of a leaf above the depth limit
_P_CONST = 0.3         # chance that a new leaf is a constant (when the space has constants)
_MUTATIONS = ("subtree", "point", "hoist", "insert")
_MUTATION_P = (0.35, 0.35, 0.15, 0.15)
_MUTATE_TRIES = 50
#: Most evaluator data points a probe uses (more would only cost time).
MAX_DOMAIN_POINTS = 1024


def _floats(name: str, values: Sequence[Any]) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in out) or any(isinstance(v, bool) for v in values):
        raise ConfigError(f"{name} must be finite numbers, got {values!r}")
    return out


def _int_option(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


class ExpressionSpace(SearchSpace):
    """Symbolic expressions over ``variables`` with + - * / unary -, ** (constant exponents) and the
    functions of ``OPS``; genomes are immutable ``Expr`` trees.

    Options: ``variables`` (names, in probe/data order), ``max_depth`` / ``max_size`` (limits for
    ``sample`` and ``mutate``; a leaf has depth 1), ``constants`` (leaf constants to draw),
    ``exponents`` (exponents ``**`` may draw), ``operators`` (the OPS names generation may use;
    default all).  Parsing accepts the whole language whatever ``operators`` says.
    """

    name = "expressions"
    version = "2"
    probe_spec = (f"expressions/v2: no domain: variable i = automl.hashing.probe_inputs(n_vars, seed)[i], "
                  f"x~U(-3,3) x{LAMBDA_PROBE_N}; domain {{'points': {{var: [...]}}, 'ranges': {{var: [lo, hi]}}}}: "
                  f"the declared points (at most {MAX_DOMAIN_POINTS}), then per variable lo, hi and "
                  f"{LAMBDA_PROBE_N} points ~U(lo, hi) from default_rng(seed); probe_math "
                  f"v{probe_math.VERSION} float64")

    def __init__(self, variables: Sequence[str] | str = ("x",), max_depth: int = 7, max_size: int = 40,
                 constants: Sequence[float] = (1.0, 2.0, 0.5, -1.0),
                 exponents: Sequence[float] = (2.0, 3.0, 0.5, -1.0),
                 operators: Sequence[str] | None = None):
        if isinstance(variables, str):
            variables = (variables,)
        variables = tuple(variables)
        if not variables:
            raise ConfigError("an expression space needs at least one variable")
        for v in variables:
            if not isinstance(v, str) or not v.isidentifier() or keyword.iskeyword(v) or v in OPS:
                raise ConfigError(f"variable {v!r} is not a usable name (identifier, not a keyword or function)")
        if len(set(variables)) != len(variables):
            raise ConfigError(f"duplicate variable names in {variables!r}")
        self.variables = variables
        self.max_depth = _int_option("max_depth", max_depth, 1, 64)
        self.max_size = _int_option("max_size", max_size, 1, 1000)
        self.constants = _floats("constants", constants)
        self.exponents = _floats("exponents", exponents)
        ops = tuple(OPS) if operators is None else tuple(operators)
        unknown = [o for o in ops if o not in OPS]
        if unknown:
            raise ConfigError(f"unknown operator(s) {unknown}; known: {', '.join(OPS)}")
        if "**" in ops and not self.exponents:
            raise ConfigError("operator ** needs at least one exponent")
        self.operators = ops
        self._binary_swap = tuple(o for o in ops if OPS[o].arity == 2 and o != "**")
        self._unary = tuple(o for o in ops if OPS[o].arity == 1)
        self._probe_env: dict[tuple, tuple] = {}

    def options(self) -> dict[str, Any]:
        return {"variables": list(self.variables), "max_depth": self.max_depth, "max_size": self.max_size,
                "constants": list(self.constants), "exponents": list(self.exponents),
                "operators": list(self.operators)}

    # --- text form --------------------------------------------------------------------------------
    def to_text(self, genome: Expr) -> str:
        return to_text(genome)

    def from_text(self, text: str) -> Expr:
        """Parse infix text or ``lambda <params>: ...`` (see search_spaces.expressions.syntax)."""
        return parse(text, self.variables)

    # --- checks, hashing, statistics ------------------------------------------------------------
    def validate(self, genome: Any) -> None:
        """``InvalidCandidate`` unless ``genome`` is an Expr over this space's variables."""
        if not isinstance(genome, Expr):
            raise InvalidCandidate(f"not an expression: {type(genome).__name__}")
        stack = [genome]
        while stack:
            e = stack.pop()
            if e.op == VAR and e.value not in self.variables:
                raise InvalidCandidate(f"unknown variable {e.value!r}; variables: {', '.join(self.variables)}")
            stack.extend(e.args)

    def structural_key(self, genome: Expr) -> str:
        return structural_key(genome)

    def probe(self, genome: Expr, seed: int, domain: dict[str, Any] | None = None) -> np.ndarray:
        """Outputs on the probe: without a domain the shared lambda probe (automl.hashing.probe_inputs,
        shape (64,)); with an evaluator's domain its data points, the ends of its ranges and 64
        uniform points inside them (see ``probe_spec``)."""
        key = (seed, None if domain is None else id(domain))
        env = self._probe_env.get(key)
        if env is None or env[1] is not domain:
            if domain is None:
                arrays = dict(zip(self.variables, probe_inputs(len(self.variables), seed)))
            else:
                arrays = self._domain_env(domain, seed)
            if len(self._probe_env) > 16:  # one entry per (seed, domain object) in use
                self._probe_env.clear()
            env = self._probe_env[key] = (arrays, domain)
        arrays = env[0]
        return evaluate(genome, arrays, len(next(iter(arrays.values()))))

    def _domain_env(self, domain: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
        unknown = set(domain) - {"points", "ranges"}
        if unknown:
            raise ConfigError(f"unknown expressions probe domain keys {sorted(unknown)}; known: points, ranges")
        points = domain.get("points") or {}
        ranges = dict(domain.get("ranges") or {})
        for v in self.variables:
            if v not in ranges and v in points:
                ranges[v] = [float(np.min(points[v])), float(np.max(points[v]))]
            if v not in ranges:
                raise ConfigError(f"probe domain names no points or range for variable {v!r}")
        n_pts = min((len(points[v]) for v in self.variables if v in points), default=0)
        n_pts = min(n_pts, MAX_DOMAIN_POINTS)
        rng = np.random.default_rng(seed)
        env = {}
        for v in self.variables:
            lo, hi = (float(x) for x in ranges[v])
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ConfigError(f"probe domain range for {v!r} must be finite [lo, hi], got {ranges[v]!r}")
            pts = np.asarray(points[v][:n_pts], dtype=np.float64) if v in points else rng.uniform(lo, hi, n_pts)
            a = np.concatenate([pts, [lo, hi], rng.uniform(lo, hi, LAMBDA_PROBE_N)])
            a.flags.writeable = False
            env[v] = a
        return env

    def stats(self, genome: Expr) -> dict[str, float]:
        return {"size": genome.size, "depth": genome.depth}

    # --- generation ---------------------------------------------------------------------------------
    def _pick(self, rng: np.random.Generator, seq: Sequence[Any]) -> Any:
        return seq[int(rng.integers(len(seq)))]

    def _leaf(self, rng: np.random.Generator) -> Expr:
        if self.constants and rng.random() < _P_CONST:
            return const(self._pick(rng, self.constants))
        return var(self._pick(rng, self.variables))

    def _grow(self, rng: np.random.Generator, depth: int, budget: int, full: bool) -> Expr:
        """A random tree of depth <= ``depth`` and size <= ``budget`` (grow, or full when ``full``)."""
        if depth <= 1 or budget < 2 or (not full and rng.random() < _P_LEAF):
            return self._leaf(rng)
        choices = [o for o in self.operators if OPS[o].arity + 1 <= budget]
        if not choices:
            return self._leaf(rng)
        name = self._pick(rng, choices)
        if name == "**":
            base = self._grow(rng, depth - 1, budget - 2, full)
            return node("**", base, const(self._pick(rng, self.exponents)))
        arity, remaining, args = OPS[name].arity, budget - 1, []
        for i in range(arity):
            child = self._grow(rng, depth - 1, remaining - (arity - i - 1), full)
            remaining -= child.size
            args.append(child)
        return node(name, *args)

    def sample(self, rng: np.random.Generator) -> Expr:
        """Ramped half-and-half: depth uniform in 2..max_depth, grow or full, size <= max_size."""
        depth = int(rng.integers(min(2, self.max_depth), self.max_depth + 1))
        return self._grow(rng, depth, self.max_size, full=bool(rng.random() < 0.5))

    # --- mutation ------------------------------------------------------------------------------------
    @staticmethod
    def _nodes(genome: Expr) -> list[tuple[tuple[int, ...], Expr, int, bool]]:
        """(path, node, level, is_exponent) for every node; the root has level 1."""
        out, stack = [], [((), genome, 1, False)]
        while stack:
            path, e, level, is_exp = stack.pop()
            out.append((path, e, level, is_exp))
            for i, a in enumerate(e.args):
                stack.append((path + (i,), a, level + 1, e.op == "**" and i == 1))
        return out

    @staticmethod
    def _replace(e: Expr, path: tuple[int, ...], new: Expr) -> Expr:
        if not path:
            return new
        args = list(e.args)
        args[path[0]] = ExpressionSpace._replace(args[path[0]], path[1:], new)
        return node(e.op, *args)

    def _perturb(self, v: float, rng: np.random.Generator) -> float | None:
        new = float(f"{v + rng.normal(0.0, 0.1 * max(abs(v), 1.0)):.6g}")
        return new if math.isfinite(new) and new != v else None

    def _point(self, e: Expr, is_exp: bool, rng: np.random.Generator) -> Expr | None:
        if is_exp:
            others = [x for x in self.exponents if x != e.value]
            return const(self._pick(rng, others)) if others else None
        if e.op == CONST and rng.random() < 0.5:
            v = self._perturb(e.value, rng)
            return None if v is None else const(v)
        if e.op in (CONST, VAR):
            return self._leaf(rng)
        if e.op == "**":
            others = [x for x in self.exponents if x != e.args[1].value]
            return node("**", e.args[0], const(self._pick(rng, others))) if others else None
        pool = self._binary_swap if OPS[e.op].arity == 2 else self._unary
        others = [o for o in pool if o != e.op]
        return node(self._pick(rng, others), *e.args) if others else None

    def _insert(self, e: Expr, rng: np.random.Generator) -> Expr | None:
        if not self.operators:
            return None
        name = self._pick(rng, self.operators)
        if name == "**":
            return node("**", e, const(self._pick(rng, self.exponents)))
        if OPS[name].arity == 1:
            return node(name, e)
        leaf = self._leaf(rng)
        return node(name, *((e, leaf) if rng.random() < 0.5 else (leaf, e)))

    def _mutate_once(self, genome: Expr, rng: np.random.Generator, size_limit: int,
                     depth_limit: int) -> Expr | None:
        nodes = self._nodes(genome)
        movable = [n for n in nodes if not n[3]]  # exponent slots only take point mutations
        kind = _MUTATIONS[int(rng.choice(len(_MUTATIONS), p=_MUTATION_P))]
        if kind == "subtree":
            path, e, level, _ = self._pick(rng, movable)
            budget = size_limit - (genome.size - e.size)
            depth = int(rng.integers(1, max(1, depth_limit - level + 1) + 1))
            return self._replace(genome, path, self._grow(rng, depth, budget, full=False))
        if kind == "point":
            path, e, _, is_exp = self._pick(rng, nodes)
            new = self._point(e, is_exp, rng)
            return None if new is None else self._replace(genome, path, new)
        if kind == "hoist":
            inner = [n for n in movable if n[1].args]
            if not inner:
                return None
            path, e, _, _ = self._pick(rng, inner)
            below = [n for n in self._nodes(e)[1:] if not n[3]]
            return self._replace(genome, path, self._pick(rng, below)[1])
        path, e, _, _ = self._pick(rng, movable)  # insert
        new = self._insert(e, rng)
        return None if new is None else self._replace(genome, path, new)

    def mutate(self, genome: Expr, rng: np.random.Generator) -> Expr:
        """A new genome by subtree replacement, point mutation (same-arity operator/function swap,
        constant perturbation, leaf swap), hoist or insert; within max_size/max_depth (or, for
        an input already beyond them, no larger than it) and different from ``genome`` (a fresh
        sample in the degenerate case where no mutation changes it).  Uses only ``rng``."""
        self.validate(genome)
        size_limit = max(self.max_size, genome.size)
        depth_limit = max(self.max_depth, genome.depth)
        before = to_text(genome)
        for _ in range(_MUTATE_TRIES):
            child = self._mutate_once(genome, rng, size_limit, depth_limit)
            if child is not None and child.size <= size_limit and child.depth <= depth_limit \
                    and to_text(child) != before:
                return child
        return self.sample(rng)
