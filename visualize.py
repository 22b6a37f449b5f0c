"""Draw NSGA-Net architectures: micro cells (normal, reduction) or macro phase DAGs.

    python visualize.py NSGANet                      # micro cells of the published NSGANet
    python visualize.py NSGANet --net_type macro     # the published macro network
    python visualize.py arch.json --format svg --out drawings
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codebase.cli import OneLineParser, run_main
from codebase.io import check_output_folder
from codebase.networks.drawing import FORMATS, render_macro, render_micro
from codebase.networks.nsganet_macro import macro_genome, macro_spec
from codebase.nsganet_profile import load_arch


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", help="published name (NSGANet, DARTS_V2, AmoebaNet, ENAS, NASNet) or a JSON file")
    parser.add_argument("--net_type", choices=("micro", "macro"), default="micro")
    parser.add_argument("--format", choices=FORMATS, default="pdf")
    parser.add_argument("--out", default=".", help="folder for the drawings")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def looks_macro(arch: object) -> bool:
    """Whether a parsed architecture file holds a macro network: {"genome": ...} without the micro cells, or
    a genome the macro space reads (nested phases, or its flat 48 bits; the micro genome has 40 integers)."""
    if isinstance(arch, dict):
        return "genome" in arch and "normal" not in arch
    try:
        macro_genome(arch)
    except (ValueError, TypeError):
        return False
    return True


def looks_ofa(arch: object) -> bool:
    """Whether a parsed architecture file holds an OFA MobileNetV3 subnet ({"ks", "e", "d", "r"}: a net.subnet of
    msunas.py's OFA space) or its net.config: architectures of another space, which these drawings do not show."""
    return isinstance(arch, dict) and ({"ks", "e", "d"} <= arch.keys() or {"first_conv", "blocks"} <= arch.keys())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a file (net_I.subnet, arch.json) names the drawings by its stem, so they land in --out
    is_file = args.arch.endswith(".json") or Path(args.arch).is_file()
    name = Path(args.arch).stem if is_file else args.arch
    arch = None
    try:
        check_output_folder(args.out, f"--out {args.out}")  # was: "cannot write the drawing ... (File exists)"
        arch = load_arch(args.arch, args.net_type)
        if looks_ofa(arch):  # not "missing field 'normal'": no field would make it a cell
            raise ValueError(f"{args.arch}: an OFA MobileNetV3 subnet, which this tool cannot draw (it draws "
                             f"NSGA-Net micro cells and macro phases)")
        if args.net_type == "micro":
            if isinstance(arch, list):  # a 40-gene genome
                from search_space.nsganet_micro import MicroSearchSpace

                arch = MicroSearchSpace().decode(arch)
            files = render_micro(arch, args.out, name, args.format)
        else:
            spec = macro_spec(arch)
            files = render_macro(spec["genome"], args.out, name, args.format, spec.get("decoder", "residual"))
    except ValueError as e:
        hint = "; a macro architecture? add --net_type macro" if args.net_type == "micro" and looks_macro(arch) else ""
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    run_main(main)  # Ctrl-C: "interrupted" and exit 130, not a traceback
