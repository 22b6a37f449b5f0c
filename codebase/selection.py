"""Choosing architectures from a finished search: preferences (ASF), trade-off (knee) points, export.

All objectives are minimised, as in `iter_K.stats`; "top1_err" is 100 - top-1 accuracy.

Preference (`top1#80+flops#150`): the user's aspiration point z (accuracy turned into error) is
reached for by the augmented achievement scalarising function (Wierzbicki)

    asf(f) = max_{i named} (f_i - z_i) / s_i  +  1e-6 * sum_i (f_i - z_i) / s_i,

where s_i = max - min of objective i over the run's whole archive, so that one MFLOP and one
percent of error weigh by how much the run could move them. The smallest asf over the
non-dominated front wins. An objective the preference leaves out (params in a three-objective run
asked for `top1#80+flops#150`) does not matter, except through the tiny sum term, where it is
measured from its best value in the archive: among otherwise equal choices the better one wins.
A preference names at least two objectives; with one, the choice would be its plain minimum.

Trade-off (no preference): the marginal trade-off of front member i (Rachmawati and Zhang's
knee measure, the idea behind pymoo's HighTradeoffPoints) is

    mu(i) = min over other front members j of  sum_m max(0, f_m(j) - f_m(i)) / sum_m max(0, f_m(i) - f_m(j))

in objectives normalised to [0, 1] over the front: what you lose when you move from i to j, per
unit you gain. A knee has a large mu: every move away from it costs much more than it brings.
Members whose mu is a local maximum among their front neighbours (with two objectives the members
just before and after along the front; with more, the 2 (m - 1) nearest) come first (so that the
picks are different knees, not one knee and its neighbours), then the rest, each by decreasing mu.
Members of equal mu (a straight front has no knee: every mu is 1) are spread over the front: the one
nearest their middle first, then each farthest from the picks before it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codebase.io import not_a_folder, read_json, temporaries_of, write_json
from codebase.search.indicators import nondominated

ERROR = "top1_err"
UNITS = {"top1_err": "%", "flops": "M", "flops_ofa": "M", "params": "M", "latency": "ms", "latency_cpu": "ms",
         "latency_gpu": "ms"}
# names a preference may use for each objective of a run (msunas.py's --sec_obj spellings too)
ALIASES = {"top1": ERROR, "top1_err": ERROR, "flops": "flops", "flops_ofa": "flops_ofa", "params": "params",
           "latency": "latency", "latency_cpu": "latency_cpu", "latency_gpu": "latency_gpu", "cpu": "latency_cpu",
           "gpu": "latency_gpu"}
ASF_AUGMENTATION = 1e-6


# ---------------------------------------------------------------------------------------- the run
@dataclass
class SearchResult:
    """The archive of one `iter_K.stats`: subnets (opaque JSON) and their objective vectors."""

    objectives: list[str]
    subnets: list[Any]
    F: np.ndarray  # (n, n_obj), minimised
    run_dir: Path
    notes: list[str] = field(default_factory=list)  # what the user should know about how the file was read

    @property
    def front(self) -> np.ndarray:
        """Indices of the non-dominated archive members."""
        return nondominated(self.F)

    @property
    def most_accurate(self) -> int:
        """Index of the lowest error; among equal errors the non-dominated one."""
        front = self.front
        return int(front[np.argmin(self.F[front, self.objectives.index(ERROR)])])


def load_search_result(path: str | Path) -> SearchResult:
    """Read an `iter_K.stats` file; ValueError naming what is wrong with it."""
    path = Path(path)
    stats = read_json(path)
    notes = []
    if isinstance(stats, dict) and "objectives" not in stats and legacy_archive(stats.get("archive")):
        stats = {**stats, "objectives": list(LEGACY_OBJECTIVES)}
        notes.append(f"{path.name} names no objectives (the original tool's format): read as "
                     f"[subnet, {', '.join(LEGACY_OBJECTIVES)}]")
    if not isinstance(stats, dict) or "archive" not in stats or "objectives" not in stats:
        raise ValueError(f"{path}: not an iter_K.stats file (needs 'objectives' and 'archive')")
    names = check_objectives(stats["objectives"], path)
    archive = stats["archive"]
    if not archive:
        raise ValueError(f"{path}: the archive is empty")
    F = archive_values(archive, names, path)
    return SearchResult(names, [entry[0] for entry in archive], F, path.parent, notes)


# an objective's name becomes part of a folder name (net-flops@300): a plain word, never a path
OBJECTIVE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_objectives(names: Any, path: Path) -> list[str]:
    """The `objectives` of an iter_K.stats: 2 to 4 distinct plain names including top1_err; ValueError
    naming the file otherwise (a hand-edited or foreign file must not crash or write outside --save)."""
    if not isinstance(names, list) or not all(isinstance(n, str) and OBJECTIVE_NAME.fullmatch(n) for n in names):
        raise ValueError(f"{path}: 'objectives' must be a list of objective names such as "
                         f"[\"{ERROR}\", \"flops\"], found {json.dumps(names)}")
    if ERROR not in names or not 2 <= len(names) <= 4 or len(set(names)) != len(names):
        raise ValueError(f"{path}: expected 2 to 4 different objectives including '{ERROR}', found {names}")
    return list(names)


def archive_values(archive: Any, names: list[str], path: Path, what: str = "archive") -> np.ndarray:
    """The (n, n_obj) objective values of archive entries [subnet, v1, v2, ...]; ValueError naming the file
    (and `what`: "archive" or "candidates") for a wrong shape or a value that is not a finite number (JSON
    strings and booleans are refused, not converted)."""
    if not isinstance(archive, list) or any(not isinstance(e, list) or len(e) != len(names) + 1 for e in archive):
        raise ValueError(f"{path}: {what} entries must be [subnet, {', '.join(names)}]")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for e in archive for v in e[1:]):
        raise ValueError(f"{path}: the {what}'s objective values must be numbers")
    try:
        F = np.array([e[1:] for e in archive], dtype=float).reshape(-1, len(names))
    except OverflowError:  # a JSON integer beyond float's range
        F = np.full((1, len(names)), np.inf)
    if not np.all(np.isfinite(F)):
        raise ValueError(f"{path}: the {what} holds non-finite objective values")
    return F


# the original tool's iter_K.stats had no "objectives": its archive entries were [subnet, top1_err, sec_obj],
# and its post_search.py took sec_obj to be FLOPs (net-flops@<value>)
LEGACY_OBJECTIVES = [ERROR, "flops"]


def legacy_archive(archive: Any) -> bool:
    """True for a non-empty archive of [subnet, top1_err, sec_obj] entries (the original tool's)."""
    return isinstance(archive, list) and bool(archive) and all(isinstance(e, list) and len(e) == 3 for e in archive)


# ---------------------------------------------------------------------------------------- preferences
def parse_preference(spec: str, objectives: list[str]) -> dict[str, float]:
    """`top1#80+flops#150` -> {"top1_err": 20.0, "flops": 150.0} in the run's (minimised) objectives."""
    known = ", ".join(sorted(a for a, name in ALIASES.items() if name in objectives))
    out: dict[str, float] = {}
    for part in str(spec).split("+"):
        name, sep, value = (t.strip() for t in part.partition("#"))
        if not sep or not value:
            raise ValueError(f"--prefer: '{part}' needs a value, as in 'flops#150' (format name#value+name#value)")
        if name not in ALIASES:
            raise ValueError(f"--prefer: unknown objective '{name}'; this run has: {known}")
        target = ALIASES[name]
        if target not in objectives:
            raise ValueError(f"--prefer: the run did not optimise '{name}'; its objectives are {objectives} "
                             f"(names you may use: {known})")
        if target in out:
            raise ValueError(f"--prefer: '{target}' is given twice")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--prefer: '{value}' in '{part}' is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"--prefer: '{part}' is not a finite number")
        if target == ERROR and not 0 <= number <= 100:  # a typo (top1#800) silently meant "the most accurate"
            raise ValueError(f"--prefer: '{part}': {name} is a percentage, from 0 to 100")
        if target == ERROR and 0 < number <= 1 and name == "top1":
            raise ValueError(f"--prefer: '{part}': top1 is in percent (top1#80 asks for 80%), not a fraction")
        if number < 0:
            raise ValueError(f"--prefer: '{part}': {name} cannot be negative")
        out[target] = 100.0 - number if name == "top1" else number
    if len(out) < 2:
        raise ValueError(f"--prefer: name at least two objectives (e.g. top1#80+flops#150); with only "
                         f"'{next(iter(out))}' the choice would simply be its smallest value")
    return out


