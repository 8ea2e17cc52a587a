"""Multi-objective strategies on categorical parameter spaces: native NSGA-II and LINAS.

Both work on any space whose ``param_space()`` is all :class:`~automl.space.Categorical`
parameters; a genome is handled as the vector of its choice indices, so variation, sorting and
prediction run vectorised over whole populations.  Optional space hooks (used when present):

* ``space.features(X)`` — predictor features of an index matrix (default: one-hot per parameter);
* ``space.canonical_codes(X)`` — rows equal iff the candidates are the same network (default: X);
  used to avoid proposing a network that was already evaluated or is queued.

Objectives are every objective of the evaluator (directions respected).  A result that violates
a constraint (``EvalResult.violation`` > 0; see :class:`automl.types.Evaluation`) ranks after
every feasible result, by total violation (Deb's constrained domination).

* :class:`NSGA2` (``nsga2-native``): elitist NSGA-II, (mu + lambda) over everything told: each
  batch of ``population_size`` children is bred by binary tournament on (rank, crowding), uniform
  crossover and per-gene mutation from the best ``population_size`` results so far.
* :class:`LINAS` (``linas``): LINAS (Cummings et al. 2022, DyNAS-T).  After an initial sample,
  every loop refits one ridge predictor per objective on *all* results of this run, runs an inner
  NSGA-II on the predictions (``inner_population x inner_generations`` predicted evaluations, one
  vectorised predictor call per generation, not one per individual), and proposes ``batch`` new
  candidates from the predicted front, chosen greedily by predicted hypervolume gain over the
  real front (``reference_point``: the hypervolume's reference in objective units, e.g.
  ``{"top1": 70, "macs": 6e8}``; default: the run's nadir plus 10 % of each range).  ``loop_seconds`` in the state records
  fit + inner-loop time per loop.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..hypervolume import crowding_distance, hypervolume, nondominated_ranks
from ..regression import Ridge, RidgeCV
from ..space import Categorical
from ..types import OK, Candidate, EvalResult
from .base import Proposal, Strategy


class _CategoricalStrategy(Strategy):
    """Shared machinery: index codec, archive of told results, vectorised NSGA-II operators.

    Options:
        crossover_prob: probability that a child is bred by uniform crossover (default 0.9).
        mutation_prob: per-gene mutation probability (default 1 / number of parameters).
        warm_start: also start from the space's ``warm_start()`` genomes (default true).
    """

    def __init__(self, crossover_prob: float = 0.9, mutation_prob: float | None = None, warm_start: bool = True):
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        if mutation_prob is not None and not 0.0 < mutation_prob <= 1.0:
            raise ConfigError(f"mutation_prob must be in (0, 1], got {mutation_prob}")
        self.crossover_prob, self.mutation_prob, self.use_warm_start = crossover_prob, mutation_prob, warm_start

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, seam: Any = None) -> None:
        super().bind(space, objectives, seed, seam)
        params = space.param_space()
        if not params or not all(isinstance(p, Categorical) for p in params.values()):
            raise ConfigError(f"strategy {self.name!r} needs a space whose parameters are all categorical; "
                              f"space {space.name!r} has none or others")
        self._names = list(params)
        self._choices = [list(params[n].choices) for n in self._names]
        self._index = [{c: i for i, c in enumerate(ch)} for ch in self._choices]
        self._n_choices = np.array([len(c) for c in self._choices])
        self._obj = list(self.objectives)
        self._sign = np.array([-1.0 if self.objectives[k] == "max" else 1.0 for k in self._obj])
        self._pm = self.mutation_prob or 1.0 / len(self._names)
        self.X: list[list[int]] = []  # told OK results: index vectors
        self.F: list[list[float]] = []  # their objectives, minimisation form
        self.CV: list[float] = []  # their constraint violation
        self.queue: list[list[int]] = []
        self.n_asked = self.n_told = 0
        self._seen: set[bytes] = set()
        if self.use_warm_start:
            self.queue = [self._encode(g).tolist() for g in space.warm_start()]

    # --- codec and hooks ----------------------------------------------------------------------------
    def _encode(self, genome: Any) -> np.ndarray:
        p = self.space.to_params(genome)
        return np.array([self._index[i][p[n]] for i, n in enumerate(self._names)], dtype=np.int64)

    def _decode(self, x: np.ndarray) -> Any:
        return self.space.from_params({n: self._choices[i][int(v)] for i, (n, v) in enumerate(zip(self._names, x))})

    def _features(self, X: np.ndarray) -> np.ndarray:
        if hasattr(self.space, "features"):
            return np.asarray(self.space.features(X), dtype=np.float64)
        offs = np.concatenate([[0], np.cumsum(self._n_choices)[:-1]])
        out = np.zeros((len(X), int(self._n_choices.sum())))
        out[np.arange(len(X))[:, None], X + offs] = 1.0
        return out

    def _canon(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.int64))
        return np.asarray(self.space.canonical_codes(X)) if hasattr(self.space, "canonical_codes") else X

    def _key(self, row: np.ndarray) -> bytes:
        return np.ascontiguousarray(row, dtype=np.int64).tobytes()

    # --- vectorised NSGA-II operators --------------------------------------------------------------
    def _sample(self, n: int) -> np.ndarray:
        return (self.rng.random((n, len(self._n_choices))) * self._n_choices).astype(np.int64)

    def _order(self, F: np.ndarray, CV: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rank, crowding) per row; infeasible rows rank after all feasible ones, by violation."""
        n = len(F)
        rank = np.zeros(n)
        crowd = np.zeros(n)
        feas = np.ones(n, bool) if CV is None else CV <= 0
        if feas.any():
            idx = np.flatnonzero(feas)
            r = nondominated_ranks(F[idx])
            rank[idx] = r
            for k in np.unique(r):
                sel = idx[r == k]
                crowd[sel] = crowding_distance(F[sel])
        if CV is not None and (~feas).any():
            bad = np.flatnonzero(~feas)
            base = rank[feas].max() + 1 if feas.any() else 0
            rank[bad] = base + 1 + np.argsort(np.argsort(CV[bad]))
        return rank, crowd

    def _select(self, F: np.ndarray, k: int, CV: np.ndarray | None = None) -> np.ndarray:
        rank, crowd = self._order(F, CV)
        return np.lexsort((-crowd, rank))[:k]

    def _breed(self, X: np.ndarray, F: np.ndarray, n: int, CV: np.ndarray | None = None) -> np.ndarray:
        rank, crowd = self._order(F, CV)
        m = len(X)

        def tournament() -> np.ndarray:
            a, b = self.rng.integers(m, size=n), self.rng.integers(m, size=n)
            a_wins = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & (crowd[a] >= crowd[b]))
            return np.where(a_wins, a, b)

        p1, p2 = X[tournament()], X[tournament()]
        mask = (self.rng.random(p1.shape) < 0.5) & (self.rng.random((n, 1)) < self.crossover_prob)
        child = np.where(mask, p2, p1)
        mut = self.rng.random(child.shape) < self._pm
        shift = 1 + (self.rng.random(child.shape) * (self._n_choices - 1)).astype(np.int64)
        child = np.where(mut & (self._n_choices > 1), (child + shift) % self._n_choices, child)
        return child

    # --- ask / tell --------------------------------------------------------------------------------
    def _refill(self) -> None:
        raise NotImplementedError

    def ask(self) -> Proposal:
        if not self.queue:
            self._refill()
        x = self.queue.pop(0)
        self.n_asked += 1
        self._seen.add(self._key(self._canon(np.array(x))[0]))
        return Proposal(self._decode(np.asarray(x)), meta={"origin": self.name})

    def tell(self, candidate: Candidate, result: EvalResult) -> None:
        self.n_told += 1
        if result.status != OK or not all(k in result.objectives for k in self._obj):
            return
        x = self._encode(candidate.genome)
        self._seen.add(self._key(self._canon(x)[0]))
        self.X.append(x.tolist())
        self.F.append((self._sign * np.array([float(result.objectives[k]) for k in self._obj])).tolist())
        self.CV.append(float(result.violation))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = len(self._obj)
        return (np.array(self.X, dtype=np.int64).reshape(-1, len(self._names)),
                np.array(self.F, dtype=np.float64).reshape(-1, m), np.array(self.CV, dtype=np.float64))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "X": self.X, "F": self.F, "CV": self.CV, "queue": self.queue,
                "n_asked": self.n_asked, "n_told": self.n_told}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.X, self.F, self.CV = [list(x) for x in state["X"]], [list(f) for f in state["F"]], list(state["CV"])
        self.queue = [list(q) for q in state["queue"]]
        self.n_told = self.n_asked = int(state["n_told"])
        self._seen = {self._key(r) for r in self._canon(np.array(self.X, dtype=np.int64))} if self.X else set()


