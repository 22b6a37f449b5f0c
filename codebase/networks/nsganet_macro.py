"""Networks of the NSGA-Net macro search space: a sequence of phases, each a DAG of nodes.

Phases are separated by 2x2 max-pooling and followed by global average pooling and a linear
classifier. A phase first adapts its input to its width with a convolution (3x3 without padding
for the first phase, 1x1 otherwise) when the widths differ. Two decoders:
- "residual" (used during search): each node is conv3x3-BN-ReLU; a node (or the phase output) with
  several inputs concatenates them and reduces them with a 1x1 conv; the output ends with BN-ReLU.
- "dense" (the published NSGANet model): DenseNet-style nodes BN-ReLU-conv1x1(4g)-BN-ReLU-conv3x3(g)
  with growth g = 64 on the concatenation of their inputs; the phase output concatenates its inputs
  and maps them back to the phase width with conv1x1-BN-ReLU.
Like the original, every phase owns its width-adapting convolution even when it is not needed
(equal widths): it is part of the published parameter count.
Weights of the original NSGA-Net code (its EvoNetwork, e.g. the released macro model) load after
`from_original_names` (its module names differ).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from search_space.nsganet_macro import MacroSearchSpace, PhaseGraph, phase_graph

DECODERS = ("residual", "dense")
DENSE_GROWTH = 64
DENSE_BOTTLENECK = 4


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def dense_node(c_in: int) -> nn.Sequential:
    hidden = DENSE_GROWTH * DENSE_BOTTLENECK
    return nn.Sequential(
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, DENSE_GROWTH, 3, padding=1, bias=False),
    )


class Phase(nn.Module):
    def __init__(self, graph: PhaseGraph, c_in: int, c_out: int, first: bool, decoder: str):
        super().__init__()
        self.graph = graph
        self.decoder = decoder
        self.adapt_input = c_in != c_out
        self.first_conv = nn.Conv2d(c_in, c_out, 3 if first else 1, bias=False)
        self.nodes = nn.ModuleDict()
        self.reducers = nn.ModuleDict()  # residual decoder: 1x1 convs over concatenated inputs
        width = {0: c_out}
        for k in graph.nodes:
            n_in = len(graph.inputs[k])
            if decoder == "residual":
                if n_in > 1:
                    self.reducers[str(k)] = nn.Conv2d(n_in * c_out, c_out, 1, bias=False)
                self.nodes[str(k)] = conv_bn_relu(c_out, c_out, 3)
                width[k] = c_out
            else:
                self.nodes[str(k)] = dense_node(sum(width[i] for i in graph.inputs[k]))
                width[k] = DENSE_GROWTH
        if decoder == "residual":
            if len(graph.output) > 1:
                self.reducers["out"] = nn.Conv2d(len(graph.output) * c_out, c_out, 1, bias=False)
            self.out = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        else:
            self.out = conv_bn_relu(sum(width[i] for i in graph.output), c_out, 1)

    def _gather(self, key: str, sources: Sequence[int], outputs: dict[int, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([outputs[i] for i in sources], dim=1) if len(sources) > 1 else outputs[sources[0]]
        return self.reducers[key](x) if key in self.reducers else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapt_input:
            x = self.first_conv(x)
        outputs = {0: x}
        for k in self.graph.nodes:  # increasing order is a topological order
            outputs[k] = self.nodes[str(k)](self._gather(str(k), self.graph.inputs[k], outputs))
        return self.out(self._gather("out", self.graph.output, outputs))


class MacroNetwork(nn.Module):
    def __init__(
        self,
        genome: Sequence[Sequence[Sequence[int]]],
        channels: Sequence[Sequence[int]],
        n_classes: int = 10,
        decoder: str = "residual",
    ):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"macro decoder must be one of {DECODERS}, got '{decoder}'")
        genome = macro_genome(genome)
        channels = _check_channels(channels)
        graphs = [g for g in (phase_graph(flatten_phase(p), len(p)) for p in genome) if g is not None]
        if len(channels) < len(graphs):
            raise ValueError(
                f"macro network: {len(graphs)} active phases need as many channel pairs, got {len(channels)}"
            )
        layers: list[nn.Module] = []
        c_last = 3
        for idx, (graph, (c_in, c_out)) in enumerate(zip(graphs, channels)):
            if c_in != c_last:
                raise ValueError(f"macro channels: phase {idx} expects {c_in} input channels but gets {c_last}")
            if idx:
                layers.append(nn.MaxPool2d(2, 2))
            layers.append(Phase(graph, c_in, c_out, first=idx == 0, decoder=decoder))
            c_last = c_out
        self.features = nn.Sequential(*layers)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, n_classes)
        # the first phase's 3x3 convolution is unpadded (2 pixels less), each later phase follows a 2x2 max-pool
        self.n_phases = len(graphs)
        self.min_input_size = 2 ** (self.n_phases - 1) + 2

    def check_input_size(self, size: int) -> None:
        """ValueError when `size`-pixel images would shrink below one pixel (was PyTorch's 'Output size is too
        small' traceback, in the middle of a training run)."""
        if size < self.min_input_size:
            raise ValueError(f"macro network: {self.n_phases} active phases (an unpadded 3x3 convolution, then "
                             f"{self.n_phases - 1} 2x2 max-pools) need images of at least {self.min_input_size} "
                             f"pixels, got {size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(min(x.shape[-2:]))
        return self.classifier(self.global_pooling(self.features(x)).flatten(1))


def macro_spec(arch: Any) -> dict[str, Any]:
    """{"genome", optional "channels" and "decoder"} of such a dict or of a bare genome (nested or flat bits);
    ValueError for a dict without a genome."""
    spec = arch if isinstance(arch, dict) else {"genome": arch}
    if "genome" not in spec:
        raise ValueError("macro architecture: missing field 'genome'")
    return spec


def macro_genome(genome: Any) -> list[list[list[int]]]:
    """The checked nested genome of a nested one, or of a flat bit string of the 48-bit search space.

    Every phase needs as many node lists as the first; MacroSearchSpace.encode does the checking, so a
    malformed genome or a non-bit value is one ValueError naming the phase.
    """
    if isinstance(genome, np.ndarray):
        genome = genome.tolist()
    if not isinstance(genome, (list, tuple)) or not genome:
        raise ValueError(f"macro genome: expected a non-empty list of phases or a flat bit string, got {genome!r:.80}")
    if all(isinstance(g, (int, np.integer)) for g in genome):  # flat bit string
        return MacroSearchSpace().decode(np.asarray(genome))["genome"]
    first = genome[0]
    if not isinstance(first, (list, tuple)) or len(first) < 2:
        raise ValueError(f"macro genome phase 0: expected the input bits of nodes 2..n then [skip] "
                         f"(at least 2 lists), got {first!r:.80}")
    space = MacroSearchSpace(n_phases=len(genome), n_nodes=len(first))
    return space.decode(space.encode(genome))["genome"]


def _check_channels(channels: Any) -> list[tuple[int, int]]:
    pairs = channels.tolist() if isinstance(channels, np.ndarray) else channels
    if isinstance(pairs, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2
        and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0 for c in p)
        for p in pairs
    ):
        return [(int(a), int(b)) for a, b in pairs]
    raise ValueError(f"macro channels: expected a list of [in, out] positive integer pairs, got {channels!r:.80}")


def flatten_phase(phase: Sequence[Sequence[int]]) -> list[int]:
    """Nested phase ([node-2 bits], ..., [node-n bits], [skip]) to the flat gene order."""
    return [int(b) for node_bits in phase for b in node_bits]


def default_channels(init_channels: int, n_phases: int) -> list[tuple[int, int]]:
    """The search-time widths: C, 2C, 4C, ... (the first phase reads the RGB image)."""
    widths = [init_channels * 2**p for p in range(n_phases)]
    return list(zip([3, *widths[:-1]], widths))


def build_macro_network(
    genome: Sequence[Sequence[Sequence[int]]],
    init_channels: int = 32,
    n_classes: int = 10,
    decoder: str = "residual",
    channels: Sequence[Sequence[int]] | None = None,
) -> MacroNetwork:
    """Network for a macro genome (nested or flat bits); channels default to default_channels(init_channels)."""
    genome = macro_genome(genome)  # before counting phases: a flat bit string has 48 entries, not 3
    if channels is None:
        channels = default_channels(init_channels, len(genome))
    return MacroNetwork(genome, channels, n_classes, decoder)


# The original code (ianwhale/nsga-net, models/macro_models.py and models/macro_decoder.py) keeps the phases
# and pools in `model`, names the classifier `linear`, numbers a phase's nodes from 0 inside a `.model`
# wrapper, calls the residual decoder's 1x1 convolutions over concatenated inputs `processors.{node}` (node
# n + 1 being the phase output), and registers a dense phase's output convolution twice (`last_conv` = `out.0`).
_ORIGINAL_NODE = re.compile(r"^model\.(\d+)\.nodes\.(\d+)\.model\.(.*)$")
_ORIGINAL_PROCESSOR = re.compile(r"^model\.(\d+)\.processors\.(\d+)\.(.*)$")


def from_original_names(state_dict: Mapping[str, torch.Tensor], network: MacroNetwork) -> dict[str, torch.Tensor]:
    """A state dict of the original NSGA-Net macro networks (its EvoNetwork) under the names of `network`, the
    same architecture built here; ours pass unchanged. The original concatenates a dense phase output's inputs
    with the phase input last (when its width is not the growth rate): those weight columns are reordered."""
    phases = {str(i): m for i, m in enumerate(network.features) if isinstance(m, Phase)}
    out: dict[str, torch.Tensor] = {}
    renamed_outputs: set[str] = set()
    for key, value in state_dict.items():
        if key.startswith("linear."):
            key = "classifier." + key[len("linear."):]
        elif (node := _ORIGINAL_NODE.match(key)) is not None:
            key = f"features.{node[1]}.nodes.{int(node[2]) + 1}.{node[3]}"
        elif (processor := _ORIGINAL_PROCESSOR.match(key)) is not None:
            phase = phases.get(processor[1])
            last = phase is not None and int(processor[2]) == len(phase.graph.inputs) + 1
            key = f"features.{processor[1]}.reducers.{'out' if last else processor[2]}.{processor[3]}"
        elif key.startswith("model."):
            index, _, rest = key[len("model."):].partition(".")
            if rest.startswith("last_conv."):  # the same tensor as out.0
                rest = "out.0." + rest[len("last_conv."):]
            key = f"features.{index}.{rest}"
            if rest == "out.0.weight":
                renamed_outputs.add(index)
        out[key] = value
    for index in renamed_outputs:
        phase = phases.get(index)
        if phase is None or phase.decoder != "dense" or 0 not in phase.graph.output or len(phase.graph.output) < 2:
            continue
        width = phase.out[0].out_channels
        if width == DENSE_GROWTH:  # the original keeps the dependency order (phase input first) here
            continue
        key = f"features.{index}.out.0.weight"
        w = out[key]
        if w.shape[1] == phase.out[0].in_channels:  # [nodes..., input] -> [input, nodes...]
            out[key] = torch.cat([w[:, -width:], w[:, :-width]], dim=1)
    return out
