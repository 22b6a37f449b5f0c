"""MSuNAS (NSGANetV2): surrogate-assisted multi-objective architecture search.

    python msunas.py --evaluator ofa_oracle --oracle_path acc_predictor.pth --sec_obj flops --save DIR
    python msunas.py --resume DIR

Writes DIR/args.yaml, DIR/iter_K/net_I.{subnet,stats}, DIR/iter_K.stats, DIR/failed/, DIR/log.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebase.cli import (
    WORKERS,
    ArgumentsError,
    OneLineParser,
    absolute_path,
    changed_settings,
    check_ranges,
    check_resume_save,
    check_storable,
    check_stored_types,
    flag_names,
    flags_given,
    run_main,
    stored_arguments,
)
from codebase.io import FolderInUse, check_output_folder, holding_lock, lock_name, temporaries_of
from codebase.search.subset import SUBSET_METHODS

if TYPE_CHECKING:
    from codebase.distributed import RankGroup

SETTINGS = ("seed", "n_doe", "iterations", "n_iter", "predictor", "subset", "inner_pop", "inner_gens", "ref_point")
# what a resume may change: extend the run, run it elsewhere (the data moved, other devices), display
RESUMABLE = ("iterations", "quiet", "n_gpus", "dist_timeout", "device", "data", "n_workers")
# what every search's args.yaml holds (each version wrote these): without them it is not a search's
SEARCH_KEYS = ("seed", "sec_obj", "n_doe", "iterations", "n_iter", "predictor")
# NSGA-Net's flag names for MSuNAS's settings
ALIASES = (("pop_size", "n_doe"), ("n_offspring", "n_iter"), ("n_gens", "iterations"))
# NSGA-Net's --n_gens counts the initial population as generation 1 (pymoo's n_gen termination, which it used,
# stops once n_gen reaches it): N generations are the initial design and N - 1 iterations
ALIAS_OFFSET = {"n_gens": -1}
# NSGA-Net's own defaults (its search/evolution_search.py): --search_space micro|macro --predictor none takes them
# where neither name of a setting is given (MSuNAS's 100 / 8 / 30 had silently given 100 + 29 x 8 trainings where
# NSGA-Net's command gave 40 + 29 x 40)
NSGANET_DEFAULTS = {"pop_size": 40, "n_offspring": 40, "n_gens": 50}
# NSGA-Net's names for its search spaces (its `--search_space micro|macro`)
SPACE_ALIASES = {"micro": "nsganet_micro", "macro": "nsganet_macro"}
# what only the surrogate search reads: plain NSGA-II (--predictor none) mates on true evaluations instead
SURROGATE_FLAGS = ("subset", "inner_pop", "inner_gens")
# the run folder's lock file (codebase.io.holding_lock): held by the process that runs it, the OS lets go when it ends
LOCK_NAME = lock_name("msunas")


def from_alias(alias: str, value: int) -> int:
    """An NSGA-Net flag's value as the MSuNAS setting it stands for."""
    return value + ALIAS_OFFSET.get(alias, 0)


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: a resume recognises the flags it may change by their full names
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--save", default="search-exp", help="folder of the run (must not hold another run)")
    p.add_argument("--resume", metavar="SAVE_DIR", help="continue the run in SAVE_DIR from its last complete iteration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sec_obj", default="flops", help="flops, params, cpu, gpu, lut:PATH, or a comma-separated list")
    p.add_argument("--n_doe", type=int, default=100, help="initial design size (iteration 0)")
    p.add_argument("--iterations", type=int, default=30, help="surrogate iterations after the initial design")
    p.add_argument("--n_iter", type=int, default=8, help="true evaluations per iteration")
    p.add_argument("--predictor", default="rbf", help="accuracy surrogate, or 'none' for plain NSGA-II")
    p.add_argument("--subset", default="hv_bands", choices=SUBSET_METHODS,
                   help="subset selection of candidates (hv_bands: one pick per complexity band (group, with "
                        "several complexity objectives), then greedy predicted-hypervolume gain; hv: greedy only; "
                        "spread: the original's)")
    p.add_argument("--inner_pop", type=int, default=100, help="population of the surrogate NSGA-II")
    p.add_argument("--inner_gens", type=int, default=50, help="generations of the surrogate NSGA-II")
    p.add_argument("--ref_point", type=float, nargs="+", help="hypervolume reference point (default: from iter 0)")
    p.add_argument("--search_space", default="ofa", type=search_space_name,
                   help="ofa, nsganet_macro or nsganet_micro (NSGA-Net's macro and micro are read as these)")
    p.add_argument("--evaluator", default=None,
                   help="ofa_oracle, supernet or nsganet_train (default: ofa_oracle with --oracle_path, "
                        "else supernet for ofa and nsganet_train for the NSGA-Net spaces)")
    p.add_argument("--oracle_path", help="OFA's acc_predictor.pth for --evaluator ofa_oracle")
    data = p.add_argument_group("real evaluation")
    data.add_argument("--dataset", default="digits", help="data set name (see codebase/data)")
    data.add_argument("--data", help="folder that holds the data set")
    data.add_argument("--n_classes", type=int, default=None, help="classes of the task (default: the data set's)")
    data.add_argument("--supernet_path", help="OFA supernet checkpoint ({'state_dict': ...})")
    data.add_argument("--width_mult", type=float, default=1.0, choices=(1.0, 1.2))
    data.add_argument("--resolutions", type=int, nargs="+", help="input resolutions of the OFA space")
    data.add_argument("--vld_size", type=int, default=None, help="validation images held out of the training set")
    data.add_argument("--n_epochs", type=int, default=0, help="fine-tuning epochs per subnet before scoring")
    data.add_argument("--test", action="store_true", help="score on the test set (never use it to search)")
    # the original msunas.py's evaluation flags (its scripts/search.sh passes --gpu 1 --n_workers 4)
    data.add_argument("--n_workers", type=int, default=None,
                      help="data-loading processes of each evaluation (default 0: none, decoded in-process)")
    data.add_argument("--trn_batch_size", type=int, default=None,
                      help="training batch size: --n_epochs fine-tuning (supernet, default 64), each candidate's "
                           "training (nsganet_train, default 128)")
    data.add_argument("--vld_batch_size", type=int, default=None, help="scoring batch size (supernet, default 200)")
    data.add_argument("--gpu", type=int, default=1,
                      help="GPUs per evaluation: 1, as the original's default (--n_gpus N starts N evaluation "
                           "processes, one GPU each)")
    data.add_argument("--n_gpus", type=int, default=None,
                      help="start this many evaluation processes here (one per GPU; CPU processes without GPUs); "
                           "under torchrun the launcher decides")
    data.add_argument("--dist_timeout", type=float, default=7200.0,
                      help="seconds a process waits for the others before giving up (several processes only)")
    data.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    nsga = p.add_argument_group("NSGA-Net spaces")
    nsga.add_argument("--init_channels", type=int, default=None)
    nsga.add_argument("--layers", type=int, default=None)
    nsga.add_argument("--epochs", type=int, default=None, help="training epochs of each candidate")
    nsga.add_argument("--n_offspring", type=int, default=None, help="NSGA-Net's name for --n_iter")
    nsga.add_argument("--n_gens", type=int, default=None,
                      help="NSGA-Net's generations, the initial population included: --n_gens N is --iterations N-1")
    nsga.add_argument("--pop_size", type=int, default=None, help="NSGA-Net's name for --n_doe")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def search_space_name(value: str) -> str:
    """--search_space's value, with NSGA-Net's `macro` / `micro` read as the nsganet_ spaces."""
    return SPACE_ALIASES.get(value, value)


