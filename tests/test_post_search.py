"""Choosing architectures (codebase/selection.py, post_search.py): preferences, ASF, knees, export."""

import json
import re
import subprocess
import sys
import types
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from codebase import selection
from codebase.selection import (
    SearchResult,
    asf,
    choose,
    export_architecture,
    folder_names,
    format_value,
    knee_order,
    parse_preference,
    trade_off,
)
from tests.data_fixtures import unwritable_folder

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def make_run(save, objectives, F, subnets=None, stats_files=True, k=2):
    """A search run folder by hand: iter_0..iter_k.stats (the archive grows by one per iteration after
    the first) and iter_K/net_I.{subnet,stats}, as msunas.py writes them."""
    save = Path(save)
    F = np.asarray(F, dtype=float)
    subnets = subnets if subnets is not None else [{"id": i, "ks": [3] * (i % 4 + 1)} for i in range(len(F))]
    n0 = len(F) - k
    ref = (F.max(axis=0) + 1).tolist()
    made = []
    for it in range(k + 1):
        new = range(0, n0) if it == 0 else range(n0 + it - 1, n0 + it)
        for i, j in enumerate(new):
            if stats_files:
                (save / f"iter_{it}").mkdir(parents=True, exist_ok=True)
                (save / f"iter_{it}" / f"net_{i}.subnet").write_text(json.dumps(subnets[j]))
                net = {"top1": 100 - F[j, 0], "loss": 0.5 + j, "top5": 99.0}
                net.update({name: float(F[j, c]) for c, name in enumerate(objectives) if c > 0})
                (save / f"iter_{it}" / f"net_{i}.stats").write_text(json.dumps(net))
        upto = n0 + it if it else n0
        entries = [[subnets[j], *F[j].tolist()] for j in range(upto)]
        made.append({"iteration": it, "objectives": objectives, "archive": entries,
                     "candidates": [[subnets[j], *F[j].tolist()] for j in new], "hv": float(it), "ref_point": ref,
                     "n_evaluations": upto, "surrogate": {"model": "rbf", "winner": None}, "failed": [],
                     "notes": []})
        save.mkdir(parents=True, exist_ok=True)
        (save / f"iter_{it}.stats").write_text(json.dumps(made[-1]))
    (save / "args.yaml").write_text("search_space: ofa\ndataset: digits\nwidth_mult: 1.2\nn_classes: 10\n")
    return save / f"iter_{k}.stats"


def result_of(F, objectives=("top1_err", "flops")):
    F = np.asarray(F, dtype=float)
    return SearchResult(list(objectives), [{"i": i} for i in range(len(F))], F, Path("."))


# ---------------------------------------------------------------------------------------- preferences
@pytest.mark.parametrize("spec, objectives, expected", [
    ("top1#80+flops#150", ["top1_err", "flops"], {"top1_err": 20.0, "flops": 150.0}),
    (" top1 # 80 + flops#150 ", ["top1_err", "flops"], {"top1_err": 20.0, "flops": 150.0}),  # spaces
    ("flops#150+top1#76.5", ["top1_err", "flops"], {"top1_err": 23.5, "flops": 150.0}),  # any order
    ("top1_err#25+params#5.5", ["top1_err", "params"], {"top1_err": 25.0, "params": 5.5}),  # error given directly
    ("cpu#12+top1#70", ["top1_err", "latency_cpu"], {"top1_err": 30.0, "latency_cpu": 12.0}),  # --sec_obj alias
    ("params#4+latency#20", ["top1_err", "flops", "params", "latency"], {"params": 4.0, "latency": 20.0}),
])
def test_preference_parsing(spec, objectives, expected):
    assert parse_preference(spec, objectives) == pytest.approx(expected)


@pytest.mark.parametrize("spec, message", [
    ("top1#80+acc#150", "unknown objective 'acc'"),
    ("top1#80+flops", "'flops' needs a value"),
    ("top1#80+flops#", "'flops#' needs a value"),
    ("top1#80+params#5", "the run did not optimise 'params'"),
    ("top1#eighty+flops#150", "'eighty' in 'top1#eighty' is not a number"),
    ("top1#80+top1_err#20", "'top1_err' is given twice"),
    ("flops#150", "name at least two objectives"),
    ("top1#80+flops#inf", "not a finite number"),
    # out of range: each picked "the most accurate" (or the smallest) in silence
    ("top1#800+flops#150", "'top1#800': top1 is a percentage, from 0 to 100"),
    ("top1_err#-5+flops#150", "'top1_err#-5': top1_err is a percentage, from 0 to 100"),
    ("top1#0.8+flops#150", "top1 is in percent (top1#80 asks for 80%), not a fraction"),
    ("top1#80+flops#-150", "'flops#-150': flops cannot be negative"),
])
def test_bad_preferences_name_the_problem(spec, message):
    with pytest.raises(ValueError, match="--prefer: ") as e:
        parse_preference(spec, ["top1_err", "flops"])
    assert message in str(e.value)


def test_asf_by_hand():
    F = np.array([[10.0, 400.0], [20.0, 100.0]])
    z, scale = np.array([15.0, 200.0]), np.array([10.0, 300.0])
    # row 0: (-0.5, 2/3) -> 2/3 + 1e-6 * 1/6; row 1: (0.5, -1/3) -> 0.5 + 1e-6 * 1/6
    assert asf(F, z, scale) == pytest.approx([2 / 3 + 1e-6 / 6, 0.5 + 1e-6 / 6], abs=1e-12)
    # an objective the preference leaves out counts only in the augmentation term, from the ideal
    assert asf(F, np.array([15.0, np.nan]), scale) == pytest.approx([-0.5 + 1e-6 * (-0.5 + 1),
                                                                      0.5 + 1e-6 * (0.5 + 0)], abs=1e-12)


# an obvious front: error falls as FLOPs grow
LINE = [[30, 100], [25, 200], [20, 300], [15, 400], [10, 500]]


