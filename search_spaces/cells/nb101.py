"""NAS-Bench-101 cells: at most 7 vertices and 9 edges, upper-triangular adjacency.

Vertex 0 is the input, the last vertex the output; interior vertices are ``conv3x3-bn-relu``,
``conv1x1-bn-relu`` or ``maxpool3x3``.  Text form is JSON with nasbench op names::

    {"matrix": [[0, 1, ...], ...], "ops": ["input", "conv3x3-bn-relu", ..., "output"]}

As in nasbench's ``ModelSpec``, vertices not on an input->output path are pruned, and the edge
limit applies to the pruned graph (the raw matrix, kept for the text form, may have more).

Hashing
  * structural key: the exact canonical form (``canon.canonical_string``) of the pruned graph with
    vertices labelled by op; equal iff the pruned graphs are isomorphic.
  * functional probe: see :func:`symbolic_output`.  Each vertex is an atom
    ``op#rank(sorted input atoms | X)`` (``X``: its own 1x1 projection of the cell input, as in
    nasbench); ranks separate parametric vertices with the same op and input and are chosen
    canonically (smallest output key over all assignments).  The cell is then run numerically on
    the probe tensor (channels kept equal; nasbench's channel split and truncation are not
    modelled) and the output is the sorted list of output branches, the output projection, and
    the live parameter count at 60 channels with nasbench's channel rule.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from automl.errors import InvalidCandidate, ParseError
from automl.space import SearchSpace

from . import kernels
from .canon import canonical_string

INPUT, OUTPUT = "input", "output"
CONV3, CONV1, MAXPOOL = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
OPS = (CONV3, CONV1, MAXPOOL)
MAX_VERTICES, MAX_EDGES = 7, 9
#: Parser limit: a 7-vertex cell is ~250 characters; anything this long is not a cell (and a
#: 100 MB text would take gigabytes to decode).
MAX_TEXT_CHARS = 100_000
#: op codes of NASLib's ``convert_spec_to_tuple`` (also the canonical-form labels)
OP_CODES = {INPUT: 0, OUTPUT: 1, MAXPOOL: 2, CONV1: 3, CONV3: 4}
CODE_OPS = {v: k for k, v in OP_CODES.items()}
#: channels at which live parameters are counted: divisible by every possible output fan-in
#: (1..5), so nasbench's channel split is exact and the count is isomorphism-invariant
PARAM_CHANNELS = 60


def _prune(matrix: Sequence[Sequence[int]], ops: Sequence[str]):
    """(pruned matrix, pruned ops) keeping vertices on an input->output path; None if the
    output cannot be reached from the input."""
    n = len(matrix)
    fwd = {0}
    for j in range(1, n):
        if any(matrix[i][j] and i in fwd for i in range(j)):
            fwd.add(j)
    bwd = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] and j in bwd for j in range(i + 1, n)):
            bwd.add(i)
    keep = sorted(fwd & bwd)
    if n - 1 not in keep or 0 not in keep:
        return None
    m = tuple(tuple(matrix[i][j] for j in keep) for i in keep)
    return m, tuple(ops[i] for i in keep)


def spec_problem(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> str | None:
    """Why (matrix, ops) is not a valid NB101 cell, or None when it is."""
    n = len(matrix)
    if n < 2:
        return f"an NB101 cell needs at least 2 vertices (input and output), got {n}"
    if n > MAX_VERTICES:
        return f"too many vertices: {n} > {MAX_VERTICES}"
    for i, row in enumerate(matrix):
        if len(row) != n:
            return f"the matrix must be square: row {i} has {len(row)} entries, expected {n}"
        for j, v in enumerate(row):
            if type(v) is not int or v not in (0, 1):  # bool, float or other values are refused
                return f"matrix[{i}][{j}] must be 0 or 1, got {v!r}"
    if len(ops) != n:
        return f"ops has {len(ops)} entries but the matrix has {n} vertices"
    if ops[0] != INPUT:
        return f"vertex 0 must be {INPUT!r}, got {ops[0]!r}"
    if ops[-1] != OUTPUT:
        return f"the last vertex must be {OUTPUT!r}, got {ops[-1]!r}"
    for i, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            return f"unknown op {op!r} at vertex {i}; expected one of {', '.join(OPS)}"
    for i in range(n):
        for j in range(i + 1):
            if matrix[i][j]:
                if i == j:
                    return f"self-loop at vertex {i}"
                return (f"edge {i}->{j} points backwards: the matrix must be strictly upper triangular "
                        "(vertices in topological order, no cycles)")
    p = _prune(matrix, ops)
    if p is None:
        return "the output vertex is not connected to the input"
    edges = sum(map(sum, p[0]))
    if edges > MAX_EDGES:
        return f"too many edges: {edges} > {MAX_EDGES} after pruning vertices off input->output paths"
    return None


@dataclasses.dataclass(frozen=True)
class NB101Cell:
    """An NB101 cell: raw adjacency ``matrix`` (tuple of 0/1 tuples) and ``ops``.  Immutable;
    construction raises ``InvalidCandidate`` for an invalid spec."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    automl_space: ClassVar[str] = "nb101"

    def __post_init__(self) -> None:
        if not isinstance(self.matrix, tuple) or not all(isinstance(r, tuple) for r in self.matrix):
            raise InvalidCandidate("NB101Cell.matrix must be a tuple of tuples (use NB101Cell.make)")
        if not isinstance(self.ops, tuple):
            raise InvalidCandidate("NB101Cell.ops must be a tuple (use NB101Cell.make)")
        problem = spec_problem(self.matrix, self.ops)
        if problem:
            raise InvalidCandidate(problem)

    @classmethod
    def make(cls, matrix: Any, ops: Sequence[str]) -> "NB101Cell":
        """Build from any nested sequence / array of 0/1 and a sequence of op names."""
        return cls(tuple(tuple(int(v) for v in row) for row in np.asarray(matrix).tolist()), tuple(ops))

    @functools.cached_property
    def pruned(self) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
        """(matrix, ops) of the graph restricted to vertices on input->output paths."""
        return _prune(self.matrix, self.ops)

    def __str__(self) -> str:
        return to_text(self)


