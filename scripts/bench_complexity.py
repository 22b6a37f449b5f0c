"""Closed-form complexity vs. torchprofile on extracted subnets: architectures per second.

    python scripts/bench_complexity.py [--n 10000] [--n_ref 20] [--width 1.0]

Both run in this process on one core (torch and BLAS threads set to 1), same random subnets.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from codebase.cli import OneLineParser  # noqa: E402
from codebase.complexity import genome_complexity  # noqa: E402
from codebase.supernet import build_supernet, extract_subnet  # noqa: E402
from search_space import OFASearchSpace  # noqa: E402


def main() -> None:
    p = OneLineParser(description=__doc__)
    p.add_argument("--n", type=int, default=10000, help="genomes for the closed form")
    p.add_argument("--n_ref", type=int, default=20, help="subnets for torchprofile (slow)")
    p.add_argument("--width", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    import torchprofile

    space = OFASearchSpace(width_mult=args.width)
    X = space.sample(args.n, np.random.default_rng(0))
    genome_complexity(space, X[:10])  # warm caches
    t = time.perf_counter()
    genome_complexity(space, X)
    closed = args.n / (time.perf_counter() - t)

    supernet = build_supernet(args.width, 1000)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in X[: args.n_ref]:
            subnet = space.decode(x)
            net = extract_subnet(supernet, subnet, preserve_weight=False).eval()
            torchprofile.profile_macs(net, torch.zeros(1, 3, subnet["r"], subnet["r"]))
    ref = args.n_ref / (time.perf_counter() - t)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread used")
    print("| method | architectures / s | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| closed form, vectorised ({args.n} genomes) | {closed:,.0f} | {closed / ref:,.0f}x |")
    print(f"| extract subnet + torchprofile ({args.n_ref} subnets) | {ref:,.2f} | 1x |")


if __name__ == "__main__":
    main()
