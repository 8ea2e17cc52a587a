"""Path and data samplers for one-shot supernet training (numpy only; no torch, no space).

A *path* is a tuple of ``n_edges`` op indices in ``0..n_ops-1`` (the space adapter maps it to and
from a genome).  Every sampler is a small state machine with one interface, so any path sampler
combines with any data sampler:

path samplers
  ``sample(rng) -> list[path]``      the path(s) one training step runs (FairNAS: several)
  ``observe(paths, op_grad_norms)``  after the step; ``op_grad_norms`` is an (n_edges, n_ops)
                                     array of conv-weight gradient norms summed over the cells
                                     that share the genotype (0 where an op was not used or has
                                     no parameters), given only when ``needs_grad_norms``
  ``end_epoch(epoch, epochs)``       update the distribution for the next epoch

data samplers
  ``epoch_order(epoch, rng) -> int array``  which examples the epoch visits, in order
  ``observe(indices, scores)``              per-example scores ``||softmax(logits) - onehot(y)||_2``
                                            (no extra pass), only when ``needs_example_scores``
  ``end_epoch(epoch, epochs)``

Both have ``state_dict()`` / ``load_state_dict()`` (numpy arrays and floats) so a checkpoint
restores them exactly.  Randomness comes only from the ``rng`` passed in (the trainer derives
it from (seed, epoch, step)), never from a sampler's own or global state.

PA&DA (Lu et al., CVPR 2023) as in the authors' NB201 code: path importance of an op is the
gradient norm of its conv weights summed over the cells and the edges that used it this step,
divided by the number of edges that used it, folded into a running mean with factor 0.5 and reset
each epoch; data importance of an example is its score (averaged with factor 0.5 when seen twice
in an epoch).  At the end of epoch ``e`` of ``E``, with ``tau = e / E``, the distribution becomes
``tau * importance / sum(importance) + (1 - tau) * uniform``.  The loss is not re-weighted.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from automl.errors import ConfigError

Path = tuple[int, ...]


def _mix(importance: np.ndarray, tau: float) -> np.ndarray:
    """``tau * normalize(importance) + (1 - tau) * uniform`` (uniform when nothing was observed)."""
    n = importance.size
    uniform = np.full(n, 1.0 / n)
    total = float(importance.sum())
    if total <= 0.0 or not np.isfinite(total):
        return uniform
    return tau * importance / total + (1.0 - tau) * uniform


# --- path samplers ---------------------------------------------------------------------------------

class PathSampler:
    """Base class; see the module docstring.  ``n_edges`` choices of ``n_ops`` each."""

    name = ""
    needs_grad_norms = False

    def __init__(self, n_edges: int, n_ops: int):
        if n_edges < 1 or n_ops < 1:
            raise ConfigError(f"a path needs >= 1 edge and >= 1 op, got {n_edges} x {n_ops}")
        self.n_edges, self.n_ops = int(n_edges), int(n_ops)

    def sample(self, rng: np.random.Generator) -> list[Path]:
        raise NotImplementedError

    def observe(self, paths: Sequence[Path], op_grad_norms: np.ndarray | None) -> None:
        """Default: nothing to learn."""

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Default: the distribution is fixed."""

    def probs(self) -> np.ndarray:
        """(n_edges, n_ops) marginal probability of each op on each edge."""
        return np.full((self.n_edges, self.n_ops), 1.0 / self.n_ops)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Default: stateless."""


class UniformPath(PathSampler):
    """SPOS: one path per step, each edge's op uniform and independent."""

    name = "spos"

    def sample(self, rng: np.random.Generator) -> list[Path]:
        return [tuple(int(o) for o in rng.integers(0, self.n_ops, size=self.n_edges))]


class FairPath(PathSampler):
    """FairNAS strict fairness: ``n_ops`` paths per step, built from a fresh random permutation of
    the ops on every edge, so each op of each edge is trained exactly once per step.  (The list is
    rebuilt every step, not once per epoch.)  The trainer accumulates their gradients into one update."""

    name = "fairnas"

    def sample(self, rng: np.random.Generator) -> list[Path]:
        perms = np.stack([rng.permutation(self.n_ops) for _ in range(self.n_edges)])  # (edges, ops)
        return [tuple(int(o) for o in perms[:, i]) for i in range(self.n_ops)]


class ImportancePath(PathSampler):
    """PA&DA path sampling: one path per step, each edge's op drawn from ``p`` (one distribution over
    ops shared by all edges, as in the authors' code), updated once per epoch from op importance."""

    name = "pada"
    needs_grad_norms = True

    def __init__(self, n_edges: int, n_ops: int, ema: float = 0.5):
        super().__init__(n_edges, n_ops)
        if not 0.0 < ema <= 1.0:
            raise ConfigError(f"ema must be in (0, 1], got {ema}")
        self.ema = float(ema)
        self.p = np.full(self.n_ops, 1.0 / self.n_ops)
        self.importance = np.zeros(self.n_ops)

    def sample(self, rng: np.random.Generator) -> list[Path]:
        return [tuple(int(o) for o in rng.choice(self.n_ops, size=self.n_edges, p=self.p))]

    def observe(self, paths: Sequence[Path], op_grad_norms: np.ndarray | None) -> None:
        if op_grad_norms is None:
            raise ConfigError("the PA&DA path sampler needs the step's gradient norms")
        g = np.asarray(op_grad_norms, dtype=np.float64)
        for path in paths:
            for op in range(self.n_ops):
                edges = [e for e, o in enumerate(path) if o == op]
                if not edges:
                    continue
                norm = float(sum(g[e, op] for e in edges)) / len(edges)
                if norm != 0.0:  # parameter-free ops stay at 0
                    self.importance[op] = (1.0 - self.ema) * self.importance[op] + self.ema * norm

    def end_epoch(self, epoch: int, epochs: int) -> None:
        self.p = _mix(self.importance, epoch / epochs)
        self.importance = np.zeros(self.n_ops)

    def probs(self) -> np.ndarray:
        return np.tile(self.p, (self.n_edges, 1))

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p.copy(), "importance": self.importance.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = np.asarray(state["p"], dtype=np.float64).copy()
        self.importance = np.asarray(state["importance"], dtype=np.float64).copy()


