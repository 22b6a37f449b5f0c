"""Cell-based networks of the NSGA-Net micro search space (DARTS-style cells).

Three channel schedules share one network class:
- "cifar": C channels per block, doubled at the two reduction cells (at layers//3 and 2*layers//3);
- "pyramid": no doubling; the block width grows by `filter_increment` after every cell
  (NSGA-Net's published CIFAR models);
- "imagenet": the DARTS ImageNet stem (three stride-2 convs) with the "cifar" schedule.

In training mode with an auxiliary head, forward returns (logits, auxiliary_logits); otherwise logits.
Set `drop_path_prob` on the network (e.g. each epoch) to drop non-identity cell branches.
Weights of the original NSGA-Net code load after `from_original_names` (its module names differ).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from codebase.networks.genotypes import Genotype, genotype_from_dict
from codebase.networks.operations import (
    OPS,
    FactorizedReduce,
    Identity,
    ReLUConvBN,
    SqueezeExcite,
    drop_path,
)

NETWORK_KINDS = ("cifar", "pyramid", "imagenet")


class Cell(nn.Module):
    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        squeeze_excite: bool = False,
    ):
        super().__init__()
        self.reduction = reduction
        # the input two cells back has twice the resolution when the previous cell reduced
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.inputs = [index for _, index in pairs]
        self.ops = nn.ModuleList(OPS[op](c, 2 if reduction and index < 2 else 1) for op, index in pairs)
        self.out_channels = len(self.concat) * c
        self.se = SqueezeExcite(self.out_channels) if squeeze_excite else None

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for block in range(len(self.ops) // 2):
            total = 0
            for k in (2 * block, 2 * block + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        out = torch.cat([states[i] for i in self.concat], dim=1)
        return self.se(out) if self.se is not None else out


class AuxiliaryHead(nn.Module):
    """Classifier on the features after the second reduction (8x8 on CIFAR, 14x14 on ImageNet).

    The ImageNet head has no BatchNorm after its 768-channel conv, like the original's
    AuxiliaryHeadImageNet (left out there for consistency with the paper's experiments).
    """

    def __init__(self, c: int, n_classes: int, imagenet: bool = False):
        super().__init__()
        self.features = nn.Sequential(
            # not in place: the input is the network's feature map, still needed after the head
            # (with 3 cells it is the last cell's output, which the main classifier pools)
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            *([] if imagenet else [nn.BatchNorm2d(768)]),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # 1x1 already at the nominal input sizes; guards larger ones
        self.classifier = nn.Linear(768, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.features[1]
        need = pool.kernel_size + pool.stride  # 5x5 pooling, then a 2x2 convolution on what it gives
        if min(x.shape[-2:]) < need:
            raise ValueError(
                f"the auxiliary head needs features of at least {need}x{need} after the second reduction cell, got "
                f"{x.shape[-2]}x{x.shape[-1]}: use larger images (--img-size; 29 px and up for CIFAR networks) or "
                f"drop --auxiliary")
        return self.classifier(self.pool(self.features(x)).flatten(1))


def cell_plan(layers: int, init_channels: int, kind: str, filter_increment: int) -> list[tuple[int, bool]]:
    """(block width C, is reduction) for every cell."""
    reductions = {layers // 3, 2 * layers // 3}
    plan, c = [], init_channels
    for i in range(layers):
        reduction = i in reductions
        if reduction and kind != "pyramid":
            c *= 2
        plan.append((c, reduction))
        if kind == "pyramid":
            c += filter_increment
    return plan


def _check_widths(genotype: Genotype, plan: list[tuple[int, bool]], kind: str) -> None:
    """Refuse a plan only where the original fails too: FactorizedReduce splits a cell's C channels into two
    stride-2 halves, in the cell after a reduction (preprocess0) and for a reduction cell's skip_connect on its
    inputs, so C must be even there; any other width builds (odd init_channels in the plain CIFAR network)."""
    strided_skip = any(op == "skip_connect" and index < 2 for op, index in genotype.reduce)
    reduction_prev = kind == "imagenet"  # the ImageNet stem reduces before the first cell
    for i, (c, reduction) in enumerate(plan):
        if c < 1:
            raise ValueError(f"micro network: cell {i} has {c} channels per block "
                             f"(init_channels + i * filter_increment)")
        if c % 2 and (reduction_prev or (reduction and strided_skip)):
            raise ValueError(f"micro network: cell {i} has {c} channels per block, but its factorized reduction "
                             f"halves them: choose init_channels (and filter_increment) to make it even")
        reduction_prev = reduction


class MicroNetwork(nn.Module):
    def __init__(
        self,
        genotype: Genotype | dict[str, Any],
        init_channels: int = 36,
        layers: int = 20,
        n_classes: int = 10,
        auxiliary: bool = False,
        squeeze_excite: bool = False,
        kind: str = "cifar",
        filter_increment: int = 4,
        drop_path_prob: float = 0.0,
    ):
        super().__init__()
        if kind not in NETWORK_KINDS:
            raise ValueError(f"micro network kind must be one of {NETWORK_KINDS}, got '{kind}'")
        if layers < 3:
            raise ValueError(f"micro network needs at least 3 layers (cells), got {layers}")
        if init_channels < (2 if kind == "imagenet" else 1):  # the ImageNet stem starts with init_channels // 2
            raise ValueError(f"init_channels must be at least {2 if kind == 'imagenet' else 1}, got {init_channels}")
        self.genotype = genotype = genotype_from_dict(genotype)
        _check_widths(genotype, cell_plan(layers, init_channels, kind, filter_increment), kind)
        self.drop_path_prob = float(drop_path_prob)
        self.aux_index = 2 * layers // 3
        c = init_channels
        if kind == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c)
            )
            c_prev_prev = c_prev = c
            reduction_prev = True
        else:
            stem_channels = 3 * c
            self.stem = nn.Sequential(
                nn.Conv2d(3, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels)
            )
            self.stem1 = None
            c_prev_prev = c_prev = stem_channels
            reduction_prev = False
        self.cells = nn.ModuleList()
        aux_channels = 0
        for i, (c, reduction) in enumerate(cell_plan(layers, init_channels, kind, filter_increment)):
            cell = Cell(genotype, c_prev_prev, c_prev, c, reduction, reduction_prev, squeeze_excite)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.out_channels
            if i == self.aux_index:
                aux_channels = c_prev
        self.auxiliary_head = AuxiliaryHead(aux_channels, n_classes, kind == "imagenet") if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem(x)
        s1 = self.stem1(s0) if self.stem1 is not None else s0
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if aux is not None else logits


def build_micro_network(
    genotype: Genotype | dict[str, Any],
    init_channels: int = 36,
    layers: int = 20,
    n_classes: int = 10,
    auxiliary: bool = False,
    SE: bool = False,
    filter_increment: int | None = None,
    imagenet: bool = False,
    drop_path_prob: float = 0.0,
) -> MicroNetwork:
    """The network NSGA-Net builds for a genotype: pyramid when filter_increment is given (and > 0)."""
    if imagenet:
        kind = "imagenet"
    elif filter_increment:
        kind = "pyramid"
    else:
        kind = "cifar"
    return MicroNetwork(genotype, init_channels, layers, n_classes, auxiliary, SE, kind,
                        filter_increment or 0, drop_path_prob)


# The original code (ianwhale/nsga-net, models/micro_models.py and its DARTS-style operations) names
# the ImageNet stem `stem0`, a cell's operations `_ops` and its squeeze-excite `se_layer`, and its
# ReLUConvBN, SepConv and DilConv keep their layers in a Sequential called `op`.
_ORIGINAL_NAMES = (
    (re.compile(r"^stem0\."), "stem."),
    (re.compile(r"\._ops\."), ".ops."),
    (re.compile(r"\.se_layer\."), ".se."),
    (re.compile(r"\.(ops\.\d+|preprocess[01])\.op\."), r".\1."),
)


def from_original_names(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of the original NSGA-Net micro networks under this module's names; ours pass unchanged."""
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in _ORIGINAL_NAMES:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out
