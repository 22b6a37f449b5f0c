"""What every surrogate shares: input checks, the Predictor interface, and the quality metric.

A surrogate maps (n, n_var) integer genomes to (n,) predicted top-1 error (percent). Each model
chooses its input representation (see `acc_predictor.encoding`) behind the same fit/predict
interface, so the search engine never sees features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from acc_predictor.encoding import encode, fit_encoding


class Predictor:
    """Base class: checks inputs, encodes genomes, delegates to `_fit`/`_predict` on features."""

    name = "predictor"

    def __init__(self, search_space: Any = None, encoding: str = "int", seed: int = 0) -> None:
        if search_space is None:
            from search_space.ofa import OFASearchSpace

            search_space = OFASearchSpace()
        self.search_space = search_space
        self.encoding = fit_encoding(encoding, search_space)
        self.seed = int(seed)
        self.fitted = False

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        X, y = check_training_data(X, y, self.search_space.n_var)
        self._check_bounds(X)
        self._fit(self.features(X), y)
        self.fitted = True
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise ValueError(f"{self.name}: predict called before fit")
        X = check_genomes(X, self.search_space.n_var)
        self._check_bounds(X)
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self._predict(self.features(X)), dtype=float).reshape(len(X))

    def _check_bounds(self, X: np.ndarray) -> None:
        bad = (X < np.asarray(self.search_space.xl)) | (X > np.asarray(self.search_space.xu))
        if bad.any():
            row, gene = map(int, np.argwhere(bad)[0])
            raise ValueError(f"surrogate: gene {gene} = {X[row, gene]} of row {row} is outside the search space")

    def features(self, X: np.ndarray) -> np.ndarray:
        """The model's input representation of (n, n_var) genomes."""
        return encode(self.encoding, self.search_space, X)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, F: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(encoding={self.encoding.name!r}, seed={self.seed})"


def check_genomes(X: np.ndarray, n_var: int) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1 and X.shape[0] == n_var:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_var:
        raise ValueError(f"surrogate: X must have shape (n, {n_var}), got {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
        raise ValueError("surrogate: X must be finite numbers (integer genomes)")
    if np.issubdtype(X.dtype, np.floating) and not np.array_equal(X, np.round(X)):
        raise ValueError("surrogate: X must hold integer genomes, got fractional values")
    return X.astype(int)


def check_training_data(X: np.ndarray, y: np.ndarray, n_var: int) -> tuple[np.ndarray, np.ndarray]:
    X = check_genomes(X, n_var)
    y = np.asarray(y, dtype=float)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"surrogate: y must have shape ({len(X)},) to match X {X.shape}, got {y.shape}")
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        raise ValueError(f"surrogate: y holds a NaN or infinite target (row {bad})")
    if len(X) < 2:
        raise ValueError(f"surrogate: need at least 2 training points, got {len(X)}")
    return X, y


def correlation(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """rmse, Spearman rho and Kendall tau of predictions against truth; (n,) or (n, 1) inputs."""
    pred = np.asarray(pred, dtype=float)
    true = np.asarray(true, dtype=float)
    if pred.size != true.size or pred.size != max(pred.shape, default=0) or true.size != max(true.shape, default=0):
        raise ValueError(f"correlation: expected two vectors of equal length, got {pred.shape} and {true.shape}")
    pred, true = pred.ravel(), true.ravel()
    if len(pred) < 2:
        raise ValueError("correlation: need at least 2 points")
    rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
    if np.ptp(pred) == 0 or np.ptp(true) == 0:  # undefined (a model predicting a constant, or equal errors):
        return {"rmse": rmse, "rho": float("nan"), "tau": float("nan")}  # nan, without scipy's warning each time
    rho = float(stats.spearmanr(pred, true).statistic)
    tau = float(stats.kendalltau(pred, true).statistic)
    return {"rmse": rmse, "rho": rho, "tau": tau}
