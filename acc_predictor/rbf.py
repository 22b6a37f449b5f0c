"""Radial basis function interpolation: cubic kernel with a linear tail (the paper's default).

The original used pySOT's RBFInterpolant; scipy's RBFInterpolator is the same model and maintained.
Features are first rotated onto the directions the training data span (`Projection`), so one-hot
encodings (linearly dependent columns) keep the linear tail solvable; with few points, only the
leading half of them when that ranks better out of fold (`choose_projection`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.interpolate import RBFInterpolator

from acc_predictor.base import Predictor
from acc_predictor.encoding import choose_projection


def merge_duplicates(F: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per distinct feature vector, its target the mean: interpolants need distinct sites."""
    unique, inverse = np.unique(F, axis=0, return_inverse=True)
    if len(unique) == len(F):
        return F, y
    inverse = inverse.ravel()
    return unique, np.bincount(inverse, weights=y) / np.bincount(inverse)


class RBF(Predictor):
    name = "rbf"

    def __init__(
        self,
        search_space: Any = None,
        encoding: str = "int",
        seed: int = 0,
        kernel: str = "cubic",
        degree: int = 1,
        smoothing: float = 1e-8,
    ) -> None:
        super().__init__(search_space, encoding, seed)
        # the scale-free kernels (others need an epsilon) and the least tail degree that makes each well-posed:
        # below it scipy only warns, and the interpolant swings far outside the data
        min_degree = {"linear": 0, "thin_plate_spline": 1, "cubic": 1, "quintic": 2}
        if kernel not in min_degree:
            raise ValueError(f"rbf: kernel must be one of {sorted(min_degree)}, got {kernel!r}")
        if isinstance(degree, bool) or int(degree) != degree or degree < min_degree[kernel]:
            raise ValueError(f"rbf: the {kernel} kernel needs an integer degree >= {min_degree[kernel]} (its "
                             f"polynomial tail), got {degree!r}")
        if not (np.isfinite(smoothing) and smoothing >= 0):
            raise ValueError(f"rbf: smoothing must be a finite number >= 0, got {smoothing!r}")
        self.kernel, self.degree, self.smoothing = kernel, int(degree), float(smoothing)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        F, y = merge_duplicates(F, y)
        self.projection = choose_projection(F, y, lambda Z, t, Zt: self._interpolant(Z, t)(Zt), self.seed)
        self.constant = float(np.mean(y))
        self.model = None
        if self.projection.rank == 0:  # a single distinct point: predict its value
            return
        self.model = self._interpolant(self.projection(F), y)

    def _interpolant(self, Z: np.ndarray, y: np.ndarray) -> RBFInterpolator:
        return RBFInterpolator(Z, y, kernel=self.kernel, degree=self.degree, smoothing=self.smoothing)

    def _predict(self, F: np.ndarray) -> np.ndarray:
        if self.model is None:
            return np.full(len(F), self.constant)
        return self.model(self.projection(F))
