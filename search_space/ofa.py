"""The OFA MobileNetV3 search space with the 46-integer genome of the original NSGANetV2 tool.

Genome layout, per stage s = 0..4 (9 genes each, starting at 9*s):
    [depth index, kernel index x4, expand index x4]
and the last gene (45) is the resolution index. Layer j of stage s is active when j < depth.
Genes of inactive layers carry no meaning; `canonical` zeroes them so that two genomes of one
architecture compare equal (the original's `_pad_zero`).

A subnet description (what a `.subnet` file holds) is
    {"ks": [...], "e": [...], "d": [d1..d5], "r": R}
with one ks/e entry per active layer (sum(d) entries); the 20-entry padded form is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_space.base import unique_rows

N_STAGES = 5
MAX_DEPTH = 4
GENES_PER_STAGE = 1 + 2 * MAX_DEPTH
N_VAR = N_STAGES * GENES_PER_STAGE + 1  # 46
N_LAYERS = N_STAGES * MAX_DEPTH  # 20

DEPTH_GENES = np.arange(N_STAGES) * GENES_PER_STAGE
KERNEL_GENES = (DEPTH_GENES[:, None] + 1 + np.arange(MAX_DEPTH)).ravel()  # (20,), layer order
EXPAND_GENES = (DEPTH_GENES[:, None] + 1 + MAX_DEPTH + np.arange(MAX_DEPTH)).ravel()
RESOLUTION_GENE = N_VAR - 1

#: NSGANetV2's default resolutions (192..256 step 4) and the OFA ImageNet predictor's (160..224 step 16).
NSGANETV2_RESOLUTIONS = tuple(range(192, 257, 4))
OFA_ORACLE_RESOLUTIONS = tuple(range(160, 225, 16))
#: the largest input resolution any tool accepts: beyond it is a typo (5000 px ran out of memory mid-run)
MAX_RESOLUTION = 1024


@dataclass(frozen=True)
class OFASearchSpace:
    """Choices of the OFA MobileNetV3 supernet. Frozen: a space is a value."""

    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = NSGANETV2_RESOLUTIONS
    width_mult: float = 1.0
    name: str = field(default="ofa", init=False)

    def __post_init__(self) -> None:
        for attr in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
            values = tuple(int(v) for v in getattr(self, attr))
            if not values or list(values) != sorted(set(values)):
                raise ValueError(f"search space '{attr}' must be a non-empty increasing list, got {values}")
            object.__setattr__(self, attr, values)
        if max(self.resolutions) > MAX_RESOLUTION:
            raise ValueError(f"search space resolutions must be at most {MAX_RESOLUTION} pixels, got "
                             f"{max(self.resolutions)}")
        if min(self.resolutions) < 1 or min(self.kernel_sizes) < 1 or min(self.expand_ratios) < 1:
            raise ValueError(f"search space resolutions, kernel sizes and expand ratios must be positive, got "
                             f"{self.resolutions}, {self.kernel_sizes}, {self.expand_ratios}")
        if max(self.depths) > MAX_DEPTH or min(self.depths) < 1:
            raise ValueError(f"search space 'depths' must lie in 1..{MAX_DEPTH}, got {self.depths}")
        if self.width_mult not in (1.0, 1.2):
            raise ValueError(f"search space 'width_mult' must be 1.0 or 1.2, got {self.width_mult}")

    # ------------------------------------------------------------------ genome geometry
    n_var: int = field(default=N_VAR, init=False)

    @property
    def xl(self) -> np.ndarray:
        return np.zeros(N_VAR, dtype=int)

    @property
    def xu(self) -> np.ndarray:
        xu = np.empty(N_VAR, dtype=int)
        xu[DEPTH_GENES] = len(self.depths) - 1
        xu[KERNEL_GENES] = len(self.kernel_sizes) - 1
        xu[EXPAND_GENES] = len(self.expand_ratios) - 1
        xu[RESOLUTION_GENE] = len(self.resolutions) - 1
        return xu

    def active_layers(self, X: np.ndarray) -> np.ndarray:
        """(n, 20) boolean mask of the layers each genome uses."""
        X = np.atleast_2d(X)
        depth = np.asarray(self.depths)[X[:, DEPTH_GENES]]  # (n, 5)
        return (np.arange(MAX_DEPTH)[None, None, :] < depth[:, :, None]).reshape(len(X), N_LAYERS)

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=int, copy=True)
        squeeze = X.ndim == 1
        X = np.atleast_2d(X)
        self.check_genomes(X)
        inactive = ~self.active_layers(X)
        X[:, KERNEL_GENES] = np.where(inactive, 0, X[:, KERNEL_GENES])
        X[:, EXPAND_GENES] = np.where(inactive, 0, X[:, EXPAND_GENES])
        return X[0] if squeeze else X

    def check_genomes(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != N_VAR:
            raise ValueError(f"genome: expected shape (n, {N_VAR}), got {X.shape}")
        bad = (X < self.xl) | (X > self.xu)
        if bad.any():
            row, gene = map(int, np.argwhere(bad)[0])
            raise ValueError(f"genome: gene {gene} = {X[row, gene]} outside [0, {self.xu[gene]}] (row {row})")

    def layer_arrays(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised decode: kernel (n,20), expand (n,20), active mask (n,20), resolution (n,)."""
        X = np.atleast_2d(np.asarray(X, dtype=int))
        ks = np.asarray(self.kernel_sizes)[X[:, KERNEL_GENES]]
        e = np.asarray(self.expand_ratios)[X[:, EXPAND_GENES]]
        r = np.asarray(self.resolutions)[X[:, RESOLUTION_GENE]]
        return ks, e, self.active_layers(X), r

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        X = rng.integers(0, self.xu + 1, size=(int(n), N_VAR))
        return self.canonical(X)

    def smallest(self) -> np.ndarray:
        return np.zeros(N_VAR, dtype=int)

    def largest(self) -> np.ndarray:
        # canonical: with a largest depth below MAX_DEPTH the last layer slots stay unused, so their genes are 0
        return self.canonical(self.xu)

    def initialize(self, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        """The smallest and the largest architecture plus distinct random ones."""
        if n_doe < 2:
            raise ValueError(f"n_doe must be at least 2 (smallest and largest), got {n_doe}")
        X = np.stack([self.smallest(), self.largest()])
        for _ in range(1000):
            if len(X) >= n_doe:
                break
            X = np.concatenate([X, self.sample(2 * (n_doe - len(X)), rng)])
            X = X[unique_rows(X)]
        if len(X) < n_doe:
            raise ValueError(f"the space holds fewer than n_doe={n_doe} distinct architectures")
        return X[:n_doe]

    # ------------------------------------------------------------------ subnet <-> genome
    def decode(self, x: np.ndarray) -> dict[str, Any]:
        x = self.canonical(np.asarray(x, dtype=int).reshape(N_VAR))
        ks, e, active, r = self.layer_arrays(x)
        return {
            "ks": ks[0][active[0]].tolist(),
            "e": e[0][active[0]].tolist(),
            "d": [self.depths[i] for i in x[DEPTH_GENES]],
            "r": int(r[0]),
        }

    def encode(self, subnet: dict[str, Any]) -> np.ndarray:
        subnet = self.validate(subnet)
        x = np.zeros(N_VAR, dtype=int)
        layer = 0
        for s, d in enumerate(subnet["d"]):
            x[DEPTH_GENES[s]] = self.depths.index(d)
            for j in range(d):
                x[KERNEL_GENES[s * MAX_DEPTH + j]] = self.kernel_sizes.index(subnet["ks"][layer])
                x[EXPAND_GENES[s * MAX_DEPTH + j]] = self.expand_ratios.index(subnet["e"][layer])
                layer += 1
        x[RESOLUTION_GENE] = self.resolutions.index(subnet["r"])
        return x

    def validate(self, subnet: Any) -> dict[str, Any]:
        """Check a subnet description against this space; return it in compact form.

        Raises ValueError naming the offending field.
        """
        _check_keys(subnet)
        d = _int_list(subnet["d"], "d")
        if len(d) != N_STAGES:
            raise ValueError(f"subnet field 'd': expected {N_STAGES} entries, got {len(d)}")
        _check_choices(d, self.depths, "d", "depths")
        r = subnet_resolution(subnet)
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise ValueError(f"subnet field 'r': expected an integer resolution, got {r!r}")
        _check_choices([int(r)], self.resolutions, "r", "resolutions")
        out = compact_subnet(subnet)
        _check_choices(out["ks"], self.kernel_sizes, "ks", "kernel sizes")
        _check_choices(out["e"], self.expand_ratios, "e", "expand ratios")
        return out


def compact_subnet(subnet: Any) -> dict[str, Any]:
    """{"ks", "e", "d", "r"} with one ks/e entry per active layer, from either the compact or the 20-entry
    padded form and "r" as R or [R]; checks the structure, not a space's choices (see validate)."""
    _check_keys(subnet)
    d = _int_list(subnet["d"], "d")
    if len(d) != N_STAGES or not all(1 <= v <= MAX_DEPTH for v in d):
        raise ValueError(f"subnet field 'd': expected {N_STAGES} depths in 1..{MAX_DEPTH}, got {d}")
    r = subnet_resolution(subnet)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"subnet field 'r': expected a positive integer resolution, got {r!r}")
    out: dict[str, Any] = {}
    for key in ("ks", "e"):
        values = _int_list(subnet[key], key)
        if len(values) == N_LAYERS and sum(d) != N_LAYERS:  # padded form: one entry per layer slot
            values = [values[s * MAX_DEPTH + j] for s in range(N_STAGES) for j in range(d[s])]
        if len(values) != sum(d):
            raise ValueError(
                f"subnet field '{key}': expected sum(d) = {sum(d)} entries (or {N_LAYERS} padded), got {len(values)}"
            )
        out[key] = values
    return {"ks": out["ks"], "e": out["e"], "d": d, "r": int(r)}


