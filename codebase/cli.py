"""What every top-level script shares: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, NoReturn


def absolute_path(value: Any) -> Any:
    """A path flag's value as an absolute path (None and "" as given): a run's args.yaml then serves a resume
    from any folder, and paths typed differently compare by the file they name."""
    return str(Path(str(value)).expanduser().resolve()) if value else value


class ArgumentsError(ValueError):
    """Bad arguments: every process of a torchrun job finds the same, so only local rank 0 says so."""


def other_local_rank() -> bool:
    """True in a process that torchrun started as other than its machine's local rank 0."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's main(); a ValueError (bad input) becomes one line on stderr and exit code 2, and a
    warning one line too (`warning: ...`, not Python's two lines with the source line that raised it).
    Under torchrun an ArgumentsError is said once per machine, not by each of its processes."""
    import warnings

    warnings.formatwarning = _one_line_warning
    try:
        code = main()
    except ValueError as e:
        if not (isinstance(e, ArgumentsError) and other_local_rank()):
            print(f"error: {error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def error_line(e: BaseException) -> str:
    """The message of a bad-input error; for one re-raised from a DataLoader worker (its text is the
    worker's whole traceback) the original error's own line."""
    text = str(e)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        return last.split(": ", 1)[1] if last.startswith(f"{type(e).__name__}: ") else last
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 2, like every other bad input, and whose flags
    are spelled in full: an abbreviation (`--epoch` for `--epochs`) is an unrecognized argument, not a guess."""

    def __init__(self, *args: Any, allow_abbrev: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)

    def error(self, message: str) -> NoReturn:
        if not other_local_rank():  # the same command line in every process of a torchrun job
            print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def flags_given(build_parser: Callable[[], argparse.ArgumentParser], argv: list[str]) -> dict[str, Any]:
    """{dest: value} of the options on the command line only, defaults left out: what a resume compares with
    the run's stored arguments (a flag given with its default value still counts as given)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def stored_arguments(folder: str | Path, missing: str | None, keys: Collection[str] = ()) -> dict[str, Any]:
    """The arguments a run wrote to folder/args.yaml (what a resume continues with). Without that file: a
    ValueError with the message `missing`, or {} when `missing` is None; a file that is no mapping of
    arguments is a ValueError naming it. `keys`: arguments every args.yaml of this tool holds; one that lacks
    any is another tool's run (a search, train_imagenet's for train_cifar), refused with `missing`'s words."""
    from codebase.io import read_yaml

    path = Path(folder) / "args.yaml"
    if not path.is_file():
        if missing is None:
            return {}
        raise ValueError(missing)
    stored = read_yaml(path)
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: corrupt (expected a mapping of arguments)")
    lacking = [key for key in keys if key not in stored]
    if lacking:  # read as this tool's settings, it failed later with a misleading message
        head = (missing or f"{folder}: not a run folder of this tool").split(" (")[0]
        raise ValueError(f"{head} (its args.yaml lacks {', '.join(lacking)}: another tool's run?)")
    return stored


def check_storable(values: dict[str, Any], names: dict[str, str] | None = None) -> None:
    """Before a run's work: a ValueError naming the first flag whose value (`values`: {dest: value} as the run's
    args.yaml will store them, paths made absolute) that file could not hold, a path that is not UTF-8 text. Written
    anyway, every --resume of the run refused its args.yaml as corrupt; write_yaml refuses it too, but later."""
    from codebase.io import NOT_UTF8_HINT, non_utf8_text, shown_text

    names = names or {}
    for dest, value in values.items():
        found = non_utf8_text(value)
        if found is not None:
            raise ValueError(f"{names.get(dest, '--' + dest)} {shown_text(found[1])}: not UTF-8 text, which the run's "
                             f"args.yaml cannot hold (a --resume could not read it back); {NOT_UTF8_HINT}")


def check_stored_types(parser: argparse.ArgumentParser, stored: dict[str, Any], path: str | Path) -> None:
    """A ValueError naming `path` (a run's args.yaml) for a stored value that its flag could not have produced (a
    hand edit, a damaged file): a number for a text flag, text for a number, a switch neither true nor false. A
    resume would otherwise end in a TypeError traceback far from it, or in a misleading message."""
    for action in parser._actions:
        value = stored.get(action.dest)
        if value is None:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise ValueError(f"{path}: corrupt ({action.dest}: {value!r} is not true or false)")
            continue
        if action.type in (None, str) and type(action) is argparse._StoreAction and action.nargs in (None, "?"):
            if not isinstance(value, str):
                raise ValueError(f"{path}: corrupt ({action.dest}: {value!r} is not text)")
            continue
        if action.type not in (int, float):
            continue
        many = action.nargs in ("+", "*")
        values = value if many else [value]
        ok = isinstance(values, list) and all(
            isinstance(v, int if action.type is int else (int, float)) and not isinstance(v, bool) for v in values)
        if not ok:
            noun = "integer" if action.type is int else "number"
            kind = f"a list of {noun}s" if many else f"{'an' if action.type is int else 'a'} {noun}"
            raise ValueError(f"{path}: corrupt ({action.dest}: {value!r} is not {kind})")


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{dest: the option's first long name (`--model-config` for model_config)}: how a message names a flag."""
    return {a.dest: next((o for o in a.option_strings if o.startswith("--")), a.dest) for a in parser._actions}


def same_setting(given: Any, stored: Any, path: bool = False) -> bool:
    """Whether a resume's flag value repeats the run's stored one; a path (`path`) also when typed differently
    (relative, absolute, through a link) for the same existing file."""
    if given == stored:
        return True
    if path and isinstance(given, str) and isinstance(stored, str):
        try:
            return os.path.samefile(given, stored)
        except OSError:  # one of them does not exist: not the same file
            return False
    return False


def changed_settings(given: dict[str, Any], stored: dict[str, Any], free: Collection[str],
                     names: dict[str, str] | None = None,
                     same: Callable[[str, Any, Any], bool] | None = None, paths: Collection[str] = ()) -> list[str]:
    """What a resume's command line (`given`, from flags_given) would change in the run: each flag outside
    `free` whose value differs from the run's (`stored`: its args.yaml over the defaults), as
    `--flag VALUE (the run has STORED)`. A resume refuses these by name: the run's checkpoint (optimizer,
    schedule) would otherwise silently override the new value, or the new value silently mix with the old run.
    Values compare by `same(dest, given, stored)`, else by `same_setting` (the flags in `paths` as paths);
    `names` maps dests to flags (default: --dest)."""
    names = names or {}
    same = same or (lambda key, a, b: same_setting(a, b, path=key in paths))
    return [f"{names.get(k, '--' + k)} {_shown(v)} (the run has {_shown(stored.get(k))})"
            for k, v in given.items() if k not in free and not same(k, v, stored.get(k))]


def check_resume_save(run: str | Path, given: dict[str, Any]) -> None:
    """--resume RUN continues the run in RUN: a --save naming another folder (`given`, from flags_given) is a
    ValueError, not silently ignored."""
    save = given.get("save")
    if save and Path(save).resolve() != Path(run).resolve():
        raise ValueError(f"--resume {run} continues the run in that folder; drop --save {save}")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# the flags that describe an NSGA-Net network (test.py's and train.py's names), shared by every script that builds one
NSGANET_NETWORK_FLAGS = ("arch", "layers", "init_channels", "filter_increment", "SE", "auxiliary")


def add_nsganet_network_args(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """The group of NSGA-Net's network flags (--net_type and NSGANET_NETWORK_FLAGS, with the defaults of its
    published CIFAR-10 model: the NSGANet genome, 20 layers, 34 channels, as its README's commands give them; the
    original validation scripts' own --init_channels default was 32); returned so that a script can add its own."""
    nsga = parser.add_argument_group(title)
    nsga.add_argument("--net_type", choices=("micro", "macro"), help="an NSGA-Net network (micro or macro space)")
    nsga.add_argument("--arch", default="NSGANet", help="published name (NSGANet, DARTS_V2, ...) or a genome JSON file")
    nsga.add_argument("--layers", type=int, default=20)
    nsga.add_argument("--init_channels", type=int, default=34,
                      help="channels of the first cell (34: the published CIFAR-10 model; NSGA-Net's test.py said 32)")
    nsga.add_argument("--filter_increment", type=int, default=4, help="pyramid widening per cell (0: plain)")
    nsga.add_argument("--SE", action="store_true", help="squeeze-and-excitation in every cell")
    nsga.add_argument("--auxiliary", action="store_true", help="the auxiliary head (micro)")
    return nsga


# data-loading processes: each is a full Python process, so a typo such as -j 100000 would exhaust the machine
WORKERS = "[0, 256]"


def check_ranges(args: argparse.Namespace, ranges: dict[str, str], names: dict[str, str] | None = None) -> None:
    """Before any data or weights are read: a ValueError naming the first flag whose value lies outside its
    interval in `ranges` ({dest: "[0, 1)", "(0, inf)", ...}; None values are not checked), instead of the
    library's own message (`Invalid momentum value`, a traceback) after the data set was loaded, or a silently
    odd run (a negative dropout, a negative learning rate in the warm-up)."""
    import math
    import re

    names = names or {}
    for dest, interval in ranges.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", interval)
        if match is None:
            raise AssertionError(f"check_ranges: bad interval {interval!r} for {dest}")
        opening, low, high, closing = match[1], float(match[2]), float(match[3]), match[4]
        inside = (math.isfinite(value) and (value > low or opening == "[" and value == low)
                  and (value < high or closing == "]" and value == high))
        if not inside:
            if math.isinf(high):
                expected = f"must be {'>=' if opening == '[' else '>'} {match[2]}"
            else:
                expected = f"must be in {interval}"
            raise ValueError(f"{names.get(dest, '--' + dest)} {value}: {expected}")


def check_unused(given: dict[str, Any], unused: dict[str, str], names: dict[str, str] | None = None) -> None:
    """A ValueError naming the flags given on the command line (`given`, from flags_given) that have no effect
    in the chosen mode: `unused` maps each such dest to when it applies (`only with --net_type`), so that
    a flag is never silently ignored. The message reads `--layers, --SE only with --net_type: ...`."""
    names = names or {}
    ignored = [(names.get(dest, "--" + dest), why) for dest, why in unused.items() if dest in given]
    if ignored:
        whys = dict.fromkeys(why for _, why in ignored)  # grouped by reason, in order
        parts = [f"{', '.join(flag for flag, w in ignored if w == why)} {why}" for why in whys]
        raise ValueError(f"{'; '.join(parts)}: no effect here (not silently ignored); leave "
                         f"{'it' if len(ignored) == 1 else 'them'} out")
