"""A thin adapter around pymoo 0.6 (its import paths moved twice; nothing else imports pymoo).

Integer genomes throughout: two-point crossover and polynomial mutation with rounding, as the
original tool used; NSGA-II for two objectives, NSGA-III with Das-Dennis reference directions for more.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from search_space.base import SearchSpace


def _operators(space: SearchSpace, mutation_eta: float = 1.0):
    from pymoo.operators.crossover.pntx import TwoPointCrossover
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair

    # eta=1: wide integer mutations, the original's `int_pm` setting; prob defaults to 1/n_var per gene
    return TwoPointCrossover(prob=0.9), PM(eta=mutation_eta, repair=RoundingRepair(), vtype=float)


def make_algorithm(space: SearchSpace, n_obj: int, pop_size: int, sampling: np.ndarray,
                   n_offsprings: int | None = None):
    """NSGA-II (2 objectives) or NSGA-III (3+), seeded with `sampling` as its first population."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3

    crossover, mutation = _operators(space)
    kwargs = dict(pop_size=pop_size, n_offsprings=n_offsprings, sampling=np.asarray(sampling, dtype=float),
                  crossover=crossover, mutation=mutation, eliminate_duplicates=True)
    if n_obj <= 2:
        return NSGA2(**kwargs)
    return NSGA3(ref_dirs=reference_directions(n_obj, pop_size), **kwargs)


def reference_directions(n_obj: int, pop_size: int) -> np.ndarray:
    """Das-Dennis directions with the most partitions whose count (C(p + m - 1, m - 1)) still fits the
    population: NSGA-III niches one survivor per direction, so more directions than members leave
    niches empty (pymoo warns)."""
    from math import comb

    from pymoo.util.ref_dirs import get_reference_directions

    partitions = 1
    while comb(partitions + 1 + n_obj - 1, n_obj - 1) <= pop_size:
        partitions += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=partitions)


def _problem(space: SearchSpace, n_obj: int, objectives: Callable[[np.ndarray], np.ndarray]):
    from pymoo.core.problem import Problem

    class GenomeProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=space.n_var, n_obj=n_obj, xl=space.xl.astype(float), xu=space.xu.astype(float))

        def _evaluate(self, x, out, *args, **kwargs):
            out["F"] = objectives(space.canonical(np.rint(x).astype(int)))

    return GenomeProblem()


def minimize(space: SearchSpace, objectives: Callable[[np.ndarray], np.ndarray], n_obj: int,
             initial: np.ndarray, pop_size: int, n_gen: int, seed: int,
             visited: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run the (surrogate) search; returns canonical genomes and objectives of its final population,
    or with `visited=True` of every distinct genome it evaluated on the way."""
    from pymoo.optimize import minimize as pymoo_minimize

    seen_X, seen_F = [], []

    def recording(X: np.ndarray) -> np.ndarray:
        F = objectives(X)
        seen_X.append(X)
        seen_F.append(F)
        return F

    initial = _fill_population(space, initial, pop_size, np.random.default_rng(seed))
    algorithm = make_algorithm(space, n_obj, pop_size, initial)
    res = pymoo_minimize(_problem(space, n_obj, recording), algorithm, ("n_gen", n_gen), seed=seed, verbose=False)
    if visited:
        X, F = np.concatenate(seen_X), np.concatenate(seen_F)
        first = _unique_first(X)
        return X[first], np.asarray(F[first], dtype=float)
    X = space.canonical(np.rint(res.pop.get("X")).astype(int))
    return X, np.asarray(res.pop.get("F"), dtype=float)


def _unique_first(X: np.ndarray) -> np.ndarray:
    _, first = np.unique(X, axis=0, return_index=True)
    return np.sort(first)


def _fill_population(space: SearchSpace, X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The given genomes (at most n) topped up with random ones to n."""
    X = np.asarray(X, dtype=int).reshape(-1, space.n_var)[:n]
    if len(X) < n:
        X = np.concatenate([X, space.sample(n - len(X), rng)])
    return X


def survivors(F: np.ndarray, n: int, seed: int, by_reference_directions: bool = False) -> np.ndarray:
    """Indices of the n rows NSGA-II's environmental selection keeps (non-dominated rank, then crowding),
    or with `by_reference_directions` and 3+ objectives NSGA-III's (rank, then reference-direction niches)."""
    from pymoo.algorithms.moo.nsga2 import RankAndCrowding
    from pymoo.algorithms.moo.nsga3 import ReferenceDirectionSurvival
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem

    F = np.asarray(F, dtype=float)
    if len(F) <= n:
        return np.arange(len(F))
    pop = Population.new(F=F, index=np.arange(len(F)))
    problem = Problem(n_var=1, n_obj=F.shape[1])
    if by_reference_directions and F.shape[1] >= 3:
        survival = ReferenceDirectionSurvival(reference_directions(F.shape[1], n))
    else:
        survival = RankAndCrowding()
    kept = survival.do(problem, pop, n_survive=n, random_state=np.random.default_rng(seed))
    return np.sort(kept.get("index").astype(int))


def offspring(space: SearchSpace, X: np.ndarray, F: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n canonical children of the population (X, F) by NSGA-II mating (tournament, crossover, mutation)."""
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.population import Population

    F = np.asarray(F, dtype=float)
    n_obj = F.shape[1]
    known = {row.tobytes(): f for row, f in zip(space.canonical(np.asarray(X, dtype=int)), F)}
    algorithm = make_algorithm(space, n_obj, len(X), X, n_offsprings=n)
    # the problem answers with the population's true objectives, so tournaments rank on them (setting F
    # on a pymoo Population does not mark it evaluated: the Evaluator would overwrite it)
    problem = _problem(space, n_obj, lambda x: np.array([known[row.tobytes()] for row in x]))
    algorithm.setup(problem, seed=seed, verbose=False)
    pop = Population.new(X=np.asarray(X, dtype=float))
    Evaluator().eval(problem, pop)
    algorithm.ask()  # the initial population, already evaluated
    algorithm.tell(infills=pop)
    children = algorithm.ask()
    return space.canonical(np.rint(children.get("X")).astype(int))
