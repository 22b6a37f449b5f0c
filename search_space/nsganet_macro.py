"""NSGA-Net's macro search space: Genetic-CNN style bit strings, one DAG per phase.

Genome layout (integers 0/1), per phase p (genes_per_phase = n(n-1)/2 + 1 each, n nodes):
    the input bits of node 2 (from node 1), node 3 (from 1, 2), ..., node n (from 1..n-1),
    then the skip bit.
The bit for edge i -> j (1-based, i < j) sits at (j-1)(j-2)/2 + (i-1) inside its phase. With the
paper's 3 phases of 6 nodes the genome has 3 * 16 = 48 genes.

Decoding a phase (NSGA-Net's repairs):
- a node with inputs but no consumer feeds the phase output;
- a node with a consumer but no inputs reads the phase input;
- a node with neither is dropped;
- the skip bit adds the phase input to the phase output's inputs;
- a phase with no connection bit set is removed (with its skip bit).

Canonical form (`canonical`), so that one architecture has one genome:
- a removed phase is all zeros (its skip bit does not matter) and removed phases move behind the
  active ones: the network only sees the sequence of active phases (channels are assigned in order);
- the nodes of a phase are relabelled to the lexicographically smallest bit string among all
  relabellings that keep every edge pointing forward (all nodes run the same operation, so
  isomorphic DAGs build the same network up to the order of concatenated inputs).

An architecture description is {"genome": [[node-2 bits], ..., [node-n bits], [skip]] per phase}
(the nested-list form of the original code), optionally with "channels" and "decoder".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from search_space.base import unique_rows

#: Most nodes per phase for which canonical() enumerates node relabellings (8! = 40320).
MAX_CANONICAL_NODES = 8


def edge_position(i: int, j: int) -> int:
    """Position of the bit for edge i -> j (1-based node numbers, i < j) inside a phase."""
    return (j - 1) * (j - 2) // 2 + (i - 1)


@dataclass(frozen=True)
class PhaseGraph:
    """A decoded phase. Node 0 is the phase input; nodes 1..n are computation nodes.

    inputs[k] lists the sources of node k (0 = phase input) for every kept node, in increasing order;
    output lists what the phase output concatenates. Empty inputs mean the node is dropped.
    """

    inputs: dict[int, list[int]]
    output: list[int]

    @property
    def nodes(self) -> list[int]:
        return sorted(k for k, src in self.inputs.items() if src)


def phase_graph(bits: np.ndarray | list[int], n_nodes: int) -> PhaseGraph | None:
    """Decode one phase's genes (connection bits then skip bit); None for a removed phase."""
    bits = np.asarray(bits, dtype=int)
    n_edges = n_nodes * (n_nodes - 1) // 2
    if bits.shape != (n_edges + 1,):
        raise ValueError(f"phase: expected {n_edges + 1} genes for {n_nodes} nodes, got {bits.shape}")
    if not bits[:n_edges].any():
        return None
    sources = {j: [i for i in range(1, j) if bits[edge_position(i, j)]] for j in range(1, n_nodes + 1)}
    consumed = {i for src in sources.values() for i in src}
    inputs, output = {}, []
    for k in range(1, n_nodes + 1):
        has_in, has_out = bool(sources[k]), k in consumed
        if has_in and not has_out:
            output.append(k)
        inputs[k] = sources[k] if has_in else ([0] if has_out else [])
    if bits[n_edges]:
        output = [0, *output]
    return PhaseGraph(inputs=inputs, output=output)