def default_evaluator(args: argparse.Namespace) -> str:
    if args.evaluator:
        return args.evaluator
    if args.oracle_path:
        return "ofa_oracle"
    return "supernet" if args.search_space == "ofa" else "nsganet_train"


def resolve_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The run's arguments: the command line for a new run, args.yaml (plus what may change) for a resume."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, value in (("--resume", args.resume), ("--save", args.save)):
        if value is not None and not value.strip():  # an unset "$RUN": not a new default run, not the current folder
            raise ValueError(f"{flag} needs a folder name, got {value!r}")
    given = flags_given(build_parser, argv if argv is not None else sys.argv[1:])
    check_aliases(given)
    if not args.resume:
        from codebase.evaluators import check_evaluator_flags

        # NSGA-Net's flag names map onto MSuNAS's: population = initial design, offspring per generation
        for alias, name in ALIASES:
            if getattr(args, alias) is not None:
                setattr(args, name, from_alias(alias, getattr(args, alias)))
            elif args.predictor == "none" and args.search_space.startswith("nsganet_") and name not in given:
                setattr(args, name, from_alias(alias, NSGANET_DEFAULTS[alias]))  # NSGA-Net's algorithm, its budget
        args.evaluator = default_evaluator(args)
        check_evaluator_flags(args.evaluator, given, args.search_space)
        check_mode_flags(args.predictor, given)
        return args
    run = Path(args.resume)
    if (run / "supernet" / "checkpoint.pth").is_file() and not (run / "args.yaml").is_file():
        raise ValueError(f"--resume {run}: the run stopped while training its supernet, before its first "
                         f"file; run the original command again (without --resume): the supernet training "
                         f"continues from its last epoch")
    if not (run / "args.yaml").exists() and temporaries_of(run, "args.yaml"):  # a start killed writing it
        raise ValueError(f"--resume {run}: the run stopped before writing its args.yaml; run the original command "
                         f"again (without --resume)")
    stored = stored_arguments(run, f"--resume {run}: not a run folder (no args.yaml)")
    check_stored_types(parser, stored, run / "args.yaml")
    shown_as = {}  # a refusal names the flag as the user gave it (`--pop_size`, not the --n_doe it stands for)
    for alias, name in ALIASES:
        if alias in given:
            given[name] = from_alias(alias, given.pop(alias))
            shown_as[name] = f"--{alias}"
    defaults = vars(parser.parse_args([]))
    merged = {**defaults, **stored, "save": str(run), "resume": str(run)}
    check_resume_save(run, given)
    if merged.get("evaluator") == "ofa_oracle" and given.get("data") is not None:
        raise ValueError(f"--resume {run}: an ofa_oracle run reads no data set; drop --data")
    # another tool's run folder (or a hand-written file) would otherwise be "resumed" with msunas's defaults
    missing = [key for key in SEARCH_KEYS if key not in stored]
    if missing:
        raise ValueError(f"--resume {run}: not a run folder (its args.yaml holds no {', '.join(missing)})")
    if stored.get("evaluator") is None:  # every run writes the evaluator it resolved: the file was cut short
        raise ValueError(f"{run / 'args.yaml'}: incomplete (no evaluator); the run cannot continue from it")
    # a run's settings are its args.yaml: a flag that would change one is refused, never silently ignored;
    # paths compare as absolute ones (runs of earlier versions stored them relative)
    changed = changed_settings(given, merged, (*RESUMABLE, "save", "resume"), names=shown_as,
                               same=lambda k, a, b: absolute_paths({k: a}) == absolute_paths({k: b}))
    if changed:
        raise ValueError(f"--resume {run} continues with the settings in its args.yaml; drop {', '.join(changed)}; "
                         f"only {', '.join('--' + k for k in RESUMABLE)} (and --n_gens) may change")
    from codebase.evaluators import check_evaluator_flags

    # what may change is still refused where the run's evaluator has no use for it (--n_workers on an oracle run)
    check_evaluator_flags(merged["evaluator"], {k: given[k] for k in given.keys() & set(RESUMABLE)},
                          merged.get("search_space", "ofa"))
    for key in given.keys() & set(RESUMABLE):
        merged[key] = given[key]
    return argparse.Namespace(**merged)


