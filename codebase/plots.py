"""Pictures of a search: the archive and its front per iteration, hypervolume, surrogate quality,
the chosen architectures, and several runs on one hypervolume axis.

matplotlib's object interface only (Figure, no pyplot): no display, no global backend state, safe
inside a search process. Every PNG is written atomically.
"""

from __future__ import annotations

import io
import json
import logging
import os
import textwrap
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from codebase.io import atomic_write, read_json
from codebase.search.indicators import hypervolume, nondominated, reference_point

log = logging.getLogger("msunas")

LABELS = {
    "top1_err": "top-1 error (%)",
    "flops": "FLOPs (M)",
    "flops_ofa": "FLOPs, conv + linear (M)",
    "params": "parameters (M)",
    "latency": "latency, look-up table (ms)",
    "latency_cpu": "CPU latency (ms)",
    "latency_gpu": "GPU latency (ms)",
}
ARCHIVE_STYLE = {"s": 14, "color": "0.65", "alpha": 0.7, "linewidths": 0}
FRONT_COLOR = "tab:blue"
NEW_COLOR = "tab:orange"


def axis_label(name: str) -> str:
    return LABELS.get(name, name)


def _plain(text: str) -> str:
    """Text drawn as it is: matplotlib reads $...$ as mathtext, and a run folder or label such as r$\\x$ made it
    raise (ParseFatalException) instead of drawing."""
    return str(text).replace("$", r"\$")


def _figure(n_panels: int) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(max(6.4, 5.2 * cols), 4.6 * rows), layout="tight")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Render to PNG in memory, then write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()), mode="wb")


def _panels(names: Sequence[str]) -> list[tuple[int, int]]:
    """(x, y) objective pairs: error on y against each other objective first, then the other pairs."""
    pairs = list(combinations(range(len(names)), 2))
    return [(j, i) if i == 0 else (i, j) for i, j in pairs]


def _draw_front(ax: Any, F: np.ndarray, x: int, y: int, two_objectives: bool, label: str = "non-dominated") -> None:
    P = F[np.argsort(F[:, x], kind="stable")]
    if two_objectives:  # the attained front as a staircase
        ax.step(P[:, x], P[:, y], where="post", color=FRONT_COLOR, lw=1.2, alpha=0.8)
    ax.scatter(P[:, x], P[:, y], s=26, color=FRONT_COLOR, label=label, zorder=3)


# ---------------------------------------------------------------------------------------- per iteration
def plot_iteration(stats: dict[str, Any], path: str | Path) -> Path:
    """Archive (grey), its non-dominated front (blue) and the iteration's new candidates (orange rings)."""
    names = list(stats["objectives"])
    F = np.array([e[1:] for e in stats["archive"]], dtype=float).reshape(-1, len(names))
    C = np.array([e[1:] for e in stats.get("candidates", [])], dtype=float).reshape(-1, len(names))
    front = F[nondominated(F)]
    pairs = _panels(names)
    fig, axes = _figure(len(pairs))
    for ax, (x, y) in zip(axes, pairs):
        ax.scatter(F[:, x], F[:, y], label=f"archive ({len(F)})", **ARCHIVE_STYLE)
        _draw_front(ax, front, x, y, len(names) == 2, label=f"non-dominated ({len(front)})")
        if len(C):
            ax.scatter(C[:, x], C[:, y], s=70, facecolors="none", edgecolors=NEW_COLOR, linewidths=1.6,
                       label=f"new in iteration {stats.get('iteration', '?')} ({len(C)})", zorder=4)
        ax.set_xlabel(axis_label(names[x]))
        ax.set_ylabel(axis_label(names[y]))
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, framealpha=0.9)
    fig.suptitle(f"iteration {stats.get('iteration', '?')}: {stats.get('n_evaluations', len(F))} evaluations, "
                 f"hypervolume {stats.get('hv', float('nan')):.4g}")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- whole run
def load_run(save: str | Path) -> list[dict[str, Any]]:
    """Every `iter_K.stats` of a run folder, by K; ValueError when there is none. The original tool's files
    (no objectives, iteration, n_evaluations or ref_point) are read too: see `complete_stats`."""
    save = Path(save)
    files = [p for p in save.glob("iter_*.stats") if p.stem.split("_", 1)[1].isdigit()]
    if not files:
        raise ValueError(f"{save}: no iter_K.stats files (not a search run folder?)")
    return [complete_stats(read_json(p), p) for p in sorted(files, key=lambda p: int(p.stem.split("_", 1)[1]))]


