"""Predictors of a sub-network's objectives from its configuration (numpy; the MLP uses torch).

* :func:`config_features` — what every predictor sees: per *active* block slot the one-hot (ks, e)
  pair and the one-hot ks and e (inactive slots' genes never reach a predictor), one-hot stage
  depths, and optionally the same block terms scaled by ``(r/224)²`` plus ``r/224``, ``(r/224)²``.
* :class:`~automl.regression.Ridge` — closed-form ridge regression (one linear solve; fitting on 500 points takes a
  few milliseconds, which is what lets LINAS refit every loop).  Accuracy and MACs predictor.
* :class:`LatencyLUT` — the per-layer lookup table: latency = c0 + c1·ρ² + Σ over active blocks of
  ``T[slot, ks, e, 0] + T[slot, ks, e, 1]·ρ²`` (ρ = r/224), all entries fitted jointly by
  least squares on measured latencies (so launch overheads and stem/head land in c0, c1).
* :class:`MLPRegressor` — the learned model: a small MLP (torch) on the same features, trained on
  log targets; an ensemble of a few seeds.

scikit-learn is not a dependency of the project; a ridge solve and a 2-layer MLP are a few lines.
"""
from __future__ import annotations

import numpy as np

from automl.regression import Ridge  # noqa: F401  (re-exported: the accuracy/MACs predictor)
from search_spaces.ofa.space import E_CHOICES, KS_CHOICES, MAX_DEPTH, N_BLOCKS

_KS_INDEX = np.zeros(8, dtype=np.int64)
_KS_INDEX[list(KS_CHOICES)] = range(3)
_E_INDEX = np.zeros(7, dtype=np.int64)
_E_INDEX[list(E_CHOICES)] = range(3)


def active_mask(d: np.ndarray) -> np.ndarray:
    return (np.arange(N_BLOCKS) % MAX_DEPTH)[None, :] < np.repeat(np.asarray(d), MAX_DEPTH, axis=1)


def pair_onehot(ks: np.ndarray, e: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(n, 20, 9): one-hot (ks, e) per block slot, zero for inactive slots."""
    ki, ei = _KS_INDEX[np.asarray(ks)], _E_INDEX[np.asarray(e)]
    return np.eye(9)[3 * ki + ei] * active_mask(d)[:, :, None]


def config_features(ks, e, d, r=224, resolution: bool = False) -> np.ndarray:
    ks, e, d = np.asarray(ks), np.asarray(e), np.asarray(d)
    n = ks.shape[0]
    pair = pair_onehot(ks, e, d)
    blk = np.concatenate([pair, pair.reshape(n, 20, 3, 3).sum(3), pair.reshape(n, 20, 3, 3).sum(2)], axis=2)
    blk = blk.reshape(n, -1)
    depth = np.eye(3)[np.asarray(d) - 2].reshape(n, -1)
    parts = [blk, depth]
    if resolution:
        rho = np.broadcast_to(np.asarray(r, dtype=np.float64), (n,))[:, None] / 224.0
        parts += [blk * rho ** 2, rho, rho ** 2]
    return np.concatenate(parts, axis=1)


class LatencyLUT:
    """Per-layer latency lookup table fitted by least squares (see the module docstring)."""

    def __init__(self, alpha: float = 1e-3):
        self.alpha = alpha

    @staticmethod
    def design(ks, e, d, r) -> np.ndarray:
        n = np.asarray(ks).shape[0]
        rho2 = (np.broadcast_to(np.asarray(r, dtype=np.float64), (n,)) / 224.0) ** 2
        pair = pair_onehot(ks, e, d).reshape(n, -1)
        return np.concatenate([pair, pair * rho2[:, None], np.ones((n, 1)), rho2[:, None]], axis=1)

    def fit(self, ks, e, d, r, latency) -> "LatencyLUT":
        A = self.design(ks, e, d, r)
        y = np.asarray(latency, dtype=np.float64)
        self.coef = np.linalg.solve(A.T @ A + self.alpha * np.eye(A.shape[1]), A.T @ y)
        return self

    @property
    def table(self) -> np.ndarray:
        """T[slot, ks index, e index, (constant, ρ² term)] in the latency's unit."""
        c = self.coef[:-2]
        return np.stack([c[:180].reshape(20, 3, 3), c[180:].reshape(20, 3, 3)], axis=-1)

    def predict(self, ks, e, d, r) -> np.ndarray:
        return self.design(ks, e, d, r) @ self.coef


class MLPRegressor:
    """A small MLP ensemble (torch, CPU) on :func:`config_features`; ``log_target`` fits log(y)."""

    def __init__(self, hidden: int = 128, epochs: int = 300, lr: float = 3e-3, weight_decay: float = 1e-4,
                 ensemble: int = 3, log_target: bool = True, seed: int = 0, batch_size: int = 256):
        self.hidden, self.epochs, self.lr, self.wd = hidden, epochs, lr, weight_decay
        self.ensemble, self.log_target, self.seed, self.batch_size = ensemble, log_target, seed, batch_size

    def fit(self, X: np.ndarray, y: np.ndarray) -> "MLPRegressor":
        import torch

        X = np.asarray(X, dtype=np.float32)
        y = np.log(y) if self.log_target else np.asarray(y)
        self.mx, self.sx = X.mean(0), X.std(0) + 1e-6
        self.my, self.sy = float(y.mean()), float(y.std() + 1e-12)
        Xt = torch.from_numpy((X - self.mx) / self.sx)
        yt = torch.from_numpy(((y - self.my) / self.sy).astype(np.float32))
        self.models = []
        for k in range(self.ensemble):
            g = torch.Generator().manual_seed(self.seed * 1000 + k)
            torch.manual_seed(self.seed * 1000 + k)
            net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], self.hidden), torch.nn.ReLU(),
                                      torch.nn.Linear(self.hidden, self.hidden), torch.nn.ReLU(),
                                      torch.nn.Linear(self.hidden, 1))
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.wd)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
            for _ in range(self.epochs):
                perm = torch.randperm(len(Xt), generator=g)
                for i in range(0, len(Xt), self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    loss = torch.nn.functional.mse_loss(net(Xt[idx]).squeeze(1), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                sched.step()
            self.models.append(net.eval())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        Xt = torch.from_numpy(((np.asarray(X, dtype=np.float32) - self.mx) / self.sx).astype(np.float32))
        with torch.no_grad():
            out = np.mean([m(Xt).squeeze(1).numpy() for m in self.models], axis=0) * self.sy + self.my
        return np.exp(out) if self.log_target else out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - true) / np.abs(true)) * 100.0)


class KernelRidge:
    """RBF kernel ridge regression (the accuracy oracle of the surrogate benchmark): a smoother,
    richer model family than the linear :class:`Ridge` a search fits on its own data."""

    def __init__(self, gamma: float = 0.01, alpha: float = 0.1):
        self.gamma, self.alpha = float(gamma), float(alpha)

    def _k(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return np.exp(-self.gamma * np.maximum(d2, 0.0))

    def fit(self, X: np.ndarray, y: np.ndarray) -> "KernelRidge":
        self.X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.my = y.mean()
        self.c = np.linalg.solve(self._k(self.X, self.X) + self.alpha * np.eye(len(y)), y - self.my)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._k(np.asarray(X, dtype=np.float64), self.X) @ self.c + self.my
