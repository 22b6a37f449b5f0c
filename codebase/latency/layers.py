"""The layers of an OFA MobileNetV3 subnet, one record per look-up-table entry.

A latency look-up table holds one measured time per layer configuration (input size, channels,
kernel, stride, expand ratio, SE, activation). This module walks a subnet the way the `ofa`
package's OFAMobileNetV3 builds it and yields those configurations; `table.py` turns them into
the keys of the two shipped table formats.

Widths follow OFAMobileNetV3: make_divisible(base * width_mult, 8) with the base widths
16 (first conv), 16 (first block), 24, 40, 80, 112, 160 (stages), 960 (final expand), 1280
(feature mix); a block's middle width is make_divisible(round(in_channels * expand), 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codebase.complexity import STAGE_ACTS, STAGE_SE, STAGE_STRIDES, make_divisible, mbv3_widths
from search_space.ofa import N_STAGES, compact_subnet

# The network's geometry is defined once, in codebase.complexity.
STAGE_H_SWISH = tuple(act == "h_swish" for act in STAGE_ACTS)

#: Layer kinds in network order.
KINDS = ("first_conv", "block", "final_expand", "pool", "feature_mix", "classifier")


@dataclass(frozen=True)
class Layer:
    """One layer configuration. Spatial sizes are square: `size` in, `out_size` out."""

    kind: str
    size: int
    c_in: int
    c_out: int
    out_size: int
    kernel: int = 1
    stride: int = 1
    expand: int = 0  # expand ratio (blocks only)
    mid: int = 0  # middle (expanded) channels (blocks only)
    idskip: bool = False  # identity shortcut
    se: bool = False
    h_swish: bool = False


@dataclass(frozen=True)
class Widths:
    first_conv: int
    first_block: int
    stages: tuple[int, ...]
    final_expand: int
    feature_mix: int


def widths(width_mult: float) -> Widths:
    if not width_mult > 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    stage_widths, final_expand, feature_mix = mbv3_widths(width_mult)
    return Widths(stage_widths[0], stage_widths[1], tuple(stage_widths[2:]), final_expand, feature_mix)


def _conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv: ceil(size / stride)."""
    return (size - 1) // stride + 1


def block_layer(size: int, c_in: int, c_out: int, kernel: int, expand: int, stride: int, stage: int) -> Layer:
    mid = c_in if expand == 1 else make_divisible(round(c_in * expand))
    return Layer(
        "block", size, c_in, c_out, _conv_out(size, stride), kernel=kernel, stride=stride, expand=expand,
        mid=mid, idskip=stride == 1 and c_in == c_out, se=STAGE_SE[stage], h_swish=STAGE_H_SWISH[stage],
    )


def _stem(resolution: int, w: Widths) -> list[Layer]:
    size = _conv_out(resolution, 2)
    first_conv = Layer("first_conv", resolution, 3, w.first_conv, size, kernel=3, stride=2, h_swish=True)
    first_block = Layer(
        "block", size, w.first_conv, w.first_block, size, kernel=3, stride=1, expand=1, mid=w.first_conv,
        idskip=w.first_conv == w.first_block,
    )
    return [first_conv, first_block]


def _head(size: int, c_in: int, w: Widths, n_classes: int) -> list[Layer]:
    return [
        Layer("final_expand", size, c_in, w.final_expand, size, h_swish=True),
        Layer("pool", size, w.final_expand, w.final_expand, 1),
        Layer("feature_mix", 1, w.final_expand, w.feature_mix, 1, h_swish=True),
        Layer("classifier", 1, w.feature_mix, n_classes, 1),
    ]


def compact_layers(subnet: dict[str, Any]) -> tuple[list[int], list[int], list[int], int]:
    """(ks, e, d, r) of a subnet, ks/e with one entry per active layer (20-entry padded form accepted)."""
    c = compact_subnet(subnet)
    return c["ks"], c["e"], c["d"], c["r"]


def subnet_layers(subnet: dict[str, Any], width_mult: float = 1.0, n_classes: int = 1000) -> list[Layer]:
    """Every layer of the subnet, in network order."""
    ks, e, d, r = compact_layers(subnet)
    w = widths(width_mult)
    layers = _stem(r, w)
    size, c_in, i = layers[-1].out_size, w.first_block, 0
    for stage in range(N_STAGES):
        for j in range(d[stage]):
            stride = STAGE_STRIDES[stage] if j == 0 else 1
            layer = block_layer(size, c_in, w.stages[stage], ks[i], e[i], stride, stage)
            layers.append(layer)
            size, c_in, i = layer.out_size, layer.c_out, i + 1
    return layers + _head(size, c_in, w, n_classes)


def layer_configurations(
    resolution: int,
    width_mult: float = 1.0,
    kernel_sizes: Iterable[int] = (3, 5, 7),
    expand_ratios: Iterable[int] = (3, 4, 6),
    n_classes: int = 1000,
) -> list[Layer]:
    """Every distinct layer any subnet of the space can have at one resolution (network order).

    Per stage there are two block shapes (the strided first block and the repeated ones), each
    with every kernel x expand pair; depth only changes how often the second shape occurs.
    """
    w = widths(width_mult)
    layers = _stem(resolution, w)
    size, c_in = layers[-1].out_size, w.first_block
    for stage in range(N_STAGES):
        for j in range(2):
            stride = STAGE_STRIDES[stage] if j == 0 else 1
            shape = [block_layer(size, c_in, w.stages[stage], k, x, stride, stage) for k in kernel_sizes
                     for x in expand_ratios]
            layers += shape
            size, c_in = shape[0].out_size, shape[0].c_out
    return list(dict.fromkeys(layers + _head(size, c_in, w, n_classes)))


def input_shape(layer: Layer, batch_size: int = 1) -> Sequence[int]:
    """The NCHW tensor the layer consumes (the classifier gets the pooled 1x1 map, flattened by it)."""
    return (batch_size, layer.c_in, layer.size, layer.size)