def complete_stats(stats: Any, path: Path) -> dict[str, Any]:
    """An `iter_K.stats` with what the original tool's lacked filled in: objectives [top1_err, flops] (as its
    post_search.py assumed), the iteration from the file name, n_evaluations from the archive. ValueError
    naming the file for one that is no iter_K.stats."""
    from codebase.selection import LEGACY_OBJECTIVES, archive_values, check_objectives, legacy_archive

    if not isinstance(stats, dict) or not isinstance(stats.get("archive"), list) or not stats["archive"]:
        raise ValueError(f"{path}: not an iter_K.stats file (needs a non-empty 'archive')")
    if "objectives" not in stats and not legacy_archive(stats["archive"]):
        raise ValueError(f"{path}: not an iter_K.stats file (needs 'objectives')")
    out = {"objectives": list(LEGACY_OBJECTIVES), "iteration": int(path.stem.split("_", 1)[1]),
           "n_evaluations": len(stats["archive"]), **stats, "original_tool": "objectives" not in stats}
    names = check_objectives(out["objectives"], path)
    archive_values(out["archive"], names, path)  # the checks post_search makes
    archive_values(out.get("candidates", []), names, path, "candidates")  # plot_iteration draws them
    quality = out.get("surrogate")  # plot_surrogate draws tau, rho and rmse (None: undefined, as the engine writes)
    if quality is not None and not (isinstance(quality, dict) and all(
            isinstance(quality.get(k), (int, float, type(None))) and not isinstance(quality.get(k), bool)
            for k in ("tau", "rho", "rmse"))):
        raise ValueError(f"{path}: 'surrogate' must be an object whose tau, rho and rmse are numbers, found "
                         f"{json.dumps(quality)}")
    for key in ("iteration", "n_evaluations"):  # iteration names a plot (iter_K.png): never a path
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 0:
            raise ValueError(f"{path}: '{key}' must be a whole number, found {json.dumps(out[key])}")
    # what the plots compute with: was a TypeError traceback (hv null), a KeyError (no hv) or numpy's "operands
    # could not be broadcast" naming no file (a ref_point of the wrong length)
    if not _finite_number(out.get("hv")):
        raise ValueError(f"{path}: 'hv' must be a finite number, found {json.dumps(out.get('hv'))}")
    ref = out.get("ref_point")
    if ref is not None and not (isinstance(ref, list) and len(ref) == len(names) and all(map(_finite_number, ref))):
        raise ValueError(f"{path}: 'ref_point' must be {len(names)} finite numbers (one per objective), "
                         f"found {json.dumps(ref)}")
    return out


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_run_plot_files(save: str | Path) -> None:
    """ValueError naming a folder that stands where plot_iteration / plot_run would write a run's PNG (was an
    IsADirectoryError traceback after the other plots were drawn)."""
    folder = Path(save) / "plots"
    names = ["hv.png", "surrogate.png", *(f"iter_{s['iteration']}.png" for s in load_run(save))]
    for path in (folder / name for name in names):
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, where a plot goes; move it away")


def objective_values(stats: dict[str, Any]) -> np.ndarray:
    """The archive's objective vectors, (n, n_obj)."""
    return np.array([e[1:] for e in stats["archive"]], dtype=float).reshape(-1, len(stats["objectives"]))


def run_reference_point(run: list[dict[str, Any]]) -> np.ndarray:
    """The run's hypervolume reference point; for a file without one (the original tool's), the engine's
    rule applied to the run's first archive (its nadir pushed out by 1 % of the range)."""
    if run[0].get("ref_point") is not None:
        return np.asarray(run[0]["ref_point"], dtype=float)
    return reference_point(objective_values(run[0]))


def plot_hypervolume(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path,
                     title: str = "hypervolume") -> Path:
    """curves: (label, number of evaluations, hypervolume) per run."""
    fig, (ax,) = _figure(1)
    for label, n, hv in curves:
        ax.plot(n, hv, marker="o", ms=3.5, lw=1.5, label=_plain(label))
    ax.set_xlabel("evaluated architectures")
    ax.set_ylabel("hypervolume (larger is better)")
    ax.set_title(_plain(title), fontsize=10)
    ax.grid(True, alpha=0.3)
    # where it covers no point: at "lower right" it hid a run drawn as one point at the end (random search, whose
    # 340 evaluations are one iteration, in the README's plot_runs example)
    ax.legend(loc="best", fontsize=9)
    return save_figure(fig, path)


