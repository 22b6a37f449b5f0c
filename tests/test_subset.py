"""Subset selection of surrogate candidates: hand-computed hypervolume contributions."""

import numpy as np
import pytest

from codebase.search.subset import select_subset

REF = np.array([10.0, 10.0])
ARCHIVE = np.array([[9.0, 9.0]])
# c0 alone adds 8*8 - 1 = 63; after c0, c1 adds (2-1.5)*(10-3) = 3.5 and c2 adds (2-1)*(10-8) = 2.
# Bands over the 2nd objective [2, 8] with k=2: [2, 5) holds c0 (63) and c1 (alone 8.5*7 - 1 = 58.5),
# [5, 8] holds c2 (alone 9*2 - 1 = 17).
CANDIDATES = np.array([[2.0, 2.0], [1.5, 3.0], [1.0, 8.0]])


def test_greedy_hv_takes_the_two_largest_successive_contributions():
    assert select_subset("hv", CANDIDATES, ARCHIVE, 2, REF).tolist() == [0, 1]


def test_hv_bands_takes_the_best_of_each_complexity_band():
    assert select_subset("hv_bands", CANDIDATES, ARCHIVE, 2, REF).tolist() == [0, 2]


def test_hv_bands_fills_up_with_greedy_hv_when_bands_are_empty():
    # k=3 bands over [2, 8]: [2, 4) holds c0 and c1, [4, 6) nothing, [6, 8] c2; the third pick is c1
    assert select_subset("hv_bands", CANDIDATES, ARCHIVE, 3, REF).tolist() == [0, 2, 1]


def test_hv_bands_without_any_gain_still_returns_k_distinct_picks():
    dominated = np.array([[9.5, 9.5], [9.2, 9.8], [9.9, 9.1], [9.6, 9.6]])
    chosen = select_subset("hv_bands", dominated, ARCHIVE, 3, REF)
    assert len(chosen) == 3 and len(set(chosen.tolist())) == 3


def test_unknown_method_is_a_value_error():
    with pytest.raises(ValueError, match="unknown subset selection"):
        select_subset("best", CANDIDATES, ARCHIVE, 2, REF)


def test_spread_fills_the_largest_gaps_along_the_complexity_axis():
    # archive front complexities {0, 10}; candidates' complexities 1, 5, 7.5, 3.5 (1st objective irrelevant).
    # Pick 1: 5 leaves gaps (5, 5), std 0. Pick 2 with {0, 5, 10}: 7.5 -> gaps (5, 2.5, 2.5), std 1.179;
    # 3.5 -> (3.5, 1.5, 5), std 1.434; 1 -> (1, 4, 5), std 1.700. Pick 3 with {0, 5, 7.5, 10}:
    # 3.5 -> (3.5, 1.5, 2.5, 2.5), std 0.707; 1 -> (1, 4, 2.5, 2.5), std 1.061.
    archive = np.array([[5.0, 0.0], [1.0, 10.0]])
    candidates = np.array([[3.0, 1.0], [3.0, 5.0], [3.0, 7.5], [3.0, 3.5]])
    assert select_subset("spread", candidates, archive, 3, REF * 2).tolist() == [1, 2, 3]


def _two_objective_set():
    rng = np.random.default_rng(7)
    flops = rng.uniform(100, 600, 60)
    C = np.column_stack([30 - 0.02 * flops + rng.normal(0, 0.5, 60), flops])
    return C, np.array([[29.0, 300.0], [25.0, 650.0], [31.0, 150.0]]), np.array([35.0, 700.0])


@pytest.mark.parametrize("method, picks", [("hv", [9, 37, 56, 12, 58, 0, 39, 45]),
                                           ("hv_bands", [37, 39, 40, 9, 42, 0, 2, 5]),
                                           ("spread", [45, 27, 15, 31, 37, 44, 16, 38])])
def test_two_objectives_pick_as_before(method, picks):
    # regression values of the 1-complexity-objective rules (the 2-objective benchmark depends on them)
    C, archive, ref = _two_objective_set()
    assert select_subset(method, C, archive, 8, ref).tolist() == picks


