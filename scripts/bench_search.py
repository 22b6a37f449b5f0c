"""Sample efficiency of MSuNAS against random search and NSGA-II on the OFA oracle (CPU only).

    python scripts/bench_search.py --make_reference            # once: the long NSGA-II reference front
    python scripts/bench_search.py --seeds 10 --methods msunas:rbf random nsga2:340 nsga2:3400

Protocol (issue #4): objectives top-1 error (OFA's published ImageNet predictor) and FLOPs (exact,
torchprofile convention) over the OFA w1.2 space at 160..224 step 16. The normalised hypervolume of
a run is the hypervolume of its true front after its budget, with objectives scaled by the ideal and
nadir of a reference front (a long NSGA-II run, >= 300,000 oracle calls, stored beside this script),
reference point (1.01, 1.01), divided by the reference front's own hypervolume.

A method is `msunas:PREDICTOR[:key=value,...]` (settings of codebase.search.engine.SearchSettings,
e.g. `msunas:rbf:subset=spread,inner_pop=40,inner_gens=20`), `random` (350 random architectures),
or `nsga2:N` (plain NSGA-II, population 100, for N evaluations).
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
from codebase.complexity import genome_complexity, to_millions  # noqa: E402
from codebase.io import read_json, write_json  # noqa: E402
from codebase.oracle import OFAOracle, oracle_space  # noqa: E402
from codebase.search.indicators import hypervolume, nondominated  # noqa: E402

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "ofa_oracle_reference_front.json"
DEFAULT_ORACLE = HERE.parents[1] / "shared" / "data" / "ofa" / "acc_predictor.pth"
BUDGET = 340
PROTOCOL = {"n_doe": 100, "iterations": 30, "n_iter": 8}  # an MSuNAS run of the protocol: 100 + 30 x 8 = 340


def true_objectives(oracle: OFAOracle, X: np.ndarray) -> np.ndarray:
    space = oracle.space
    flops = to_millions(genome_complexity(space, X, 1000))["flops"]
    return np.column_stack([100.0 - oracle.top1(X), np.atleast_1d(flops)])


def nsga2(oracle: OFAOracle, n_eval: int, seed: int, pop_size: int = 100) -> np.ndarray:
    """Plain NSGA-II on true objectives; returns the objectives of every architecture it evaluated."""
    return nsga2_archive(oracle, n_eval, seed, pop_size)[1]


def nsga2_archive(oracle: OFAOracle, n_eval: int, seed: int, pop_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Plain NSGA-II on true objectives: genomes and objectives of the first n_eval distinct architectures."""
    from pymoo.core.problem import Problem

    from codebase.search.pymoo_adapter import make_algorithm

    space, seen = oracle.space, {}

    class OracleProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=space.n_var, n_obj=2, xl=space.xl.astype(float), xu=space.xu.astype(float))

        def _evaluate(self, x, out, *args, **kwargs):
            X = space.canonical(np.rint(x).astype(int))
            F = true_objectives(oracle, X)
            for row, f in zip(X, F):
                seen.setdefault(row.tobytes(), (row, f))
            out["F"] = F

    rng = np.random.default_rng(seed)
    initial = space.initialize(pop_size, rng)
    n_off = pop_size if n_eval > 10 * pop_size else 8
    algorithm = make_algorithm(space, 2, pop_size, initial, n_offsprings=n_off)
    problem = OracleProblem()
    algorithm.setup(problem, termination=("n_gen", 10**9), seed=seed, verbose=False)  # stop on budget only
    while len(seen) < n_eval:
        pop = algorithm.ask()
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
    rows = list(seen.values())[:n_eval]
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def make_reference(oracle: OFAOracle, n_calls: int, seed: int) -> None:
    """The reference front: the non-dominated set of every architecture a long NSGA-II run evaluated."""
    t = time.time()
    F = np.concatenate([nsga2(oracle, n_calls // 2, seed + s, pop_size=500) for s in range(2)])
    front = F[nondominated(F)]
    front = front[np.argsort(front[:, 1])]
    write_json(REFERENCE, {"protocol": __doc__.split("Protocol")[1].strip(), "oracle_calls": int(len(F)),
                           "seconds": round(time.time() - t, 1), "objectives": ["top1_err", "flops"],
                           "front": front.tolist()})
    print(f"reference front: {len(front)} points from {len(F)} evaluations, saved to {REFERENCE}")


def scaled(F: np.ndarray, reference: dict) -> np.ndarray:
    """Objectives scaled by the ideal and nadir of the reference front (the protocol's scale)."""
    front = np.asarray(reference["front"])
    ideal, nadir = front.min(axis=0), front.max(axis=0)
    return (np.asarray(F) - ideal) / (nadir - ideal)


def normalised_hv(F: np.ndarray, reference: dict) -> float:
    ref = np.array([1.01, 1.01])
    return hypervolume(scaled(F, reference), ref) / hypervolume(scaled(reference["front"], reference), ref)


def run_msunas(oracle_path: Path, predictor: str, seed: int, settings: dict) -> np.ndarray:
    return run_msunas_archive(oracle_path, predictor, seed, settings)[1]


def run_msunas_archive(oracle_path: Path, predictor: str, seed: int, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """One MSuNAS run of the protocol: the genomes and true objectives of its final archive."""
    from codebase.evaluators.oracle import OracleEvaluator
    from codebase.search.engine import MSuNAS, SearchSettings
    from codebase.search.objectives import parse_objectives

    evaluator = OracleEvaluator(oracle_path)
    objectives = parse_objectives("flops", evaluator.space, 1000)
    options = {"seed": seed, **PROTOCOL, "predictor": predictor, **settings}
    with tempfile.TemporaryDirectory() as save:
        stats = MSuNAS(save, evaluator.space, evaluator, objectives, SearchSettings(**options)).run(progress=False)
    X = np.array([evaluator.space.encode(entry[0]) for entry in stats["archive"]])
    return X, np.array([entry[1:] for entry in stats["archive"]])


def parse_method(text: str) -> tuple[str, str, dict]:
    parts = text.split(":")
    settings = {}
    if len(parts) > 2:
        for item in parts[2].split(","):
            key, value = item.split("=")
            settings[key] = value if key in ("subset", "predictor", "candidates") else float(value)
            if key != "explore" and isinstance(settings[key], float):
                settings[key] = int(settings[key])
    return parts[0], parts[1] if len(parts) > 1 else "", settings


def main() -> None:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--oracle_path", default=str(DEFAULT_ORACLE))
    p.add_argument("--make_reference", action="store_true")
    p.add_argument("--reference_calls", type=int, default=300_000)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--methods", nargs="+", default=["msunas:rbf", "random", "nsga2:340", "nsga2:3400"])
    p.add_argument("--out", help="also append the table rows to this file")
    args = p.parse_args()
    oracle = OFAOracle(args.oracle_path, oracle_space())
    if args.make_reference:
        make_reference(oracle, args.reference_calls, seed=12345)
        return
    reference = read_json(REFERENCE)
    rows = []
    for method in args.methods:
        kind, arg, settings = parse_method(method)
        scores, seconds = [], []
        for seed in range(args.seeds):
            t = time.time()
            if kind == "msunas":
                F = run_msunas(Path(args.oracle_path), arg, seed, settings)
            elif kind == "random":
                X = oracle.space.initialize(350, np.random.default_rng(seed))
                F = true_objectives(oracle, X)
            elif kind == "nsga2":
                F = nsga2(oracle, int(arg), seed)
            else:
                raise SystemExit(f"unknown method {method}")
            seconds.append(time.time() - t)
            scores.append(normalised_hv(F, reference))
            print(f"{method} seed {seed}: {len(F)} evaluations, normalised hv {scores[-1]:.4f}, "
                  f"{seconds[-1]:.1f} s", flush=True)
        row = (f"| {method} | {len(F)} | {np.mean(scores):.3f} ± {np.std(scores):.3f} | {np.mean(seconds):.1f} |")
        rows.append(row)
        print(row, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(row + "\n")
    print("\n| method | evaluations | normalised hv (mean ± std) | seconds / run |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
