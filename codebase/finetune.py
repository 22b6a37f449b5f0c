"""The train_cifar.py engine: fine-tune an exported OFA model or train an NSGA-Net network from scratch.

One process, or several under `torchrun` (DistributedDataParallel; NCCL on GPUs, gloo on CPU).
Every epoch rank 0 writes, atomically, into the run folder:
    checkpoint.pth  {"epoch", "state_dict", "optimizer", "scheduler", "best_top1", "rng"} (for --resume;
                    "rng": every rank's random state, a list indexed by rank)
    model.pth       {"state_dict", "epoch", "top1", "top5", "loss"}: the weights as evaluated
    metrics.csv     epoch, lr, train_loss, train_top1, val_loss, val_top1, val_top5
and once: args.yaml (resolved arguments, img_size included) and net.config of the network as trained.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import transforms as T

from codebase.checkpoints import check_compatible, load_weights
from codebase.distributed import die_with_launcher, lost_contact_as_error
from codebase.io import (
    check_output_folder,
    load_torch,
    remove_stale_temporaries,
    save_torch,
    write_json,
    write_text,
    write_yaml,
)
from codebase.latency.measure import resolve_device
from codebase.training import (
    evaluate,
    restore_rng_state,
    rng_state,
    seed_everything,
    seek_schedule,
    sgd_cosine,
    train_one_epoch,
)

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5")


# ---------------------------------------------------------------------------------------- processes
class Processes:
    """This process's place among the torchrun workers (a single process when not under torchrun)."""

    def __init__(self, device: str | None = None) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(device, local_rank=local)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            die_with_launcher()  # a SIGKILLed torchrun left its workers training as orphans
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, values: dict[str, float], weight: float = 1.0) -> dict[str, float]:
        """Weighted mean of per-process values over all processes."""
        if self.world == 1:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(t[i] / t[-1]) for i, k in enumerate(keys)}

    def total(self, value: int) -> int:
        if self.world == 1:
            return int(value)
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t)
        return int(t.item())

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def rng_states(self) -> list[dict[str, torch.Tensor]] | None:
        """Every rank's rng_state(), indexed by rank, on rank 0 (None on the others). A collective: every rank
        calls it, at the same point of the epoch, before rank 0 writes the checkpoint."""
        if self.world == 1:
            return [rng_state()]
        states: list[Any] | None = [None] * self.world if self.main else None
        # weights_only: the states are tensors, and nothing else should be unpickled
        dist.gather_object(rng_state(), states, dst=0, weights_only=True)
        return states


def restore_rank_rng(saved: Any, processes: Processes, flag: str) -> None:
    """Restore this rank's random state from a checkpoint's "rng": a list indexed by rank, or (older checkpoints)
    one process's state. With another number of processes each rank keeps its fresh seed (its dropout and
    augmentation draws then differ from an uninterrupted run's), and rank 0 says so once."""
    if saved is None:  # checkpoints of earlier versions without one
        return
    states = saved if isinstance(saved, list) else [saved]
    if len(states) == processes.world:
        restore_rng_state(states[processes.rank])
    elif processes.main:
        import warnings

        n = len(states)
        warnings.warn(f"{flag}: the checkpoint holds the random state of {n} process{'es' if n != 1 else ''}, this "
                      f"run has {processes.world}: the random state is not restored, so dropout and augmentation "
                      f"draws differ from an uninterrupted run's", stacklevel=2)


def shard(dataset: Dataset, processes: Processes) -> Dataset:
    """Every world-th item from this rank on: disjoint shards that cover the data set once."""
    if processes.world == 1:
        return dataset
    return Subset(dataset, range(processes.rank, len(dataset), processes.world))


def evaluate_everywhere(model: nn.Module, dataset: Dataset, processes: Processes, batch_size: int, workers: int,
                        amp: bool = False) -> dict[str, float]:
    """evaluate() on this rank's shard, combined over all ranks into whole-set numbers.

    BN statistics are first copied from rank 0: DDP syncs them at the start of each forward, so after
    the last training step each rank holds its own, and rank 0's are the ones saved."""
    if processes.world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    loader = DataLoader(shard(dataset, processes), batch_size=batch_size, shuffle=False, num_workers=workers)
    local = evaluate(model, loader, processes.device, amp=amp)
    n = local.pop("n")
    return {**processes.mean(local, weight=n), "n": processes.total(n)}


