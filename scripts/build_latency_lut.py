"""Build a latency look-up table for this machine (OFA Note10 format, one YAML per resolution).

    python scripts/build_latency_lut.py --save luts/my_cpu --device cpu --threads 1
    python scripts/build_latency_lut.py --save luts/my_gpu --device cuda --resolutions 192 224

Re-running on the same --save folder measures only the entries still missing. Load the result
with `codebase.latency.LatencyTable.load(<save>)`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from codebase.cli import OneLineParser  # noqa: E402
from codebase.latency.build import build_tables  # noqa: E402
from search_space.ofa import NSGANETV2_RESOLUTIONS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--save", required=True, help="output folder (<R>_lookup_table.yaml and args.yaml)")
    p.add_argument("--resolutions", type=int, nargs="+", default=list(NSGANETV2_RESOLUTIONS),
                   help="input resolutions (default: the search space's 192..256 step 4)")
    p.add_argument("--width_mult", type=float, default=1.0, choices=(1.0, 1.2), help="supernet width multiplier")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=50, help="timed forward passes per layer")
    p.add_argument("--warmup", type=int, default=10, help="untimed forward passes before timing")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU intra-op threads while timing (default 1; 0 keeps torch's setting)")
    p.add_argument("--kernel_sizes", type=int, nargs="+", default=[3, 5, 7])
    p.add_argument("--expand_ratios", type=int, nargs="+", default=[3, 4, 6])
    p.add_argument("--n_classes", type=int, default=1000)
    p.add_argument("--no_fold_bn", action="store_true", help="time BatchNorm separately (default: folded)")
    p.add_argument("--channels_last", action="store_true", help="time in channels_last memory format")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        paths = build_tables(
            args.save, args.resolutions, width_mult=args.width_mult, device=args.device,
            repeats=args.repeats, warmup=args.warmup, batch_size=args.batch_size,
            threads=args.threads or None, kernel_sizes=args.kernel_sizes, expand_ratios=args.expand_ratios,
            n_classes=args.n_classes, fold_bn=not args.no_fold_bn, channels_last=args.channels_last,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} table(s) to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
