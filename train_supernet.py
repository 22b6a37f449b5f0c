"""Train (or adapt) an OFA MobileNetV3 supernet on a task's own data, for when no pretrained one exists.

    python train_supernet.py --dataset digits --epochs 20 --save runs/digits-supernet
    python train_supernet.py --dataset folder --data PATH --init ofa_mbv3_d234_e346_k357_w1.0 --save DIR
    python train_supernet.py --resume DIR

Sandwich rule with in-place distillation and elastic resolution (see codebase/supernet_training.py).
Writes DIR/args.yaml, DIR/checkpoint.pth (after every epoch; `{"state_dict": ...}` like OFA's, so
msunas.py/evaluator.py take it as --supernet_path) and DIR/summary.json: the largest and smallest subnets'
top-1 on the validation split (batch norm recalibrated), held out of training: --vld_size images, drawn by a
fixed seed per data set whatever --seed says, so msunas.py with the same --vld_size scores on the same images.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path

from codebase.cli import (
    WORKERS,
    OneLineParser,
    absolute_path,
    changed_settings,
    check_ranges,
    check_resume_save,
    check_storable,
    check_stored_types,
    flags_given,
    run_main,
    stored_arguments,
)
from codebase.io import (
    FolderInUse,
    check_output_folder,
    holding_lock,
    lock_name,
    remove_new_paths,
    remove_stale_temporaries,
)

# what --resume DIR may change: where the data are and how the training runs
RESUME_FREE = ("data", "device", "num_workers", "quiet", "save", "resume")
# keys every train_supernet args.yaml holds: one without them is another tool's (a search's)
STORED_KEYS = ("epochs", "lr", "n_random", "kd_ratio", "grad_clip")


def build_parser() -> argparse.ArgumentParser:
    from codebase.supernet_training import SupernetTrainConfig

    d = SupernetTrainConfig()
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--save", default="supernet-exp", help="output folder (must not hold another supernet)")
    p.add_argument("--resume", metavar="DIR", help="continue the training in DIR with its stored settings")
    p.add_argument("--dataset", default=d.dataset, help="data set name (see codebase/data)")
    p.add_argument("--data", help="folder that holds the data set")
    p.add_argument("--n_classes", type=int, default=None, help="classes of the task (default: the data set's)")
    p.add_argument("--width_mult", type=float, default=d.width_mult, choices=(1.0, 1.2))
    p.add_argument("--resolutions", type=int, nargs="+", help="input resolutions (default: the data set's)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (SGD, Nesterov, cosine)")
    p.add_argument("--weight_decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup_epochs", type=int, default=d.warmup_epochs)
    p.add_argument("--n_random", type=int, default=d.n_random, help="random subnets per step (plus largest, smallest)")
    p.add_argument("--grad_clip", type=float, default=d.grad_clip, help="gradient norm clip (0: none)")
    p.add_argument("--kd_ratio", type=float, default=d.kd_ratio, help="weight of the in-place distillation loss")
    p.add_argument("--vld_size", type=int, default=None, help="validation images held out of training")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--init", help="a supernet checkpoint to start from (e.g. OFA's ImageNet one; new head)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--num_workers", type=int, default=0, help="data loading processes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from codebase.latency.measure import resolve_device
    from codebase.supernet_training import CHECKPOINT, SupernetTrainConfig

    parser = build_parser()
    args = parser.parse_args(argv)
    # how the training runs: said before the folder is made (they failed at the first step, leaving it)
    check_ranges(args, {"num_workers": WORKERS})
    resolve_device(args.device)
    # a path args.yaml could not hold (not UTF-8), as it will be stored: refused before the folder is made
    fields = {f.name for f in dataclasses.fields(SupernetTrainConfig)}
    check_storable({k: absolute_path(v) if k in ("data", "init") else v for k, v in vars(args).items() if k in fields})
    folder = Path(args.resume or args.save)
    lock = folder / lock_name("train_supernet")
    fresh_lock = not lock.exists()
    try:
        with contextlib.ExitStack() as held:  # the folder's lock, let go however the run ends
            if folder.is_dir():  # before its files are read: a second process on a live run's folder wrote its
                held.enter_context(holding_lock(folder, "train_supernet"))  # args.yaml over; now it touches nothing
            return _train(args, argv, parser, held, [lock] * fresh_lock)
    except ValueError as e:  # a refused start leaves nothing behind, the lock file it made included
        if fresh_lock and not isinstance(e, FolderInUse) and lock.is_file() and not (folder / CHECKPOINT).exists():
            lock.unlink()
        raise


def _train(args: argparse.Namespace, argv: list[str] | None, parser: argparse.ArgumentParser,
           held: contextlib.ExitStack, new_lock: list[Path]) -> int:
    """main's work in the folder `held` locks (or will, once made); `new_lock`: the lock file if this start made it."""
    from codebase.evaluators.supernet import SupernetEvaluator
    from codebase.io import write_json, write_yaml
    from codebase.supernet_training import CHECKPOINT, SupernetTrainConfig, train_supernet

    fields = {f.name for f in dataclasses.fields(SupernetTrainConfig)}
    if args.resume:
        save = Path(args.resume)
        # keys every train_supernet args.yaml holds: a search's folder (msunas trains into SAVE/supernet/, so
        # `--resume SAVE` is an easy slip) was read as supernet settings and trained into the search's folder
        stored = stored_arguments(save, f"--resume {save}: not a train_supernet.py folder (no args.yaml)",
                                  keys=STORED_KEYS)
        check_stored_types(parser, stored, save / "args.yaml")  # a hand edit: was a TypeError traceback
        given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
        check_resume_save(save, given)
        # a resume continues the stored run; silently dropping e.g. --epochs 40 would surprise
        ignored = changed_settings(given, {**vars(parser.parse_args([])), **stored}, RESUME_FREE)
        if ignored:
            raise ValueError(f"--resume {save} continues with the settings in its args.yaml; drop "
                             + ", ".join(ignored) + "; only --data, --device and --num_workers may change")
        if args.data is not None:  # the one setting a resume may change: the data moved
            stored = {**stored, "data": absolute_path(args.data)}
        config = SupernetTrainConfig(**{k: v for k, v in stored.items() if k in fields})
    else:
        save = Path(args.save)
        check_output_folder(save, f"--save {save}")  # before the data are read
        if (save / CHECKPOINT).exists():
            raise ValueError(f"--save {save} already holds a supernet; continue it with --resume {save}")
        if (save / "args.yaml").is_file():  # a search's folder: its args.yaml was replaced, its log written into
            stored_arguments(save, f"--save {save}: not a train_supernet.py folder", keys=STORED_KEYS)
            # else a run killed before its first checkpoint, with nothing trained to lose: it starts anew (a live
            # one holds the folder's lock, taken above)
        # absolute in args.yaml (as msunas, train_cifar and train_imagenet store theirs): a relative --data made
        # `--resume DIR` from another folder fail with "the folder does not exist"
        config = SupernetTrainConfig(**{k: absolute_path(v) if k in ("data", "init") else v
                                        for k, v in vars(args).items() if k in fields})
    config = config.resolved()
    # what this start makes, removed again if it is refused
    new = [p for p in (save, save / "args.yaml", save / "log.txt") if not p.exists()] + new_lock
    try:
        save.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # no permission, ...
        raise ValueError(f"--save {save}: cannot create the folder ({e.strerror or type(e).__name__})") from None
    if save in new:  # a new folder, locked once made (an existing one was locked before its files were read)
        held.enter_context(holding_lock(save, "train_supernet"))
    if args.resume:  # the temporary files of writes a kill cut short
        remove_stale_temporaries(save)

    def store_settings() -> None:
        # once the folder's checkpoint accepted them: a resume with a --data of other images, refused, rewrote
        # args.yaml, so that a plain --resume then failed too
        if not args.resume or args.data is not None:
            write_yaml(save / "args.yaml", config.to_dict())

    logging.basicConfig(level=logging.INFO, format="%(message)s", filename=save / "log.txt", encoding="utf-8",
                        errors="backslashreplace")  # a file name that is not UTF-8 is logged escaped
    try:
        path = train_supernet(config, save, device=args.device, progress=not args.quiet,
                              num_workers=args.num_workers, on_accepted=store_settings)
    except ValueError:
        if not (save / CHECKPOINT).exists():  # refused before a first epoch (a bad --init): leave nothing behind
            remove_new_paths(new)  # basicConfig's log.txt among them
        raise

    evaluator = SupernetEvaluator(dataset=config.dataset, data=config.data, n_classes=config.n_classes,
                                  supernet_path=path, width_mult=config.width_mult,
                                  resolutions=config.resolutions, vld_size=config.vld_size, seed=config.seed,
                                  device=args.device)
    space = evaluator.space
    summary = {}
    for name, genome, r in (("largest", space.largest(), max(space.resolutions)),
                            ("smallest", space.smallest(), min(space.resolutions))):
        subnet = {**space.decode(genome), "r": r}
        stats = evaluator.evaluate(subnet)
        summary[name] = {"subnet": subnet, **stats}
        print(f"{name} subnet (r={r}, {stats['flops']:.1f} MFLOPs): top-1 {stats['top1']:.2f}% on "
              f"{len(evaluator.vld_labels)} validation images")
    write_json(save / "summary.json", summary, indent=2)
    print(f"supernet: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
