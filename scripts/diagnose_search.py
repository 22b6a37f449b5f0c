"""Why a surrogate-assisted search falls short of the reference front on the OFA oracle (CPU only).

    python scripts/diagnose_search.py --predictor gp_additive --seed 0

1. The oracle's true front *with genomes*: plain NSGA-II on the oracle (2 x 100,000 calls, ~30 s).
2. One MSuNAS run with the bench_search protocol (340 evaluations).
3. Where the run's hypervolume is lost: the front's density (the reference front's best error at
   each of the run's FLOPs values) against its accuracy (how far each front point trails).
4. What the surrogate, fitted on the run's archive, believes about the true front: its bias and
   predicted standard deviation there, and how many genes separate the true front from the archive.
5. The genes whose effect the surrogate gets most wrong on the true front: the error change of
   raising one gene by one choice (true, predicted by the surrogate, and by an additive one-hot ridge
   regression fitted on 2,000 random architectures: more random data does not reveal them).
6. How the run got there (and how uniform the initial design, the archive's front and the true front
   are in their kernel and expand choices): per stretch of iterations, how many picks landed on the archive's front,
   how many genes each pick is from the archive it was chosen from, how far the picks are from the
   true front, and the normalised hypervolume so far.
7. Whether any surrogate could pick the true front out of a pool of 1-4-gene mutants of both
   fronts: the normalised hypervolume of the archive plus the 40 pool members on the predicted
   front, for models fitted on the archive alone and on the archive plus `--extra` pool members.
8. How much one more step of the climb could gain: every single-gene neighbour of the run's final
   front, 40 of them picked greedily by hypervolume gain (as subset selection `hv` does) with the
   oracle's errors, with the surrogate's, and with the surrogate refitted after `--probes` random
   changes of front members (of each `--probe_genes` size: single-gene neighbours, or several genes
   at once, a random design that measures a sum of local effects per evaluation) were evaluated and
   added to its data; how well the surrogate predicts
   each move's error change (Kendall tau), and how alike the moves' true effects are at adjacent
   front members (so whether what one move teaches would carry over along the front).

`--scouts` measures instead (about 1 min) whether FLOPs-matched macro moves would be better scouts than
single-gene changes: at iterations 2, 5, 10, 20 and 30 of the run, each archive-front member gets
reallocations that take one step down one axis (resolution, half its kernels, half its expand ratios, or a layer)
and steps up another until its FLOPs are back within 0.90-1.05x (lower resolution and more depth, smaller kernels
and wider layers, ...: the true front is a reallocation of the archive's, see 4). With the oracle's errors: the
share of candidates that would enter the archive's front, and the hypervolume gain of 8 random ones and of the
8 best, for these and for all single-gene neighbours, beside the gain of the run's own next 8 picks.

`--residuals RUN` (seconds) reads a run folder kept by `research_search.py --keep` (or any msunas run on the
oracle) and prints, by how many genes each pick leapt from the archive it was chosen from, its true error minus
the surrogate's prediction at pick time (the plan.json of its iteration): how over-optimistic far picks are.

`--stage_uniform` (about 1 min) bounds a coarse-to-fine search: NSGA-II on the oracle (50,000 calls) over the
16-gene subspace in which every layer of a stage has the same kernel size and expand ratio, and the normalised
hypervolume of the best front found there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_search as bench  # noqa: E402
import numpy as np  # noqa: E402

from acc_predictor import get_acc_predictor  # noqa: E402
from codebase.cli import OneLineParser  # noqa: E402
from codebase.io import read_json  # noqa: E402
from codebase.oracle import OFAOracle, oracle_space  # noqa: E402
from codebase.search.indicators import nondominated  # noqa: E402
from codebase.search.subset import select_subset  # noqa: E402
from search_space.base import rows_in  # noqa: E402
from search_space.ofa import DEPTH_GENES, EXPAND_GENES, KERNEL_GENES, MAX_DEPTH, RESOLUTION_GENE  # noqa: E402


def true_front(oracle: OFAOracle, calls: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Genomes and objectives of the non-dominated set of two long NSGA-II runs on the oracle."""
    runs = [bench.nsga2_archive(oracle, calls // 2, seed + run, pop_size=500) for run in range(2)]
    X, F = np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])
    keep = nondominated(F)
    return X[keep], F[keep]


