r"""Fine-tune an exported architecture, or train an NSGA-Net network from scratch, on CIFAR and friends.

    python train_cifar.py --dataset cifar10 --data DATA --model NAME --model-config net.config \
        --initial-checkpoint net.inherited --img-size 224 --drop 0.2 --drop-path 0.2 --cutout --autoaugment --save DIR
    python train_cifar.py --net_type micro --arch NSGANet --layers 20 --init_channels 34 --filter_increment 4 \
        --SE --auxiliary --cutout --droprate 0.2 --epochs 600 --dataset cifar10 --data DATA --save DIR
    python train_cifar.py --resume DIR                      # continue from DIR/checkpoint.pth with DIR/args.yaml
    python train_cifar.py --evaluate --resume DIR           # score DIR/model.pth, no training
    python train_cifar.py ... --evaluate                    # score --initial-checkpoint FILE, no training
    torchrun --nproc_per_node 4 train_cifar.py ...          # several GPUs (DDP); gloo on CPU

Writes DIR/args.yaml, DIR/checkpoint.pth (every epoch), DIR/model.pth, DIR/metrics.csv, DIR/net.config.
Defaults follow the originals: fine-tuning SGD (momentum 0.9, no Nesterov) lr 0.01, wd 4e-5, 150 epochs, batch 96;
NSGA-Net from scratch SGD lr 0.025, wd 3e-4, 600 epochs, batch 96, auxiliary weight 0.4.
--resume DIR continues with the settings in DIR/args.yaml: only --data, --device, --workers, --amp, --quiet and
--evaluate may change; any other flag must repeat the stored value (with --evaluate the training-only ones,
e.g. --epochs or --lr, are free: they do not change the scores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from codebase.cli import (
    NSGANET_NETWORK_FLAGS,
    WORKERS,
    ArgumentsError,
    OneLineParser,
    absolute_path,
    add_nsganet_network_args,
    changed_settings,
    check_ranges,
    check_resume_save,
    check_storable,
    check_stored_types,
    check_unused,
    flag_names,
    flags_given,
    other_local_rank,
    run_main,
    stored_arguments,
)

OFA_DEFAULTS = {"lr": 0.01, "weight_decay": 4e-5, "epochs": 150, "nesterov": False}
NSGANET_DEFAULTS = {"lr": 0.025, "weight_decay": 3e-4, "epochs": 600, "nesterov": False}
# what --resume DIR may change: where the data are and how the run is executed (and whether it only scores)
RESUME_FREE = frozenset({"resume", "data", "device", "workers", "amp", "quiet", "evaluate"})
# flags that only shape the training: with --evaluate --resume DIR they change nothing
TRAINING_ONLY = frozenset({"epochs", "batch_size", "lr", "momentum", "weight_decay", "nesterov", "grad_clip", "drop",
                           "drop_path", "cutout", "cutout_length", "autoaugment", "seed", "auxiliary_weight",
                           "droprate"})
PATH_FLAGS = frozenset({"data", "model_config", "pretrained", "arch"})
# in every args.yaml train_cifar writes, and not all in those of msunas, train_supernet or train_imagenet
RUN_KEYS = ("save", "model_config", "pretrained", "cutout")
# checked before any data or weights are read (the libraries said `Invalid momentum value` after loading the data
# set, --drop-path 2 was a traceback in the first step)
RANGES = {"lr": "(0, inf)", "momentum": "[0, 1)", "weight_decay": "[0, inf)", "grad_clip": "[0, inf)",
          "drop": "[0, 1)", "drop_path": "[0, 1)", "workers": WORKERS, "auxiliary_weight": "[0, inf)",
          "droprate": "[0, 1)"}
NSGANET_ONLY = (*NSGANET_NETWORK_FLAGS, "auxiliary_weight", "droprate")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cifar10", help="cifar10, cifar100, cinic10, digits, ... (codebase/data)")
    p.add_argument("--data", help="folder holding the data set")
    p.add_argument("--model", default=None, help="a name for the run folder (as the original README used it)")
    p.add_argument("--model-config", "--model_config", dest="model_config", help="net.config of the architecture")
    p.add_argument("--initial-checkpoint", "--pretrained", dest="pretrained",
                   help="weights to start from (net.inherited, net.init, a checkpoint, a state dict)")
    p.add_argument("--img-size", "--img_size", dest="img_size", type=int, default=None,
                   help="input resolution (default: the config's r, else the data set's default)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=int, default=96,
                   help="images per process and step")
    p.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=None)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", "--weight-decay", dest="weight_decay", type=float, default=None)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--grad_clip", "--grad-clip", dest="grad_clip", type=float, default=5.0)
    p.add_argument("--drop", type=float, default=0.2, help="dropout before the classifier (ofa models)")
    p.add_argument("--drop-path", "--drop_path", dest="drop_path", type=float, default=0.2,
                   help="stochastic depth at the last block (ofa models)")
    p.add_argument("--cutout", action="store_true")
    p.add_argument("--cutout_length", type=int, default=None,
                   help="with --cutout: side in pixels at the data set's native size, scaled with --img-size "
                        "(default: 16 px, or half the native side where smaller: 4 px on 8-px digits)")
    p.add_argument("--autoaugment", action="store_true")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on with CUDA)")
    p.add_argument("--evaluate", action="store_true", help="only score the weights on the test set")
    p.add_argument("--save", nargs="?", const="", default="", help="run folder (default: exp/train-...)")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from its checkpoint.pth, with the settings in DIR/args.yaml")
    p.add_argument("-j", "--workers", "--num_workers", dest="workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    nsga = add_nsganet_network_args(p, "NSGA-Net networks (trained from scratch)")
    nsga.add_argument("--auxiliary_weight", type=float, default=0.4)
    nsga.add_argument("--droprate", type=float, default=0.2, help="drop path probability at the last epoch")
    return p


def absolute_paths(args: argparse.Namespace) -> None:
    """File and folder arguments made absolute: args.yaml then lets --resume run from any folder, and never
    reads another folder's file of the same relative name."""
    for key in PATH_FLAGS:
        value = getattr(args, key)
        if isinstance(value, str) and value and (key != "arch" or os.path.isfile(value)):  # arch: a name or a file
            setattr(args, key, absolute_path(value))