# ------------------------------------------------------------------------------------- augmentation
class Cutout:
    """Zero one random square of side `length` (clipped at the border) in a (C, H, W) tensor (DeVries &
    Taylor 2017). NSGA-Net (as DARTS) applies it after normalisation, NSGANetV2 before (a black square)."""

    def __init__(self, length: int) -> None:
        self.length = int(length)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        half = self.length // 2
        img = img.clone()
        img[..., max(0, cy - half):min(h, cy + half), max(0, cx - half):min(w, cx + half)] = 0
        return img


def cutout_length(dataset: str, length: int | None, check: bool = True) -> int:
    """--cutout_length in pixels at the data set's native size: by default the originals' 16 px, or half the
    native side where that is smaller (4 px on 8-px digits, where 16 px would blank the whole image); 16 px at
    the input size for sets of varying size. With `check`, a length that would cover the whole native image is
    one error line."""
    from codebase.data import dataset_info

    native = dataset_info(dataset).native_size
    if length is None:
        return min(16, native // 2) if native else 16
    if check:
        check_cutout(dataset, length)
    return int(length)


def check_cutout(dataset: str, length: int, image_size: int | None = None) -> None:
    """ValueError unless a cutout of `length` px (at the data set's native size; at image_size for sets of
    varying size) leaves part of the image."""
    from codebase.data import dataset_info

    native = dataset_info(dataset).native_size
    side = native or image_size
    if length < 1:
        raise ValueError(f"--cutout_length {length}: must be at least 1 px")
    if side and length >= side:
        default = f"; the default is {min(16, native // 2)}" if native else ""
        raise ValueError(f"--cutout_length {length} covers the whole image: it is in pixels at {dataset}'s "
                         f"{'native ' if native else ''}size of {side} px (give less than {side}{default})")


def training_transform(dataset: str, image_size: int, autoaugment: bool = False, cutout: int = 0,
                       cutout_before_normalize: bool = False) -> T.Compose:
    """codebase.data.train_transform, with AutoAugment before ToTensor and Cutout at the end when asked
    (or just before Normalize: the square is then black, not the mean colour).

    Cutout lengths are given at the data set's native size (16 px on CIFAR, see cutout_length) and scaled to
    image_size; one that covers the whole image is a ValueError.
    """
    from codebase.data import dataset_info, train_transform

    steps = list(train_transform(dataset, image_size).transforms)
    info = dataset_info(dataset)
    if cutout:
        check_cutout(dataset, cutout, image_size)
    if autoaugment:
        policy = T.AutoAugmentPolicy.CIFAR10 if info.native_size else T.AutoAugmentPolicy.IMAGENET
        at = next(i for i, s in enumerate(steps) if isinstance(s, T.ToTensor))
        steps.insert(at, T.AutoAugment(policy, interpolation=T.InterpolationMode.BICUBIC))
    if cutout > 0:
        scale = image_size / info.native_size if info.native_size else 1.0
        cut = Cutout(max(1, round(cutout * scale)))
        if cutout_before_normalize:
            steps.insert(next(i for i, s in enumerate(steps) if isinstance(s, T.Normalize)), cut)
        else:
            steps.append(cut)
    return T.Compose(steps)


def finetune_transform(args: argparse.Namespace) -> T.Compose:
    """train_cifar's training transform: Cutout as each original placed it (NSGANetV2's train_cifar.py before
    Normalize, NSGA-Net's train.py after it)."""
    return training_transform(args.dataset, args.img_size, args.autoaugment,
                              args.cutout_length if args.cutout else 0, cutout_before_normalize=not args.net_type)


# ------------------------------------------------------------------------------------------- models
def n_classes_of(dataset: str, data: str | None) -> int:
    from codebase.data import dataset_info, get_dataset

    info = dataset_info(dataset)
    return info.n_classes or len(get_dataset(dataset, data, "train").classes)


def network_files(config: str | None, weights: str | None, resumed: Path | None,
                  evaluate: bool = False) -> tuple[str | None, str | None]:
    """(net.config, weights) a training run builds its network from; `resumed`: the run folder of a resume. Once
    it has trained weights (checkpoint.pth; model.pth to score them) a resume builds the network as trained: the
    folder's net.config, whose head fits the data set (the export's may have another class count), and no starting
    weights when training on (checkpoint.pth holds them all), so a run folder moved elsewhere continues without the
    export it began from. A run killed before its first checkpoint starts again from the export."""
    trained = resumed / ("model.pth" if evaluate else "checkpoint.pth") if resumed is not None else None
    if trained is not None and trained.is_file():
        if config and (trained.parent / "net.config").is_file():
            config = str(trained.parent / "net.config")
        if not evaluate:
            weights = None
    return config, weights


def _network_files(args: argparse.Namespace) -> tuple[str | None, str | None]:
    return network_files(args.model_config, getattr(args, "pretrained", None),
                         run_folder(args) if args.resume else None, args.evaluate)


def build_model(args: argparse.Namespace, n_classes: int, for_training: bool) -> nn.Module:
    """The network of train_cifar/validation arguments: an exported ofa model or an NSGA-Net network."""
    from codebase.models import build_nsganet_model, build_ofa_model

    config, weights = _network_files(args)
    if args.net_type:
        net = build_nsganet_model(args.net_type, args.arch, args.layers, args.init_channels, args.filter_increment,
                                  args.auxiliary, args.SE, n_classes, weights)
        if getattr(args, "img_size", None) and hasattr(net, "check_input_size"):  # before the run folder is written
            net.check_input_size(args.img_size)
        return net
    if not config:
        raise ValueError("give --model-config net.config (an exported architecture) or --net_type micro|macro")
    return build_ofa_model(config, weights, n_classes,
                           keep_head=not for_training, drop=args.drop if for_training else None,
                           drop_path_rate=args.drop_path if for_training else 0.0)


# ------------------------------------------------------------------------------------------ the run
def _metrics_rows(path: Path, before_epoch: int) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()[1:]
    return [line for line in lines if line and int(line.split(",")[0]) < before_epoch]


def _format_row(values: dict[str, float]) -> str:
    return ",".join(str(int(values[c])) if c == "epoch" else f"{values[c]:.6g}" for c in METRIC_COLUMNS)


def run_folder(args: argparse.Namespace) -> Path:
    """The run's output folder: --resume DIR (or the folder of a checkpoint file given there), else --save."""
    if args.resume:
        folder = Path(args.resume)
        return folder.parent if folder.is_file() else folder
    if args.save:
        return Path(args.save)
    import time

    name = args.model or (f"{args.net_type}-{args.arch}" if args.net_type else "net")
    return Path("exp") / f"train-{args.dataset}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


# a run's trained weights (written from its first epoch on): a fresh run never overwrites them; a folder with only
# args.yaml holds a run that stopped before its first epoch ended, and may be started again
RUN_FILES = ("checkpoint.pth", "model.pth")


def check_new_run_folder(folder: Path, flag: str, resume: str) -> None:
    """Before a fresh run loads anything: its folder must be a folder (or not exist yet) and hold no other run,
    whose checkpoint and weights it would otherwise overwrite; `resume` is the command line that continues one."""
    check_output_folder(folder, f"{flag} {folder}")
    held = [name for name in RUN_FILES if (folder / name).exists()]
    if held:
        raise ValueError(f"{flag} {folder} already holds a run ({held[0]}); continue it with {resume}, or give "
                         f"another folder")


def restart_killed_run(folder: Path, flag: str, say: bool = True) -> None:
    """--resume of a run folder without checkpoint.pth: a run killed in its first epoch (before its first
    checkpoint) starts again from epoch 1; one whose metrics.csv logged a later epoch lost its checkpoint."""
    if any(int(row.split(",")[0]) > 1 for row in _metrics_rows(folder / "metrics.csv", 2**31)):
        raise ValueError(f"{flag}: {folder} has no checkpoint.pth, though its metrics.csv logged epochs after the "
                         f"first; the run cannot continue")
    if say:
        print(f"{flag}: no checkpoint.pth in {folder} (killed in its first epoch): starting from epoch 1",
              file=sys.stderr, flush=True)


def resume_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, processes: Processes,
                      flag: str, keys: tuple[str, ...] = ("epoch", "state_dict", "optimizer")) -> dict[str, Any] | None:
    """--resume: the run's checkpoint.pth loaded into model and optimizer, with this rank's random state restored;
    returns the checkpoint for what else it holds (epoch, schedule, EMA weights), or None for a run killed in its
    first epoch, which starts again. `keys`: what the caller reads from it; a checkpoint without one of them
    (replaced by a weight file, damaged) is one error line, not a KeyError traceback."""
    path = folder / "checkpoint.pth"
    if not path.is_file():
        restart_killed_run(folder, flag, say=processes.main)
        return None
    state = load_torch(path, map_location=str(processes.device))
    lacking = [key for key in keys if not isinstance(state, dict) or key not in state]
    if lacking:
        raise ValueError(f"{path}: not a complete training checkpoint (no '{lacking[0]}'); the run cannot continue "
                         f"from it")
    check_compatible(model, state["state_dict"], str(path))  # one error line, not a traceback
    model.load_state_dict(state["state_dict"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as e:  # torch's words name neither the file nor the cause
        raise ValueError(f"{path}: its optimizer state does not fit this run's optimizer ({e})") from None
    restore_rank_rng(state.get("rng"), processes, flag)
    return state


def open_run_folder(folder: Path, args: argparse.Namespace) -> None:
    """Rank 0, before the first epoch: the run folder holding the resolved arguments (args.yaml); on a resume,
    without the temporary files of writes a kill cut short."""
    folder.mkdir(parents=True, exist_ok=True)
    if args.resume:
        remove_stale_temporaries(folder)
    write_yaml(folder / "args.yaml", {k: v for k, v in vars(args).items() if k != "resume"})


def finetune(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or, with args.evaluate, only score) and return the last evaluation's numbers."""
    from tqdm import tqdm

    from codebase.data import eval_transform, get_dataset
    from codebase.models import resolve_image_size

    processes = Processes(args.device)
    try:
        with lost_contact_as_error(processes.rank, processes.world):  # another rank's error: one line here too
            seed_everything(args.seed + processes.rank)
            n_classes = n_classes_of(args.dataset, args.data)
            img_size = resolve_image_size(args.img_size, args.dataset, *_network_files(args),
                                          nsganet=bool(args.net_type))
            args.img_size, args.n_classes = img_size, n_classes
            amp = processes.device.type == "cuda" if args.amp is None else bool(args.amp)
            model = build_model(args, n_classes, for_training=not args.evaluate).to(processes.device)
            test_set = get_dataset(args.dataset, args.data, "test", eval_transform(args.dataset, img_size))
            if args.evaluate:
                stats = evaluate_everywhere(model, test_set, processes, args.batch_size, args.workers, amp)
                if processes.main:
                    print(f"test: top1 {stats['top1']:.2f}  top5 {stats['top5']:.2f}  loss {stats['loss']:.4f}  "
                          f"({stats['n']} images, {img_size} px)")
                return stats
            return _train(args, processes, model, test_set, amp, tqdm)
    finally:
        processes.close()


def _train(args: argparse.Namespace, processes: Processes, model: nn.Module, test_set: Dataset, amp: bool,
           tqdm: Any) -> dict[str, Any]:
    from codebase.data import get_dataset

    folder = run_folder(args)
    train_set = get_dataset(args.dataset, args.data, "train", finetune_transform(args))
    sampler = DistributedSampler(train_set, processes.world, processes.rank, shuffle=True, seed=args.seed,
                                 drop_last=True) if processes.world > 1 else None
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, drop_last=len(train_set) > args.batch_size * processes.world,
                        pin_memory=processes.device.type == "cuda")
    if len(loader) == 0:
        raise ValueError(f"{args.dataset}: the training set is smaller than one batch per process")
    optimizer, scheduler = sgd_cosine(model.parameters(), args.lr, args.epochs, len(loader), args.momentum,
                                      args.weight_decay, nesterov=args.nesterov)
    start, best = 0, 0.0
    state = resume_checkpoint(folder, model, optimizer, processes, f"--resume {args.resume}",
                              keys=("epoch", "state_dict", "optimizer", "scheduler")) if args.resume else None
    if state is not None:
        scheduler.load_state_dict(state["scheduler"])
        start, best = int(state["epoch"]), float(state.get("best_top1", 0.0))
        if scheduler.last_epoch != start * len(loader) and processes.main:
            before = scheduler.last_epoch // max(start, 1)
            print(f"--resume {args.resume}: {len(loader)} batches per epoch now, {before} before (another number of "
                  f"processes); the learning-rate schedule continues from epoch {start + 1}", file=sys.stderr,
                  flush=True)
        seek_schedule(scheduler, start * len(loader))  # the old run's batch count is not this run's
        if start >= args.epochs and processes.main:
            print(f"--resume {args.resume}: the run has finished its {args.epochs} epochs; nothing to train",
                  file=sys.stderr, flush=True)
    if processes.main:
        open_run_folder(folder, args)
        if args.model_config:  # the network as trained: its head may be new (another class count)
            write_json(folder / "net.config", model.config)
    net = processes.wrap(model)
    aux_weight = args.auxiliary_weight if getattr(args, "auxiliary", False) else 0.0
    stats: dict[str, Any] = {}
    for epoch in range(start, args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        if hasattr(model, "drop_path_prob"):  # NSGA-Net micro: drop path grows linearly over the run
            model.drop_path_prob = args.droprate * epoch / args.epochs
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", leave=False,
                   disable=args.quiet or not processes.main, dynamic_ncols=True)
        train = train_one_epoch(net, loader, optimizer, scheduler, processes.device, args.grad_clip, amp,
                                aux_weight, progress=iter(_ticks(bar)))
        bar.close()
        train = processes.mean(train)
        val = evaluate_everywhere(model, test_set, processes, args.batch_size, args.workers, amp)
        best = max(best, val["top1"])
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_top1": train["top1"],
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"]}
        rng = processes.rng_states()  # every rank's, for the checkpoint rank 0 writes
        if processes.main:
            _save_epoch(folder, epoch + 1, model, optimizer, scheduler, best, val, row, rng)
            print(f"epoch {epoch + 1}/{args.epochs}  lr {lr:.4g}  train loss {train['loss']:.4f} "
                  f"top1 {train['top1']:.2f}  val loss {val['loss']:.4f} top1 {val['top1']:.2f} "
                  f"top5 {val['top5']:.2f}", file=sys.stderr if args.quiet else sys.stdout, flush=True)
        processes.barrier()
        stats = {**val, "epoch": epoch + 1}
    return stats


def _ticks(bar: Any):
    while True:
        bar.update()
        yield


def _save_epoch(folder: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, best: float, val: dict[str, float], row: dict[str, float],
                rng: list[dict[str, torch.Tensor]]) -> None:
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(folder / "model.pth", {"state_dict": weights, "epoch": epoch, "top1": val["top1"],
                                      "top5": val["top5"], "loss": val["loss"]})
    rows = _metrics_rows(folder / "metrics.csv", epoch) + [_format_row(row)]
    write_text(folder / "metrics.csv", "\n".join([",".join(METRIC_COLUMNS), *rows]) + "\n")
    # the checkpoint goes last: a run killed before it repeats this epoch on --resume
    save_torch(folder / "checkpoint.pth", {"epoch": epoch, "state_dict": weights,
                                           "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                           "best_top1": best, "rng": rng})


def load_trained(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights of a train_cifar run folder's model.pth (or any accepted weight file)."""
    path = Path(path)
    return load_weights(path / "model.pth" if path.is_dir() else path)
