"""The networks validation.py and the fine-tuning scripts build: exported OFA MobileNetV3 models
(`net.config` + a weight file) and NSGA-Net networks, with dropout and drop path for training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from codebase.checkpoints import load_into, load_weights
from codebase.io import read_json, read_yaml
from codebase.networks.operations import drop_path
from search_space.ofa import MAX_RESOLUTION as MAX_IMAGE_SIZE  # one limit for every tool

NSGANET_IMAGE_SIZE = 32  # NSGA-Net networks are CIFAR-shaped: 32x32 inputs


# ---------------------------------------------------------------------------------------- ofa models
def set_classifier(net: nn.Module, n_classes: int | None = None, dropout: float | None = None) -> None:
    """Replace the ofa classifier by a new one with n_classes outputs (fresh weights), or just set its
    dropout (weights kept). The new dropout sits before the linear layer, as ofa builds it."""
    from ofa.utils.layers import LinearLayer

    old = net.classifier
    rate = old.dropout_rate if dropout is None else float(dropout)
    if n_classes is not None and n_classes != old.out_features:
        net.classifier = LinearLayer(old.in_features, n_classes, bias=old.bias, dropout_rate=rate)
        return
    new = LinearLayer(old.in_features, old.out_features, bias=old.bias, dropout_rate=rate)
    new.linear = old.linear  # the key exists already, so the module order (dropout, linear) is kept
    net.classifier = new


def add_drop_path(net: nn.Module, rate: float) -> int:
    """Stochastic depth on the residual blocks of an ofa MobileNetV3, growing linearly with depth up
    to `rate` at the last block (timm's drop_connect schedule). Forward hooks keep the weight names
    unchanged. Returns the number of blocks it applies to."""
    from ofa.utils.layers import IdentityLayer

    if rate <= 0:
        return 0
    blocks = list(net.blocks)
    applied = 0
    for i, block in enumerate(blocks):
        if not isinstance(block.shortcut, IdentityLayer) or block.conv is None:
            continue
        prob = rate * i / len(blocks)

        def hook(module: nn.Module, inputs: tuple, output, prob: float = prob):
            return drop_path(output, prob) if module.training else output

        block.conv.register_forward_hook(hook)
        applied += 1
    return applied


def build_ofa_model(config_path: str | Path, weights: str | Path | None = None, n_classes: int | None = None,
                    keep_head: bool = True, use_ema: bool = False, drop: float | None = None,
                    drop_path_rate: float = 0.0) -> nn.Module:
    """The ofa MobileNetV3 of `config_path` with the weights of `weights` (any accepted format).

    n_classes: the task's classes. When the file's head has another size, keep_head=True is an error
    (scoring a new random head means nothing); keep_head=False starts a new head (fine-tuning).
    """
    from codebase.ofa_config import build_from_config, load_config

    config = load_config(config_path)
    net = build_from_config(config)
    if weights:
        load_into(net, load_weights(weights, use_ema), str(weights))
    if n_classes is not None and n_classes != net.classifier.out_features:
        if keep_head:
            raise ValueError(f"{config_path} has a {net.classifier.out_features}-class head but the data set has "
                             f"{n_classes} classes; fine-tune it first (train_cifar.py starts a new head)")
    set_classifier(net, n_classes, drop)
    add_drop_path(net, drop_path_rate)
    return net


# ------------------------------------------------------------------------------------ NSGA-Net models
def build_nsganet_model(net_type: str, arch: str, layers: int, init_channels: int, filter_increment: int,
                        auxiliary: bool, SE: bool, n_classes: int, weights: str | Path | None = None,
                        use_ema: bool = False) -> nn.Module:
    from codebase.nsganet_profile import build_network

    net = build_network(net_type, arch, layers, init_channels, filter_increment, auxiliary, SE, n_classes)
    if weights:
        state = load_weights(weights, use_ema)
        # the original NSGA-Net's released weights use its own module names
        if net_type == "micro":
            from codebase.networks.nsganet_micro import from_original_names

            state = from_original_names(state)
        else:
            from codebase.networks.nsganet_macro import from_original_names as from_original_macro_names

            state = from_original_macro_names(state, net)
        load_into(net, state, str(weights))
    return net


# ------------------------------------------------------------------------------------ image size
def _image_size_of_config(config_path: Path) -> int | None:
    config = read_json(config_path)
    if not isinstance(config, dict):  # said before a caller reads it: one line, not an AttributeError
        raise ValueError(f"{config_path}: expected a JSON object (an ofa MobileNetV3 config), got "
                         f"{type(config).__name__}")
    for key in ("image_size", "img_size", "r", "resolution"):  # img_size: released NSGANetV2 / NAT configs
        if isinstance(config.get(key), int):
            return config[key]
    subnet = config_path.parent / "net.subnet"
    if subnet.is_file():
        from search_space.ofa import load_subnet, subnet_resolution

        r = subnet_resolution(load_subnet(subnet))
        if isinstance(r, int) and not isinstance(r, bool):
            return r
    return None


def _image_size_of_run(weights: Path) -> int | None:
    for folder in (weights.parent, weights.parent.parent):
        path = folder / "args.yaml"
        if path.is_file():
            args = read_yaml(path)
            if isinstance(args, dict) and isinstance(args.get("img_size"), int):
                return args["img_size"]
    return None


def resolve_image_size(explicit: int | None, dataset: str, config: str | Path | None = None,
                       weights: str | Path | None = None, nsganet: bool = False) -> int:
    """Input resolution: --img-size, else the training run's args.yaml beside the weights, else the
    config's "image_size"/"r" (or the "r" of a net.subnet beside it), else the data set's default."""
    from codebase.data import dataset_info

    if explicit is not None:  # 0 is refused, not read as "not given" (evaluator.py does the same)
        if not 1 <= explicit <= MAX_IMAGE_SIZE:
            raise ValueError(f"--img-size {explicit}: expected an input resolution in 1..{MAX_IMAGE_SIZE} pixels")
        return int(explicit)
    if weights and Path(weights).is_file():
        size = _image_size_of_run(Path(weights))
        if size:
            return size
    if config and Path(config).is_file():
        size = _image_size_of_config(Path(config))
        if size:
            return size
    return NSGANET_IMAGE_SIZE if nsganet else dataset_info(dataset).image_size


def count_parameters(model: nn.Module) -> float:
    """Millions of parameters, the auxiliary head excluded (it is dropped at inference)."""
    return sum(p.numel() for n, p in model.named_parameters() if "auxiliary" not in n) / 1e6


def model_complexity(model: nn.Module, image_size: int, config_path: str | Path | None = None) -> dict[str, Any]:
    """{"params", "flops"} in millions: closed form for ofa configs, the NSGA-Net counter otherwise."""
    if config_path is not None:
        from codebase.ofa_config import config_complexity, normalize_config

        c = config_complexity(normalize_config(_current_config(model)), image_size)
        return {"params": c["params"], "flops": c["flops"]}
    from codebase.nsganet_profile import count_flops

    return {"params": count_parameters(model), "flops": count_flops(model, image_size) / 1e6}


def _current_config(model: nn.Module) -> dict[str, Any]:
    return model.config  # ofa networks describe themselves, the head as it is now
