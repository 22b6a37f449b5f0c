"""Evaluate or profile one architecture.

    python evaluator.py --profile --subnet net.subnet [--width 1.2] [--n_classes N]
    python evaluator.py --profile --config net.config --img-size R

print one JSON line {"params": M, "flops": M, "flops_ofa": M} (millions; flops in torchprofile's
convention, flops_ofa in the ofa package's). No data, weights or network build is needed.
"""

from __future__ import annotations

import argparse
import json

from codebase.cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", action="store_true", help="print params and FLOPs as one JSON line and exit")
    p.add_argument("--subnet", help="a .subnet file: {'ks': [...], 'e': [...], 'd': [...], 'r': R}")
    p.add_argument("--config", help="a net.config file (ofa MobileNetV3 config, either spelling)")
    p.add_argument("--img-size", "--img_size", dest="img_size", type=int, help="input resolution (default: subnet's r)")
    p.add_argument("--width", "--width_mult", dest="width_mult", type=float, default=1.0, choices=(1.0, 1.2))
    p.add_argument("--n_classes", type=int, default=1000)
    return p


def profile(args: argparse.Namespace) -> dict[str, float]:
    from codebase.complexity import subnet_complexity
    from codebase.ofa_config import config_complexity, load_config
    from search_space.ofa import OFASearchSpace, load_subnet

    if args.config:
        if not args.img_size:
            raise ValueError("--profile --config needs --img-size (the input resolution)")
        return config_complexity(load_config(args.config), args.img_size)
    if not args.subnet:
        raise ValueError("--profile needs --subnet FILE or --config FILE")
    subnet = load_subnet(args.subnet)
    r = args.img_size or subnet.get("r")
    if isinstance(r, int) and not 32 <= r <= 1024:
        raise ValueError(f"resolution {r} is outside 32..1024")
    # any resolution OFA can run is fine for profiling, so check the subnet against a permissive space
    space = OFASearchSpace(resolutions=tuple(sorted({int(r)} if isinstance(r, int) else {224})),
                           width_mult=args.width_mult)
    subnet = space.validate({**subnet, "r": r})
    if args.n_classes < 1:
        raise ValueError(f"--n_classes must be positive, got {args.n_classes}")
    return subnet_complexity(subnet, args.width_mult, args.n_classes)


def main() -> int:
    args = build_parser().parse_args()
    if args.profile:
        print(json.dumps({k: round(v, 6) for k, v in profile(args).items()}))
        return 0
    raise ValueError("nothing to do: pass --profile (subnet evaluation arrives with the supernet evaluator)")


if __name__ == "__main__":
    run_main(main)