def to_text(cell: NB101Cell) -> str:
    return json.dumps({"matrix": [list(r) for r in cell.matrix], "ops": list(cell.ops)})


def from_text(text: str) -> NB101Cell:
    """Parse the JSON text form.  ``ParseError`` for bad JSON, wrong types or unknown op names;
    ``InvalidCandidate`` for a well-formed spec that is not a valid cell (cycle / not upper
    triangular, disconnected output, too many vertices or edges)."""
    if not isinstance(text, str):
        raise ParseError(f"NB101 text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"NB101 text is {len(text)} characters long (limit {MAX_TEXT_CHARS})", 1, 1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"NB101 text is not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise ParseError("NB101 text is nested too deeply", 1, 1) from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ParseError(f"NB101 text is not valid JSON: {str(exc)[:100]}", 1, 1) from None
    if not isinstance(obj, dict) or set(obj) != {"matrix", "ops"}:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ParseError(f'NB101 text must be a JSON object with exactly the keys "matrix" and "ops", got {got}')
    matrix, ops = obj["matrix"], obj["ops"]
    if not isinstance(matrix, list) or not all(isinstance(r, list) for r in matrix):
        raise ParseError('"matrix" must be a list of lists of 0/1')
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if type(v) is not int or v not in (0, 1):
                raise ParseError(f'"matrix"[{i}][{j}] must be 0 or 1, got {v!r}')
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise ParseError('"ops" must be a list of op names')
    known = (INPUT, OUTPUT) + OPS
    for i, op in enumerate(ops):
        if op not in known:
            raise ParseError(f"unknown op {op!r} at vertex {i}; expected one of {', '.join(known)}")
    return NB101Cell(tuple(tuple(r) for r in matrix), tuple(ops))


def to_naslib_tuple(cell: NB101Cell) -> tuple[int, ...]:
    """NASLib's ``convert_spec_to_tuple`` encoding (7-vertex cells only): 49 adjacency entries
    row-major, then the 7 op codes (``OP_CODES``)."""
    if len(cell.ops) != MAX_VERTICES:
        raise InvalidCandidate(f"the NASLib encoding needs a 7-vertex matrix, got {len(cell.ops)} vertices")
    return tuple(v for row in cell.matrix for v in row) + tuple(OP_CODES[o] for o in cell.ops)


def from_naslib_tuple(t: Sequence[int]) -> NB101Cell:
    if len(t) != 56:
        raise ParseError(f"a NASLib NB101 tuple has 56 entries (49 adjacency + 7 ops), got {len(t)}")
    if any(c not in CODE_OPS for c in t[49:]):
        raise ParseError(f"unknown NASLib op code in {tuple(t[49:])}")
    return NB101Cell(tuple(tuple(int(v) for v in t[7 * i:7 * i + 7]) for i in range(7)),
                     tuple(CODE_OPS[c] for c in t[49:]))


# --- structural key ----------------------------------------------------------------------------

def graph_key(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> str:
    """Exact canonical form of an (already pruned) labelled DAG."""
    n = len(ops)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if matrix[i][j]]
    return canonical_string([OP_CODES[o] for o in ops], edges)


# --- parameters --------------------------------------------------------------------------------

def vertex_channels(matrix: Sequence[Sequence[int]], channels: int = PARAM_CHANNELS) -> list[int]:
    """nasbench's ``compute_vertex_channels`` for C_in = C_out = ``channels`` on a pruned matrix."""
    n = len(matrix)
    ch = [0] * n
    ch[0] = ch[-1] = channels
    if n == 2:
        return ch
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))
    interior, extra = divmod(channels, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            ch[v] = interior + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            ch[v] = max(ch[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return ch


def live_param_count(cell: NB101Cell, channels: int = PARAM_CHANNELS) -> int:
    """Trainable parameters of the pruned cell with nasbench's channel rule (convs without bias,
    BN with scale and shift, a 1x1 projection of the input for each vertex reading it)."""
    m, ops = cell.pruned
    n = len(ops)
    ch = vertex_channels(m, channels)
    total = 0
    for v in range(1, n - 1):
        c = ch[v]
        if m[0][v]:
            total += channels * c + 2 * c
        if ops[v] == CONV3:
            total += 9 * c * c + 2 * c
        elif ops[v] == CONV1:
            total += c * c + 2 * c
    if m[0][n - 1]:
        total += channels * channels + 2 * channels
    return total


# --- functional probe --------------------------------------------------------------------------

_SHORT = {CONV3: "c3", CONV1: "c1", MAXPOOL: "mp"}
_ATOMS: dict[str, tuple[str, tuple[str, ...], bool]] = {}  # atom key -> (op, input atoms, reads X)


def _run(m, ops, ranks: Mapping[int, Any]) -> tuple[str, dict[int, str], dict[int, str]]:
    n = len(ops)
    keys: dict[int, str] = {}
    in_keys: dict[int, str] = {}
    for t in range(1, n - 1):
        parts = tuple(sorted(keys[s] for s in range(1, t) if m[s][t]))
        has_x = bool(m[0][t])
        in_key = ",".join(parts) + ("|X" if has_x else "")
        param = ops[t] != MAXPOOL or has_x
        akey = f"{_SHORT[ops[t]]}#{ranks[t] if param else ''}({in_key})"
        if "?" not in akey and akey not in _ATOMS:
            _ATOMS[akey] = (ops[t], parts, has_x)
        keys[t], in_keys[t] = akey, in_key
    out = sorted(keys[s] for s in range(1, n - 1) if m[s][n - 1])
    return "out(" + ",".join(out) + ")" + ("+P" if m[0][n - 1] else ""), keys, in_keys


def _parametric(ops, m, t) -> bool:
    return ops[t] != MAXPOOL or bool(m[0][t])


@functools.lru_cache(maxsize=200_000)
def symbolic_output(m: tuple, ops: tuple) -> tuple[str, dict[int, str]]:
    """Canonical (output key, atom key per vertex) of a pruned cell; ranks inside each group of
    parametric vertices with the same op and input are tried in every assignment and the smallest
    output key is kept."""
    n = len(ops)
    params = [t for t in range(1, n - 1) if _parametric(ops, m, t)]
    _, _, coarse_in = _run(m, ops, {t: "?" for t in params})
    groups: dict[tuple[str, str], list[int]] = {}
    for t in params:
        groups.setdefault((ops[t], coarse_in[t]), []).append(t)
    base = {t: 0 for t in params}
    multi = [g for g in groups.values() if len(g) > 1]
    best = None
    for perms in itertools.product(*[itertools.permutations(range(len(g))) for g in multi]):
        ranks = dict(base)
        for g, perm in zip(multi, perms):
            ranks.update(zip(g, perm))
        key, keys, _ = _run(m, ops, ranks)
        if best is None or key < best[0]:
            best = (key, keys)
    return best


_VALUES: dict[tuple[int, str], np.ndarray] = {}
_MAX_MEMO = 200_000


def _value(seed: int, akey: str, size: int = kernels.H) -> np.ndarray:
    v = _VALUES.get((seed, size, akey))
    if v is None:
        if len(_VALUES) > _MAX_MEMO:
            _VALUES.clear()
        op, parts, has_x = _ATOMS[akey]
        x = np.zeros(kernels.shape(size))
        for p in parts:
            x = x + _value(seed, p, size)
        if has_x:
            x = x + kernels.conv_bn_relu(kernels.probe_input(seed, size), kernels.weights(seed, akey + "/proj", 1))
        if op == MAXPOOL:
            v = kernels.max_pool3(x)
        else:
            v = kernels.conv_bn_relu(x, kernels.weights(seed, akey, 3 if op == CONV3 else 1))
        v.flags.writeable = False
        _VALUES[(seed, size, akey)] = v
    return v


def probe_outputs(cell: NB101Cell, seed: int, size: int = kernels.H) -> list[np.ndarray]:
    """[output branches in canonical order..., output projection (if any), live counts];
    ``size``: the probe's spatial size (default 8 x 8)."""
    m, ops = cell.pruned
    n = len(ops)
    key, keys = symbolic_output(m, ops)
    branches = sorted(keys[s] for s in range(1, n - 1) if m[s][n - 1])
    outs = [_value(seed, k, size) for k in branches]
    if m[0][n - 1]:
        outs.append(kernels.conv_bn_relu(kernels.probe_input(seed, size), kernels.weights(seed, "out/proj", 1)))
    interior = ops[1:-1]
    counts = [live_param_count(cell), interior.count(CONV3), interior.count(CONV1), interior.count(MAXPOOL),
              sum(m[0][1:])]
    outs.append(np.array(counts, dtype=np.float64))
    return outs


# --- the space ---------------------------------------------------------------------------------

def _random_spec(rng: np.random.Generator, n: int = MAX_VERTICES):
    matrix = np.triu(rng.integers(0, 2, size=(n, n)), 1)
    ops = [INPUT] + [OPS[int(i)] for i in rng.integers(0, len(OPS), size=n - 2)] + [OUTPUT]
    return tuple(tuple(int(v) for v in row) for row in matrix), tuple(ops)


def _padded(cell: NB101Cell):
    """The cell as a 7-vertex raw spec (extra unconnected vertices before the output), so that
    mutation can grow a small cell; pruning makes it the same cell."""
    n = len(cell.ops)
    extra = MAX_VERTICES - n
    rows = [list(r[:-1]) + [0] * extra + [r[-1]] for r in cell.matrix[:-1]]
    rows += [[0] * MAX_VERTICES for _ in range(extra)]
    rows.append([0] * MAX_VERTICES)
    ops = list(cell.ops[:-1]) + [CONV3] * extra + [OUTPUT]
    return rows, ops


class NB101Space(SearchSpace):
    """NAS-Bench-101 cells (see the module docstring for the text form and hashing)."""

    name = "nb101"
    version = "2"
    probe_spec = ("nb101-cell:vertex atoms keyed by (op,sorted input atoms,own input projection,canonical rank);"
                  f"{kernels.SPEC};conv-bn-relu, maxpool3x3 pad1, equal channels;"
                  f"out=[sorted branches, input projection, live counts@C={PARAM_CHANNELS}]")
    probe_dtype = "float64"
    quantize_bits = 24
    max_tries = 10_000

    def sample(self, rng: np.random.Generator) -> NB101Cell:
        """nasbench's ``random_spec``: random 7x7 upper-triangular matrix and ops until valid."""
        for _ in range(self.max_tries):
            m, ops = _random_spec(rng)
            if spec_problem(m, ops) is None:
                return NB101Cell(m, ops)
        raise InvalidCandidate(f"no valid NB101 cell in {self.max_tries} random draws")

    def mutate(self, genome: NB101Cell, rng: np.random.Generator) -> NB101Cell:
        """nasbench's ``mutate_spec`` (rate 1): flip each edge with probability 1/7, resample each
        interior op with probability 1/5; retry until the child is valid and differs."""
        base_m, base_ops = _padded(genome)
        n = MAX_VERTICES
        for _ in range(self.max_tries):
            m = [list(r) for r in base_m]
            ops = list(base_ops)
            for i in range(n - 1):
                for j in range(i + 1, n):
                    if rng.random() < 1.0 / n:
                        m[i][j] = 1 - m[i][j]
            for t in range(1, n - 1):
                if rng.random() < 1.0 / (n - 2):
                    others = [o for o in OPS if o != ops[t]]
                    ops[t] = others[int(rng.integers(0, len(others)))]
            mt, opt = tuple(map(tuple, m)), tuple(ops)
            if spec_problem(mt, opt) is None and (mt, opt) != (genome.matrix, genome.ops):
                return NB101Cell(mt, opt)
        raise InvalidCandidate(f"no valid NB101 mutation in {self.max_tries} tries")

    def validate(self, genome: Any) -> None:
        if not isinstance(genome, NB101Cell):
            raise InvalidCandidate(f"not an NB101 cell: {type(genome).__name__}")

    def to_text(self, genome: NB101Cell) -> str:
        return to_text(genome)

    def from_text(self, text: str) -> NB101Cell:
        return from_text(text)

    def structural_key(self, genome: NB101Cell) -> str:
        m, ops = genome.pruned
        return "nb101-pruned:" + graph_key(m, ops)

    def probe(self, genome: NB101Cell, seed: int) -> list[np.ndarray]:
        return probe_outputs(genome, seed)

    def stats(self, genome: NB101Cell) -> dict[str, float]:
        m, ops = genome.pruned
        return {"vertices": float(len(ops)), "edges": float(sum(map(sum, m))),
                "live_params": float(live_param_count(genome))}

    def to_networkx(self, genome: NB101Cell, prune: bool = False):
        """DiGraph on vertices 0..n-1 with attribute ``op``; ``prune=True`` gives the pruned graph."""
        from automl._optional import require

        nx = require("networkx", "to_networkx")

        m, ops = genome.pruned if prune else (genome.matrix, genome.ops)
        g = nx.DiGraph()
        for v, op in enumerate(ops):
            g.add_node(v, op=op)
        n = len(ops)
        g.add_edges_from((i, j) for i in range(n) for j in range(i + 1, n) if m[i][j])
        return g
