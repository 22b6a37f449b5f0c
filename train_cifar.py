"""Fine-tune an exported architecture, or train an NSGA-Net network from scratch, on CIFAR and friends.

    python train_cifar.py --dataset cifar10 --data DATA --model NAME --model-config net.config \
        --initial-checkpoint net.inherited --img-size 224 --drop 0.2 --drop-path 0.2 --cutout --autoaugment --save DIR
    python train_cifar.py --net_type micro --arch NSGANet --layers 20 --init_channels 34 --filter_increment 4 \
        --SE --auxiliary --cutout --droprate 0.2 --epochs 600 --dataset cifar10 --data DATA --save DIR
    python train_cifar.py ... --resume DIR                  # continue from DIR/checkpoint.pth
    python train_cifar.py ... --evaluate [--resume DIR]     # score the weights (or DIR/model.pth), no training
    torchrun --nproc_per_node 4 train_cifar.py ...          # several GPUs (DDP); gloo on CPU

Writes DIR/args.yaml, DIR/checkpoint.pth (every epoch), DIR/model.pth, DIR/metrics.csv, DIR/net.config.
Defaults follow the originals: fine-tuning SGD (momentum 0.9, no Nesterov) lr 0.01, wd 4e-5, 150 epochs, batch 96;
NSGA-Net from scratch SGD lr 0.025, wd 3e-4, 600 epochs, batch 96, auxiliary weight 0.4.
"""

from __future__ import annotations

import argparse
import json
import os

from codebase.cli import OneLineParser, run_main

OFA_DEFAULTS = {"lr": 0.01, "weight_decay": 4e-5, "epochs": 150, "nesterov": False}
NSGANET_DEFAULTS = {"lr": 0.025, "weight_decay": 3e-4, "epochs": 600, "nesterov": False}


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
    p.add_argument("--cutout_length", type=int, default=16, help="at the native size (32 px on CIFAR)")
    p.add_argument("--autoaugment", action="store_true")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on with CUDA)")
    p.add_argument("--evaluate", action="store_true", help="only score the weights on the test set")
    p.add_argument("--save", nargs="?", const="", default="", help="run folder (default: exp/train-...)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint.pth")
    p.add_argument("-j", "--workers", "--num_workers", dest="workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    nsga = p.add_argument_group("NSGA-Net networks (trained from scratch)")
    nsga.add_argument("--net_type", choices=("micro", "macro"))
    nsga.add_argument("--arch", default="NSGANet", help="published name or a genome JSON file")
    nsga.add_argument("--layers", type=int, default=20)
    nsga.add_argument("--init_channels", type=int, default=34)
    nsga.add_argument("--filter_increment", type=int, default=4)
    nsga.add_argument("--SE", action="store_true")
    nsga.add_argument("--auxiliary", action="store_true")
    nsga.add_argument("--auxiliary_weight", type=float, default=0.4)
    nsga.add_argument("--droprate", type=float, default=0.2, help="drop path probability at the last epoch")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    defaults = NSGANET_DEFAULTS if args.net_type else OFA_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.net_type and args.model_config:
        raise ValueError("give either --net_type (NSGA-Net) or --model-config (exported architecture), not both")
    if args.epochs < 0 or args.batch_size < 1:
        raise ValueError("--epochs must be >= 0 and --batch-size >= 1")
    if args.evaluate and not args.pretrained:  # score trained weights, never a fresh initialisation
        if not args.resume:
            raise ValueError("--evaluate needs weights: --initial-checkpoint FILE, or --resume DIR for DIR/model.pth")
        from codebase.finetune import run_folder

        args.pretrained = str(run_folder(args) / "model.pth")
    return args


def main(argv: list[str] | None = None) -> int:
    from codebase.finetune import finetune

    args = resolve(build_parser().parse_args(argv))
    stats = finetune(args)
    if args.evaluate and os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0


if __name__ == "__main__":
    run_main(main)
