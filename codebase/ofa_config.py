"""`net.config` files: the `ofa` package's MobileNetV3 configuration, in both spellings.

Current `ofa` writes blocks as ``ResidualBlock`` holding ``conv: MBConvLayer``; the version the
original NSGANetV2 used wrote ``MobileInvertedResidualBlock`` holding
``mobile_inverted_conv: MBInvertedConvLayer``. `normalize_config` turns either into the current one,
`config_complexity` counts it in closed form (same formulas as codebase.complexity), and
`build_from_config` builds the network.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from codebase.complexity import Cost, conv_cost, conv_out_size, mbconv_cost, to_millions
from codebase.io import read_json

_CONV_NAMES = {"MBConvLayer", "MBInvertedConvLayer"}
_BLOCK_NAMES = {"ResidualBlock", "MobileInvertedResidualBlock"}


def load_config(path: str | Path) -> dict[str, Any]:
    return normalize_config(read_json(path), source=str(path))


def normalize_config(config: Any, source: str = "net.config") -> dict[str, Any]:
    """Validate a MobileNetV3 config and rewrite old spellings to the current `ofa` ones."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: expected a JSON object (an ofa MobileNetV3 config)")
    config = copy.deepcopy(config)
    for key in ("first_conv", "blocks", "final_expand_layer", "feature_mix_layer", "classifier"):
        if key not in config:
            raise ValueError(f"{source}: missing field '{key}' (not an ofa MobileNetV3 config)")
    if not isinstance(config["blocks"], list) or not config["blocks"]:
        raise ValueError(f"{source}: field 'blocks' must be a non-empty list")
    blocks = []
    for i, block in enumerate(config["blocks"]):
        if not isinstance(block, dict) or block.get("name", "ResidualBlock") not in _BLOCK_NAMES:
            raise ValueError(f"{source}: blocks[{i}] is not a ResidualBlock/MobileInvertedResidualBlock")
        conv = block.get("conv", block.get("mobile_inverted_conv"))
        if not isinstance(conv, dict) or conv.get("name") not in _CONV_NAMES:
            raise ValueError(f"{source}: blocks[{i}] has no MBConvLayer/MBInvertedConvLayer 'conv'")
        for key in ("in_channels", "out_channels", "kernel_size", "stride", "expand_ratio"):
            if key not in conv:
                raise ValueError(f"{source}: blocks[{i}].conv is missing field '{key}'")
        conv = {**conv, "name": "MBConvLayer"}
        blocks.append({"name": "ResidualBlock", "conv": conv, "shortcut": block.get("shortcut")})
    config["blocks"] = blocks
    config.setdefault("name", "MobileNetV3")
    return config


def build_from_config(config: dict[str, Any]):
    """The `ofa` MobileNetV3 network of a (normalised) config."""
    from ofa.imagenet_classification.networks import MobileNetV3

    return MobileNetV3.build_from_config(copy.deepcopy(normalize_config(config)))


def _conv_layer(layer: dict[str, Any], size: int, where: str) -> tuple[Cost, int]:
    if layer.get("ops_order", "weight_bn_act") != "weight_bn_act" or layer.get("use_se"):
        raise ValueError(f"net.config: {where} uses an unsupported ConvLayer option")
    k, stride = int(layer.get("kernel_size", 3)), int(layer.get("stride", 1))
    if int(layer.get("dilation", 1)) != 1:
        raise ValueError(f"net.config: {where} uses dilation, not supported")
    size_out = conv_out_size(size, k, stride)
    cost = conv_cost(int(layer["in_channels"]), int(layer["out_channels"]), k, size_out,
                     groups=int(layer.get("groups", 1) or 1), bias=bool(layer.get("bias", False)),
                     bn=bool(layer.get("use_bn", True)), act=layer.get("act_func"))
    return cost, size_out


def config_complexity(config: dict[str, Any], resolution: int) -> dict[str, float]:
    """{"params", "flops", "flops_ofa"} in millions of a MobileNetV3 config at a square input."""
    config = normalize_config(config)
    total, size = _conv_layer(config["first_conv"], resolution, "first_conv")
    for i, block in enumerate(config["blocks"]):
        c = block["conv"]
        e = c["expand_ratio"]
        mid = c.get("mid_channels") or round(c["in_channels"] * e)
        if c.get("groups") not in (None, 0):
            raise ValueError(f"net.config: blocks[{i}] uses grouped depthwise convolution, not supported")
        cost, size = mbconv_cost(int(c["in_channels"]), int(c["out_channels"]), int(mid), int(c["kernel_size"]),
                                 int(c["stride"]), size, c.get("act_func", "relu6"), bool(c.get("use_se")),
                                 expand=not math.isclose(e, 1))
        total = total + cost
    head, size = _conv_layer(config["final_expand_layer"], size, "final_expand_layer")
    channels = int(config["final_expand_layer"]["out_channels"])
    total = total + head + Cost(0, channels * size + channels, 0)  # global average pool: mean, mean
    mix, _ = _conv_layer(config["feature_mix_layer"], 1, "feature_mix_layer")
    fc = config["classifier"]
    if fc.get("use_bn"):
        raise ValueError("net.config: classifier with batch norm is not supported")
    n_in, n_out = int(fc["in_features"]), int(fc["out_features"])
    total = total + mix + Cost(n_in * n_out + (n_out if fc.get("bias", True) else 0), n_in * n_out, n_in * n_out)
    return to_millions(total)