@pytest.mark.parametrize("spec, first", [
    ("top1#80+flops#300", 2),  # exactly on a front member
    ("top1#71+flops#210", 1),  # (25, 200) beats the preference in both objectives, by the most
    ("top1#95+flops#50", 2),  # unattainable: where the shortfalls, relative to the ranges (20, 400), balance
    ("flops#480+top1#89", 4),  # order of the names does not matter
])
def test_preference_picks_the_obvious_member(spec, first):
    r = result_of(LINE)
    choices, _ = choose(r, 1, parse_preference(spec, r.objectives))
    assert choices[0].index == first and choices[0].reason == "preference"


def test_preference_n_picks_in_asf_order_and_the_most_accurate_is_added():
    r = result_of(LINE + [[26, 350], [31, 120]])  # two dominated members, never chosen
    choices, notes = choose(r, 2, parse_preference("top1#75+flops#200", r.objectives))
    assert [c.index for c in choices] == [1, 0, 4]  # asf 0, 5/21 (index 0); 1/4 (index 2) comes third
    assert [c.reason for c in choices] == ["preference", "preference", "most accurate"]
    assert any("most accurate" in n for n in notes)
    choices, notes = choose(r, 2, parse_preference("top1#89+flops#480", r.objectives))
    assert [c.index for c in choices] == [4, 3] and not notes  # the most accurate is already there


def test_an_objective_left_out_of_the_preference_does_not_pull_the_choice():
    # three objectives; the user asks for error 20 and 300 MFLOPs and says nothing about params
    F = [[30, 100, 1], [20, 300, 9], [20, 310, 3], [10, 500, 5]]
    r = result_of(F, ("top1_err", "flops", "params"))
    choices, _ = choose(r, 1, parse_preference("top1#80+flops#300", r.objectives))
    assert choices[0].index == 1  # exactly the preference, however many params it has
    # ... but among equals the fewer params win (augmentation term)
    F = [[30, 100, 1], [20, 300, 9], [20, 300, 3], [10, 500, 5]]
    r = result_of(F, ("top1_err", "flops", "params"))
    assert choose(r, 1, parse_preference("top1#80+flops#300", r.objectives))[0][0].index == 2


# ---------------------------------------------------------------------------------------- trade-off
def test_trade_off_by_hand():
    # already normalised; the middle member is a sharp knee: each move away loses 0.9 to gain 0.1
    F = np.array([[0.0, 1.0], [0.1, 0.1], [1.0, 0.0]])
    assert trade_off(F) == pytest.approx([0.1 / 0.9, 0.9 / 0.1, 0.1 / 0.9])


def test_trade_off_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    P = rng.random((30, 3))
    F = P[selection.nondominated(P)] * [100, 500, 7]  # scaling must not matter: mu is computed normalised
    N = (F - F.min(0)) / (F.max(0) - F.min(0))
    expected = []
    for i in range(len(N)):
        ratios = []
        for j in range(len(N)):
            loss = sum(max(0.0, N[j, m] - N[i, m]) for m in range(3))
            gain = sum(max(0.0, N[i, m] - N[j, m]) for m in range(3))
            if j != i and gain > 0:
                ratios.append(loss / gain)
        expected.append(min(ratios))
    assert trade_off(F) == pytest.approx(expected)


def test_knee_of_a_symmetric_convex_front_agrees_with_pymoo():
    from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

    t = np.linspace(0, np.pi / 2, 21)
    F = np.c_[1 - np.sin(t), 1 - np.cos(t)] * [10, 300]
    assert knee_order(F)[0] == 10  # 45 degrees, by symmetry
    assert list(HighTradeoffPoints().do(F / [10, 300])) == [10]  # pymoo's works in the units it is given


def test_two_knees_ranked_by_sharpness():
    # the front bends at (0.1, 0.4) and at (0.6, 0.05); by hand, mu = 1/6, 10/7, 1/4, 7/10, 1/8
    F = np.array([[0, 1], [0.1, 0.4], [0.5, 0.3], [0.6, 0.05], [1, 0]]) * [20, 600] + [10, 100]
    assert trade_off(F) == pytest.approx([1 / 6, 10 / 7, 1 / 4, 7 / 10, 1 / 8])
    r = result_of(F)
    choices, notes = choose(r, 2)
    assert [(c.index, c.reason) for c in choices] == [(1, "trade-off"), (3, "trade-off"), (0, "most accurate")]
    assert choices[0].score == pytest.approx(10 / 7)


def test_knee_picks_prefer_distinct_knees_over_neighbours_of_one():
    # a smooth knee on a hyperbola, then a second bend at (0.55, ~0.03); the smooth knee's neighbours have
    # higher mu than the second bend, but the second pick should be another knee, not a neighbour
    x = np.linspace(0, 0.5, 11)
    smooth = np.c_[x, 0.05 / (x + 0.05)]
    F = np.concatenate([smooth, [[0.55, smooth[-1, 1] - 0.06], [1.0, smooth[-1, 1] - 0.07]]])
    assert len(selection.nondominated(F)) == len(F)
    mu = trade_off(F)
    order = knee_order(F)
    assert list(order[:2]) == [4, 11]  # (0.2, 0.2), where the hyperbola turns; then the bend
    assert mu[3] > mu[11] and mu[5] > mu[11]


def test_fewer_front_members_than_asked_returns_what_there_is():
    r = result_of([[20, 100], [10, 300], [25, 150], [15, 400]])  # front: the first two
    choices, notes = choose(r, 4)
    assert sorted(c.index for c in choices) == [0, 1]
    assert notes == ["the non-dominated front has only 2 architecture(s); choosing all of them"]
    with pytest.raises(ValueError, match="-n must be at least 1"):
        choose(r, 0)


