"""A Gaussian process with an additive kernel, fitted by maximum marginal likelihood.

    k(a, b) = v_lin * <a_lin, b_lin> / d_lin + v_se * exp(-|a_oh - b_oh|^2 / (2 l^2 m)) + v_noise * [a = b]

The linear part works on the standardised `ordinal` encoding (any other space: `int`) and captures
the near-additive effect of each layer's choices; the squared-exponential part works on the
`onehot` encoding (skipped layers all zero) and captures interactions. The four hyper-parameters
(v_lin, v_se, l, v_noise; m is the median training distance) are set by L-BFGS on the exact log
marginal likelihood with analytic gradients, so the model regularises itself: no held-out data
or cross-validation is needed, which matters with 100 training points.

This model is what reached the benchmark target (see scripts/bench_predictors.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize

from acc_predictor.base import Predictor, check_genomes
from acc_predictor.encoding import _is_ofa, encode, fit_encoding

_JITTER = 1e-8


def _sq_dist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T, 0.0)


def likelihood_terms(K: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray] | None:
    """The negative log marginal likelihood of targets t under covariance K (without the constant) and
    W = alpha alpha^T - K^-1, from which each hyper-parameter's gradient is -0.5 * sum(W * dK);
    None when K is not positive definite."""
    try:
        chol = cho_factor(K, lower=True)
    except np.linalg.LinAlgError:
        return None
    alpha = cho_solve(chol, t)
    W = np.outer(alpha, alpha) - cho_solve(chol, np.eye(len(t)))
    return float(0.5 * t @ alpha + np.log(np.diag(chol[0])).sum()), W


class AdditiveGP(Predictor):
    name = "gp_additive"
    #: bounds of the fitted log hyper-parameters: v_lin, v_se, l^2, v_noise
    log_bounds: tuple[tuple[float, float], ...] = ((-10.0, 5.0), (-10.0, 5.0), (-5.0, 5.0), (-12.0, 1.0))
    #: relative noise variance of each training point (None: all alike); set by a subclass before `_fit`
    noise_weights: np.ndarray | None = None

    def __init__(self, search_space: Any = None, encoding: str = "onehot", seed: int = 0, restarts: int = 1) -> None:
        super().__init__(search_space, encoding, seed)
        self.linear_encoding = fit_encoding("ordinal" if _is_ofa(self.search_space) else "int", self.search_space)
        self.restarts = int(restarts)

    def features(self, X: np.ndarray) -> np.ndarray:
        lin = encode(self.linear_encoding, self.search_space, X)
        self.n_linear = lin.shape[1]
        return np.concatenate([lin, encode(self.encoding, self.search_space, X)], axis=1)

    def _split(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lin = (F[:, : self.n_linear] - self.lin_mean) / self.lin_std
        return lin, F[:, self.n_linear :]

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        self.lin_mean = F[:, : self.n_linear].mean(axis=0)
        self.lin_std = F[:, : self.n_linear].std(axis=0)
        self.lin_std[self.lin_std == 0] = 1.0
        lin, se = self._split(F)
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        t = (y - self.y_mean) / self.y_std

        K_lin = lin @ lin.T / lin.shape[1]
        D = _sq_dist(se, se)
        self.d_scale = float(np.median(D[D > 0])) if (D > 0).any() else 1.0
        D /= self.d_scale
        weights = np.ones(len(t)) if self.noise_weights is None else np.asarray(self.noise_weights, dtype=float)

        def kernel(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            v_lin, v_se, ls2, v_noise = np.exp(p)
            K_se = np.exp(-0.5 * D / ls2)
            return v_lin * K_lin + v_se * K_se + np.diag(v_noise * weights + _JITTER), K_se

        def neg_log_likelihood(p: np.ndarray) -> tuple[float, np.ndarray]:
            v_lin, v_se, ls2, v_noise = np.exp(p)
            K, K_se = kernel(p)
            terms = likelihood_terms(K, t)
            if terms is None:
                return 1e10, np.zeros_like(p)
            value, W = terms
            # d K / d log(parameter), one per parameter
            dK = (v_lin * K_lin, v_se * K_se, v_se * K_se * (0.5 * D / ls2), np.diag(v_noise * weights))
            return float(value), np.array([-0.5 * np.sum(W * d) for d in dK])

        bounds = list(self.log_bounds)
        starts = [np.clip(np.log([1.0, 0.5, 1.0, 0.05]), *np.array(bounds).T)]  # inside narrowed bounds too
        rng = np.random.default_rng(self.seed)
        low, high = [b[0] / 2 for b in bounds], [b[1] / 2 for b in bounds]
        starts += [rng.uniform(low, high) for _ in range(self.restarts - 1)]
        best = min(
            (minimize(neg_log_likelihood, p0, jac=True, method="L-BFGS-B", bounds=bounds) for p0 in starts),
            key=lambda r: r.fun,
        )
        self.params = best.x
        K, _ = kernel(best.x)
        self.chol = cho_factor(K, lower=True)
        self.alpha = cho_solve(self.chol, t)
        self.train_lin, self.train_se, self.targets = lin, se, t

    def _predict(self, F: np.ndarray) -> np.ndarray:
        return self._posterior(F, with_std=False)[0]

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        """(n,) posterior standard deviation of the predicted error (percent): the model's uncertainty."""
        if not self.fitted:
            raise ValueError(f"{self.name}: predict_std called before fit")
        X = check_genomes(X, self.search_space.n_var)
        self._check_bounds(X)
        return self._posterior(self.features(X), with_std=True)[1]

    def cross_kernel(self, lin: np.ndarray, se: np.ndarray) -> np.ndarray:
        """k(x, training points) without noise, for rows already split and standardised (`_split`)."""
        v_lin, v_se, ls2, _ = np.exp(self.params)
        K = v_lin * lin @ self.train_lin.T / lin.shape[1]
        K += v_se * np.exp(-0.5 * _sq_dist(se, self.train_se) / (self.d_scale * ls2))
        return K

    def _posterior(self, F: np.ndarray, with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        v_lin, v_se, ls2, _ = np.exp(self.params)
        lin, se = self._split(F)
        mean = np.empty(len(F))
        std = np.empty(len(F)) if with_std else None
        for start in range(0, len(F), 4096):  # bounded memory for large candidate sets
            part = slice(start, start + 4096)
            K = self.cross_kernel(lin[part], se[part])
            mean[part] = K @ self.alpha
            if with_std:
                prior = v_lin * np.sum(lin[part] ** 2, axis=1) / lin.shape[1] + v_se
                explained = np.sum(K.T * cho_solve(self.chol, K.T), axis=0)
                std[part] = np.sqrt(np.maximum(prior - explained, 0.0)) * self.y_std
        return mean * self.y_std + self.y_mean, std
