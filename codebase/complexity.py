"""Exact parameter and multiply-accumulate counts of OFA MobileNetV3 subnets, in closed form.

No network is built: every count follows from the architecture. Two MAC conventions, both exact:
- ``torchprofile`` (what NSGANetV2 reported): equal to ``torchprofile.profile_macs`` on the extracted
  subnet in eval mode. Besides convolutions and the classifier it counts one MAC per output element of
  batch norm, of the multiplication inside h-swish, of SE's channel rescale, and of each `mean` of the
  global/SE pooling.
- ``ofa``: convolution and linear layers only, equal to ``ofa.utils.count_net_flops``.
`params` counts every parameter (convolutions, batch-norm affine, biases, classifier).

The same layer formulas serve a batch of genomes (numpy arrays, vectorised over architectures) and a
single ``net.config`` (scalars): one place for each formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from search_space.ofa import MAX_DEPTH, N_STAGES, OFASearchSpace, compact_subnet

BASE_STAGE_WIDTH = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)  # the five searchable stages (the first block has stride 1)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
MUL_ACTS = ("h_swish", "swish")  # activations written as x * f(x): torchprofile counts the `mul`


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """The `ofa` package's channel rounding (from the TF MobileNet code)."""
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


@dataclass
class Cost:
    """Parameters and MACs under both conventions; numpy arrays or Python ints."""

    params: Any = 0
    macs: Any = 0  # torchprofile convention
    macs_ofa: Any = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.macs_ofa + other.macs_ofa)

    def masked(self, mask: Any) -> Cost:
        return Cost(self.params * mask, self.macs * mask, self.macs_ofa * mask)


