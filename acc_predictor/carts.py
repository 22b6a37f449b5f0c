"""CARTs: an ensemble of regression trees, each fitted on a random half of the features.

The original grew 5,000 trees in a Python loop and predicted sample by sample. This is the same
model (the random subspace method: no bootstrap, a random feature subset per tree, prediction the
mean of the trees) built with scikit-learn's BaggingRegressor, whose trees are grown and evaluated
in compiled code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import BaggingRegressor
from sklearn.tree import DecisionTreeRegressor

from acc_predictor.base import Predictor


class CARTs(Predictor):
    name = "carts"

    def __init__(
        self,
        search_space: Any = None,
        encoding: str = "int",
        seed: int = 0,
        n_trees: int = 500,
        feature_fraction: float = 0.5,
    ) -> None:
        super().__init__(search_space, encoding, seed)
        if isinstance(n_trees, bool) or int(n_trees) != n_trees or n_trees < 1 or not 0 < feature_fraction <= 1:
            raise ValueError(  # 2.5 trees was quietly 2
                f"carts: need an integer n_trees >= 1 and 0 < feature_fraction <= 1, got {n_trees}, {feature_fraction}"
            )
        self.n_trees, self.feature_fraction = int(n_trees), float(feature_fraction)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        self.model = BaggingRegressor(
            DecisionTreeRegressor(),
            n_estimators=self.n_trees,
            max_samples=len(F),  # every sample (the same trees as 1.0, without sklearn's small-sample warning)
            bootstrap=False,
            max_features=self.feature_fraction,
            bootstrap_features=False,
            random_state=self.seed,
        ).fit(F, y)

    def _predict(self, F: np.ndarray) -> np.ndarray:
        return self.model.predict(F)
