"""Benchmark the accuracy surrogates against OFA's ImageNet accuracy predictor ("true" accuracy).

Space: OFA MobileNetV3 w1.2, resolutions 160..224 step 16. Per seed: 2,000 random test
architectures and, disjoint from them, training sets of each size in --n-train. Reports Kendall
tau, rmse (percent top-1 error), fit and predict time, averaged over seeds, as a markdown table.

    OMP_NUM_THREADS=1 python scripts/bench_predictors.py --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acc_predictor import acc_predictor_names, correlation, get_acc_predictor  # noqa: E402
from codebase.cli import OneLineParser  # noqa: E402
from codebase.io import write_json  # noqa: E402
from codebase.oracle import OFAOracle, oracle_space  # noqa: E402
from search_space.base import unique_rows  # noqa: E402

DEFAULT_ORACLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "acc_predictor.pth"
DEFAULT_MODELS = ("rbf", "gp", "carts", "mlp", "as")


def distinct_sample(space, n: int, rng: np.random.Generator) -> np.ndarray:
    X = space.sample(2 * n, rng)
    while len(X[unique_rows(X)]) < n:
        X = np.concatenate([X, space.sample(n, rng)])
    return X[unique_rows(X)][:n]


def run(models: list[str], n_trains: list[int], n_test: int, seeds: int, oracle: OFAOracle) -> list[dict]:
    space = oracle_space()
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        X = distinct_sample(space, n_test + max(n_trains), rng)
        X_test, X_pool = X[:n_test], X[n_test:]
        y_test, y_pool = oracle.top1_err(X_test), oracle.top1_err(X_pool)
        for n in n_trains:
            for name in models:
                model = get_acc_predictor(name, search_space=space, seed=seed)
                t0 = time.perf_counter()
                model.fit(X_pool[:n], y_pool[:n])
                t1 = time.perf_counter()
                pred = model.predict(X_test)
                t2 = time.perf_counter()
                row = {
                    "model": name,
                    "n": n,
                    "seed": seed,
                    "fit_s": t1 - t0,
                    "predict_s": t2 - t1,
                    **correlation(pred, y_test),
                }
                if getattr(model, "winner", None):
                    row["winner"] = model.winner
                rows.append(row)
                print(
                    f"seed {seed} n {n} {name:14s} tau {row['tau']:.3f} rmse {row['rmse']:.3f} "
                    f"fit {row['fit_s']:.2f}s predict {row['predict_s']:.2f}s {row.get('winner', '')}",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def table(rows: list[dict], models: list[str], n_trains: list[int], n_test: int = 2000) -> str:
    lines = [f"| model | n | tau | rmse | fit s | predict s ({n_test:,}) |", "|---|---|---|---|---|---|"]
    for n in n_trains:
        for name in models:
            sel = [r for r in rows if r["model"] == name and r["n"] == n]
            tau = np.array([r["tau"] for r in sel])
            winners = sorted({r["winner"] for r in sel if "winner" in r})
            label = name + (f" (won: {', '.join(winners)})" if winners else "")
            lines.append(
                f"| {label} | {n} | {tau.mean():.3f} ± {tau.std():.3f} | {np.mean([r['rmse'] for r in sel]):.3f} "
                f"| {np.mean([r['fit_s'] for r in sel]):.3f} | {np.mean([r['predict_s'] for r in sel]):.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--oracle", type=Path, default=DEFAULT_ORACLE, help="OFA acc_predictor.pth")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help=f"of {acc_predictor_names()}")
    parser.add_argument("--n-train", nargs="+", type=int, default=[100, 340])
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = parser.parse_args()
    try:
        for name in args.models:
            if name not in acc_predictor_names():
                raise ValueError(f"unknown accuracy predictor '{name}'; choose from {acc_predictor_names()}")
        if min(args.n_train) < 2 or args.n_test < 2 or args.seeds < 1:
            raise ValueError("--n-train and --n-test must be at least 2, --seeds at least 1")
        rows = run(args.models, args.n_train, args.n_test, args.seeds, OFAOracle(args.oracle))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(table(rows, args.models, args.n_train, args.n_test))
    if args.json:
        write_json(args.json, rows, indent=1)


if __name__ == "__main__":
    main()
