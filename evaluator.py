r"""Evaluate or profile one architecture.

    python evaluator.py --subnet net.subnet --dataset D [--data PATH] --supernet_path W \
        [--n_classes N] [--n_epochs E] [--img-size R] [--save net.stats] [--save_config DIR]

evaluates one OFA subnet with weights inherited from a supernet (batch norm recalibrated on the task's
training images, optionally fine-tuned) on the validation split held out of the training set (--test:
the test set), prints its net.stats as one JSON line and writes it to --save; --save_config DIR also
writes DIR/net.config and DIR/net.inherited. --img-size scores it at that resolution instead of its r; a
resolution the supernet was not trained at (train_supernet.py checkpoints record them) is warned about.

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
import sys
from pathlib import Path

from codebase.cli import (
    NSGANET_NETWORK_FLAGS,
    OneLineParser,
    add_nsganet_network_args,
    check_unused,
    flag_names,
    flags_given,
    run_main,
)
from search_space.ofa import MAX_RESOLUTION


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", action="store_true", help="print params and FLOPs as one JSON line and exit")
    p.add_argument("--subnet", help="a .subnet file: {'ks': [...], 'e': [...], 'd': [...], 'r': R}")
    p.add_argument("--config", help="a net.config file (ofa MobileNetV3 config, either spelling)")
    p.add_argument("--img-size", "--img_size", dest="img_size", type=int, help="input resolution (default: subnet's r)")
    p.add_argument("--width", "--width_mult", dest="width_mult", type=float, default=None, choices=(1.0, 1.2),
                   help="width of the OFA supernet (default 1.0)")
    p.add_argument("--n_classes", type=int, default=None,
                   help="classes of the head (default: the data set's; with --profile 1000, NSGA-Net 10)")
    ev = p.add_argument_group("evaluating an OFA subnet (without --profile)")
    ev.add_argument("--dataset", default=None,
                    help="data set name (see codebase/data; default digits); with --profile: its class count")
    ev.add_argument("--data", help="folder that holds the data set")
    ev.add_argument("--supernet_path", help="OFA supernet checkpoint ({'state_dict': ...})")
    ev.add_argument("--resolutions", type=int, nargs="+",
                    help="resolutions of the space (default: those a train_supernet.py checkpoint was trained at, "
                         "else the data set's; plus the subnet's r)")
    ev.add_argument("--vld_size", type=int, default=None, help="validation images held out of the training set")
    ev.add_argument("--seed", type=int, default=0,
                    help="seed of fine-tuning (--n_epochs); the validation split and the BN calibration subset "
                         "are the same for every seed")
    ev.add_argument("--n_epochs", type=int, default=0, help="fine-tuning epochs before scoring")
    ev.add_argument("--bn_size", type=int, default=2000, help="training images for batch-norm recalibration")
    ev.add_argument("--test", action="store_true", help="score on the test set")
    ev.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ev.add_argument("--measure", nargs="+", default=[], choices=("cpu", "gpu"),
                    help="also measure latency here: cpu, gpu or both (a bare --measure named none)")
    ev.add_argument("--save", help="write the stats to this file (net.stats)")
    ev.add_argument("--save_config", metavar="DIR", help="write DIR/net.config and DIR/net.inherited")
    add_nsganet_network_args(p, "NSGA-Net networks (with --profile)")
    return p


def _check_img_size(img_size: int | None) -> None:
    """--img-size, when given, is a positive number of pixels (0 is refused, not read as 'not given')."""
    if img_size is not None and not 1 <= img_size <= MAX_RESOLUTION:
        raise ValueError(f"--img-size {img_size}: expected an input resolution in 1..{MAX_RESOLUTION} pixels")


def profile(args: argparse.Namespace) -> dict[str, float]:
    from codebase.complexity import subnet_complexity
    from codebase.ofa_config import config_complexity, load_config
    from search_space.ofa import OFASearchSpace, load_subnet, subnet_resolution

    # None (not given) takes the default; 0 is a head without classes, refused like a negative count
    if args.n_classes is not None and args.n_classes < 1:
        raise ValueError(f"--n_classes must be positive, got {args.n_classes}")
    if args.config and (args.n_classes is not None or args.width_mult is not None or args.dataset is not None):
        raise ValueError("--profile --config: the config fixes the head and the widths; drop --n_classes, "
                         "--dataset and --width")
    if args.data is not None and args.dataset is None:  # a forgotten --dataset would count another head silently
        raise ValueError(f"--data {args.data}: name its data set with --dataset (--profile reads --data only for "
                         f"the class count of a --dataset folder)")
    if args.dataset == "digits" and args.data is not None:
        from codebase.data import get_dataset

        get_dataset("digits", args.data, "train")  # refuses the folder in one line
    if args.dataset is not None:  # the head of that task, as a search counts it
        from codebase.data import dataset_info
        from codebase.supernet_training import resolve_n_classes

        # --n_classes with --dataset was taken as it came (--dataset cifar100 --n_classes 10 counted a head the
        # search refuses); checked as the search does, except for a class folder not given to count
        if args.n_classes is None or args.data is not None or dataset_info(args.dataset).n_classes is not None:
            args.n_classes = resolve_n_classes(args.dataset, args.data, args.n_classes)
    if args.net_type:
        from codebase.nsganet_profile import profile as nsganet_profile

        return nsganet_profile(net_type=args.net_type, arch=args.arch, layers=args.layers,
                               init_channels=args.init_channels, filter_increment=args.filter_increment,
                               auxiliary=args.auxiliary, SE=args.SE,
                               n_classes=10 if args.n_classes is None else args.n_classes)
    n_classes = 1000 if args.n_classes is None else args.n_classes
    _check_img_size(args.img_size)
    if args.config:
        if args.img_size is None:
            raise ValueError("--profile --config needs --img-size (the input resolution)")
        return config_complexity(load_config(args.config), args.img_size)
    if not args.subnet:
        raise ValueError("--profile needs --subnet FILE or --config FILE")
    subnet = load_subnet(args.subnet)
    r = args.img_size if args.img_size is not None else subnet_resolution(subnet)
    # any positive size runs (digits subnets are 24..32 px); the closed form is exact at every size
    if isinstance(r, int) and not isinstance(r, bool) and not 1 <= r <= MAX_RESOLUTION:
        raise ValueError(f"resolution {r} is outside 1..{MAX_RESOLUTION}")
    # any resolution OFA can run is fine for profiling, so check the subnet against a permissive space
    width_mult = 1.0 if args.width_mult is None else args.width_mult
    space = OFASearchSpace(resolutions=tuple(sorted({int(r)} if isinstance(r, int) else {224})),
                           width_mult=width_mult)
    subnet = space.validate({**subnet, "r": r})
    return subnet_complexity(subnet, width_mult, n_classes)


EVALUATING = ("supernet_path", "resolutions", "vld_size", "seed", "n_epochs", "bn_size", "test", "device", "measure",
              "save", "save_config")


def unused_flags(args: argparse.Namespace) -> dict[str, str]:
    """{dest: when it applies} of the flags that have no effect in the mode `args` chose (refused if given)."""
    unused = dict.fromkeys(NSGANET_NETWORK_FLAGS, "only with --profile --net_type")
    if not args.profile:
        return {**unused, "config": "only with --profile", "net_type": "only with --profile"}
    unused = dict.fromkeys(EVALUATING, "only without --profile (evaluating a subnet)")
    if args.net_type:  # NSGA-Net's networks: 32x32 CIFAR input, their own widths
        unused.update(dict.fromkeys(("subnet", "config", "width_mult", "img_size"), "only for OFA subnets"))
        if args.net_type == "macro":
            unused.update(dict.fromkeys(("layers", "filter_increment"), "only with --net_type micro"))
        return unused
    return {**unused, **dict.fromkeys(NSGANET_NETWORK_FLAGS, "only with --net_type")}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # a flag of another mode was silently ignored (--profile --save wrote nothing; evaluating ignored --net_type)
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    check_unused(given, unused_flags(args), flag_names(parser))
    if args.profile and args.net_type == "macro":  # a published macro network's widths are fixed
        from codebase.nsganet_profile import warn_ignored_macro_flags

        warn_ignored_macro_flags(args.arch, given)
    if args.profile:
        print(json.dumps({k: round(v, 6) for k, v in profile(args).items()}))
        return 0
    print(json.dumps(evaluate(args)))
    return 0


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    """net.stats of one subnet (written to --save; --save_config exports it too)."""
    if not args.subnet:
        raise ValueError("nothing to do: pass --subnet FILE (with --supernet_path) or --profile")
    if not args.supernet_path:
        raise ValueError("evaluating a subnet needs --supernet_path (train one with train_supernet.py)")
    from codebase.evaluators.supernet import SupernetEvaluator, export_subnet, trained_resolutions
    from codebase.io import check_output_file, check_output_folder, write_json
    from codebase.supernet_training import default_resolutions
    from search_space.ofa import load_subnet, subnet_resolution

    # outputs are checked before the evaluation, which can take minutes (a file on their way too)
    if args.save:
        check_output_file(args.save, "--save")
    if args.save_config:
        check_output_folder(args.save_config, f"--save_config {args.save_config}")
        for name in ("net.config", "net.inherited", "net.subnet", "net.stats"):  # a folder there: not half-exported
            check_output_file(Path(args.save_config) / name, f"--save_config {args.save_config}:")
    args.dataset = args.dataset or "digits"
    subnet = load_subnet(args.subnet)
    _check_img_size(args.img_size)
    if args.img_size is not None:  # score at --img-size, as --profile counts at it
        subnet = {**subnet, "r": args.img_size}
    resolutions = args.resolutions
    if not resolutions:  # the supernet's own, as the search that found the subnet used them: images are decoded at
        r = subnet_resolution(subnet)  # the largest resolution of the space and resized down from there
        extra = {int(r)} if isinstance(r, int) and not isinstance(r, bool) else set()
        base = trained_resolutions(args.supernet_path) or default_resolutions(args.dataset)
        resolutions = sorted(set(base) | extra)
    options = {**vars(args), "resolutions": resolutions, "save": None, "measure": tuple(args.measure),
               "width_mult": 1.0 if args.width_mult is None else args.width_mult}
    evaluator = SupernetEvaluator(**options)
    stats = evaluator.evaluate(subnet)
    if args.save:
        write_json(args.save, stats)
    if args.save_config:
        export_subnet(options, subnet, args.save_config, evaluator=evaluator)
        # as post_search's export folders: validation.py reads the image size from net.subnet
        write_json(Path(args.save_config) / "net.subnet", evaluator.space.validate(subnet))
        write_json(Path(args.save_config) / "net.stats", stats)
    return stats


if __name__ == "__main__":
    run_main(main)