def aspiration_point(preference: dict[str, float], objectives: list[str]) -> np.ndarray:
    """The preference as a point in objective space; NaN where the preference says nothing."""
    return np.array([preference.get(name, np.nan) for name in objectives], dtype=float)


def objective_scale(F: np.ndarray) -> np.ndarray:
    """max - min of each objective over the archive (1 where every value is the same)."""
    span = F.max(axis=0) - F.min(axis=0)
    return np.where(span > 0, span, 1.0)


def asf(F: np.ndarray, z: np.ndarray, scale: np.ndarray, ideal: np.ndarray | None = None) -> np.ndarray:
    """Augmented achievement scalarising function of each row of F toward the aspiration point z;
    NaN entries of z are left out of the max and measured from `ideal` (default: F's minimum) in
    the augmentation term."""
    F = np.atleast_2d(np.asarray(F, dtype=float))
    named = ~np.isnan(z)
    if not named.any():
        raise ValueError("the preference names no objective")
    ideal = F.min(axis=0) if ideal is None else ideal
    D = (F - np.where(named, z, ideal)) / scale
    return D[:, named].max(axis=1) + ASF_AUGMENTATION * D.sum(axis=1)


# ---------------------------------------------------------------------------------------- trade-off
def normalise(F: np.ndarray) -> np.ndarray:
    lo = F.min(axis=0)
    span = F.max(axis=0) - lo
    return (F - lo) / np.where(span > 0, span, 1.0)