def test_a_lone_front_member_is_chosen_by_trade_off(tmp_path):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], [[10, 100], [12, 150], [15, 200], [11, 300]])
    assert script.main(["--expr", str(expr), "--save", str(tmp_path / "out"), "-n", "2"]) == 0
    summary = json.loads((tmp_path / "out" / "choices.json").read_text())  # strict JSON: no Infinity
    assert summary["choices"] == [{"folder": "net-flops@100", "reason": "trade-off", "score": None,
                                   "objectives": {"top1_err": 10.0, "flops": 100.0}}]
    assert "only 1 architecture(s)" in summary["notes"][0]


def test_most_accurate_is_the_non_dominated_one_among_equal_errors():
    r = result_of([[10, 500], [10, 400], [20, 100]])
    assert r.most_accurate == 1


# ---------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("value, text", [(225.3, "225"), (1033.7, "1034"), (23.46, "23"), (5.127, "5.1"),
                                         (0.4812, "0.48")])
def test_format_value(value, text):
    assert format_value(value) == text


def test_folder_names_use_the_second_objective_and_are_unique():
    r = result_of([[20, 5.11], [19, 5.14], [18, 5.13], [10, 12.0]], ("top1_err", "params", "flops"))
    assert folder_names(r, [0, 1, 2, 3]) == ["net-params@5.1", "net-params@5.1-2", "net-params@5.1-3",
                                             "net-params@12"]


def test_export_writes_subnet_stats_and_calls_the_exporter(tmp_path):
    calls = []

    def fake_exporter(subnet, folder):
        calls.append((subnet, folder))
        (folder / "net.config").write_text(json.dumps({"name": "MobileNetV3", "r": subnet["r"]}))
        (folder / "net.inherited").write_bytes(b"weights")

    subnet = {"ks": [3, 5], "e": [3, 6], "d": [2, 2, 2, 2, 2], "r": 192}
    folder = export_architecture(subnet, {"top1": 77.0, "flops": 225.0}, tmp_path / "net-flops@225", fake_exporter)
    assert json.loads((folder / "net.subnet").read_text()) == subnet
    assert json.loads((folder / "net.stats").read_text()) == {"top1": 77.0, "flops": 225.0}
    assert calls == [(subnet, folder)]
    assert json.loads((folder / "net.config").read_text())["r"] == 192
    assert sorted(p.name for p in folder.iterdir()) == ["net.config", "net.inherited", "net.stats", "net.subnet"]


def test_stats_are_copied_from_the_evaluation_else_built_from_the_archive(tmp_path):
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    r = selection.load_search_result(expr)
    found = selection.evaluation_stats_index(r.run_dir)
    assert len(found) == 5
    stats = selection.architecture_stats(r, 3, found)
    assert stats == {"top1": 85.0, "loss": 3.5, "top5": 99.0, "flops": 400.0}  # the file, with its extra keys
    r.subnets[3] = {"never": "evaluated"}
    assert selection.architecture_stats(r, 3, found) == {"top1": 85.0, "flops": 400.0}


@pytest.mark.parametrize("content, message", [
    ({"objectives": ["top1_err", "flops"], "archive": []}, "the archive is empty"),
    ({"objectives": ["flops", "params"], "archive": [[{}, 1, 2]]}, "including 'top1_err'"),
    ({"objectives": ["top1_err", "flops"], "archive": [[{}, 1]]}, "archive entries must be"),
    ({"hv": 1}, "not an iter_K.stats file"),
    ({"objectives": ["top1_err", "flops"], "archive": [5]}, "archive entries must be"),
    ({"objectives": ["top1_err", "flops"], "archive": [[{}, "x", 2]]}, "must be numbers"),
])
def test_bad_stats_files(tmp_path, content, message):
    path = tmp_path / "iter_3.stats"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        selection.load_search_result(path)


def test_a_folder_or_an_empty_weight_file_is_one_clear_error(tmp_path):
    from codebase.io import load_torch

    with pytest.raises(ValueError, match="cannot read"):
        selection.load_search_result(tmp_path)  # a run folder given where its iter_K.stats is expected
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth: cannot load weights"):
        load_torch(tmp_path / "empty.pth")


# ---------------------------------------------------------------------------------------- post_search.py
def post_search(*args):
    return subprocess.run([sys.executable, str(ROOT / "post_search.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_post_search_by_preference_on_a_genome_list_run(tmp_path):
    import post_search as script

    # NSGA-Net macro genomes are nested lists: the subnet is opaque JSON to the selection
    genomes = [[[[i], [1, 0], [0, 1, i % 3]]] for i in range(7)]
    F = LINE + [[26, 350], [8, 700]]  # the last one: most accurate, evaluated in the last iteration
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], F, subnets=genomes)
    out = tmp_path / "out"
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "2", "--prefer", "flops#300+top1#80"]) == 0
    chosen = json.loads((out / "choices.json").read_text())["choices"]
    # ranges 22 and 600: asf 0 at 300 MFLOPs, then 100/600 at 400 (5/22 at 200)
    assert [c["folder"] for c in chosen] == ["net-flops@300", "net-flops@400", "net-flops@700"]
    assert [c["reason"] for c in chosen] == ["preference", "preference", "most accurate"]
    assert json.loads((out / "net-flops@300" / "net.subnet").read_text()) == genomes[2]
    assert json.loads((out / "net-flops@700" / "net.stats").read_text())["loss"] == 6.5  # from iter_2/net_0.stats
    png = (out / "choices.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 20_000


def test_a_corrupt_evaluation_stats_file_is_a_warning_and_the_archive_values_are_exported(tmp_path):
    import post_search as script

    F = LINE + [[26, 350], [8, 700]]  # the last one: most accurate, evaluated in the last iteration
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], F)
    corrupt = tmp_path / "run" / "iter_2" / "net_0.stats"
    corrupt.write_text('{"top1": 92.0, "lo')  # cut short: the export stopped at it, though iter_2.stats holds it
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=rf"{corrupt}: corrupt JSON file .*; its net.stats holds the archive's"):
        assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1", "--prefer", "flops#300+top1#80"]) == 0
    assert json.loads((out / "net-flops@700" / "net.stats").read_text()) == {"top1": 92.0, "flops": 700.0}
    assert json.loads((out / "choices.json").read_text())["complete"] is True
    # as a script: one warning line, exit 0
    done = post_search("--expr", expr, "--save", tmp_path / "again", "-n", "1", "--prefer", "flops#300+top1#80")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"warning: {corrupt}: corrupt JSON file") and done.stderr.count("\n") == 1


