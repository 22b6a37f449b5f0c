"""The validation split the search uses: a fixed, seeded part of the training set.

The hold-out is fixed per data set (`VALID_SEED`), whatever a run's `--seed`, as OFA's data providers fix
theirs: runs with different seeds score on the same images, and a supernet trained for one of them never
saw the validation images of another.
"""

from __future__ import annotations

import numpy as np

VALID_SEED = 0  # the hold-out's seed (seed 0 is what earlier versions used with the default --seed 0)


def train_validation_split(n_train: int, vld_size: int, seed: int = VALID_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, vld_idx): vld_size indices of range(n_train) drawn with `seed`, and the rest.

    Both sorted int64 arrays, disjoint, together all of range(n_train); the same arguments give the
    same split on every machine (numpy's PCG64 generator). The search evaluates on vld_idx and never
    on the test set unless the user asks for it.
    """
    if n_train < 2:
        raise ValueError(f"cannot hold a validation split out of {n_train} training images")
    if not 0 < vld_size < n_train:
        raise ValueError(f"vld_size must be between 1 and {n_train - 1} (the training set has {n_train} "
                         f"images), got {vld_size}")
    order = np.random.default_rng(seed).permutation(n_train)
    return np.sort(order[vld_size:]), np.sort(order[:vld_size])