def trade_off(F: np.ndarray) -> np.ndarray:
    """mu(i) of each member of a non-dominated set (module docstring); inf for a lone member."""
    N = normalise(np.asarray(F, dtype=float))
    D = N[None, :, :] - N[:, None, :]  # D[i, j] = f(j) - f(i)
    loss = np.clip(D, 0, None).sum(axis=2)
    gain = np.clip(-D, 0, None).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gain > 0, loss / np.where(gain > 0, gain, 1.0), np.inf)  # no gain: not a move
    return ratio.min(axis=1) if len(N) > 1 else np.full(len(N), np.inf)


def knee_order(F: np.ndarray) -> np.ndarray:
    """Indices of a non-dominated set, highest trade-off first; local maxima of mu before the rest."""
    F = np.asarray(F, dtype=float)
    mu = trade_off(F)
    n, m = F.shape
    if n <= 2:
        return np.argsort(-mu, kind="stable")
    if m == 2:  # the neighbours along the front (sorted by the first objective), whatever their distance
        along = np.argsort(F[:, 0], kind="stable")
        position = np.empty(n, dtype=int)
        position[along] = np.arange(n)
        neighbours = [along[[p for p in (position[i] - 1, position[i] + 1) if 0 <= p < n]] for i in range(n)]
    else:  # the 2 (m - 1) nearest front members, in normalised objectives
        N = normalise(F)
        dist = np.linalg.norm(N[:, None, :] - N[None, :, :], axis=2)
        np.fill_diagonal(dist, np.inf)
        neighbours = list(np.argsort(dist, axis=1, kind="stable")[:, :min(n - 1, 2 * (m - 1))])
    # equal up to rounding: on a straight front every mu is 1 give or take 1e-16, which decided local maxima and order
    mu = np.where(np.isfinite(mu), np.round(mu, 9), mu)
    local_max = np.array([mu[i] >= mu[neighbours[i]].max() for i in range(n)])
    # sort key: local maxima first, then decreasing mu; ties by index, then spread along the front
    order = _spread_ties(np.lexsort((np.arange(n), -mu, ~local_max)), mu, local_max, normalise(F))
    return _apart_from_earlier(order, local_max, neighbours)


def _apart_from_earlier(order: np.ndarray, local_max: np.ndarray, neighbours: list[np.ndarray]) -> np.ndarray:
    """`order` with each member after the knees taken only once no member that is not a neighbour of an earlier
    pick is left: asked for more picks than there are knees, the next was often the sharpest knee's neighbour."""
    out = [int(i) for i in order if local_max[i]]
    rest = [int(i) for i in order if not local_max[i]]
    near = {j for i in out for j in neighbours[i]}
    while rest:
        pick = next((i for i in rest if i not in near), rest[0])
        out.append(pick)
        rest.remove(pick)
        near.update(int(j) for j in neighbours[pick])
    return np.asarray(out, dtype=int)


def _spread_ties(order: np.ndarray, mu: np.ndarray, local_max: np.ndarray, N: np.ndarray) -> np.ndarray:
    """`order` with each run of members of equal mu (and equal local-maximum status) reordered to spread over the
    front: with no knee to tell them apart (a straight front) the first picks were the archive's first members,
    often neighbours. A run's first member is the one nearest its centre when nothing was picked before it; each
    next is the one farthest from every earlier pick (normalised objectives; ties by the order given)."""
    out: list[int] = []
    key = list(zip(mu[order], local_max[order]))
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and key[end] == key[start]:
            end += 1
        group = [int(i) for i in order[start:end]]
        while group:
            G = N[group]
            if out:
                far = np.linalg.norm(G[:, None, :] - N[out][None, :, :], axis=2).min(axis=1)
                pick = group[int(np.argmax(far))]
            else:
                pick = group[int(np.argmin(np.linalg.norm(G - G.mean(axis=0), axis=1)))]
            out.append(pick)
            group.remove(pick)
        start = end
    return np.asarray(out, dtype=int)