def test_post_search_by_trade_off_with_none_and_four_objectives(tmp_path):
    import post_search as script

    rng = np.random.default_rng(1)
    P = rng.random((40, 4)) * [20, 500, 8, 30] + [10, 100, 2, 5]
    expr = make_run(tmp_path / "run", ["top1_err", "flops", "params", "latency"], P, stats_files=False)
    out = tmp_path / "out"
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "3", "--prefer", "None"]) == 0
    summary = json.loads((out / "choices.json").read_text())
    front = selection.nondominated(P)
    mu = trade_off(P[front])
    knees = [int(front[i]) for i in knee_order(P[front])[:3]]
    folders = [c["folder"] for c in summary["choices"]]
    assert len(folders) in (3, 4) and len(set(folders)) == len(folders)
    for c, i in zip(summary["choices"], knees):
        assert c["reason"] == "trade-off" and c["score"] == pytest.approx(mu[list(front).index(i)])
        assert c["objectives"]["flops"] == pytest.approx(P[i, 1])
        stats = json.loads((out / c["folder"] / "net.stats").read_text())  # no evaluation files: from the archive
        assert stats == pytest.approx({"top1": 100 - P[i, 0], "flops": P[i, 1], "params": P[i, 2],
                                       "latency": P[i, 3]})
    assert any(c["objectives"]["top1_err"] == pytest.approx(P[:, 0].min()) for c in summary["choices"])
    assert (out / "choices.png").stat().st_size > 20_000


def test_post_search_supernet_export_gets_the_runs_arguments(tmp_path, monkeypatch):
    import post_search as script

    calls, built = [], []

    def export_subnet(args, subnet, folder, evaluator):
        assert evaluator is built[-1]  # built once, up front
        calls.append((vars(args).copy(), subnet))
        (Path(folder) / "net.config").write_text("{}")
        (Path(folder) / "net.inherited").write_bytes(b"w")

    def cached_evaluator(args):
        built.append(types.SimpleNamespace(space=types.SimpleNamespace(validate=lambda subnet: subnet)))
        return built[-1]

    monkeypatch.setitem(sys.modules, "codebase.evaluators.supernet",
                        types.SimpleNamespace(export_subnet=export_subnet, cached_evaluator=cached_evaluator))
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "out"
    script.main(["--expr", str(expr), "--save", str(out), "-n", "1", "--prefer", "top1#90+flops#500",
                 "--supernet_path", "sn.pth", "--data", "D"])
    assert len(calls) == 1  # the preferred one is also the most accurate
    args, subnet = calls[0]
    assert args["supernet_path"] == "sn.pth" and args["data"] == "D"  # given here
    assert args["dataset"] == "digits" and args["width_mult"] == 1.2  # from the run's args.yaml
    folder = next(p for p in out.iterdir() if p.is_dir())
    assert json.loads((folder / "net.subnet").read_text()) == subnet
    assert {p.name for p in folder.iterdir()} == {"net.subnet", "net.stats", "net.config", "net.inherited"}

    monkeypatch.setitem(sys.modules, "codebase.evaluators.supernet", None)  # import fails
    with pytest.raises(ValueError, match="export_subnet"):
        script.main(["--expr", str(expr), "--save", str(tmp_path / "o2"), "--supernet_path", "sn.pth"])
    assert not (tmp_path / "o2").exists()  # nothing half-exported


def test_post_search_export_of_an_oracle_run_uses_the_oracles_space(tmp_path):
    # an ofa_oracle run's args.yaml holds the defaults for real evaluation (digits, width 1.0); its subnets
    # are OFA w1.2 at 160..224 on ImageNet. A checkpoint of the wrong width fails before anything is written.
    import yaml

    from codebase.io import save_torch
    from codebase.supernet import build_supernet
    from search_space.ofa import OFASearchSpace

    space = OFASearchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224))
    subnets = [space.decode(x) for x in space.sample(len(LINE), np.random.default_rng(0))]
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE, subnets=subnets)
    (tmp_path / "run" / "args.yaml").write_text(yaml.safe_dump(
        {"evaluator": "ofa_oracle", "dataset": "digits", "width_mult": 1.0, "resolutions": None}))
    save_torch(tmp_path / "w10.pth", {"state_dict": build_supernet(1.0, 1000).state_dict()})
    out = post_search("--expr", expr, "--save", tmp_path / "out", "-n", "1", "--supernet_path", tmp_path / "w10.pth",
                      "--data", tmp_path / "imagenet")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "imagenet: expected an ImageFolder tree" in out.stderr, out.stderr  # not the run's digits
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_post_search_export_arguments_of_an_oracle_run(tmp_path, monkeypatch):
    import yaml

    import codebase.evaluators.supernet as supernet
    import post_search as script

    seen = []

    def cached_evaluator(args):  # a stand-in: only the arguments matter here
        seen.append(vars(args))
        return types.SimpleNamespace(space=types.SimpleNamespace(validate=lambda subnet: subnet))

    monkeypatch.setattr(supernet, "cached_evaluator", cached_evaluator)
    (tmp_path / "args.yaml").write_text(yaml.safe_dump({"evaluator": "ofa_oracle", "dataset": "digits",
                                                        "width_mult": 1.0, "resolutions": None, "n_epochs": 0}))
    args = script.build_parser().parse_args(["--expr", "x", "--supernet_path", "w.pth", "--data", "D"])
    script.supernet_exporter(args, tmp_path, [{}])
    assert seen[0]["width_mult"] == 1.2 and seen[0]["resolutions"] == [160, 176, 192, 208, 224]
    assert seen[0]["dataset"] == "imagenet" and seen[0]["data"] == "D" and seen[0]["n_epochs"] == 0



