"""Closed-form ridge regression (numpy): the predictor LINAS refits every loop, and the linear
accuracy/MACs predictor of evaluators/hardware.  One linear solve; fitting 500 points with a few
hundred features takes milliseconds.  (scikit-learn is not a dependency for one solve.)"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class Ridge:
    """Ridge regression with an unpenalised intercept, solved in closed form (primal or dual,
    whichever system is smaller)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Ridge":
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.mx, self.my = X.mean(0), y.mean()
        Xc = X - self.mx
        n, p = Xc.shape
        if p <= n:
            self.w = np.linalg.solve(Xc.T @ Xc + self.alpha * np.eye(p), Xc.T @ (y - self.my))
        else:
            self.w = Xc.T @ np.linalg.solve(Xc @ Xc.T + self.alpha * np.eye(n), y - self.my)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mx) @ self.w + self.my


class RidgeCV(Ridge):
    """Ridge whose ``alpha`` is picked from ``alphas`` by exact leave-one-out error (closed form in
    the dual: residual_i / (1 - H_ii), one eigendecomposition for the whole grid)."""

    def __init__(self, alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0)) -> None:
        super().__init__(alphas[0])
        self.alphas = tuple(float(a) for a in alphas)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RidgeCV":
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        Xc, yc = X - X.mean(0), y - y.mean()
        if len(y) >= 3:
            lam, U = np.linalg.eigh(Xc @ Xc.T)
            lam = np.maximum(lam, 0.0)
            Uy = U.T @ yc
            best: tuple[float, float] | None = None
            for a in self.alphas:
                s = lam / (lam + a)
                resid = yc - U @ (s * Uy)
                h = (U * U) @ s
                loo = np.mean((resid / np.maximum(1.0 - h, 1e-9)) ** 2)
                if best is None or loo < best[0]:
                    best = (loo, a)
            if best is None:
                raise ValueError("RidgeCV needs at least one alpha")
            self.alpha = best[1]
        super().fit(X, y)
        return self
