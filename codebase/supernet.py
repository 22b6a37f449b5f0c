"""Building the OFA MobileNetV3 supernet and extracting subnets from it (the `ofa` package).

Only `ofa.imagenet_classification.*` and `ofa.utils` are imported: `ofa.model_zoo` and
`ofa.tutorial` import gdown and download weights, which this toolkit never does.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from search_space.ofa import MAX_DEPTH, N_STAGES, compact_subnet


def build_supernet(
    width_mult: float = 1.0,
    n_classes: int = 1000,
    dropout_rate: float = 0.1,
    kernel_sizes: tuple[int, ...] = (3, 5, 7),
    expand_ratios: tuple[int, ...] = (3, 4, 6),
    depths: tuple[int, ...] = (2, 3, 4),
) -> nn.Module:
    """An OFAMobileNetV3 with the given choices (randomly initialised)."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    return OFAMobileNetV3(
        n_classes=n_classes,
        dropout_rate=dropout_rate,
        width_mult=width_mult,
        ks_list=list(kernel_sizes),
        expand_ratio_list=list(expand_ratios),
        depth_list=list(depths),
    )


def padded_layers(subnet: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Compact ks/e lists (one per active layer) to the supernet's 20 layer slots.

    Inactive slots get the stage's last active value; the supernet ignores them. A subnet already in the
    20-entry padded form is read as such (search_space.ofa.compact_subnet), never as a compact one.
    """
    subnet = compact_subnet({**subnet, "r": 1})  # the layers only: callers may leave out the resolution
    ks, e, out_ks, out_e, i = subnet["ks"], subnet["e"], [], [], 0
    for s in range(N_STAGES):
        d = subnet["d"][s]
        for j in range(MAX_DEPTH):
            k = i + min(j, d - 1)
            out_ks.append(int(ks[k]))
            out_e.append(int(e[k]))
        i += d
    return out_ks, out_e


def set_active_subnet(supernet: nn.Module, subnet: dict[str, Any]) -> None:
    ks, e = padded_layers(subnet)
    supernet.set_active_subnet(ks=ks, e=e, d=[int(d) for d in subnet["d"]])


def extract_subnet(supernet: nn.Module, subnet: dict[str, Any], preserve_weight: bool = True) -> nn.Module:
    """A standalone `ofa` MobileNetV3 with the subnet's layers (weights copied from the supernet)."""
    set_active_subnet(supernet, subnet)
    return supernet.get_active_subnet(preserve_weight=preserve_weight)