@pytest.mark.parametrize("prefer, message", [
    ("top1#80+latency#20", "error: --prefer: the run did not optimise 'latency'"),
    ("top1#80+flops", "error: --prefer: 'flops' needs a value"),
    ("top1#80+bogus#3", "error: --prefer: unknown objective 'bogus'; this run has: flops, top1, top1_err"),
])
def test_post_search_bad_preference_is_one_line_exit_2(tmp_path, prefer, message):
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = post_search("--expr", expr, "--save", tmp_path / "out", "--prefer", prefer)
    assert out.returncode == 2 and out.stderr.startswith(message)
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_pairwise_combinations_cover_every_objective():
    # choices.png draws one panel per objective pair: 4 objectives -> 6 panels, error on y where present
    from codebase.plots import _panels

    pairs = _panels(["top1_err", "flops", "params", "latency"])
    assert sorted(tuple(sorted(p)) for p in pairs) == list(combinations(range(4), 2))
    assert all(y == 0 for x, y in pairs if 0 in (x, y))


# ---------------------------------------------------------------------------------------- review: defects found
def test_knee_picks_compare_with_the_neighbours_along_a_two_objective_front():
    # by hand (already normalised): mu = 1/3, 1/3, 5/6, 6/5, 1/2, 2/3, 1/2. The sharpest knee is member 3;
    # member 2 is its neighbour along the front (mu 5/6 < 6/5), so it is no knee of its own although its two
    # nearest points in space (members 1 and 0) both lie on its left. Member 5 (mu 2/3 against 1/2 and 1/2 on
    # either side) is the second knee.
    N = np.array([[0, 1], [0.05, 0.85], [0.1, 0.7], [0.35, 0.4], [0.65, 0.25], [0.8, 0.1], [1, 0]])
    F = N * [20, 600] + [10, 100]
    assert trade_off(F) == pytest.approx([1 / 3, 1 / 3, 5 / 6, 6 / 5, 1 / 2, 2 / 3, 1 / 2])
    assert list(knee_order(F)[:2]) == [3, 5]
    choices, _ = choose(result_of(F), 2)
    assert [c.index for c in choices] == [3, 5, 0]  # and the most accurate
    # more picks than knees: the next is no neighbour of a pick while one is left (members 2, 4 and 6 all are,
    # though their mu is higher; of the equal 0 and 1, 0 is farther from 3 and 5); then by mu again (of the equal 4
    # and 6, 6 is farther from the picks before them)
    assert list(knee_order(F)) == [3, 5, 0, 2, 6, 4, 1]
    choices, _ = choose(result_of(F), 3)
    assert [c.index for c in choices] == [3, 5, 0]  # was 3, 5, 2 (the sharpest knee's neighbour), then 0


def test_knee_picks_on_a_straight_front_spread_over_it():
    # no knee: every mu is 1 (up to 1e-16), and the picks were the archive's first members in index order, here
    # three neighbours at the accurate end; now the middle, then the two ends (farthest from what was picked)
    k = np.arange(7.0)
    F = np.c_[10 - 0.1 * k, 100 + 10 * k]
    assert trade_off(F) == pytest.approx(np.ones(7))
    assert list(knee_order(F)[:3]) == [3, 0, 6]
    shuffled = np.random.default_rng(0).permutation(7)  # the archive's order does not matter
    assert sorted(shuffled[knee_order(F[shuffled])[:3]]) == [0, 3, 6]
    choices, _ = choose(result_of(F), 3)
    assert [c.index for c in choices] == [3, 0, 6]  # the most accurate (6) already among them


