"""Parameters and multiply-adds of NSGA-Net networks, as the original tool counted them.

Parameters: every trainable tensor except the auxiliary head's (the DARTS/NSGA-Net convention).
Multiply-adds: forward hooks on one eval-mode pass of a single image (so no auxiliary head and no
drop path), per image, not halved. Two conventions:
- "nsganet" (default; the original tool's hook counter, misc/flops_counter.py, the one behind the
  README's micro figures): convolutions (kernel x input channels per group x output elements, + bias),
  linear layers (inputs x outputs, no bias), batch norm (2 per element), ReLU (1 per element) and
  pooling (1 per input element); sigmoid, products, sums and concatenations cost nothing;
- "macs": convolutions and linear layers only (gives the 1290M the NSGA-Net paper lists for the macro network).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codebase.io import read_json
from codebase.networks.genotypes import macro_architecture, micro_genotype
from codebase.networks.nsganet_macro import build_macro_network, macro_spec
from codebase.networks.nsganet_micro import build_micro_network

CONVENTIONS = ("nsganet", "macs")
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def count_params(model: nn.Module, exclude: str = "auxiliary") -> int:
    return sum(p.numel() for name, p in model.named_parameters() if p.requires_grad and exclude not in name)


def _layer_cost(module: nn.Module, inputs: tuple, output: torch.Tensor, convention: str) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = kh * kw * module.in_channels // module.groups + (module.bias is not None)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):  # the original counter leaves out the bias here (not for convs)
        return output.numel() // module.out_features * module.in_features * module.out_features
    if convention == "macs":
        return 0
    if isinstance(module, nn.BatchNorm2d):
        return inputs[0].numel() * (2 if module.affine else 1)
    if isinstance(module, nn.ReLU):
        return output.numel()
    if isinstance(module, _POOLS):
        return inputs[0].numel()
    return 0


def count_flops(model: nn.Module, input_size: int = 32, convention: str = "nsganet") -> int:
    """Multiply-adds of one image (1 x 3 x input_size x input_size) in eval mode."""
    if convention not in CONVENTIONS:
        raise ValueError(f"FLOPs convention must be one of {CONVENTIONS}, got '{convention}'")
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_cost(module, inputs, output, convention)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def load_arch(arch: str | Any, net_type: str) -> Any:
    """A published name, a JSON file path, or an already-parsed description."""
    if not isinstance(arch, str):
        return arch
    if Path(arch).suffix == ".json" or Path(arch).is_file():
        return read_json(arch)
    return macro_architecture(arch) if net_type == "macro" else micro_genotype(arch)


def warn_ignored_macro_flags(arch: Any, given: dict[str, Any]) -> None:
    """A macro network has no cells to repeat or widen (--layers, --filter_increment), and a published one
    (NSGANet) has fixed widths (--init_channels): the original ignored them silently, a warning says so
    (train_cifar.py, validation.py and evaluator.py --profile alike). `given`: the flags on the command line."""
    import warnings

    spec = macro_spec(load_arch(arch, "macro"))
    ignored = [f"--{k}" for k in ("layers", "filter_increment") if k in given]
    if "init_channels" in given and spec.get("channels"):
        ignored.append("--init_channels")
    if ignored:
        phases = [c[-1] if isinstance(c, (list, tuple)) else c for c in spec.get("channels") or ()]
        widths = f" (fixed phase widths {', '.join(map(str, phases))})" if phases else ""
        warnings.warn(f"{', '.join(ignored)} ignored: the macro network {arch}{widths} has none of these "
                      f"settings", stacklevel=2)


def build_network(
    net_type: str,
    arch: str | Any,
    layers: int = 20,
    init_channels: int = 34,
    filter_increment: int = 4,
    auxiliary: bool = False,
    SE: bool = False,
    n_classes: int = 10,
    imagenet: bool = False,
) -> nn.Module:
    """The evaluation network of the original tool for `--net_type` and `--arch`.

    micro: the pyramid network (filter_increment > 0) or the plain CIFAR one (filter_increment 0);
    arch is a genotype name, a genotype dict, or a 40-gene genome.
    macro: arch is a name, {"genome", optional "channels" and "decoder"}, a nested genome or a
    48-bit genome; without "channels", widths are init_channels x (1, 2, 4) and the decoder residual.
    """
    arch = load_arch(arch, net_type)
    if net_type == "micro":
        from search_space.nsganet_micro import MicroSearchSpace

        if isinstance(arch, (list, np.ndarray)):  # a genome (a Genotype is a tuple, not a list)
            arch = MicroSearchSpace().decode(np.asarray(arch))
        return build_micro_network(arch, init_channels, layers, n_classes, auxiliary=auxiliary, SE=SE,
                                   filter_increment=filter_increment, imagenet=imagenet)
    if net_type == "macro":
        if auxiliary:
            raise ValueError("the macro network has no auxiliary head; drop --auxiliary")
        if SE:
            raise ValueError("the macro network has no squeeze-and-excitation (micro cells only); drop --SE")
        spec = macro_spec(arch)
        return build_macro_network(spec["genome"], init_channels, n_classes, spec.get("decoder", "residual"),
                                   spec.get("channels"))
    raise ValueError(f"net_type must be 'micro' or 'macro', got '{net_type}'")


def profile(
    net_type: str,
    arch: str | Any,
    layers: int = 20,
    init_channels: int = 34,
    filter_increment: int = 4,
    auxiliary: bool = False,
    SE: bool = False,
    n_classes: int = 10,
    input_size: int = 32,
    convention: str = "nsganet",
) -> dict[str, float]:
    """{"params": M, "flops": M} (millions, 4 decimals) of the network build_network makes."""
    net = build_network(net_type, arch, layers, init_channels, filter_increment, auxiliary, SE, n_classes)
    return {
        "params": round(count_params(net) / 1e6, 4),
        "flops": round(count_flops(net, input_size, convention) / 1e6, 4),
    }


def genome_complexity(space: Any, X: np.ndarray, input_size: int = 32, convention: str = "nsganet",
                      **network_options: Any) -> np.ndarray:
    """(n, 2) params and multiply-adds in millions for genomes of an NSGA-Net search space."""
    X = np.atleast_2d(np.asarray(X, dtype=int))
    out = np.empty((len(X), 2))
    for i, x in enumerate(X):
        net = space.build_network(x, **network_options)
        out[i] = count_params(net) / 1e6, count_flops(net, input_size, convention) / 1e6
    return out


def profile_json(**kwargs: Any) -> str:
    """The one-line JSON `evaluator.py --profile` prints."""
    return json.dumps(profile(**kwargs))
