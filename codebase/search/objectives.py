"""The objectives of a search: top-1 error first, then the `--sec_obj` list.

Two kinds:
- exact: computed from the genome in closed form for any number of architectures (flops, params,
  latency from a look-up table); the inner search uses the true values.
- measured: only an evaluation knows them (latency measured on this machine's cpu or gpu); the
  inner search uses a surrogate fitted on the archive, like the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search_space.base import SearchSpace

ERROR = "top1_err"
MEASURED = {"cpu": "latency_cpu", "gpu": "latency_gpu"}
OBJECTIVE_HELP = ("flops, params, flops_ofa (OFA spaces), cpu, gpu, lut:PATH, "
                  "or a comma-separated list of 1 to 3 of them")


@dataclass
class Objective:
    name: str  # the key in net.stats and in iter_K.stats "objectives"
    kind: str  # "exact" or "measured"
    compute: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)


def complexity_function(space: SearchSpace, n_classes: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Genomes -> {"params": M, "flops": M, ...} in closed form for the space."""
    if space.name == "ofa":
        from codebase.complexity import genome_complexity, to_millions

        def ofa(X: np.ndarray) -> dict[str, np.ndarray]:
            c = to_millions(genome_complexity(space, np.atleast_2d(X), n_classes))
            return {k: np.atleast_1d(v) for k, v in c.items()}

        return ofa
    compute = getattr(space, "complexity", None)
    if compute is None:
        raise ValueError(f"search space '{space.name}' has no complexity function")

    def other(X: np.ndarray) -> dict[str, np.ndarray]:
        c = compute(np.atleast_2d(X), n_classes=n_classes)  # (n, 2): params, flops
        return {"params": c[:, 0], "flops": c[:, 1]}

    return other


def objective_names(spec: str) -> list[str]:
    """The `--sec_obj` list as names, whitespace stripped: "flops, cpu" -> ["flops", "cpu"]."""
    return [s.strip() for s in str(spec).split(",") if s.strip()]


def measured_devices(spec: str) -> tuple[str, ...]:
    """The devices whose latency the evaluator must measure for `spec` ("cpu", "gpu")."""
    names = objective_names(spec)
    return tuple(device for device in MEASURED if device in names)


def objective_keys(spec: str) -> list[str]:
    """[top1_err] + the stats key of each objective named in `spec` (what net.stats and iter_K.stats call
    them), without building anything: a ValueError for a spec no search could use (an unknown name, a
    latency table that is not there, too many or repeated objectives). A search checks this first, before
    it trains a supernet or writes a file."""
    names = objective_names(spec)
    if not 1 <= len(names) <= 3:
        raise ValueError(f"--sec_obj: expected {OBJECTIVE_HELP}; got '{spec}'")
    tables = [name for name in names if name.startswith("lut:")]
    if len(tables) > 1:  # each gives the stats key "latency"; said before loading either
        raise ValueError(f"--sec_obj: one latency table per search: {' and '.join(map(repr, tables))} both give "
                         f"'latency'")
    keys = [ERROR]
    for name in names:
        if name in ("flops", "params", "flops_ofa"):
            keys.append(name)
        elif name in MEASURED:
            keys.append(MEASURED[name])
        elif name.startswith("lut:"):
            from codebase.latency import LatencyTable

            if not name[4:].strip():  # an empty path would load the current folder's tables
                raise ValueError("--sec_obj lut: needs the latency table's path, e.g. lut:PATH")
            LatencyTable.load(name[4:])  # a missing or malformed table is its own error line
            keys.append("latency")
        else:
            raise ValueError(f"--sec_obj: unknown objective '{name}'; expected {OBJECTIVE_HELP}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"--sec_obj: an objective is named twice in '{spec}'")
    return keys


def parse_objectives(spec: str, space: SearchSpace, n_classes: int) -> list[Objective]:
    """[top1_err] + the objectives named in `spec` (e.g. "flops", "flops,lut:note10_lut")."""
    keys = objective_keys(spec)  # the spec checked: count, unknown or repeated names, tables
    out = [Objective(ERROR, "measured")]
    complexity = None
    for name, key in zip(objective_names(spec), keys[1:]):
        if key == "latency":
            out.append(Objective(key, "exact", _lut_objective(name[4:], space, n_classes)))
        elif key in MEASURED.values():
            out.append(Objective(key, "measured"))
        else:  # flops, params, flops_ofa: closed form
            if key == "flops_ofa" and space.name != "ofa":
                raise ValueError(f"--sec_obj flops_ofa: OFA's FLOPs convention exists for OFA spaces only, "
                                 f"not '{space.name}'; use flops")
            complexity = complexity or complexity_function(space, n_classes)
            out.append(Objective(key, "exact", lambda X, key=key, c=complexity: c(X)[key]))
    return out


def _lut_objective(path: str, space: SearchSpace, n_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    from codebase.latency import LatencyTable

    if space.name != "ofa":
        raise ValueError(f"--sec_obj lut: latency tables describe OFA MobileNetV3 layers, not '{space.name}'")
    table = LatencyTable.load(path)

    def latency(X: np.ndarray) -> np.ndarray:
        return table.predict_genomes(np.atleast_2d(X), space, n_classes=n_classes)

    table.check_covers(space, n_classes)  # fail now, naming a missing key, not mid-search
    return latency


def complete_stats(objectives: list[Objective], stats: dict[str, Any], genome: np.ndarray) -> dict[str, Any]:
    """`stats` plus the exact objectives an evaluator does not report (a look-up-table latency),
    computed from the genome, so that net.stats holds every objective of the run."""
    missing = {o.name: o for o in objectives if o.kind == "exact" and o.name not in stats}
    if not missing:
        return stats
    row = np.atleast_2d(np.asarray(genome, dtype=int))
    return {**stats, **{name: float(np.asarray(o.compute(row))[0]) for name, o in missing.items()}}


def objective_values(objectives: list[Objective], stats: dict[str, Any]) -> list[float]:
    """One evaluation's objective vector from its net.stats."""
    values = []
    for o in objectives:
        if o.name == ERROR:
            if "top1" not in stats:
                raise ValueError("evaluation returned no 'top1'")
            values.append(100.0 - float(stats["top1"]))
        elif o.name not in stats:
            raise ValueError(f"evaluation returned no '{o.name}'")
        else:
            values.append(float(stats[o.name]))
    # a NaN or infinity in the archive would make the reference point NaN and every later surrogate fit raise:
    # such an evaluation fails (recorded in failed/), the search goes on
    bad = [o.name for o, v in zip(objectives, values) if not np.isfinite(v)]
    if bad:
        raise ValueError(f"evaluation's {', '.join(bad)} is not a finite number")
    return values