def _check_keys(subnet: Any) -> None:
    if not isinstance(subnet, dict):
        raise ValueError(f"subnet: expected a JSON object with keys ks, e, d, r; got {type(subnet).__name__}")
    for key in ("ks", "e", "d", "r"):
        if key not in subnet:
            raise ValueError(f"subnet: missing field '{key}' (expected keys ks, e, d, r)")


def _int_list(values: Any, key: str) -> list[int]:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"subnet field '{key}': expected a list of integers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"subnet field '{key}': expected integers, got {v!r}")
        out.append(int(v))
    return out


def _check_choices(values: Sequence[int], choices: Sequence[int], key: str, what: str) -> None:
    for v in values:
        if v not in choices:
            raise ValueError(f"subnet field '{key}': {v} is not one of the space's {what} {tuple(choices)}")


def subnet_resolution(subnet: dict[str, Any]) -> Any:
    """The subnet's "r" field, unwrapped when a tool wrote it as a one-element list [R]."""
    r = subnet.get("r")
    return r[0] if isinstance(r, (list, tuple)) and len(r) == 1 else r


def load_subnet(path: str | Path) -> dict[str, Any]:
    """Read a `.subnet` JSON file (not validated against a space; see OFASearchSpace.validate)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read subnet file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a JSON subnet file (not UTF-8 text)") from None
    try:
        subnet = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a JSON subnet file ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(subnet, dict):
        raise ValueError(f"{path}: expected a JSON object with keys ks, e, d, r")
    return subnet