def _three_objective_set(params_crowd: bool):
    """Candidates with FLOPs and params independent (or params mostly near 5), lower error with more of both."""
    rng = np.random.default_rng(0)
    n = 120 if params_crowd else 200
    flops = rng.uniform(100, 600, n)
    params = np.where(np.arange(n) % 4 == 0, rng.uniform(2, 8, n), rng.normal(5, 0.1, n)) if params_crowd \
        else rng.uniform(2, 8, n)
    error = 40 - 0.02 * flops - params + rng.normal(0, 0.3, n)
    archive = np.array([[40.0, 650.0, 9.0], [39.0, 700.0, 8.5]])
    return np.column_stack([error, flops, params]), archive, np.array([45.0, 700.0, 9.5])


def _empty_bands(values: np.ndarray, over: np.ndarray, bands: int = 8) -> int:
    edges = np.linspace(over.min(), over.max(), bands + 1)
    return bands - len(set(np.digitize(values, edges[1:-1]).tolist()))


@pytest.mark.parametrize("method, params_crowd", [("hv_bands", False), ("spread", True)])
def test_three_objectives_picks_cover_every_complexity_objective(method, params_crowd):
    # bands (hv_bands) or gaps (spread) along FLOPs alone left 6 and 5 of 8 params bands empty here
    C, archive, ref = _three_objective_set(params_crowd)
    picks = select_subset(method, C, archive, 8, ref)
    assert len(set(picks.tolist())) == 8
    assert _empty_bands(C[picks, 2], C[:, 2]) <= 4  # at most half empty in either objective
    assert _empty_bands(C[picks, 1], C[:, 1]) <= 4
    assert C[picks, 2].std() > 0.5 * C[:, 2].std()


@pytest.mark.parametrize("method", ["hv_bands", "spread"])
def test_four_objectives_picks_are_deterministic_and_distinct(method):
    C, archive, ref = _three_objective_set(False)
    C = np.column_stack([C, C[:, 1] * 0.01 + C[:, 2]])  # a latency-like 3rd complexity objective
    archive, ref = np.column_stack([archive, [16.0, 15.5]]), np.r_[ref, 17.0]
    first = select_subset(method, C, archive, 8, ref)
    assert len(set(first.tolist())) == 8
    assert select_subset(method, C, archive, 8, ref).tolist() == first.tolist()


def test_spread_with_many_objectives_takes_the_largest_hole_first():
    # front complexity (0, 0) and (1, 1) (scaled); candidates at the corners and the middle: (1, 0) and (0, 1)
    # are 1 from the front, the middle 0.707; so the corners first, then the middle
    archive = np.array([[5.0, 0.0, 0.0], [5.0, 10.0, 10.0]])
    C = np.array([[1.0, 5.0, 5.0], [1.0, 10.0, 0.0], [1.0, 0.0, 10.0]])
    assert select_subset("spread", C, archive, 3, np.array([20.0, 20.0, 20.0])).tolist() == [1, 2, 0]


@pytest.mark.parametrize("method", ["hv_bands", "spread"])
def test_order_of_the_complexity_objectives_does_not_decide_the_picks(method):
    C, archive, ref = _three_objective_set(False)
    swap = [0, 2, 1]  # --sec_obj params,flops instead of flops,params
    assert select_subset(method, C[:, swap], archive[:, swap], 8, ref[swap]).tolist() == \
        select_subset(method, C, archive, 8, ref).tolist()


def test_surrogate_quality_of_equal_values_is_null_with_the_reason():
    """Two new evaluations of equal true error leave rho and tau undefined: null, and the stats say why."""
    from codebase.search.engine import model_quality

    q = model_quality(np.array([10.0, 12.0]), np.array([87.456, 87.456]), 2)
    assert q["rho"] is None and q["tau"] is None
    assert q["rmse"] == pytest.approx(np.sqrt((77.456 ** 2 + 75.456 ** 2) / 2))
    assert q["reason"] == "the new evaluations' true values are all equal: rank correlation undefined"
    q = model_quality(np.array([10.0, 12.0, 11.0]), np.array([20.0, 30.0, 25.0]), 3)
    assert q["tau"] == pytest.approx(1.0) and "reason" not in q