class ClassUniformPath(PathSampler):
    """Uniform over equivalence classes: pick a class uniformly, then one of its paths uniformly.

    ``classes`` is a list of lists of paths (the space adapter builds it from functional digests), so
    a cell with many equivalent copies is not trained more often than a cell with one."""

    name = "class-uniform"

    def __init__(self, n_edges: int, n_ops: int, classes: Sequence[Sequence[Path]]):
        super().__init__(n_edges, n_ops)
        self.classes = [list(map(tuple, c)) for c in classes if len(c)]
        if not self.classes:
            raise ConfigError("class-uniform sampling needs at least one non-empty class")
        for c in self.classes:
            for path in c:
                if len(path) != self.n_edges or not all(0 <= o < self.n_ops for o in path):
                    raise ConfigError(f"path {path} is not {self.n_edges} ops in 0..{self.n_ops - 1}")

    def sample(self, rng: np.random.Generator) -> list[Path]:
        members = self.classes[int(rng.integers(0, len(self.classes)))]
        return [members[int(rng.integers(0, len(members)))]]

    def probs(self) -> np.ndarray:
        m = np.zeros((self.n_edges, self.n_ops))
        for members in self.classes:
            w = 1.0 / (len(self.classes) * len(members))
            for path in members:
                m[np.arange(self.n_edges), path] += w
        return m


# --- data samplers ---------------------------------------------------------------------------------

class DataSampler:
    """Base class; see the module docstring.  ``n`` training examples."""

    name = ""
    needs_example_scores = False

    def __init__(self, n: int):
        if n < 1:
            raise ConfigError(f"a data sampler needs >= 1 example, got {n}")
        self.n = int(n)

    def epoch_order(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def observe(self, indices: np.ndarray, scores: np.ndarray) -> None:
        """Default: nothing to learn."""

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Default: the distribution is fixed."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Default: stateless."""


class UniformData(DataSampler):
    """Every example once per epoch, in a fresh random order."""

    name = "uniform"

    def epoch_order(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n)


class ImportanceData(DataSampler):
    """PA&DA data sampling: epoch 0 visits every example once; afterwards each epoch draws ``n``
    examples with replacement from ``q``, updated at the end of every epoch from example importance."""

    name = "pada"
    needs_example_scores = True

    def __init__(self, n: int, ema: float = 0.5):
        super().__init__(n)
        if not 0.0 < ema <= 1.0:
            raise ConfigError(f"ema must be in (0, 1], got {ema}")
        self.ema = float(ema)
        self.q: np.ndarray | None = None  # None: not learnt yet (a plain permutation)
        self.importance = np.zeros(self.n)

    def epoch_order(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        if self.q is None:
            return rng.permutation(self.n)
        return rng.choice(self.n, size=self.n, replace=True, p=self.q)

    def observe(self, indices: np.ndarray, scores: np.ndarray) -> None:
        for i, s in zip(np.asarray(indices, dtype=np.int64), np.asarray(scores, dtype=np.float64)):
            old = self.importance[i]
            self.importance[i] = s if old == 0.0 else (1.0 - self.ema) * old + self.ema * s

    def end_epoch(self, epoch: int, epochs: int) -> None:
        self.q = _mix(self.importance, epoch / epochs)
        self.importance = np.zeros(self.n)

    def state_dict(self) -> dict[str, Any]:
        return {"q": None if self.q is None else self.q.copy(), "importance": self.importance.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = state.get("q")
        self.q = None if q is None else np.asarray(q, dtype=np.float64).copy()
        self.importance = np.asarray(state["importance"], dtype=np.float64).copy()


PATH_SAMPLERS = {"spos": UniformPath, "uniform": UniformPath, "fairnas": FairPath, "pada": ImportancePath,
                 "class-uniform": ClassUniformPath, "ensemble": "evaluators.ensemble.shrink:EnsemblePath"}
DATA_SAMPLERS = {"uniform": UniformData, "pada": ImportanceData}


def resolve_sampler(entry):
    """A sampler class from a registry entry (the class, or a lazy ``"module:Class"`` path)."""
    if isinstance(entry, str):
        import importlib

        mod, _, attr = entry.partition(":")
        return getattr(importlib.import_module(mod), attr)
    return entry


def check_sampler_names(path: str, data: str) -> None:
    if path not in PATH_SAMPLERS:
        raise ConfigError(f"unknown path sampler {path!r}; choose one of {', '.join(PATH_SAMPLERS)}")
    if data not in DATA_SAMPLERS:
        raise ConfigError(f"unknown data sampler {data!r}; choose one of {', '.join(DATA_SAMPLERS)}")
