"""The pymoo adapter: mating ranks on the population's true objectives; NSGA-III fits its population."""

import warnings

import numpy as np

from codebase.search.pymoo_adapter import make_algorithm, offspring, reference_directions, survivors
from search_space import OFASearchSpace


def test_mating_selects_by_the_given_objectives():
    space = OFASearchSpace()
    X = space.sample(30, np.random.default_rng(0))
    F = np.column_stack([np.arange(30.0), np.arange(30.0)])  # row i dominates every row after it
    children = [offspring(space, X, sign * F, 40, seed=5) for sign in (1, -1)]
    assert not np.array_equal(children[0], children[1])  # the objectives steer the tournaments
    # with F, binary tournaments favour the first rows: children share more genes with the best ten
    # than with the worst ten; with -F the other way round
    def closeness(C, rows):
        return np.mean([(C[:, None, :] == X[rows][None]).mean(axis=2).max(axis=1)])
    best, worst = np.arange(10), np.arange(20, 30)
    assert closeness(children[0], best) > closeness(children[0], worst)
    assert closeness(children[1], worst) > closeness(children[1], best)


def test_reference_directions_fit_the_population():
    assert len(reference_directions(3, 20)) == 15  # 4 partitions: C(6, 2) = 15; 5 would give 21
    assert len(reference_directions(3, 100)) == 91  # 12 partitions
    assert len(reference_directions(4, 20)) == 20  # 3 partitions: C(6, 3) = 20
    space = OFASearchSpace()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_algorithm(space, 3, 20, space.sample(20, np.random.default_rng(0)))


def test_reference_direction_survival_keeps_the_extremes_of_a_three_objective_front():
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(3), size=60)  # a non-dominated set on the simplex, corners included
    W[:3] = np.eye(3)
    kept = survivors(W, 15, seed=0, by_reference_directions=True)
    assert len(kept) == 15 and {0, 1, 2} <= set(kept.tolist())
