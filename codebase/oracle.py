"""OFA's published ImageNet accuracy predictor, used as a cheap "true accuracy" for benchmarks.

The OFA authors trained an MLP (128-400-400-400-1, ReLU) on measured ImageNet top-1 of subnets of
the OFA MobileNetV3 w1.2 supernet. Its input is a 128-dim one-hot vector: per layer slot (20 slots,
4 per stage) a kernel one-hot (3/5/7) and an expand one-hot (3/4/6), all zero for skipped layers,
and a resolution one-hot over 112..224 step 16. It outputs top-1 as a fraction.

Two checkpoint layouts exist and both are read here:
- the tutorial layout (`ofa.tutorial.AccuracyPredictor`, the published `acc_predictor.pth`): a plain
  nn.Sequential with keys `0.*, 2.*, 4.*, 6.*` (last Linear with a bias), features ordered
  [kernel 60 | expand 60 | resolution 8];
- the `ofa.nas.accuracy_predictor.AccuracyPredictor` layout: keys `layers.{0,1,2}.0.*`,
  `layers.3.weight` (no bias) and `base_acc`, features ordered [resolution 8 | kernel 60 | expand 60]
  (its `MobileNetArchEncoder` order).

The forward pass is plain numpy, vectorised over a batch of genomes: benchmarks call it often.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codebase.io import load_torch
from search_space.ofa import N_LAYERS, OFA_ORACLE_RESOLUTIONS, OFASearchSpace

#: The 8 resolution slots of the predictor's input (112..224 step 16).
FEATURE_RESOLUTIONS = tuple(range(112, 225, 16))
KERNEL_SIZES = (3, 5, 7)
EXPAND_RATIOS = (3, 4, 6)
N_FEATURES = 2 * 3 * N_LAYERS + len(FEATURE_RESOLUTIONS)  # 128
HIDDEN = 400

_TUTORIAL_KEYS = [("0.weight", "0.bias"), ("2.weight", "2.bias"), ("4.weight", "4.bias"), ("6.weight", "6.bias")]
_NAS_KEYS = [
    ("layers.0.0.weight", "layers.0.0.bias"),
    ("layers.1.0.weight", "layers.1.0.bias"),
    ("layers.2.0.weight", "layers.2.0.bias"),
    ("layers.3.weight", None),
]


def oracle_space() -> OFASearchSpace:
    """The space the oracle scores: OFA MobileNetV3 w1.2 with resolutions 160..224 step 16."""
    return OFASearchSpace(width_mult=1.2, resolutions=OFA_ORACLE_RESOLUTIONS)


class OFAOracle:
    """Top-1 ImageNet accuracy (percent) of OFA MobileNetV3 w1.2 subnets, from OFA's predictor."""

    def __init__(self, path: str | Path, space: OFASearchSpace | None = None) -> None:
        self.path = Path(path)
        self.space = oracle_space() if space is None else space
        _check_space(self.space)
        state = load_torch(self.path)
        self.weights, self.biases, self.offset, self.layout = _read_state(state, self.path)

    def features(self, X: np.ndarray) -> np.ndarray:
        """(n, 128) float32 one-hot features in the checkpoint's order."""
        X = np.atleast_2d(np.asarray(X))
        self.space.check_genomes(X)
        ks, e, active, r = self.space.layer_arrays(X)
        n = len(X)
        rows = np.arange(n)[:, None]
        slots = np.arange(N_LAYERS)[None, :] * 3
        kernel = np.zeros((n, 3 * N_LAYERS), dtype=np.float32)
        expand = np.zeros((n, 3 * N_LAYERS), dtype=np.float32)
        k_idx = slots + np.searchsorted(KERNEL_SIZES, ks)
        e_idx = slots + np.searchsorted(EXPAND_RATIOS, e)
        kernel[rows, k_idx] = active  # skipped layers stay all zero
        expand[rows, e_idx] = active
        res = np.zeros((n, len(FEATURE_RESOLUTIONS)), dtype=np.float32)
        res[np.arange(n), np.searchsorted(FEATURE_RESOLUTIONS, r)] = 1.0
        parts = [kernel, expand, res] if self.layout == "tutorial" else [res, kernel, expand]
        return np.concatenate(parts, axis=1)

    def top1(self, X: np.ndarray) -> np.ndarray:
        """(n,) predicted top-1 accuracy in percent for an (n, 46) genome array."""
        h = self.features(X)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T
            if b is not None:
                h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return (h[:, 0].astype(np.float64) + self.offset) * 100.0

    def top1_err(self, X: np.ndarray) -> np.ndarray:
        """(n,) predicted top-1 error in percent: what the surrogates are fitted on."""
        return 100.0 - self.top1(X)


def _check_space(space: OFASearchSpace) -> None:
    if tuple(space.kernel_sizes) != KERNEL_SIZES or tuple(space.expand_ratios) != EXPAND_RATIOS:
        raise ValueError(
            f"oracle: the OFA predictor scores kernels {KERNEL_SIZES} and expand ratios {EXPAND_RATIOS}; "
            f"the space has {space.kernel_sizes} and {space.expand_ratios}"
        )
    if not set(space.resolutions) <= set(FEATURE_RESOLUTIONS):
        raise ValueError(
            f"oracle: the OFA predictor knows resolutions {FEATURE_RESOLUTIONS}; the space has {space.resolutions}"
        )


def _read_state(state: Any, path: Path) -> tuple[list[np.ndarray], list[np.ndarray | None], float, str]:
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of the OFA accuracy predictor, got {type(state).__name__}")
    if all(w in state and b in state for w, b in _TUTORIAL_KEYS):
        keys, layout = _TUTORIAL_KEYS, "tutorial"
    elif all(w in state for w, _ in _NAS_KEYS) and "base_acc" in state:
        keys, layout = _NAS_KEYS, "nas"
    else:
        raise ValueError(
            f"{path}: not an OFA accuracy predictor state dict (expected keys 0.weight..6.bias or "
            f"layers.*.weight + base_acc; got {sorted(state)[:8]})"
        )
    shapes = [(HIDDEN, N_FEATURES), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (1, HIDDEN)]
    weights, biases = [], []
    for (wk, bk), shape in zip(keys, shapes):
        w = _array(state[wk], path, wk)
        if w.shape != shape:
            raise ValueError(f"{path}: '{wk}' has shape {w.shape}, expected {shape} (MLP 128-400-400-400-1)")
        weights.append(w)
        if bk is None:
            biases.append(None)
            continue
        b = _array(state[bk], path, bk)
        if b.shape != (shape[0],):
            raise ValueError(f"{path}: '{bk}' has shape {b.shape}, expected ({shape[0]},)")
        biases.append(b)
    offset = 0.0
    if layout == "nas":
        base = _array(state["base_acc"], path, "base_acc")
        if base.size != 1:
            raise ValueError(f"{path}: 'base_acc' has shape {base.shape}, expected a single value")
        offset = float(base.reshape(()))
    return weights, biases, offset, layout


def _array(value: Any, path: Path, key: str) -> np.ndarray:
    try:
        a = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        return np.ascontiguousarray(a, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{key}' is not a numeric tensor") from None
