"""The train_imagenet.py engine: fine-tune an exported architecture with timm 1.x's training parts.

timm provides the optimizer (`create_optimizer_v2`: rmsproptf, sgd, adamw, ...), the schedule
(`create_scheduler_v2`: step, cosine, ... with warm-up, stepped per epoch and per update),
RandAugment and random erasing (`create_transform`), mixup/cutmix (`Mixup`) and the weight EMA
(`ModelEmaV3`). Evaluation uses codebase.data.eval_transform, like validation.py and the search.
With a teacher (an OFA supernet checkpoint), the loss adds soft-target cross-entropy against the
supernet's largest subnet (OFA's knowledge distillation).

Rank 0 writes into the output folder every epoch: checkpoint.pth (for --resume; with every rank's random
state), model.pth ({"state_dict", "state_dict_ema"}), metrics.csv; and once args.yaml and net.config (the
network as trained, its head included).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from codebase.checkpoints import load_into, load_weights
from codebase.distributed import lost_contact_as_error
from codebase.finetune import (
    Processes,
    evaluate_everywhere,
    n_classes_of,
    network_files,
    open_run_folder,
    resume_checkpoint,
)
from codebase.io import save_torch, write_json, write_text
from codebase.training import (
    DivergedError,
    autocast,
    correct_counts,
    distillation_loss,
    seed_everything,
)

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "ema_top1",
                  "ema_top5")


def load_teacher(path: str | Path, width_mult: float, n_classes: int) -> nn.Module:
    """The largest subnet of the OFA MobileNetV3 supernet stored in `path` (kernel 7, expand 6, depth 4)."""
    from codebase.supernet import build_supernet, extract_subnet

    state = load_weights(path)
    head = state.get("classifier.linear.weight")
    if head is None:
        raise ValueError(f"--teacher {path}: not an OFA MobileNetV3 supernet checkpoint (no classifier.linear.weight)")
    if head.shape[0] != n_classes:
        raise ValueError(f"--teacher {path}: the supernet has {head.shape[0]} classes, the data set {n_classes}")
    supernet = build_supernet(width_mult, n_classes)
    load_into(supernet, state, f"--teacher {path} (width {width_mult}; set --teacher-width)")
    largest = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
    teacher = extract_subnet(supernet, largest).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def train_loader(args: argparse.Namespace, processes: Processes) -> tuple[DataLoader, DistributedSampler | None]:
    from timm.data import create_transform

    from codebase.data import dataset_info, get_dataset

    info = dataset_info(args.dataset)
    try:  # timm asserts on an unknown policy or random-erasing mode
        transform = create_transform(args.img_size, is_training=True, auto_augment=args.aa or None,
                                     interpolation="bicubic", mean=info.mean, std=info.std, re_prob=args.reprob,
                                     re_mode=args.remode, re_count=args.recount, color_jitter=args.color_jitter,
                                     hflip=0.5 if info.hflip else 0.0)
    except (AssertionError, KeyError) as e:
        raise ValueError(f"--aa {args.aa} / --remode {args.remode}: not a timm augmentation setting ({e})") from None
    dataset = get_dataset(args.dataset, args.data, "train", transform)
    sampler = DistributedSampler(dataset, processes.world, processes.rank, shuffle=True, seed=args.seed,
                                 drop_last=True) if processes.world > 1 else None
    # no persistent workers: fresh ones each epoch take their seeds from the main random state, which the
    # checkpoint holds, so a resumed run augments exactly as the uninterrupted one
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, drop_last=True, pin_memory=processes.device.type == "cuda")
    if len(loader) == 0:
        raise ValueError(f"{args.dataset}: the training set holds fewer than one batch ({args.batch_size}) "
                         f"per process")
    return loader, sampler


def optimizer_and_schedule(model: nn.Module, args: argparse.Namespace,
                           updates_per_epoch: int) -> tuple[torch.optim.Optimizer, Any, int]:
    """timm's optimizer (--opt) and learning-rate schedule (--sched) as the flags describe them; also the
    schedule's length in epochs."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    optimizer = create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay,
                                    momentum=args.momentum, **({"eps": args.opt_eps} if args.opt_eps else {}))
    with warnings.catch_warnings():  # timm deprecates plateau as its checkpoints lose the patience count; ours keep it
        warnings.filterwarnings("ignore", message="PlateauLRScheduler is deprecated", category=FutureWarning)
        scheduler, epochs = create_scheduler_v2(optimizer, sched=args.sched, num_epochs=args.epochs,
                                                decay_epochs=args.decay_epochs, decay_rate=args.decay_rate,
                                                patience_epochs=args.patience_epochs, min_lr=args.min_lr,
                                                warmup_lr=args.warmup_lr, warmup_epochs=args.warmup_epochs,
                                                updates_per_epoch=updates_per_epoch)
    return optimizer, scheduler, epochs


