"""NSGA-Net's micro search space: a normal and a reduction cell of 5 blocks each (DARTS-like).

Each block sums two (operation, input) pairs. Inputs 0 and 1 are the two previous cells' outputs;
input k >= 2 is block k - 2 of the same cell, so block b may read inputs 0..b+1. The cell output
concatenates the block outputs no block reads (as in NSGA-Net's decoder).

Genome layout (40 integers): for the normal cell then the reduction cell, for blocks 0..4,
    [op_a, input_a, op_b, input_b]
with op in 0..8 indexing genotypes.OPERATIONS and input in 0..b+1.

Canonical form (`canonical`): the two pairs of a block are sorted (op, input) ascending, because the
block sums them. Other symmetries (relabelling blocks of isomorphic cells) are not removed.
`encode` and `decode` are exact inverses and keep the pair order they are given.

An architecture description is the genotype dict
    {"normal": [[op, input] x 10], "normal_concat": [...], "reduce": [...], "reduce_concat": [...]}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codebase.networks.genotypes import OPERATIONS, Genotype, genotype_from_dict
from search_space.base import unique_rows

CELLS = ("normal", "reduce")


@dataclass(frozen=True)
class MicroSearchSpace:
    n_blocks: int = 5
    name: str = field(default="nsganet_micro", init=False)

    def __post_init__(self) -> None:
        if self.n_blocks < 1:
            raise ValueError(f"micro space needs at least one block per cell, got n_blocks={self.n_blocks}")

    @property
    def n_var(self) -> int:
        return len(CELLS) * self.n_blocks * 4

    @property
    def xl(self) -> np.ndarray:
        return np.zeros(self.n_var, dtype=int)

    @property
    def xu(self) -> np.ndarray:
        per_cell = [v for b in range(self.n_blocks) for v in (len(OPERATIONS) - 1, b + 1) * 2]
        return np.asarray(per_cell * len(CELLS), dtype=int)

    @property
    def size(self) -> int:
        """Number of distinct canonical genomes: per block, an unordered pair (with repetition) of the
        len(OPERATIONS) * (b + 2) (operation, input) choices, for both cells."""
        per_cell = 1
        for b in range(self.n_blocks):
            m = len(OPERATIONS) * (b + 2)
            per_cell *= m * (m + 1) // 2
        return per_cell ** len(CELLS)

    # ------------------------------------------------------------------ genomes
    def check_genomes(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != self.n_var:
            raise ValueError(f"micro genome: expected shape (n, {self.n_var}), got {X.shape}")
        bad = (X < self.xl) | (X > self.xu)
        if bad.any():
            row, gene = map(int, np.argwhere(bad)[0])
            raise ValueError(f"micro genome: gene {gene} = {X[row, gene]} outside [0, {self.xu[gene]}] (row {row})")

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=int, copy=True)
        squeeze = X.ndim == 1
        X = np.atleast_2d(X)
        self.check_genomes(X)
        pairs = X.reshape(len(X), -1, 2, 2)  # (n, blocks of both cells, pair, [op, input])
        key = pairs[..., 0] * 64 + pairs[..., 1]
        swap = key[..., 0] > key[..., 1]
        pairs[swap] = pairs[swap][:, ::-1]
        X = pairs.reshape(len(X), self.n_var)
        return X[0] if squeeze else X

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.canonical(rng.integers(0, self.xu + 1, size=(int(n), self.n_var)))

    def initialize(self, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        """n_doe distinct random canonical genomes."""
        if n_doe < 1:
            raise ValueError(f"n_doe must be at least 1, got {n_doe}")
        if n_doe > self.size:  # the loop below would never end
            raise ValueError(f"the space holds fewer than n_doe={n_doe} distinct architectures ({self.size})")
        X = np.zeros((0, self.n_var), dtype=int)
        while len(X) < n_doe:  # 5 blocks: about 1e26 architectures, so this ends at once
            X = np.concatenate([X, self.sample(2 * (n_doe - len(X)), rng)])
            X = X[unique_rows(X)]
        return X[:n_doe]

    # ------------------------------------------------------------------ arch <-> genome
    def decode(self, x: np.ndarray) -> dict[str, Any]:
        x = np.asarray(x, dtype=int).reshape(-1)
        self.check_genomes(x[None])
        arch: dict[str, Any] = {}
        per_cell = self.n_var // len(CELLS)
        for c, cell in enumerate(CELLS):
            genes = x[c * per_cell : (c + 1) * per_cell].reshape(-1, 2)
            arch[cell] = [[OPERATIONS[op], int(index)] for op, index in genes]
            used = {int(index) for index in genes[:, 1]}
            arch[f"{cell}_concat"] = [s for s in range(2, 2 + self.n_blocks) if s not in used]
        return arch

    def encode(self, arch: dict[str, Any] | Genotype) -> np.ndarray:
        genotype = genotype_from_dict(arch)
        x = []
        for cell in CELLS:
            pairs = getattr(genotype, cell)
            if len(pairs) != 2 * self.n_blocks:
                raise ValueError(
                    f"micro genotype field '{cell}': this space has {self.n_blocks} blocks "
                    f"({2 * self.n_blocks} pairs), got {len(pairs)} pairs"
                )
            unused = [s for s in range(2, 2 + self.n_blocks) if s not in {index for _, index in pairs}]
            if sorted(getattr(genotype, f"{cell}_concat")) != unused:
                raise ValueError(
                    f"micro genotype field '{cell}_concat': this space concatenates the unused states {unused}, "
                    f"got {getattr(genotype, f'{cell}_concat')}"
                )
            x.extend(v for op, index in pairs for v in (OPERATIONS.index(op), index))
        return np.asarray(x, dtype=int)

    # ------------------------------------------------------------------ networks
    def build_network(self, x: np.ndarray, **options: Any):
        """Torch network for a genome; options as codebase.networks.nsganet_micro.build_micro_network."""
        from codebase.networks.nsganet_micro import build_micro_network

        return build_micro_network(self.decode(x), **options)

    def complexity(self, X: np.ndarray, **options: Any) -> np.ndarray:
        """(n, 2) params and multiply-adds, in millions, for a 32x32 input."""
        from codebase.nsganet_profile import genome_complexity

        return genome_complexity(self, X, **options)