def test_post_search_reads_the_original_tools_stats_file(tmp_path):
    # the original msunas.py wrote {"archive": [[subnet, top1_err, sec_obj], ...], "candidates", "hv",
    # "surrogate"}: no "objectives"; its post_search.py read it and named folders net-flops@<value>
    import post_search as script

    run = tmp_path / "search-imagenet"
    run.mkdir()
    subnets = [{"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 160 + 16 * i} for i in range(len(LINE))]
    (run / "iter_30.stats").write_text(json.dumps({
        "archive": [[s, *f] for s, f in zip(subnets, LINE)], "candidates": [], "hv": 0.4,
        "surrogate": {"model": "rbf", "name": "rbf", "winner": "rbf", "rmse": 1.0, "rho": 0.9, "tau": 0.8}}))
    out = tmp_path / "final"
    assert script.main(["--expr", str(run / "iter_30.stats"), "--save", str(out), "-n", "1",
                        "--prefer", "top1#80+flops#300"]) == 0
    chosen = json.loads((out / "choices.json").read_text())["choices"]
    # asf 0 at (20 % error, 300 MFLOPs); the most accurate (10 %, 500) is added
    assert [c["folder"] for c in chosen] == ["net-flops@300", "net-flops@500"]
    assert json.loads((out / "net-flops@300" / "net.subnet").read_text()) == subnets[2]
    assert json.loads((out / "net-flops@300" / "net.stats").read_text()) == {"top1": 80.0, "flops": 300.0}


def test_a_new_export_leaves_no_weights_of_another_architecture_behind(tmp_path):
    # an earlier export with --supernet_path wrote net.config/net.inherited into net-flops@300; a later choice
    # with the same folder name but without weights must not sit next to the old architecture's weights
    folder = tmp_path / "final" / "net-flops@300"
    folder.mkdir(parents=True)
    for name, text in [("net.subnet", '{"old": 1}'), ("net.config", "{}"), ("net.inherited", "weights")]:
        (folder / name).write_text(text)
    export_architecture({"new": 2}, {"top1": 80.0, "flops": 300.0}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["net.stats", "net.subnet"]
    assert json.loads((folder / "net.subnet").read_text()) == {"new": 2}


@pytest.mark.parametrize("extra, message", [
    (["-n", "x"], "argument -n: invalid int value: 'x'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--save", "FILE"], "--save"),
    (["--data", "D", "--save", "OUT"], "--data: used only with --supernet_path"),  # else silently ignored
    (["--dataset", "cifar10", "--save", "OUT"], "--dataset: used only with --supernet_path"),
    (["--save", "LOCKED"], "cannot write in"),  # was a PermissionError traceback, exit 1
])
def test_post_search_usage_errors_are_one_line_exit_2(tmp_path, extra, message):
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    (tmp_path / "file").write_text("not a folder")
    places = {"FILE": tmp_path / "file", "OUT": tmp_path / "out"}
    if "LOCKED" in extra:
        places["LOCKED"] = unwritable_folder(tmp_path) / "out"
    extra = [str(places.get(a, a)) for a in extra]
    out = post_search("--expr", expr, *extra)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / "out").exists()


def test_a_rerun_into_the_same_save_removes_only_its_own_stale_picks(tmp_path, capsys):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE + [[26, 350], [8, 700]])
    out = tmp_path / "final"
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "2", "--prefer", "flops#300+top1#80"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["net-flops@300", "net-flops@400", "net-flops@700"]
    # what the user put there: a folder of their own, a file of their own in one of the picks
    (out / "mine").mkdir()
    (out / "mine" / "net.subnet").write_text("{}")
    (out / "net-flops@400" / "my_notes.txt").write_text("keep me")
    capsys.readouterr()
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1"]) == 0  # knee points this time
    chosen = [c["folder"] for c in json.loads((out / "choices.json").read_text())["choices"]]
    assert chosen == ["net-flops@500", "net-flops@700"]
    assert not (out / "net-flops@300").exists()
    # a stale pick holding a file post_search did not write keeps that file (and so its folder), nothing else
    assert sorted(p.name for p in (out / "net-flops@400").iterdir()) == ["my_notes.txt"]
    assert (out / "mine" / "net.subnet").read_text() == "{}"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["mine", "net-flops@400", "net-flops@500",
                                                                    "net-flops@700"]
    printed = capsys.readouterr().out
    assert f"note: removed {out / 'net-flops@300'}: an earlier pick into this --save" in printed, printed
    assert f"note: kept {out / 'net-flops@400'} (an earlier pick) for files post_search did not write: " \
           "my_notes.txt" in printed, printed
    notes = json.loads((out / "choices.json").read_text())["notes"]
    assert any("net-flops@300" in n for n in notes) and any("my_notes.txt" in n for n in notes)


@pytest.mark.parametrize("listed", [False, True])
def test_an_export_into_a_folder_of_files_no_export_wrote_is_refused(tmp_path, listed):
    """A pick folder holding net.config/net.inherited that no earlier export listed (say a published model of the
    original tool, net-flops@N): the weights were deleted without a word. An earlier export's own folder (listed
    in its choices.json) is rewritten as before."""
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "final"
    script.main(["--expr", str(expr), "--save", str(tmp_path / "probe"), "-n", "1"])
    name = next(p.name for p in (tmp_path / "probe").iterdir() if p.is_dir())
    (out / name).mkdir(parents=True)
    for file in ("net.config", "net.inherited"):
        (out / name / file).write_text("mine")
    if listed:
        (out / "choices.json").write_text(json.dumps({"choices": [{"folder": name}]}))
        assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1"]) == 0
        assert sorted(p.name for p in (out / name).iterdir()) == ["net.stats", "net.subnet"]
        return
    with pytest.raises(ValueError, match=f"--save: {out / name} holds net.config, net.inherited, which no earlier "
                                         "post_search export"):
        script.main(["--expr", str(expr), "--save", str(out), "-n", "1"])
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing written, nothing removed
    assert [(out / name / f).read_text() for f in ("net.config", "net.inherited")] == ["mine", "mine"]


@pytest.mark.parametrize("listed", ["..", "../outside", "/tmp", "", ".", "choices.json", 5, None])
def test_a_rerun_never_removes_what_a_tampered_choices_json_names_outside_its_picks(tmp_path, listed):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "final"
    out.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "net.subnet").write_text("{}")
    (out / "choices.json").write_text(json.dumps({"choices": [{"folder": listed}]}))
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1"]) == 0
    assert (tmp_path / "outside" / "net.subnet").read_text() == "{}"
    assert (out / "choices.json").is_file() and (tmp_path / "run" / "iter_2.stats").is_file()


def test_an_unreadable_previous_choices_json_is_a_note_not_an_error(tmp_path, capsys):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "final"
    out.mkdir()
    (out / "choices.json").write_text("{not json")
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1"]) == 0
    assert "earlier picks (if any) were left in place" in capsys.readouterr().out


# a hand-edited or foreign iter_K.stats: one error naming the file, never a traceback, a silently converted
# value, or a folder named after an objective outside --save
@pytest.mark.parametrize("objectives, value, message", [
    (None, 1, "'objectives' must be a list"),
    ([{"a": 1}, "top1_err"], 1, "'objectives' must be a list"),
    ("top1_err", 1, "'objectives' must be a list"),
    (["top1_err", "../../outside"], 1, "'objectives' must be a list"),
    (["top1_err", 5], 1, "'objectives' must be a list"),
    (["top1_err", "flops", "flops"], 1, "different objectives"),
    (["top1_err", "flops"], "7", "must be numbers"),
    (["top1_err", "flops"], True, "must be numbers"),
    (["top1_err", "flops"], 10 ** 400, "non-finite"),
], ids=["null", "a_dict", "a_string", "a_path", "a_number", "twice", "value_str", "value_bool", "value_huge"])
def test_stats_files_with_bad_objectives_or_values_are_one_line_exit_2(tmp_path, objectives, value, message):
    n = len(objectives) if isinstance(objectives, list) else 2
    path = tmp_path / "run" / "iter_3.stats"
    path.parent.mkdir()
    path.write_text(json.dumps({"objectives": objectives, "archive": [[{"i": 0}, 20.0, *[value] * (n - 1)]]}))
    out = post_search("--expr", path, "--save", tmp_path / "out" / "final")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert str(path) in out.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_save_beneath_a_file_is_one_line_exit_2_and_writes_nothing(tmp_path):
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = post_search("--expr", expr, "--save", expr / "final")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == f"error: --save {expr / 'final'}: {expr} is a file, not a folder", out.stderr


