"""Shared training and evaluation loops (used by the supernet evaluator, train_supernet.py,
train_cifar.py and validation.py).

`batches` is any iterable of (images, targets); images already normalised float tensors. Models
may return (logits, aux_logits) in training mode (NSGA-Net's auxiliary head); evaluation uses the
first element.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


class DivergedError(ValueError, FloatingPointError):
    """A training loss that is not finite: a setting to change (--lr), so every script says it in one line
    as bad input (a ValueError), while it stays a FloatingPointError for code that catches that."""


def correct_counts(logits: torch.Tensor, targets: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows have their target among the top k logits, per k (k larger than the number of classes
    counts as all classes)."""
    if logits.shape[0] == 0:
        return [0 for _ in topk]
    maxk = min(max(topk), logits.shape[1])
    predicted = logits.topk(maxk, dim=1).indices  # (n, maxk)
    hits = predicted.eq(targets.view(-1, 1))
    return [int(hits[:, : min(k, maxk)].any(dim=1).sum().item()) for k in topk]


def accuracy(logits: torch.Tensor, targets: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[float]:
    """Top-k accuracies in percent; k larger than the number of classes counts as all classes."""
    n = logits.shape[0]
    return [100.0 * c / n if n else 0.0 for c in correct_counts(logits, targets, topk)]


def autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (and CPU when asked); a no-op otherwise."""
    device = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _logits(output: torch.Tensor | tuple | list) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1/top-5 (percent), mean cross-entropy and the image count over `batches`, eval mode.

    The accuracies are counted in whole images (100 x correct / n), so two networks that get the same number
    of images right score exactly the same (float32 per-batch means made 4 of 287 wrong 1.3937267 for one
    subnet and 1.3937274 for another, and that noise decided which of the two was on the Pareto front)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    n, loss_sum, top1_hits, top5_hits = 0, 0.0, 0, 0
    with torch.inference_mode():
        for x, y in batches:
            x, y = _to_device(x, y, device, channels_last)
            with autocast(device, amp):
                logits = _logits(model(x))
            logits = logits.float()
            b = y.shape[0]
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            top1, top5 = correct_counts(logits, y, (1, 5))
            top1_hits += top1
            top5_hits += top5
            n += b
    model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: no images in the evaluation batches")
    return {"top1": 100.0 * top1_hits / n, "top5": 100.0 * top5_hits / n, "loss": loss_sum / n, "n": n}


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's soft targets (OFA's in-place distillation)."""
    soft = F.softmax(teacher_logits.float(), dim=1)
    return torch.mean(torch.sum(-soft * F.log_softmax(student_logits.float(), dim=1), dim=1))


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
    grad_clip: float | None = None,
    amp: bool = False,
    aux_weight: float = 0.0,
    teacher: nn.Module | None = None,
    channels_last: bool = False,
    distill_weight: float = 1.0,
    progress: Iterator | None = None,
) -> dict[str, float]:
    """One pass over `batches`: cross-entropy (+ aux_weight * aux loss, + distill_weight * soft-target
    loss from `teacher` when given), optimizer step and per-batch scheduler step.
    Returns the image-weighted mean loss and training top-1 (percent)."""
    device = torch.device(device)
    model.train()
    if teacher is not None:
        teacher.eval()
    n, loss_sum, top1_hits = 0, 0.0, 0
    for x, y in batches:
        x, y = _to_device(x, y, device, channels_last)
        with autocast(device, amp):
            output = model(x)
            logits = _logits(output)
            loss = F.cross_entropy(logits.float(), y)
            if aux_weight > 0 and isinstance(output, (tuple, list)) and output[1] is not None:
                loss = loss + aux_weight * F.cross_entropy(output[1].float(), y)
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = _logits(teacher(x)).detach()
                loss = loss + distill_weight * distillation_loss(logits, teacher_logits)
        if not torch.isfinite(loss):
            raise DivergedError(f"training loss is {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None and grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        b = y.shape[0]
        n += b
        loss_sum += loss.item() * b
        top1_hits += correct_counts(logits.detach(), y, (1,))[0]
        if progress is not None:
            next(progress, None)
    if n == 0:
        raise ValueError("train_one_epoch: no images in the training batches")
    return {"loss": loss_sum / n, "top1": 100.0 * top1_hits / n}


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 0 at total_steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def sgd_cosine(
    params: Iterable,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    nesterov: bool = True,
    warmup_steps: int = 0,
    no_decay_bn_bias: bool = False,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD (Nesterov by default) with a per-batch cosine schedule over epochs * steps_per_epoch.

    With no_decay_bn_bias, 1-D parameters (biases, norm weights) get no weight decay; `params` must
    then be an iterable of parameters (not groups).
    """
    if lr <= 0 or epochs < 0 or steps_per_epoch < 1:
        raise ValueError(
            f"sgd_cosine: need lr > 0, epochs >= 0, steps_per_epoch >= 1 (got {lr}, {epochs}, {steps_per_epoch})"
        )
    params = list(params)
    if no_decay_bn_bias and params and isinstance(params[0], torch.Tensor):
        decay = [p for p in params if p.dim() > 1]
        no_decay = [p for p in params if p.dim() <= 1]
        params = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0
    )
    total = max(1, epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, total, warmup_steps)
    )
    return optimizer, scheduler


def seek_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Put a per-batch LambdaLR schedule (and its optimizer's learning rates) at `step` batches taken. A resume
    seeks to (epochs done) x (this run's batches per epoch): its stored batch count is in the old run's batches,
    which differ when the number of processes changed (each process then takes another share of the data)."""
    scheduler.last_epoch = step
    lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor | tuple], amp: bool = False) -> int:
    """Re-estimate every batch-norm layer's running statistics on `batches` (inputs already on the model's
    device; (x, y) pairs or bare x): reset them, set momentum None (a cumulative average over the batches,
    each batch weighted equally) and run forward passes in train mode under no_grad. Weights are untouched;
    momentum and the train/eval mode are restored. Returns the number of batches seen."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                device = x.device
                with autocast(device, amp):
                    model(x)
                seen += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if seen == 0:
        raise ValueError("batch-norm recalibration: no batches")
    return seen


def rng_state() -> dict[str, torch.Tensor]:
    """This process's torch (CPU, and CUDA once in use: dropout and drop-path masks on a GPU come from it),
    Python and numpy random states as tensors (checkpoints load weights_only)."""
    import random

    import numpy as np

    version, python_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (timm's Mixup draws from it)
    state = {"torch": torch.get_rng_state(),
             "python": torch.tensor([version, *python_state], dtype=torch.int64),
             "python_gauss": torch.tensor([] if gauss is None else [gauss], dtype=torch.float64),
             "numpy": torch.tensor(np.asarray(keys, dtype=np.int64)),
             "numpy_extra": torch.tensor([pos, has_gauss, cached], dtype=torch.float64)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.stack([g.cpu() for g in torch.cuda.get_rng_state_all()])
    return state


def restore_rng_state(state: dict[str, torch.Tensor] | torch.Tensor) -> None:
    """Undo `rng_state` (a bare tensor, the older checkpoint format, is the torch state alone)."""
    import random

    import numpy as np

    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state.cpu())
        return
    torch.set_rng_state(state["torch"].cpu())
    python = state["python"].tolist()
    gauss = state["python_gauss"].tolist()
    random.setstate((python[0], tuple(python[1:]), gauss[0] if gauss else None))
    pos, has_gauss, cached = state["numpy_extra"].tolist()
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), cached))  # noqa: NPY002
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([g for g in cuda.cpu()])


def seed_everything(seed: int) -> None:
    """Seed torch, Python's `random` and numpy: timm's transforms draw from all three."""
    import random

    import numpy as np

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global state is what timm's Mixup uses)
