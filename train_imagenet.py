r"""Fine-tune an exported architecture on ImageNet (or any data set of codebase/data) with timm 1.x.

    ./distributed_train.sh 8 /path/to/imagenet --model nsganetv2_m --model-config net.config \
        --initial-checkpoint net.inherited --img-size 224 -b 128 --sched step --epochs 450 --decay-epochs 2.4 \
        --decay-rate .97 --opt rmsproptf --opt-eps .001 -j 6 --warmup-lr 1e-6 --weight-decay 1e-5 --drop 0.2 \
        --drop-path 0.2 --model-ema --model-ema-decay 0.9999 --aa rand-m9-mstd0.5 --remode pixel --reprob 0.2 \
        --amp --lr .024 --teacher ofa_supernet.pth
    python train_imagenet.py DATA ... --resume --output DIR       # continue DIR from its checkpoint.pth
    python train_imagenet.py --dataset digits --model-config net.config ...   # built in: no DATA

Scale --lr with the total batch: (batch per process x processes / 256) x 0.006.
--resume continues with the settings in DIR/args.yaml: flags left out take the stored values, and a flag that
would change one is refused; only --epochs (the schedule then spans the new length), DATA, --device, --workers,
--validation-batch-size, --amp and --quiet may change.
Writes DIR/args.yaml, DIR/checkpoint.pth, DIR/model.pth ({"state_dict", "state_dict_ema"}), DIR/metrics.csv.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from codebase.cli import (
    WORKERS,
    ArgumentsError,
    OneLineParser,
    absolute_path,
    changed_settings,
    check_ranges,
    check_storable,
    check_stored_types,
    check_unused,
    flag_names,
    flags_given,
    run_main,
    stored_arguments,
)

# what --resume may change: the run's length, where the data are, how it runs (evaluation batches change no score)
RESUME_FREE = frozenset({"resume", "output", "epochs", "data", "device", "workers", "validation_batch_size", "amp",
                         "quiet"})
PATH_FLAGS = frozenset({"model_config", "initial_checkpoint", "teacher"})
# in every args.yaml train_imagenet writes, and not all in those of train_cifar, msunas or train_supernet
RUN_KEYS = ("output", "model_config", "initial_checkpoint", "sched")
# checked before anything is loaded: timm and torch said `Invalid momentum` after the data set was read,
# --smoothing 1.5 and --drop-path 2 were tracebacks, and a negative --warmup-lr or --decay-rate trained silently
RANGES = {"workers": WORKERS, "lr": "(0, inf)", "opt_eps": "(0, inf)", "momentum": "[0, 1)",
          "weight_decay": "[0, inf)", "clip_grad": "[0, inf)", "decay_epochs": "(0, inf)", "decay_rate": "(0, inf)",
          "patience_epochs": "[0, inf)", "warmup_lr": "[0, inf)", "warmup_epochs": "[0, inf)", "min_lr": "[0, inf)",
          "drop": "[0, 1)", "drop_path": "[0, 1)", "color_jitter": "[0, inf)", "reprob": "[0, 1]",
          "recount": "[1, inf)", "mixup": "[0, inf)", "cutmix": "[0, inf)", "smoothing": "[0, 1)",
          "model_ema_decay": "[0, 1]", "teacher_weight": "[0, inf)"}


# the timm schedules that read --decay-epochs and --decay-rate (poly takes --decay-rate as its power)
DECAY_EPOCHS_SCHEDULES = ("step", "wsd", "rsqrt")
DECAY_RATE_SCHEDULES = ("step", "multistep", "plateau", "poly")
REMODES = ("const", "rand", "pixel")  # timm's RandomErasing modes


def unused_flags(args: argparse.Namespace) -> dict[str, str]:
    """{dest: when it applies} of the flags that have no effect on this run."""
    unused = {} if args.model_ema else {"model_ema_decay": "only with --model-ema"}
    if args.sched not in DECAY_EPOCHS_SCHEDULES:
        unused["decay_epochs"] = f"only with --sched {', '.join(DECAY_EPOCHS_SCHEDULES)}"
    if args.sched not in DECAY_RATE_SCHEDULES:
        unused["decay_rate"] = f"only with --sched {', '.join(DECAY_RATE_SCHEDULES)}"
    if args.sched != "plateau":
        unused["patience_epochs"] = "only with --sched plateau"
    if not args.teacher:
        unused.update(dict.fromkeys(("teacher_width", "teacher_weight"), "only with --teacher"))
    if args.aa and "3a" not in args.aa:  # timm's create_transform drops colour jitter under these policies
        unused["color_jitter"] = "only without --aa (or with a 3a policy): timm turns colour jitter off under it"
    if not args.reprob:  # random erasing off: its mode and count shape nothing
        unused.update(dict.fromkeys(("remode", "recount"), "only with --reprob > 0"))
    return unused


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # optional for argparse: --dataset digits (built in) reads no folder, and a --resume takes the run's
    p.add_argument("data", nargs="?", help="data folder (ImageNet: train/ and val/ class folders); none with "
                   "--dataset digits (built in)")
    p.add_argument("--dataset", default="imagenet", help="imagenet or any data set of codebase/data")
    p.add_argument("--model", default="nsganetv2", help="a name for the output folder")
    # not required by argparse: a --resume takes it from the run's args.yaml like every other flag left out
    p.add_argument("--model-config", dest="model_config", help="net.config of the architecture (required, "
                   "except with --resume)")
    p.add_argument("--initial-checkpoint", dest="initial_checkpoint", help="net.inherited or any accepted weights")
    p.add_argument("--img-size", dest="img_size", type=int, default=None, help="default: the config's r")
    p.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=128, help="per process")
    p.add_argument("-vb", "--validation-batch-size", dest="validation_batch_size", type=int, default=256)
    # timm's 6 loader processes, but no more than the machine's cores (torch warned of 6 on 2 cores every epoch)
    p.add_argument("-j", "--workers", type=int, default=min(6, os.cpu_count() or 1),
                   help="data loader processes (default: 6, at most the machine's cores)")
    p.add_argument("--epochs", type=int, default=450)
    p.add_argument("--opt", default="rmsproptf", help="timm optimizer name (rmsproptf, sgd, adamw, ...)")
    p.add_argument("--opt-eps", dest="opt_eps", type=float, default=None)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", dest="weight_decay", type=float, default=1e-5)
    p.add_argument("--clip-grad", dest="clip_grad", type=float, default=None)
    p.add_argument("--lr", type=float, default=0.024)
    p.add_argument("--sched", default="step", help="timm scheduler name (step, cosine, ...)")
    p.add_argument("--decay-epochs", dest="decay_epochs", type=float, default=2.4)
    p.add_argument("--decay-rate", dest="decay_rate", type=float, default=0.97)
    p.add_argument("--patience-epochs", dest="patience_epochs", type=int, default=10,
                   help="--sched plateau: epochs without a better validation top-1 before it decays (timm's)")
    p.add_argument("--warmup-lr", dest="warmup_lr", type=float, default=1e-6)
    p.add_argument("--warmup-epochs", dest="warmup_epochs", type=int, default=3)
    p.add_argument("--min-lr", dest="min_lr", type=float, default=1e-5)
    p.add_argument("--drop", type=float, default=0.2, help="dropout before the classifier")
    p.add_argument("--drop-path", dest="drop_path", type=float, default=0.2, help="stochastic depth (last block)")
    p.add_argument("--aa", default=None, help="RandAugment/AutoAugment policy, e.g. rand-m9-mstd0.5")
    p.add_argument("--color-jitter", dest="color_jitter", type=float, default=0.4)
    p.add_argument("--reprob", type=float, default=0.0, help="random erasing probability")
    p.add_argument("--remode", default="pixel", help="random erasing mode (const, rand, pixel)")
    p.add_argument("--recount", type=int, default=1)
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha (0: off)")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    p.add_argument("--model-ema", dest="model_ema", action="store_true", help="keep an EMA of the weights")
    p.add_argument("--model-ema-decay", dest="model_ema_decay", type=float, default=0.9998)
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--teacher", help="OFA MobileNetV3 supernet checkpoint: distil from its largest subnet")
    p.add_argument("--teacher-width", dest="teacher_width", type=float, default=1.2, choices=(1.0, 1.2))
    p.add_argument("--teacher-weight", dest="teacher_weight", type=float, default=1.0)
    p.add_argument("--output", default=None, help="output folder (default: output/train/<time>-<model>-<size>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its checkpoint.pth")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def resume_settings(args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """--resume: the settings in the run's args.yaml, with the flags given on the command line. A flag that would
    change a stored setting is one error line naming it: the checkpoint's optimizer state would silently
    override a new --lr (while args.yaml recorded it), and a changed network or data pipeline would mix runs."""
    folder = Path(args.output)
    stored = stored_arguments(folder, f"--resume --output {folder}: not a train_imagenet.py run folder "
                                      f"(no args.yaml)", keys=RUN_KEYS)
    parser = build_parser()
    check_stored_types(parser, stored, folder / "args.yaml")
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    run = {**{k: parser.get_default(k) for k in vars(args)}, **stored}  # defaults: flags earlier versions lacked
    changed = changed_settings(given, run, RESUME_FREE, flag_names(parser), paths=PATH_FLAGS)
    if changed:
        raise ValueError(f"--resume --output {folder} continues the run with the settings in its args.yaml; give "
                         f"the run's values (or leave the flags out): {', '.join(changed)}; only --epochs, DATA, "
                         f"--device, --workers, --validation-batch-size, --amp and --quiet may change")
    return argparse.Namespace(**{**run, **given})


def check_data(args: argparse.Namespace) -> None:
    """DATA is required, except with --dataset digits (scikit-learn's, built in), which reads no folder."""
    if args.dataset == "digits" and args.data:
        raise ArgumentsError(f"DATA {args.data}: --dataset digits is scikit-learn's built-in data set, which reads no "
                             f"folder; leave DATA out, or name the data set in {args.data} with --dataset")
    if args.dataset != "digits" and not args.data:
        raise ArgumentsError(f"the following arguments are required: data (the folder of --dataset "
                             f"{args.dataset}; only --dataset digits, built in, needs none)")


def main(argv: list[str] | None = None) -> int:
    from codebase.finetune import check_new_run_folder
    from codebase.finetune_imagenet import check_recipe, default_output, finetune_imagenet

    args = build_parser().parse_args(argv)
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    if args.resume and not args.output:
        raise ArgumentsError("--resume needs --output DIR (the run to continue)")
    if args.resume:
        try:
            args = resume_settings(args, argv)
        except ValueError as e:
            raise ArgumentsError(str(e)) from None
    check_data(args)
    if not args.model_config:
        raise ArgumentsError("the following arguments are required: --model-config (the net.config of the "
                             "architecture; a --resume takes the run's)")
    for key in (*PATH_FLAGS, "data"):  # absolute in args.yaml: a resume from another folder finds the same files
        setattr(args, key, absolute_path(getattr(args, key)))
    if args.epochs < 0:  # no epoch to run: refused rather than an empty run folder
        raise ArgumentsError(f"--epochs {args.epochs}: must be >= 0")
    if args.epochs == 0:  # it wrote a run folder of args.yaml and net.config only, and said nothing
        raise ArgumentsError("--epochs 0: no epoch to train; give at least 1")
    if args.batch_size < 1 or args.validation_batch_size < 1:  # -vb 0 failed only after the first epoch
        raise ArgumentsError(f"--batch-size {args.batch_size} / --validation-batch-size "
                             f"{args.validation_batch_size}: must be >= 1")
    if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
        raise ArgumentsError("--mixup/--cutmix need an even --batch-size")
    try:
        names = flag_names(build_parser())
        check_storable({k: v for k, v in vars(args).items() if k != "resume"}, names)  # args.yaml must hold them
        check_ranges(args, RANGES, names)
        check_unused(given, unused_flags(args), names)
        if args.remode.lower() not in REMODES:  # timm's bare assertion came after the weights were loaded
            raise ValueError(f"--remode {args.remode}: not a random erasing mode ({', '.join(REMODES)})")
        if args.sched != "poly" and args.decay_rate > 1:  # a "decay" that grows the learning rate every step
            raise ValueError(f"--decay-rate {args.decay_rate}: must be in (0, 1] (above 1 only as --sched poly's "
                             f"power)")
        check_recipe(args)
    except ValueError as e:
        raise ArgumentsError(str(e)) from None
    args.output = args.output or default_output(args)
    if not args.resume:  # before anything is loaded: never over another run's checkpoint and weights
        try:
            check_new_run_folder(Path(args.output), "--output", f"--resume --output {args.output}")
        except ValueError as e:
            raise ArgumentsError(str(e)) from None
    finetune_imagenet(args)
    return 0


if __name__ == "__main__":
    run_main(main)
