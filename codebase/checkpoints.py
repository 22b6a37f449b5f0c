"""Weight files in every format the toolkit accepts, and loading them into a network.

Accepted (all read with torch.load(weights_only=True)):
- a raw state dict {name: tensor};
- {"state_dict": ...}: our exports (`net.inherited`), the original NSGANetV2's released `net.init`
  and `net.inherited`, our training checkpoints, timm checkpoints;
- timm/EMA checkpoints: "state_dict_ema" / "model_ema" (taken with use_ema=True, which refuses a
  checkpoint without them, or when they are the only weights in the file), "model", and `module.` prefixes
  left by DistributedDataParallel or timm's ModelEmaV3.
Keys of the `ofa` version the original used (`mobile_inverted_conv`) are renamed to the current
`conv`. A mismatch between a network and a weight file names the first tensor that differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codebase.io import load_torch

MODEL_KEYS = ("state_dict", "model", "net", "weights")
EMA_KEYS = ("state_dict_ema", "model_ema")
HEAD_PREFIXES = ("classifier.",)  # the task head of ofa MobileNetV3 and NSGA-Net networks


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: Any, source: str = "weights", use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The network weights held by a loaded checkpoint object, keys normalised (see module doc)."""
    if _is_state_dict(obj):
        return normalize_keys(obj)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a state dict or a checkpoint dict, got {type(obj).__name__}")
    if use_ema and not any(_is_state_dict(obj.get(key)) for key in EMA_KEYS):
        # falling back to the plain weights would report their score as the EMA's
        raise ValueError(f"{source}: --use-ema, but the file holds no EMA weights ({' or '.join(EMA_KEYS)}); "
                         f"leave --use-ema out to score its weights")
    order = (*EMA_KEYS, *MODEL_KEYS) if use_ema else (*MODEL_KEYS, *EMA_KEYS)
    for key in order:
        if _is_state_dict(obj.get(key)):
            return normalize_keys(obj[key])
    found = ", ".join(map(str, list(obj)[:8]))
    raise ValueError(f"{source}: no network weights found (looked for {', '.join(order)}; "
                     f"the file holds: {found or 'nothing'})")


def normalize_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.` prefixes and rename the old ofa spelling `mobile_inverted_conv` to `conv`."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module."):]
        key = key.replace(".mobile_inverted_conv.", ".conv.")
        out[key] = value
    return out


def load_weights(path: str | Path, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The normalised state dict stored in weight file `path` (any accepted format)."""
    return extract_state_dict(load_torch(path), str(path), use_ema)


def _optional(key: str) -> bool:
    # BN step counters: absent from some files, meaningless for inference
    return key.endswith("num_batches_tracked")


def check_compatible(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "weights",
                     skip_prefixes: tuple[str, ...] = ()) -> None:
    """ValueError naming the first tensor (in the network's order) that is missing, extra or mis-shaped."""
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(skip_prefixes)}
    given = {k: v for k, v in state_dict.items() if not k.startswith(skip_prefixes)}
    for key, tensor in expected.items():
        if key not in given:
            if _optional(key):
                continue
            raise ValueError(f"{source} does not fit the network: tensor '{key}' {tuple(tensor.shape)} is missing "
                             f"from the weight file (wrong net.config or architecture?)")
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{source} does not fit the network: tensor '{key}' has shape {tuple(given[key].shape)} "
                             f"in the weight file but {tuple(tensor.shape)} in the network")
    extra = [k for k in given if k not in expected and not _optional(k)]
    if extra:
        raise ValueError(f"{source} does not fit the network: the weight file has tensor '{extra[0]}' "
                         f"{tuple(given[extra[0]].shape)} that the network lacks ({len(extra)} such tensors)")


def head_matches(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the weight file's classifier tensors have the network's shapes."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)}
    return all(k in state_dict and state_dict[k].shape == v.shape for k, v in own.items())


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "weights",
              skip_head: bool = False) -> None:
    """Copy the weights into `model` after checking every name and shape; skip_head leaves the classifier."""
    skip = HEAD_PREFIXES if skip_head else ()
    check_compatible(model, state_dict, source, skip)
    own = model.state_dict()
    kept = {k: v for k, v in state_dict.items() if k in own and not k.startswith(skip)}
    model.load_state_dict(kept, strict=False)
