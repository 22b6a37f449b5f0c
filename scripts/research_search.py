"""Research harness for issue #4: variants of MSuNAS on the OFA-oracle sample-efficiency benchmark.

    python scripts/research_search.py --variant local:100 --predictor gp_additive --seeds 0 1 --set n_doe=50

Variants: `base` (the engine as is), `local:KEEP` (the inner search's population joined by the KEEP
best predicted one-gene neighbours of the archive front), `bands` (shorthand for subset=hv_bands),
`doe_flops` (the initial design spread evenly over FLOPs: one random architecture per FLOPs band out
of 40 x n_doe samples), `doe_balanced:TRIES` (every gene's values equally often, the least correlated of TRIES such
designs), `doe_mixture:A` (each initial architecture draws its own kernel, expand and
depth propensities from Dirichlet(A), then its genes from them), `confidence:K` (the searched error
is the prediction minus K predicted std, K of either sign; the engine's `explore` takes K > 0 only),
`rank_fill` (the inner search starts from the archive's best `inner_pop` by non-dominated rank and
crowding, not from its front alone),
`mutation:M` (the inner search mutates M genes per child on average instead of 1), `block_mutation:R` (a
share R of the inner search's children also get every kernel size, or every expand ratio, of one stage or of
the whole network set to one value), `crossover:ux` /
`crossover:none` (the inner search's uniform crossover, or none, instead of two-point), `res_strata:K`
(K of the picks from inner searches held at one input resolution each, the resolutions in turn, each
pick the best predicted gain over the archive's front at its resolution), `portfolio:NAME:K` (K of the
picks by a second surrogate NAME, with its own inner search and subset selection), `early_explore:K:E`
(the searched error is the prediction minus K predicted std in the first E iterations only), `trust:R` (the
surrogate search held within R genes of the archive's front), `reversed`
(the engine unchanged but each iteration's picks evaluated and archived in reverse order: the same algorithm,
so its spread against `base` is the noise of a comparison), `bands:K` (hv_bands with K complexity bands
instead of one per pick, the K band winners of largest predicted hypervolume gain), `vertical:P` (hv_bands scoring
a candidate by its predicted error drop below the archive front at no more FLOPs times (hypervolume gain / drop)
** P: P = 0 the drop alone, P = 1 the engine's hypervolume gain), `ehvi:S` (hv_bands whose band winners are chosen by
their expected hypervolume gain under the surrogate's posterior, S Monte Carlo draws, instead of the gain of the mean),
`thompson:K` (K of the picks from an inner search on one function drawn from gp_additive's posterior per iteration:
batch Thompson sampling), `calibrate:W` (the searched error raised by beta x genes from the nearest archive
genome, beta fitted on the last W iterations' picks: their true error minus the prediction at pick time against
how far they leapt), `front_load:N` (N picks in iteration 1 instead of n_iter; set `iterations` so that the total
stays 340), `canonical_dedup` (the inner search's duplicate elimination compares architectures, canonical genomes,
instead of raw genomes).
Predictors registered here only: `mean_rbf_gpa` (mean of rbf and gp_additive), `gpa_onehot_lin`
(gp_additive with its linear part on one-hot features), `gpa_complexity` (linear part plus log
FLOPs and log params), `gpa_ard` / `gpa_ard_p03` (gp_additive with one squared-exponential length
scale per layer gene group, ARD, log scales tied to their mean by a Gaussian prior of std 1 / 0.3),
`gpa_trend` (gp_additive on the residual of a least-squares line in log FLOPs: the model learns
efficiency, not size), `gpa_log` (gp_additive on log error), `mlp_ens` (a deep ensemble of 5 small MLPs on one-hot
features), `gpa_interp` (gp_additive with its noise variance held at most 1e-4: it interpolates the
deterministic oracle), `gpa_res` (linear part plus each layer's ordinal choices times the centred
resolution index), `gpa_act` (linear part on 0-based kernel and expand indices times active, plus
the active indicators: switching a layer on and growing its kernel get separate coefficients),
`gpa_smooth01` / `gpa_smooth05` (noise variance held at least 0.01 / 0.05 of the error's variance),
`gpa_ke` (linear part plus one indicator per active layer and (kernel, expand) pair), `gpa_het1` /
`gpa_het0.01` / `gpa_het0.0001` (gp_additive trusting the front: each training point's noise variance is
multiplied by 1 + gap / S, gap its error above the best error at no more FLOPs), `gpa_freeze100` /
`gpa_freeze140` / `gpa_freeze180` (gp_additive whose hyper-parameters are fitted until the archive holds 100 / 140
/ 180 points, then kept), `gpa_2se` (gp_additive plus a second squared-exponential part with a length scale of at most
about one gene change: local interactions), `gpa_macro` (plus a linear part of its own variance on the resolution and
stage depths), `gpa_boldC` (the linear part's share of the posterior mean times C; C in 0.75 0.9 1.1 1.5 2),
`gpa_bold1.25_until140` / `gpa_bold1.5_until140` (so only while fitted on at most 140 points), `gpa_se_ordinal` (the
squared-exponential part on the ordinal encoding instead of one-hot).
`--trajectory MODEL ...` prints the normalised hypervolume after every other iteration instead; MODEL may also
be an oracle-informed diagnostic (`perfect`, `ridge_random20k`, `mlp_random20k`, `gpa_random1000`: see
`register_oracle_informed`), which is told the oracle's answers and so measures a bound, not a method.
`--one_step MODEL ...` screens models without searching: on each seed's default run it runs
diagnose_search's one-step test (40 single-gene neighbours of the final front picked by each model).

Each variant is a small patch around the unchanged engine (`codebase.search.engine`), applied only
inside this process: extra candidates for the surrogate search, or a predictor registered here.
Scores are the normalised hypervolume of `scripts/bench_search.py` (same reference front, same
protocol: 340 true evaluations). Results are appended to --out as markdown table rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from codebase.cli import OneLineParser  # noqa: E402
from codebase.io import read_json  # noqa: E402
from codebase.search import pymoo_adapter  # noqa: E402
from codebase.search.subset import select_subset  # noqa: E402
from search_space.base import rows_in  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_search import DEFAULT_ORACLE, REFERENCE, normalised_hv  # noqa: E402
from diagnose_search import single_gene_neighbours  # noqa: E402

_ORIGINAL_MINIMIZE = pymoo_adapter.minimize


def neighbours(space, X: np.ndarray) -> np.ndarray:
    """Every canonical genome one gene away from a row of X (distinct, sorted, excluding X itself)."""
    X = np.atleast_2d(X)
    if len(X) == 0:
        return np.zeros((0, space.n_var), dtype=int)
    N = np.unique(single_gene_neighbours(space, X)[0], axis=0)
    return N[~rows_in(N, X)]


def with_local_candidates(keep: int):
    """Inner search whose final population is joined by the best `keep` predicted one-gene neighbours
    of the archive front (the search's initial population): a trust region around what is known."""

    def minimize(space, objectives, n_obj, initial, pop_size, n_gen, seed, visited=False):
        X, F = _ORIGINAL_MINIMIZE(space, objectives, n_obj, initial, pop_size, n_gen, seed, visited=visited)
        N = neighbours(space, np.asarray(initial, dtype=int))
        if len(N):
            FN = objectives(N)
            best = pymoo_adapter.survivors(FN, keep, seed)
            X, F = np.concatenate([X, N[best]]), np.concatenate([F, FN[best]])
        return X, F

    return minimize


def with_flops_spread_design(original):
    """OFASearchSpace.initialize replaced: smallest, largest, then one random architecture per FLOPs band."""

    def initialize(space, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        from codebase.search.objectives import parse_objectives

        X = original(space, 40 * n_doe, rng)  # smallest, largest, then distinct random ones
        flops = parse_objectives("flops", space, 1000)[1].compute(X)
        edges = np.linspace(flops.min(), flops.max(), n_doe - 1)
        band = np.digitize(flops, edges[1:-1])
        picks = [0, 1]
        for b in range(n_doe - 2):
            members = np.flatnonzero(band == b)
            members = members[members > 1]
            if len(members):
                picks.append(int(rng.choice(members)))
        rest = np.setdiff1d(np.arange(len(X)), picks)  # empty bands: random architectures instead
        picks += rng.choice(rest, n_doe - len(picks), replace=False).tolist()
        return X[picks]

    return initialize


def with_mixture_design(original, alpha: float):
    """OFASearchSpace.initialize replaced: smallest, largest, then architectures drawn in two stages. Each draws
    its own propensities for the kernel sizes, the expand ratios and the depths (Dirichlet(alpha), one vector
    each), then every gene from them; the resolution stays uniform. Uniform genes average out over 20 layers, so
    a uniform design barely varies in its mean kernel size, expand ratio or depth (which the near-additive
    oracle mostly depends on); this one reaches the corners: all-small kernels and deep, all-large and shallow."""
    from search_space.ofa import DEPTH_GENES, EXPAND_GENES, KERNEL_GENES, RESOLUTION_GENE

    def initialize(space, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        from search_space.base import unique_rows

        X = original(space, 2, rng)
        while len(X) < n_doe:
            x = np.zeros(space.n_var, dtype=int)
            for genes, n in ((KERNEL_GENES, len(space.kernel_sizes)), (EXPAND_GENES, len(space.expand_ratios)),
                             (DEPTH_GENES, len(space.depths))):
                x[genes] = rng.choice(n, size=len(genes), p=rng.dirichlet(np.full(n, alpha)))
            x[RESOLUTION_GENE] = rng.integers(len(space.resolutions))
            X = np.concatenate([X, space.canonical(x[None])])
            X = X[np.sort(unique_rows(X))]
        return X

    return initialize


def with_balanced_design(original, tries: int):
    """OFASearchSpace.initialize replaced: smallest, largest, then a balanced design: every gene takes each of its
    values equally often (a random permutation of a balanced column per gene, as a Latin hypercube does for
    continuous inputs), the best of `tries` such designs by the mean absolute correlation between two columns
    of its `ordinal` features (the largest is a depth gene's with its stage's last layers, the same in every
    design). Uniform draws leave some choices of a layer rare in 100 architectures and their effects correlated,
    which is what the surrogate's linear part has to separate."""
    from acc_predictor.encoding import encode, fit_encoding
    from search_space.base import unique_rows

    def initialize(space, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        base = original(space, 2, rng)
        ordinal = fit_encoding("ordinal", space)
        best, best_corr = None, np.inf
        for _ in range(tries):
            cols = [rng.permutation(np.resize(np.arange(lo, hi + 1), n_doe - 2))
                    for lo, hi in zip(space.xl, space.xu)]
            X = np.concatenate([base, np.column_stack(cols)])
            if len(unique_rows(space.canonical(X))) < n_doe:
                continue
            F = encode(ordinal, space, X)
            F = F[:, F.std(axis=0) > 0]
            C = np.corrcoef(F.T)
            corr = np.abs(C[np.triu_indices_from(C, 1)]).mean()
            if corr < best_corr:
                best, best_corr = X, corr
        if best is None:
            raise ValueError("no balanced design of distinct architectures found")
        return best

    return initialize


def with_confidence(k: float):
    """MSuNAS._predict replaced: the error is the prediction minus k predicted std, for k of either sign."""

    def predict(self, models, X, explore=0.0):
        cols = [models[j].predict(X) if j in models else o.compute(X) for j, o in enumerate(self.objectives)]
        F = np.column_stack(cols).astype(float)
        F[:, 0] -= k * models[0].predict_std(X)
        return F

    return predict


def with_rank_fill(original):
    """MSuNAS._surrogate_picks with the inner search started from the archive's best inner_pop genomes
    (NSGA-II's survival: non-dominated rank, then crowding) instead of its non-dominated front only."""
    from codebase.search import engine

    def picks(self, models, archive, n, ref_point, seed):
        front_only = engine.nondominated
        engine.nondominated = lambda F: pymoo_adapter.survivors(F, min(self.s.inner_pop, len(F)), seed)
        try:
            return original(self, models, archive, n, ref_point, seed)
        finally:
            engine.nondominated = front_only

    return picks


def with_mutation_rate(genes: float):
    """pymoo_adapter._operators with PM's per-gene probability genes / n_var (the default is 1 / n_var)."""

    def operators(space, mutation_eta: float = 1.0):
        from pymoo.operators.crossover.pntx import TwoPointCrossover
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair

        return TwoPointCrossover(prob=0.9), PM(eta=mutation_eta, prob_var=genes / space.n_var,
                                               repair=RoundingRepair(), vtype=float)

    return operators


def with_block_mutation(rate: float):
    """pymoo_adapter._operators whose mutation, after PM, gives a share `rate` of the children one block move:
    every kernel size, or every expand ratio, of one stage (or, one time in four, of the whole network) set to
    one value. Gene-wise operators cannot make these compound moves (all-small kernels, uniformly wide), which
    separate the archive's front from the true one."""

    def operators(space, mutation_eta: float = 1.0):
        from pymoo.core.mutation import Mutation
        from pymoo.operators.crossover.pntx import TwoPointCrossover
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair

        from search_space.ofa import EXPAND_GENES, KERNEL_GENES, N_STAGES

        class BlockMutation(Mutation):
            def __init__(self):
                super().__init__()
                self.pm = PM(eta=mutation_eta, repair=RoundingRepair(), vtype=float)

            def _do(self, problem, X, *args, random_state=None, **kwargs):
                rng = random_state
                X = self.pm._do(problem, X, *args, random_state=rng, **kwargs)
                X = np.clip(np.round(X), problem.xl, problem.xu)
                for i in np.flatnonzero(rng.random(len(X)) < rate):
                    genes, n = ((KERNEL_GENES, len(space.kernel_sizes)) if rng.random() < 0.5
                                else (EXPAND_GENES, len(space.expand_ratios)))
                    genes = genes.reshape(N_STAGES, -1)
                    block = genes.ravel() if rng.random() < 0.25 else genes[rng.integers(N_STAGES)]
                    X[i, block] = rng.integers(n)
                return X

        return TwoPointCrossover(prob=0.9), BlockMutation()

    return operators


def with_crossover(kind: str):
    """pymoo_adapter._operators with uniform crossover (`ux`: each gene from either parent, instead of two
    contiguous stage segments) or none (`none`: children are mutated copies)."""

    def operators(space, mutation_eta: float = 1.0):
        from pymoo.operators.crossover.nox import NoCrossover
        from pymoo.operators.crossover.ux import UniformCrossover
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair

        crossover = {"ux": lambda: UniformCrossover(prob=0.9), "none": NoCrossover}[kind]()
        return crossover, PM(eta=mutation_eta, repair=RoundingRepair(), vtype=float)

    return operators


def with_resolution_strata(original, k: int):
    """MSuNAS._surrogate_picks with k of the n picks spent on per-resolution fronts: for the next k input
    resolutions in turn, an inner search held at that resolution (a genome at another one is infeasible),
    started from the archive's front at that resolution (topped up with the whole front moved to it), and
    its candidate of largest predicted hypervolume gain over the archive's front at that resolution. The
    input size scales every layer, so each resolution is its own basin of good designs; this spends a
    fixed share of the budget on the basins the global front has left."""
    from codebase.search.engine import nondominated
    from search_space.ofa import RESOLUTION_GENE

    def picks(self, models, archive, n, ref_point, seed):
        main = original(self, models, archive, n - k, ref_point, seed)
        chosen = [main]
        n_res = int(self.space.xu[RESOLUTION_GENE]) + 1
        for j in range(k):
            r = (len(archive.X) // self.s.n_iter * k + j) % n_res  # next resolutions in turn

            def held(X, r=r):
                F = self._predict(models, X, self.s.explore)
                F[X[:, RESOLUTION_GENE] != r] = 1e9
                return F

            at_r = archive.X[:, RESOLUTION_GENE] == r
            start = archive.X[at_r][nondominated(archive.F[at_r])] if at_r.any() else archive.X[:0]
            moved = archive.X[nondominated(archive.F)].copy()
            moved[:, RESOLUTION_GENE] = r
            start = np.unique(np.concatenate([start, self.space.canonical(moved)]), axis=0)
            X, F = _ORIGINAL_MINIMIZE(self.space, held, len(self.objectives), start, self.s.inner_pop,
                                      self.s.inner_gens, seed + 1 + j)
            X = np.unique(X[X[:, RESOLUTION_GENE] == r], axis=0)
            X = X[~rows_in(X, np.concatenate([archive.X, *chosen]))]
            if not len(X):
                continue
            F = self._predict(models, X, self.s.explore)
            ref_front = archive.F[at_r] if at_r.any() else archive.F[:0]
            best = select_subset("hv", F, ref_front, 1, ref_point)
            chosen.append(X[best])
        return np.concatenate(chosen)

    return picks


def with_portfolio(original, name: str, k: int):
    """MSuNAS._surrogate_picks with k of the n picks made by a second surrogate `name` (its own inner
    search and subset selection), the rest by the run's predictor: models of other inductive biases
    extrapolate differently, so the second one's picks explore where the first one is sure."""
    from acc_predictor import get_acc_predictor

    def picks(self, models, archive, n, ref_point, seed):
        main = original(self, models, archive, n - k, ref_point, seed)
        other = dict(models)
        other[0] = get_acc_predictor(name, search_space=self.space, seed=seed).fit(archive.X, archive.F[:, 0])
        extra = original(self, other, archive, k, ref_point, seed + 1)
        extra = extra[~rows_in(extra, main)]  # the engine tops up with random architectures if any repeat
        return np.concatenate([main, extra])

    return picks


def with_early_exploration(original, k: float, iterations: int):
    """MSuNAS._surrogate_picks optimising error minus k predicted std in the first `iterations` iterations
    only (when the archive still holds the initial design's basins), then the plain prediction."""

    def picks(self, models, archive, n, ref_point, seed):
        early = len(archive.X) < self.s.n_doe + iterations * self.s.n_iter
        explore, self.s.explore = self.s.explore, (k if early else self.s.explore)
        try:
            return original(self, models, archive, n, ref_point, seed)
        finally:
            self.s.explore = explore

    return picks


def with_trust_region(original_picks, original_predict, radius: int):
    """MSuNAS's surrogate search held within `radius` genes (canonical genomes) of the archive's front: the inner
    search sees each gene beyond that as 100 error points worse, so its candidates stay where the surrogate has
    data nearby. Measured because every surrogate leaps about 19 genes out of the random design in iteration 1,
    and gp_additive's leaps land short of the good tail (--trajectory)."""
    from diagnose_search import genes_apart

    from codebase.search.indicators import nondominated

    centre: list[np.ndarray] = []

    def picks(self, models, archive, n, ref_point, seed):
        centre[:] = [self.space.canonical(archive.X[nondominated(archive.F)])]
        try:
            return original_picks(self, models, archive, n, ref_point, seed)
        finally:
            centre.clear()

    def predict(self, models, X, explore=0.0):
        F = original_predict(self, models, X, explore)
        if centre:
            F[:, 0] += 100.0 * np.maximum(genes_apart(self.space.canonical(X), centre[0]) - radius, 0)
        return F

    return picks, predict


def with_vertical_bands(power: float):
    """subset._banded_hv scoring each candidate by its predicted error drop below the archive front's best error at
    no more FLOPs, times (its hypervolume gain / that drop) ** power: power 0 ranks by the drop alone (how much
    more accurate, whatever the gap it fills), power 1 is the hypervolume gain (the engine's choice, which also
    pays for filling gaps between front points, where the run's front is already dense)."""
    from codebase.search import subset

    def banded(C, front, k, ref):
        Cn, Fn, ref_n = subset.scaled(C, front, ref)
        hv_gain = subset.hv_gains(Cn, Fn, ref_n)
        best_at = np.array([Fn[Fn[:, 1] <= c[1], 0].min(initial=1.0) for c in Cn])
        drop = np.maximum(best_at - Cn[:, 0], 0.0)
        score = drop * (hv_gain / np.maximum(drop, 1e-12)) ** power
        score[hv_gain <= 1e-12] = 0.0
        return subset.greedy_fill(C, front, subset.band_winners(C[:, 1], score, k), k, ref)

    return banded


def with_band_count(bands: int):
    """subset._banded_hv with `bands` complexity bands instead of one per pick: the band winners of largest
    predicted hypervolume gain are taken (all of them when there are fewer bands than picks, the rest then
    greedy hv)."""
    from codebase.search import subset

    def banded(C, front, k, ref):
        gains = subset.hv_gains(*subset.scaled(C, front, ref))
        winners = subset.band_winners(C[:, 1], np.where(gains > 1e-12, gains, 0.0), bands)
        top = set(sorted(winners, key=lambda i: -gains[i])[:k])
        chosen = [i for i in winners if i in top]  # in band order, as the engine's hv_bands
        return subset.greedy_fill(C, front, chosen, k, ref)

    return banded


def staircase_gains(P: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Each 2-objective point's hypervolume contribution to `front` alone (both scaled, reference point (1, 1)):
    the area between the front's staircase and the point, summed over the staircase's segments."""
    front = front[np.all(front < 1.0, axis=1)]
    front = front[np.argsort(front[:, 1], kind="stable")]
    lows = np.r_[-np.inf, front[:, 1]]
    highs = np.r_[front[:, 1], 1.0]
    level = np.minimum.accumulate(np.r_[1.0, front[:, 0]])  # best error at no more complexity, per segment
    overlap = np.clip(np.minimum(highs, 1.0)[None, :] - np.maximum(lows[None, :], P[:, 1:2]), 0.0, None)
    return np.sum(np.clip(level[None, :] - P[:, :1], 0.0, None) * overlap, axis=1)


def with_expected_gain_bands(samples: int):
    """MSuNAS._surrogate_picks whose hv_bands band winners are chosen by their expected hypervolume gain under the
    surrogate's posterior (`samples` Monte Carlo draws of each candidate's error, complexity exact) instead of the
    gain of the predicted mean: EHVI, the Bayesian-optimisation criterion, per band. A candidate predicted just
    short of the front but uncertain can win its band; one predicted just beyond it but sure loses weight."""
    from codebase.search import subset
    from codebase.search.engine import nondominated, pymoo_adapter, rows_in, unique_rows

    def picks(self, models, archive, n, ref_point, seed):
        front_X = archive.X[nondominated(archive.F)]
        X_inner, _ = pymoo_adapter.minimize(self.space, lambda X: self._predict(models, X), len(self.objectives),
                                            front_X, self.s.inner_pop, self.s.inner_gens, seed)
        X_inner = X_inner[unique_rows(X_inner)]
        cands = X_inner[~rows_in(X_inner, archive.X)]
        if len(cands) == 0:
            return cands
        C = self._predict(models, cands)
        front = archive.F[nondominated(archive.F)]
        ref = np.asarray(ref_point, dtype=float)
        Cn, Fn, _ = subset.scaled(C, front, ref)
        lo = min(C[:, 0].min(), front[:, 0].min())
        unit = 1.0 / (ref[0] - lo) if ref[0] > lo else 1.0  # scaled units per error point, as subset.scaled
        std = models[0].predict_std(cands)
        z = np.random.default_rng(seed).standard_normal((samples, len(cands)))
        gain = np.zeros(len(cands))
        for row in z:
            P = Cn.copy()
            P[:, 0] += row * std * unit
            gain += staircase_gains(P, Fn)
        gain /= samples
        chosen = subset.band_winners(C[:, 1], np.where(gain > 1e-12, gain, 0.0), n)
        return cands[subset.greedy_fill(C, front, chosen, n, ref)]

    return picks


def posterior_sample(model, seed: int, features: int = 2000):
    """One function drawn from a fitted gp_additive's posterior, by pathwise conditioning (Wilson et al. 2020):
    a prior draw (the linear part's weights exactly, the squared-exponential part by `features` random Fourier
    features) corrected by the posterior update of its residual at the training points. Returns X -> error (%)."""
    v_lin, v_se, ls2, v_noise = np.exp(model.params)
    rng = np.random.default_rng(seed)
    n, d_lin = model.train_lin.shape
    d_se = model.train_se.shape[1]
    w_lin = rng.standard_normal(d_lin) * np.sqrt(v_lin / d_lin)
    omega = rng.standard_normal((d_se, features)) / np.sqrt(model.d_scale * ls2)
    phase = rng.uniform(0.0, 2 * np.pi, features)
    w_se = rng.standard_normal(features) * np.sqrt(2.0 * v_se / features)

    def prior(lin, se):
        return lin @ w_lin + np.cos(se @ omega + phase) @ w_se

    weights = np.ones(n) if model.noise_weights is None else np.asarray(model.noise_weights, dtype=float)
    eps = rng.standard_normal(n) * np.sqrt(v_noise * weights)
    from scipy.linalg import cho_solve

    # the residual's update at the training points uses the fit's own Cholesky factor and standardised targets
    beta = cho_solve(model.chol, model.targets - prior(model.train_lin, model.train_se) - eps)

    def sample(X):
        lin, se = model._split(model.features(np.asarray(X)))
        return (prior(lin, se) + model.cross_kernel(lin, se) @ beta) * model.y_std + model.y_mean

    return sample


def with_thompson(k: int):
    """MSuNAS._surrogate_picks with k of the n picks made on one draw from the GP's posterior per iteration
    (its own inner search from the archive's front and hv_bands selection on the drawn errors), the rest on the
    posterior mean as usual: batch Thompson sampling, the one Bayesian-optimisation acquisition not yet tried.
    Unlike a confidence bound it explores only where the model's plausible functions disagree jointly."""
    from codebase.search.engine import MSuNAS, nondominated, unique_rows

    original = MSuNAS._surrogate_picks

    def picks(self, models, archive, n, ref_point, seed):
        main = original(self, models, archive, n - k, ref_point, seed) if n > k else archive.X[:0]
        draw = posterior_sample(models[0], seed + 7919)

        def drawn(X):
            cols = [draw(X) if j == 0 else o.compute(X) for j, o in enumerate(self.objectives)]
            return np.column_stack(cols).astype(float)

        front = archive.X[nondominated(archive.F)]
        X_inner, F_inner = pymoo_adapter.minimize(self.space, drawn, len(self.objectives), front,
                                                  self.s.inner_pop, self.s.inner_gens, seed + 1)
        keep = unique_rows(X_inner)
        X_inner, F_inner = X_inner[keep], F_inner[keep]
        new = ~rows_in(X_inner, np.concatenate([archive.X, main]))
        cands, F_cands = X_inner[new], F_inner[new]
        chosen = select_subset(self.s.subset, F_cands, archive.F, k, ref_point)
        return np.concatenate([main, cands[chosen]])

    return picks


def with_calibration(window: int):
    """MSuNAS._surrogate_picks and _predict with the searched error raised by beta x (genes from the nearest
    archive genome), beta >= 0 fitted through the origin on the last `window` iterations' picks: their true error
    minus the model's prediction at pick time against their distance then. The picks are over-optimistic in
    proportion to how far they leap (winner's curse; seed 0's default run: +0.01 at 1 gene, +0.14 at 5-7, +0.64
    at 12 or more), so the correction learns from the run itself how far a leap the model can be trusted with.
    Iteration 1 has no history and leaps as before; unlike trust:R nothing is held to a fixed radius."""
    from codebase.search.engine import MSuNAS

    original_picks, original_predict = MSuNAS._surrogate_picks, MSuNAS._predict
    history: list[tuple[np.ndarray, float, int, int]] = []  # (canonical genome, raw prediction, genes, iteration)
    state: dict = {"beta": 0.0, "archive": None, "iteration": 0}

    def genes_to(A: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.array([(A != x).sum(1).min() for x in X])

    def predict(self, models, X, explore=0.0):
        F = original_predict(self, models, X, explore)
        if state["beta"] > 0 and state["archive"] is not None and len(X):
            F[:, 0] += state["beta"] * genes_to(state["archive"], self.space.canonical(X))
        return F

    def picks(self, models, archive, n, ref_point, seed):
        A = self.space.canonical(archive.X)
        state["iteration"] += 1
        recent = [(g, p, d) for g, p, d, k in history if k > state["iteration"] - 1 - window]
        d, r = [], []
        for g, p, dist in recent:
            hit = np.flatnonzero((A == g).all(1))
            if len(hit):
                d.append(dist)
                r.append(archive.F[hit[0], 0] - p)
        d, r = np.array(d, float), np.array(r, float)
        state["beta"] = max(0.0, float(d @ r / (d @ d))) if len(d) else 0.0
        state["archive"] = A
        chosen = original_picks(self, models, archive, n, ref_point, seed)
        raw = original_predict(self, models, chosen)[:, 0]
        C = self.space.canonical(chosen)
        for g, p, dist in zip(C, raw, genes_to(A, C)):
            history.append((g, float(p), int(dist), state["iteration"]))
        print(f"  iter {state['iteration']}: beta {state['beta']:.4f} from {len(d)} picks, "
              f"median leap {np.median(genes_to(A, C)):.0f}", file=sys.stderr)
        return chosen

    return picks, predict


def with_front_load(first: int):
    """MSuNAS._surrogate_picks taking `first` picks in iteration 1 instead of n_iter (set iterations so that the
    total stays 340): the first leaps out of the random design are over-rated by about 0.7 error points
    (`diagnose_search.py --residuals`) yet carry the climb, so more of them give more draws at the good basin."""
    from codebase.search.engine import MSuNAS

    original = MSuNAS._surrogate_picks

    def picks(self, models, archive, n, ref_point, seed):
        first_iteration = len(archive.X) <= self.s.n_doe  # the oracle never fails: the archive is the design
        return original(self, models, archive, first if first_iteration else n, ref_point, seed)

    return picks


def with_canonical_duplicates(original):
    """pymoo_adapter.make_algorithm whose duplicate elimination compares architectures (canonical genomes), not raw
    genomes: genes of skipped layers make many raw genomes one architecture, so the inner search's population can
    fill with copies of the front's members (helper-57: 100 raw genomes, 2 architectures on a 12-point digits run).
    The raw genomes themselves are kept, skipped layers' genes included, so crossover and mutation are unchanged."""
    from pymoo.core.duplicate import DefaultDuplicateElimination

    def make_algorithm(space, n_obj, pop_size, sampling, n_offsprings=None):
        algorithm = original(space, n_obj, pop_size, sampling, n_offsprings)
        algorithm.eliminate_duplicates = DefaultDuplicateElimination(
            func=lambda pop: space.canonical(np.rint(pop.get("X")).astype(int)).astype(float))
        algorithm.mating.eliminate_duplicates = algorithm.eliminate_duplicates
        algorithm.initialization.eliminate_duplicates = algorithm.eliminate_duplicates
        return algorithm

    return make_algorithm


def register_variants() -> None:
    from acc_predictor import get_acc_predictor, register_acc_predictor
    from acc_predictor.base import Predictor

    class Mean(Predictor):
        """Mean of several surrogates' predictions."""

        name = "mean"

        def __init__(self, search_space=None, seed: int = 0, members=("rbf", "gp_additive"), **_) -> None:
            super().__init__(search_space, "int", seed)
            self.members = [get_acc_predictor(m, search_space=self.search_space, seed=seed) for m in members]

        def fit(self, X, y):
            for m in self.members:
                m.fit(X, y)
            self.fitted = True
            return self

        def predict(self, X):
            return np.mean([m.predict(X) for m in self.members], axis=0)

    register_acc_predictor("mean_rbf_gpa", Mean)

    from acc_predictor.encoding import encode, fit_encoding
    from acc_predictor.gp_additive import AdditiveGP

    class OneHotLinearGP(AdditiveGP):
        """Linear part on the one-hot features too: per-choice (not per-index) first-order effects."""

        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            self.linear_encoding = fit_encoding("onehot", self.search_space)

    class ComplexityGP(AdditiveGP):
        """Linear part also sees log FLOPs and log params (exact, closed form)."""

        def features(self, X):
            from codebase.complexity import genome_complexity, to_millions

            c = to_millions(genome_complexity(self.search_space, self.search_space.canonical(X), 1000))
            extra = np.column_stack([np.log(np.atleast_1d(c["flops"])), np.log(np.atleast_1d(c["params"]))])
            lin = encode(self.linear_encoding, self.search_space, X)
            lin = np.concatenate([lin, np.repeat(extra, self.extra_weight_repeat, axis=1)], axis=1)
            self.n_linear = lin.shape[1]
            return np.concatenate([lin, encode(self.encoding, self.search_space, X)], axis=1)

        extra_weight_repeat = 4  # the linear kernel averages over columns: give complexity some weight

    class ResolutionGP(AdditiveGP):
        """Linear part also sees each layer's ordinal choices times the resolution index (centred), so a
        layer's first-order effect may change with the input size, which scales every layer's cost."""

        def features(self, X):
            lin = encode(self.linear_encoding, self.search_space, X)
            res = lin[:, -1:] - 2.0  # the ordinal encoding ends with the resolution index (0..4, centred)
            lin = np.concatenate([lin, lin[:, :40] * res], axis=1)
            self.n_linear = lin.shape[1]
            return np.concatenate([lin, encode(self.encoding, self.search_space, X)], axis=1)

    class ActiveGP(AdditiveGP):
        """Linear part on [kernel index x active, expand index x active, active, resolution] (0-based
        indices): the `ordinal` encoding's (index + 1) x active gives switching a layer on and growing its
        kernel one step the same coefficient, so a gain from depth leaks into a gain from larger kernels."""

        def features(self, X):
            from acc_predictor.encoding import _canonical, _ofa_layers

            k, e, active, _, r = _ofa_layers(self.search_space, _canonical(self.search_space, np.atleast_2d(X)))
            lin = np.concatenate([k * active, e * active, active, r[:, None]], axis=1).astype(float)
            self.n_linear = lin.shape[1]
            return np.concatenate([lin, encode(self.encoding, self.search_space, X)], axis=1)

    class LayerPairGP(AdditiveGP):
        """Linear part also gets one indicator per layer and (kernel, expand) pair (9 per active layer): a
        depthwise kernel's worth may depend on the width it filters, an interaction within one layer."""

        def features(self, X):
            from acc_predictor.encoding import _canonical, _ofa_layers

            k, e, active, _, _ = _ofa_layers(self.search_space, _canonical(self.search_space, np.atleast_2d(X)))
            ne = len(self.search_space.expand_ratios)
            pairs = np.zeros((len(k), k.shape[1], len(self.search_space.kernel_sizes) * ne))
            rows, slots = np.indices(k.shape)
            pairs[rows, slots, k * ne + e] = active
            lin = np.concatenate([encode(self.linear_encoding, self.search_space, X), pairs.reshape(len(k), -1)],
                                 axis=1)
            self.n_linear = lin.shape[1]
            return np.concatenate([lin, encode(self.encoding, self.search_space, X)], axis=1)

    class InterpolatingGP(AdditiveGP):
        """gp_additive with its noise variance held near zero: the oracle is deterministic, so the model
        passes through every evaluated architecture instead of smoothing over misfit."""

        log_bounds = (*AdditiveGP.log_bounds[:3], (-12.0, float(np.log(1e-4))))

    def smoothing_gp(noise_floor: float):
        class SmoothingGP(AdditiveGP):
            """gp_additive with its noise variance (standardised units) held at least `noise_floor`: a
            smoother model than the marginal likelihood's choice (about 5e-4 on the protocol's archives)."""

            log_bounds = (*AdditiveGP.log_bounds[:3], (float(np.log(noise_floor)), 1.0))

        return SmoothingGP

    register_acc_predictor("gpa_smooth01", smoothing_gp(0.01))
    register_acc_predictor("gpa_smooth05", smoothing_gp(0.05))
    register_acc_predictor("gpa_res", ResolutionGP)
    register_acc_predictor("gpa_act", ActiveGP)
    register_acc_predictor("gpa_ke", LayerPairGP)
    register_acc_predictor("gpa_interp", InterpolatingGP)
    register_acc_predictor("gpa_onehot_lin", OneHotLinearGP)
    register_acc_predictor("gpa_complexity", ComplexityGP)

    def heteroscedastic_gp(scale: float):
        class HeteroscedasticGP(AdditiveGP):
            """gp_additive trusting the archive's front more: a training point's noise variance is the fitted
            one times 1 + gap / scale, gap being its error above the best error at no more FLOPs."""

            def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
                from codebase.complexity import genome_complexity, to_millions

                y = np.asarray(y, dtype=float)
                flops = np.atleast_1d(to_millions(genome_complexity(self.search_space, np.asarray(X), 1000))["flops"])
                order = np.argsort(flops, kind="stable")
                gap = np.empty(len(y))
                gap[order] = y[order] - np.minimum.accumulate(y[order])
                self.noise_weights = 1.0 + gap / scale
                return super().fit(X, y)

        return HeteroscedasticGP

    for scale in ("1", "0.01", "0.0001"):
        register_acc_predictor(f"gpa_het{scale}", heteroscedastic_gp(float(scale)))

    def frozen_gp(after: int):
        class FrozenGP(AdditiveGP):
            """gp_additive whose hyper-parameters are fitted by marginal likelihood until the archive holds
            `after` points, then kept: later archives crowd the front, and their fits may trade the
            trend the early, varied data supported for a closer fit of the front."""

            frozen: np.ndarray | None = None
            last_size = 0

            def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
                cls = type(self)
                if len(y) <= cls.last_size:  # the archive only grows within a run: this is a new one
                    cls.frozen = None
                cls.last_size = len(y)
                if cls.frozen is None:
                    super()._fit(F, y)
                    if len(y) >= after:
                        cls.frozen = self.params.copy()
                    return
                fixed = cls.frozen
                self.log_bounds = tuple((float(v), float(v)) for v in fixed)
                super()._fit(F, y)

        return FrozenGP

    for after in (100, 140, 180):
        register_acc_predictor(f"gpa_freeze{after}", frozen_gp(after))

    class Warped(Predictor):
        """gp_additive fitted on a transformed error: `trend` subtracts a least-squares line in log FLOPs
        (exact, closed form), `log` takes the logarithm."""

        name = "warped"

        def __init__(self, search_space=None, seed: int = 0, mode: str = "trend", **_) -> None:
            super().__init__(search_space, "int", seed)
            self.mode = mode
            self.gp = get_acc_predictor("gp_additive", search_space=self.search_space, seed=seed)

        def _trend_features(self, X):
            from codebase.complexity import genome_complexity, to_millions

            flops = to_millions(genome_complexity(self.search_space, self.search_space.canonical(X), 1000))["flops"]
            return np.column_stack([np.ones(len(X)), np.log(np.atleast_1d(flops))])

        def fit(self, X, y):
            y = np.asarray(y, dtype=float)
            if self.mode == "trend":
                A = self._trend_features(X)
                self.coef = np.linalg.lstsq(A, y, rcond=None)[0]
                self.gp.fit(X, y - A @ self.coef)
            else:
                self.gp.fit(X, np.log(y))
            self.fitted = True
            return self

        def predict(self, X):
            if self.mode == "trend":
                return self.gp.predict(X) + self._trend_features(X) @ self.coef
            return np.exp(self.gp.predict(X))

        def predict_std(self, X):
            return self.gp.predict_std(X)

    register_acc_predictor("gpa_trend", lambda **k: Warped(mode="trend", **k))
    register_acc_predictor("gpa_log", lambda **k: Warped(mode="log", **k))
    register_acc_predictor("mlp_ens", _mlp_ensemble_class())
    ARDGP = _ard_gp_class()
    register_acc_predictor("gpa_ard", lambda **k: ARDGP(prior_std=1.0, **k))
    register_acc_predictor("gpa_ard_p03", lambda **k: ARDGP(prior_std=0.3, **k))
    register_acc_predictor("gpa_2se", _multiscale_gp_class())
    register_acc_predictor("gpa_macro", _macro_gp_class())
    # the squared-exponential part on the ordinal encoding: kernel 3 nearer 5 than 7, a skipped layer nearest the
    # smallest choice (one-hot puts every pair of choices equally far apart)
    register_acc_predictor("gpa_se_ordinal", lambda **k: AdditiveGP(**{**k, "encoding": "ordinal"}))
    for boldness in ("0.75", "0.9", "1.1", "1.5", "2"):  # the values measured (docs/search_research.md, session 15)
        register_acc_predictor(f"gpa_bold{boldness}", _bold_gp_class(float(boldness)))
    for boldness in ("1.25", "1.5"):
        register_acc_predictor(f"gpa_bold{boldness}_until140", _bold_gp_class(float(boldness), 140))


def _mlp_ensemble_class():
    """A deep ensemble: 5 MLPs (2 x 64 ReLU) on one-hot features, each from its own initial weights,
    trained full batch for 400 Adam steps with weight decay 1e-3 on every point (no held-out split);
    the prediction is their mean. The oracle itself is a ReLU MLP on these features."""
    import torch
    from torch import nn

    from acc_predictor.base import Predictor
    from acc_predictor.mlp import _network

    class Ensemble(Predictor):
        name = "mlp_ens"

        def __init__(self, search_space=None, encoding: str = "onehot", seed: int = 0, members: int = 5, **_):
            super().__init__(search_space, encoding, seed)
            self.members = members

        def _fit(self, F, y):
            self.x_mean, self.x_std = F.mean(0), F.std(0)
            self.x_std[self.x_std == 0] = 1.0
            self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
            Z = torch.as_tensor((F - self.x_mean) / self.x_std, dtype=torch.float32)
            t = torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)[:, None]
            self.nets = []
            with torch.random.fork_rng(devices=[]):
                for m in range(self.members):
                    torch.manual_seed(self.seed * 100 + m)
                    net = _network(Z.shape[1], (64, 64))
                    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
                    for _ in range(400):
                        opt.zero_grad()
                        nn.functional.mse_loss(net(Z), t).backward()
                        opt.step()
                    self.nets.append(net.eval())

        def _predict(self, F):
            Z = torch.as_tensor((F - self.x_mean) / self.x_std, dtype=torch.float32)
            with torch.no_grad():
                out = torch.stack([net(Z)[:, 0] for net in self.nets]).mean(0).double().numpy()
            return out * self.y_std + self.y_mean

    return Ensemble


def _ard_gp_class():
    """gp_additive with one squared-exponential length scale per layer gene group (20 kernel, 20 expand,
    resolution): fitted by marginal likelihood from gp_additive's own fit, the log length scales tied to
    their mean by a Gaussian prior (std `prior_std`)."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.optimize import minimize

    from acc_predictor.gp_additive import _JITTER, AdditiveGP, _sq_dist, likelihood_terms

    class ARD(AdditiveGP):
        def __init__(self, search_space=None, encoding: str = "onehot", seed: int = 0, prior_std: float = 1.0):
            super().__init__(search_space, encoding, seed)
            self.prior_std = prior_std

        def _group_dist(self, A, B):  # (groups, len(A), len(B)) squared distances per gene group
            return np.stack([_sq_dist(A[:, self.group == g], B[:, self.group == g]) for g in range(self.n_groups)])

        def _fit(self, F, y):
            super()._fit(F, y)  # the isotropic fit: the starting point
            s = self.search_space
            sizes = [len(s.kernel_sizes)] * 20 + [len(s.expand_ratios)] * 20 + [len(s.resolutions)]
            self.group, self.n_groups = np.repeat(np.arange(len(sizes)), sizes), len(sizes)
            lin, se = self._split(F)
            t = (y - self.y_mean) / self.y_std
            K_lin, Dg, eye = lin @ lin.T / lin.shape[1], self._group_dist(se, se), np.eye(len(t))

            def kernel(p):
                K_se = np.exp(-0.5 * np.tensordot(np.exp(-p[3:]), Dg, axes=1))
                return np.exp(p[0]) * K_lin + np.exp(p[1]) * K_se + (np.exp(p[2]) + _JITTER) * eye, K_se

            def nll(p):
                K, K_se = kernel(p)
                terms = likelihood_terms(K, t)
                if terms is None:
                    return 1e10, np.zeros_like(p)
                value, W = terms
                grad = np.r_[-0.5 * np.sum(W * K_lin) * np.exp(p[0]), -0.5 * np.sum(W * K_se) * np.exp(p[1]),
                             -0.5 * np.trace(W) * np.exp(p[2]),
                             -0.25 * np.tensordot(Dg, W * K_se * np.exp(p[1]), axes=([1, 2], [0, 1])) * np.exp(-p[3:])]
                centred = p[3:] - p[3:].mean()
                grad[3:] += centred / self.prior_std**2
                return value + 0.5 * float(np.sum(centred**2)) / self.prior_std**2, grad

            v_lin, v_se, ls2, v_noise = self.params
            p0 = np.r_[v_lin, v_se, v_noise, np.full(self.n_groups, ls2 + np.log(self.d_scale))]
            bounds = [(-10, 5), (-10, 5), (-12, 1)] + [(-5, 12)] * self.n_groups
            self.ard = minimize(nll, p0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 200}).x
            K, _ = kernel(self.ard)
            self.chol = cho_factor(K, lower=True)
            self.alpha = cho_solve(self.chol, t)

        def _posterior(self, F, with_std):
            lin, se = self._split(F)
            v_lin, v_se, inv_ls2 = np.exp(self.ard[0]), np.exp(self.ard[1]), np.exp(-self.ard[3:])
            K = v_lin * lin @ self.train_lin.T / lin.shape[1]
            D = sum(w * _sq_dist(se[:, self.group == g], self.train_se[:, self.group == g])
                    for g, w in enumerate(inv_ls2))  # weighted, group by group: bounded memory
            K += v_se * np.exp(-0.5 * D)
            std = None
            if with_std:
                prior = v_lin * np.sum(lin**2, axis=1) / lin.shape[1] + v_se
                std = np.sqrt(np.maximum(prior - np.sum(K.T * cho_solve(self.chol, K.T), axis=0), 0.0)) * self.y_std
            return K @ self.alpha * self.y_std + self.y_mean, std

    return ARD


def _multiscale_gp_class():
    """gp_additive with a second squared-exponential part on the one-hot features, of its own variance and a
    length scale at most `short` of the first's lower bound: the first captures interactions that change over
    many genes, the second local ones among the 1-3 gene moves that late iterations evaluate around the front.
    Six hyper-parameters (v_lin, v_se, l^2, v_local, l_local^2, v_noise), fitted by marginal likelihood from
    gp_additive's own fit."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.optimize import minimize

    from acc_predictor.gp_additive import _JITTER, AdditiveGP, _sq_dist, likelihood_terms

    class MultiScale(AdditiveGP):
        def _fit(self, F, y):
            super()._fit(F, y)  # the single-scale fit: the starting point
            lin, se = self._split(F)
            t = (y - self.y_mean) / self.y_std
            K_lin, D, eye = lin @ lin.T / lin.shape[1], _sq_dist(se, se) / self.d_scale, np.eye(len(t))

            def parts(p):
                v_lin, v_se, ls2, v_loc, ls2_loc, v_noise = np.exp(p)
                K_se, K_loc = np.exp(-0.5 * D / ls2), np.exp(-0.5 * D / ls2_loc)
                K = v_lin * K_lin + v_se * K_se + v_loc * K_loc + (v_noise + _JITTER) * eye
                dK = (v_lin * K_lin, v_se * K_se, v_se * K_se * 0.5 * D / ls2, v_loc * K_loc,
                      v_loc * K_loc * 0.5 * D / ls2_loc, v_noise * eye)
                return K, dK

            def nll(p):
                K, dK = parts(p)
                terms = likelihood_terms(K, t)  # None: not positive definite
                return (1e10, np.zeros_like(p)) if terms is None else (
                    float(terms[0]), np.array([-0.5 * np.sum(terms[1] * d) for d in dK]))

            # the local part's length scale: one gene change is 2 / d_scale in D, about 0.05
            bounds = [*self.log_bounds[:3], (-10.0, 5.0), (-8.0, np.log(0.05)), self.log_bounds[3]]
            v_lin, v_se, ls2, v_noise = self.params
            p0 = np.array([v_lin, v_se, ls2, v_noise - 1.0, np.log(0.02), v_noise])
            best = minimize(nll, np.clip(p0, *np.array(bounds).T), jac=True, method="L-BFGS-B", bounds=bounds)
            self.params6 = best.x
            K, _ = parts(best.x)
            self.chol = cho_factor(K, lower=True)
            self.alpha = cho_solve(self.chol, t)

        def _posterior(self, F, with_std):
            v_lin, v_se, ls2, v_loc, ls2_loc, _ = np.exp(self.params6)
            lin, se = self._split(F)
            D = _sq_dist(se, self.train_se) / self.d_scale
            K = v_lin * lin @ self.train_lin.T / lin.shape[1] + v_se * np.exp(-0.5 * D / ls2)
            K += v_loc * np.exp(-0.5 * D / ls2_loc)
            std = None
            if with_std:
                prior = v_lin * np.sum(lin**2, axis=1) / lin.shape[1] + v_se + v_loc
                std = np.sqrt(np.maximum(prior - np.sum(K.T * cho_solve(self.chol, K.T), axis=0), 0.0)) * self.y_std
            return K @ self.alpha * self.y_std + self.y_mean, std

    return MultiScale


def _macro_gp_class():
    """gp_additive plus a linear part of its own variance on a few macro features, standardised: the resolution
    index, the five stage depths and the total depth. In gp_additive these sit among 46 linear columns that share one
    variance, so the marginal likelihood cannot weigh depth apart from single layers; the search's picks are most
    pessimistic about deep, low-resolution architectures (docs/search_research.md, session 10). Five hyper-parameters
    (v_lin, v_macro, v_se, l^2, v_noise), fitted by marginal likelihood from gp_additive's own fit."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.optimize import minimize

    from acc_predictor.encoding import _canonical, _ofa_layers
    from acc_predictor.gp_additive import _JITTER, AdditiveGP, _sq_dist, likelihood_terms

    class Macro(AdditiveGP):
        n_macro = 7

        def features(self, X):  # [linear part, macro features, one-hot]: gp_additive's with the macro ones inserted
            F = super().features(X)
            _, _, active, d, r = _ofa_layers(self.search_space, _canonical(self.search_space, np.atleast_2d(X)))
            macro = np.column_stack([d, r, active.sum(axis=1)]).astype(float)
            return np.concatenate([F[:, : self.n_linear], macro, F[:, self.n_linear :]], axis=1)

        def _split(self, F):  # gp_additive's two parts, without the macro columns
            lin, rest = super()._split(F)
            return lin, rest[:, self.n_macro :]

        def _macro(self, F):
            return (F[:, self.n_linear : self.n_linear + self.n_macro] - self.mac_mean) / self.mac_std

        def _fit(self, F, y):
            super()._fit(F, y)  # gp_additive's own fit: the starting point
            raw = F[:, self.n_linear : self.n_linear + self.n_macro]
            self.mac_mean, self.mac_std = raw.mean(axis=0), raw.std(axis=0)
            self.mac_std[self.mac_std == 0] = 1.0
            lin, se = self._split(F)
            mac = self._macro(F)
            t = (y - self.y_mean) / self.y_std
            K_lin, K_mac = lin @ lin.T / lin.shape[1], mac @ mac.T / mac.shape[1]
            D, eye = _sq_dist(se, se) / self.d_scale, np.eye(len(t))

            def parts(p):
                v_lin, v_mac, v_se, ls2, v_noise = np.exp(p)
                K_se = np.exp(-0.5 * D / ls2)
                K = v_lin * K_lin + v_mac * K_mac + v_se * K_se + (v_noise + _JITTER) * eye
                return K, (v_lin * K_lin, v_mac * K_mac, v_se * K_se, v_se * K_se * 0.5 * D / ls2, v_noise * eye)

            def nll(p):
                K, dK = parts(p)
                terms = likelihood_terms(K, t)
                return (1e10, np.zeros_like(p)) if terms is None else (
                    float(terms[0]), np.array([-0.5 * np.sum(terms[1] * d) for d in dK]))

            bounds = [self.log_bounds[0], (-10.0, 5.0), *self.log_bounds[1:]]
            v_lin, v_se, ls2, v_noise = self.params
            p0 = np.array([v_lin, v_lin, v_se, ls2, v_noise])
            best = minimize(nll, np.clip(p0, *np.array(bounds).T), jac=True, method="L-BFGS-B", bounds=bounds)
            self.params5 = best.x
            K, _ = parts(best.x)
            self.chol = cho_factor(K, lower=True)
            self.alpha = cho_solve(self.chol, t)
            self.train_mac = mac

        def _posterior(self, F, with_std):
            v_lin, v_mac, v_se, ls2, _ = np.exp(self.params5)
            lin, se = self._split(F)
            mac = self._macro(F)
            K = v_lin * lin @ self.train_lin.T / lin.shape[1] + v_mac * mac @ self.train_mac.T / mac.shape[1]
            K += v_se * np.exp(-0.5 * _sq_dist(se, self.train_se) / (self.d_scale * ls2))
            std = None
            if with_std:
                prior = (v_lin * np.sum(lin**2, axis=1) / lin.shape[1] + v_mac * np.sum(mac**2, axis=1) / mac.shape[1]
                         + v_se)
                std = np.sqrt(np.maximum(prior - np.sum(K.T * cho_solve(self.chol, K.T), axis=0), 0.0)) * self.y_std
            return K @ self.alpha * self.y_std + self.y_mean, std

    return Macro


def _bold_gp_class(boldness: float, until: int | None = None):
    """gp_additive whose linear part's contribution to the posterior mean is multiplied by `boldness` (> 1): the
    marginal likelihood shrinks the first-order effects toward zero, which is right for the average prediction
    but pulls the far, extreme architectures (where the fronts lie) back toward the mean; a bolder linear part
    extrapolates further along the directions the model already believes in. With `until`, only while it is
    fitted on at most that many points (the early leaps out of the random design). The std is gp_additive's."""
    from acc_predictor.gp_additive import AdditiveGP, _sq_dist

    class Bold(AdditiveGP):
        def _predict(self, F):
            v_lin, v_se, ls2, _ = np.exp(self.params)
            lin, se = self._split(F)
            K_lin = v_lin * lin @ self.train_lin.T / lin.shape[1]
            K_se = v_se * np.exp(-0.5 * _sq_dist(se, self.train_se) / (self.d_scale * ls2))
            c = boldness if until is None or len(self.alpha) <= until else 1.0
            return (c * K_lin + K_se) @ self.alpha * self.y_std + self.y_mean

    return Bold


def register_oracle_informed(oracle_path: Path, seed: int = 123) -> None:
    """Diagnostic predictors that see more than the search's own archive, to ask how far better data or a
    better model class could take the loop; none is a method (each is told the oracle's answers for free):
    `perfect` (the oracle itself), `ridge_random20k` (ridge regression on one-hot features of 20,000 random
    architectures scored by the oracle, plus the archive), `mlp_random20k` (an MLP, 2 x 256 ReLU, on those
    20,000; the oracle is such a network on such features), `gpa_random1000` (gp_additive on the archive plus
    1,000 of them)."""
    from acc_predictor import get_acc_predictor, register_acc_predictor
    from acc_predictor.base import Predictor
    from acc_predictor.encoding import encode, fit_encoding
    from codebase.oracle import OFAOracle, oracle_space

    oracle = OFAOracle(oracle_path, oracle_space())
    space, rng = oracle.space, np.random.default_rng(seed)
    R = np.stack([rng.integers(space.xl, space.xu + 1) for _ in range(20000)])
    yR = oracle.top1_err(R)
    onehot = fit_encoding("onehot", space)

    class Informed(Predictor):
        def __init__(self, search_space=None, seed: int = 0, **_) -> None:
            super().__init__(search_space or space, "onehot", seed)

        def fit(self, X, y):
            self.fit_informed(np.asarray(X, dtype=int), np.asarray(y, dtype=float))
            self.fitted = True
            return self

    class Perfect(Informed):
        def fit_informed(self, X, y):
            pass

        def predict(self, X):
            return oracle.top1_err(np.atleast_2d(X))

    class Ridge(Informed):
        def fit_informed(self, X, y):
            F = encode(onehot, space, np.concatenate([R, X]))
            self.mean = F.mean(axis=0)
            A = np.column_stack([np.ones(len(F)), F - self.mean])
            self.w = np.linalg.solve(A.T @ A + np.eye(A.shape[1]), A.T @ np.concatenate([yR, y]))

        def predict(self, X):
            F = encode(onehot, space, np.atleast_2d(X)) - self.mean
            return np.column_stack([np.ones(len(F)), F]) @ self.w

    class Network(Informed):
        net = None  # fitted once on the 20,000: the archive would be lost among them

        def fit_informed(self, X, y):
            from sklearn.neural_network import MLPRegressor

            if Network.net is None:
                Network.net = MLPRegressor(hidden_layer_sizes=(256, 256), early_stopping=True, random_state=0)
                Network.net.fit(encode(onehot, space, R), yR)

        def predict(self, X):
            return Network.net.predict(encode(onehot, space, np.atleast_2d(X)))

    class WithRandom(Informed):
        def fit_informed(self, X, y):
            self.model = get_acc_predictor("gp_additive", search_space=space, seed=self.seed)
            self.model.fit(np.concatenate([R[:1000], X]), np.concatenate([yR[:1000], y]))

        def predict(self, X):
            return self.model.predict(X)

    for name, cls in (("perfect", Perfect), ("ridge_random20k", Ridge), ("mlp_random20k", Network),
                      ("gpa_random1000", WithRandom)):
        register_acc_predictor(name, cls)


def trajectories(oracle_path: Path, seeds: list[int], models: list[str], settings: dict, out: str) -> None:
    """Each model's course over the protocol, every other iteration: the normalised hypervolume of its archive,
    and how far each iteration's picks went (median genes from the nearest genome evaluated before them)."""
    from bench_search import run_msunas_archive
    from diagnose_search import genes_apart

    from codebase.oracle import oracle_space

    reference, space = read_json(REFERENCE), oracle_space()
    n_doe, n_iter = settings.get("n_doe", 100), settings.get("n_iter", 8)
    for model in models:
        for seed in seeds:
            t = time.time()
            AX, AF = run_msunas_archive(oracle_path, model, seed, settings)
            AX = space.canonical(AX)
            iterations = range(0, (len(AF) - n_doe) // n_iter + 1, 2)
            hv = " ".join(f"{normalised_hv(AF[: n_doe + n_iter * k], reference):.3f}" for k in iterations)
            steps = " ".join(f"{np.median(genes_apart(AX[i:i + n_iter], AX[:i])):.0f}"
                             for i in range(n_doe, len(AX), n_iter))
            lines = [f"| {model} | {seed} | hv after iterations 0, 2, ... | {hv} | {time.time() - t:.0f} |",
                     f"| {model} | {seed} | genes moved in iterations 1, 2, ... | {steps} | |"]
            print("\n".join(lines), flush=True)
            with open(out, "a") as f:
                f.write("\n".join(lines) + "\n")


def run_once(oracle_path: Path, seed: int, settings: dict, keep: str | None = None) -> np.ndarray:
    from codebase.evaluators.oracle import OracleEvaluator
    from codebase.search.engine import MSuNAS, SearchSettings
    from codebase.search.objectives import parse_objectives

    evaluator = OracleEvaluator(oracle_path)
    objectives = parse_objectives("flops", evaluator.space, 1000)
    options = {"seed": seed, "n_doe": 100, "iterations": 30, "n_iter": 8, **settings}
    with tempfile.TemporaryDirectory() as save:
        save = f"{keep}_{seed}" if keep else save
        stats = MSuNAS(save, evaluator.space, evaluator, objectives, SearchSettings(**options)).run(progress=False)
    return np.array([entry[1:] for entry in stats["archive"]])


def one_step_screen(oracle_path: Path, seeds: list[int], models: list[str]) -> None:
    """A model screen cheaper than 5 searches: how well each model picks one more step from a finished run."""
    from bench_search import run_msunas_archive
    from diagnose_search import one_step

    from codebase.oracle import OFAOracle, oracle_space

    oracle, reference = OFAOracle(oracle_path, oracle_space()), read_json(REFERENCE)
    for seed in seeds:
        AX, AF = run_msunas_archive(oracle_path, "gp_additive", seed, {})
        print(f"seed {seed}:", flush=True)
        for model in models:
            one_step(oracle, model, AX, AF, reference, lambda F: normalised_hv(F, reference), probe_genes=())


def parse_settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, value = item.split("=")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def main() -> None:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="base",
                   help="base | local:KEEP | bands | doe_flops | doe_balanced:TRIES | doe_mixture:A | confidence:K | "
                        "rank_fill | mutation:M | block_mutation:R | crossover:ux|none | res_strata:K | "
                        "portfolio:NAME:K | trust:R | early_explore:K:E | vertical:P | bands:K | reversed | ehvi:S | "
                        "thompson:K | calibrate:W | front_load:N | canonical_dedup")
    p.add_argument("--predictor", default="gp_additive")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--set", nargs="*", default=[], help="SearchSettings overrides, key=value")
    p.add_argument("--oracle_path", default=str(DEFAULT_ORACLE))
    p.add_argument("--keep", help="keep each run's folder as KEEP_SEED (for diagnosis)")
    p.add_argument("--out", default="/tmp/research_search.md")
    p.add_argument("--trajectory", nargs="+", metavar="MODEL",
                   help="instead of scoring the final archive: each MODEL's normalised hv after iterations 0, 2, 4, "
                        "...; MODEL may also be one of the oracle-informed diagnostics perfect, ridge_random20k, "
                        "mlp_random20k, gpa_random1000 (see register_oracle_informed)")
    p.add_argument("--one_step", nargs="+", metavar="MODEL",
                   help="instead of searching: on each seed's default run (gp_additive, 340 evaluations), "
                        "diagnose_search's one-step test for each MODEL (40 single-gene neighbours of the final "
                        "front picked by its predicted hv gain; the oracle's own errors pick 0.9425 on seed 0)")
    args = p.parse_args()
    register_variants()
    if args.one_step:
        return one_step_screen(Path(args.oracle_path), args.seeds, args.one_step)
    if args.trajectory:
        register_oracle_informed(Path(args.oracle_path))
        return trajectories(Path(args.oracle_path), args.seeds, args.trajectory, parse_settings(args.set), args.out)
    name, _, arg = args.variant.partition(":")
    if name == "local":
        pymoo_adapter.minimize = with_local_candidates(int(arg or 100))
    elif name == "doe_flops":
        from search_space.ofa import OFASearchSpace

        OFASearchSpace.initialize = with_flops_spread_design(OFASearchSpace.initialize)
    elif name == "doe_balanced":
        from search_space.ofa import OFASearchSpace

        OFASearchSpace.initialize = with_balanced_design(OFASearchSpace.initialize, int(arg or 200))
    elif name == "doe_mixture":
        from search_space.ofa import OFASearchSpace

        OFASearchSpace.initialize = with_mixture_design(OFASearchSpace.initialize, float(arg or 1.0))
    elif name == "confidence":
        from codebase.search.engine import MSuNAS

        MSuNAS._predict = with_confidence(float(arg))
    elif name == "mutation":
        pymoo_adapter._operators = with_mutation_rate(float(arg))
    elif name == "crossover":
        pymoo_adapter._operators = with_crossover(arg)
    elif name == "block_mutation":
        pymoo_adapter._operators = with_block_mutation(float(arg or 0.2))
    elif name == "res_strata":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks = with_resolution_strata(MSuNAS._surrogate_picks, int(arg or 2))
    elif name == "portfolio":
        from codebase.search.engine import MSuNAS

        other, _, k = arg.partition(":")
        MSuNAS._surrogate_picks = with_portfolio(MSuNAS._surrogate_picks, other, int(k or 2))
    elif name == "early_explore":
        from codebase.search.engine import MSuNAS

        k, _, iterations = arg.partition(":")
        MSuNAS._surrogate_picks = with_early_exploration(MSuNAS._surrogate_picks, float(k), int(iterations or 5))
    elif name == "trust":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks, MSuNAS._predict = with_trust_region(MSuNAS._surrogate_picks, MSuNAS._predict,
                                                                     int(arg or 6))
    elif name == "rank_fill":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks = with_rank_fill(MSuNAS._surrogate_picks)
    elif name == "reversed":  # the same picks evaluated in reverse order: the same algorithm, another trajectory
        from codebase.search import engine

        selected = engine.select_subset
        engine.select_subset = lambda *a, **k: selected(*a, **k)[::-1]
    elif name == "bands" and arg:
        from codebase.search import subset

        subset._banded_hv = with_band_count(int(arg))
    elif name == "ehvi":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks = with_expected_gain_bands(int(arg or 256))
    elif name == "thompson":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks = with_thompson(int(arg or 8))
    elif name == "calibrate":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks, MSuNAS._predict = with_calibration(int(arg or 5))
    elif name == "front_load":
        from codebase.search.engine import MSuNAS

        MSuNAS._surrogate_picks = with_front_load(int(arg))
    elif name == "canonical_dedup":
        pymoo_adapter.make_algorithm = with_canonical_duplicates(pymoo_adapter.make_algorithm)
    elif name == "vertical":
        from codebase.search import subset

        subset._banded_hv = with_vertical_bands(float(arg or 0.0))
    elif name not in ("base", "bands"):
        raise SystemExit(f"unknown variant {args.variant}")
    settings = {"predictor": args.predictor, **parse_settings(args.set)}
    if name == "bands":  # measured first as a patch here; now codebase.search.subset's "hv_bands"
        settings["subset"] = "hv_bands"
    reference = read_json(REFERENCE)
    scores, seconds = [], []
    for seed in args.seeds:
        t = time.time()
        F = run_once(Path(args.oracle_path), seed, settings, args.keep)
        seconds.append(time.time() - t)
        scores.append(normalised_hv(F, reference))
        print(f"seed {seed}: {len(F)} evaluations, hv {scores[-1]:.4f}, {seconds[-1]:.0f} s", flush=True)
    label = f"{args.variant} {' '.join(f'{k}={v}' for k, v in settings.items())}"
    row = (f"| {label} | {len(args.seeds)} | {np.mean(scores):.3f} ± {np.std(scores):.3f} | "
           f"{' '.join(f'{s:.3f}' for s in scores)} | {np.mean(seconds):.0f} |")
    print(row, flush=True)
    with open(args.out, "a") as f:
        f.write(row + "\n")


if __name__ == "__main__":
    main()