def check_recipe(args: argparse.Namespace) -> None:
    """Before any data or weights are read: build the optimizer and schedule over a one-weight model, so that
    an --opt or --sched timm does not know (or a schedule it refuses) is one line now, not after loading."""
    try:
        optimizer_and_schedule(nn.Linear(1, 1), args, updates_per_epoch=1)
    except (ValueError, AssertionError, KeyError, TypeError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"--opt {args.opt} --sched {args.sched}: {why}") from None


def finetune_imagenet(args: argparse.Namespace) -> dict[str, Any]:
    processes = Processes(args.device)
    try:
        with lost_contact_as_error(processes.rank, processes.world):  # another rank's error: one line here too
            return _run(args, processes)
    finally:
        processes.close()


def _run(args: argparse.Namespace, processes: Processes) -> dict[str, Any]:
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.utils import ModelEmaV3
    from tqdm import tqdm

    from codebase.data import eval_transform, get_dataset
    from codebase.models import build_ofa_model, resolve_image_size

    seed_everything(args.seed + processes.rank)
    device = processes.device
    n_classes = n_classes_of(args.dataset, args.data)
    config, weights = network_files(args.model_config, args.initial_checkpoint,
                                    Path(args.output) if args.resume else None)
    args.img_size = resolve_image_size(args.img_size, args.dataset, config, weights)
    args.n_classes = n_classes
    # bf16 autocast on CUDA; on CPU --amp is accepted (the README's recipe carries it) but training stays fp32
    amp = bool(args.amp) and device.type == "cuda"
    if args.amp and not amp and processes.main:
        print(f"note: --amp applies on CUDA only; training in fp32 on {device.type}", file=sys.stderr, flush=True)
    model = build_ofa_model(config, weights, n_classes, keep_head=False, drop=args.drop,
                            drop_path_rate=args.drop_path).to(device)
    teacher = load_teacher(args.teacher, args.teacher_width, n_classes).to(device) if args.teacher else None
    loader, sampler = train_loader(args, processes)
    test_set = get_dataset(args.dataset, args.data, "test", eval_transform(args.dataset, args.img_size))
    optimizer, scheduler, epochs = optimizer_and_schedule(model, args, len(loader))
    ema = ModelEmaV3(model, decay=args.model_ema_decay) if args.model_ema else None
    mixup = None
    if args.mixup > 0 or args.cutmix > 0:
        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, label_smoothing=args.smoothing,
                      num_classes=n_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif args.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(args.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()
    folder = Path(args.output)
    start = 0
    state = resume_checkpoint(folder, model, optimizer, processes, "--resume") if args.resume else None
    if state is not None:
        # the schedule is not restored but built from the settings (train_imagenet.py refuses changed ones) and
        # --epochs, which a resume may change: a lengthened cosine run then spans its new length, as in timm
        if ema is not None and "state_dict_ema" in state:
            ema.module.load_state_dict(state["state_dict_ema"])
        start = int(state["epoch"])
        if start > args.epochs:  # it rewrote args.yaml to the shorter length beside weights of the longer run
            raise ValueError(f"--epochs {args.epochs}: the run in {folder} has trained {start} epochs already; give "
                             f"at least {start}")
        if start == args.epochs and processes.main:
            print(f"--resume: the run has finished its {start} epochs; nothing to train", file=sys.stderr, flush=True)
    if start > 0:  # as timm's train.py: step(0) without warm-up pinned plateau to --warmup-lr for good
        scheduler.step(start)
    if state is not None and state.get("plateau") is not None and hasattr(scheduler, "lr_scheduler"):
        scheduler.lr_scheduler.load_state_dict(state["plateau"])  # its best and patience count, which timm drops
    if processes.main:
        open_run_folder(folder, args)
        write_json(folder / "net.config", model.config)  # as trained: the head may be new
    net = processes.wrap(model)
    stats: dict[str, Any] = {}
    for epoch in range(start, epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
                   disable=args.quiet or not processes.main, dynamic_ncols=True)
        net.train()
        n, loss_sum, top1_hits = 0, 0.0, 0
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            target = y
            if mixup is not None:
                x, target = mixup(x, y)
            with autocast(device, amp):
                logits = net(x)
                loss = criterion(logits.float(), target)
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(x).detach()
                    loss = loss + args.teacher_weight * distillation_loss(logits, soft)
            if not torch.isfinite(loss):
                raise DivergedError(f"training loss is {loss.item()} at epoch {epoch + 1}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            optimizer.step()
            updates = epoch * len(loader) + step + 1
            if ema is not None:
                ema.update(model, step=updates)
            scheduler.step_update(num_updates=updates)
            n += y.shape[0]
            loss_sum += loss.item() * y.shape[0]
            top1_hits += correct_counts(logits.detach(), y, (1,))[0]  # whole images, as codebase.training
            bar.update()
        bar.close()
        train = processes.mean({"loss": loss_sum / n, "top1": 100.0 * top1_hits / n})
        val = evaluate_everywhere(model, test_set, processes, args.validation_batch_size, args.workers, amp)
        ema_val = (evaluate_everywhere(ema.module, test_set, processes, args.validation_batch_size, args.workers,
                                       amp) if ema is not None else {"top1": float("nan"), "top5": float("nan")})
        # the metric only plateau reads (the others ignore it): top-1 of the weights kept, the EMA's with one (timm)
        scheduler.step(epoch + 1, (ema_val if ema is not None else val)["top1"])
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train["loss"], "train_top1": train["top1"],
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
               "ema_top1": ema_val["top1"], "ema_top5": ema_val["top5"]}
        rng = processes.rng_states()  # every rank's, for the checkpoint rank 0 writes
        if processes.main:
            _save_epoch(folder, epoch + 1, model, ema, optimizer, scheduler, row, rng)
            print(f"epoch {epoch + 1}/{epochs}  lr {lr:.4g}  train loss {train['loss']:.4f}  "
                  f"val top1 {val['top1']:.2f} top5 {val['top5']:.2f}"
                  + (f"  ema top1 {ema_val['top1']:.2f}" if ema is not None else ""),
                  file=sys.stderr if args.quiet else sys.stdout, flush=True)
        processes.barrier()
        stats = {**val, "epoch": epoch + 1, "ema_top1": ema_val["top1"]}
    return stats


def _save_epoch(folder: Path, epoch: int, model: nn.Module, ema: Any, optimizer: torch.optim.Optimizer,
                scheduler: Any, row: dict[str, float], rng: list[dict[str, torch.Tensor]]) -> None:
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model_file: dict[str, Any] = {"state_dict": weights, "epoch": epoch, "top1": row["val_top1"]}
    plateau = getattr(scheduler, "lr_scheduler", None)  # plateau's torch scheduler: timm saves only its best
    checkpoint = {"epoch": epoch, "state_dict": weights, "optimizer": optimizer.state_dict(),
                  "scheduler": scheduler.state_dict(), "plateau": plateau.state_dict() if plateau is not None else None,
                  "rng": rng}
    if ema is not None:
        ema_weights = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
        model_file["state_dict_ema"] = checkpoint["state_dict_ema"] = ema_weights
    save_torch(folder / "model.pth", model_file)
    path = folder / "metrics.csv"
    old = path.read_text().splitlines()[1:] if path.is_file() else []
    rows = [line for line in old if line and int(line.split(",")[0]) < epoch]
    rows.append(",".join(str(epoch) if c == "epoch" else f"{row[c]:.6g}" for c in METRIC_COLUMNS))
    write_text(path, "\n".join([",".join(METRIC_COLUMNS), *rows]) + "\n")
    save_torch(folder / "checkpoint.pth", checkpoint)  # last: a run killed before it repeats this epoch


def default_output(args: argparse.Namespace) -> str:
    return str(Path("output") / "train" / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.model}-{args.img_size or 'r'}")