# ---------------------------------------------------------------------------------------- choosing
@dataclass
class Choice:
    index: int  # in the archive
    reason: str  # "preference", "trade-off" or "most accurate"
    score: float  # asf (smaller is closer) or mu (larger is a sharper knee)


def choose(result: SearchResult, n: int, preference: dict[str, float] | None = None) -> tuple[list[Choice], list[str]]:
    """`n` front members by preference (ASF) or trade-off, plus the most accurate one when not already
    among them (the original tool's rule). Returns the choices and notes for the user."""
    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    front = result.front
    notes = []
    if len(front) < n:
        notes.append(f"the non-dominated front has only {len(front)} architecture(s); choosing all of them")
    F = result.F[front]
    if preference is not None:
        z = aspiration_point(preference, result.objectives)
        scores = asf(F, z, objective_scale(result.F), ideal=result.F.min(axis=0))
        order = np.lexsort((np.arange(len(F)), scores))
        reason = "preference"
    else:
        scores = trade_off(F)
        order = knee_order(F)
        reason = "trade-off"
    choices = [Choice(int(front[i]), reason, float(scores[i])) for i in order[:n]]
    best = result.most_accurate
    if best not in {c.index for c in choices}:
        i = int(np.flatnonzero(front == best)[0])
        choices.append(Choice(best, "most accurate", float(scores[i])))
        notes.append(f"added the most accurate architecture, which the {reason} did not choose")
    return choices, notes


# ---------------------------------------------------------------------------------------- export
def format_value(value: float) -> str:
    """Short and readable: 225, 23, 5.1, 0.48."""
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"


def folder_names(result: SearchResult, indices: list[int]) -> list[str]:
    """`net-<second objective>@<value>` per chosen architecture, made unique with -2, -3, ..."""
    name = result.objectives[1]
    col = result.F[:, 1]
    out: list[str] = []
    for i in indices:
        base = f"net-{name}@{format_value(col[i])}"
        candidate, k = base, 2
        while candidate in out:
            candidate, k = f"{base}-{k}", k + 1
        out.append(candidate)
    return out


def subnet_key(subnet: Any) -> str:
    return json.dumps(subnet, sort_keys=True)


def evaluation_stats_index(run_dir: Path) -> dict[str, Path]:
    """subnet (canonical JSON) -> its `iter_K/net_I.stats`, for every evaluation in the run folder."""
    index: dict[str, Path] = {}
    for subnet_file in sorted(run_dir.glob("iter_*/net_*.subnet")):
        stats_file = subnet_file.with_suffix(".stats")
        if not stats_file.is_file():
            continue  # failed or interrupted evaluation
        try:
            index.setdefault(subnet_key(read_json(subnet_file)), stats_file)
        except ValueError:
            continue  # a corrupt leftover does not stop the export
    return index


def stats_from_objectives(objectives: list[str], values: np.ndarray) -> dict[str, float]:
    """net.stats built from archive values when the evaluation's own file is missing."""
    out = {}
    for name, v in zip(objectives, values):
        if name == ERROR:
            out["top1"] = 100.0 - float(v)
        else:
            out[name] = float(v)
    return out


def architecture_stats(result: SearchResult, index: int, found: dict[str, Path]) -> dict[str, Any]:
    """net.stats of archive member `index`: its evaluation's iter_K/net_I.stats (all it measured), else the
    archive's values. A corrupt evaluation file is a warning, not the end of the export: the archive holds
    the objective values."""
    path = found.get(subnet_key(result.subnets[index]))
    if path is not None:
        try:
            stats = read_json(path)
            if isinstance(stats, dict):
                return stats
            raise ValueError(f"{path}: not a stats file (expected a JSON object)")
        except ValueError as e:
            warnings.warn(f"{e}; its net.stats holds the archive's objective values instead", stacklevel=2)
    return stats_from_objectives(result.objectives, result.F[index])


Exporter = Callable[[Any, Path], None]


WEIGHT_FILES = ("net.config", "net.inherited")  # what the exporter adds
EXPORT_FILES = ("net.subnet", "net.stats", *WEIGHT_FILES)  # what an export writes into its folder


