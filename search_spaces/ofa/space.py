"""The OFA MobileNetV3 sub-network space (Cai et al., "Once-for-All", ICLR 2020), as searched by
DyNAS-T and HELP.

A genome is ``(ks, e, d, r)``: 20 depthwise kernel sizes in {3,5,7}, 20 expansion ratios in
{3,4,6} (5 stages x 4 block slots), 5 stage depths in {2,3,4} and the input resolution.  Block
slot ``j`` of stage ``s`` (gene index ``4*s + j``) is *active* when ``j < d[s]``; the ``ks``/``e``
genes of inactive slots are carried by the genome (so a later mutation of ``d`` can re-activate
them, as in DyNAS-T) but do not change the network.

Hashing
  * structural key: the canonical form, i.e. the genome with every inactive slot's genes dropped
    (written as ``-``).  Two configs that differ only in inactive genes have the same key, any
    other difference gives a different key.
  * functional probe: with the supernet's weights fixed, the active configuration *is* the
    function (two distinct canonical configs have different depths, kernel crops or channel
    counts), so the probe returns the canonical form as numbers.  Running the 5 M-parameter
    supernet on a probe image would cost ~50 ms per candidate and partition identically.

Text form: DyNAS-T's dict string, ``{'ks': [...20], 'e': [...20], 'd': [...5], 'r': [224]}``
(``'wid': None`` accepted and ignored on input).  It is parsed as data (JSON after quote
normalisation), never evaluated.
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from automl.errors import ConfigError, InvalidCandidate, ParseError
from automl.space import Categorical, SearchSpace

N_STAGES, MAX_DEPTH = 5, 4
N_BLOCKS = N_STAGES * MAX_DEPTH
KS_CHOICES, E_CHOICES, D_CHOICES = (3, 5, 7), (3, 4, 6), (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class OFAConfig:
    """One sub-network: ``ks`` and ``e`` (20 each), ``d`` (5), resolution ``r``.  Immutable."""

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int = 224
    automl_space: ClassVar[str] = "ofa-mbv3"

    def __post_init__(self) -> None:
        for name, vals, n, choices in (("ks", self.ks, N_BLOCKS, KS_CHOICES), ("e", self.e, N_BLOCKS, E_CHOICES),
                                       ("d", self.d, N_STAGES, D_CHOICES)):
            if not isinstance(vals, tuple) or len(vals) != n:
                raise InvalidCandidate(f"OFA config needs {n} {name!r} values, got {vals!r}")
            bad = [v for v in vals if v not in choices]
            if bad:
                raise InvalidCandidate(f"{name!r} values must be in {choices}, got {bad[0]!r}")
        if not isinstance(self.r, int) or not 32 <= self.r <= 512:
            raise InvalidCandidate(f"resolution must be an int in 32..512, got {self.r!r}")

    def active(self, block: int) -> bool:
        return block % MAX_DEPTH < self.d[block // MAX_DEPTH]

    def active_blocks(self) -> list[tuple[int, int, int, int]]:
        """(stage, slot, ks, e) of every active block, in network order."""
        return [(s, j, self.ks[4 * s + j], self.e[4 * s + j]) for s in range(N_STAGES) for j in range(self.d[s])]

    def canonical(self) -> tuple:
        """The genome with inactive slots' genes replaced by 0: the key of the active network."""
        ks = tuple(k if self.active(i) else 0 for i, k in enumerate(self.ks))
        e = tuple(x if self.active(i) else 0 for i, x in enumerate(self.e))
        return ks, e, self.d, self.r

    def as_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": [self.r]}


