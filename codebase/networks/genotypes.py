"""Published cells and genomes of NSGA-Net and the baselines it compares with (pure Python data).

A micro genotype lists, per cell type, two (operation, input) pairs per block: inputs 0 and 1 are
the outputs of the two previous cells, input k >= 2 is the output of block k - 2. The `concat` lists
name the states whose concatenation is the cell output; a reduction cell may only concatenate its
blocks (k >= 2), since its inputs 0 and 1 are still at twice the output resolution.

Sources: NSGANet (Lu et al., GECCO 2019, released code); DARTS V2 (Liu et al., ICLR 2019); NASNet-A
(Zoph et al., CVPR 2018), AmoebaNet-A (Real et al., AAAI 2019) and ENAS (Pham et al., ICML 2018) as
transcribed in the DARTS paper's code. DARTS V2 has 4 blocks per cell, the others 5.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: The operations of the micro search space, in genome order (gene value = index).
OPERATIONS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "sep_conv_7x7",
    "conv_7x1_1x7",
)


class Genotype(NamedTuple):
    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: pairs become [op, input] lists."""
        return {
            "normal": [[op, int(i)] for op, i in self.normal],
            "normal_concat": [int(i) for i in self.normal_concat],
            "reduce": [[op, int(i)] for op, i in self.reduce],
            "reduce_concat": [int(i) for i in self.reduce_concat],
        }


def genotype_from_dict(arch: Any) -> Genotype:
    """Build and check a Genotype from its dict (or Genotype) form; ValueError names the problem."""
    if isinstance(arch, Genotype):
        arch = arch.to_dict()
    if not isinstance(arch, dict):
        raise ValueError(f"micro genotype: expected an object with keys normal, normal_concat, reduce, "
                         f"reduce_concat; got {type(arch).__name__}")
    fields = {}
    for cell in ("normal", "reduce"):
        for key in (cell, f"{cell}_concat"):
            if key not in arch:
                raise ValueError(f"micro genotype: missing field '{key}'")
        pairs = _pairs(arch[cell], cell)
        n_states = 2 + len(pairs) // 2
        concat = arch[f"{cell}_concat"]
        if not isinstance(concat, (list, tuple)) or not concat:
            raise ValueError(f"micro genotype field '{cell}_concat': expected a non-empty list of states")
        # a reduction cell's inputs (states 0, 1) are still at twice its output resolution: only its
        # blocks can be concatenated (a normal cell's inputs match its blocks, so any state works there)
        first = 2 if cell == "reduce" else 0
        for s in concat:
            if isinstance(s, bool) or not isinstance(s, int) or not first <= s < n_states:
                why = " (states 0 and 1 are the cell's unreduced inputs)" if first and s in (0, 1) else ""
                raise ValueError(
                    f"micro genotype field '{cell}_concat': {s!r} is not a state in {first}..{n_states - 1}{why}"
                )
        fields[cell] = pairs
        fields[f"{cell}_concat"] = [int(s) for s in concat]
    return Genotype(**fields)


def _pairs(values: Any, cell: str) -> list[tuple[str, int]]:
    if not isinstance(values, (list, tuple)) or not values or len(values) % 2:
        raise ValueError(f"micro genotype field '{cell}': expected an even, non-empty list of [op, input] pairs")
    pairs = []
    for k, pair in enumerate(values):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"micro genotype field '{cell}': entry {k} is not an [op, input] pair: {pair!r}")
        op, index = pair
        if op not in OPERATIONS:
            raise ValueError(f"micro genotype field '{cell}': unknown operation {op!r}; choose from {OPERATIONS}")
        block = k // 2
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < block + 2:
            raise ValueError(
                f"micro genotype field '{cell}': block {block} input {index!r} must be a state in 0..{block + 1}"
            )
        pairs.append((str(op), int(index)))
    return pairs