def export_architecture(subnet: Any, stats: dict[str, Any], folder: str | Path,
                        exporter: Exporter | None = None) -> Path:
    """Write `net.subnet` and `net.stats` into folder; `exporter(subnet, folder)` adds net.config and
    net.inherited (supernet weights) when given. Without one, those of an earlier export into the same
    folder (another architecture, perhaps) are removed, so that they never sit beside this net.subnet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if exporter is None:
        for stale in WEIGHT_FILES:
            (folder / stale).unlink(missing_ok=True)
    write_json(folder / "net.subnet", subnet)
    write_json(folder / "net.stats", stats, indent=2)
    if exporter is not None:
        exporter(subnet, folder)
    return folder


SUMMARY_FILES = ("choices.json", "choices.png")  # what post_search writes into --save itself


def check_export_targets(out: str | Path, names: list[str]) -> None:
    """Before anything is written: ValueError naming the first path where the export into `out` (pick folders
    `names`) would find a file where it makes a folder or a folder where it writes a file; was a traceback
    after choices.json (or every pick) had been written."""
    out = Path(out)
    for name in names:
        if not_a_folder(out / name):  # a dangling link too
            raise ValueError(f"--save: {out / name} is a file, where the folder of a chosen architecture goes; "
                             "move it away or choose another --save")
    files = [out / f for f in SUMMARY_FILES] + [out / name / f for name in names for f in EXPORT_FILES]
    for path in files:
        if path.is_dir():
            raise ValueError(f"--save: {path} is a folder, where post_search writes a file; move it away or "
                             "choose another --save")
    listed = set(earlier_picks(out) or ())
    for name in names:  # e.g. a published model's folder (net-flops@N) of the original tool: its weights are the user's
        found = [f for f in EXPORT_FILES if name not in listed and (out / name / f).exists()]
        if found:
            raise ValueError(f"--save: {out / name} holds {', '.join(found)}, which no earlier post_search export "
                             f"into {out} wrote (its choices.json does not list the folder), and this export would "
                             "replace or remove them; move them away or choose another --save")


def remove_export_temporaries(out: str | Path, names: list[str]) -> None:
    """Remove the temporaries an interrupted export left in `out` and in its pick folders `names` (atomic_write's,
    of post_search's own files only, never the user's): a re-run rewrites those files anyway."""
    out = Path(out)
    for folder, written in [(out, SUMMARY_FILES), *((out / name, EXPORT_FILES) for name in names)]:
        for file in written:
            for path in temporaries_of(folder, file):
                path.unlink(missing_ok=True)


def _pick_folder_name(name: Any) -> bool:
    """Whether name can be a folder that folder_names made: one plain path component `net-...`."""
    return isinstance(name, str) and name.startswith("net-") and "/" not in name and "\\" not in name \
        and Path(name).name == name


def earlier_picks(out: str | Path) -> list[str] | None:
    """The pick folders an earlier post_search run into `out` listed in its choices.json (none without one);
    None when that file is unreadable."""
    path = Path(out) / "choices.json"
    if not path.is_file():
        return []
    try:
        folders = [c["folder"] for c in json.loads(path.read_text())["choices"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError):
        return None
    return [f for f in folders if isinstance(f, str)]


def remove_stale_picks(out: str | Path, keep: list[str]) -> list[str]:
    """Before a new export into out: remove the folders that an earlier post_search run listed in
    out/choices.json and that are not chosen again (`keep`), so no stale pick sits beside the new ones.

    Only what an export writes (EXPORT_FILES) is deleted, and a folder only once it is empty: a folder
    post_search did not list, or a file it did not write, is never touched. Returns one note per folder."""
    out = Path(out)
    folders = earlier_picks(out)
    if folders is None:
        return [f"{out / 'choices.json'}: unreadable, so earlier picks (if any) were left in place"]
    notes = []
    for name in dict.fromkeys(f for f in folders if _pick_folder_name(f) and f not in keep):
        folder = out / name
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            for file in EXPORT_FILES:
                if (folder / file).is_file() or (folder / file).is_symlink():
                    (folder / file).unlink()
            remove_export_temporaries(out, [name])  # a kill mid-write left one: it is no file of the user's
            others = sorted(p.name for p in folder.iterdir())
            if not others:
                folder.rmdir()
        except OSError as e:
            notes.append(f"could not remove {folder} (an earlier pick): {e.strerror or e}")
            continue
        if others:
            notes.append(f"kept {folder} (an earlier pick) for files post_search did not write: {', '.join(others)}")
        else:
            notes.append(f"removed {folder}: an earlier pick into this --save, not chosen now")
    return notes