class NSGA2(_CategoricalStrategy):
    """Native elitist NSGA-II on categorical parameters (vectorised operators).

    Options:
        population_size: children bred per generation, and parents kept (default 50).
    """

    name = "nsga2-native"

    def __init__(self, population_size: int = 50, crossover_prob: float = 0.9, mutation_prob: float | None = None,
                 warm_start: bool = True):
        super().__init__(crossover_prob, mutation_prob, warm_start)
        if population_size < 2:
            raise ConfigError(f"population_size must be >= 2, got {population_size}")
        self.population_size = int(population_size)

    def options(self) -> dict[str, Any]:
        return {"population_size": self.population_size, "crossover_prob": self.crossover_prob,
                "mutation_prob": self.mutation_prob, "warm_start": self.use_warm_start}

    def _refill(self) -> None:
        X, F, CV = self._arrays()
        if self.n_asked < self.population_size or len(X) < 2:  # the first generation: random samples
            self.queue += self._sample(max(1, self.population_size - self.n_asked)).tolist()
            return
        keep = self._select(F, self.population_size, CV)
        self.queue += self._breed(X[keep], F[keep], self.population_size, CV[keep]).tolist()


class LINAS(_CategoricalStrategy):
    """LINAS: predictors refit on the run's own results every loop, NSGA-II on the predictions.

    Options:
        initial: random candidates evaluated before the first predictor fit (default 10).
        batch: candidates proposed per loop from the predicted front (default 5).
        inner_population: population of the inner NSGA-II on predictions (default 200).
        inner_generations: generations of the inner NSGA-II (default 100).
        alpha: ridge regularisation, a positive number (default 3.0) or ``"loo"`` (chosen by
            leave-one-out cross-validation).
        reference_point: the hypervolume's reference in objective units, e.g.
            ``{"top1": 70, "macs": 6e8}`` (default: the run's nadir plus 10 % of each range).
    """

    name = "linas"

    def __init__(self, initial: int = 10, batch: int = 5, inner_population: int = 200,
                 inner_generations: int = 100, alpha: float | str = 3.0, crossover_prob: float = 0.9,
                 mutation_prob: float | None = None, warm_start: bool = True,
                 reference_point: Mapping[str, float] | None = None):
        super().__init__(crossover_prob, mutation_prob, warm_start)
        self.reference_point = dict(reference_point) if reference_point else None
        for name, v in (("initial", initial), ("batch", batch), ("inner_population", inner_population),
                        ("inner_generations", inner_generations)):
            if int(v) < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if alpha != "loo" and not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ConfigError(f"alpha must be a positive number or 'loo', got {alpha!r}")
        self.initial, self.batch = int(initial), int(batch)
        self.inner_population, self.inner_generations, self.alpha = int(inner_population), int(inner_generations), alpha
        self.loop_seconds: list[list[float]] = []  # per loop: [fit, inner NSGA-II, batch choice] seconds

    def options(self) -> dict[str, Any]:
        return {"initial": self.initial, "batch": self.batch, "inner_population": self.inner_population,
                "inner_generations": self.inner_generations, "alpha": self.alpha,
                "crossover_prob": self.crossover_prob, "mutation_prob": self.mutation_prob,
                "warm_start": self.use_warm_start, "reference_point": self.reference_point}

    def bind(self, space: Any, objectives: Mapping[str, str], seed: int, seam: Any = None) -> None:
        super().bind(space, objectives, seed, seam)
        if self.reference_point is not None:
            missing = [k for k in self._obj if k not in self.reference_point]
            if missing:
                raise ConfigError(f"reference_point misses objective(s) {', '.join(missing)}")
            self._ref = self._sign * np.array([float(self.reference_point[k]) for k in self._obj])

    def _fresh(self, X: np.ndarray) -> np.ndarray:
        """Rows of X whose network was neither evaluated nor queued (first occurrence only)."""
        keys = [self._key(r) for r in self._canon(X)]
        queued = {self._key(r) for r in self._canon(np.array(self.queue))} if self.queue else set()
        out, seen = [], set()
        for i, k in enumerate(keys):
            if k not in self._seen and k not in queued and k not in seen:
                out.append(i)
                seen.add(k)
        return np.array(out, dtype=np.int64)

    def _refill(self) -> None:
        X, F, CV = self._arrays()
        if self.n_asked < self.initial or len(X) < 2:
            cand = self._sample(4 * self.batch)
            fresh = self._fresh(cand)
            self.queue += cand[fresh[: max(1, min(self.batch, self.initial - self.n_asked))]].tolist() \
                if len(fresh) else cand[:1].tolist()
            return
        t0 = time.perf_counter()
        feats = self._features(X)
        def model() -> Ridge | RidgeCV:
            return RidgeCV() if self.alpha == "loo" else Ridge(float(self.alpha))

        models = [model().fit(feats, F[:, k]) for k in range(F.shape[1])]
        cv_model = model().fit(feats, CV) if (CV > 0).any() else None
        t1 = time.perf_counter()

        def predict(P: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            Z = self._features(P)
            pf = np.stack([m.predict(Z) for m in models], axis=1)
            pc = np.maximum(cv_model.predict(Z), 0.0) if cv_model is not None else None
            return pf, pc

        # inner NSGA-II on predictions, seeded with the best real results
        seed = X[self._select(F, min(len(X), self.inner_population // 2), CV)]
        pop = np.concatenate([seed, self._sample(self.inner_population - len(seed))])
        pf, pc = predict(pop)
        for _ in range(self.inner_generations):
            kids = self._breed(pop, pf, self.inner_population, pc)
            kf, kc = predict(kids)
            allp = np.concatenate([pop, kids])
            allf = np.concatenate([pf, kf])
            allc = None if pc is None else np.concatenate([pc, kc])
            _, first = np.unique(self._canon(allp), axis=0, return_index=True)
            allp, allf = allp[first], allf[first]
            allc = None if allc is None else allc[first]
            keep = self._select(allf, self.inner_population, allc)
            pop, pf = allp[keep], allf[keep]
            pc = None if allc is None else allc[keep]
        t2 = time.perf_counter()
        fresh = self._fresh(pop)
        if len(fresh) == 0:
            self.queue += self._sample(1).tolist()
        else:
            chosen = self._choose(pop[fresh], pf[fresh], None if pc is None else pc[fresh], F, CV)
            self.queue += pop[fresh][chosen].tolist()
        self.loop_seconds.append([t1 - t0, t2 - t1, time.perf_counter() - t2])

    def _choose(self, P: np.ndarray, PF: np.ndarray, PC: np.ndarray | None, F: np.ndarray, CV: np.ndarray) -> list[int]:
        """Greedy batch: each pick maximises the predicted hypervolume of (real feasible front +
        picks so far); single objective: the best predicted.  Predicted-infeasible ones come last."""
        k = min(self.batch, len(P))
        ok = np.ones(len(P), bool) if PC is None else PC <= 0
        order_bad = list(np.flatnonzero(~ok)[np.argsort(PC[~ok])]) if PC is not None else []
        idx = np.flatnonzero(ok)
        if F.shape[1] == 1:
            return (list(idx[np.argsort(PF[idx, 0])]) + order_bad)[:k]
        if F.shape[1] > 2:  # exact HV gains get costly in 3+ objectives: predicted rank, then crowding
            rank, crowd = self._order(PF[idx])
            return (list(idx[np.lexsort((-crowd, rank))]) + order_bad)[:k]
        feasF = F[CV <= 0] if (CV <= 0).any() else F
        allF = np.concatenate([feasF, PF[idx]]) if len(idx) else feasF
        lo, hi = allF.min(0), allF.max(0)
        ref = self._ref if self.reference_point is not None else hi + 0.1 * np.maximum(hi - lo, 1e-12)
        picks: list[int] = []
        base = feasF.copy()
        for _ in range(k):
            if not len(idx):
                break
            h0 = hypervolume(base, ref)
            gains = np.array([hypervolume(np.vstack([base, PF[i]]), ref) - h0 if i not in picks else -1.0
                              for i in idx])
            j = int(idx[int(np.argmax(gains))])
            if gains.max() <= 0:  # nothing improves: spread the rest by crowding on the predicted front
                rest = [int(i) for i in idx if i not in picks]
                crowd = crowding_distance(PF[rest]) if len(rest) > 2 else np.zeros(len(rest))
                picks += [rest[i] for i in np.argsort(-crowd)][: k - len(picks)]
                break
            picks.append(j)
            base = np.vstack([base, PF[j]])
        return (picks + order_bad)[:k]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "loop_seconds": self.loop_seconds}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.loop_seconds = [list(x) for x in state.get("loop_seconds", [])]


def mean_loop_seconds(strategy: LINAS) -> float:
    """Mean seconds per LINAS loop, fit + inner NSGA-II + batch choice (nan before the first loop)."""
    s = strategy.loop_seconds
    return float(np.mean([sum(x) for x in s])) if s else math.nan
