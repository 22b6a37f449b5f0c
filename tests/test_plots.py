"""Plots of a search (codebase/plots.py, scripts/plot_runs.py): files, common hypervolumes, search hooks."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codebase import plots
from tests.test_post_search import make_run

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_kb=15):
    data = Path(path).read_bytes()
    assert data.startswith(PNG) and len(data) > min_kb * 1024, (path, len(data))


def random_front(n_obj, n=30, seed=0):
    P = np.random.default_rng(seed).random((n, n_obj))
    return P * ([20, 500, 8, 30][:n_obj]) + ([10, 100, 2, 5][:n_obj])


@pytest.mark.parametrize("objectives", [["top1_err", "flops"], ["top1_err", "flops", "params"],
                                        ["top1_err", "flops", "params", "latency_gpu"]])
def test_iteration_plot_for_two_to_four_objectives(tmp_path, objectives):
    make_run(tmp_path / "run", objectives, random_front(len(objectives)), stats_files=False)
    stats = json.loads((tmp_path / "run" / "iter_2.stats").read_text())
    assert_png(plots.plot_iteration(stats, tmp_path / "plots" / "iter_2.png"))
    assert plots.axis_label("latency_gpu") == "GPU latency (ms)" and plots.axis_label("flops") == "FLOPs (M)"


def test_run_plots_hypervolume_and_surrogate(tmp_path):
    make_run(tmp_path / "run", ["top1_err", "flops"], random_front(2), stats_files=False, k=4)
    for k in range(1, 5):  # surrogate quality as the engine writes it from iteration 1 on
        path = tmp_path / "run" / f"iter_{k}.stats"
        stats = json.loads(path.read_text())
        stats["surrogate"].update({"rmse": 1.0 / k, "rho": 0.5 + k / 10, "tau": 0.4 + k / 10})
        path.write_text(json.dumps(stats))
    written = plots.plot_run(tmp_path / "run")
    assert [p.name for p in written] == ["hv.png", "surrogate.png"]
    for p in written:
        assert_png(p)


def test_no_surrogate_plot_without_surrogate_measurements(tmp_path):
    make_run(tmp_path / "run", ["top1_err", "flops"], random_front(2), stats_files=False)  # predictor none
    assert [p.name for p in plots.plot_run(tmp_path / "run")] == ["hv.png"]
    assert not (tmp_path / "run" / "plots" / "surrogate.png").exists()
    with pytest.raises(ValueError, match="no iter_K.stats"):
        plots.plot_run(tmp_path / "empty")


def write_stats(save, k, archive, ref):
    save.mkdir(parents=True, exist_ok=True)
    (save / f"iter_{k}.stats").write_text(json.dumps({
        "iteration": k, "objectives": ["top1_err", "flops"], "archive": [[{"k": k, "i": i}, *f] for i, f in
                                                                         enumerate(archive)],
        "candidates": [], "hv": -1.0, "ref_point": ref, "n_evaluations": len(archive), "surrogate": {}}))


def test_the_hypervolume_legend_covers_no_point(tmp_path, monkeypatch):
    """The README's plot_runs example: a random search is one point at its last evaluation, below the other runs'
    final hypervolume; the legend at "lower right" hid it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    n = np.arange(100, 341, 8)
    curves = [("MSuNAS", n, 4375 + 1211 * np.sqrt((n - 100) / 240)),
              ("NSGA-II", n, 4375 + 483 * ((n - 100) / 240) ** 2), ("random", np.array([340]), np.array([4538.0]))]
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    plots.plot_hypervolume(curves, tmp_path / "hv.png")
    canvas = FigureCanvasAgg(drawn[0])
    canvas.draw()
    (ax,) = drawn[0].axes
    legend = ax.get_legend().get_window_extent(canvas.get_renderer())
    for line in ax.get_lines():
        for x, y in ax.transData.transform(line.get_xydata()):
            assert not legend.contains(x, y), (line.get_label(), ax.transData.inverted().transform((x, y)))


