"""Input representations of genomes for the surrogates.

Every encoding canonicalises first (`space.canonical`), so genes of unused layers never leak noise
into the features. Encodings:
- `int`: the canonical integer genome as floats (the original tool's input; any space).
- `onehot`: one indicator per (gene, choice). In the OFA space a skipped layer's kernel and expand
  indicators are all zero (as in OFA's own accuracy predictor) and the depth is implied by them;
  in other spaces every gene gets one indicator per value in [xl, xu].
- `ordinal` (OFA only): per layer slot the 1-based kernel and expand choice index, 0 when the layer
  is skipped; then the depth and resolution indices. Same size as the genome, but a skipped layer
  no longer looks like a layer with the smallest choices.
- `stage` (OFA only): `ordinal` plus per-stage sums of the kernel and expand indices and of the
  active layers, and their totals: coarse "how big is this stage" features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ENCODINGS = ("int", "onehot", "ordinal", "stage")


@dataclass(frozen=True)
class Encoding:
    name: str
    function: Callable[[Any, np.ndarray], np.ndarray]


def _is_ofa(space: Any) -> bool:
    return hasattr(space, "layer_arrays") and hasattr(space, "kernel_sizes")


def _canonical(space: Any, X: np.ndarray) -> np.ndarray:
    if hasattr(space, "canonical"):
        return np.atleast_2d(space.canonical(X))
    return X


def _int(space: Any, X: np.ndarray) -> np.ndarray:
    return _canonical(space, X).astype(float)


def _onehot(space: Any, X: np.ndarray) -> np.ndarray:
    X = _canonical(space, X)
    if _is_ofa(space):
        return _ofa_onehot(space, X)
    xl, xu = np.asarray(space.xl, dtype=int), np.asarray(space.xu, dtype=int)
    offsets = np.concatenate([[0], np.cumsum(xu - xl + 1)])
    F = np.zeros((len(X), offsets[-1]))
    F[np.arange(len(X))[:, None], offsets[:-1] + (X - xl)] = 1.0
    return F


def _ofa_layers(space: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Choice indices: kernel (n,20), expand (n,20), active (n,20), depth (n,5), resolution (n,)."""
    from search_space.ofa import DEPTH_GENES, EXPAND_GENES, KERNEL_GENES, RESOLUTION_GENE

    active = space.active_layers(X)
    return X[:, KERNEL_GENES], X[:, EXPAND_GENES], active, X[:, DEPTH_GENES], X[:, RESOLUTION_GENE]


def _ofa_onehot(space: Any, X: np.ndarray) -> np.ndarray:
    k, e, active, _, r = _ofa_layers(space, X)
    n, n_layers = k.shape
    nk, ne, nr = len(space.kernel_sizes), len(space.expand_ratios), len(space.resolutions)
    rows = np.arange(n)[:, None]
    slots = np.arange(n_layers)[None, :]
    kernel = np.zeros((n, n_layers * nk))
    kernel[rows, slots * nk + k] = active
    expand = np.zeros((n, n_layers * ne))
    expand[rows, slots * ne + e] = active
    res = np.zeros((n, nr))
    res[np.arange(n), r] = 1.0
    return np.concatenate([kernel, expand, res], axis=1)


def _ofa_ordinal(space: Any, X: np.ndarray) -> np.ndarray:
    k, e, active, d, r = _ofa_layers(space, X)
    return np.concatenate([(k + 1) * active, (e + 1) * active, d, r[:, None]], axis=1).astype(float)


def _ofa_stage(space: Any, X: np.ndarray) -> np.ndarray:
    k, e, active, _, _ = _ofa_layers(space, X)
    n = len(X)
    per_stage = [((k + 1) * active).reshape(n, 5, 4), ((e + 1) * active).reshape(n, 5, 4), active.reshape(n, 5, 4)]
    sums = np.concatenate([a.sum(axis=2) for a in per_stage], axis=1)  # (n, 15)
    totals = np.stack([a.sum(axis=(1, 2)) for a in per_stage], axis=1)  # (n, 3)
    return np.concatenate([_ofa_ordinal(space, X), sums, totals], axis=1).astype(float)


_FUNCTIONS: dict[str, Callable[[Any, np.ndarray], np.ndarray]] = {
    "int": _int,
    "onehot": _onehot,
    "ordinal": _ofa_ordinal,
    "stage": _ofa_stage,
}


def fit_encoding(name: str, space: Any) -> Encoding:
    """The named encoding for `space`; ValueError if unknown or if it needs the OFA space."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown encoding '{name}'; choose from {list(ENCODINGS)}")
    if name in ("ordinal", "stage") and not _is_ofa(space):
        raise ValueError(
            f"encoding '{name}' needs the OFA search space; use 'int' or 'onehot' for "
            f"'{getattr(space, 'name', type(space).__name__)}'"
        )
    return Encoding(name, _FUNCTIONS[name])


def encode(encoding: Encoding, space: Any, X: np.ndarray) -> np.ndarray:
    """(n, n_features) float features of (n, n_var) integer genomes."""
    return encoding.function(space, np.atleast_2d(np.asarray(X, dtype=int)))


class Projection:
    """Centre features and rotate them onto the directions the training data spans.

    One-hot features are linearly dependent (and some columns are constant), which makes the
    linear tail of an RBF or the regression of a GP singular. Keeping only the principal
    directions with non-zero variance removes that, and is a pure rotation (distances and linear
    models unchanged) when the data already span every direction.
    """

    def __init__(self, F: np.ndarray, rtol: float = 1e-9, max_rank: int | None = None) -> None:
        self.mean = F.mean(axis=0)
        _, s, vt = np.linalg.svd(F - self.mean, full_matrices=False)
        keep = np.flatnonzero(s > rtol * max(float(s[0]) if len(s) else 0.0, 1e-300))  # largest first
        self.basis = vt[keep[:max_rank]].T  # (n_features, rank)

    @property
    def rank(self) -> int:
        return self.basis.shape[1]

    def __call__(self, F: np.ndarray) -> np.ndarray:
        return (F - self.mean) @ self.basis


def choose_projection(F: np.ndarray, y: np.ndarray, fit_predict: Callable, seed: int = 0,
                      folds: int = 5, half_when_few: bool = False) -> Projection:
    """The spanned directions of F, or only its n/2 leading ones, whichever ranks better out of fold.

    A linear part with about as many terms as points interpolates the data on its own, steered by the
    weakest directions (the RBF's tau fell to 0.2-0.3 at 40-50 architectures in the 46-gene OFA space;
    the GP predicted a constant below 48). Keeping the leading half fixes that for integer features but
    loses signal spread evenly over many one-hot columns, so a 5-fold Kendall tau of both decides.
    `fit_predict(Z_train, y_train, Z_test)` fits the model on projected features. Below 30 points the
    folds are too small to tell (measured: a worse pick at 20), so `half_when_few` decides.
    """
    from scipy.stats import kendalltau

    full = Projection(F)
    n = len(F)
    if full.rank <= n // 2:
        return full
    if n < 30:
        return Projection(F, max_rank=max(1, n // 2)) if half_when_few else full
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    scores = []
    for half in (False, True):
        pred = np.empty(n)
        for test in parts:
            train = np.setdiff1d(np.arange(n), test)
            fold = Projection(F[train], max_rank=len(train) // 2 if half else None)
            pred[test] = fit_predict(fold(F[train]), y[train], fold(F[test]))
        tau = kendalltau(pred, y).statistic
        scores.append(-1.0 if np.isnan(tau) else tau)
    return Projection(F, max_rank=n // 2) if scores[1] > scores[0] else full
