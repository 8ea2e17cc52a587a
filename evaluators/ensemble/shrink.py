"""NEAS path sampling: K-path ensembles with a split point, and diversity-guided search-space
shrinking (numpy only; the model is reached through the task adapter the trainer passes in).

One step samples an ensemble: a split point ``s`` uniformly from the allowed ones, the trunk's
decisions (layers ``0..s-1``) once, and each of the K members' decisions after ``s``
independently -- every op uniformly among the ops still *alive* at its decision.

Shrinking (every ``shrink_every`` epochs, not after the last): ``score_samples`` ensembles are
drawn (seeded by (seed, epoch)) and run with the current supernet weights on ``probe_images``
fixed, un-augmented training images.  For decision ``d`` and alive op ``o``:

* **potential(d, o)**: mean top-1 accuracy (fraction) of the sampled ensembles in which some
  member uses ``o`` at ``d``;
* **diversity(d, o)**: mean, over every (ensemble, member) pair where the member uses ``o`` at
  ``d``, of the fraction of probe images on which that member's prediction differs from the
  prediction of another member of the ensemble (averaged over the other members; 0 when K=1);
* **score** = ``SCORES[score](potential, diversity, lam)``; default ``potential + lam * diversity``.

At each decision the ``shrink_drop`` lowest-scoring alive ops are dropped (ties: the higher op
index first), never leaving fewer than ``min_ops`` (>= 1) alive: the last op of a decision is
never removed.  An op that no sampled ensemble used is not scored and not dropped this round.
Every drop is appended to ``log`` (epoch, decision, op, potential, diversity, score), which is
part of the sampler's state and so of the checkpoint: a resumed run continues the same schedule.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from automl.errors import ConfigError
from evaluators.supernet.samplers import PathSampler

from .network import EnsemblePaths


def potential_plus_diversity(potential: np.ndarray, diversity: np.ndarray, lam: float) -> np.ndarray:
    return potential + lam * diversity


def potential_only(potential: np.ndarray, diversity: np.ndarray, lam: float) -> np.ndarray:
    return potential


#: Operator scores by name: ``fn(potential, diversity, lam) -> score`` on (decisions, ops) arrays.
SCORES: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "potential+diversity": potential_plus_diversity, "potential": potential_only}


class EnsemblePath(PathSampler):
    """K-path ensemble sampling over the alive ops, with diversity-guided shrinking (see the
    module docstring).  ``per_layer`` decisions make one layer; ``splits`` are the allowed split
    points (layers shared), default all of 0..L."""

    name = "ensemble"

    def __init__(self, n_edges: int, n_ops: int, *, per_layer: int, k: int = 2, splits: Sequence[int] | None = None,
                 shrink_every: int = 0, shrink_drop: int = 1, lam: float = 1.0, score: str = "potential+diversity",
                 score_samples: int = 32, probe_images: int = 500, min_ops: int = 1, alive: Any = None):
        super().__init__(n_edges, n_ops)
        if per_layer < 1 or n_edges % per_layer:
            raise ConfigError(f"{n_edges} decisions do not split into layers of {per_layer}")
        self.per_layer, self.n_layers = int(per_layer), n_edges // int(per_layer)
        if int(k) < 1:
            raise ConfigError(f"an ensemble needs k >= 1 members, got {k}")
        self.k = int(k)
        self.splits = sorted({int(s) for s in (range(self.n_layers + 1) if splits is None else splits)})
        if not self.splits or not all(0 <= s <= self.n_layers for s in self.splits):
            raise ConfigError(f"split points must be in 0..{self.n_layers}, got {splits}")
        if score not in SCORES:
            raise ConfigError(f"unknown operator score {score!r}; choose one of {', '.join(SCORES)}")
        if int(min_ops) < 1:
            raise ConfigError(f"min_ops must be >= 1 (a decision always keeps an op), got {min_ops}")
        if int(shrink_every) < 0 or int(shrink_drop) < 0 or int(score_samples) < 1 or int(probe_images) < 1:
            raise ConfigError("shrink_every and shrink_drop must be >= 0, score_samples and probe_images >= 1")
        self.shrink_every, self.shrink_drop, self.lam = int(shrink_every), int(shrink_drop), float(lam)
        self.score, self.score_samples = score, int(score_samples)
        self.probe_images, self.min_ops = int(probe_images), int(min_ops)
        # ``alive``: the ops each decision may take before any shrinking (default all; the OFA base
        # never skips a stage's first block)
        self.alive = np.ones((n_edges, n_ops), dtype=bool) if alive is None else np.array(alive, dtype=bool)
        if self.alive.shape != (n_edges, n_ops) or not self.alive.any(1).all():
            raise ConfigError(f"alive must be a ({n_edges}, {n_ops}) mask with >= 1 op per decision")
        self.log: list[dict[str, Any]] = []

    @classmethod
    def for_task(cls, task, **options: Any) -> "EnsemblePath":
        alive = task.default_alive() if hasattr(task, "default_alive") else None
        return cls(task.n_edges, task.n_ops, per_layer=task.per_layer, alive=alive, **options)

    # --- sampling
    def _draw(self, rng: np.random.Generator, decisions: range) -> list[int]:
        return [int(rng.choice(np.flatnonzero(self.alive[d]))) for d in decisions]

    def sample(self, rng: np.random.Generator) -> EnsemblePaths:
        s = self.splits[int(rng.integers(0, len(self.splits)))]
        cut = s * self.per_layer
        trunk = self._draw(rng, range(cut))
        return EnsemblePaths([tuple(trunk + self._draw(rng, range(cut, self.n_edges))) for _ in range(self.k)], s)

    def probs(self) -> np.ndarray:
        return self.alive / self.alive.sum(1, keepdims=True)

    def allowed(self) -> list[list[list[int]]]:
        """Alive ops as ``[layer][decision] -> op indices`` (the ensemble space's ``allowed`` option)."""
        return [[np.flatnonzero(self.alive[li * self.per_layer + d]).tolist() for d in range(self.per_layer)]
                for li in range(self.n_layers)]

    # --- shrinking
    def due(self, epoch: int, epochs: int) -> bool:
        return self.shrink_every > 0 and (epoch + 1) % self.shrink_every == 0 and epoch + 1 < epochs

    def epoch_end_probe(self, epoch: int, epochs: int, *, task, model, batcher, seed: int) -> None:
        """Called by the trainer at the end of every epoch (before ``end_epoch``)."""
        if not self.due(epoch, epochs):
            return
        import torch

        rng = np.random.default_rng([seed, 3, epoch])
        ensembles = [self.sample(rng) for _ in range(self.score_samples)]
        n = len(batcher.y)
        idx = np.sort(np.random.default_rng([seed, 4]).choice(n, size=min(self.probe_images, n), replace=False))
        i = torch.from_numpy(idx).to(batcher.device)
        x = (batcher.x[i].float() / 255.0 - batcher.mean) / batcher.std
        y = batcher.y[i].cpu().numpy()
        preds, ens = [], []
        for e in ensembles:
            logits = task.predict_members(model, x, e)  # (K, B, classes)
            preds.append(logits.argmax(-1).cpu().numpy())
            ens.append(logits.mean(0).argmax(-1).cpu().numpy())
        self.shrink(epoch, ensembles, preds, ens, y)

    def op_scores(self, ensembles: Sequence[EnsemblePaths], member_preds: Sequence[np.ndarray],
                  ensemble_preds: Sequence[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(potential, diversity, score) arrays (decisions, ops); NaN where an op was not sampled."""
        D, n_ops = self.n_edges, self.n_ops
        pot_sum, pot_n = np.zeros((D, n_ops)), np.zeros((D, n_ops))
        div_sum, div_n = np.zeros((D, n_ops)), np.zeros((D, n_ops))
        for paths, preds, ens in zip(ensembles, member_preds, ensemble_preds):
            preds = np.asarray(preds)
            k = len(paths)
            acc = float(np.mean(np.asarray(ens) == y))  # the ensemble predicts the argmax of its mean logits
            used = np.zeros((D, n_ops), dtype=bool)
            for m, p in enumerate(paths):
                used[np.arange(D), p] = True
                if k > 1:
                    dis = float(np.mean([np.mean(preds[m] != preds[j]) for j in range(k) if j != m]))
                else:
                    dis = 0.0
                div_sum[np.arange(D), p] += dis
                div_n[np.arange(D), p] += 1
            pot_sum[used] += acc
            pot_n[used] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            potential = np.where(pot_n > 0, pot_sum / np.maximum(pot_n, 1), np.nan)
            diversity = np.where(div_n > 0, div_sum / np.maximum(div_n, 1), np.nan)
        return potential, diversity, SCORES[self.score](potential, diversity, self.lam)

    def shrink(self, epoch: int, ensembles, member_preds, ensemble_preds, y) -> list[dict[str, Any]]:
        """Drop the ``shrink_drop`` lowest-scoring alive ops of every decision; return the drops.
        ``member_preds``: per ensemble, (K, n) member labels; ``ensemble_preds``: per ensemble, (n,)
        labels of the mean logits; ``y``: (n,) true labels."""
        potential, diversity, score = self.op_scores(ensembles, member_preds, ensemble_preds, y)
        events = []
        for d in range(self.n_edges):
            alive = np.flatnonzero(self.alive[d])
            budget = min(self.shrink_drop, len(alive) - self.min_ops)
            scored = [o for o in alive if np.isfinite(score[d, o])]
            for o in sorted(scored, key=lambda o: (score[d, o], -o))[:max(budget, 0)]:
                self.alive[d, o] = False
                events.append({"epoch": int(epoch), "decision": d, "layer": d // self.per_layer,
                               "edge": d % self.per_layer, "op": int(o), "potential": float(potential[d, o]),
                               "diversity": float(diversity[d, o]), "score": float(score[d, o]),
                               "alive_after": int(self.alive[d].sum())})
        self.log.extend(events)
        return events

    def epoch_log(self, epoch: int) -> dict[str, Any]:
        return {"alive_ops": int(self.alive.sum()),
                "dropped": [[e["decision"], e["op"]] for e in self.log if e["epoch"] == epoch]}

    def state_dict(self) -> dict[str, Any]:
        return {"alive": self.alive.astype(np.uint8), "log": [dict(e) for e in self.log]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alive = np.asarray(state["alive"]).astype(bool).copy()
        self.log = [dict(e) for e in state.get("log", [])]

