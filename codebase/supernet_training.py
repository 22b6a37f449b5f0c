"""Training (or adapting) an OFA MobileNetV3 supernet on a task's own data.

For tasks without a pretrained supernet (digits, a user's ImageFolder, a machine that cannot
download OFA's): every step trains the largest subnet on the labels, then the smallest and
`n_random` random subnets on the labels plus the largest one's detached outputs as soft targets
(the sandwich rule with in-place distillation, as in OFA/BigNAS), accumulating the gradients of all
of them into one optimizer step. Elastic resolution: the largest subnet runs at the space's largest
resolution (the teacher should be the best network), the smallest at the smallest resolution and
each random subnet at a random resolution of the space.

Images are served as uint8 and resized/normalised on the device by codebase.data.uint8_to_input, the
same code the evaluator uses, so a subnet sees the same preprocessing in training and evaluation.
The validation images of the search (train_validation_split with the run's vld_size and VALID_SEED) are
held out: the supernet never trains on the images its subnets are scored on.

Checkpoint (atomic, after every epoch): {"state_dict", "config", "epoch", "history", "train_set" (see
training_set_fingerprint), and while unfinished "optimizer", "scheduler"}; `state_dict` makes it loadable
as an official-format supernet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms as T

from codebase.data import VALID_SEED, dataset_info, get_dataset, train_transform, train_validation_split, uint8_to_input
from codebase.io import load_torch, save_torch
from search_space.ofa import NSGANETV2_RESOLUTIONS, OFASearchSpace

log = logging.getLogger("msunas")

CHECKPOINT = "checkpoint.pth"
#: resolutions for data sets of at most 16 px (digits: 8 px): upscaling further only costs time
TINY_RESOLUTIONS = (24, 28, 32)


# ---------------------------------------------------------------------- the run's data protocol
def default_resolutions(dataset: str) -> tuple[int, ...]:
    """NSGANetV2's 192..256 step 4, or 24..32 step 4 for tiny images (native size <= 16 px, digits)."""
    native = dataset_info(dataset).native_size
    return TINY_RESOLUTIONS if native is not None and native <= 16 else NSGANETV2_RESOLUTIONS