def test_runs_are_compared_against_one_reference_point(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_stats(a, 0, [[1, 3]], [4, 4])
    write_stats(a, 1, [[1, 3], [2, 1]], [4, 4])
    write_stats(b, 0, [[2, 2]], [5, 3])
    curves, ref, names = plots.common_hypervolumes([a, b])
    assert ref.tolist() == [5, 4] and names == ["top1_err", "flops"]
    # by hand against (5, 4): [1,3] -> 4 x 1 = 4; [1,3],[2,1] -> 1 x 1 + 3 x 3 = 10; [2,2] -> 3 x 2 = 6
    assert curves[0][0].tolist() == [1, 2] and curves[0][1].tolist() == pytest.approx([4, 10])
    assert curves[1][1].tolist() == pytest.approx([6])
    assert_png(plots.plot_runs([a, b], tmp_path / "hv.png", ["A", "B"]), min_kb=10)
    with pytest.raises(ValueError, match="2 runs"):
        plots.plot_runs([a, b], tmp_path / "hv.png", ["A"])
    # b's objectives in the other order (--sec_obj given otherwise): was "runs optimised different objectives";
    # its columns, reference point included, are read in a's order and give the same figures by hand
    swapped = tmp_path / "swapped"
    write_stats(swapped, 0, [[2, 1]], [3, 5])  # flops 2, error 1 against (flops 3, error 5)
    stats = json.loads((swapped / "iter_0.stats").read_text())
    (swapped / "iter_0.stats").write_text(json.dumps({**stats, "objectives": ["flops", "top1_err"]}))
    curves, ref, names = plots.common_hypervolumes([a, swapped])
    assert ref.tolist() == [5, 4] and names == ["top1_err", "flops"]
    assert curves[1][1].tolist() == pytest.approx([8])  # (1, 2) against (5, 4): 4 x 2


def test_plot_runs_script(tmp_path):
    runs = []
    for seed, name in enumerate(("msunas", "nsga2", "random")):
        make_run(tmp_path / name, ["top1_err", "flops"], random_front(2, seed=seed), stats_files=False, k=1)
        runs.append(tmp_path / name)
    out = subprocess.run([sys.executable, "scripts/plot_runs.py", *map(str, runs), "--labels", "MSuNAS",
                          "NSGA-II", "random", "--out", str(tmp_path / "cmp.png"), "--each"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert_png(tmp_path / "cmp.png")
    assert_png(tmp_path / "random" / "plots" / "iter_1.png")
    make_run(tmp_path / "params_run", ["top1_err", "params"], random_front(2), stats_files=False)
    out = subprocess.run([sys.executable, "scripts/plot_runs.py", str(runs[0]), str(tmp_path / "params_run")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "runs optimised different objectives" in out.stderr


def test_a_failing_plot_is_a_warning(tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="msunas"):
        plots.after_iteration(tmp_path, {"iteration": 3, "objectives": ["top1_err", "flops"], "archive": "bad"})
        plots.after_run(tmp_path / "missing")
    assert "plot of iteration 3 failed" in caplog.text and "end-of-run plots failed" in caplog.text
    monkeypatch.setenv(plots.PLOTS_ENV, "0")
    make_run(tmp_path / "run", ["top1_err", "flops"], random_front(2), stats_files=False)
    plots.after_run(tmp_path / "run")
    assert not (tmp_path / "run" / "plots").exists()


def test_search_engine_draws_its_plots_and_survives_a_broken_plot(tmp_path, monkeypatch, caplog):
    from codebase.search.engine import MSuNAS, SearchSettings
    from codebase.search.objectives import parse_objectives
    from search_space import OFASearchSpace

    space = OFASearchSpace(kernel_sizes=(3,), expand_ratios=(3,), depths=(2, 3), resolutions=(160, 176))

    class Toy:
        def __init__(self):
            self.space, self.n_classes = space, 10

        def evaluate(self, subnet):
            from codebase.complexity import subnet_complexity

            stats = subnet_complexity(subnet, space.width_mult, 10)
            return {"top1": 50 + 10 * np.log(stats["flops"]), **stats}

    monkeypatch.delenv(plots.PLOTS_ENV, raising=False)
    # predictor none (NSGA-II mating) keeps the surrogates' imports out of this test; surrogate.png is
    # tested on its own above
    settings = SearchSettings(n_doe=10, iterations=1, n_iter=3, predictor="none")
    MSuNAS(tmp_path / "a", space, Toy(), parse_objectives("flops", space, 10), settings).run(progress=False)
    assert sorted(p.name for p in (tmp_path / "a" / "plots").iterdir()) == ["hv.png", "iter_0.png", "iter_1.png"]
    assert_png(tmp_path / "a" / "plots" / "iter_1.png")

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts on this machine")

    monkeypatch.setattr(plots, "plot_iteration", broken)
    settings.iterations = 0  # the initial design is enough to call the hook
    with caplog.at_level(logging.WARNING, logger="msunas"):
        stats = MSuNAS(tmp_path / "b", space, Toy(), parse_objectives("flops", space, 10), settings).run(
            progress=False)
    assert stats["n_evaluations"] == 10 and "no fonts on this machine" in caplog.text


# ---------------------------------------------------------------------------------------- review: defects found
def write_original_stats(save, k, archive, tau):
    """The original msunas.py's iter_K.stats: no objectives, iteration, n_evaluations or ref_point."""
    save.mkdir(parents=True, exist_ok=True)
    (save / f"iter_{k}.stats").write_text(json.dumps({
        "archive": [[{"k": k, "i": i}, *f] for i, f in enumerate(archive)], "candidates": [], "hv": 0.3,
        "surrogate": {"model": "rbf", "name": "rbf", "winner": "rbf", "rmse": 1.0, "rho": 0.9, "tau": tau}}))


def test_runs_of_the_original_tool_are_plotted_and_compared(tmp_path):
    a, old = tmp_path / "a", tmp_path / "original"
    write_stats(a, 0, [[1, 3]], [4, 4])
    write_original_stats(old, 1, [[1, 3], [2, 1]], 0.5)
    write_original_stats(old, 2, [[1, 3], [2, 1], [3, 0.5]], 0.6)
    curves, ref, names = plots.common_hypervolumes([a, old])
    # the original run's reference point, by the engine's rule from its first archive: nadir (2, 3) plus 1 % of
    # the range (1, 2) = (2.01, 3.02); the common one is the worst of (4, 4) and that: (4, 4)
    assert ref.tolist() == pytest.approx([4, 4]) and names == ["top1_err", "flops"]
    # by hand against (4, 4): [1,3],[2,1] -> 1 x 1 + 2 x 3 = 7; plus [3,0.5] -> 1 x 1 + 1 x 3 + 1 x 3.5 = 7.5
    assert curves[1][0].tolist() == [2, 3] and curves[1][1].tolist() == pytest.approx([7, 7.5])
    assert [p.name for p in plots.plot_run(old)] == ["hv.png", "surrogate.png"]
    out = subprocess.run([sys.executable, "scripts/plot_runs.py", str(a), str(old), "--out", str(tmp_path / "c.png"),
                          "--each"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert_png(tmp_path / "c.png", min_kb=10)
    assert_png(old / "plots" / "iter_2.png", min_kb=10)


def test_the_original_tools_surrogate_figures_are_not_called_out_of_sample(tmp_path, monkeypatch):
    """The original msunas.py scored its surrogate on the archive it was fitted on stacked with the candidates:
    surrogate.png titled its figures 'out of sample' (helper-51's audit)."""
    titles = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: titles.append(fig._suptitle.get_text()) or path)
    old = tmp_path / "original"
    write_original_stats(old, 1, [[1, 3], [2, 1]], 0.5)
    plots.plot_surrogate(plots.load_run(old), old / "surrogate.png")
    make_run(tmp_path / "run", ["top1_err", "flops"], random_front(2), stats_files=False)
    for k in (1, 2):
        path = tmp_path / "run" / f"iter_{k}.stats"
        path.write_text(json.dumps({**json.loads(path.read_text()), "surrogate": {"model": "rbf", "tau": 0.5}}))
    plots.plot_surrogate(plots.load_run(tmp_path / "run"), tmp_path / "surrogate.png")
    assert titles == [
        "accuracy surrogate 'rbf', measured on the archive it was fitted on and the new candidates together (the "
        "original tool's figures, mostly in sample)",
        "accuracy surrogate 'rbf', measured on each iteration's new candidates before they were evaluated (out of "
        "sample)"]


@pytest.mark.parametrize("how", ["out_is_a_folder", "stats_without_archive", "bad_option", "out_beneath_a_file",
                                 "out_not_png", "objectives_null", "objectives_not_names", "value_a_string",
                                 "hv_null", "hv_missing", "ref_point_too_short", "ref_point_a_string",
                                 "folder_at_iter_0_png", "folder_at_hv_png", "candidates_a_number",
                                 "candidate_too_short", "iteration_a_path", "n_evaluations_a_string",
                                 "surrogate_a_number", "surrogate_tau_a_string"])
def test_plot_runs_bad_input_is_one_line_exit_2(tmp_path, how):
    """The last twelve were a TypeError / KeyError / IsADirectoryError traceback, a numpy message ("operands could
    not be broadcast together", "inhomogeneous shape") naming no file, or (iteration "/../../x") a plot drawn
    outside RUN/plots."""
    write_stats(tmp_path / "a", 0, [[1, 3]], [4, 4])
    args = [str(tmp_path / "a"), "--each", "--out", str(tmp_path / "hv.png")]
    stats = tmp_path / "a" / "iter_0.stats"
    if how.startswith("folder_at"):  # where --each draws RUN/plots/iter_0.png or RUN/plots/hv.png
        (tmp_path / "a" / "plots" / ("hv.png" if how.endswith("hv_png") else "iter_0.png")).mkdir(parents=True)
    elif how.startswith(("hv_", "ref_point", "candid", "iteration", "n_eval", "surrogate")):
        content = json.loads(stats.read_text())
        if how.startswith("surrogate"):
            content["surrogate"] = 5 if how == "surrogate_a_number" else {"model": "rbf", "tau": "0.9"}
        elif how == "iteration_a_path":
            content["iteration"] = "/../../../x"
        elif how == "n_evaluations_a_string":
            content["n_evaluations"] = "1"
        elif how.startswith("candid"):
            content["candidates"] = 5 if how == "candidates_a_number" else [[{"i": 0}, 1.0]]
        elif how == "hv_null":
            content["hv"] = None
        elif how == "hv_missing":
            del content["hv"]
        elif how.startswith("ref_point"):
            content["ref_point"] = [4] if how == "ref_point_too_short" else "4, 4"
        stats.write_text(json.dumps(content))
    if how == "out_is_a_folder":
        args[-1] = str(tmp_path)
    elif how == "stats_without_archive":
        (tmp_path / "a" / "iter_1.stats").write_text(json.dumps({"hv": 1.0}))
    elif how == "out_beneath_a_file":
        args[-1] = str(stats / "hv.png")
    elif how == "out_not_png":  # it would hold PNG bytes under a .pdf name
        args[-1] = str(tmp_path / "hv.pdf")
    elif how.startswith(("objectives", "value")):
        content = json.loads(stats.read_text())
        if how == "objectives_null":
            content["objectives"] = None
        elif how == "objectives_not_names":
            content["objectives"] = [{"a": 1}, "top1_err"]
        else:
            content["archive"][0][1] = "1"
        stats.write_text(json.dumps(content))
    elif how == "bad_option":
        args.append("--bogus")
    out = subprocess.run([sys.executable, "scripts/plot_runs.py", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr
    assert not (tmp_path / "hv.png").exists() and not (tmp_path / "hv.pdf").exists()
    assert not list(tmp_path.rglob("x.png"))
    if how.startswith(("hv_", "ref_point", "candid", "iteration", "n_eval", "surrogate")):
        assert str(stats) in out.stderr, out.stderr  # names the file to look at


def test_plot_runs_each_draws_nothing_when_the_overlay_is_refused(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("plot_runs", ROOT / "scripts" / "plot_runs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    write_stats(tmp_path / "a", 0, [[1, 3]], [4, 4])
    write_stats(tmp_path / "b", 0, [[2, 2]], [5, 3])
    # was: every run's own plots redrawn into RUN/plots (over the ones there) before --labels was found wrong
    with pytest.raises(ValueError, match="--labels: 1 labels for 2 runs"):
        script.main([str(tmp_path / "a"), str(tmp_path / "b"), "--labels", "A", "--each",
                     "--out", str(tmp_path / "hv.png")])
    assert not (tmp_path / "a" / "plots").exists() and not (tmp_path / "hv.png").exists()
    (tmp_path / "b" / "plots").write_text("mine")
    with pytest.raises(ValueError, match="plots is a file, not a folder"):
        script.main([str(tmp_path / "a"), str(tmp_path / "b"), "--each", "--out", str(tmp_path / "hv.png")])
    assert not (tmp_path / "a" / "plots").exists() and not (tmp_path / "hv.png").exists()


def test_dollar_signs_in_run_names_and_labels_are_drawn_as_text(tmp_path):
    """matplotlib reads $...$ as mathtext: a run folder or --labels like 'r$\\bad$' was a ParseFatalException
    traceback (post_search's choices.png after the export, plot_runs), and the search's own hv.png was lost."""
    run = tmp_path / "r$\\bad$"
    write_stats(run, 0, [[1, 3], [2, 1]], [4, 4])
    write_stats(run, 1, [[1, 3], [2, 1], [1.5, 1.5]], [4, 4])
    assert_png(plots.plot_run(run)[0], min_kb=10)
    assert_png(plots.plot_runs([run], tmp_path / "hv.png", labels=["$\\nope$"]), min_kb=10)
    F = np.array([[1.0, 3.0], [2.0, 1.0]])
    assert_png(plots.plot_choices(F, ["top1_err", "flops"], [0], ["net-flops@3"], tmp_path / "c.png",
                                  title="r$\\bad$/iter_1.stats: 1 chosen"), min_kb=10)


def test_plot_runs_refuses_latencies_from_different_tables(tmp_path):
    """Two searches of accuracy against `lut:` latency, one timed by the Note10 table and one by the i7 table, both
    call the objective 'latency': plot_runs drew their hypervolumes (ms of different devices) as comparable."""
    note10 = Path(ROOT).parent / "shared" / "data" / "ofa" / "note10_lut"
    i7 = Path(ROOT).parent / "shared" / "data" / "luts" / "i7-8700K_lut.yaml"
    runs = {}
    for name, table in (("a", note10), ("b", i7), ("c", note10)):
        write_stats(tmp_path / name, 0, [[30, 20], [25, 40]], [40, 50])
        stats = tmp_path / name / "iter_0.stats"
        stats.write_text(stats.read_text().replace('"flops"', '"latency"'))
        (tmp_path / name / "args.yaml").write_text(f"sec_obj: lut:{table}\nseed: 0\n")
        runs[name] = str(tmp_path / name)

    def plot(*names):
        return subprocess.run([sys.executable, "scripts/plot_runs.py", *(runs[n] for n in names), "--out",
                               str(tmp_path / "hv.png")], cwd=ROOT, capture_output=True, text=True, timeout=120)

    out = plot("a", "b")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"runs timed latency with different tables: {runs['a']} with {note10}, {runs['b']} with {i7}" in out.stderr
    assert not (tmp_path / "hv.png").exists()
    out = plot("a", "c")  # the same table: comparable
    assert out.returncode == 0, out.stderr
    assert_png(tmp_path / "hv.png", min_kb=10)


@pytest.mark.parametrize("objectives", [["top1_err", "flops"], ["top1_err", "flops", "params"],
                                        ["top1_err", "flops", "params", "latency_cpu"]])
def test_the_plot_runs_title_fits_the_figure(tmp_path, monkeypatch, objectives):
    # with 3-4 objectives the first title line ran past both edges of the figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    make_run(tmp_path / "run", objectives, random_front(len(objectives)) * 1000.123, stats_files=False)
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or Path(path))
    plots.plot_runs([tmp_path / "run"], tmp_path / "hv.png")
    canvas = FigureCanvasAgg(drawn[0])
    canvas.draw()
    title = drawn[0].axes[0].title
    box, figure = title.get_window_extent(canvas.get_renderer()), drawn[0].bbox
    assert figure.x0 <= box.x0 and box.x1 <= figure.x1 and box.y1 <= figure.y1, (title.get_text(), box, figure)
    assert ", ".join(objectives) in title.get_text().replace("\n", " ")  # the objectives all named