def test_a_rerun_after_an_interrupted_export_removes_its_picks(tmp_path, monkeypatch):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE + [[26, 350], [8, 700]])
    out = tmp_path / "final"
    export = selection.export_architecture
    written = []

    def killed_after_one(subnet, stats, folder, exporter=None):
        if written:
            raise KeyboardInterrupt  # Ctrl-C during the second pick's export
        written.append(Path(folder).name)
        return export(subnet, stats, folder, exporter)

    monkeypatch.setattr(selection, "export_architecture", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        script.main(["--expr", str(expr), "--save", str(out), "-n", "2", "--prefer", "flops#300+top1#80"])
    assert written == ["net-flops@300"] and json.loads((out / "choices.json").read_text())["complete"] is False
    monkeypatch.setattr(selection, "export_architecture", export)
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1"]) == 0  # knee points this time
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["net-flops@500", "net-flops@700"]
    assert json.loads((out / "choices.json").read_text())["complete"] is True


def test_supernet_export_of_an_nsganet_run_is_refused_before_anything_is_written(tmp_path):
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    (tmp_path / "run" / "args.yaml").write_text("search_space: nsganet_micro\nevaluator: nsganet_train\n")
    (tmp_path / "sn.pth").write_bytes(b"not a supernet")
    out = post_search("--expr", expr, "--save", tmp_path / "final", "--supernet_path", tmp_path / "sn.pth")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "this run searched nsganet_micro" in out.stderr and "without --supernet_path" in out.stderr
    assert not (tmp_path / "final").exists()


def test_an_empty_save_is_refused_not_written_into_the_current_folder(tmp_path, monkeypatch):
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # `--save $OUT` with OUT unset: was choices.json and net-* written here
    with pytest.raises(ValueError, match="--save: empty; give the folder for the chosen architectures"):
        script.main(["--expr", str(expr), "--save", ""])
    assert list((tmp_path / "cwd").iterdir()) == []


@pytest.mark.parametrize("obstacle, kind", [
    ("net-flops@300", "file"),  # a file of the user's where a pick's folder goes
    ("choices.json", "folder"),
    ("choices.png", "folder"),
    ("net-flops@300/net.subnet", "folder"),
    ("net-flops@500/net.config", "folder"),  # removed (no --supernet_path) before writing: unlink of a folder
    ("net-flops@300", "dangling link"),
])
def test_something_in_the_way_of_the_export_is_one_line_exit_2_before_anything_is_written(tmp_path, obstacle, kind):
    """Was a FileExistsError / IsADirectoryError traceback, after choices.json (and for choices.png after every
    pick) had been written; now one line naming the path, and the folder is left as it was."""
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "final"
    (out / obstacle).parent.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        (out / obstacle).write_text("mine")
    elif kind == "dangling link":
        (out / obstacle).symlink_to(tmp_path / "nowhere")
    else:
        (out / obstacle).mkdir()
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    run = post_search("--expr", expr, "--save", out, "-n", "1", "--prefer", "flops#300+top1#80")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and str(out / obstacle) in run.stderr, run.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_a_rerun_after_a_kill_mid_write_removes_the_temporaries_it_left(tmp_path, capsys):
    """A kill between writing and renaming leaves `.NAME.XXXXXXXX.tmp`: a re-run removes its own ones (and so
    removes a stale pick's folder instead of keeping it "for files post_search did not write"), nothing else."""
    import post_search as script

    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    out = tmp_path / "final"
    left = [out / ".choices.png.ab_3x9yz.tmp", out / "net-flops@300" / ".net.subnet.k2j4h5g6.tmp",
            out / "net-flops@500" / ".net.stats.zz11yy22.tmp"]
    mine = [out / ".notes.txt.abcdefgh.tmp", out / "net-flops@300" / ".x.tmp"]
    for path in left + mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    (out / "choices.json").write_text(json.dumps({"choices": [{"folder": "net-flops@300"},
                                                              {"folder": "net-flops@500"}], "complete": False}))
    assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1", "--prefer", "flops#400+top1#85"]) == 0
    assert not any(p.exists() for p in left)
    assert all(p.read_text() == "half" for p in mine)
    # the stale pick net-flops@300 is kept for the user's .x.tmp alone, not for the export's own temporary
    assert f"kept {out / 'net-flops@300'} (an earlier pick) for files post_search did not write: .x.tmp\n" \
        in capsys.readouterr().out


def fake_supernet_export(monkeypatch) -> list[dict]:
    """codebase.evaluators.supernet replaced by an exporter that writes placeholder net.config / net.inherited
    files, with no supernet or data: returns the list of the arguments each evaluator was built with."""
    built = []

    def cached_evaluator(args):
        built.append(vars(args).copy())
        return types.SimpleNamespace(space=types.SimpleNamespace(validate=lambda subnet: subnet))

    def export_subnet(args, subnet, folder, evaluator):
        (Path(folder) / "net.config").write_text("{}")
        (Path(folder) / "net.inherited").write_bytes(b"w")

    monkeypatch.setitem(sys.modules, "codebase.evaluators.supernet",
                        types.SimpleNamespace(export_subnet=export_subnet, cached_evaluator=cached_evaluator))
    return built


def test_supernet_export_of_the_original_tools_run_takes_dataset_and_width_from_flags(tmp_path, monkeypatch):
    """A run without args.yaml (the original tool's) records neither its data set nor its supernet's width: the
    export silently took digits and width 1.0, so a w1.2 supernet (the original's ImageNet one) failed with
    "check --width_mult", a flag post_search refused. Now --dataset is required for such a run and --width_mult
    is accepted; a run with args.yaml keeps its own width."""
    import post_search as script

    built = fake_supernet_export(monkeypatch)
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    (tmp_path / "run" / "args.yaml").unlink()
    base = ["--expr", str(expr), "-n", "1", "--supernet_path", "sn.pth"]
    with pytest.raises(ValueError, match="no args.yaml .*--dataset"):
        script.main([*base, "--save", str(tmp_path / "o1")])
    assert not (tmp_path / "o1").exists() and not built
    assert script.main([*base, "--save", str(tmp_path / "o2"), "--dataset", "imagenet", "--data", "D",
                        "--width_mult", "1.2"]) == 0
    assert built[-1]["dataset"] == "imagenet" and built[-1]["width_mult"] == 1.2 and built[-1]["data"] == "D"

    expr = make_run(tmp_path / "run2", ["top1_err", "flops"], LINE)  # args.yaml: width_mult 1.2
    with pytest.raises(ValueError, match="--width_mult 1.0: the run searched width 1.2"):
        script.main(["--expr", str(expr), "--save", str(tmp_path / "o3"), "--supernet_path", "sn.pth",
                     "--width_mult", "1.0"])
    with pytest.raises(ValueError, match="--width_mult: used only with --supernet_path"):
        script.main(["--expr", str(expr), "--save", str(tmp_path / "o4"), "--width_mult", "1.2"])
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_an_export_from_another_supernet_or_data_set_than_the_runs_is_said(tmp_path, monkeypatch):
    """net.stats holds what the search measured; --supernet_path naming other weights, or --dataset another data set,
    made net.inherited another network than the one it describes, silently. Now a warning line names both (and
    choices.json keeps it); a data set of another class count than the run's head is refused; the same file
    moved or copied, and the original tool's runs (no args.yaml), are exported as before."""
    import shutil
    import warnings

    import yaml

    import post_search as script
    from codebase.io import file_identity

    fake_supernet_export(monkeypatch)
    weights, other = tmp_path / "sn.pth", tmp_path / "other.pth"
    weights.write_bytes(b"the weights searched with")
    other.write_bytes(b"other weights")
    expr = make_run(tmp_path / "run", ["top1_err", "flops"], LINE)
    stored = {"search_space": "ofa", "evaluator": "supernet", "dataset": "digits", "data": None, "n_classes": 10,
              "width_mult": 1.0, "supernet_path": str(weights), "supernet_identity": file_identity(weights)}
    (tmp_path / "run" / "args.yaml").write_text(yaml.safe_dump(stored))
    saves = iter(range(100))

    def export(*flags):
        out = tmp_path / f"out{next(saves)}"
        assert script.main(["--expr", str(expr), "--save", str(out), "-n", "1", "--prefer", "top1#90+flops#500",
                            *map(str, flags)]) == 0  # the preferred one is the most accurate: no note of that
        return json.loads((out / "choices.json").read_text())["notes"]

    moved = tmp_path / "moved" / "sn.pth"
    moved.parent.mkdir()
    shutil.copy(weights, moved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export("--supernet_path", weights) == export("--supernet_path", moved) == []  # the run's weights
    line = (f"--supernet_path {other} is not the supernet the run searched with ({weights}; another size or "
            f"sha256): net.inherited takes its weights, but net.stats holds the accuracies the search measured with "
            f"its own")
    with pytest.warns(UserWarning) as caught:
        notes = export("--supernet_path", other)
    assert [str(w.message) for w in caught] == [line] and notes == [line]
    shutil.copy(other, weights)  # retrained (or another copied over it) since the search
    with pytest.warns(UserWarning, match=rf"^--supernet_path {weights} changed since the run searched with it "
                                         r"\(another size or sha256 than its args.yaml records\): net.inherited"):
        export("--supernet_path", weights)
    line = ("--dataset cifar10 is not the data set the run searched (digits, its args.yaml): net.inherited is "
            "recalibrated on cifar10, but net.stats holds accuracies measured on digits")
    with pytest.warns(UserWarning) as caught:
        export("--supernet_path", moved, "--dataset", "cifar10", "--data", tmp_path / "c10")
    assert [str(w.message) for w in caught] == [line]
    message = ("--dataset cifar100 has 100 classes, but the run searched digits (10 classes, its args.yaml): its "
               "subnets' heads and accuracies are for digits; export without --dataset and fine-tune on cifar100 with "
               "train_cifar.py, which starts a new head")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        script.main(["--expr", str(expr), "--save", str(tmp_path / "refused"), "--supernet_path", str(moved),
                     "--dataset", "cifar100", "--data", str(tmp_path / "c100")])
    assert not (tmp_path / "refused").exists()
    done = post_search("--expr", expr, "--save", tmp_path / "refused", "--supernet_path", moved, "--dataset",
                       "cifar100", "--data", tmp_path / "c100")
    assert done.returncode == 2 and done.stderr == f"error: {message}\n" and not (tmp_path / "refused").exists()

    # a run of an earlier version (no size and sha256) that trained its own supernet (supernet_path null)
    own = tmp_path / "run" / "supernet" / "checkpoint.pth"
    own.parent.mkdir()
    shutil.copy(other, own)
    stored = {**stored, "supernet_path": None}
    del stored["supernet_identity"]
    (tmp_path / "run" / "args.yaml").write_text(yaml.safe_dump(stored))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export("--supernet_path", Path("run/supernet/checkpoint.pth")) == []
    with pytest.warns(UserWarning, match=rf"^--supernet_path {other} is not the file the run searched with \({own}\)"):
        export("--supernet_path", other)
    (tmp_path / "run" / "args.yaml").unlink()  # the original tool's run: nothing recorded to compare with
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert export("--supernet_path", other, "--dataset", "cifar100") == []
