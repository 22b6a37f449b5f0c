"""Evaluate or profile one architecture.

    python evaluator.py --profile --subnet net.subnet [--width 1.2] [--n_classes N]
    python evaluator.py --profile --config net.config --img-size R
    python evaluator.py --profile --net_type micro --arch NSGANet --layers 20 --init_channels 34 \
        --filter_increment 4 --auxiliary [--SE]
    python evaluator.py --profile --net_type macro --arch NSGANet

print one JSON line of millions: {"params": M, "flops": M, "flops_ofa": M} for OFA subnets (flops in
torchprofile's convention, flops_ofa in the ofa package's; closed form, no network is built) and
{"params": M, "flops": M} for NSGA-Net networks (32x32 CIFAR input, the original tool's counter).
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
    p.add_argument("--n_classes", type=int, default=None, help="classes of the head (default 1000; NSGA-Net: 10)")
    nsga = p.add_argument_group("NSGA-Net networks")
    nsga.add_argument("--net_type", choices=("micro", "macro"), help="profile an NSGA-Net network")
    nsga.add_argument("--arch", default="NSGANet", help="published name (NSGANet, DARTS_V2, ...) or a genome JSON file")
    nsga.add_argument("--layers", type=int, default=20)
    nsga.add_argument("--init_channels", type=int, default=34)
    nsga.add_argument("--filter_increment", type=int, default=4, help="pyramid widening per cell (0: plain)")
    nsga.add_argument("--auxiliary", action="store_true")
    nsga.add_argument("--SE", action="store_true", help="squeeze-and-excitation in every cell")
    return p


def profile(args: argparse.Namespace) -> dict[str, float]:
    from codebase.complexity import subnet_complexity
    from codebase.ofa_config import config_complexity, load_config
    from search_space.ofa import OFASearchSpace, load_subnet

    if args.net_type:
        from codebase.nsganet_profile import profile as nsganet_profile

        return nsganet_profile(net_type=args.net_type, arch=args.arch, layers=args.layers,
                               init_channels=args.init_channels, filter_increment=args.filter_increment,
                               auxiliary=args.auxiliary, SE=args.SE, n_classes=args.n_classes or 10)
    n_classes = args.n_classes or 1000
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
    if n_classes < 1:
        raise ValueError(f"--n_classes must be positive, got {n_classes}")
    return subnet_complexity(subnet, args.width_mult, n_classes)


def main() -> int:
    args = build_parser().parse_args()
    if args.profile:
        print(json.dumps({k: round(v, 6) for k, v in profile(args).items()}))
        return 0
    raise ValueError("nothing to do: pass --profile (subnet evaluation arrives with the supernet evaluator)")


if __name__ == "__main__":
    run_main(main)
