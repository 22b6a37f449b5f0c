"""Latency look-up tables: predict a subnet's latency as the sum of its layers' measured times.

Two formats ship, told apart by their keys:

`ofa` (OFA's Note10 tables, `<R>_lookup_table.yaml`, one resolution per file; what
`scripts/build_latency_lut.py` writes), entries `{count, mean, std}` in ms:
    Conv-input:224x224x3-output:112x112x24
    expanded_conv-input:56x56x32-output:28x28x48-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv_1-input:7x7x192-output:7x7x1152           (final expand)
    AvgPool2D-input:7x7x1152-output:1x1x1152
    Conv_2-input:1x1x1152-output:1x1x1536          (feature mix)
    Logits-input:1x1x1536-output:1000
  `expand` is the middle channel count; `hs` marks h-swish.

`nsganetv2` (NSGANetV2's `i7-8700K_lut.yaml`, all resolutions and widths in one file),
entries `{mean, var}` in ms:
    first_conv-input:224x224x3-output:112x112x16
    MBConv-input:56x56x24-output:28x28x40-expand:4-kernel:5-stride:2-idskip:0-se:1
    final_expand_layer-input:7x7x160-output:7x7x960
    feature_mix_layer-input:1x1x960-output:1x1x1280
    classifier-input:1280-output:1000
  `expand` is the expand ratio; no pooling entry (it is not timed); activation implied by stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from codebase.io import read_yaml
from codebase.latency.layers import Layer, subnet_layers, widths
from search_space.ofa import (
    EXPAND_GENES,
    KERNEL_GENES,
    MAX_DEPTH,
    N_LAYERS,
    N_STAGES,
    RESOLUTION_GENE,
    OFASearchSpace,
)

OFA_FORMAT, NSGANETV2_FORMAT = "ofa", "nsganetv2"
KNOWN_WIDTHS = (1.0, 1.2)


def _shape(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


def ofa_key(layer: Layer) -> str:
    """The layer's key in OFA's (Note10) table format."""
    io = f"input:{_shape(layer.size, layer.c_in)}-output:{_shape(layer.out_size, layer.c_out)}"
    if layer.kind == "block":
        return (
            f"expanded_conv-{io}-expand:{layer.mid}-kernel:{layer.kernel}-stride:{layer.stride}"
            f"-idskip:{int(layer.idskip)}-se:{int(layer.se)}-hs:{int(layer.h_swish)}"
        )
    if layer.kind == "classifier":
        return f"Logits-input:{_shape(1, layer.c_in)}-output:{layer.c_out}"
    names = {"first_conv": "Conv", "final_expand": "Conv_1", "pool": "AvgPool2D", "feature_mix": "Conv_2"}
    return f"{names[layer.kind]}-{io}"


def nsganetv2_key(layer: Layer) -> str | None:
    """The layer's key in NSGANetV2's table format (None: the format does not time this layer)."""
    io = f"input:{_shape(layer.size, layer.c_in)}-output:{_shape(layer.out_size, layer.c_out)}"
    if layer.kind == "block":
        return (
            f"MBConv-{io}-expand:{layer.expand}-kernel:{layer.kernel}-stride:{layer.stride}"
            f"-idskip:{int(layer.idskip)}-se:{int(layer.se)}"
        )
    if layer.kind == "classifier":
        return f"classifier-input:{layer.c_in}-output:{layer.c_out}"
    if layer.kind == "pool":
        return None
    names = {"first_conv": "first_conv", "final_expand": "final_expand_layer",
             "feature_mix": "feature_mix_layer"}
    return f"{names[layer.kind]}-{io}"


KEY_FUNCTIONS = {OFA_FORMAT: ofa_key, NSGANETV2_FORMAT: nsganetv2_key}
_FIRST_CONV = {OFA_FORMAT: re.compile(r"^Conv-input:(\d+)x\d+x3-output:\d+x\d+x(\d+)$"),
               NSGANETV2_FORMAT: re.compile(r"^first_conv-input:(\d+)x\d+x3-output:\d+x\d+x(\d+)$")}


def detect_format(entries: dict[str, Any], path: Path) -> str:
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: not a latency table (expected a YAML mapping of layer keys)")
    prefixes = {str(k).split("-", 1)[0] for k in entries}
    if "expanded_conv" in prefixes:
        return OFA_FORMAT
    if "MBConv" in prefixes:
        return NSGANETV2_FORMAT
    raise ValueError(f"{path}: unknown latency table format (no 'expanded_conv-' or 'MBConv-' keys)")


def _means(entries: dict[str, Any], path: Path) -> dict[str, float]:
    out = {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "mean" not in entry:
            raise ValueError(f"{path}: entry '{key}' has no 'mean' field")
        try:  # `mean: true` would be 1.0 ms: a latency is a number
            value = float("nan") if isinstance(entry["mean"], bool) else float(entry["mean"])
        except (TypeError, ValueError):
            value = float("nan")
        if not np.isfinite(value) or value < 0:  # a latency is a finite, non-negative number of ms
            raise ValueError(f"{path}: entry '{key}' has mean {entry['mean']!r}; expected a latency >= 0 (ms)")
        out[str(key)] = value
    return out


class LatencyTable:
    """Look-up tables for one device. `tables` maps a resolution (None: any) to {key: ms}."""

    def __init__(self, tables: dict[int | None, dict[str, float]], fmt: str, paths: dict[int | None, Path]):
        self.tables, self.format, self.paths = tables, fmt, paths
        self._key = KEY_FUNCTIONS[fmt]
        self._cache: dict[tuple[int | None, Layer], float] = {}
        self._slot_cache: dict[tuple, tuple[float, np.ndarray, np.ndarray]] = {}

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """A table file of either format, or a folder of OFA-format `<R>_lookup_table.yaml` files."""
        path = Path(path)
        files = sorted(path.glob("*_lookup_table.yaml")) if path.is_dir() else [path]
        if not files:
            others = sorted(p.name for p in path.glob("*.yaml"))  # a single-file table (i7-8700K_lut.yaml) is named
            hint = f" (it holds {', '.join(others[:3])}: give a single-file table's own path)" if others else ""
            raise ValueError(f"{path}: no *_lookup_table.yaml latency tables in this folder{hint}")
        tables, paths, fmt = {}, {}, None
        for file in files:
            entries = read_yaml(file)
            file_fmt = detect_format(entries, file)
            if fmt not in (None, file_fmt):
                raise ValueError(f"{path}: mixes latency table formats ({fmt} and {file_fmt} in {file.name})")
            fmt = file_fmt
            resolution = None
            if fmt == OFA_FORMAT:
                resolutions = _first_conv_values(entries, fmt, 1)
                if len(resolutions) != 1:
                    raise ValueError(f"{file}: expected one first-conv entry, found {len(resolutions)}")
                resolution = resolutions.pop()
            if resolution in tables:
                names = f"{paths[resolution].name}, {file.name}"
                raise ValueError(f"{path}: two tables for resolution {resolution} ({names})")
            tables[resolution], paths[resolution] = _means(entries, file), file
        if fmt == NSGANETV2_FORMAT and len(tables) != 1:
            raise ValueError(f"{path}: expected one NSGANetV2-format table file, found {len(tables)}")
        return cls(tables, fmt, paths)

    @cached_property
    def resolutions(self) -> list[int]:
        """Resolutions the table has a first-conv entry for."""
        return sorted(set().union(*(_first_conv_values(t, self.format, 1) for t in self.tables.values())))

    @cached_property
    def width_mults(self) -> list[float]:
        """Those of the OFA widths (1.0, 1.2) whose first conv the table has."""
        channels = set().union(*(_first_conv_values(t, self.format, 2) for t in self.tables.values()))
        return [w for w in KNOWN_WIDTHS if widths(w).first_conv in channels]

    def _table_for(self, resolution: int) -> int | None:
        if resolution in self.tables:
            return resolution
        if None in self.tables:
            return None
        raise ValueError(
            f"latency table {self._where(None)}: no table for resolution {resolution}; "
            f"has {sorted(self.tables)}"
        )

    def _where(self, table: int | None) -> str:
        if table in self.paths:
            return str(self.paths[table])
        return str(next(iter(self.paths.values())).parent)

    def _width(self, width_mult: float | None) -> float:
        if width_mult is not None:
            return width_mult
        found = self.width_mults
        if len(found) != 1:
            raise ValueError(
                f"latency table {self._where(None)} holds widths {found}: pass width_mult explicitly"
            )
        return found[0]

    def _lookup(self, table: int | None, layer: Layer) -> float:
        """The layer's entry (0 for a layer the format does not time); cached per layer."""
        ms = self._cache.get((table, layer))
        if ms is None:
            key = self._key(layer)
            if key is not None and key not in self.tables[table]:
                hint = ""
                if layer.kind == "classifier":  # the published tables time a 1000-class head only
                    hint = (f" (a table times the classifier of the class count it was measured for; measure one "
                            f"for {layer.c_out} classes with scripts/build_latency_lut.py --n_classes {layer.c_out})")
                raise ValueError(f"latency table {self._where(table)} has no entry '{key}'{hint}")
            ms = self._cache[(table, layer)] = 0.0 if key is None else self.tables[table][key]
        return ms

    def layer_latencies(
        self, subnet: dict[str, Any], width_mult: float | None = None, n_classes: int = 1000
    ) -> list[tuple[str, float]]:
        """(key, ms) for every timed layer of the subnet, in network order."""
        layers = subnet_layers(subnet, self._width(width_mult), n_classes)
        table = self._table_for(layers[0].size)
        timed = [layer for layer in layers if self._key(layer) is not None]
        return [(self._key(layer), self._lookup(table, layer)) for layer in timed]

    def predict(
        self, subnet: dict[str, Any], width_mult: float | None = None, n_classes: int = 1000
    ) -> float:
        """Predicted latency in ms: the sum of the table's entries for the subnet's layers.

        width_mult=None takes the table's width when it holds only one (Note10: 1.2).
        A layer missing from the table raises ValueError naming its key and the table file.
        """
        layers = subnet_layers(subnet, self._width(width_mult), n_classes)
        table = self._table_for(layers[0].size)
        return float(sum(self._lookup(table, layer) for layer in layers))

    def predict_many(
        self, subnets: Iterable[dict[str, Any]], width_mult: float | None = None, n_classes: int = 1000
    ) -> np.ndarray:
        width = self._width(width_mult)
        return np.array([self.predict(s, width, n_classes) for s in subnets], dtype=float)

    def predict_genomes(self, X: np.ndarray, space: OFASearchSpace, n_classes: int = 1000) -> np.ndarray:
        """Vectorised `predict` for genomes of an OFA search space (its width_mult): one value per row.

        Raises ValueError when the table cannot serve every resolution of the space (no table for one, or no
        entry for its stem or head), whatever the genomes; a missing block entry only when a genome uses it."""
        X = np.atleast_2d(np.asarray(X, dtype=int))
        space.check_genomes(X)
        active = space.active_layers(X)
        out = np.empty(len(X))
        for ri, r in enumerate(space.resolutions):
            # every resolution of the space, used or not: a table without one (or without its stem and head
            # entries, e.g. a build interrupted there) fails the first call, not a search hours later
            fixed, cost, keys = self._slot_costs(space, r, n_classes)
            rows = np.flatnonzero(X[:, RESOLUTION_GENE] == ri)
            if rows.size == 0:
                continue
            slots = np.arange(N_LAYERS)[None, :]
            picked = cost[slots, X[rows][:, KERNEL_GENES], X[rows][:, EXPAND_GENES]]  # (rows, 20)
            picked = np.where(active[rows], picked, 0.0)
            if np.isnan(picked).any():
                row, slot = np.argwhere(np.isnan(picked))[0]
                key = keys[slot, X[rows[row], KERNEL_GENES[slot]], X[rows[row], EXPAND_GENES[slot]]]
                raise ValueError(f"latency table {self._where(self._table_for(r))} has no entry '{key}'")
            out[rows] = fixed + picked.sum(axis=1)
        return out

    def check_covers(self, space: OFASearchSpace, n_classes: int = 1000) -> None:
        """ValueError naming the first missing entry unless every layer choice of every resolution of the space
        has one: a search will use them all, so it fails before its first evaluation, not hours in."""
        for r in space.resolutions:
            _, cost, keys = self._slot_costs(space, r, n_classes)
            if np.isnan(cost).any():
                missing = sorted({str(k) for k in keys[np.isnan(cost)]})
                raise ValueError(f"latency table {self._where(self._table_for(r))} has no entry '{missing[0]}'"
                                 + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
                                 + f": it does not cover the search space at resolution {r}")

    def _slot_costs(self, space: OFASearchSpace, r: int, n_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
        """Stem + head ms, and ms/key per (layer slot, kernel index, expand index) at resolution r.

        A slot's input shape does not depend on the choices in other slots (stage widths are
        fixed), so the all-depth-4 subnet with one (kernel, expand) everywhere gives every slot's
        layer for that pair. Missing entries are NaN, reported only if a genome uses them.
        """
        ident = (space.kernel_sizes, space.expand_ratios, space.width_mult, r, n_classes)
        if ident in self._slot_cache:
            return self._slot_cache[ident]
        table = self._table_for(r)
        shape = (N_LAYERS, len(space.kernel_sizes), len(space.expand_ratios))
        cost, keys, fixed = np.full(shape, np.nan), np.empty(shape, dtype=object), None
        for ki, k in enumerate(space.kernel_sizes):
            for ei, e in enumerate(space.expand_ratios):
                subnet = {"ks": [k] * N_LAYERS, "e": [e] * N_LAYERS, "d": [MAX_DEPTH] * N_STAGES, "r": r}
                layers = subnet_layers(subnet, space.width_mult, n_classes)
                blocks = layers[2:2 + N_LAYERS]  # after the first conv and the first block
                for slot, layer in enumerate(blocks):
                    keys[slot, ki, ei] = self._key(layer)
                    if keys[slot, ki, ei] in self.tables[table]:
                        cost[slot, ki, ei] = self._lookup(table, layer)
                if fixed is None:
                    fixed = sum(self._lookup(table, layer) for layer in layers[:2] + layers[2 + N_LAYERS:])
        self._slot_cache[ident] = (fixed, cost, keys)
        return fixed, cost, keys


def _first_conv_values(entries: dict[str, Any], fmt: str, group: int) -> set[int]:
    """Resolution (group 1) or output channels (group 2) of every first-conv entry."""
    pattern = _FIRST_CONV[fmt]
    return {int(m.group(group)) for m in map(pattern.match, map(str, entries)) if m}