@lru_cache(maxsize=8)
def _relabel_tables(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """For every node permutation: the weight each old edge bit gets in the relabelled string, and
    whether the old edge would point backward (making the relabelling invalid)."""
    n_edges = n_nodes * (n_nodes - 1) // 2
    edges = [(i, j) for j in range(2, n_nodes + 1) for i in range(1, j)]
    assert [edge_position(i, j) for i, j in edges] == list(range(n_edges))
    perms = list(itertools.permutations(range(1, n_nodes + 1)))
    weight = np.zeros((n_edges, len(perms)), dtype=np.int64)
    backward = np.zeros((n_edges, len(perms)), dtype=np.int64)
    for p, perm in enumerate(perms):
        for e, (i, j) in enumerate(edges):
            a, b = perm[i - 1], perm[j - 1]
            if a > b:
                backward[e, p] = 1
            else:
                weight[e, p] = 1 << (n_edges - 1 - edge_position(a, b))  # first gene most significant
    return weight, backward


def canonical_phase_bits(B: np.ndarray, n_nodes: int) -> np.ndarray:
    """(m, n_edges) connection bits -> smallest forward-preserving relabelling of each row."""
    n_edges = n_nodes * (n_nodes - 1) // 2
    if n_nodes > MAX_CANONICAL_NODES or len(B) == 0:
        return B.copy()
    weight, backward = _relabel_tables(n_nodes)
    B = B.astype(np.int64)
    codes = B @ weight
    codes[(B @ backward) > 0] = np.iinfo(np.int64).max
    best = codes.min(axis=1)
    shifts = n_edges - 1 - np.arange(n_edges)
    return ((best[:, None] >> shifts[None, :]) & 1).astype(int)


@dataclass(frozen=True)
class MacroSearchSpace:
    n_phases: int = 3
    n_nodes: int = 6
    name: str = field(default="nsganet_macro", init=False)

    def __post_init__(self) -> None:
        if self.n_phases < 1:
            raise ValueError(f"macro space needs at least one phase, got n_phases={self.n_phases}")
        if self.n_nodes < 2:
            raise ValueError(f"macro space needs at least 2 nodes per phase, got n_nodes={self.n_nodes}")

    @property
    def n_edges(self) -> int:
        return self.n_nodes * (self.n_nodes - 1) // 2

    @property
    def genes_per_phase(self) -> int:
        return self.n_edges + 1

    @property
    def n_var(self) -> int:
        return self.n_phases * self.genes_per_phase

    @property
    def xl(self) -> np.ndarray:
        return np.zeros(self.n_var, dtype=int)

    @property
    def xu(self) -> np.ndarray:
        return np.ones(self.n_var, dtype=int)

    # ------------------------------------------------------------------ genomes
    def check_genomes(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != self.n_var:
            raise ValueError(f"macro genome: expected shape (n, {self.n_var}), got {X.shape}")
        bad = (X < 0) | (X > 1)
        if bad.any():
            row, gene = map(int, np.argwhere(bad)[0])
            raise ValueError(f"macro genome: gene {gene} = {X[row, gene]} is not a bit (row {row})")

    def canonical(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=int, copy=True)
        squeeze = X.ndim == 1
        X = np.atleast_2d(X)
        self.check_genomes(X)
        P = X.reshape(len(X), self.n_phases, self.genes_per_phase)
        conn = P[:, :, : self.n_edges].reshape(-1, self.n_edges)
        P[:, :, : self.n_edges] = canonical_phase_bits(conn, self.n_nodes).reshape(len(X), self.n_phases, -1)
        active = P[:, :, : self.n_edges].any(axis=2)
        P[~active] = 0
        order = np.argsort(~active, axis=1, kind="stable")  # active phases first, in their order
        P = np.take_along_axis(P, order[:, :, None], axis=1)
        X = P.reshape(len(X), self.n_var)
        return X[0] if squeeze else X

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.canonical(rng.integers(0, 2, size=(int(n), self.n_var)))

    def initialize(self, n_doe: int, rng: np.random.Generator) -> np.ndarray:
        """n_doe distinct canonical genomes with at least one active phase."""
        if n_doe < 1:
            raise ValueError(f"n_doe must be at least 1, got {n_doe}")
        X = np.zeros((0, self.n_var), dtype=int)
        for _ in range(1000):
            if len(X) >= n_doe:
                break
            Y = self.sample(2 * (n_doe - len(X)), rng)
            Y = Y[Y.any(axis=1)]
            X = np.concatenate([X, Y])
            X = X[unique_rows(X)]
        if len(X) < n_doe:
            raise ValueError(f"the space holds fewer than n_doe={n_doe} distinct architectures")
        return X[:n_doe]

    # ------------------------------------------------------------------ arch <-> genome
    def decode(self, x: np.ndarray) -> dict[str, Any]:
        x = np.asarray(x, dtype=int).reshape(-1)
        self.check_genomes(x[None])
        genome = []
        for p in range(self.n_phases):
            bits = x[p * self.genes_per_phase : (p + 1) * self.genes_per_phase]
            phase = [
                [int(bits[edge_position(i, j)]) for i in range(1, j)] for j in range(2, self.n_nodes + 1)
            ]
            genome.append([*phase, [int(bits[-1])]])
        return {"genome": genome}

    def encode(self, arch: dict[str, Any] | list) -> np.ndarray:
        genome = arch["genome"] if isinstance(arch, dict) else arch
        if isinstance(arch, dict) and "genome" not in arch:
            raise ValueError("macro architecture: missing field 'genome'")
        if not isinstance(genome, (list, tuple)) or len(genome) != self.n_phases:
            raise ValueError(f"macro genome: expected {self.n_phases} phases, got {genome!r:.80}")
        x = []
        for p, phase in enumerate(genome):
            if not isinstance(phase, (list, tuple)) or len(phase) != self.n_nodes:
                raise ValueError(
                    f"macro genome phase {p}: expected {self.n_nodes} lists (inputs of nodes 2..{self.n_nodes}, "
                    f"then [skip]), got {phase!r:.80}"
                )
            for k, node_bits in enumerate(phase):
                want = k + 1 if k < self.n_nodes - 1 else 1
                if (
                    not isinstance(node_bits, (list, tuple))
                    or len(node_bits) != want
                    or any(b not in (0, 1) or isinstance(b, float) for b in node_bits)
                ):
                    what = f"inputs of node {k + 2}" if k < self.n_nodes - 1 else "skip bit"
                    raise ValueError(f"macro genome phase {p}: {what} must be {want} bit(s), got {node_bits!r}")
                x.extend(int(b) for b in node_bits)
        return np.asarray(x, dtype=int)

    def phases(self, x: np.ndarray) -> list[PhaseGraph | None]:
        """Decoded phase DAGs (None for removed phases)."""
        x = np.asarray(x, dtype=int).reshape(self.n_phases, self.genes_per_phase)
        return [phase_graph(bits, self.n_nodes) for bits in x]

    # ------------------------------------------------------------------ networks
    def build_network(self, x: np.ndarray, **options: Any):
        """Torch network for a genome; options as codebase.networks.nsganet_macro.build_macro_network."""
        from codebase.networks.nsganet_macro import build_macro_network

        return build_macro_network(self.decode(x)["genome"], **options)

    def complexity(self, X: np.ndarray, **options: Any) -> np.ndarray:
        """(n, 2) params and multiply-adds, in millions, for a 32x32 input."""
        from codebase.nsganet_profile import genome_complexity

        return genome_complexity(self, X, **options)
