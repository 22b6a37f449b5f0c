"""The MSuNAS loop (NSGANetV2), resumable because the files it writes are its only state.

Iteration 0 evaluates the initial design. Iteration K >= 1:
  1. fit the accuracy surrogate (and one per measured objective) on the archive,
  2. run NSGA-II/III on predicted error + exact complexity, started from the archive's front,
  3. drop candidates already in the archive (canonical genomes), pick `n_iter` by subset selection,
  4. write the plan (`iter_K/plan.json`), evaluate each candidate (`iter_K/net_I.subnet`, `.stats`),
  5. write `iter_K.stats` (archive, candidates, hypervolume, out-of-sample surrogate quality: the error model's,
     and under "objectives" each measured latency model's).
Predictions are held to what the objective can be: the error in [0, 100] (%), a measured latency at or above
half the archive's smallest (an rbf extrapolates both beyond, and the searches would chase those values).
With `predictor == "none"` step 1-3 become plain NSGA-II mating on true objectives (population kept
in the stats file), the baseline with the same evaluation budget.

Every random choice of iteration K is seeded from (seed, K), and iteration K reads only
`iter_{K-1}.stats` and its own plan, so a run killed anywhere and resumed ends with the same archive
as an uninterrupted run.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codebase import plots
from codebase.distributed import RankGroup, evaluate_safely
from codebase.evaluators import Evaluator
from codebase.io import not_a_folder, read_json, write_json
from codebase.search import pymoo_adapter
from codebase.search.indicators import hypervolume, nondominated, reference_point
from codebase.search.objectives import ERROR, Objective, complete_stats, objective_values
from codebase.search.subset import select_subset
from search_space.base import SearchSpace, rows_in, unique_rows

log = logging.getLogger("msunas")


@dataclass
class SearchSettings:
    seed: int = 0
    n_doe: int = 100
    iterations: int = 30
    n_iter: int = 8
    predictor: str = "rbf"
    subset: str = "hv_bands"
    inner_pop: int = 100
    inner_gens: int = 50
    candidates: str = "population"  # or "visited": the predicted front of all the inner search saw
    explore: float = 0.0  # > 0: optimise error minus this many predicted std (models with predict_std)
    ref_point: list[float] | None = None


@dataclass
class Archive:
    X: np.ndarray  # (n, n_var) canonical genomes
    F: np.ndarray  # (n, n_obj) true objective values
    subnets: list[dict[str, Any]]


MIN_SURROGATE_POINTS = 5  # fewer successful evaluations than this: random architectures, not a surrogate
ERROR_RANGE = (0.0, 100.0)  # top-1 error in percent (100 - top1, every evaluator's top1 in percent)


@dataclass
class AtLeast:
    """A measured objective's fitted model, its predictions held at or above `floor`: the rbf extrapolated a
    latency of 12.5 ms to -7 ms, and the inner search and the subset selection chased those impossible values."""
    model: Any
    floor: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(np.asarray(self.model.predict(X), dtype=float), self.floor)


def check_ref_point(ref_point: list[float] | None, names: list[str]) -> None:
    """A given hypervolume reference point has one value per objective (msunas.py checks it before writing)."""
    if ref_point is not None and len(ref_point) != len(names):
        raise ValueError(f"--ref_point needs {len(names)} values ({', '.join(names)}), got {len(ref_point)}")
    if ref_point is not None and not np.isfinite(ref_point).all():  # hv would be inf or 0, stats non-standard JSON
        raise ValueError(f"--ref_point needs finite values, got {' '.join(map(str, ref_point))}")


def iteration_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def stats_path(save: Path, k: int) -> Path:
    return save / f"iter_{k}.stats"


def last_complete_iteration(save: Path) -> int:
    """The highest K with an iter_K.stats file, -1 when there is none."""
    done = [int(p.stem.split("_")[1]) for p in save.glob("iter_*.stats") if p.stem.split("_")[1].isdigit()]
    return max(done, default=-1)


class MSuNAS:
    def __init__(self, save: str | Path, space: SearchSpace, evaluator: Evaluator, objectives: list[Objective],
                 settings: SearchSettings, ranks: RankGroup | None = None) -> None:
        self.save, self.space, self.evaluator = Path(save), space, evaluator
        self.ranks = ranks  # rank 0 of a torch.distributed job shares evaluations out; None: all here
        self.objectives, self.s = objectives, settings
        self.names = [o.name for o in objectives]

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool = True, before_iteration: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Iterations from the last complete one to `iterations`; `before_iteration(k)` is called before each of them,
        after the earlier ones' files were read back (a damaged one stops the run before the call)."""
        from tqdm import tqdm

        start = last_complete_iteration(self.save) + 1
        last = None if start == 0 else self._read_stats(start - 1)
        # said now, not as mkdir's traceback after an iteration's evaluations
        for folder in [self.save / "failed", *(self.save / f"iter_{k}" for k in range(start, self.s.iterations + 1))]:
            if not_a_folder(folder):  # a broken link too
                raise ValueError(f"{folder}: a file where the run writes a folder")
        bar = tqdm(total=self.s.iterations + 1, initial=start, desc="msunas", unit="iter", disable=not progress,
                   dynamic_ncols=True)
        shown = warnings.showwarning

        def show_beside_bar(*args: Any, **kwargs: Any) -> None:  # a warning gets a line of its own, not the bar's
            bar.clear()
            shown(*args, **kwargs)
            bar.refresh()

        warnings.showwarning = show_beside_bar
        try:  # closed before an error is printed, which then gets a line of its own
            if last is not None:
                bar.set_postfix(hv=f"{last['hv']:.4g}")
            for k in range(start, self.s.iterations + 1):
                if before_iteration is not None:
                    before_iteration(k)
                last = self.iteration(k, last)
                bar.set_postfix(hv=f"{last['hv']:.4g}", evals=len(last["archive"]))
                bar.update()
        finally:
            warnings.showwarning = shown
            bar.close()
        plots.after_run(self.save)  # never raises
        return last if last is not None else read_json(stats_path(self.save, self.s.iterations))

    def iteration(self, k: int, previous: dict[str, Any] | None) -> dict[str, Any]:
        archive = self._archive(previous)
        plan = self._load_or_make_plan(k, archive, previous)
        X_new, F_new, failed = self._evaluate_plan(k, plan)
        X = np.concatenate([archive.X, X_new]) if len(X_new) else archive.X
        F = np.concatenate([archive.F, F_new]) if len(F_new) else archive.F
        if previous is None:
            check_ref_point(self.s.ref_point, self.names)
            if not len(F) and self.s.ref_point is None:
                raise ValueError(self._all_initial_failed(failed))
            ref = np.asarray(self.s.ref_point if self.s.ref_point is not None else reference_point(F), dtype=float)
        else:
            ref = np.asarray(previous["ref_point"], dtype=float)
        notes = list(plan.get("notes", []))
        if previous is None and len(F) and not (F < ref).all(axis=1).any():
            notes.append(f"no architecture of the initial design lies inside --ref_point {' '.join(map(str, ref))}: "
                         f"the hypervolume is 0 until one does (subset selection falls back to rank and crowding)")
            warnings.warn(notes[-1], stacklevel=2)
        stats = {
            "iteration": k,
            "objectives": self.names,
            "archive": [[self.space.decode(x), *map(float, f)] for x, f in zip(X, F)],
            "candidates": [[self.space.decode(x), *map(float, f)] for x, f in zip(X_new, F_new)],
            "hv": hypervolume(F, ref),
            "ref_point": ref.tolist(),
            "n_evaluations": len(X),
            "failed": failed,
            "surrogate": self._surrogate_quality(plan, X_new, F_new),
            "notes": notes,
        }
        if self.s.predictor == "none":
            stats["population"] = self._next_population(previous, F, len(archive.X))
        write_json(stats_path(self.save, k), stats)
        plots.after_iteration(self.save, stats)  # never raises: a failed plot is a warning
        log.info("iter %d: %d evaluated (%d failed), archive %d, hv %.6g%s", k, len(X_new), len(failed), len(X),
                 stats["hv"], _quality_text(stats["surrogate"]))
        return stats

    def _all_initial_failed(self, failed: list[dict[str, Any]]) -> str:
        """What to do when every evaluation of the initial design raised: no reference point can be derived, and
        a resume skips what failed/ records, so it would stop here again."""
        records = f"{self.save / 'failed'}/iter_0_net_*.json"
        first = " ".join(str(failed[0].get("error", "")).split()) if failed and isinstance(failed[0], dict) else ""
        first = f"the first: {first}; " if first else ""
        return (f"all {len(failed)} evaluations of the initial design failed ({first}see {records} and "
                f"{self.save / 'log.txt'}); a resume re-evaluates nothing and would stop here again: fix the cause, "
                f"delete {records} and run --resume {self.save} to evaluate them again (or start over in a new "
                f"folder)")

    # ------------------------------------------------------------------ state from files
    def _read_stats(self, k: int) -> dict[str, Any]:
        """iter_K.stats, checked to hold what the next iteration reads; a ValueError naming the file if not."""
        path = stats_path(self.save, k)
        stats = read_json(path)
        if isinstance(stats, dict) and "objectives" in stats and stats["objectives"] != self.names:
            # not a corrupt file: the search's settings disagree with it (its ref_point length was said first)
            raise ValueError(f"{path}: the run's objectives {stats['objectives']} differ from this search's "
                             f"{self.names} (its args.yaml changed after the run began?)")
        try:
            if not isinstance(stats, dict):
                raise ValueError("not a JSON object")
            needed = ["archive", "hv", "ref_point", "objectives"]
            needed += ["population"] if self.s.predictor == "none" else []
            missing = [key for key in needed if key not in stats]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
            if not isinstance(stats["hv"], (int, float)):
                raise ValueError("hv is not a number")
            if np.asarray(stats["ref_point"], dtype=float).shape != (len(self.names),):
                raise ValueError(f"ref_point needs {len(self.names)} values")
            if not isinstance(stats["archive"], list):
                raise ValueError("archive is not a list")
            # the archive is all a resume keeps: one cut short would silently drop evaluations
            if "n_evaluations" in stats and len(stats["archive"]) != stats["n_evaluations"]:
                raise ValueError(f"archive holds {len(stats['archive'])} entries, n_evaluations says "
                                 f"{stats['n_evaluations']}")
            if any(not isinstance(entry, list) or len(entry) != 1 + len(self.names) for entry in stats["archive"]):
                raise ValueError(f"each archive entry needs a subnet and {len(self.names)} objective values")
            archive = self._archive(stats)
            if not np.isfinite(archive.F).all():  # null or NaN: the surrogate's fit would fail without naming the file
                raise ValueError("an archive objective value is not a finite number")
            n = len(archive.X)
            if "population" in stats and not all(isinstance(i, int) and 0 <= i < n for i in stats["population"]):
                raise ValueError("population holds an index outside the archive")
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise ValueError(f"{path}: corrupt iteration stats ({' '.join(str(e).split())})") from None
        return stats

    def _archive(self, previous: dict[str, Any] | None) -> Archive:
        if previous is None:
            return Archive(np.zeros((0, self.space.n_var), dtype=int), np.zeros((0, len(self.names))), [])
        if previous.get("objectives") != self.names:
            raise ValueError(f"the run's objectives {previous.get('objectives')} differ from {self.names}")
        subnets = [entry[0] for entry in previous["archive"]]
        X = np.array([self.space.encode(s) for s in subnets], dtype=int).reshape(-1, self.space.n_var)
        F = np.array([entry[1:] for entry in previous["archive"]], dtype=float).reshape(-1, len(self.names))
        return Archive(X, F, subnets)

    def _load_or_make_plan(self, k: int, archive: Archive, previous: dict[str, Any] | None) -> dict[str, Any]:
        path = self.save / f"iter_{k}" / "plan.json"
        if path.exists():
            plan = self._checked_plan(path)
            log.info("iter %d: resuming its plan of %d candidates", k, len(plan["genomes"]))
            return plan
        rng = np.random.default_rng(iteration_seed(self.s.seed, k))
        if k == 0:
            plan = {"genomes": self.space.initialize(self.s.n_doe, rng).tolist()}
        elif self.s.predictor == "none":
            plan = self._plan_nsga2(k, archive, previous, rng)
        else:
            plan = self._plan_surrogate(k, archive, np.asarray(previous["ref_point"], dtype=float), rng)
        write_json(path, plan)
        return plan

    def _checked_plan(self, path: Path) -> dict[str, Any]:
        """A stored plan.json, checked to hold genomes of the space; a ValueError naming the file if not."""
        plan = read_json(path)
        try:
            if not isinstance(plan, dict) or not isinstance(plan.get("genomes"), list):
                raise ValueError("no list of genomes")
            X = np.array(plan["genomes"])
            if len(X) and (X.ndim != 2 or X.shape[1] != self.space.n_var or X.dtype.kind not in "iu"):
                raise ValueError(f"genomes must be lists of {self.space.n_var} integers")
            if len(X) and ((X < self.space.xl) | (X > self.space.xu)).any():
                raise ValueError("a genome lies outside the search space")
            predicted = plan.get("predicted", [[0.0] * len(self.names)] * len(X))
            if len(predicted) != len(X) or any(len(row) != len(self.names) for row in predicted):
                raise ValueError(f"predicted needs {len(self.names)} values per genome")
            if any(not isinstance(v, (int, float)) or isinstance(v, bool) for row in predicted for v in row):
                # each objective's column is compared with the evaluations: said now, not after them
                raise ValueError("predicted values must be numbers")
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: corrupt plan ({' '.join(str(e).split())})") from None
        return plan

    # ------------------------------------------------------------------ planning
    def _plan_surrogate(self, k: int, archive: Archive, ref_point: np.ndarray,
                        rng: np.random.Generator) -> dict[str, Any]:
        seed = iteration_seed(self.s.seed, k)
        notes = []
        if len(archive.X) < MIN_SURROGATE_POINTS:  # most of the initial design failed: nothing to fit yet
            X_plan = self._random_unique(self.s.n_iter, archive.X, rng)
            notes.append(f"iter {k}: only {len(archive.X)} successful evaluations, too few to fit a surrogate; "
                         f"evaluating {len(X_plan)} random architectures instead")
            log.warning(notes[-1])
            return {"genomes": X_plan.tolist(), "notes": notes, "model": None}
        models = self._fit_models(archive.X, archive.F, seed)
        X_plan = self._surrogate_picks(models, archive, self.s.n_iter, ref_point, seed)
        if len(X_plan) < self.s.n_iter:
            extra = self._random_unique(self.s.n_iter - len(X_plan), np.concatenate([archive.X, X_plan]), rng)
            notes.append(f"iter {k}: only {len(X_plan)} new candidates from the surrogate search; "
                         f"topped up with {len(extra)} random architectures")
            log.warning(notes[-1])
            X_plan = np.concatenate([X_plan, extra])
        model = models[0]
        return {"genomes": X_plan.tolist(), "predicted": self._predict(models, X_plan).tolist(), "notes": notes,
                "model": self.s.predictor, "winner": getattr(model, "winner", None)}

    def _fit_models(self, X: np.ndarray, F: np.ndarray, seed: int) -> dict[int, Any]:
        """One surrogate per measured objective (the chosen predictor for the error, rbf for the rest)."""
        from acc_predictor import get_acc_predictor

        models = {}
        for j, o in enumerate(self.objectives):
            if o.kind == "measured":
                name = self.s.predictor if o.name == ERROR else "rbf"
                models[j] = get_acc_predictor(name, search_space=self.space, seed=seed).fit(X, F[:, j])
                if o.name != ERROR:  # a latency: positive, say no less than half the fastest measured
                    lowest = float(F[:, j].min())
                    models[j] = AtLeast(models[j], min(0.5 * lowest, lowest))  # never above a measured value
        return models

    def _predict(self, models: dict[int, Any], X: np.ndarray, explore: float = 0.0) -> np.ndarray:
        cols = [models[j].predict(X) if j in models else o.compute(X) for j, o in enumerate(self.objectives)]
        F = np.column_stack(cols).astype(float)
        if explore > 0 and hasattr(models[0], "predict_std"):  # lower confidence bound of the error
            F[:, 0] -= explore * models[0].predict_std(X)
        F[:, 0] = np.clip(F[:, 0], *ERROR_RANGE)  # a tiny design's model predicted -26.5 %
        return F

    def _surrogate_picks(self, models: dict[int, Any], archive: Archive, n: int, ref_point: np.ndarray,
                         seed: int) -> np.ndarray:
        """Up to n new genomes: inner search on the surrogates from the archive's front, then subset selection."""
        def optimistic(X: np.ndarray) -> np.ndarray:
            return self._predict(models, X, self.s.explore)

        front = archive.X[nondominated(archive.F)]
        visited = self.s.candidates == "visited"
        X_inner, F_inner = pymoo_adapter.minimize(self.space, optimistic, len(self.objectives), front,
                                                  self.s.inner_pop, self.s.inner_gens, seed, visited=visited)
        keep = unique_rows(X_inner)
        X_inner, F_inner = X_inner[keep], F_inner[keep]
        new = ~rows_in(X_inner, archive.X)
        cands, F_cands = X_inner[new], F_inner[new]
        if visited:  # the best few predicted fronts of everything seen, as many as a population
            cands = cands[pymoo_adapter.survivors(F_cands, self.s.inner_pop, seed)]
        chosen = select_subset(self.s.subset, optimistic(cands), archive.F, n, ref_point)
        return cands[chosen]

    def _plan_nsga2(self, k: int, archive: Archive, previous: dict[str, Any], rng: np.random.Generator) -> dict:
        pop = np.asarray(previous["population"], dtype=int)
        seed = iteration_seed(self.s.seed, k)
        X_plan = np.zeros((0, self.space.n_var), dtype=int)
        for attempt in range(20):  # mate until n_iter children are new, as far as mating finds them
            children = pymoo_adapter.offspring(self.space, archive.X[pop], archive.F[pop], self.s.n_iter,
                                               seed + attempt)
            children = children[unique_rows(children)]
            seen = np.concatenate([archive.X, X_plan])
            X_plan = np.concatenate([X_plan, children[~rows_in(children, seen)]])[: self.s.n_iter]
            if len(X_plan) == self.s.n_iter:
                break
        notes = []
        if len(X_plan) < self.s.n_iter:
            extra = self._random_unique(self.s.n_iter - len(X_plan), np.concatenate([archive.X, X_plan]), rng)
            notes.append(f"iter {k}: mating produced {len(X_plan)} new architectures; added {len(extra)} random")
            X_plan = np.concatenate([X_plan, extra])
        return {"genomes": X_plan.tolist(), "notes": notes}

    def _next_population(self, previous: dict[str, Any] | None, F: np.ndarray, n_old: int) -> list[int]:
        """NSGA-II (NSGA-III for 3+ objectives) survival of the previous population plus this iteration's
        children (archive indices)."""
        pool = np.arange(len(F)) if previous is None else np.r_[previous["population"], np.arange(n_old, len(F))]
        pool = pool.astype(int)
        kept = pymoo_adapter.survivors(F[pool], self.s.n_doe, seed=self.s.seed, by_reference_directions=True)
        return pool[kept].tolist()

    def _random_unique(self, n: int, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((0, self.space.n_var), dtype=int)
        for _ in range(100):
            if len(out) >= n:
                break
            X = self.space.sample(2 * n, rng)
            X = X[unique_rows(X)]
            X = X[~rows_in(X, np.concatenate([exclude, out]))]
            out = np.concatenate([out, X])
        return out[:n]

    # ------------------------------------------------------------------ evaluation
    def _evaluate_plan(self, k: int, plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        folder = self.save / f"iter_{k}"
        values: dict[int, list[float]] = {}
        failures: dict[int, dict[str, Any]] = {}
        pending = []
        for i, genome in enumerate(plan["genomes"]):
            stats_file, fail_file = folder / f"net_{i}.stats", self.save / "failed" / f"iter_{k}_net_{i}.json"
            if stats_file.exists():
                stats = read_json(stats_file)
                try:
                    values[i] = objective_values(self.objectives, stats)
                except (ValueError, TypeError) as e:  # naming the file, not only the missing key
                    raise ValueError(f"{stats_file}: corrupt ({' '.join(str(e).split())})") from None
            elif fail_file.exists():
                failures[i] = read_json(fail_file)
            else:
                pending.append((i, self.space.decode(np.asarray(genome, dtype=int))))
        subnets = dict(pending)
        for i, stats, error in self._evaluate_pending(folder, pending):
            if error is None:
                try:
                    stats = complete_stats(self.objectives, stats, np.asarray(plan["genomes"][i]))
                    values[i] = objective_values(self.objectives, stats)
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
            if error is not None:  # the search goes on; the failure is kept with its error text
                failures[i] = {"iteration": k, "index": i, "subnet": subnets[i], "error": error}
                write_json(self.save / "failed" / f"iter_{k}_net_{i}.json", failures[i])
                log.warning("iter %d net %d failed: %s", k, i, error)
                continue
            write_json(folder / f"net_{i}.stats", stats)
        ok = sorted(values)  # plan order, however many processes evaluated it
        X = np.array([plan["genomes"][i] for i in ok], dtype=int).reshape(-1, self.space.n_var)
        F = np.array([values[i] for i in ok], dtype=float).reshape(-1, len(self.names))
        return X, F, [failures[i] for i in sorted(failures)]

    def _evaluate_pending(self, folder: Path, pending: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple]:
        """(index, stats, error text) per pending candidate; its net_I.subnet is written before it is
        evaluated. With several ranks the candidates are shared out and the outcomes gathered here."""
        if self.ranks is None:
            for i, subnet in pending:
                write_json(folder / f"net_{i}.subnet", subnet)
                yield (i, *evaluate_safely(self.evaluator.evaluate, subnet))
            return
        for i, subnet in pending:
            write_json(folder / f"net_{i}.subnet", subnet)
        if pending:
            yield from self.ranks.evaluate(self.evaluator.evaluate, pending)

    def _surrogate_quality(self, plan: dict[str, Any], X_new: np.ndarray, F_new: np.ndarray) -> dict[str, Any]:
        """The error model's out-of-sample rmse, rho and tau (and the reason where one is null); with measured
        latencies, theirs under "objectives" (plan.json's "predicted" holds every objective's prediction)."""
        out: dict[str, Any] = {"model": plan.get("model"), "winner": plan.get("winner")}
        if "predicted" not in plan:  # no surrogate this iteration (initial design, NSGA-II, too few to fit)
            return out
        predicted = {tuple(g): p for g, p in zip(plan["genomes"], plan["predicted"])}
        pred = np.array([predicted[tuple(x.tolist())] for x in X_new], dtype=float).reshape(-1, len(self.names))
        n_planned = len(plan["genomes"])
        out.update(model_quality(pred[:, 0], F_new[:, 0], n_planned))
        others = {o.name: model_quality(pred[:, j], F_new[:, j], n_planned)
                  for j, o in enumerate(self.objectives) if j and o.kind == "measured"}
        if others:
            out["objectives"] = others
        return out


def model_quality(pred: np.ndarray, truth: np.ndarray, n_planned: int) -> dict[str, Any]:
    """rmse, rho and tau of out-of-sample predictions; too few points for a measure, or an undefined one, is null
    with the reason, never a missing key."""
    if len(truth) == 0:
        return {"rmse": None, "rho": None, "tau": None, "reason": f"no new evaluation returned ({n_planned} failed)"}
    if len(truth) == 1:
        return {"rmse": float(np.sqrt(np.mean((pred - truth) ** 2))), "rho": None, "tau": None,
                "reason": "1 new evaluation: rank correlations need at least 2"}
    from acc_predictor import correlation

    # an undefined correlation (constant predictions or truth) is null, not JSON's non-standard NaN, with the reason
    out = {k: float(v) if np.isfinite(v) else None for k, v in correlation(pred, truth).items()}
    if None in out.values():
        which = "true values" if np.ptp(truth) == 0 else "predictions" if np.ptp(pred) == 0 else "values"
        out["reason"] = f"the new evaluations' {which} are all equal: rank correlation undefined"
    return out


def _quality_text(q: dict[str, Any]) -> str:
    if "tau" not in q:
        return ""
    tau, rmse = ("undefined" if q[k] is None else f"{q[k]:.3f}" for k in ("tau", "rmse"))
    others = "".join(f", {name} tau {'undefined' if o['tau'] is None else format(o['tau'], '.3f')}"
                     for name, o in q.get("objectives", {}).items())
    return f", surrogate tau {tau} rmse {rmse}{others}"
