"""Gaussian process (DACE kriging, pydacefit): linear regression, Gaussian correlation.

The hyper-parameter theta is tuned by DACE's box-min search in [1e-5, 100]. Two fixes over the
original: theta is passed as an array (a scalar breaks pydacefit on numpy 2), and constant or
linearly dependent feature columns are removed first (DACE standardises each column, so a constant
one gave NaN). Prediction is our own vectorised kernel product: pydacefit materialises an
(n_test * n_train, d) difference matrix, gigabytes for 10,000 test points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydacefit.corr import corr_gauss
from pydacefit.dace import DACE
from pydacefit.regr import regr_constant, regr_linear

from acc_predictor.base import Predictor
from acc_predictor.encoding import Projection, choose_projection
from acc_predictor.rbf import merge_duplicates


class GP(Predictor):
    name = "gp"

    def __init__(
        self,
        search_space: Any = None,
        encoding: str = "int",
        seed: int = 0,
        theta_bounds: tuple[float, float] = (1e-5, 100.0),
    ) -> None:
        super().__init__(search_space, encoding, seed)
        lo, hi = (float(b) for b in theta_bounds)
        if not 0 < lo <= hi < np.inf:  # pydacefit raised a bare Exception, or LAPACK printed errors on NaN
            raise ValueError(f"gp: theta_bounds must be finite with 0 < low <= high, got {tuple(theta_bounds)}")
        self.theta_bounds = (lo, hi)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        F, y = merge_duplicates(F, y)
        self.keep = np.flatnonzero(F.std(axis=0) > 0)
        F = F[:, self.keep]
        self.projection, self.constant = None, float(np.mean(y))
        if F.shape[1] > len(F) // 2 and np.std(y) > 0:
            # few points per feature: the leading half of the directions or all of them, whichever ranks
            # better out of fold (with all of them below 48 points in the OFA space the trend is constant
            # and every prediction was the mean; just above, the linear trend interpolates on its own)
            self.projection = choose_projection(F, y, lambda Z, t, Zt: self._dace_predict(self._dace(Z, t), Zt),
                                                self.seed, half_when_few=True)
            F = self.projection(F)
        elif F.shape[1] and np.linalg.matrix_rank(F - F.mean(axis=0)) < F.shape[1]:
            self.projection = Projection(F)  # dependent columns: keep the spanned directions
            F = self.projection(F)
        self.model = self._dace(F, y)  # None: nothing to regress on, predict the mean

    def _dace(self, F: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
        """DACE's fitted model (its dict plus the trend used), or None when there is nothing to fit."""
        if F.shape[1] == 0 or len(F) < 3 or np.std(y) == 0:
            return None
        # a linear trend needs more points than features; otherwise a constant trend
        regr = regr_linear if len(F) >= F.shape[1] + 2 else regr_constant
        lo, hi = self.theta_bounds
        dace = DACE(regr=regr, corr=corr_gauss, theta=np.array([1.0]), thetaL=np.array([lo]), thetaU=np.array([hi]))
        dace.fit(F, y)
        return {**dace.model, "regr": regr}

    def _dace_predict(self, m: dict[str, Any] | None, F: np.ndarray) -> np.ndarray:
        if m is None:
            return np.full(len(F), self.constant)
        Z = (F - m["mX"]) / m["sX"]
        train = m["nX"]
        sq = (Z**2).sum(1)[:, None] + (train**2).sum(1)[None, :] - 2.0 * Z @ train.T
        R = np.exp(-float(m["theta"].ravel()[0]) * np.maximum(sq, 0.0))
        y = m["regr"](Z) @ m["beta"] + R @ m["gamma"]
        return (y * m["sY"] + m["mY"])[:, 0]

    def _features(self, F: np.ndarray) -> np.ndarray:
        F = F[:, self.keep]
        return self.projection(F) if self.projection is not None else F

    def _predict(self, F: np.ndarray) -> np.ndarray:
        return self._dace_predict(self.model, self._features(F))
