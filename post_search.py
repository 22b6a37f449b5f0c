"""Choose architectures from a finished search and export them.

    python post_search.py --expr SAVE/iter_30.stats --save OUT -n 3 --prefer top1#80+flops#150
    python post_search.py --expr SAVE/iter_30.stats --save OUT -n 3            # trade-off (knee) points
    python post_search.py --expr SAVE/iter_30.stats --save OUT --supernet_path ofa_supernet.pth

With --prefer, the n front members closest to the preference by the achievement scalarising
function (objectives normalised by their range over the archive); without, the n sharpest knees of
the front. The most accurate architecture is always added. Each choice gets a folder
OUT/net-<objective>@<value>/ with net.subnet and net.stats (and net.config, net.inherited with
--supernet_path); OUT/choices.json lists them and OUT/choices.png shows them on the front. A re-run into
the same OUT first removes the folders of its earlier picks (those its choices.json lists) that are not
chosen again; nothing else there is touched.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import Any

from codebase.cli import OneLineParser, run_main, stored_arguments


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--expr", required=True, help="an iter_K.stats file of a search run")
    p.add_argument("--save", default="chosen", help="folder for the chosen architectures")
    p.add_argument("-n", type=int, default=1, help="architectures to choose (the most accurate is added)")
    p.add_argument("--prefer", default=None,
                   help="preferred objective values, e.g. top1#80+flops#150 (top1 as accuracy %%); "
                        "None or absent: choose by trade-off")
    p.add_argument("--supernet_path", help="supernet weights: also write net.config and net.inherited")
    p.add_argument("--data", help="data set folder for batch-norm recalibration (default: the run's)")
    p.add_argument("--dataset", help="data set name (default: the run's)")
    p.add_argument("--width_mult", type=float, choices=(1.0, 1.2),
                   help="the supernet's width, for a run without args.yaml (the original tool's; default 1.0)")
    return p


def searched_supernet(run_args: dict[str, Any], run_dir: Path) -> Path | None:
    """The supernet checkpoint a supernet run scored with: its args.yaml's, else the one it trained into
    run_dir/supernet/ (stored as null); None for other runs (the oracle's, the original tool's)."""
    if run_args.get("evaluator") != "supernet":
        return None
    return Path(run_args["supernet_path"]) if run_args.get("supernet_path") else run_dir / "supernet" / "checkpoint.pth"


def other_supernet(given: str, run_args: dict[str, Any], run_dir: Path) -> str | None:
    """What differs between --supernet_path and the supernet the run searched with, or None: the same file (by the
    size and sha256 the run recorded, so a moved or copied checkpoint is the same; by path for runs without them)."""
    from codebase.cli import absolute_path
    from codebase.io import file_identity

    searched = searched_supernet(run_args, run_dir)
    if searched is None:
        return None
    same_path = absolute_path(given) == absolute_path(searched)
    recorded = run_args.get("supernet_identity")
    if recorded is None or not Path(given).is_file():  # a missing file: the loader says so
        return None if same_path else f"--supernet_path {given} is not the file the run searched with ({searched})"
    if file_identity(given) == recorded:
        return None
    if same_path:
        return f"--supernet_path {given} changed since the run searched with it (another size or sha256 than its " \
               f"args.yaml records)"
    return f"--supernet_path {given} is not the supernet the run searched with ({searched}; another size or sha256)"


def export_source_cautions(args: argparse.Namespace, run_args: dict[str, Any], run_dir: Path) -> list[str]:
    """One line for each way the exported weights are not those whose accuracy net.stats reports (the search's
    measurement): another supernet, or batch norm recalibrated on another data set. Another data set with another
    class count than the run's head is refused: its labels do not fit the head the accuracies were measured with.
    The original tool's runs (no args.yaml) record neither, and are not checked."""
    cautions = []
    searched = run_args.get("dataset")
    if args.dataset is not None and searched is not None and args.dataset != searched:
        from codebase.supernet_training import resolve_n_classes

        classes = resolve_n_classes(args.dataset, args.data if args.data is not None else run_args.get("data"), None)
        head = run_args.get("n_classes")
        if head is not None and classes != int(head):
            raise ValueError(f"--dataset {args.dataset} has {classes} classes, but the run searched {searched} "
                             f"({head} classes, its args.yaml): its subnets' heads and accuracies are for {searched}; "
                             f"export without --dataset and fine-tune on {args.dataset} with train_cifar.py, which "
                             f"starts a new head")
        cautions.append(f"--dataset {args.dataset} is not the data set the run searched ({searched}, its args.yaml): "
                        f"net.inherited is recalibrated on {args.dataset}, but net.stats holds accuracies measured on "
                        f"{searched}")
    supernet = other_supernet(args.supernet_path, run_args, run_dir)
    if supernet is not None:
        cautions.append(f"{supernet}: net.inherited takes its weights, but net.stats holds the accuracies the search "
                        f"measured with its own")
    return cautions


