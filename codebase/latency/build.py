"""Build a latency look-up table for this machine, in OFA's (Note10) format.

Every layer configuration the OFA MobileNetV3 space can produce at a resolution is built from
the `ofa` package's own layer classes (so it computes exactly what the extracted subnet
computes), timed like `measure_latency` does, and stored as `{count, mean, std}` (ms) under its
OFA key in `<save>/<R>_lookup_table.yaml`. The file is rewritten atomically after every entry,
so an interrupted build resumes where it stopped: entries already in the file are skipped.
The settings are written to `<save>/args.yaml`; resuming with different measurement settings
(device, threads, batch size, repeats, warm-up, BN folding, memory format) is refused, since the entries
would not be comparable; resolutions, widths, kernel sizes, expand ratios and class counts add up.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from codebase.io import check_output_folder, holding_lock, read_yaml, temporaries_of, write_yaml
from codebase.latency.layers import Layer, input_shape, layer_configurations
from codebase.latency.measure import resolve_device, time_forward
from codebase.latency.table import KNOWN_WIDTHS, ofa_key

#: Settings that must match between a build and its resumption.
MEASUREMENT_SETTINGS = ("device", "device_name", "batch_size", "threads", "fold_bn", "channels_last", "repeats",
                        "warmup")
#: Settings a later build into the same folder may extend: args.yaml records their union (n_classes: one class count,
#: or the list of those whose heads the tables hold).
MERGED_SETTINGS = ("resolutions", "width_mults", "kernel_sizes", "expand_ratios", "n_classes")


def layer_module(layer: Layer) -> nn.Module:
    """The `ofa` module computing this layer (randomly initialised)."""
    from ofa.utils import MyGlobalAvgPool2d
    from ofa.utils.layers import ConvLayer, IdentityLayer, LinearLayer, MBConvLayer, ResidualBlock

    if layer.kind == "first_conv":
        return ConvLayer(3, layer.c_out, kernel_size=3, stride=2, act_func="h_swish")
    if layer.kind == "block":
        conv = MBConvLayer(
            layer.c_in, layer.c_out, kernel_size=layer.kernel, stride=layer.stride, expand_ratio=layer.expand,
            mid_channels=None if layer.expand == 1 else layer.mid,
            act_func="h_swish" if layer.h_swish else "relu", use_se=layer.se,
        )
        return ResidualBlock(conv, IdentityLayer(layer.c_in, layer.c_in) if layer.idskip else None)
    if layer.kind == "final_expand":
        return ConvLayer(layer.c_in, layer.c_out, kernel_size=1, act_func="h_swish")
    if layer.kind == "pool":
        return MyGlobalAvgPool2d(keep_dim=True)
    if layer.kind == "feature_mix":
        return ConvLayer(layer.c_in, layer.c_out, kernel_size=1, bias=False, use_bn=False, act_func="h_swish")
    if layer.kind == "classifier":  # MobileNetV3.forward flattens the pooled map before the classifier
        return nn.Sequential(nn.Flatten(), LinearLayer(layer.c_in, layer.c_out, dropout_rate=0))
    raise ValueError(f"unknown layer kind '{layer.kind}'")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table_path(save: str | Path, resolution: int) -> Path:
    return Path(save) / f"{resolution}_lookup_table.yaml"


def _check_resume(save: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings to write: the new ones, after checking they match an earlier build in `save`."""
    args_path = save / "args.yaml"
    if not args_path.exists():
        return settings
    old = read_yaml(args_path) or {}
    if not isinstance(old, dict):
        raise ValueError(f"{args_path}: corrupt (expected the settings of a build as a mapping); "
                         "use another --save folder")
    lacking = [name for name in MEASUREMENT_SETTINGS if name not in old]  # every build wrote them all
    if lacking:  # another tool's run (a search, a supernet): its args.yaml was replaced by the build's settings
        raise ValueError(f"--save {save}: not a build_latency_lut.py folder (its args.yaml lacks "
                         f"{', '.join(lacking)}: another tool's run?); use another --save folder")
    for name in MEASUREMENT_SETTINGS:
        if old[name] != settings[name]:
            raise ValueError(
                f"{save} holds tables measured with {name}={old[name]!r}, not {settings[name]!r}; "
                "use another --save folder"
            )
    merged = dict(settings)
    for name in MERGED_SETTINGS:  # was: the last build's alone, though the tables kept every earlier entry
        both = sorted(set(_as_list(old.get(name))) | set(_as_list(settings[name])))
        merged[name] = both[0] if name == "n_classes" and len(both) == 1 else both
    return merged


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def build_tables(
    save: str | Path,
    resolutions: Sequence[int],
    width_mult: float = 1.0,
    device: str = "cpu",
    repeats: int = 50,
    warmup: int = 10,
    batch_size: int = 1,
    threads: int | None = 1,
    kernel_sizes: Sequence[int] = (3, 5, 7),
    expand_ratios: Sequence[int] = (3, 4, 6),
    n_classes: int = 1000,
    fold_bn: bool = True,
    channels_last: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Measure every missing entry of each resolution's table; return the table paths."""
    from search_space.ofa import MAX_RESOLUTION

    if not resolutions or any(r < 1 for r in resolutions):
        raise ValueError(f"resolutions must be positive integers, got {list(resolutions)}")
    if max(resolutions) > MAX_RESOLUTION:  # was: an out-of-memory traceback after args.yaml was written
        raise ValueError(f"resolution {max(resolutions)}: expected an input resolution in 1..{MAX_RESOLUTION} pixels")
    if repeats < 1 or warmup < 0 or batch_size < 1 or n_classes < 1:
        raise ValueError("repeats, batch_size and n_classes must be at least 1 and warmup at least 0")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None for torch's setting), got {threads}")
    if width_mult not in KNOWN_WIDTHS:  # another width's layers would pass for 1.0's or 1.2's (same first conv)
        raise ValueError(f"width_mult must be one of the OFA supernet's widths {KNOWN_WIDTHS}, got {width_mult}")
    if not kernel_sizes or not expand_ratios or min(kernel_sizes) < 1 or min(expand_ratios) < 1:
        raise ValueError("kernel_sizes and expand_ratios must be non-empty lists of positive integers")
    if any(k % 2 == 0 for k in kernel_sizes):  # was: ofa's AssertionError after the first table was written
        raise ValueError(f"kernel_sizes must be odd (a same-padded depthwise convolution), got {list(kernel_sizes)}")
    dev = resolve_device(device)
    save = Path(save)
    check_output_folder(save, f"--save {save}")  # it, or a folder on its way, may be a file
    settings = {
        "device": str(dev), "device_name": device_name(dev), "batch_size": batch_size,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "fold_bn": fold_bn, "channels_last": channels_last,
        "resolutions": sorted(set(resolutions)), "width_mults": [width_mult],
        "kernel_sizes": list(kernel_sizes), "expand_ratios": list(expand_ratios), "n_classes": n_classes,
        "repeats": repeats, "warmup": warmup, "torch": torch.__version__,
    }
    settings = _check_resume(save, settings)
    save.mkdir(parents=True, exist_ok=True)
    with holding_lock(save, "build_latency_lut"):  # two builds in one folder wrote over each other's tables
        write_yaml(save / "args.yaml", settings)
        # what atomic writes a kill cut short left (`.NAME.XXXXXXXX.tmp`; was: kept for good, one per kill); only
        # the build's own files: --save may be a folder of the user's
        names = ["args.yaml", *(path.name for path in save.glob("*_lookup_table.yaml"))]
        for name in names + [table_path(save, r).name for r in resolutions]:
            for stale in temporaries_of(save, name):
                stale.unlink(missing_ok=True)

        tables, todo, n_layers = {}, [], 0
        for r in sorted(set(resolutions)):
            path = table_path(save, r)
            tables[r] = (read_yaml(path) or {}) if path.exists() else {}
            if not isinstance(tables[r], dict):
                raise ValueError(f"{path}: not a latency table (expected a YAML mapping)")
            layers = layer_configurations(r, width_mult, kernel_sizes, expand_ratios, n_classes)
            todo += [(r, layer) for layer in layers if ofa_key(layer) not in tables[r]]
            n_layers += len(layers)
        bar = tqdm(todo, total=n_layers, initial=n_layers - len(todo), desc="latency table", unit="layer",
                   disable=not progress)
        for r, layer in bar:
            ms = time_forward(layer_module(layer), input_shape(layer, batch_size), dev, warmup, repeats, threads,
                              fold_bn, channels_last)
            entry = {"count": int(ms.size), "mean": float(ms.mean()), "std": float(np.std(ms))}
            tables[r][ofa_key(layer)] = entry
            write_yaml(table_path(save, r), tables[r])  # atomic: a killed build keeps every finished entry
        bar.close()
        return [table_path(save, r) for r in sorted(tables)]