def check_mode_flags(predictor: str, given: dict[str, object]) -> None:
    """The surrogate search's flags given to plain NSGA-II (`--predictor none`), which never reads them: refused by
    name (all three --subset values gave the identical run). A resume compares them with args.yaml instead."""
    from codebase.cli import check_unused

    if predictor == "none":
        check_unused(given, dict.fromkeys(SURROGATE_FLAGS, "only with a surrogate (--predictor none is plain NSGA-II "
                                                           "on true evaluations)"))


def check_aliases(given: dict[str, object]) -> None:
    """NSGA-Net's name and MSuNAS's for one setting, both on the command line with different values: refused."""
    if given.get("n_gens") is not None and given["n_gens"] < 1:  # as --iterations -1, it would name the wrong flag
        raise ValueError(f"--n_gens must be >= 1 (NSGA-Net's generations, the initial population included), "
                         f"got {given['n_gens']}")
    for alias, least in (("pop_size", 2), ("n_offspring", 1)):  # else said as --n_doe / --n_iter, never typed
        if given.get(alias) is not None and given[alias] < least:
            raise ValueError(f"--{alias} must be >= {least}, got {given[alias]}")
    for alias, name in ALIASES:
        if alias in given and name in given and from_alias(alias, given[alias]) != given[name]:
            offset = ALIAS_OFFSET.get(alias, 0)
            value, mapped = (" N", f" N{offset:+d}") if offset else ("", "")
            raise ValueError(f"--{alias} {given[alias]} and --{name} {given[name]} name the same setting "
                             f"(--{alias}{value} is NSGA-Net's name for --{name}{mapped}); give one of them")