def conv_out_size(size: Any, kernel: Any, stride: Any) -> Any:
    """Spatial size after a 'same'-padded convolution (padding kernel // 2), as in `ofa`."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def conv_cost(cin: Any, cout: Any, kernel: Any, size_out: Any, groups: Any = 1, bias: bool = False,
              bn: bool = True, act: str | None = None) -> Cost:
    """A conv layer (+ optional BN and activation) producing a size_out x size_out map."""
    weights = cout * (cin // groups) * kernel * kernel
    elems = cout * size_out * size_out
    macs = elems * (cin // groups) * kernel * kernel
    extra = (elems if bn else 0) + (elems if act in MUL_ACTS else 0)
    return Cost(weights + (cout if bias else 0) + (2 * cout if bn else 0), macs + extra, macs)


def se_cost(channels: Any, size: Any) -> Cost:
    """`ofa` SEModule on a channels x size x size map: mean, mean, 1x1 reduce, 1x1 expand, rescale."""
    mid = _make_divisible_array(channels // 4)
    fc = 2 * channels * mid
    pooling = channels * size + channels  # x.mean(3) then .mean(2)
    return Cost(fc + mid + channels, fc + pooling + channels * size * size, fc)


def mbconv_cost(cin: Any, cout: Any, mid: Any, kernel: Any, stride: Any, size_in: Any,
                act: str, use_se: bool, expand: bool = True) -> tuple[Cost, Any]:
    """An inverted-residual block (1x1 expand, depthwise kxk, optional SE, 1x1 project).

    Returns the cost and the output spatial size. The residual add costs nothing in either convention.
    """
    cost = conv_cost(cin, mid, 1, size_in, act=act) if expand else Cost()
    size_out = conv_out_size(size_in, kernel, stride)
    cost = cost + conv_cost(mid, mid, kernel, size_out, groups=mid, act=act)
    if use_se:
        cost = cost + se_cost(mid, size_out)
    return cost + conv_cost(mid, cout, 1, size_out), size_out


def head_cost(cin: Any, final_expand: int, last_channel: int, n_classes: int, size: Any) -> Cost:
    """Final 1x1 expand (BN, h-swish), global average pool, feature mix (h-swish), linear classifier."""
    cost = conv_cost(cin, final_expand, 1, size, act="h_swish")
    pool = Cost(0, final_expand * size + final_expand, 0)
    mix = conv_cost(final_expand, last_channel, 1, 1, bn=False, act="h_swish")
    fc = last_channel * n_classes
    return cost + pool + mix + Cost(fc + n_classes, fc, fc)


def _make_divisible_array(v: Any) -> Any:
    if np.ndim(v) == 0:
        return make_divisible(int(v))
    values = np.asarray(v)
    table = {int(x): make_divisible(int(x)) for x in np.unique(values)}
    return np.vectorize(table.__getitem__, otypes=[np.int64])(values)


def mbv3_widths(width_mult: float) -> tuple[list[int], int, int]:
    """Stage widths (first conv, first block, 5 stages), final expand width, last channel."""
    widths = [make_divisible(w * width_mult) for w in BASE_STAGE_WIDTH[:-2]]
    return widths, make_divisible(BASE_STAGE_WIDTH[-2] * width_mult), make_divisible(BASE_STAGE_WIDTH[-1] * width_mult)


def ofa_layer_complexity(ks: np.ndarray, e: np.ndarray, active: np.ndarray, r: np.ndarray,
                         width_mult: float = 1.0, n_classes: int = 1000) -> Cost:
    """Vectorised counts for n subnets given per-layer kernels/expands (n,20), active mask (n,20), resolutions (n,)."""
    ks, e = np.asarray(ks, dtype=np.int64), np.asarray(e, dtype=np.int64)
    active, r = np.asarray(active, dtype=bool), np.asarray(r, dtype=np.int64)
    widths, final_expand, last_channel = mbv3_widths(width_mult)
    size = conv_out_size(r, 3, 2)
    total = conv_cost(3, widths[0], 3, size, act="h_swish")
    first, size = mbconv_cost(widths[0], widths[1], widths[0], 3, 1, size, "relu", False, expand=False)
    total = total + first
    cin = widths[1]
    for s in range(N_STAGES):
        cout = widths[s + 2]
        for j in range(MAX_DEPTH):
            slot = s * MAX_DEPTH + j
            block_in = cin if j == 0 else cout
            mid = _make_divisible_array(np.round(block_in * e[:, slot]).astype(np.int64))
            cost, size_out = mbconv_cost(block_in, cout, mid, ks[:, slot], STAGE_STRIDES[s] if j == 0 else 1,
                                         size, STAGE_ACTS[s], STAGE_SE[s])
            total = total + cost.masked(active[:, slot])
            size = np.where(active[:, slot], size_out, size)
        cin = cout
    return total + head_cost(cin, final_expand, last_channel, n_classes, size)


def genome_complexity(space: OFASearchSpace, X: np.ndarray, n_classes: int = 1000) -> Cost:
    """Counts for a batch of genomes of `space` (arrays of shape (n,))."""
    ks, e, active, r = space.layer_arrays(np.asarray(X))
    return ofa_layer_complexity(ks, e, active, r, space.width_mult, n_classes)


def subnet_complexity(subnet: dict[str, Any], width_mult: float = 1.0, n_classes: int = 1000,
                      resolution: int | None = None) -> dict[str, float]:
    """{"params", "flops", "flops_ofa"} in millions for one subnet description (ks/e/d/r; compact or
    20-entry padded ks/e, r as R or [R]); `resolution` overrides r."""
    if isinstance(subnet, dict) and resolution is not None:
        subnet = {**subnet, "r": int(resolution)}
    c = compact_subnet(subnet)
    ks, e = np.zeros((1, N_STAGES * MAX_DEPTH), np.int64), np.zeros((1, N_STAGES * MAX_DEPTH), np.int64)
    active = np.zeros_like(ks, dtype=bool)
    layer = 0
    for s in range(N_STAGES):
        for j in range(c["d"][s]):
            slot = s * MAX_DEPTH + j
            ks[0, slot], e[0, slot], active[0, slot] = c["ks"][layer], c["e"][layer], True
            layer += 1
    return to_millions(ofa_layer_complexity(ks, e, active, np.array([c["r"]]), width_mult, n_classes))


def to_millions(cost: Cost) -> dict[str, Any]:
    """Counts in millions; scalars for a single architecture, arrays for a batch."""
    out = {"params": cost.params / 1e6, "flops": cost.macs / 1e6, "flops_ofa": cost.macs_ofa / 1e6}
    return {k: (float(np.asarray(v).ravel()[0]) if np.size(v) == 1 else np.asarray(v, dtype=float))
            for k, v in out.items()}
