"""The small interface every search space implements.

A search space maps architectures to fixed-length integer genomes so that one genetic search
(pymoo) and one set of surrogates serve every space. Genomes are numpy integer arrays of shape
(n_var,) or (n, n_var) with gene i in [xl[i], xu[i]].
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SearchSpace(Protocol):
    name: str
    n_var: int
    xl: np.ndarray
    xu: np.ndarray

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n random canonical genomes, shape (n, n_var)."""

    def initialize(self, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        """The initial design: n_doe distinct canonical genomes."""

    def canonical(self, X: np.ndarray) -> np.ndarray:
        """Genomes with meaningless genes zeroed, so one architecture has one genome."""

    def encode(self, arch: dict[str, Any]) -> np.ndarray:
        """Architecture description (what a .subnet file holds) to genome."""

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """Genome to architecture description."""


def unique_rows(X: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row, in order of appearance."""
    X = np.asarray(X)
    if len(X) == 0:
        return np.zeros(0, dtype=int)
    _, first = np.unique(X, axis=0, return_index=True)
    return np.sort(first)


def rows_in(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Boolean mask: which rows of X also appear as rows of Y."""
    X, Y = np.asarray(X), np.asarray(Y)
    if len(X) == 0 or len(Y) == 0:
        return np.zeros(len(X), dtype=bool)
    seen = {row.tobytes() for row in np.ascontiguousarray(Y, dtype=np.int64)}
    return np.array([row.tobytes() in seen for row in np.ascontiguousarray(X, dtype=np.int64)])
