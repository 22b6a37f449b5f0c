"""Overlay several search runs on one hypervolume-versus-evaluations plot.

    python scripts/plot_runs.py runs/msunas runs/nsga2 runs/random --labels MSuNAS NSGA-II random --out hv.png

Every run's hypervolume is recomputed from its archives against one common reference point (the
worst of the runs' own reference points), so the curves can be compared; runs must share their
objectives (and, for a `lut:` latency, their table). --each also redraws each run's own plots into RUN/plots/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codebase.cli import OneLineParser, run_main  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="search run folders (holding iter_K.stats)")
    p.add_argument("--labels", nargs="+", help="one legend label per run (default: folder names)")
    p.add_argument("--out", default="runs_hv.png",
                   help="PNG file for the overlay (default: runs_hv.png in the current folder)")
    p.add_argument("--each", action="store_true", help="also redraw every run's own plots in RUN/plots/")
    return p


def check_same_latency_table(runs: list[str]) -> None:
    """ValueError when the runs timed their `latency` objective with different `lut:` tables (from their args.yaml):
    each calls it 'latency', but milliseconds of different devices make no comparable hypervolumes."""
    from codebase.cli import same_setting, stored_arguments
    from codebase.search.objectives import objective_names

    tables = []
    for run in runs:
        spec = stored_arguments(run, None).get("sec_obj")  # {}: a run of the original tool, no args.yaml
        table = next((name[4:] for name in objective_names(spec or "") if name.startswith("lut:")), None)
        if table is not None:
            tables.append((run, table))
    for run, table in tables[1:]:
        if not same_setting(table, tables[0][1], path=True):
            raise ValueError(f"runs timed latency with different tables: {tables[0][0]} with {tables[0][1]}, "
                             f"{run} with {table}; their hypervolumes cannot be compared")


def main(argv: list[str] | None = None) -> int:
    from codebase import plots
    from codebase.io import check_output_folder

    args = build_parser().parse_args(argv)
    for run in args.runs:
        if not Path(run).is_dir():
            raise ValueError(f"{run}: not a folder")
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: is a folder; give the PNG file to write, e.g. {Path(args.out) / 'hv.png'}")
    if Path(args.out).suffix.lower() != ".png":  # the plot is always PNG: never PNG bytes in hv.pdf
        raise ValueError(f"--out {args.out}: the plot is a PNG image; give a file name ending in .png")
    check_output_folder(Path(args.out).parent, f"--out {args.out}")
    if args.each:
        for run in args.runs:
            check_output_folder(Path(run) / "plots", f"--each: {Path(run) / 'plots'}")
            plots.check_run_plot_files(run)
    check_same_latency_table(args.runs)
    # the overlay first: it checks --labels and that the runs compare (was: after --each had redrawn every
    # run's own plots, over the ones there)
    overlay = plots.plot_runs(args.runs, args.out, args.labels)
    if args.each:
        for run in args.runs:
            for stats in plots.load_run(run):
                plots.plot_iteration(stats, Path(run) / "plots" / f"iter_{stats['iteration']}.png")
            plots.plot_run(run)
    print(overlay)
    return 0


if __name__ == "__main__":
    run_main(main)
