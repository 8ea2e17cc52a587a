"""Ensemble spaces (NEAS): K networks that share their first ``split`` layers and branch after.

A genome is ``(split, shared choices, K branch choices)`` over a *layer-wise base space*: a
network of ``L`` searchable layers, each layer one choice of the base.  Member ``m`` of the
ensemble is the network ``shared + branches[m]``; the ensemble's output is the mean of its
members' logits.  This module is numpy-only (no torch).

Layer-wise base spaces
  A base (:class:`LayerwiseBase`; ``BASES`` maps a name to the class) is a network of ``n_layers``
  searchable layers, each one *choice* made of ``decisions_per_layer`` decisions (one op index
  each, ``0..n_ops-1``: the unit search-space shrinking works on).  It says which ops each
  decision may take (``default_allowed``), how a layer choice is drawn, written, read and keyed
  (``sample_layer``, ``codes``/``from_codes``, ``to_text``/``from_text``, ``structural_key``),
  the functional digest of a choice (``digest``) and the multiply-accumulates of the stem (run
  once, in the trunk), of each layer choice and of one head (one per member branch).  Two bases
  ship: :class:`NB201Stages` (NB201 with one cell genotype per stage; 3 layers of 6 decisions)
  and :class:`OFALayers` (OFA MobileNetV3's 20 block slots, one decision each: an MBConv kernel x
  expansion or skip, as in NEAS's released networks).  The torch half of a base (shared supernet
  trunk and K branches, the stand-alone network) is its supernet adapter in
  :mod:`evaluators.ensemble.network`.

Functional hash (the ensemble is one function)
  A member is identified by the tuple of its layers' functional digests (equal tuples compute the
  same function: a network is the composition of its layers).  The probe models each distinct
  member's logits as a seeded Gaussian vector keyed by that tuple and returns
  ``[mean over members (summed in sorted key order), [MACs of the deduplicated ensemble]]``.  So
  members are unordered (A+B == B+A), {A, A} equals the single network A (the mean of equal logits
  is those logits, and a duplicated branch is computed once), and two ensembles whose members are
  pairwise equivalent merge.  MACs are part of the probe because the FLOPs constraint is part of a
  result: ensembles with the same members but another split point compute the same mean but cost
  differently, so they do not merge.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Mapping, Sequence

import numpy as np
import xxhash

from automl.errors import ConfigError, InvalidCandidate, ParseError
from automl.space import SearchSpace

from .cells import nb201 as _nb201

PROBE_DIM = 16


# --- the layer-wise base interface -------------------------------------------------------------------

class LayerwiseBase:
    """What the ensemble space needs from a layer-wise base space (subclass it, put it in ``BASES``).

    Class attributes: ``name``; ``n_layers`` (searchable layers = possible split points 0..L);
    ``decisions_per_layer`` (op indices per layer choice); ``n_ops`` (op indices 0..n_ops-1).
    A *choice* is any immutable, comparable value the base picks for one layer.  Methods:

    * ``config()``: the JSON-able keyword options that rebuild the base;
    * ``default_allowed(layer)``: per decision, the op indices the layer may take (default all);
    * ``sample_layer(layer, rng, allowed)``: a choice whose decision ``d`` is drawn from ``allowed[d]``;
    * ``codes(choice)`` / ``from_codes(layer, codes)``: a choice as op indices and back;
    * ``to_text(choice)`` / ``from_text(text)``: one whitespace-free token per choice;
    * ``validate_layer(layer, choice)``: raise ``InvalidCandidate`` when the choice cannot sit at ``layer``;
    * ``structural_key(choice)``: equal keys = the same layer, as written;
    * ``digest(choice)``: the layer's *functional* identity (equal digests compute the same
      function at the same position, with the supernet's weights);
    * ``fixed_macs()`` (the stem: counted once, in the trunk), ``layer_macs(layer, choice)``,
      ``head_macs()`` (counted once per distinct member branch).
    """

    name = ""
    n_layers = 0
    decisions_per_layer = 1
    n_ops = 1

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def default_allowed(self, layer: int) -> list[list[int]]:
        return [list(range(self.n_ops)) for _ in range(self.decisions_per_layer)]

    def validate_layer(self, layer: int, choice: Any) -> None:
        return None


# --- NB201 with one genotype per stage -----------------------------------------------------------------

class NB201Stages(LayerwiseBase):
    """NB201's skeleton (stem, 3 stages of ``cells`` cells at C, 2C, 4C channels, ResNet reduction
    blocks, head) with **one cell genotype per stage**: layer ``l`` = the reduction block into
    stage ``l`` (none for stage 0) + the stage's ``cells`` cells.  Decisions: the 6 edges of the
    stage's cell, 5 ops each (``search_spaces.cells.nb201.OPS`` order).  MACs: convolutions and the
    linear head on 32x32 inputs, live edges only (a dead edge computes nothing).  A layer's
    functional digest is its cell's, from the registered ``nb201`` space (so a dead edge's op does
    not matter)."""

    name = "nb201-stages"
    space = "nb201"  # the registered space whose functional digest identifies one layer choice
    n_layers = 3
    decisions_per_layer = 6
    n_ops = len(_nb201.OPS)

    def __init__(self, channels: int = 8, cells: int = 1, num_classes: int = 10, resolution: int = 32):
        if channels < 1 or cells < 1 or num_classes < 2 or resolution < 4:
            raise ConfigError(f"bad NB201 stage sizes: channels={channels}, cells={cells}, classes={num_classes}")
        self.channels, self.cells = int(channels), int(cells)
        self.num_classes, self.resolution = int(num_classes), int(resolution)

    def config(self) -> dict[str, Any]:
        return {"channels": self.channels, "cells": self.cells, "num_classes": self.num_classes,
                "resolution": self.resolution}

    # choices
    def sample_layer(self, layer: int, rng: np.random.Generator, allowed: Sequence[Sequence[int]]):
        return _nb201.NB201Cell.from_codes([int(rng.choice(a)) for a in allowed])

    def codes(self, choice) -> tuple[int, ...]:
        return tuple(choice.codes)

    def from_codes(self, layer: int, codes: Sequence[int]):
        return _nb201.NB201Cell.from_codes(codes)

    def to_text(self, choice) -> str:
        return _nb201.to_text(choice)

    def from_text(self, text: str):
        return _nb201.from_text(text)

    def structural_key(self, choice) -> str:
        return _nb201._structural(choice.codes)

    def digest(self, choice) -> str:
        return _layer_digest(self.space, self.to_text(choice))

    # cost
    def _hw_c(self, layer: int) -> tuple[int, int]:
        return (self.resolution >> layer) ** 2, self.channels << layer

    def fixed_macs(self) -> int:
        """The stem (always in the shared trunk)."""
        return 9 * 3 * self.channels * self.resolution ** 2

    def head_macs(self) -> int:
        return (self.channels << (self.n_layers - 1)) * self.num_classes

    def layer_macs(self, layer: int, choice) -> int:
        hw, c = self._hw_c(layer)
        macs = 0
        if layer:
            cp = c // 2
            macs += 9 * cp * c * hw + 9 * c * c * hw + cp * c * hw  # reduction block: 3x3/2, 3x3, 1x1 shortcut
        p = _nb201.pruned(choice.codes)
        macs += self.cells * (p.count(_nb201.CONV1) + 9 * p.count(_nb201.CONV3)) * c * c * hw
        return macs


# --- OFA MobileNetV3, one layer per block slot ------------------------------------------------------------

class OFALayers(LayerwiseBase):
    """OFA MobileNetV3 (``search_spaces.ofa``: first conv, first block, 5 stages x 4 block slots,
    head) as NEAS's layer-wise space: **layer ``l`` = block slot ``l``** (20 layers), one decision
    per layer whose ops are ``skip`` (op 0) and every MBConv ``k{kernel}e{expansion}`` of
    ``kernels`` x ``expansions`` (default NEAS's {3,5,7} x {4,6}: 7 ops; OFA's supernet also
    runs expansion 3).  The first slot of a stage changes width and stride, so it is never
    ``skip``; any later slot may be (a superset of OFA's elastic depth, which only drops a
    stage's trailing slots).  Choices are their text tokens (``"k5e6"``, ``"skip"``).

    The digest of a choice is its token: with the supernet's weights fixed, distinct (kernel,
    expansion) pairs at one slot are distinct functions (other kernel crops or channel counts,
    see ``OFASpace``) and skip is the identity.  MACs come from the OFA counter
    (``search_spaces.ofa.counter``, the one the hardware-aware evaluators use) at ``resolution``
    and ``num_classes``; stem = first conv + first block, head = final expand + feature mix +
    classifier."""

    name = "ofa-mbv3"
    n_layers = 20
    decisions_per_layer = 1
    SKIP = "skip"

    def __init__(self, width: float = 1.0, resolution: int = 32, num_classes: int = 10,
                 kernels: Sequence[int] = (3, 5, 7), expansions: Sequence[int] = (4, 6)):
        from .ofa import space as _ofa

        if float(width) not in (1.0, 1.2):
            raise ConfigError(f"width must be 1.0 or 1.2 (the OFA MobileNetV3 supernets), got {width!r}")
        ks, es = sorted({int(k) for k in kernels}), sorted({int(e) for e in expansions})
        if not ks or not set(ks) <= set(_ofa.KS_CHOICES) or not es or not set(es) <= set(_ofa.E_CHOICES):
            raise ConfigError(f"kernels must be a subset of {_ofa.KS_CHOICES} and expansions of {_ofa.E_CHOICES}, "
                              f"got {list(kernels)}, {list(expansions)}")
        if not 32 <= int(resolution) <= 512 or int(num_classes) < 2:
            raise ConfigError(f"resolution must be in 32..512 and num_classes >= 2, got {resolution}, {num_classes}")
        self.width, self.resolution, self.num_classes = float(width), int(resolution), int(num_classes)
        self.kernels, self.expansions = tuple(ks), tuple(es)
        self.ops = (self.SKIP,) + tuple(f"k{k}e{e}" for k in ks for e in es)
        self.n_ops = len(self.ops)
        self._index = {t: i for i, t in enumerate(self.ops)}
        self._ks_choices, self._e_choices = _ofa.KS_CHOICES, _ofa.E_CHOICES
        self._stage_first = {s * _ofa.MAX_DEPTH for s in range(_ofa.N_STAGES)}

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "resolution": self.resolution, "num_classes": self.num_classes,
                "kernels": list(self.kernels), "expansions": list(self.expansions)}

    def kernel_expansion(self, choice: str) -> tuple[int, int] | None:
        """(kernel, expansion) of a choice, None for skip."""
        if choice == self.SKIP:
            return None
        k, e = choice[1:].split("e")
        return int(k), int(e)

    # choices
    def default_allowed(self, layer: int) -> list[list[int]]:
        return [list(range(1 if layer in self._stage_first else 0, self.n_ops))]

    def sample_layer(self, layer: int, rng: np.random.Generator, allowed: Sequence[Sequence[int]]) -> str:
        return self.ops[int(rng.choice(allowed[0]))]

    def codes(self, choice: str) -> tuple[int, ...]:
        return (self._index[choice],)

    def from_codes(self, layer: int, codes: Sequence[int]) -> str:
        return self.ops[int(codes[0])]

    def to_text(self, choice: str) -> str:
        return choice

    def from_text(self, text: str) -> str:
        if text not in self._index:
            raise ParseError(f"not an OFA MobileNetV3 layer: {text[:20]!r}; expected one of {', '.join(self.ops)}")
        return text

    def validate_layer(self, layer: int, choice: Any) -> None:
        if choice not in self._index:
            raise InvalidCandidate(f"not an OFA MobileNetV3 layer of this space: {choice!r}")
        if choice == self.SKIP and layer in self._stage_first:
            raise InvalidCandidate(f"layer {layer} is a stage's first block (it changes width/stride): it cannot be skip")

    def structural_key(self, choice: str) -> str:
        return choice

    def digest(self, choice: str) -> str:
        return choice

    # cost
    def _parts(self):
        return _ofa_counter(self.width).parts(self.resolution, self.num_classes)

    def fixed_macs(self) -> int:
        return int(self._parts()[0][0])

    def head_macs(self) -> int:
        return int(self._parts()[3][0])

    def layer_macs(self, layer: int, choice: str) -> int:
        ke = self.kernel_expansion(choice)
        if ke is None:
            return 0
        return int(self._parts()[1][layer, self._ks_choices.index(ke[0]), self._e_choices.index(ke[1])])


@functools.lru_cache(maxsize=4)
def _ofa_counter(width: float):
    from .ofa.counter import Counter

    return Counter(width)


@functools.lru_cache(maxsize=65536)
def _layer_digest(space_name: str, text: str) -> str:
    from automl.registry import get_space

    return _hasher(space_name).functional(get_space(space_name).from_text(text))


@functools.lru_cache(maxsize=8)
def _hasher(space_name: str):
    from automl.hashing import Hasher
    from automl.registry import get_space

    return Hasher(get_space(space_name))


BASES: dict[str, type[LayerwiseBase]] = {"nb201-stages": NB201Stages, "ofa-mbv3": OFALayers}


# --- the ensemble genome ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Ensemble:
    """``split`` shared layers, then ``len(branches)`` members' own layers ``split..L-1``."""

    split: int
    shared: tuple
    branches: tuple
    #: the registered ensemble space the genome belongs to (set by the space that makes it)
    automl_space: str = dataclasses.field(default="nb201-ensemble", compare=False, repr=False)

    @property
    def k(self) -> int:
        return len(self.branches)

    def members(self) -> list[tuple]:
        return [tuple(self.shared) + tuple(b) for b in self.branches]