def unused_flags(args: argparse.Namespace) -> dict[str, str]:
    """{dest: when it applies} of the flags that have no effect on this run."""
    if args.net_type:  # the NSGA-Net networks have no classifier dropout or stochastic depth of the ofa models
        unused = dict.fromkeys(("drop", "drop_path"), "only with --model-config (an exported ofa architecture)")
        if not args.auxiliary:
            unused["auxiliary_weight"] = "only with --auxiliary"
        if args.net_type == "macro":  # drop path is the micro cells' (the macro network has none)
            unused["droprate"] = "only with --net_type micro"
    else:
        unused = dict.fromkeys(NSGANET_ONLY, "only with --net_type (an NSGA-Net network)")
    if not args.cutout:
        unused["cutout_length"] = "only with --cutout"
    if args.evaluate:  # it prints the scores and writes no run folder
        unused["save"] = "only when training (--evaluate writes nothing)"
    return unused


def resolve(args: argparse.Namespace, given: dict | None = None) -> argparse.Namespace:
    """The run's settings completed and checked before anything is read; `given` (flags_given) are the flags
    on the command line, refused where they have no effect."""
    absolute_paths(args)
    defaults = NSGANET_DEFAULTS if args.net_type else OFA_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.net_type and args.model_config:
        raise ValueError("give either --net_type (NSGA-Net) or --model-config (exported architecture), not both")
    if args.epochs < 0 or args.batch_size < 1:
        raise ValueError("--epochs must be >= 0 and --batch-size >= 1")
    if args.epochs == 0 and not args.evaluate:  # it wrote a run folder without weights that no resume continues
        raise ValueError("--epochs 0: no epoch to train; give at least 1 (or --evaluate to score the weights)")
    names = flag_names(build_parser())
    check_ranges(args, RANGES, names)
    check_unused(given or {}, unused_flags(args), names)
    from codebase.finetune import check_new_run_folder, cutout_length, run_folder

    args.cutout_length = cutout_length(args.dataset, args.cutout_length, check=args.cutout)
    if not args.resume and not args.evaluate:  # before any data or weights are read; --evaluate writes nothing
        folder = run_folder(args)
        check_new_run_folder(folder, "--save", f"--resume {folder}")
    if args.evaluate:  # score trained weights, never a fresh initialisation
        if args.resume:
            args.pretrained = str(run_folder(args) / "model.pth")
        elif not args.pretrained:
            raise ValueError("--evaluate needs weights: --initial-checkpoint FILE, or --resume DIR for DIR/model.pth")
    return args


def resume_settings(args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """--resume DIR: the arguments stored in DIR/args.yaml, with the few that a resume may change taken from the
    command line. A flag that would change the training (or, with --evaluate, the network scored) and differs
    from the stored value is one error line naming it, not silently ignored."""
    from codebase.finetune import run_folder

    folder = run_folder(args)
    path = folder / "args.yaml"
    stored = stored_arguments(folder, f"--resume {args.resume}: not a train_cifar.py run folder (no args.yaml in "
                                      f"{folder})", keys=RUN_KEYS)
    parser = build_parser()
    check_stored_types(parser, stored, path)
    defaults = vars(parser.parse_args([]))
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    check_resume_save(folder, given)
    free = RESUME_FREE | (TRAINING_ONLY if args.evaluate else frozenset())
    refused = changed_settings(given, {**defaults, **stored}, free | {"save"}, flag_names(parser),  # --save: above
                               paths=PATH_FLAGS)
    if refused:
        raise ValueError(f"--resume {args.resume} continues the run with the settings in {path}; drop "
                         + ", ".join(refused) + "; only --data, --device, --workers, --amp, --quiet and "
                         "--evaluate may change")
    settings = {key: stored.get(key, value) for key, value in vars(args).items()}
    settings.update({key: value for key, value in given.items() if key in free})
    return argparse.Namespace(**settings)


def main(argv: list[str] | None = None) -> int:
    from codebase.finetune import finetune
    from codebase.nsganet_profile import warn_ignored_macro_flags

    args = build_parser().parse_args(argv)
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    try:
        if args.resume:
            args = resume_settings(args, argv)
        elif args.net_type == "macro" and not other_local_rank():
            warn_ignored_macro_flags(args.arch, given)
        args = resolve(args, given)
        # a path the run's args.yaml cannot hold (not UTF-8): said before the run folder is made
        check_storable({k: v for k, v in vars(args).items() if k != "resume"}, flag_names(build_parser()))
    except ValueError as e:  # every process of a torchrun job finds the same: said once per machine
        raise ArgumentsError(str(e)) from None
    stats = finetune(args)
    if args.evaluate and os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0


if __name__ == "__main__":
    run_main(main)