NSGANet = Genotype(
    normal=[
        ("skip_connect", 0), ("max_pool_3x3", 0),
        ("dil_conv_5x5", 0), ("max_pool_3x3", 0),
        ("dil_conv_5x5", 1), ("sep_conv_3x3", 3),
        ("max_pool_3x3", 1), ("sep_conv_5x5", 3),
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
    ],
    normal_concat=[2, 4, 5, 6],
    reduce=[
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
        ("dil_conv_3x3", 1), ("max_pool_3x3", 0),
        ("skip_connect", 2), ("dil_conv_5x5", 1),
        ("skip_connect", 2), ("avg_pool_3x3", 1),
        ("dil_conv_5x5", 1), ("dil_conv_3x3", 1),
    ],
    reduce_concat=[3, 4, 5, 6],
)

DARTS_V2 = Genotype(
    normal=[
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=[2, 3, 4, 5],
)

NASNet = Genotype(
    normal=[
        ("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 1), ("skip_connect", 0),
        ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
    ],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[
        ("sep_conv_5x5", 1), ("sep_conv_7x7", 0),
        ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1), ("sep_conv_5x5", 0),
        ("skip_connect", 3), ("avg_pool_3x3", 2),
        ("sep_conv_3x3", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=[4, 5, 6],
)

AmoebaNet = Genotype(
    normal=[
        ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0), ("avg_pool_3x3", 3),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
        ("skip_connect", 0), ("avg_pool_3x3", 1),
    ],
    normal_concat=[4, 5, 6],
    reduce=[
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
        ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
        ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5),
    ],
    reduce_concat=[3, 4, 6],
)

ENAS = Genotype(
    normal=[
        ("sep_conv_3x3", 1), ("skip_connect", 1),
        ("sep_conv_5x5", 1), ("skip_connect", 0),
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("avg_pool_3x3", 0),
        ("sep_conv_5x5", 1), ("avg_pool_3x3", 0),
    ],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[
        ("sep_conv_5x5", 0), ("avg_pool_3x3", 1),
        ("sep_conv_3x3", 1), ("avg_pool_3x3", 1),
        ("avg_pool_3x3", 1), ("sep_conv_3x3", 1),
        ("sep_conv_5x5", 4), ("avg_pool_3x3", 1),
        ("sep_conv_3x3", 5), ("sep_conv_5x5", 0),
    ],
    reduce_concat=[2, 3, 6],
)

MICRO_GENOTYPES: dict[str, Genotype] = {
    "NSGANet": NSGANet,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "NASNet": NASNet,
    "AmoebaNet": AmoebaNet,
    "ENAS": ENAS,
}

#: NSGA-Net's published macro genome: per phase, the input bits of nodes 2..6, then the skip bit.
MACRO_NSGANET: list[list[list[int]]] = [
    [[1], [0, 0], [0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1, 1], [0]],
    [[0], [0, 0], [0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1, 1], [0]],
    [[0], [0, 1], [1, 0, 1], [1, 0, 1, 1], [1, 0, 0, 1, 1], [0]],
]

#: Published macro architectures with the network settings the paper evaluated them with.
MACRO_GENOMES: dict[str, dict[str, Any]] = {
    "NSGANet": {"genome": MACRO_NSGANET, "channels": [[3, 128], [128, 128], [128, 128]], "decoder": "dense"},
}


def micro_genotype(name: str) -> Genotype:
    if name not in MICRO_GENOTYPES:
        raise ValueError(f"unknown micro architecture '{name}'; choose from {sorted(MICRO_GENOTYPES)} or a JSON file")
    return MICRO_GENOTYPES[name]


def macro_architecture(name: str) -> dict[str, Any]:
    if name not in MACRO_GENOMES:
        raise ValueError(f"unknown macro architecture '{name}'; choose from {sorted(MACRO_GENOMES)} or a JSON file")
    entry = MACRO_GENOMES[name]
    return {"genome": [[list(node) for node in phase] for phase in entry["genome"]],
            "channels": [list(c) for c in entry["channels"]], "decoder": entry["decoder"]}