def plot_surrogate(runs: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Rank correlation (Kendall's tau, Spearman's rho) and RMSE of the accuracy surrogate's
    out-of-sample predictions, per iteration; None (nothing written) when the run has no surrogate
    measurements (iteration 0 only, or predictor none)."""
    from matplotlib.ticker import MaxNLocator

    rows = [(s["iteration"], s["surrogate"]) for s in runs if "tau" in (s.get("surrogate") or {})]
    if not rows:
        return None
    k = np.array([r[0] for r in rows])
    fig, (ax, ax_rmse) = _figure(2)
    ax.plot(k, [r[1]["tau"] for r in rows], marker="o", ms=4, label="Kendall's tau")
    ax.plot(k, [r[1].get("rho", np.nan) for r in rows], marker="s", ms=3, lw=1, alpha=0.7, label="Spearman's rho")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
    ax.set_ylabel("rank correlation, predicted vs. true error")
    ax.legend(loc="lower right", fontsize=9)
    ax_rmse.plot(k, [r[1].get("rmse", np.nan) for r in rows], marker="o", ms=4, color="tab:red")
    ax_rmse.set_ylim(0, None)
    ax_rmse.set_ylabel("RMSE of predicted top-1 error (%)")
    for a in (ax, ax_rmse):
        a.set_xlabel("iteration")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(True, alpha=0.3)
    model = rows[-1][1].get("model") or "?"
    # the original msunas.py scored its fit on the archive it was fitted on, stacked with the new candidates
    how = ("on the archive it was fitted on and the new candidates together (the original tool's figures, mostly "
           "in sample)" if any(s.get("original_tool") for s in runs) else
           "on each iteration's new candidates before they were evaluated (out of sample)")
    fig.suptitle(f"accuracy surrogate '{_plain(model)}', measured {how}", fontsize=10)
    return save_figure(fig, path)


def plot_run(save: str | Path) -> list[Path]:
    """`plots/hv.png` and `plots/surrogate.png` (when the run has a surrogate) of a run folder."""
    save = Path(save)
    runs = load_run(save)
    n = np.array([s["n_evaluations"] for s in runs])
    ref_point = run_reference_point(runs)
    # a file without its reference point (the original tool's) has a differently normalised hv: recompute it
    hv = np.array([s["hv"] if s.get("ref_point") is not None else hypervolume(objective_values(s), ref_point)
                   for s in runs])
    ref = ", ".join(f"{v:.4g}" for v in ref_point)
    title = f"{save.name}: hypervolume of ({', '.join(runs[-1]['objectives'])})\nreference point ({ref})"
    out = [plot_hypervolume([(save.name, n, hv)], save / "plots" / "hv.png", title)]
    surrogate = plot_surrogate(runs, save / "plots" / "surrogate.png")
    return out + ([surrogate] if surrogate else [])


# ---------------------------------------------------------------------------------------- several runs
def common_hypervolumes(saves: Sequence[str | Path]) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray,
                                                                list[str]]:
    """Each run's hypervolume per iteration, recomputed from its archives against one reference point
    (the worst of the runs' reference points) so that the curves are comparable."""
    runs = [load_run(s) for s in saves]
    names = [list(r[-1]["objectives"]) for r in runs]
    for save, n in zip(saves, names):
        if sorted(n) != sorted(names[0]):
            raise ValueError(f"runs optimised different objectives: {saves[0]} has {names[0]}, {save} has {n}; "
                             "their hypervolumes cannot be compared")
    # the same objectives in another order (--sec_obj params,flops against flops,params): columns put in the first's
    orders = [[n.index(name) for name in names[0]] for n in names]
    ref = np.max([run_reference_point(r)[order] for r, order in zip(runs, orders)], axis=0)
    curves = []
    for run, order in zip(runs, orders):
        n = np.array([s["n_evaluations"] for s in run])
        hv = np.array([hypervolume(objective_values(s)[:, order], ref) for s in run])
        curves.append((n, hv))
    return curves, ref, names[0]


TITLE_WIDTH = 72  # characters per line of a one-panel figure's 10-point title (6.4 inches wide, with a margin)


def plot_runs(saves: Sequence[str | Path], path: str | Path, labels: Sequence[str] | None = None) -> Path:
    if labels is not None and len(labels) != len(saves):
        raise ValueError(f"--labels: {len(labels)} labels for {len(saves)} runs")
    labels = list(labels) if labels is not None else [Path(s).name for s in saves]
    curves, ref, names = common_hypervolumes(saves)
    ref_text = ", ".join(f"{v:.4g}" for v in ref)
    # wrapped, not broken at a fixed place: with 3-4 objectives the first line ran past both edges of the figure
    title = textwrap.fill(f"hypervolume of ({', '.join(names)}), recomputed for every run against one reference "
                          f"point, the worst of the runs' own: ({ref_text})", TITLE_WIDTH, break_on_hyphens=False)
    return plot_hypervolume([(lab, n, hv) for lab, (n, hv) in zip(labels, curves)], path, title)


# ---------------------------------------------------------------------------------------- chosen architectures
def plot_choices(F: np.ndarray, names: Sequence[str], chosen: Sequence[int], labels: Sequence[str],
                 path: str | Path, aspiration: np.ndarray | None = None, title: str = "") -> Path:
    """The archive, its front, and the chosen members marked and labelled (plus the preference point)."""
    F = np.asarray(F, dtype=float)
    front = F[nondominated(F)]
    pairs = _panels(names)
    fig, axes = _figure(len(pairs))
    for ax, (x, y) in zip(axes, pairs):
        ax.scatter(F[:, x], F[:, y], label="archive", **ARCHIVE_STYLE)
        _draw_front(ax, front, x, y, len(names) == 2)
        ax.scatter(F[chosen, x], F[chosen, y], s=110, marker="*", color="tab:red", edgecolors="k", linewidths=0.6,
                   label="chosen", zorder=5)
        rank = np.argsort(np.argsort(F[list(chosen), x], kind="stable"))
        for n, i, text in zip(rank, chosen, labels):
            offset = (8, 6) if n % 2 == 0 else (-8, -16)  # alternate along x: neighbours stay readable
            ax.annotate(_plain(text), (F[i, x], F[i, y]), xytext=offset, textcoords="offset points", fontsize=8,
                        ha="left" if n % 2 == 0 else "right",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "alpha": 0.85}, zorder=6)
        if aspiration is not None:
            _draw_aspiration(ax, aspiration[x], aspiration[y])
        ax.set_xlabel(axis_label(names[x]))
        ax.set_ylabel(axis_label(names[y]))
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, framealpha=0.9)
    if title:
        fig.suptitle(_plain(title))
    return save_figure(fig, path)