PATH_FLAGS = ("oracle_path", "supernet_path", "data")


def _sec_obj_absolute(spec: str) -> str:
    """--sec_obj without spaces and with its latency tables as absolute paths (`lut:PATH`)."""
    from codebase.search.objectives import objective_names

    return ",".join(f"lut:{absolute_path(name[4:])}" if name.startswith("lut:") else name
                    for name in objective_names(spec))


def absolute_paths(values: dict[str, object]) -> dict[str, object]:
    """The path-valued flags as absolute paths, so a run's args.yaml serves a resume from any folder and a
    resume's relative paths compare by the file they name, not by how they were typed."""
    out = {k: (absolute_path(v) if k in PATH_FLAGS else v) for k, v in values.items()}
    if out.get("sec_obj"):
        out["sec_obj"] = _sec_obj_absolute(out["sec_obj"])
    return out


def check_args(args: argparse.Namespace) -> None:
    from acc_predictor import acc_predictor_names
    from codebase.search.engine import check_ref_point
    from codebase.search.objectives import objective_keys

    if args.predictor != "none" and args.predictor not in acc_predictor_names():
        raise ValueError(f"unknown predictor '{args.predictor}'; choose from {acc_predictor_names() + ['none']}")
    if args.n_doe < 2 or args.n_iter < 1 or args.iterations < 0:
        raise ValueError("--n_doe must be >= 2, --n_iter >= 1 and --iterations >= 0")
    if args.gpu != 1:  # the original split --n_gpus into jobs of --gpu each; here every evaluation takes one
        raise ValueError(f"--gpu {args.gpu}: each evaluation runs on one GPU here; --n_gpus N starts N evaluation "
                         f"processes (one per GPU, torch.distributed)")
    check_ranges(args, {"n_workers": WORKERS, "trn_batch_size": "[1, inf)", "vld_batch_size": "[1, inf)"})
    if args.trn_batch_size is not None and args.evaluator == "supernet" and not args.n_epochs:
        raise ValueError("--trn_batch_size only with --n_epochs 1 or more: the supernet evaluator trains nothing "
                         "otherwise (no effect here, not silently ignored)")
    # checked before the run's first file: iteration 0 would be evaluated and the run left unresumable
    if args.seed < 0 or args.inner_pop < 1 or args.inner_gens < 1:
        raise ValueError(f"--seed must be >= 0, --inner_pop >= 1 and --inner_gens >= 1; got --seed {args.seed} "
                         f"--inner_pop {args.inner_pop} --inner_gens {args.inner_gens}")
    keys = objective_keys(args.sec_obj)  # a bad --sec_obj is said now, not after a supernet's training
    check_ref_point(args.ref_point, keys)
    # NSGA-III (3 or more objectives) needs a population of at least one per reference direction
    n_obj = len(keys)
    population = ("--n_doe", args.n_doe) if args.predictor == "none" else ("--inner_pop", args.inner_pop)
    # a resumed run's settings are its args.yaml's: the fixes a new run is told of are refused on a resume
    prefix = f"--resume {args.resume}: this run cannot go on to --iterations {args.iterations}: its " if args.resume \
        else ""
    if n_obj >= 3 and args.iterations > 0 and population[1] < n_obj:
        raise ValueError(f"{prefix}{population[0]} {population[1]}: NSGA-III over {n_obj} objectives needs a "
                         f"population of at least {n_obj}")
    if args.predictor != "none" and args.iterations > 0 and args.n_doe < 10:
        fix = "start a new run" if args.resume else "use at least 10, or --predictor none for plain NSGA-II"
        raise ValueError(f"{prefix}--n_doe {args.n_doe} (NSGA-Net's --pop_size) is too small to fit a surrogate; "
                         f"{fix}")
    from codebase.search.objectives import measured_devices

    if "gpu" in measured_devices(args.sec_obj):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--sec_obj {args.sec_obj}: measuring gpu latency needs a CUDA device, and none is "
                             f"available (use flops, params, cpu or a latency table lut:PATH)")