_TEXT = re.compile(r"^split=(\d+)$")


class EnsembleSpace(SearchSpace):
    """Ensembles of ``k`` members over a layer-wise base (see the module docstring).

    Registered twice, by default base: ``nb201-ensemble`` (``nb201-stages``) and ``ofa-ensemble``
    (``ofa-mbv3``); either takes any base of ``BASES``.

    Options: ``base`` (name in ``BASES``) and ``base_options``; ``k`` members; ``splits`` (allowed
    split points, default all of 0..L); ``allowed``: per layer, per decision, the op indices still in the space
    (the output of search-space shrinking; default all); ``distinct``: with k > 1, an ensemble whose
    members are all equal (i.e. one network) is not in the space (sampling and mutation retry)."""

    name = "nb201-ensemble"
    version = "1"
    probe_spec = (f"ensemble:mean over members of N(0,1)^{PROBE_DIM} keyed by xxh3(seed, member's per-layer "
                  "functional digests of the base space), summed in sorted key order;+[MACs, shared trunk once, "
                  "equal branches once]")

    default_base = "nb201-stages"

    def __init__(self, base: str | None = None, base_options: Mapping[str, Any] | None = None, k: int = 2,
                 splits: Sequence[int] | None = None, allowed: Sequence[Sequence[Sequence[int]]] | None = None,
                 distinct: bool = False):
        base = self.default_base if base is None else base
        if base not in BASES:
            raise ConfigError(f"unknown layer-wise base {base!r}; choose one of {', '.join(BASES)}")
        self.base_name, self.base_options = base, dict(base_options or {})
        self.base = BASES[base](**self.base_options)
        L, D = self.base.n_layers, self.base.decisions_per_layer
        if int(k) < 1:
            raise ConfigError(f"an ensemble needs k >= 1 members, got {k}")
        self.k = int(k)
        self.distinct = bool(distinct) and self.k > 1
        self.splits = sorted({int(s) for s in (range(L + 1) if splits is None else splits)})
        if not self.splits or not all(0 <= s <= L for s in self.splits):
            raise ConfigError(f"split points must be in 0..{L}, got {list(splits or [])}")
        if allowed is None:
            allowed = [self.base.default_allowed(li) for li in range(L)]
        self.allowed = [[sorted({int(o) for o in dec}) for dec in layer] for layer in allowed]
        if len(self.allowed) != L or any(len(layer) != D for layer in self.allowed):
            raise ConfigError(f"allowed must be {L} layers x {D} decisions of op lists")
        for li, layer in enumerate(self.allowed):
            for dec, ok in zip(layer, self.base.default_allowed(li)):
                if not dec or not set(dec) <= set(ok):
                    raise ConfigError(f"every decision of layer {li} needs >= 1 op of {ok}, got {dec}")

    def options(self) -> dict[str, Any]:
        return {"base": self.base_name, "base_options": self.base_options, "k": self.k, "splits": self.splits,
                "allowed": self.allowed, "distinct": self.distinct}

    # --- genomes
    def _layer(self, layer: int, rng: np.random.Generator):
        return self.base.sample_layer(layer, rng, self.allowed[layer])

    def _single(self, genome: Ensemble) -> bool:
        return all(self._same(b, genome.branches[0]) for b in genome.branches)

    def sample(self, rng: np.random.Generator) -> Ensemble:
        for _ in range(100):
            g = self._sample(rng)
            if not (self.distinct and self._single(g)):
                return g
        return g

    def mutate(self, genome: Ensemble, rng: np.random.Generator) -> Ensemble:
        """Move the split point to a neighbouring allowed one (layers move between trunk and
        branches: a layer leaving the trunk is copied into every member, a layer joining it is
        taken from a random member), or change one decision of one shared or member layer."""
        for _ in range(100):
            g = self._mutate(genome, rng)
            if not (self.distinct and self._single(g)):
                return g
        return g

    def _sample(self, rng: np.random.Generator) -> Ensemble:
        s = int(self.splits[int(rng.integers(0, len(self.splits)))])
        L = self.base.n_layers
        shared = tuple(self._layer(li, rng) for li in range(s))
        branches = tuple(tuple(self._layer(li, rng) for li in range(s, L)) for _ in range(self.k))
        return self._new(s, shared, branches)

    def _new(self, split: int, shared: tuple, branches: tuple) -> Ensemble:
        return Ensemble(int(split), tuple(shared), tuple(tuple(b) for b in branches), self.name)

    def _mutate_choice(self, layer: int, choice, rng: np.random.Generator):
        codes = list(self.base.codes(choice))
        movable = [d for d, a in enumerate(self.allowed[layer]) if len(a) > 1]
        if not movable:
            return choice
        d = movable[int(rng.integers(0, len(movable)))]
        others = [o for o in self.allowed[layer][d] if o != codes[d]] or self.allowed[layer][d]
        codes[d] = int(others[int(rng.integers(0, len(others)))])
        return self.base.from_codes(layer, codes)

    def _mutate(self, genome: Ensemble, rng: np.random.Generator) -> Ensemble:
        L = self.base.n_layers
        if len(self.splits) > 1 and rng.random() < 0.2:
            i = self.splits.index(genome.split) if genome.split in self.splits else 0
            j = min(max(i + (1 if rng.random() < 0.5 else -1), 0), len(self.splits) - 1)
            s = self.splits[j]
            members = [list(m) for m in genome.members()]
            donor = members[int(rng.integers(0, len(members)))]
            shared = tuple(donor[:s]) if s > genome.split else tuple(genome.shared[:s])
            return self._new(s, shared, tuple(tuple(m[s:]) for m in members))
        slots = ([("s", li) for li in range(genome.split)]
                 + [(m, li) for m in range(genome.k) for li in range(genome.split, L)])
        where, li = slots[int(rng.integers(0, len(slots)))]
        if where == "s":
            shared = list(genome.shared)
            shared[li] = self._mutate_choice(li, shared[li], rng)
            return self._new(genome.split, tuple(shared), genome.branches)
        branches = [list(b) for b in genome.branches]
        branches[where][li - genome.split] = self._mutate_choice(li, branches[where][li - genome.split], rng)
        return self._new(genome.split, genome.shared, tuple(tuple(b) for b in branches))

    def validate(self, genome: Any) -> None:
        if not isinstance(genome, Ensemble):
            raise InvalidCandidate(f"not an ensemble: {type(genome).__name__}")
        L = self.base.n_layers
        if not 0 <= genome.split <= L or len(genome.shared) != genome.split or genome.k < 1:
            raise InvalidCandidate(f"bad ensemble: split {genome.split}, {len(genome.shared)} shared layers")
        if any(len(b) != L - genome.split for b in genome.branches):
            raise InvalidCandidate(f"every member needs {L - genome.split} layers after split {genome.split}")
        for m in genome.members():
            for li, choice in enumerate(m):
                self.base.validate_layer(li, choice)
        if self.distinct and self._single(genome):
            raise InvalidCandidate("all members are equal: this is one network, not an ensemble (distinct=True)")

    # --- text: "split=S ; shared: L0 L1 ; member: L2 ; member: L2'"
    def to_text(self, genome: Ensemble) -> str:
        parts = [f"split={genome.split}", "shared: " + " ".join(self.base.to_text(c) for c in genome.shared)]
        parts += ["member: " + " ".join(self.base.to_text(c) for c in b) for b in genome.branches]
        return " ; ".join(p.rstrip() for p in parts)

    def from_text(self, text: str) -> Ensemble:
        if not isinstance(text, str):
            raise ParseError(f"ensemble text must be a string, got {type(text).__name__}")
        parts = [p.strip() for p in text.split(";")]
        m = _TEXT.match(parts[0]) if parts else None
        if m is None or len(parts) < 3 or not parts[1].startswith("shared:"):
            raise ParseError(f"not an ensemble text ('split=S ; shared: ... ; member: ...'): {text[:80]!r}")

        def layers(body: str) -> tuple:
            return tuple(self.base.from_text(t) for t in body.split())

        shared = layers(parts[1][len("shared:"):])
        branches = []
        for p in parts[2:]:
            if not p.startswith("member:"):
                raise ParseError(f"expected 'member: ...', got {p[:60]!r}")
            branches.append(layers(p[len("member:"):]))
        g = self._new(int(m.group(1)), shared, tuple(branches))
        try:
            self.validate(g)
        except InvalidCandidate as exc:
            raise ParseError(str(exc)) from exc
        return g

    # --- hashing
    def canonical(self, genome: Ensemble) -> Ensemble:
        """Members sorted; an ensemble whose members are all equal is that one network (split L, k 1)."""
        L = self.base.n_layers
        keyed = sorted(genome.branches, key=lambda b: tuple(self.base.structural_key(c) for c in b))
        if all(self._same(b, keyed[0]) for b in keyed):
            return self._new(L, tuple(genome.members()[0]), ((),))
        return self._new(genome.split, genome.shared, tuple(keyed))

    def _same(self, a, b) -> bool:
        return [self.base.structural_key(c) for c in a] == [self.base.structural_key(c) for c in b]

    def structural_key(self, genome: Ensemble) -> str:
        c = self.canonical(genome)
        sk = self.base.structural_key
        return (f"split={c.split}|shared=" + ",".join(sk(x) for x in c.shared) + "|members="
                + "/".join(",".join(sk(x) for x in b) for b in c.branches))

    def member_keys(self, genome: Ensemble) -> list[tuple[str, ...]]:
        return [tuple(self.base.digest(c) for c in m) for m in genome.members()]

    def probe(self, genome: Ensemble, seed: int) -> list[np.ndarray]:
        keys = sorted(self.member_keys(genome))
        acc = np.zeros(PROBE_DIM)
        for key in keys:
            acc = acc + _member_vector(seed, key)
        return [acc / len(keys), np.array([float(self.macs(genome))])]

    # --- cost
    def macs(self, genome: Ensemble) -> int:
        """Multiply-accumulates of one forward pass: the stem and shared layers once, each distinct
        member branch once (an equal branch computes the same thing), the head per branch."""
        L = self.base.n_layers
        total = self.base.fixed_macs() + sum(self.base.layer_macs(li, c) for li, c in enumerate(genome.shared))
        seen = set()
        for b in genome.branches:
            key = tuple(self.base.structural_key(c) for c in b)
            if key in seen:
                continue
            seen.add(key)
            total += sum(self.base.layer_macs(genome.split + i, c) for i, c in enumerate(b)) + self.base.head_macs()
        assert genome.split + len(genome.branches[0]) == L
        return total

    def stats(self, genome: Ensemble) -> dict[str, float]:
        return {"split": float(genome.split), "macs": float(self.macs(genome)),
                "distinct_members": float(len(set(map(tuple, self.member_keys(genome)))))}


@functools.lru_cache(maxsize=65536)
def _member_vector(seed: int, key: tuple[str, ...]) -> np.ndarray:
    s = xxhash.xxh3_64_intdigest(("%d|" % seed + "|".join(key)).encode())
    v = np.random.default_rng(s).standard_normal(PROBE_DIM)
    v.flags.writeable = False
    return v


class OFAEnsembleSpace(EnsembleSpace):
    """NEAS's own setting: ensembles over OFA MobileNetV3's 20 block slots (:class:`OFALayers`;
    default ``base_options``: width 1.0, 32x32 inputs, 10 classes, kernels {3,5,7} x expansions
    {4,6} + skip)."""

    name = "ofa-ensemble"
    default_base = "ofa-mbv3"
