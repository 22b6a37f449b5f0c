"""Drawings of NSGA-Net architectures with graphviz: micro cells and macro phase DAGs.

Needs the Graphviz `dot` executable besides the python `graphviz` package; without it,
render_* raise a ValueError with one actionable line.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codebase.networks.genotypes import Genotype, genotype_from_dict
from codebase.networks.nsganet_macro import flatten_phase, macro_genome
from search_space.nsganet_macro import phase_graph

FORMATS = ("pdf", "png", "svg")
MISSING_DOT = "Graphviz 'dot' executable not found: install Graphviz (e.g. apt-get install graphviz)"
_NODE = {"style": "filled", "shape": "rect", "align": "center", "fontname": "helvetica", "fontsize": "20",
         "height": "0.5", "width": "0.5", "penwidth": "2"}
_EDGE = {"fontname": "helvetica", "fontsize": "16"}


def _digraph(name: str, fmt: str):
    if fmt not in FORMATS:
        raise ValueError(f"drawing format must be one of {FORMATS}, got '{fmt}'")
    if shutil.which("dot") is None:
        raise ValueError(MISSING_DOT)
    import graphviz

    return graphviz.Digraph(name, format=fmt, node_attr=_NODE, edge_attr=_EDGE, graph_attr={"rankdir": "LR"})


def cell_graph(pairs: Sequence[tuple[str, int]], concat: Sequence[int], title: str, fmt: str = "png"):
    """One cell: inputs c_{k-2}, c_{k-1}, one node per block, the concatenated output c_{k}."""
    g = _digraph(title, fmt)
    g.attr(label=title, labelloc="t", fontname="helvetica", fontsize="24")
    g.node("c_{k-2}", fillcolor="darkseagreen2")
    g.node("c_{k-1}", fillcolor="darkseagreen2")
    names = ["c_{k-2}", "c_{k-1}"] + [str(b) for b in range(len(pairs) // 2)]
    for b in range(len(pairs) // 2):
        g.node(str(b), fillcolor="lightblue")
    for k, (op, index) in enumerate(pairs):
        g.edge(names[index], names[2 + k // 2], label=op, fillcolor="gray")
    g.node("c_{k}", fillcolor="palegoldenrod")
    for s in concat:
        g.edge(names[s], "c_{k}", fillcolor="gray")
    return g


def macro_graph(genome: Any, title: str, node_label: str = "node", fmt: str = "png"):
    """All phases left to right, joined by max-pooling; removed phases are left out.

    genome: nested or a flat bit string, checked by nsganet_macro.macro_genome (ValueError).
    """
    phases = [phase_graph(flatten_phase(phase), len(phase)) for phase in macro_genome(genome)]
    g = _digraph(title, fmt)
    g.attr(label=title, labelloc="t", fontname="helvetica", fontsize="24")
    g.node("image", fillcolor="darkseagreen2")
    previous = "image"
    active = [(p, graph) for p, graph in enumerate(phases) if graph is not None]
    for i, (p, graph) in enumerate(active):
        if i:
            g.node(f"pool{p}", label="max-pool 2x2", fillcolor="lightgray")
            g.edge(previous, f"pool{p}")
            previous = f"pool{p}"
        with g.subgraph(name=f"cluster_{p}") as sub:
            sub.attr(label=f"phase {p + 1}", style="rounded", fontname="helvetica", fontsize="20")
            sub.node(f"p{p}_in", label="input", fillcolor="darkseagreen2")
            for k in graph.nodes:
                sub.node(f"p{p}_{k}", label=f"{node_label} {k}", fillcolor="lightblue")
            sub.node(f"p{p}_out", label="output", fillcolor="palegoldenrod")
            name = {0: f"p{p}_in"} | {k: f"p{p}_{k}" for k in graph.nodes}
            for k in graph.nodes:
                for i_src in graph.inputs[k]:
                    sub.edge(name[i_src], name[k])
            for i_src in graph.output:
                sub.edge(name[i_src], f"p{p}_out", style="dashed" if i_src == 0 else "solid")
        g.edge(previous, f"p{p}_in")
        previous = f"p{p}_out"
    g.node("classifier", label="GAP + linear", fillcolor="palegoldenrod")
    g.edge(previous, "classifier")
    return g


def _render(graph: Any, path: Path) -> Path:
    """Write the drawing to `path` + its format's suffix. Piped from dot and written atomically: graphviz's
    render() wrote the DOT source to `path` itself (overwriting, then deleting, a user's file of that name) and let
    dot write the image in place (half a file when killed)."""
    import graphviz

    from codebase.io import atomic_write

    target = path.with_name(f"{path.name}.{graph.format}")  # with_suffix would cut a name like "net_1.v2"
    try:
        image = graph.pipe()
        return atomic_write(target, lambda f: f.write(image), mode="wb")
    except graphviz.ExecutableNotFound:
        raise ValueError(MISSING_DOT) from None
    except graphviz.CalledProcessError as e:  # dot itself failed
        said = " ".join((e.stderr or b"").decode(errors="replace").split())  # one line
        raise ValueError(f"cannot draw {target}: dot failed ({said})") from None
    except OSError as e:  # --out names a file, a folder stands where the drawing goes, or no write permission
        raise ValueError(f"cannot write the drawing {target} ({e.strerror or e})") from None


def render_micro(genotype: Genotype | dict[str, Any], out_dir: str | Path, name: str, fmt: str = "png") -> list[Path]:
    """Draw the normal and the reduction cell; returns the two files written."""
    genotype = genotype_from_dict(genotype)
    out_dir = Path(out_dir)
    normal = cell_graph(genotype.normal, genotype.normal_concat, f"{name}: normal cell", fmt)
    reduction = cell_graph(genotype.reduce, genotype.reduce_concat, f"{name}: reduction cell", fmt)
    return [_render(normal, out_dir / f"{name}_normal"), _render(reduction, out_dir / f"{name}_reduction")]


def render_macro(genome: Any, out_dir: str | Path, name: str, fmt: str = "png",
                 decoder: str = "residual") -> list[Path]:
    """Draw the phase DAGs of a macro genome (nested or flat bit string); returns the file written."""
    label = "dense" if decoder == "dense" else "conv3x3"
    return [_render(macro_graph(genome, f"{name}: macro network", label, fmt), Path(out_dir) / f"{name}_macro")]