def _draw_aspiration(ax: Any, x: float, y: float) -> None:
    """The preference: a cross where both values are given, a dashed line where one is (NaN: none)."""
    style = {"color": "tab:green", "zorder": 5}
    if not np.isnan(x) and not np.isnan(y):
        ax.scatter([x], [y], s=80, marker="X", alpha=0.8, label="preference", **style)
    elif not np.isnan(x):
        ax.axvline(x, ls="--", lw=1.2, label="preference", **style)
    elif not np.isnan(y):
        ax.axhline(y, ls="--", lw=1.2, label="preference", **style)


# ---------------------------------------------------------------------------------------- search hooks
PLOTS_ENV = "NSGANETV2_PLOTS"  # "0": the search draws nothing (saves about a second per run in tests)


def _search_plots_enabled() -> bool:
    return os.environ.get(PLOTS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def after_iteration(save: str | Path, stats: dict[str, Any]) -> None:
    """`plots/iter_K.png` for the search engine; a plotting error is a warning, never a failed search."""
    if not _search_plots_enabled():
        return
    try:
        plot_iteration(stats, Path(save) / "plots" / f"iter_{stats['iteration']}.png")
    except Exception as e:  # plots are a convenience: the search must go on
        log.warning("plot of iteration %s failed: %s: %s", stats.get("iteration"), type(e).__name__, e)


def after_run(save: str | Path) -> None:
    """`plots/hv.png` and `plots/surrogate.png` at the end of a search; errors are warnings."""
    if not _search_plots_enabled():
        return
    try:
        plot_run(save)
    except Exception as e:  # plots are a convenience: the search must go on
        log.warning("end-of-run plots failed: %s: %s", type(e).__name__, e)
