"""NAS-Bench-201 cells: 4 nodes, 6 edges, each edge one of five ops.

Node j (1..3) is the sum over i < j of ``op(j<-i)(node i)``; node 0 is the cell input and node 3
its output.  Text form is the benchmark's string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1's
edge, node 2's two edges, node 3's three edges).

Hashing
  * structural key: drop ``none`` edges and every edge not on an input->output path, then take the
    smaller of the two encodings related by swapping nodes 1 and 2 (allowed only when no live edge
    joins them).  Those are all the isomorphisms of a cell (input and output are fixed), so the key
    is an exact canonical form; :func:`graph_key` computes the same partition with the generic
    canonicalizer (tests check that they agree).
  * functional probe: see :func:`symbolic_output`.  Linear ops (skip, avg-pool, none, sums) are
    normalised exactly into a sum of ``coeff * avgpool^depth(atom)`` terms, where an atom is the
    probe input or a ReLU-conv-BN applied to such a sum; the probe then *runs* that normalised
    cell numerically on a seeded tensor.  Each conv's weights are drawn from its function: op type,
    the exact key of its input, and a rank that separates distinct live convs of that type on that
    input.  Ranks are chosen canonically: over every assignment of ranks inside each group of
    interchangeable convs, the smallest output key wins (a handful of assignments at most).  The
    probe output also carries the live parameter count and the live conv counts, so cells with
    different live trainable parameters can never share a functional digest.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from automl.errors import InvalidCandidate, ParseError
from automl.space import Categorical, SearchSpace

from . import kernels
from .canon import canonical_string

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, CONV1, CONV3, POOL = range(5)
#: (to, from) of each edge, in text order; sorted by target node, so also a topological order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
EDGE_NAMES = tuple(f"{j}<-{i}" for j, i in EDGES)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
#: channels at which live parameters are counted (NB201's first stage)
PARAM_CHANNELS = 16


def conv_params(code: int, channels: int = PARAM_CHANNELS) -> int:
    """Trainable parameters of one NB201 op: ReLU-Conv(no bias)-BN(affine); 0 for the others."""
    if code == CONV1:
        return channels * channels + 2 * channels
    if code == CONV3:
        return 9 * channels * channels + 2 * channels
    return 0


@dataclasses.dataclass(frozen=True)
class NB201Cell:
    """An NB201 cell: the six edge ops in text order (``EDGE_NAMES``).  Immutable."""

    ops: tuple[str, ...]
    automl_space: ClassVar[str] = "nb201"

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple) or len(self.ops) != 6:
            raise InvalidCandidate(f"an NB201 cell has 6 edge ops, got {self.ops!r}")
        for name, op in zip(EDGE_NAMES, self.ops):
            if op not in _OP_INDEX:
                raise InvalidCandidate(f"unknown op {op!r} on edge {name}; expected one of {', '.join(OPS)}")

    @functools.cached_property
    def codes(self) -> tuple[int, ...]:
        return tuple(_OP_INDEX[op] for op in self.ops)

    @classmethod
    def from_codes(cls, codes) -> "NB201Cell":
        return cls(tuple(OPS[int(c)] for c in codes))

    def __str__(self) -> str:
        return to_text(self)


def to_text(cell: NB201Cell) -> str:
    o = cell.ops
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


MAX_TEXT_CHARS = 10_000


def from_text(text: str) -> NB201Cell:
    """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; ``ParseError`` names the problem and column."""
    if not isinstance(text, str):
        raise ParseError(f"NB201 text must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:  # a cell is ~90 characters
        raise ParseError(f"NB201 text is {len(text)} characters long (limit {MAX_TEXT_CHARS})", 1, 1)
    col = 1 + len(text) - len(text.lstrip())
    parts = text.strip().split("+")
    if len(parts) != 3:
        raise ParseError(f"an NB201 cell is 3 node groups joined by '+', got {len(parts)} group(s) "
                         "(expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)", 1, col)
    ops: list[str] = []
    for j, part in enumerate(parts, start=1):
        if len(part) < 2 or part[0] != "|" or part[-1] != "|":
            raise ParseError(f"node {j}: expected '|op~0|...|', got {part!r}", 1, col)
        toks = part[1:-1].split("|")
        if len(toks) != j:
            raise ParseError(f"node {j} needs {j} input edge(s), one from each earlier node; got {len(toks)}", 1, col)
        c = col + 1
        for i, tok in enumerate(toks):
            op, sep, src = tok.partition("~")
            if not sep or src != str(i):
                raise ParseError(f"node {j}: edge {tok!r} must read node {i} (written 'op~{i}')", 1, c)
            if op not in _OP_INDEX:
                raise ParseError(f"unknown op {op!r} on edge {j}<-{i}; expected one of {', '.join(OPS)}", 1, c)
            ops.append(op)
            c += len(tok) + 1
        col += len(part) + 1
    return NB201Cell(tuple(ops))


def all_cells() -> Iterator[NB201Cell]:
    """All 15,625 cells (lexicographic in op index, edge 1<-0 slowest)."""
    for codes in itertools.product(range(5), repeat=6):
        yield NB201Cell.from_codes(codes)


# --- liveness ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def live_edges(codes: tuple[int, ...]) -> tuple[bool, ...]:
    """Which edges are live: not ``none``, source reachable from the input and target reaching
    the output through non-``none`` edges."""
    reach = [True, False, False, False]
    for k, (j, i) in enumerate(EDGES):
        if codes[k] != NONE and reach[i]:
            reach[j] = True
    co = [False, False, False, True]
    for k in range(5, -1, -1):
        j, i = EDGES[k]
        if codes[k] != NONE and co[j]:
            co[i] = True
    return tuple(codes[k] != NONE and reach[i] and co[j] for k, (j, i) in enumerate(EDGES))


@functools.lru_cache(maxsize=None)
def pruned(codes: tuple[int, ...]) -> tuple[int, ...]:
    """Edge codes with every dead edge set to ``none``."""
    return tuple(c if live else NONE for c, live in zip(codes, live_edges(codes)))


def live_param_count(cell: NB201Cell, channels: int = PARAM_CHANNELS) -> int:
    """Trainable parameters on input->output paths (a conv fed only by zeros, or feeding only
    ``none`` edges, is dead and not counted)."""
    return sum(conv_params(c, channels) for c in pruned(cell.codes))


# --- structural key ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _structural(codes: tuple[int, ...]) -> str:
    p = pruned(codes)
    if p[2] == NONE:  # nodes 1 and 2 are not joined: swapping them is an isomorphism
        p = min(p, (p[1], p[0], NONE, p[3], p[5], p[4]))
    return "nb201-pruned-min-swap:" + "".join(map(str, p))


def graph_key(cell: NB201Cell) -> str:
    """The generic exact canonical form of the pruned cell as a vertex-labelled digraph (sum nodes
    labelled in/out/inner, one vertex per live edge labelled by its op).  Same partition as the
    structural key; slower.  Used to cross-check it."""
    p = pruned(cell.codes)
    nodes = sorted({0, 3} | {n for k, (j, i) in enumerate(EDGES) if p[k] for n in (i, j)})
    index = {n: t for t, n in enumerate(nodes)}
    labels = [0 if n == 0 else 1 if n == 3 else 2 for n in nodes]
    edges = []
    for k, (j, i) in enumerate(EDGES):
        if p[k]:
            labels.append(3 + p[k])
            v = len(labels) - 1
            edges += [(index[i], v), (v, index[j])]
    return canonical_string(labels, edges)


# --- functional probe --------------------------------------------------------------------------
# A linear combination is a dict {(atom key, pool depth): integer coefficient}; its key is the
# sorted text of its terms.  Atom "x" is the probe input; a conv atom's key is
# "c<k>#<rank>(<input key>)", so the key names the function exactly.

_ATOMS: dict[str, tuple[int, str, dict]] = {}  # conv atom key -> (op code, input key, input terms)
_X = {("x", 0): 1}


def _lc_key(lc: Mapping[tuple[str, int], int]) -> str:
    return "+".join(f"{c}*{a}^{d}" for (a, d), c in sorted(lc.items()))


def _unit_scale(lc: Mapping[tuple[str, int], int]) -> dict:
    """A conv input divided by the gcd of its (positive integer) coefficients: ReLU commutes with a
    positive scale and batch norm removes it, so ReLU-conv-BN(k z) = ReLU-conv-BN(z) for k > 0
    (up to BN's eps, which real training shares).  ``x + conv(x)`` and ``x + conv(2x)`` then merge."""
    g = math.gcd(*lc.values()) if lc else 1
    return dict(lc) if g <= 1 else {t: c // g for t, c in lc.items()}


def _run(p: tuple[int, ...], ranks: Mapping[int, Any]) -> tuple[dict, dict[int, str], dict[int, str]]:
    """Evaluate the pruned cell symbolically.  Returns (output terms, input key of each conv edge,
    atom key of each conv edge)."""
    vals: dict[int, dict] = {0: _X}
    in_keys: dict[int, str] = {}
    atoms: dict[int, str] = {}
    for k, (j, i) in enumerate(EDGES):
        code = p[k]
        if code == NONE:
            continue
        src = vals[i]
        acc = vals.setdefault(j, {})
        if code == SKIP:
            terms = src.items()
        elif code == POOL:
            terms = [((a, d + 1), c) for (a, d), c in src.items()]
        else:
            src = _unit_scale(src)
            in_key = _lc_key(src)
            akey = f"c{1 if code == CONV1 else 3}#{ranks[k]}({in_key})"
            if akey not in _ATOMS and ranks[k] != "?":
                _ATOMS[akey] = (code, in_key, src)
            in_keys[k], atoms[k] = in_key, akey
            terms = [((akey, 0), 1)]
        for t, c in terms:
            acc[t] = acc.get(t, 0) + c
    return vals.get(3, {}), in_keys, atoms


@functools.lru_cache(maxsize=None)
def symbolic_output(p: tuple[int, ...]) -> tuple[str, dict, dict[int, str]]:
    """Canonical normalised form of the pruned cell ``p``: (output key, output terms, conv atom key
    per edge).  Convs of one type reading the same input (up to the ranks still to be chosen) form
    a group; every assignment of ranks 0..g-1 inside each group is tried and the smallest output
    key is kept, so the result does not depend on node numbering."""
    convs = [k for k, c in enumerate(p) if c in (CONV1, CONV3)]
    _, coarse_in, _ = _run(p, {k: "?" for k in convs})
    groups: dict[tuple[int, str], list[int]] = {}
    for k in convs:
        groups.setdefault((p[k], coarse_in[k]), []).append(k)
    base = {k: 0 for k in convs}
    multi = [g for g in groups.values() if len(g) > 1]
    best: tuple[str, dict, dict] | None = None
    for perms in itertools.product(*[itertools.permutations(range(len(g))) for g in multi]):
        ranks = dict(base)
        for g, perm in zip(multi, perms):
            ranks.update(zip(g, perm))
        out, _, atoms = _run(p, ranks)
        key = _lc_key(out)
        if best is None or key < best[0]:
            best = (key, out, atoms)
    return best


_VALUES: dict[tuple[int, str], np.ndarray] = {}
_MAX_MEMO = 400_000


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _atom_value(seed: int, akey: str, size: int) -> np.ndarray:
    if akey == "x":
        return kernels.probe_input(seed, size)
    v = _VALUES.get((seed, size, akey))
    if v is None:
        code, in_key, in_lc = _ATOMS[akey]
        w = kernels.weights(seed, akey, 1 if code == CONV1 else 3)
        v = _VALUES[(seed, size, akey)] = _frozen(kernels.relu_conv_bn(_lc_value(seed, in_key, in_lc, size), w))
    return v


def _pooled(seed: int, akey: str, depth: int, size: int) -> np.ndarray:
    if depth == 0:
        return _atom_value(seed, akey, size)
    v = _VALUES.get((seed, size, f"P{depth}:{akey}"))
    if v is None:
        v = _VALUES[(seed, size, f"P{depth}:{akey}")] = _frozen(
            kernels.avg_pool3(_pooled(seed, akey, depth - 1, size)))
    return v


def _lc_value(seed: int, key: str, lc: Mapping[tuple[str, int], int], size: int) -> np.ndarray:
    """Numeric value of a linear combination, summed in key order (equal keys, equal bits)."""
    v = _VALUES.get((seed, size, "L:" + key))
    if v is None:
        if len(_VALUES) > _MAX_MEMO:
            _VALUES.clear()
        v = np.zeros(kernels.shape(size))
        for (a, d), c in sorted(lc.items()):
            v = v + c * _pooled(seed, a, d, size)
        v = _VALUES[(seed, size, "L:" + key)] = _frozen(v)
    return v


def probe_outputs(cell: NB201Cell, seed: int, size: int = kernels.H) -> list[np.ndarray]:
    """[cell output on the probe tensor, [live params at C=16, live conv1x1, live conv3x3]];
    ``size``: the probe's spatial size (default 8 x 8)."""
    p = pruned(cell.codes)
    key, out, _ = symbolic_output(p)
    n1, n3 = p.count(CONV1), p.count(CONV3)
    counts = np.array([n1 * conv_params(CONV1) + n3 * conv_params(CONV3), n1, n3], dtype=np.float64)
    return [_lc_value(seed, key, out, size), counts]


def reference_forward(cell: NB201Cell, seed: int, size: int = kernels.H) -> np.ndarray:
    """Plain node-by-node forward pass of the pruned cell with the probe's weights (no
    normalisation, no memo): what ``probe_outputs`` must equal up to rounding and up to the
    positive scale of conv inputs that ReLU + BN remove (tests)."""
    p = pruned(cell.codes)
    _, _, atoms = symbolic_output(p)
    vals = {0: np.array(kernels.probe_input(seed, size))}
    for k, (j, i) in enumerate(EDGES):
        code = p[k]
        if code == NONE:
            continue
        x = vals[i]
        if code == SKIP:
            y = x
        elif code == POOL:
            y = kernels.avg_pool3(x)
        else:
            y = kernels.relu_conv_bn(x, kernels.weights(seed, atoms[k], 1 if code == CONV1 else 3))
        vals[j] = vals[j] + y if j in vals else y
    return vals.get(3, np.zeros(kernels.shape(size)))


# --- the space ---------------------------------------------------------------------------------

class NB201Space(SearchSpace):
    """NAS-Bench-201 cells (see the module docstring for the text form and hashing)."""

    name = "nb201"
    version = "2"
    probe_spec = ("nb201-cell/v2:normalised linear ops (skip,avgpool,none,sum), conv inputs divided by the gcd "
                  "of their coefficients (ReLU+BN remove a positive scale), then "
                  f"{kernels.SPEC};relu-conv-bn weights keyed by (op,input key,canonical rank);"
                  f"avgpool3x3 exclude-pad;+[live params@C={PARAM_CHANNELS},n_conv1x1,n_conv3x3]")
    probe_dtype = "float64"
    quantize_bits = 24

    def sample(self, rng: np.random.Generator) -> NB201Cell:
        return NB201Cell.from_codes(rng.integers(0, len(OPS), size=6))

    def mutate(self, genome: NB201Cell, rng: np.random.Generator) -> NB201Cell:
        """Change the op of one edge (uniformly chosen) to a different op."""
        k = int(rng.integers(0, 6))
        others = [op for op in OPS if op != genome.ops[k]]
        ops = list(genome.ops)
        ops[k] = others[int(rng.integers(0, len(others)))]
        return NB201Cell(tuple(ops))

    def validate(self, genome: Any) -> None:
        if not isinstance(genome, NB201Cell):
            raise InvalidCandidate(f"not an NB201 cell: {type(genome).__name__}")

    def to_text(self, genome: NB201Cell) -> str:
        return to_text(genome)

    def from_text(self, text: str) -> NB201Cell:
        return from_text(text)

    def structural_key(self, genome: NB201Cell) -> str:
        return _structural(genome.codes)

    def probe(self, genome: NB201Cell, seed: int) -> list[np.ndarray]:
        return probe_outputs(genome, seed)

    def param_space(self) -> dict[str, Categorical]:
        return {name: Categorical(OPS) for name in EDGE_NAMES}

    def from_params(self, params: Mapping[str, Any]) -> NB201Cell:
        missing = [n for n in EDGE_NAMES if n not in params]
        if missing:
            raise InvalidCandidate(f"NB201 parameters lack edge(s) {', '.join(missing)}")
        return NB201Cell(tuple(str(params[n]) for n in EDGE_NAMES))

    def to_params(self, genome: NB201Cell) -> dict[str, str]:
        return dict(zip(EDGE_NAMES, genome.ops))

    def stats(self, genome: NB201Cell) -> dict[str, float]:
        p = pruned(genome.codes)
        return {"live_edges": float(sum(1 for c in p if c)), "live_conv1x1": float(p.count(CONV1)),
                "live_conv3x3": float(p.count(CONV3)), "live_params": float(live_param_count(genome))}

    def to_networkx(self, genome: NB201Cell, prune: bool = False):
        """DiGraph on nodes 0..3 (attribute ``role``: input/inner/output); one edge per non-``none``
        op (live ones only with ``prune=True``), attribute ``op``."""
        from automl._optional import require

        nx = require("networkx", "to_networkx")

        g = nx.DiGraph()
        for n in range(4):
            g.add_node(n, role="input" if n == 0 else "output" if n == 3 else "inner")
        codes = pruned(genome.codes) if prune else genome.codes
        for k, (j, i) in enumerate(EDGES):
            if codes[k] != NONE:
                g.add_edge(i, j, op=OPS[codes[k]])
        return g