def canonical_array(ks: np.ndarray, e: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised canonical form: (n, 20) ks and e with inactive genes set to 0."""
    slot = np.arange(N_BLOCKS) % MAX_DEPTH
    active = slot[None, :] < np.repeat(d, MAX_DEPTH, axis=1)
    return np.where(active, ks, 0), np.where(active, e, 0)


def _parse_dict(text: str) -> Mapping[str, Any]:
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty OFA config text; expected {'ks': [...], 'e': [...], 'd': [...], 'r': [224]}", 1, 1)
    if not re.fullmatch(r"[\s{}\[\]'\":,a-zA-Z0-9_]*", text):
        raise ParseError("OFA config text may hold only a dict of int lists, e.g. "
                         "{'ks': [3, ...], 'e': [...], 'd': [...], 'r': [224]}", 1, 1)
    try:
        obj = json.loads(text.replace("'", '"').replace("None", "null"))
    except json.JSONDecodeError as exc:
        raise ParseError(f"not an OFA config dict: {exc.msg}", exc.lineno, exc.colno) from None
    if not isinstance(obj, dict):
        raise ParseError("an OFA config is a dict with keys ks, e, d, r", 1, 1)
    return obj


class OFASpace(SearchSpace):
    """OFA MobileNetV3 sub-networks (ks, e, d per block/stage; resolution from ``resolutions``).

    ``resolutions``: the allowed input resolutions (default ``[224]``, DyNAS-T's setting; HELP
    uses 128..224 in steps of 4).  ``width``: the supernet width multiplier the configs refer to
    (1.0 or 1.2; it names the supernet, so it is part of the representation).
    ``mutation_rate``: per-gene mutation probability (default 1 / number of genes).
    """

    name = "ofa-mbv3"
    version = "1"
    probe_spec = "ofa-mbv3 canonical config (inactive slots dropped) as numbers; fixed supernet weights"

    def __init__(self, resolutions: Sequence[int] = (224,), width: float = 1.0, mutation_rate: float | None = None):
        res = tuple(int(r) for r in resolutions)
        if not res or any(not 32 <= r <= 512 for r in res):
            raise ConfigError(f"resolutions must be a non-empty list of ints in 32..512, got {resolutions!r}")
        if width not in (1.0, 1.2):
            raise ConfigError(f"width must be 1.0 or 1.2 (the published OFA MobileNetV3 supernets), got {width!r}")
        self.resolutions, self.width = res, float(width)
        # default: one gene in 1/n on average (n = 45 or 46 genes)
        self.mutation_rate = float(mutation_rate) if mutation_rate is not None else 1.0 / (2 * N_BLOCKS + N_STAGES)
        if not 0.0 < self.mutation_rate <= 1.0:
            raise ConfigError(f"mutation_rate must be in (0, 1], got {mutation_rate!r}")

    def options(self) -> dict[str, Any]:
        return {"resolutions": list(self.resolutions), "width": self.width, "mutation_rate": self.mutation_rate}

    # --- genomes as integer vectors (choice indices): what samplers and predictors work on ----------
    @property
    def gene_choices(self) -> list[tuple[int, ...]]:
        return [KS_CHOICES] * N_BLOCKS + [E_CHOICES] * N_BLOCKS + [D_CHOICES] * N_STAGES + [self.resolutions]

    def encode(self, g: OFAConfig) -> np.ndarray:
        vals = list(g.ks) + list(g.e) + list(g.d) + [g.r]
        return np.array([ch.index(v) for ch, v in zip(self.gene_choices, vals)], dtype=np.int64)

    def decode(self, x: Sequence[int]) -> OFAConfig:
        vals = [ch[int(i)] for ch, i in zip(self.gene_choices, x)]
        return OFAConfig(tuple(vals[:20]), tuple(vals[20:40]), tuple(vals[40:45]), int(vals[45]))

    def features(self, X: np.ndarray) -> np.ndarray:
        """Predictor features of index matrix ``X`` (n, 46): per block slot, one-hot ks (3), e (3)
        and (ks, e) pair (9), zero when the slot is inactive; one-hot d per stage; per stage the
        active block count, sum of e / 4 and sum of e * k² / 100; one-hot r (when several).  Inactive genes
        never reach a predictor."""
        X = np.asarray(X, dtype=np.int64)
        n = X.shape[0]
        depth = np.asarray(D_CHOICES)[X[:, 40:45]]
        active = (np.arange(N_BLOCKS) % MAX_DEPTH)[None, :] < np.repeat(depth, MAX_DEPTH, axis=1)
        ks, e = X[:, :20], X[:, 20:40]
        eye3, eye9 = np.eye(3), np.eye(9)
        blk = np.concatenate([eye3[ks], eye3[e], eye9[3 * ks + e]], axis=2) * active[:, :, None]
        # per-stage aggregates that cost is nearly linear in (a block's MACs ~ e * (a + b k²)): with
        # them, ridge learns MACs/latency from a few dozen points instead of needing n > 315
        kv, ev = np.asarray(KS_CHOICES)[ks] * active, np.asarray(E_CHOICES)[e] * active
        agg = np.stack([active.reshape(n, 5, 4).sum(2), (ev / 4.0).reshape(n, 5, 4).sum(2),
                        (ev * kv ** 2 / 100.0).reshape(n, 5, 4).sum(2)], axis=2).reshape(n, -1)
        parts = [blk.reshape(n, -1), eye3[X[:, 40:45]].reshape(n, -1), agg]
        if len(self.resolutions) > 1:
            parts.append(np.eye(len(self.resolutions))[X[:, 45]])
        return np.concatenate(parts, axis=1)

    def canonical_codes(self, X: np.ndarray) -> np.ndarray:
        """Index matrix with inactive slots' genes set to -1 (rows equal iff same active network)."""
        X = np.array(X, dtype=np.int64, copy=True)
        depth = np.asarray(D_CHOICES)[X[:, 40:45]]
        active = (np.arange(N_BLOCKS) % MAX_DEPTH)[None, :] < np.repeat(depth, MAX_DEPTH, axis=1)
        X[:, :20][~active] = -1
        X[:, 20:40][~active] = -1
        return X

    # --- making and changing genomes -----------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> OFAConfig:
        return self.decode([int(rng.integers(len(ch))) for ch in self.gene_choices])

    def mutate(self, genome: OFAConfig, rng: np.random.Generator) -> OFAConfig:
        """Resample each gene with probability ``mutation_rate``; at least one *active* gene changes
        (so the child is a different network)."""
        x = self.encode(genome)
        for _ in range(100):
            y = x.copy()
            for i, ch in enumerate(self.gene_choices):
                if len(ch) > 1 and rng.random() < self.mutation_rate:
                    y[i] = (y[i] + int(rng.integers(1, len(ch)))) % len(ch)
            child = self.decode(y)
            if child.canonical() != genome.canonical():
                return child
        live = [i for i, ch in enumerate(self.gene_choices) if len(ch) > 1 and (i >= 40 or genome.active(i % 20))]
        i = live[int(rng.integers(len(live)))]
        y = x.copy()
        y[i] = (y[i] + int(rng.integers(1, len(self.gene_choices[i])))) % len(self.gene_choices[i])
        return self.decode(y)

    def crossover(self, a: OFAConfig, b: OFAConfig, rng: np.random.Generator) -> OFAConfig:
        """Uniform crossover, gene by gene (a block's ks and e travel together)."""
        xa, xb = self.encode(a), self.encode(b)
        pick = rng.random(N_BLOCKS) < 0.5
        mask = np.concatenate([pick, pick, rng.random(N_STAGES + 1) < 0.5])
        return self.decode(np.where(mask, xb, xa))

    def validate(self, genome: Any) -> None:
        if not isinstance(genome, OFAConfig):
            raise InvalidCandidate(f"expected an OFAConfig, got {type(genome).__name__}")
        if genome.r not in self.resolutions:
            raise InvalidCandidate(f"resolution {genome.r} is not one of this space's {list(self.resolutions)}")

    def warm_start(self) -> list[OFAConfig]:
        """The smallest and the largest sub-network: the two ends of every accuracy/cost front."""
        lo = OFAConfig((3,) * 20, (3,) * 20, (2,) * 5, min(self.resolutions))
        hi = OFAConfig((7,) * 20, (6,) * 20, (4,) * 5, max(self.resolutions))
        return [lo, hi]

    # --- text -------------------------------------------------------------------------------------
    def to_text(self, genome: OFAConfig) -> str:
        def ints(v):
            return "[" + ", ".join(str(int(x)) for x in v) + "]"

        return f"{{'ks': {ints(genome.ks)}, 'e': {ints(genome.e)}, 'd': {ints(genome.d)}, 'r': [{genome.r}]}}"

    def from_text(self, text: str) -> OFAConfig:
        obj = _parse_dict(text)
        missing = [k for k in ("ks", "e", "d") if k not in obj]
        if missing:
            raise ParseError(f"OFA config misses key(s) {', '.join(missing)}", 1, 1)
        extra = set(obj) - {"ks", "e", "d", "r", "wid"}
        if extra:
            raise ParseError(f"unknown OFA config key(s) {', '.join(sorted(extra))}", 1, 1)
        if obj.get("wid") is not None:
            raise ParseError("elastic width ('wid') is not part of this space; use width= on the space", 1, 1)
        r = obj.get("r", [self.resolutions[0]])
        r = r[0] if isinstance(r, list) and len(r) == 1 else r
        try:
            vals = {k: tuple(int(v) for v in obj[k]) for k in ("ks", "e", "d")}
            if isinstance(r, bool) or not isinstance(r, int):
                raise TypeError
        except (TypeError, ValueError):
            raise ParseError("ks, e, d must be lists of ints and r an int or [int]", 1, 1) from None
        if any(isinstance(v, bool) for k in ("ks", "e", "d") for v in obj[k]):
            raise ParseError("ks, e, d must hold ints", 1, 1)
        try:
            return OFAConfig(vals["ks"], vals["e"], vals["d"], int(r))
        except InvalidCandidate as exc:
            raise ParseError(str(exc), 1, 1) from None

    # --- hashing ----------------------------------------------------------------------------------
    def structural_key(self, genome: OFAConfig) -> str:
        ks, e, d, r = genome.canonical()
        blocks = " ".join(f"{k}/{x}" if k else "-" for k, x in zip(ks, e))
        return f"ofa-mbv3 w{self.width} r{r} d{''.join(map(str, d))} {blocks}"

    def probe(self, genome: OFAConfig, seed: int) -> np.ndarray:
        ks, e, d, r = genome.canonical()
        return np.array(list(ks) + list(e) + list(d) + [r], dtype=np.float64)

    # --- parameters (Optuna samplers) ----------------------------------------------------------
    def param_space(self) -> Mapping[str, Categorical]:
        names = [f"ks{i}" for i in range(N_BLOCKS)] + [f"e{i}" for i in range(N_BLOCKS)] + \
                [f"d{s}" for s in range(N_STAGES)] + ["r"]
        return {n: Categorical(tuple(ch)) for n, ch in zip(names, self.gene_choices)}

    def from_params(self, params: Mapping[str, Any]) -> OFAConfig:
        return OFAConfig(tuple(int(params[f"ks{i}"]) for i in range(N_BLOCKS)),
                         tuple(int(params[f"e{i}"]) for i in range(N_BLOCKS)),
                         tuple(int(params[f"d{s}"]) for s in range(N_STAGES)), int(params["r"]))

    def to_params(self, genome: OFAConfig) -> dict[str, int]:
        out = {f"ks{i}": k for i, k in enumerate(genome.ks)}
        out.update({f"e{i}": x for i, x in enumerate(genome.e)})
        out.update({f"d{s}": x for s, x in enumerate(genome.d)})
        out["r"] = genome.r
        return out

    def stats(self, genome: OFAConfig) -> Mapping[str, float]:
        return {"active_blocks": float(sum(genome.d))}
