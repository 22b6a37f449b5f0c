"""Measured latency of a network on this machine's CPU or GPU.

The model passed in is never touched: timing runs on a deep copy, and everything that makes
inference faster (eval mode, BatchNorm folded into the preceding conv, channels_last, the
device move) happens to the copy only. The model whose accuracy is measured stays as it was.

Threads: CPU latency depends strongly on the number of intra-op threads. `threads=None` uses
torch's current setting (torch.get_num_threads(), which OMP_NUM_THREADS sets); an integer sets
it for the duration of the measurement and restores it afterwards. Report the value you used.
On CUDA, each forward pass is timed with CUDA events between synchronisations, and cuDNN's
autotuner (cudnn.benchmark) is switched on during the measurement (the warm-up lets it pick
its kernels) and restored afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def resolve_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """The one reading of a --device value: cpu, cuda or cuda:N; None is cuda when available, else cpu. With
    `local_rank` (a torchrun process), a bare cuda is that process's GPU. A bad name or a GPU that is not
    there is a ValueError (one line)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: not a device name (cpu, cuda, cuda:N)")
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available (CUDA is not available on this machine)")
    index = local_rank if dev.index is None else dev.index
    if index is None:
        return dev
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda", index)


def _runs_children_in_order(module: nn.Module) -> bool:
    """Containers whose forward calls their children one after another (BN folding is safe there)."""
    from ofa.utils.layers import My2DLayer

    return isinstance(module, (nn.Sequential, My2DLayer))


def fold_batchnorm(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d that directly follows a Conv2d into it, in place.

    Only for a copy in eval mode. Returns how many were folded.
    """
    parents = [m for m in model.modules() if _runs_children_in_order(m)]
    folded = 0
    for parent in parents:
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and bn.running_mean is not None and not conv.training and not bn.training):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = nn.Identity()
                folded += 1
    return folded


def prepare_for_timing(
    model: nn.Module, device: str | torch.device = "cpu", fold_bn: bool = True, channels_last: bool = False
) -> nn.Module:
    """A deep copy of the model, in eval mode on `device`, optionally BN-folded and channels_last."""
    dev = resolve_device(device)
    twin = copy.deepcopy(model).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(twin)
    twin = twin.to(dev)
    if channels_last:
        twin = twin.to(memory_format=torch.channels_last)
    return twin


@contextlib.contextmanager
def _timing_settings(device: torch.device, threads: int | None) -> Iterator[None]:
    old_threads, old_benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark


def _check_counts(warmup: int, repeats: int, threads: int | None) -> None:
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be at least 0, got {warmup}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None for torch's setting), got {threads}")


def time_forward(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    fold_bn: bool = True,
    channels_last: bool = False,
) -> np.ndarray:
    """Milliseconds of each of `repeats` forward passes of a prepared copy on a random input."""
    _check_counts(warmup, repeats, threads)
    if any(int(n) < 1 for n in input_shape):
        raise ValueError(f"input shape must be positive, got {tuple(input_shape)}")
    dev = resolve_device(device)
    twin = prepare_for_timing(model, dev, fold_bn, channels_last)
    x = torch.randn(*input_shape, device=dev)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    times = np.empty(repeats)
    with _timing_settings(dev, threads), torch.inference_mode():
        for _ in range(warmup):
            twin(x)
        if dev.type == "cuda":
            with torch.cuda.device(dev):  # events are recorded on dev's current stream
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                for i in range(repeats):
                    torch.cuda.synchronize(dev)
                    start.record()
                    twin(x)
                    end.record()
                    torch.cuda.synchronize(dev)
                    times[i] = start.elapsed_time(end)
        else:
            for i in range(repeats):
                t0 = time.perf_counter()
                twin(x)
                times[i] = (time.perf_counter() - t0) * 1e3
    return times


def objective_device(name: str) -> str:
    """The torch device of a measured objective's device name: `--sec_obj gpu` measures on "cuda"."""
    return "cuda" if name == "gpu" else name


def check_measurable(names: tuple[str, ...]) -> None:
    """ValueError unless this machine has the device of every measured objective ("cpu", "gpu"): an
    evaluator checks it when built, before minutes of training or scoring, not after them."""
    for name in names:
        try:
            resolve_device(objective_device(name))
        except ValueError as e:
            raise ValueError(f"measuring {name} latency: {e}") from None


def measure_latency(
    model: nn.Module,
    resolution: int,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    fold_bn: bool = True,
    channels_last: bool = False,
) -> float:
    """Median milliseconds of one forward pass of a (batch_size, 3, resolution, resolution) batch.

    Runs on a deep copy; `model` (its weights, buffers, training flags, device) is left unchanged.
    """
    if resolution < 1 or batch_size < 1:
        raise ValueError(f"resolution and batch_size must be positive, got {resolution} and {batch_size}")
    times = time_forward(model, (batch_size, 3, resolution, resolution), device, warmup, repeats, threads,
                         fold_bn, channels_last)
    return float(np.median(times))