def default_vld_size(dataset: str, n_train: int) -> int:
    """NSGANetV2's 10,000 held-out ImageNet images; elsewhere a fifth of the training set, at most 5,000."""
    if dataset == "imagenet":
        return min(10_000, n_train // 5)
    return max(1, min(5_000, n_train // 5))


def resolve_n_classes(dataset: str, data: str | Path | None, n_classes: int | None) -> int:
    if n_classes is not None and n_classes < 2:
        raise ValueError(f"--n_classes must be at least 2, got {n_classes}")
    known = dataset_info(dataset).n_classes
    if known is None:
        known = len(get_dataset(dataset, data, "train").classes)
        if known < 2:  # every label 0: a zero loss from the start and 100% for every subnet
            raise ValueError(f"{dataset}: the training split of {data} has {known} class folder; "
                             f"classification needs at least 2")
    if n_classes is None:
        return known
    if n_classes < known:  # labels >= n_classes would end every evaluation in an index error
        raise ValueError(f"--n_classes {n_classes} is smaller than the {known} classes of {dataset}")
    return int(n_classes)


def split_indices(dataset: str, data: str | Path | None, vld_size: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(train_idx, vld_idx, vld_size) of the training split: the search's fixed validation hold-out (the same
    for every run seed: codebase.data.split.VALID_SEED)."""
    n_train = len(get_dataset(dataset, data, "train"))
    vld_size = default_vld_size(dataset, n_train) if vld_size is None else int(vld_size)
    train_idx, vld_idx = train_validation_split(n_train, vld_size, VALID_SEED)
    return train_idx, vld_idx, vld_size


def split_seed_of(ckpt_or_config: dict[str, Any]) -> int | None:
    """The seed a checkpoint's validation hold-out was drawn with: VALID_SEED since it is fixed; checkpoints
    of earlier versions (no "split_seed") drew it with their training seed."""
    if "split_seed" in ckpt_or_config:
        return ckpt_or_config["split_seed"]
    config = ckpt_or_config.get("config", ckpt_or_config)
    return config.get("seed") if isinstance(config, dict) else None


def training_set_fingerprint(dataset: str, data: str | Path | None) -> dict[str, Any]:
    """{"n_images", "sha256"} of what the split's indices point at: the class names and, per training
    image, its label and (image folders) its path under the data folder, so data moved elsewhere keeps
    it. A checkpoint records it; reusing one after images were added, removed or renamed would shift
    every index, and the supernet would have trained on the new validation images."""
    ds = get_dataset(dataset, data, "train")
    digest = hashlib.sha256(json.dumps([str(c) for c in ds.classes]).encode())
    digest.update(np.asarray(ds.targets, dtype=np.int64).tobytes())
    samples = getattr(ds, "samples", None)
    if samples is not None:
        base = Path(data).expanduser()
        for file, _ in samples:
            # the name's bytes on disk: a name that is not UTF-8 (an old zip's) cannot be str.encode()d;
            # os.fsencode gives the same bytes as .encode() for UTF-8 names, so earlier checkpoints still match
            digest.update(os.fsencode(Path(os.path.relpath(file, base)).as_posix()) + b"\0")
    return {"n_images": len(ds), "sha256": digest.hexdigest()}


def augment_uint8(dataset: str, max_resolution: int) -> T.Compose:
    """The data set's training augmentation (codebase.data.train_transform) ending in a uint8 tensor.

    Fixed-size sets keep their native size (pad+crop, flips); photo sets are cropped at max_resolution.
    uint8_to_input then resizes to each subnet's resolution and normalises, as in evaluation.
    """
    info = dataset_info(dataset)
    size = info.native_size if info.native_size is not None else max_resolution
    steps = train_transform(dataset, size).transforms
    if not (isinstance(steps[-2], T.ToTensor) and isinstance(steps[-1], T.Normalize)):
        raise RuntimeError("train_transform no longer ends in ToTensor, Normalize; update augment_uint8")
    return T.Compose([*steps[:-2], T.PILToTensor()])


def uint8_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                 drop_last: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, generator=generator, persistent_workers=False)


def training_subset(dataset: str, data: str | Path | None, indices: np.ndarray, max_resolution: int) -> Dataset:
    full = get_dataset(dataset, data, "train", transform=augment_uint8(dataset, max_resolution))
    return Subset(full, [int(i) for i in indices])


def resized_batches(loader: Any, dataset: str, resolution: int, device: torch.device,
                    channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 batches -> (normalised float input at `resolution` on `device`, labels)."""
    for images, labels in loader:
        x = uint8_to_input(images.to(device, non_blocking=True), dataset, resolution)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels.to(device, non_blocking=True)


# ---------------------------------------------------------------------- configuration
@dataclass
class SupernetTrainConfig:
    """Everything that determines a trained supernet (stored in its checkpoint)."""

    dataset: str = "digits"
    data: str | None = None
    n_classes: int | None = None
    width_mult: float = 1.0
    resolutions: tuple[int, ...] | None = None  # default: default_resolutions(dataset)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05  # 0.1 diverged on digits after the warm-up (20 epochs, batch 64)
    weight_decay: float = 3e-5  # OFA's; none on batch-norm and bias parameters
    warmup_epochs: int = 1
    n_random: int = 1  # random subnets per step besides the largest and the smallest
    kd_ratio: float = 1.0  # weight of the soft-target loss of the smaller subnets
    vld_size: int | None = None  # default: default_vld_size(dataset, n_train)
    seed: int = 0
    init: str | None = None  # a supernet checkpoint to adapt (e.g. OFA's ImageNet one); body kept
    dropout_rate: float = 0.1
    grad_clip: float = 5.0  # clip the summed gradient norm of each step (weight sharing spikes early on)

    def resolved(self) -> SupernetTrainConfig:
        """A copy with the defaults filled in from the data (what the checkpoint records)."""
        c = dataclasses.replace(self)
        c.resolutions = tuple(int(r) for r in (c.resolutions or default_resolutions(c.dataset)))
        if min(c.resolutions, default=1) < 1:
            raise ValueError(f"supernet training needs resolutions of at least 1 pixel, got {list(c.resolutions)}")
        c.n_classes = resolve_n_classes(c.dataset, c.data, c.n_classes)
        c.vld_size = split_indices(c.dataset, c.data, c.vld_size)[2]
        c.data = str(c.data) if c.data is not None else None
        c.init = str(c.init) if c.init else None
        if c.epochs < 1 or c.batch_size < 1 or c.lr <= 0 or c.n_random < 0:
            raise ValueError("supernet training needs epochs >= 1, batch_size >= 1, lr > 0 and n_random >= 0")
        # an lr of nan or inf trained a step and ended in 'loss is nan'; a seed below 0 failed in the data loader
        for name, ok, rule in (("lr", math.isfinite(c.lr), "finite"), ("seed", c.seed >= 0, ">= 0"),
                               ("kd_ratio", 0 <= c.kd_ratio < math.inf, ">= 0 and finite"),
                               ("warmup_epochs", c.warmup_epochs >= 0, ">= 0"),
                               ("weight_decay", 0 <= c.weight_decay < math.inf, ">= 0 and finite"),
                               ("grad_clip", 0 <= c.grad_clip < math.inf, ">= 0 (0: no clipping) and finite"),
                               ("dropout_rate", 0 <= c.dropout_rate < 1, "in [0, 1)")):
            if not ok:
                raise ValueError(f"supernet training needs {name} {rule}, got {getattr(c, name)}")
        OFASearchSpace(resolutions=c.resolutions, width_mult=c.width_mult)  # validates both
        return c

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resolutions"] = list(d["resolutions"]) if d["resolutions"] is not None else None
        return d


# what may differ between the run that started a checkpoint and the one that resumes it
_RESUMABLE_CHANGES = {"data"}


def config_differences(stored: dict[str, Any], config: SupernetTrainConfig) -> list[str]:
    wanted = config.to_dict()
    return [f"{k}: {stored.get(k)!r} -> {wanted[k]!r}" for k in wanted
            if k not in _RESUMABLE_CHANGES and stored.get(k) != wanted[k]]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path}: not a train_supernet.py checkpoint (no 'state_dict'/'config')")
    return ckpt


def checkpoint_complete(ckpt: dict[str, Any]) -> bool:
    return int(ckpt.get("epoch", 0)) >= int(ckpt["config"]["epochs"])


# ---------------------------------------------------------------------- training
def _sample_resolution(resolutions: tuple[int, ...], rng: np.random.Generator) -> int:
    return int(resolutions[rng.integers(len(resolutions))])


def _sandwich(space: OFASearchSpace, n_random: int, rng: np.random.Generator) -> list[tuple[dict, int]]:
    """[(subnet, resolution)]: largest at the largest resolution first (the teacher), then the smallest
    at the smallest resolution, then n_random random subnets at random resolutions."""
    largest = {**space.decode(space.largest()), "r": max(space.resolutions)}
    smallest = {**space.decode(space.smallest()), "r": min(space.resolutions)}
    out = [(largest, largest["r"]), (smallest, smallest["r"])]
    for x in space.sample(n_random, rng):
        subnet = space.decode(x)
        out.append((subnet, _sample_resolution(space.resolutions, rng)))
    return out


def train_step(supernet: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
               subnets: list[tuple[dict, int]], dataset: str, kd_ratio: float, amp: bool,
               channels_last: bool) -> tuple[float, float]:
    """Forward/backward of each (subnet, resolution); the first one is the teacher. Gradients accumulate
    (the caller zeroes and steps). Returns the teacher's loss and top-1 on this batch."""
    from codebase.supernet import set_active_subnet
    from codebase.training import DivergedError, accuracy, autocast, distillation_loss

    device = images.device
    soft = None
    teacher_loss, teacher_top1 = 0.0, 0.0
    for subnet, resolution in subnets:
        set_active_subnet(supernet, subnet)
        x = uint8_to_input(images, dataset, resolution)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = supernet(x).float()
        loss = F.cross_entropy(logits, labels)
        if soft is None:
            soft = logits.detach()
            teacher_loss, teacher_top1 = loss.item(), accuracy(soft, labels, (1,))[0]
        elif kd_ratio > 0:
            loss = loss + kd_ratio * distillation_loss(logits, soft)
        if not torch.isfinite(loss):
            raise DivergedError(f"supernet training loss is {loss.item()}; lower --lr")
        loss.backward()
    return teacher_loss, teacher_top1


def build_training_supernet(config: SupernetTrainConfig, with_init: bool = True) -> torch.nn.Module:
    """The supernet to train: seeded initial weights, then --init's (`with_init`: not when a checkpoint will
    replace them all, so a resume or a reused run needs no --init file any more)."""
    from codebase.evaluators.supernet import load_supernet_weights
    from codebase.supernet import build_supernet

    torch.manual_seed(config.seed)  # the same initial weights for the same configuration
    supernet = build_supernet(config.width_mult, config.n_classes, dropout_rate=config.dropout_rate)
    if config.init and with_init:
        try:
            load_supernet_weights(supernet, config.init)
        except ValueError as e:  # "/x: weight file not found" did not say which flag named /x
            raise ValueError(f"--init: {e}") from None
    return supernet


def train_supernet(config: SupernetTrainConfig, folder: str | Path, device: str | None = None,
                   progress: bool = True, num_workers: int = 0, max_epochs: int | None = None,
                   on_accepted: Callable[[], None] | None = None) -> Path:
    """Train (or resume training) a supernet into folder/checkpoint.pth; returns that path.

    A complete checkpoint with the same configuration is reused as is; an unfinished one resumes from
    its last epoch; one with another configuration is an error (choose another folder).
    max_epochs: stop after that many epochs in this call (time-boxing; the checkpoint stays resumable).
    on_accepted: called once the folder's checkpoint (if any) has been checked against `config` and its
    training images, before anything is trained or reused (train_supernet.py writes args.yaml there).
    """
    from codebase.training import sgd_cosine

    config = config.resolved()
    folder = Path(folder)
    path = folder / CHECKPOINT
    from codebase.latency.measure import resolve_device

    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    supernet = build_training_supernet(config, with_init=not path.is_file())
    train_set = training_set_fingerprint(config.dataset, config.data)
    ckpt = None
    if path.is_file():
        ckpt = read_checkpoint(path)
        diffs = config_differences(ckpt["config"], config)
        if diffs:
            raise ValueError(f"{path} was trained with other settings ({'; '.join(diffs)}); "
                             f"delete it or train into another folder")
        trained_on = ckpt.get("train_set")  # absent from checkpoints of earlier versions
        if isinstance(trained_on, dict) and trained_on.get("sha256") != train_set["sha256"]:
            raise ValueError(f"{path}: the training images changed since this supernet was trained "
                             f"({trained_on.get('n_images')} training images then, {train_set['n_images']} now; "
                             f"the validation hold-out would hold images it trained on); delete it or train "
                             f"into another folder")
        if split_seed_of(ckpt) != VALID_SEED:
            raise ValueError(f"{path} held out validation images drawn with seed {split_seed_of(ckpt)} (an earlier "
                             f"version); the hold-out is now fixed (seed {VALID_SEED}), so it trained on some of "
                             f"them: delete it or train into another folder")
    if on_accepted is not None:
        on_accepted()
    if ckpt is not None:
        if checkpoint_complete(ckpt):
            log.info("supernet: reusing %s (%d epochs)", path, ckpt["epoch"])
            return path
        supernet.load_state_dict(ckpt["state_dict"])
    supernet.to(dev)
    if dev.type in ("cpu", "cuda"):  # depthwise convolutions are several times faster in NHWC on both
        supernet.to(memory_format=torch.channels_last)

    train_idx, _, _ = split_indices(config.dataset, config.data, config.vld_size)
    data = training_subset(config.dataset, config.data, train_idx, max(config.resolutions))
    steps = len(data) // config.batch_size if len(data) >= config.batch_size else 1
    optimizer, scheduler = sgd_cosine(supernet.parameters(), config.lr, config.epochs, steps,
                                      weight_decay=config.weight_decay, warmup_steps=config.warmup_epochs * steps,
                                      no_decay_bn_bias=True)
    start_epoch, history = 0, []
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, history = int(ckpt["epoch"]), list(ckpt.get("history", []))
        log.info("supernet: resuming %s at epoch %d of %d", path, start_epoch, config.epochs)

    space = OFASearchSpace(resolutions=config.resolutions, width_mult=config.width_mult)
    bar = _progress_bar(config.epochs * steps, start_epoch * steps, progress, f"supernet {config.dataset}")
    try:
        stop = config.epochs if max_epochs is None else min(config.epochs, start_epoch + max_epochs)
        for epoch in range(start_epoch, stop):
            # every epoch's randomness derives from (seed, epoch): a resumed run repeats the same steps
            torch.manual_seed(config.seed * 100_003 + epoch)
            rng = np.random.default_rng([config.seed, epoch])
            loader = uint8_loader(data, config.batch_size, shuffle=True, seed=config.seed * 100_003 + epoch,
                                  num_workers=num_workers, drop_last=len(data) >= config.batch_size)
            supernet.train()
            start, loss_sum, top1_sum, n = time.time(), 0.0, 0.0, 0
            for images, labels in loader:
                images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                loss, top1 = train_step(supernet, images, labels, _sandwich(space, config.n_random, rng),
                                        config.dataset, config.kd_ratio, cuda, True)
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(supernet.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                loss_sum, top1_sum, n = loss_sum + loss, top1_sum + top1, n + 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.3f}", top1=f"{top1:.1f}")
            record = {"epoch": epoch + 1, "loss": loss_sum / max(n, 1), "top1": top1_sum / max(n, 1),
                      "lr": scheduler.get_last_lr()[0], "seconds": time.time() - start}
            history.append(record)
            log.info("supernet epoch %d/%d: largest subnet train loss %.4f top-1 %.2f%% (%.0f s)",
                     epoch + 1, config.epochs, record["loss"], record["top1"], record["seconds"])
            done = epoch + 1 == config.epochs
            _save(path, supernet, config, epoch + 1, history, None if done else optimizer,
                  None if done else scheduler, train_set)
    finally:
        if bar is not None:
            bar.close()
    return path


def _save(path: Path, supernet: torch.nn.Module, config: SupernetTrainConfig, epoch: int,
          history: list[dict[str, Any]], optimizer: Any, scheduler: Any, train_set: dict[str, Any]) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in supernet.state_dict().items()}
    ckpt: dict[str, Any] = {"state_dict": state, "config": config.to_dict(), "epoch": epoch, "history": history,
                            "train_set": train_set, "split_seed": VALID_SEED}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
        ckpt["scheduler"] = scheduler.state_dict()
    save_torch(path, ckpt)


def _progress_bar(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