def supernet_exporter(args: argparse.Namespace, run_dir: Path, subnets: list[dict[str, Any]]) -> tuple[Any, list[str]]:
    """(exporter(subnet, folder) built on the supernet evaluator with the run's arguments, the lines that say
    how the export's weights differ from the run's, already warned about). The evaluator (supernet, data) is
    built and every subnet checked against its space here, before any file is written."""
    from types import SimpleNamespace

    try:
        from codebase.evaluators.supernet import cached_evaluator, export_subnet
    except ImportError:
        raise ValueError("--supernet_path: exporting weights needs codebase.evaluators.supernet.export_subnet, "
                         "which this installation lacks") from None
    run_args = stored_arguments(run_dir, missing=None)
    if not run_args and args.dataset is None:  # else the evaluator's defaults (digits, 24..32 px) stood in for it
        raise ValueError(f"--supernet_path: {run_dir} has no args.yaml (the original tool's run?), so the data set "
                         "it searched is unknown: name it with --dataset (and --data; --width_mult 1.2 for a w1.2 "
                         "supernet)")
    space = run_args.get("search_space", "ofa")  # the original tool's runs (no args.yaml) searched OFA
    if space != "ofa":  # an NSGA-Net network is trained from scratch: there is no supernet to take weights from
        raise ValueError(f"--supernet_path: this run searched {space}, whose architectures inherit no supernet "
                         "weights; export without --supernet_path (train_cifar.py --net_type trains them)")
    if run_args.get("evaluator") == "ofa_oracle":  # the oracle's space: ImageNet, OFA w1.2 at 160..224
        from codebase.oracle import oracle_space

        space = oracle_space()
        run_args = {**run_args, "dataset": "imagenet", "width_mult": space.width_mult,
                    "resolutions": list(space.resolutions)}
    stored_width = run_args.get("width_mult")  # the oracle's space is w1.2 whatever its args.yaml says
    if args.width_mult is not None and stored_width is not None and float(stored_width) != args.width_mult:
        raise ValueError(f"--width_mult {args.width_mult}: the run searched width {stored_width} (its args.yaml); "
                         "its architectures are that supernet's")
    cautions = export_source_cautions(args, run_args, run_dir)  # before the minutes of loading
    for line in cautions:
        warnings.warn(line, stacklevel=2)
    given = {k: getattr(args, k) for k in ("supernet_path", "data", "dataset", "width_mult")
             if getattr(args, k) is not None}
    merged = SimpleNamespace(**{**run_args, **given})
    evaluator = cached_evaluator(merged)
    for subnet in subnets:
        evaluator.space.validate(subnet)
    return (lambda subnet, folder: export_subnet(merged, subnet, folder, evaluator)), cautions


def main(argv: list[str] | None = None) -> int:
    from codebase import plots, selection
    from codebase.io import check_output_folder, write_json

    args = build_parser().parse_args(argv)
    unused = [f"--{k}" for k in ("data", "dataset", "width_mult") if getattr(args, k) is not None]
    if unused and not args.supernet_path:  # they only serve the exported weights and their recalibration
        raise ValueError(f"{' and '.join(unused)}: used only with --supernet_path (exporting and recalibrating "
                         "the supernet's weights); without it nothing reads data or weights")
    if not args.save.strip():  # Path("") is the current folder: an unset $OUT exported into it
        raise ValueError("--save: empty; give the folder for the chosen architectures")
    out = Path(args.save)
    check_output_folder(out, f"--save {out}")
    result = selection.load_search_result(args.expr)
    prefer = None if args.prefer in (None, "", "None", "none") else args.prefer
    preference = selection.parse_preference(prefer, result.objectives) if prefer else None
    choices, notes = selection.choose(result, args.n, preference)
    notes = result.notes + notes
    chosen = [result.subnets[c.index] for c in choices]
    names = selection.folder_names(result, [c.index for c in choices])
    selection.check_export_targets(out, names)  # before the exporter's minutes of loading, and any write
    exporter, cautions = supernet_exporter(args, result.run_dir, chosen) if args.supernet_path else (None, [])
    found = selection.evaluation_stats_index(result.run_dir)
    selection.remove_export_temporaries(out, names)  # what a kill mid-write of an earlier export left
    notes += selection.remove_stale_picks(out, names)  # an earlier run's picks that are not chosen again
    summary = []
    for choice, name in zip(choices, names):
        values = dict(zip(result.objectives, map(float, result.F[choice.index])))
        score = choice.score if math.isfinite(choice.score) else None  # a lone front member has no trade-off
        summary.append({"folder": name, "reason": choice.reason, "score": score, "objectives": values})
    # the warnings on the export's weights are kept with it (said once, as warnings, not again as notes)
    record = {"expr": str(args.expr), "prefer": prefer, "n": args.n, "notes": notes + cautions, "choices": summary}
    # the picks are listed before any is written, so that a re-run after an interrupted export removes them too
    write_json(out / "choices.json", {**record, "complete": False}, indent=2)
    for choice, name, row in zip(choices, names, summary):
        stats = selection.architecture_stats(result, choice.index, found)
        selection.export_architecture(result.subnets[choice.index], stats, out / name, exporter)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row["objectives"].items())
        print(f"{out / name}: {shown} ({choice.reason})")
    write_json(out / "choices.json", {**record, "complete": True}, indent=2)
    aspiration = selection.aspiration_point(preference, result.objectives) if preference is not None else None
    how = f"preference {prefer}" if prefer else "trade-off (knee points)"
    title = f"{result.run_dir.name}/{Path(args.expr).name}: {len(choices)} chosen by {how}"
    plots.plot_choices(result.F, result.objectives, [c.index for c in choices], names, out / "choices.png",
                       aspiration, title=title)
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    run_main(main)
