"""Pareto utilities: non-dominated sets, hypervolume and its fixed reference point (all minimisation)."""

from __future__ import annotations

import numpy as np


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of F (first front), ascending. A row with a NaN or infinite
    value is never on it (NaN compares false, so the sort would let such a row hide the real front)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    finite = np.flatnonzero(np.isfinite(F).all(axis=1)) if F.ndim == 2 else np.zeros(0, dtype=int)
    if len(finite) == 0:
        return np.zeros(0, dtype=int)
    return np.sort(finite[NonDominatedSorting().do(F[finite], only_non_dominated_front=True)])


def hypervolume(F: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by F and bounded by ref_point; points beyond the reference add nothing."""
    F, ref = np.asarray(F, dtype=float), np.asarray(ref_point, dtype=float)
    F = F[np.isfinite(F).all(axis=1) & np.all(F < ref, axis=1)] if len(F) else F
    if len(F) == 0:
        return 0.0
    F = F[nondominated(F)]
    if F.shape[1] == 2:  # exact sweep, much faster than the general algorithm
        F = F[np.argsort(F[:, 0])]
        widths = np.diff(np.r_[F[:, 0], ref[0]])
        return float(np.sum(widths * (ref[1] - F[:, 1])))
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=ref)(F))


def reference_point(F: np.ndarray, margin: float = 0.01) -> np.ndarray:
    """A fixed reference point from the initial design: its nadir pushed out by `margin` of the range."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        raise ValueError("cannot derive a hypervolume reference point: every initial evaluation failed")
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return hi + margin * span