def check_supernet_unchanged(args: argparse.Namespace) -> None:
    """A resumed supernet run scores the rest of its archive with the weights it began with: a checkpoint replaced
    since (retrained, another file copied over it) would mix two supernets' accuracies in one archive, so it is
    refused. Runs of earlier versions recorded no identity (args.yaml's supernet_identity) and are not checked."""
    from codebase.io import file_identity

    recorded = getattr(args, "supernet_identity", None)
    if not args.resume or args.evaluator != "supernet" or recorded is None:
        return
    path = Path(args.supernet_path) if args.supernet_path else Path(args.save) / "supernet" / "checkpoint.pth"
    if not path.is_file():
        if args.supernet_path:  # the evaluator says so: "--supernet_path P: file not found"
            return
        raise ValueError(f"--resume {args.resume}: the run's supernet {path} is gone, and a resume would train "
                         f"another; restore it, or start a new run (another --save)")
    if file_identity(path) != recorded:
        raise ValueError(f"--resume {args.resume}: the supernet {path} changed since the run began (its size and "
                         f"sha256 differ from those in args.yaml), so the rest of the archive would be scored with "
                         f"other weights; restore the original file, or start a new run (another --save) to search "
                         f"with this one")


def data_identity(dataset: str, data: str | None) -> dict[str, Any]:
    """What identifies a run's data set, recorded in args.yaml (`data_identity`) and checked on resume: its class
    names in label order and codebase.supernet_training's fingerprint of its training images (class names, labels,
    paths under the folder: a moved copy keeps it). Listing the folder and hashing the paths takes about 1 s per
    100,000 images on the 2 cores here (some 15 s for ImageNet), well below decoding its hold-out."""
    from codebase.data import get_dataset
    from codebase.supernet_training import training_set_fingerprint

    classes = [str(c) for c in get_dataset(dataset, data, "train").classes]
    return {"classes": classes, **training_set_fingerprint(dataset, data)}


def _classes(names: list[str], state: str, owner: str = "") -> str:
    """`the run's class c is missing`, `z, y are new`: a few of the names (and how many in all)."""
    listed = ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")
    noun = "" if not owner else f"{owner} class " if len(names) == 1 else f"{owner} classes "
    return f"{noun}{listed} {'is' if len(names) == 1 else 'are'} {state}"


def check_data_unchanged(args: argparse.Namespace) -> None:
    """A resume's --data (it may change: the data moved) must hold the run's data set: one with other classes
    would score the rest of the archive on another task, mixed with the first's scores, so it is refused naming
    the classes. Runs of earlier versions recorded no `data_identity` and are not checked."""
    from codebase.data import get_dataset

    recorded = getattr(args, "data_identity", None)
    if not args.resume or not isinstance(recorded, dict) or not isinstance(recorded.get("classes"), list):
        return
    then = [str(c) for c in recorded["classes"]]
    now = [str(c) for c in get_dataset(args.dataset, args.data, "train").classes]
    if now == then:
        return
    gone, new = [c for c in then if c not in now], [c for c in now if c not in then]
    if gone or new:
        diff = ", ".join([_classes(gone, "missing", "the run's")] * bool(gone) + [_classes(new, "new")] * bool(new))
    else:
        diff = "the same names in another label order"
    raise ValueError(f"--resume {args.resume}: {args.data} holds other classes than the run's data set ({diff}), so "
                     f"the rest of the archive would be scored on another task; give the run's data (or a copy of "
                     f"it) as --data, or start a new run (another --save)")


def changed_images_note(args: argparse.Namespace) -> str | None:
    """A warning when a resume's training images (same classes, checked before) differ from the run's: added,
    removed, renamed or relabelled images move the validation hold-out, so the rest of the archive is scored on
    other images. A warning, not a refusal: the fingerprint may also change with the version of the code."""
    recorded = getattr(args, "data_identity", None)
    if not args.resume or not isinstance(recorded, dict) or "sha256" not in recorded:
        return None
    from codebase.supernet_training import training_set_fingerprint

    now = training_set_fingerprint(args.dataset, args.data)
    if now["sha256"] == recorded["sha256"]:
        return None
    then = recorded.get("n_images")
    counts = (f"as many, {now['n_images']}, but other file names or labels" if then == now["n_images"] else
              f"{then} then, {now['n_images']} now")
    return (f"--resume {args.resume}: the training images in {args.data} differ from the run's ({counts}; the same "
            f"classes): the validation hold-out holds other images now, so the rest of the archive is scored on "
            f"them; restore the run's images for scores comparable with the earlier ones")