def mutants(space, X: np.ndarray, per_row: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for x in X:
        for _ in range(per_row):
            y = x.copy()
            genes = rng.choice(space.n_var, rng.integers(1, 5), replace=False)
            y[genes] = rng.integers(space.xl[genes], space.xu[genes] + 1)
            out.append(y)
    return np.unique(space.canonical(np.array(out)), axis=0)


def gene_name(g: int) -> str:
    """res, dS (depth of stage S), kS.L / eS.L (kernel / expand of layer L of stage S)."""
    from search_space.ofa import DEPTH_GENES, EXPAND_GENES, KERNEL_GENES, RESOLUTION_GENE

    if g == RESOLUTION_GENE:
        return "res"
    if g in DEPTH_GENES:
        return f"d{list(DEPTH_GENES).index(g)}"
    prefix, genes = ("k", list(KERNEL_GENES)) if g in KERNEL_GENES else ("e", list(EXPAND_GENES))
    return f"{prefix}{genes.index(g) // 4}.{genes.index(g) % 4}"


class RandomDataRidge:
    """Additive one-hot ridge regression (alpha by cross-validation) on n random architectures."""

    def __init__(self, oracle: OFAOracle, n: int, seed: int) -> None:
        from sklearn.linear_model import RidgeCV

        from acc_predictor.encoding import fit_encoding

        self.encoding, self.space = fit_encoding("onehot", oracle.space), oracle.space
        X = oracle.space.initialize(n, np.random.default_rng(seed))
        self.model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(self._features(X), oracle.top1_err(X))

    def _features(self, X: np.ndarray) -> np.ndarray:
        from acc_predictor.encoding import encode

        return encode(self.encoding, self.space, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(self._features(X))


def gene_effects(oracle: OFAOracle, models: list, X: np.ndarray) -> list[tuple]:
    """Per gene: (name, how many of X it changes, mean true error change, mean change predicted by each
    model), the genes the first model misjudges most first."""
    space, rows = oracle.space, []
    base = space.canonical(X)
    for g in range(space.n_var):
        Y = X.copy()
        Y[:, g] = np.minimum(Y[:, g] + 1, space.xu[g])
        Y = space.canonical(Y)
        changed = (Y != base).any(axis=1)
        if changed.sum() < 5:
            continue
        A, B = base[changed], Y[changed]
        true = oracle.top1_err(B) - oracle.top1_err(A)
        preds = [float(np.mean(m.predict(B) - m.predict(A))) for m in models]
        rows.append((gene_name(g), int(changed.sum()), float(true.mean()), *preds))
    return sorted(rows, key=lambda r: -abs(r[2] - r[3]))


def gene_agreement(space, X: np.ndarray) -> tuple[float, float, float]:
    """How uniform a set of architectures is: per active layer slot, the share of the rows (using that
    layer) that hold its most common kernel / expand choice, averaged over slots; and the mean kernel size."""
    from search_space.ofa import EXPAND_GENES, KERNEL_GENES

    ks, _, active, _ = space.layer_arrays(X)
    shares = []
    for genes in (KERNEL_GENES, EXPAND_GENES):
        per_slot = [np.bincount(X[active[:, i], g]).max() / active[:, i].sum()
                    for i, g in enumerate(genes) if active[:, i].sum() >= 5]
        shares.append(float(np.mean(per_slot)))
    return shares[0], shares[1], float(ks[active].mean())


def genes_apart(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """(len(X),) how many genes each row of X differs in from its nearest row of Y."""
    return (X[:, None, :] != Y[None, :, :]).sum(axis=2).min(axis=1)


def progress(AX: np.ndarray, AF: np.ndarray, TX: np.ndarray, nhv, n_doe: int, n_iter: int,
             every: int = 5) -> None:
    """The run's archive is in evaluation order: the initial design, then n_iter picks per iteration."""
    iterations = (len(AX) - n_doe) // n_iter
    print(f"how the run progressed ({n_doe} initial architectures, {n_iter} picks per iteration): iterations, "
          "picks on the archive's front when added, median genes from the archive before them, median genes "
          "to the true front, normalised hv after")
    for first in range(1, iterations + 1, every):
        last = min(first + every - 1, iterations)
        on_front, step, to_true = 0, [], []
        for k in range(first, last + 1):
            start = n_doe + (k - 1) * n_iter
            picks = np.arange(start, start + n_iter)
            on_front += int(np.isin(picks, nondominated(AF[: start + n_iter])).sum())
            step += genes_apart(AX[picks], AX[:start]).tolist()
            to_true += genes_apart(AX[picks], TX).tolist()
        n = (last - first + 1) * n_iter
        print(f"  {first:2d}-{last:2d}: {on_front}/{n} on the front, {np.median(step):.0f} genes from the archive, "
              f"{np.median(to_true):.1f} to the true front; hv {nhv(AF[: n_doe + last * n_iter]):.4f}")


def single_gene_neighbours(space, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct canonical genome one gene change away from a row of X, and that row's index."""
    base = space.canonical(X)
    rows, parents = [], []
    for i, x in enumerate(base):
        for g in range(space.n_var):
            for value in range(space.xl[g], space.xu[g] + 1):
                if value != x[g]:
                    y = x.copy()
                    y[g] = value
                    rows.append(y)
                    parents.append(i)
    N, parents = space.canonical(np.array(rows)), np.array(parents)
    moved = (N != base[parents]).any(axis=1)  # a change to a skipped layer is no change
    _, first = np.unique(N[moved], axis=0, return_index=True)
    keep = np.flatnonzero(moved)[np.sort(first)]
    return N[keep], parents[keep]


def multi_gene_probes(space, X: np.ndarray, genes: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n architectures, each a random row of X with `genes` of its active layers' kernel/expand genes set
    to another random choice: a random design that measures the sum of several local gene effects at once."""
    from search_space.ofa import EXPAND_GENES, KERNEL_GENES

    out = []
    for _ in range(n):
        x = X[rng.integers(len(X))].copy()
        active = space.active_layers(x[None])[0]
        for g in rng.choice(np.concatenate([KERNEL_GENES[active], EXPAND_GENES[active]]), genes, replace=False):
            x[g] = rng.choice([v for v in range(space.xu[g] + 1) if v != x[g]])
        out.append(x)
    return space.canonical(np.array(out))


def one_step(oracle: OFAOracle, predictor: str, AX: np.ndarray, AF: np.ndarray, reference: dict, nhv,
             picks: int = 40, probes: int = 120, seed: int = 0, probe_genes: tuple[int, ...] = (1,)) -> None:
    """Section 8: the hypervolume one more step from the final front could add, and how much of it
    the surrogate finds (see the module docstring)."""
    from scipy.stats import kendalltau

    space, front = oracle.space, nondominated(AF)
    N, parent = single_gene_neighbours(space, AX[front])
    parent = front[parent]
    NF = bench.true_objectives(oracle, N)
    scaled = lambda F: bench.scaled(F, reference)  # noqa: E731

    def gain_of(errors: np.ndarray, X_known: np.ndarray, F_known: np.ndarray) -> float:
        """True normalised hv after adding the `picks` neighbours of largest predicted hv gain."""
        P = np.column_stack([errors, NF[:, 1]])
        known = F_known[nondominated(F_known)]
        open_ = ~((known[None, :, 0] <= P[:, None, 0]) & (known[None, :, 1] <= P[:, None, 1])).any(axis=1)
        idx = np.flatnonzero(open_ & ~rows_in(N, X_known))  # predicted to add something, not evaluated
        chosen = idx[select_subset("hv", scaled(P[idx]), scaled(known), picks, np.array([1.01, 1.01]))]
        return nhv(np.concatenate([F_known, NF[chosen]]))

    model = get_acc_predictor(predictor, search_space=space, seed=0).fit(AX, AF[:, 0])
    true_change = NF[:, 0] - AF[parent, 0]
    predicted_change = model.predict(N) - model.predict(AX)[parent]
    print(f"one more step: {len(N)} single-gene neighbours of the run's {len(front)} front members "
          f"({(true_change < 0).sum()} lower the error). Normalised hv {nhv(AF):.4f} now; with all of them "
          f"{nhv(np.concatenate([AF, NF])):.4f}; with {picks} of them picked by predicted hv gain, using the oracle's "
          f"errors {gain_of(NF[:, 0], AX, AF):.4f}, using {predictor}'s {gain_of(model.predict(N), AX, AF):.4f}")
    tau = kendalltau(predicted_change, true_change)[0]
    print(f"  {predictor} on the error change of each move: Kendall tau {tau:.3f}")
    rng = np.random.default_rng(seed)
    for genes in probe_genes:  # 1: random single-gene neighbours; more: random multi-gene probes
        if genes == 1:
            P = N[rng.choice(len(N), min(probes, len(N)), replace=False)]
        else:
            P = multi_gene_probes(space, AX[front], genes, probes, rng)
        XP, FP = np.concatenate([AX, P]), np.concatenate([AF, bench.true_objectives(oracle, P)])
        refit = get_acc_predictor(predictor, search_space=space, seed=0).fit(XP, FP[:, 0])
        refit_change = refit.predict(N) - refit.predict(AX)[parent]
        print(f"  after {len(P)} random {genes}-gene changes of front members were evaluated and added to its data: "
              f"tau {kendalltau(refit_change, true_change)[0]:.3f}; hv with them {nhv(FP):.4f}, plus {picks} picked "
              f"by the refitted model {gain_of(refit.predict(N), XP, FP):.4f}")
    moves: dict[int, dict[tuple, float]] = {}
    for j in range(len(N)):
        genes = np.flatnonzero(N[j] != space.canonical(AX[parent[j]][None])[0])
        if len(genes) == 1:
            moves.setdefault(int(parent[j]), {})[(int(genes[0]), int(N[j, genes[0]]))] = float(true_change[j])
    for size in (2, 5):
        print(f"  {size} single-gene moves made together, at every 10th front member: their error change differs from "
              f"the sum of the {size} changes by {local_additivity(oracle, AX, AF, moves, size, rng):.3f} points (std)")
    by_flops = front[np.argsort(AF[front, 1])]
    for lag in (1, 10, 30):
        corr = []
        for a, b in zip(by_flops[:-lag], by_flops[lag:]):
            shared = sorted(set(moves.get(int(a), {})) & set(moves.get(int(b), {})))
            if len(shared) >= 10:
                corr.append(np.corrcoef([moves[int(a)][m] for m in shared], [moves[int(b)][m] for m in shared])[0, 1])
        print(f"  the same single-gene move at front members {lag:2d} apart (by FLOPs): correlation of its true "
              f"error change {np.mean(corr):.3f}")


def local_additivity(oracle: OFAOracle, AX: np.ndarray, AF: np.ndarray, moves: dict[int, dict[tuple, float]],
                     size: int, rng: np.random.Generator, tries: int = 100) -> float:
    """Mean over every 10th front member (of `moves`) of the std of (true error change of `size` of its
    single-gene moves made together) - (sum of their single changes): how additive the oracle is there."""
    spreads = []
    for i in sorted(moves)[::10]:
        known, base = list(moves[i]), AX[i]
        base_canonical = oracle.space.canonical(base[None])[0]
        gaps = []
        for _ in range(tries):
            picked = [known[j] for j in rng.choice(len(known), size, replace=False)]
            if len({gene for gene, _ in picked}) < size:
                continue
            y = base.copy()
            for gene, value in picked:
                y[gene] = value
            y = oracle.space.canonical(y[None])
            if (y[0] != base_canonical).sum() != size:
                continue  # a depth change hid or showed other genes
            gaps.append(oracle.top1_err(y)[0] - AF[i, 0] - sum(moves[i][m] for m in picked))
        if len(gaps) > 10:
            spreads.append(np.std(gaps))
    return float(np.mean(spreads))


def macro_step(space, x: np.ndarray, axis: str, sign: int, rng: np.random.Generator) -> np.ndarray | None:
    """x after one step of `sign` along `axis`: "r" the resolution, "k" / "e" half the active layers' kernel /
    expand choices, "d" one layer of a random stage (a new layer copies the stage's last one); None if impossible."""
    y = x.copy()
    if axis == "r":
        y[RESOLUTION_GENE] += sign
        return y if 0 <= y[RESOLUTION_GENE] <= space.xu[RESOLUTION_GENE] else None
    if axis in ("k", "e"):
        genes = (KERNEL_GENES if axis == "k" else EXPAND_GENES)[space.active_layers(y[None])[0]]
        movable = [g for g in genes if 0 <= y[g] + sign <= space.xu[g]]
        if not movable:
            return None
        y[rng.choice(movable, max(1, round(len(movable) / 2)), replace=False)] += sign
        return y
    stages = [s for s in range(len(DEPTH_GENES)) if 0 <= y[DEPTH_GENES[s]] + sign <= space.xu[DEPTH_GENES[s]]]
    if not stages:
        return None
    stage = rng.choice(stages)
    if sign > 0:
        last = stage * MAX_DEPTH + space.depths[y[DEPTH_GENES[stage]]] - 1
        y[KERNEL_GENES[last + 1]], y[EXPAND_GENES[last + 1]] = y[KERNEL_GENES[last]], y[EXPAND_GENES[last]]
    y[DEPTH_GENES[stage]] += sign
    return y


def reallocations(space, x: np.ndarray, rng: np.random.Generator, tries: int = 40) -> list[np.ndarray]:
    """FLOPs-matched macro moves of x: one step down one axis, then steps up another until the FLOPs are back."""
    from codebase.complexity import genome_complexity, to_millions

    flops = lambda y: float(np.ravel(to_millions(genome_complexity(space, y[None], 1000))["flops"])[0])  # noqa: E731
    target, out = flops(x), []
    for _ in range(tries):
        down, up = rng.choice(["r", "k", "e", "d"], 2, replace=False)
        y = macro_step(space, x, down, -1, rng)
        while y is not None and flops(y) < 0.97 * target:
            z = macro_step(space, y, up, +1, rng)
            if z is None:
                break
            y = z
        if y is not None and 0.90 * target <= flops(y) <= 1.05 * target:
            out.append(space.canonical(y[None])[0])
    return out


def scouts(oracle: OFAOracle, AX: np.ndarray, AF: np.ndarray, nhv, seed: int) -> None:
    """Section --scouts: macro reallocations against single-gene neighbours as candidates, along the run."""
    rng = np.random.default_rng(seed)
    space = oracle.space
    for iteration in (2, 5, 10, 20, 30):
        n = bench.PROTOCOL["n_doe"] + bench.PROTOCOL["n_iter"] * iteration  # the archive is in evaluation order
        X, F = AX[:n], AF[:n]
        FX = X[nondominated(F)]
        line = f"iteration {iteration}: hv {nhv(F):.4f}, {len(FX)} front members"
        if iteration < bench.PROTOCOL["iterations"]:
            line += f", the run's next 8 picks +{nhv(AF[: n + bench.PROTOCOL['n_iter']]) - nhv(F):.4f}"
        realloc = np.unique(np.array([y for x in FX for y in reallocations(space, x, rng)]), axis=0)
        for name, C in (("reallocations", realloc), ("single-gene", single_gene_neighbours(space, FX)[0])):
            FC = bench.true_objectives(oracle, C)
            gain = lambda idx, F=F, FC=FC: nhv(np.concatenate([F, FC[idx]])) - nhv(F)  # noqa: E731
            alone = np.array([gain([i]) for i in range(len(C))])
            random8 = np.mean([gain(rng.choice(len(C), 8, replace=False)) for _ in range(20)])
            line += (f" | {name} {len(C)}: {(alone > 0).mean():.2f} enter the front, 8 random +{random8:.4f}, "
                     f"8 best +{gain(np.argsort(-alone)[:8]):.4f}")
        print(line, flush=True)


def pick_residuals(space, run: Path) -> None:
    """Each iteration's picks: genes from the archive before them against true minus predicted error."""
    rows = []
    for k in range(1, 10_000):
        plan_path = run / f"iter_{k}" / "plan.json"
        if not plan_path.is_file() or not (run / f"iter_{k}.stats").is_file():
            break
        plan, before, after = (read_json(plan_path), read_json(run / f"iter_{k - 1}.stats"),
                               read_json(run / f"iter_{k}.stats"))
        if not plan.get("predicted"):
            continue
        A = space.canonical(np.array([space.encode(e[0]) for e in before["archive"]]))
        C = space.canonical(np.array([space.encode(e[0]) for e in after["candidates"]]))
        X = space.canonical(np.array(plan["genomes"]))
        for x, predicted in zip(X, np.asarray(plan["predicted"])[:, 0]):
            hit = np.flatnonzero((C == x).all(axis=1))
            if len(hit):  # a failed evaluation has no true error
                rows.append((k, int((A != x).sum(axis=1).min()), after["candidates"][hit[0]][1] - predicted))
    if not rows:
        raise SystemExit(f"{run}: no iteration with a plan.json and its stats")
    r = np.array(rows, dtype=float)
    print(f"{run}: {len(r)} picks over {int(r[:, 0].max())} iterations; true minus predicted error by genes leapt:")
    for lo, hi in ((1, 2), (2, 3), (3, 5), (5, 8), (8, 12), (12, 1000)):
        m = (r[:, 1] >= lo) & (r[:, 1] < hi)
        if m.any():
            print(f"  {lo:2d}-{min(hi - 1, 99):2d} genes: {m.sum():3d} picks, mean {r[m, 2].mean():+.3f}, "
                  f"std {r[m, 2].std():.3f}")


def stage_uniform_front(oracle: OFAOracle, reference: dict, calls: int = 50_000, seed: int = 1) -> float:
    """Normalised hv of NSGA-II's front over the architectures whose layers share their stage's kernel and expand."""
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    from codebase.search.pymoo_adapter import make_algorithm
    from search_space.ofa import N_STAGES

    space, seen = oracle.space, []

    def full(Z: np.ndarray) -> np.ndarray:  # 5 depths, 5 kernels, 5 expand ratios, the resolution
        Z, X = np.rint(Z).astype(int), np.zeros((len(Z), space.n_var), dtype=int)
        X[:, DEPTH_GENES], X[:, RESOLUTION_GENE] = Z[:, :N_STAGES], Z[:, -1]
        X[:, KERNEL_GENES] = np.repeat(Z[:, N_STAGES:2 * N_STAGES], MAX_DEPTH, axis=1)
        X[:, EXPAND_GENES] = np.repeat(Z[:, 2 * N_STAGES:3 * N_STAGES], MAX_DEPTH, axis=1)
        return space.canonical(X)

    xu = np.r_[space.xu[DEPTH_GENES], space.xu[KERNEL_GENES][::MAX_DEPTH], space.xu[EXPAND_GENES][::MAX_DEPTH],
               space.xu[RESOLUTION_GENE]].astype(float)

    class StageUniform(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=len(xu), n_obj=2, xl=np.zeros(len(xu)), xu=xu)

        def _evaluate(self, z, out, *args, **kwargs):
            out["F"] = bench.true_objectives(oracle, full(z))
            seen.append(out["F"])

    pop = 200
    initial = np.random.default_rng(seed).integers(0, xu.astype(int) + 1, size=(pop, len(xu)))
    minimize(StageUniform(), make_algorithm(space, 2, pop, initial), ("n_gen", calls // pop), seed=seed,
             verbose=False)
    F = np.concatenate(seen)
    score = bench.normalised_hv(F, reference)
    print(f"stage-uniform subspace: {len(F)} oracle calls, normalised hv of its front {score:.4f}")
    return score


def main() -> None:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--oracle_path", default=str(bench.DEFAULT_ORACLE))
    p.add_argument("--predictor", default="gp_additive")
    p.add_argument("--models", nargs="+", default=["gp_additive", "rbf", "carts"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--extra", type=int, default=150)
    p.add_argument("--probes", type=int, default=120, help="section 8: neighbours evaluated to refit the model")
    p.add_argument("--probe_genes", type=int, nargs="+", default=[1, 3, 6],
                   help="section 8: genes changed per probe (1: single-gene neighbours)")
    p.add_argument("--scouts", action="store_true", help="only the FLOPs-matched reallocation measurement")
    p.add_argument("--residuals", metavar="RUN", help="only the picks' errors against their leaps, of a kept run")
    p.add_argument("--stage_uniform", action="store_true", help="only the stage-uniform subspace's best front")
    args = p.parse_args()
    if args.stage_uniform:
        return stage_uniform_front(OFAOracle(args.oracle_path, oracle_space()), read_json(bench.REFERENCE))
    if args.residuals:
        return pick_residuals(oracle_space(), Path(args.residuals))
    oracle = OFAOracle(args.oracle_path, oracle_space())
    space, reference = oracle.space, read_json(bench.REFERENCE)
    R = np.asarray(reference["front"])
    nhv = lambda F: bench.normalised_hv(F, reference)  # noqa: E731
    if args.scouts:
        AX, AF = bench.run_msunas_archive(Path(args.oracle_path), args.predictor, args.seed, {})
        return scouts(oracle, AX, AF, nhv, args.seed)

    TX, TF = true_front(oracle, args.calls, seed=1000 + args.seed)
    print(f"true front: {len(TX)} architectures from {args.calls} oracle calls, normalised hv {nhv(TF):.4f}")
    AX, AF = bench.run_msunas_archive(Path(args.oracle_path), args.predictor, args.seed, {})
    front = nondominated(AF)
    best_at = lambda flops: R[R[:, 1] <= flops, 0].min()  # noqa: E731
    trail = np.array([AF[i, 0] - best_at(AF[i, 1]) for i in front])
    density_only = np.array([[best_at(AF[i, 1]), AF[i, 1]] for i in front])
    print(f"msunas:{args.predictor} seed {args.seed}: normalised hv {nhv(AF):.4f}; its front has {len(front)} "
          f"points; at the reference's error for those FLOPs it would score {nhv(density_only):.4f}; "
          f"it trails the reference by {trail.mean():.3f} error points on average (max {trail.max():.3f})")

    progress(AX, AF, TX, nhv, bench.PROTOCOL["n_doe"], bench.PROTOCOL["n_iter"])
    print("how uniform each set is (share of rows holding a layer's most common choice; mean kernel size):")
    for name, X in (("initial design", AX[: bench.PROTOCOL["n_doe"]]), ("archive front", AX[front]),
                    ("true front", TX)):
        kernel, expand, mean_ks = gene_agreement(space, X)
        print(f"  {name:>14} ({len(X):3d}): kernel {kernel:.2f}, expand {expand:.2f}; mean kernel size {mean_ks:.2f}")

    model = get_acc_predictor(args.predictor, search_space=space, seed=0).fit(AX, AF[:, 0])
    bias_true = model.predict(TX) - TF[:, 0]
    bias_own = model.predict(AX[front]) - AF[front, 0]
    line = f"{args.predictor} fitted on the archive: bias {bias_true.mean():+.3f} on the true front, " \
           f"{bias_own.mean():+.3f} on its own front"
    if hasattr(model, "predict_std"):
        line += f"; predicted std {model.predict_std(TX).mean():.3f} on the true front, " \
                f"{model.predict_std(AX[front]).mean():.3f} on its own"
    distance = genes_apart(TX, AX)
    print(line + f"; genes from the true front to the nearest archive genome: median {np.median(distance):.0f} "
          f"(10-90%: {np.percentile(distance, 10):.0f}-{np.percentile(distance, 90):.0f})")

    print("  its bias on the true front by resolution (architectures there, archive's architectures there): "
          + ", ".join(f"{space.resolutions[r]}: {bias_true[TX[:, RESOLUTION_GENE] == r].mean():+.2f} "
                      f"({(TX[:, RESOLUTION_GENE] == r).sum()}, {(AX[:, RESOLUTION_GENE] == r).sum()})"
                      for r in range(len(space.resolutions)) if (TX[:, RESOLUTION_GENE] == r).any()))
    layers = space.active_layers(TX).sum(1)
    print("  and by number of layers: " + ", ".join(f"{n}: {bias_true[layers == n].mean():+.2f} ({(layers == n).sum()})"
                                                 for n in np.unique(layers)))

    archive_best = np.array([AF[front][AF[front][:, 1] <= f, 0].min(initial=np.inf) for f in TF[:, 1]])
    fitted = {args.predictor: model, **{name: get_acc_predictor(name, search_space=space, seed=0).fit(AX, AF[:, 0])
                                        for name in args.models if name != args.predictor}}
    beat = {name: (m.predict(TX) < archive_best).mean() for name, m in fitted.items()}
    print(f"  share of the true front predicted to beat the archive's front at its FLOPs (truly "
          f"{(TF[:, 0] < archive_best).mean():.2f}): " + ", ".join(f"{n} {v:.2f}" for n, v in beat.items()))

    ridge = RandomDataRidge(oracle, 2000, seed=args.seed + 5)
    print("largest misjudged effects on the true front (one gene raised by one choice), error change: "
          f"true / {args.predictor} on the archive / ridge on 2,000 random architectures")
    for gene, n, true, pred, pred_ridge in gene_effects(oracle, [model, ridge], TX)[:6]:
        print(f"  {gene:>6} ({n:3d} architectures): {true:+.3f} / {pred:+.3f} / {pred_ridge:+.3f}")

    rng = np.random.default_rng(args.seed)
    pool = np.unique(np.concatenate([AX[front], TX, mutants(space, AX[front], 30, rng), mutants(space, TX, 10, rng)]),
                     axis=0)
    PF = bench.true_objectives(oracle, pool)
    extra = rng.choice(len(pool), args.extra, replace=False)

    def picked(pred: np.ndarray, F_known: np.ndarray) -> float:
        idx = nondominated(np.column_stack([pred, PF[:, 1]]))
        idx = idx[np.argsort(PF[idx, 1])]
        idx = idx[np.linspace(0, len(idx) - 1, min(40, len(idx))).astype(int)]
        return nhv(np.concatenate([F_known, PF[idx]]))

    print(f"pool of {len(pool)} mutants of both fronts: archive {nhv(AF):.4f}, archive + whole pool "
          f"{nhv(np.concatenate([AF, PF])):.4f}, archive + 40 picked by the oracle itself {picked(PF[:, 0], AF):.4f}")
    XE, FE = np.concatenate([AX, pool[extra]]), np.concatenate([AF, PF[extra]])
    for name in args.models:
        alone = get_acc_predictor(name, search_space=space, seed=0).fit(AX, AF[:, 0]).predict(pool)
        more = get_acc_predictor(name, search_space=space, seed=0).fit(XE, FE[:, 0]).predict(pool)
        print(f"  {name}: 40 picked by the archive's model {picked(alone, AF):.4f}; with {args.extra} pool "
              f"members added to its training data {picked(more, AF):.4f}")

    one_step(oracle, args.predictor, AX, AF, reference, nhv, probes=args.probes, seed=args.seed,
             probe_genes=tuple(args.probe_genes))


if __name__ == "__main__":
    main()
