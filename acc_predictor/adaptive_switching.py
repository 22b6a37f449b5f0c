"""Adaptive switching: pick the surrogate that ranks best in k-fold cross-validation, refit it.

Every model of the pool is scored by Kendall's tau between its out-of-fold predictions and the
truth, fold by fold (at most `n_folds` folds of at least 5 points each); the winner has the best mean
minus standard deviation (a good and steady ranker), and is refitted on all data. `winner` names it;
`scores` keeps each model's figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from acc_predictor.base import Predictor, check_genomes, check_training_data

DEFAULT_POOL = ("rbf", "gp", "carts", "mlp")
MIN_FOLD = 5


class AdaptiveSwitching(Predictor):
    name = "as"

    def __init__(
        self,
        search_space: Any = None,
        encoding: str | None = None,
        seed: int = 0,
        pool: tuple[str, ...] | list[str] = DEFAULT_POOL,
        n_folds: int = 10,
        pool_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(search_space, encoding or "int", seed)
        from acc_predictor import acc_predictor_names

        self.member_encoding = encoding  # None: each pool member keeps its own default encoding

        pool = tuple(pool)
        unknown = [p for p in pool if p not in acc_predictor_names() or p == "as"]
        if not pool or unknown:
            raise ValueError(f"as: pool must name surrogates from {acc_predictor_names()} (not 'as'), got {pool}")
        if len(set(pool)) < len(pool):  # the same model twice only doubles the cross-validation
            raise ValueError(f"as: pool names a surrogate twice: {pool}")
        stray = sorted(set(pool_options or {}) - set(pool))
        if stray:  # options for a model outside the pool were ignored: a misspelt name, most likely
            raise ValueError(f"as: pool_options for {stray}, which the pool {pool} does not hold")
        if n_folds < 2:
            raise ValueError(f"as: n_folds must be at least 2, got {n_folds}")
        self.pool, self.n_folds = pool, int(n_folds)
        self.pool_options = dict(pool_options or {})
        self.winner: str | None = None
        self.scores: dict[str, dict[str, float]] = {}

    def _build(self, name: str) -> Predictor:
        from acc_predictor import get_acc_predictor

        options: dict[str, Any] = {"search_space": self.search_space, "seed": self.seed}
        if self.member_encoding is not None:
            options["encoding"] = self.member_encoding
        options.update(self.pool_options.get(name, {}))
        return get_acc_predictor(name, **options)

    def fit(self, X: np.ndarray, y: np.ndarray) -> AdaptiveSwitching:
        X, y = check_training_data(X, y, self.search_space.n_var)
        if len(X) < 4:  # with 2 or 3 points a fold leaves a single point to train on
            raise ValueError(f"as: cross-validation needs at least 4 training points, got {len(X)}")
        # at least MIN_FOLD points per fold: a tau over 1-2 points is NaN or +-1, noise that would pick
        # the winner (with 10 points and 10 folds every model scored 0 and the first always won)
        n_folds = max(2, min(self.n_folds, len(X) // MIN_FOLD))
        folds = np.array_split(np.random.default_rng(self.seed).permutation(len(X)), n_folds)
        self.scores = {}
        for name in self.pool:
            taus = []
            for k, test in enumerate(folds):
                train = np.concatenate([f for j, f in enumerate(folds) if j != k])
                pred = self._build(name).fit(X[train], y[train]).predict(X[test])
                tau = stats.kendalltau(pred, y[test]).statistic if len(test) > 1 else np.nan
                taus.append(0.0 if np.isnan(tau) else float(tau))  # a constant prediction ranks nothing
            self.scores[name] = {"tau_mean": float(np.mean(taus)), "tau_std": float(np.std(taus))}
        self.winner = max(self.pool, key=lambda p: self.scores[p]["tau_mean"] - self.scores[p]["tau_std"])
        self.model = self._build(self.winner).fit(X, y)
        self.fitted = True
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise ValueError("as: predict called before fit")
        return self.model.predict(check_genomes(X, self.search_space.n_var))