def setup_logging(save: Path, quiet: bool) -> None:
    logger = logging.getLogger("msunas")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    # a message naming a file whose name is not UTF-8 (a failed evaluation's) is written escaped, not a logging error
    file = logging.FileHandler(save / "log.txt", encoding="utf-8", errors="backslashreplace")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(file)
    if quiet:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)


def nsganet_note(args: argparse.Namespace, given: dict[str, object]) -> str | None:
    """A new run typed with NSGA-Net's flags but no --predictor: the original's commands did plain NSGA-II, here
    they would search with the default surrogate, so say how to get the original algorithm."""
    if args.resume or not str(args.search_space).startswith("nsganet_") or "predictor" in given:
        return None
    if not given.keys() & {alias for alias, _ in ALIASES}:
        return None
    return (f"note: --predictor {args.predictor} (the default) searches {args.search_space} with a surrogate "
            f"(MSuNAS, {args.n_iter} evaluations per iteration); NSGA-Net's own algorithm, plain NSGA-II, is "
            f"--predictor none (NSGA-Net's defaults where not given: --pop_size 40 --n_offspring 40 --n_gens 50)")


def main(argv: list[str] | None = None) -> int:
    from codebase import distributed

    try:  # the same in every process: said once
        args = resolve_args(argv)
        note = nsganet_note(args, flags_given(build_parser, argv if argv is not None else sys.argv[1:]))
        if note and os.environ.get("RANK", "0") == "0":  # once, not by every torchrun rank
            print(note, file=sys.stderr)
        check_args(args)  # before torch is imported: a bad flag is said in a second
        # a path args.yaml cannot hold (not UTF-8) is said now, not after the evaluator's minutes of loading
        check_storable(absolute_paths({k: v for k, v in vars(args).items() if k not in ("resume", "quiet")}),
                       flag_names(build_parser()))
        check_supernet_unchanged(args)  # before a supernet is loaded (or, gone from the run, trained anew)
        check_data_unchanged(args)  # before its images are decoded
        if args.n_gpus is not None and args.n_gpus < 1:
            raise ValueError(f"--n_gpus must be >= 1, got {args.n_gpus}")
        distributed.check_timeout(args.dist_timeout)  # before starting processes, which would each say it
        if args.device is not None:  # a bad name is said now, whatever the evaluator (the oracle ignored it)
            from codebase.latency.measure import resolve_device

            resolve_device(args.device)
    except ValueError as e:
        raise ArgumentsError(str(e)) from None
    save = Path(args.save)
    if (args.n_gpus or 1) > 1 and not distributed.launched_by_torchrun():
        check_new_run(args, save)  # before starting anything
        device = distributed.resolve_device(args.device)
        threads = None
        if device.startswith("cuda"):
            import torch

            if args.n_gpus > torch.cuda.device_count():
                raise ValueError(f"--n_gpus {args.n_gpus}: only {torch.cuda.device_count()} GPUs visible")
        else:
            cores = distributed.usable_cpus()
            if args.n_gpus > cores:  # more processes than cores only take turns on them, each with a model
                plural = "s" if cores > 1 else ""
                raise ValueError(f"--n_gpus {args.n_gpus} without GPUs starts that many CPU processes, but only "
                                 f"{cores} CPU core{plural} usable here; use --n_gpus {cores} or fewer")
            threads = max(1, cores // args.n_gpus)
        return distributed.spawn_ranks(main, args.n_gpus, sys.argv[1:] if argv is None else list(argv), threads)
    ranks = None
    try:
        ranks = distributed.init_from_env(args.device, args.dist_timeout)  # None: a single process
        return search(args, save, ranks)
    except distributed.LostContact as e:  # one line, not a page of torch internals; the run is resumable
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    finally:
        distributed.close(ranks)


def check_new_run(args: argparse.Namespace, save: Path) -> None:
    if not args.resume:
        if (save / "args.yaml").exists():
            raise ValueError(f"--save {save} already holds a run; continue it with --resume {save} "
                             "or choose another folder")
        if any(save.glob("iter_*.stats")):  # e.g. the original tool's run: nothing to resume
            raise ValueError(f"--save {save} holds iter_K.stats files but no args.yaml (a search of another tool, "
                             f"which --resume cannot continue; post_search.py reads it); choose another folder")
    check_output_folder(save, f"--save {save}")


def remove_empty_start(save: Path, fresh_folder: bool, fresh_log: bool, fresh_lock: bool = False) -> None:
    """After a bad-input error before the first iteration: remove the log.txt, the lock file (and the folder) this
    start created, so a refused command leaves nothing behind, even where the log holds a warning or a note said on
    the way (a data set's changed images, a supernet's new head) before a corrupt image or a refusal stopped it.
    Beside SAVE/supernet the log stays: a supernet was being trained (or reused), which running the command again
    continues."""
    from codebase.io import remove_new_paths

    log_file = save / "log.txt"
    own_log = fresh_log and log_file.is_file() and not (save / "supernet").exists()
    lock = [save / LOCK_NAME] * (fresh_lock or fresh_folder)
    remove_new_paths([save] * fresh_folder + [log_file] * own_log + lock, loggers=("msunas",))
    logging.getLogger("msunas").handlers.clear()  # the console handler too: a next start sets up its own


def resolved_arguments(args: argparse.Namespace, evaluator: object) -> dict[str, object]:
    """args.yaml: the arguments with what the evaluator resolved written in (as timm writes the resolved
    config): the supernet used (null: the one trained into SAVE/supernet), the hold-out size, the class count,
    the space's resolutions and width."""
    out = {k: v for k, v in vars(args).items() if k not in ("resume", "quiet")}
    if args.evaluator == "ofa_oracle":  # its accuracies are ImageNet's, whatever --dataset said
        out.update(dataset="imagenet", data=None)
    out["n_classes"] = int(evaluator.n_classes)
    trained_here = Path(args.save) / "supernet"  # left null: a resume finds it in the run folder, wherever it is
    if getattr(evaluator, "supernet_path", None) is not None and Path(evaluator.supernet_path).parent != trained_here:
        out["supernet_path"] = str(evaluator.supernet_path)
    out = absolute_paths(out)  # a resume from another folder finds the oracle, the tables and the data
    if getattr(evaluator, "supernet_identity", None) is not None:  # the weights scored with, checked on resume
        out["supernet_identity"] = dict(evaluator.supernet_identity)
    if args.evaluator != "ofa_oracle" and getattr(evaluator, "dataset", None):  # the data scored on, checked too
        out["data_identity"] = data_identity(evaluator.dataset, getattr(evaluator, "data", None))
    if getattr(evaluator, "vld_size", None) is not None:
        out["vld_size"] = int(evaluator.vld_size)
    space = evaluator.space
    if hasattr(space, "resolutions") and hasattr(space, "width_mult"):
        out["resolutions"], out["width_mult"] = [int(r) for r in space.resolutions], float(space.width_mult)
    return out


def record_extension(save: Path, iterations: int, k: int) -> None:
    """A resume that extends the run (a larger --iterations) stores it in args.yaml before the first iteration
    beyond the stored end, so a plain --resume after a kill continues the extension instead of saying "done" at
    the old end. Not earlier: a damaged file of an iteration within the old end stops the resume, and then no
    file of the run may have changed."""
    from codebase.io import write_yaml

    stored = stored_arguments(save, None)
    if k > stored.get("iterations", k) and iterations > stored["iterations"]:
        write_yaml(save / "args.yaml", {**stored, "iterations": iterations})


def search(args: argparse.Namespace, save: Path, ranks: RankGroup | None) -> int:
    """Every process builds the evaluator; rank 0 (or the only process) searches and writes every file, holding
    the run folder's lock, the other ranks evaluate their share of each iteration's candidates."""
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = logged_warnings(shown)  # the engine's progress bar wraps this one in turn
    try:
        with contextlib.ExitStack() as held:  # the folder's lock, taken on the way, let go however the run ends
            return _search(args, save, ranks, held)
    finally:
        warnings.showwarning = shown


def logged_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """warnings.showwarning that also writes the warning (one line) to the run's log file, then shows it as
    `show` does: a warning on the terminal was otherwise missing from log.txt. Only the log file's handler gets
    it (with --quiet the console handler would say it twice); without a log (another rank) it is only shown."""
    def show_and_log(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     *args: Any, **kwargs: Any) -> None:
        logger = logging.getLogger("msunas")
        files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        if files:
            record = logger.makeRecord(logger.name, logging.WARNING, filename, lineno,
                                       " ".join(str(message).split()), None, None)
            for handler in files:
                handler.handle(record)
        show(message, category, filename, lineno, *args, **kwargs)

    return show_and_log


def _search(args: argparse.Namespace, save: Path, ranks: RankGroup | None, held: contextlib.ExitStack) -> int:
    import warnings

    from codebase.evaluators import get_evaluator
    from codebase.io import remove_stale_temporaries, write_yaml
    from codebase.search.engine import MSuNAS, SearchSettings
    from codebase.search.objectives import measured_devices, parse_objectives

    fresh_folder, fresh_log = not save.exists(), not (save / "log.txt").exists()
    fresh_lock = not (save / LOCK_NAME).exists()
    try:
        check_new_run(args, save)
        if ranks is None or ranks.rank == 0:  # log from the start: building the evaluator may train a supernet
            try:  # a read-only or foreign location is one line, not mkdir's (or the log's) traceback
                save.mkdir(parents=True, exist_ok=True)
                # before anything is written: not even the log of a run in use elsewhere
                held.enter_context(holding_lock(save, "msunas"))
                setup_logging(save, args.quiet)
                if args.resume:  # the temporary files of writes a kill cut short (nothing writes here yet)
                    remove_stale_temporaries(save)
                for stale in temporaries_of(save, "args.yaml"):  # a start killed while writing args.yaml left it
                    stale.unlink(missing_ok=True)
            except OSError as e:
                raise ValueError(f"{'--resume' if args.resume else '--save'} {save}: cannot write there "
                                 f"({e.strerror or e})") from None
            note = changed_images_note(args)  # a warning, so in log.txt too
            if note:
                warnings.warn(note, stacklevel=1)
        objectives = None
        if args.evaluator == "supernet" and "lut:" in args.sec_obj:  # a table missing the space's resolutions or
            from codebase.evaluators.supernet import planned_space  # head: said before a supernet is trained

            # the evaluator's own space and class count are these (SupernetEvaluator builds them with planned_space)
            objectives = parse_objectives(args.sec_obj, *planned_space(**vars(args)))
        measure = measured_devices(args.sec_obj)
        evaluator = get_evaluator(args.evaluator, **{**vars(args), "measure": measure})
        if objectives is None:
            objectives = parse_objectives(args.sec_obj, evaluator.space, evaluator.n_classes)
        error = None
    except Exception as e:
        if ranks is None:
            if isinstance(e, ValueError) and not isinstance(e, FolderInUse):  # refused input leaves nothing behind
                remove_empty_start(save, fresh_folder, fresh_log, fresh_lock)
            raise
        error = e  # told to the others: had this rank just exited, they would say "lost contact", not why
    if ranks is not None:
        try:
            ranks.agree(error)  # also a barrier: no rank checks the folder after rank 0 starts writing
        except BaseException:  # this rank's error or another's: nothing of the run was written
            if ranks.rank == 0 and not isinstance(error, FolderInUse):  # another process's run: not ours to tidy
                remove_empty_start(save, fresh_folder, fresh_log, fresh_lock)
            raise
        if ranks.rank != 0:
            ranks.serve(evaluator.evaluate)
            return 0
    save.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        write_yaml(save / "args.yaml", resolved_arguments(args, evaluator))
    settings = SearchSettings(**{k: getattr(args, k) for k in SETTINGS})
    try:
        stats = MSuNAS(save, evaluator.space, evaluator, objectives, settings, ranks=ranks).run(
            progress=not args.quiet,
            before_iteration=(lambda k: record_extension(save, args.iterations, k)) if args.resume else None)
    finally:
        if ranks is not None:
            ranks.stop()
    print(f"done: {stats['n_evaluations']} evaluations, hypervolume {stats['hv']:.6g}, "
          f"results in {save}/iter_{stats['iteration']}.stats")
    return 0


if __name__ == "__main__":
    run_main(main)
