"""Non-dominated sets and hypervolume against hand-computed values, non-finite rows included."""

import numpy as np
import pytest

from codebase.search.indicators import hypervolume, nondominated


def test_nondominated_by_hand():
    F = [[1, 4], [2, 2], [3, 3], [4, 1], [2, 2.5]]
    assert nondominated(F).tolist() == [0, 1, 3]


def test_a_non_finite_row_never_hides_the_front():
    F = [[1, 1], [np.nan, 0], [2, 0], [0, -np.inf], [0.5, 3]]
    assert nondominated(F).tolist() == [0, 2, 4]
    assert nondominated([[np.nan, 1.0]]).tolist() == []


def test_hypervolume_by_hand_ignores_non_finite_rows():
    # (1,3), (2,2), (3,1) against (4,4): 3 + 2 + 1 = 6
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(F, [4, 4]) == pytest.approx(6.0)
    assert hypervolume(np.vstack([F, [[np.nan, 0.0], [0.0, -np.inf], [5.0, 0.0]]]), [4, 4]) == pytest.approx(6.0)


def test_three_objective_hypervolume_by_hand():
    # boxes [0,2]x[0,2]x[1,2] and [1,2]x[0,2]x[0,2] (volume 4 each) overlap in [1,2]x[0,2]x[1,2] (2): 6
    assert hypervolume([[0, 0, 1], [1, 0, 0], [np.nan, 0, 0]], [2, 2, 2]) == pytest.approx(6.0)


def test_two_objective_sweep_equals_pymoo_on_random_sets():
    # the 2-D sweep is our own code; pymoo's HV (its general algorithm) is the independent reference,
    # on sets with dominated points, duplicates, points on and beyond the reference point
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(0)
    ref = np.array([1.0, 1.0])
    for _ in range(100):
        F = rng.uniform(0.0, 1.2, size=(int(rng.integers(1, 40)), 2)).round(2)
        F = np.vstack([F, F[: len(F) // 3], [[1.0, 0.5]]])
        inside = F[np.all(F < ref, axis=1)]
        expected = float(HV(ref_point=ref)(inside)) if len(inside) else 0.0
        assert hypervolume(F, ref) == pytest.approx(expected, abs=1e-12)
