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
