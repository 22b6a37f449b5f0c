"""Drawings of NSGA-Net architectures and genome files as --arch."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

import visualize
from codebase.networks.genotypes import MACRO_NSGANET, NSGANet
from codebase.nsganet_profile import profile

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz 'dot' not installed (apt-get install graphviz)"
)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


@needs_dot
def test_micro_cells_render_png(tmp_path, capsys):
    assert visualize.main(["NSGANet", "--format", "png", "--out", str(tmp_path)]) == 0
    for cell in ("normal", "reduction"):
        width, height = _png_size(tmp_path / f"NSGANet_{cell}.png")
        assert width > 200 and height > 100
    assert "NSGANet_normal.png" in capsys.readouterr().out


@needs_dot
def test_macro_phases_render_png_and_svg(tmp_path):
    assert visualize.main(["NSGANet", "--net_type", "macro", "--format", "png", "--out", str(tmp_path)]) == 0
    width, height = _png_size(tmp_path / "NSGANet_macro.png")
    assert width > height > 50  # phases laid out left to right
    assert visualize.main(["NSGANet", "--net_type", "macro", "--format", "svg", "--out", str(tmp_path)]) == 0
    svg = (tmp_path / "NSGANet_macro.svg").read_text()
    assert "phase 3" in svg and "dense 6" in svg


def _svg_edges(path) -> list[tuple[str, str, str]]:
    """(source, target, label) of every edge of a graphviz SVG drawing, sorted."""
    import xml.etree.ElementTree as ET

    ns = {"s": "http://www.w3.org/2000/svg"}
    edges = []
    for g in ET.parse(path).getroot().iterfind(".//s:g[@class='edge']", ns):
        source, target = g.find("s:title", ns).text.split("->")
        label = g.find("s:text", ns)
        edges.append((source, target, "" if label is None else label.text))
    return sorted(edges)


# NSGA-Net's published cells (Genotype NSGANet) decoded by hand: (op, input) pairs per block, input 0 and 1 the
# cell inputs c_{k-2} and c_{k-1}, input i >= 2 block i - 2's node; the concat states feed the output c_{k}
A, B, K = "c_{k-2}", "c_{k-1}", "c_{k}"
NSGANET_NORMAL = [(A, "0", "skip_connect"), (A, "0", "max_pool_3x3"), (A, "1", "dil_conv_5x5"),
                  (A, "1", "max_pool_3x3"), (B, "2", "dil_conv_5x5"), ("1", "2", "sep_conv_3x3"),
                  (B, "3", "max_pool_3x3"), ("1", "3", "sep_conv_5x5"), (B, "4", "sep_conv_3x3"),
                  (A, "4", "sep_conv_3x3"), ("0", K, ""), ("2", K, ""), ("3", K, ""), ("4", K, "")]
NSGANET_REDUCE = [(A, "0", "avg_pool_3x3"), (B, "0", "sep_conv_3x3"), (B, "1", "dil_conv_3x3"),
                  (A, "1", "max_pool_3x3"), ("0", "2", "skip_connect"), (B, "2", "dil_conv_5x5"),
                  ("0", "3", "skip_connect"), (B, "3", "avg_pool_3x3"), (B, "4", "dil_conv_5x5"),
                  (B, "4", "dil_conv_3x3"), ("1", K, ""), ("2", K, ""), ("3", K, ""), ("4", K, "")]


@needs_dot
def test_genome_file_renders(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(NSGANet.to_dict()))
    assert visualize.main([str(path), "--format", "png", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mine_reduction.png").stat().st_size > 1000
    # what is drawn is the file's architecture: every operation on the edge between the states it joins
    assert visualize.main([str(path), "--format", "svg", "--out", str(tmp_path)]) == 0
    assert _svg_edges(tmp_path / "mine_normal.svg") == sorted(NSGANET_NORMAL)
    assert _svg_edges(tmp_path / "mine_reduction.svg") == sorted(NSGANET_REDUCE)


def test_missing_dot_gives_one_actionable_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert visualize.main(["NSGANet", "--format", "png", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "install Graphviz" in err


def test_unknown_name_exits_2(tmp_path, capsys):
    assert visualize.main(["NoSuchNet", "--out", str(tmp_path)]) == 2
    assert "unknown micro architecture" in capsys.readouterr().err


def test_profile_accepts_genome_files(tmp_path):
    micro = tmp_path / "micro.json"
    micro.write_text(json.dumps(NSGANet.to_dict()))
    by_name = profile("micro", "NSGANet", layers=5, init_channels=8, filter_increment=2)
    assert profile("micro", str(micro), layers=5, init_channels=8, filter_increment=2) == by_name
    macro = tmp_path / "macro.json"
    macro.write_text(json.dumps({"genome": MACRO_NSGANET, "channels": [[3, 128], [128, 128], [128, 128]],
                                 "decoder": "dense"}))
    assert profile("macro", str(macro)) == profile("macro", "NSGANet")
    # a flat 48-bit genome is the nested one's bits in order (per phase: node 2's inputs, node 3's, ..., skip bit):
    # the same network, so the same counts; the published genome's phases differ, so a wrong order would show
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps([bit for phase in MACRO_NSGANET for node in phase for bit in node]))
    nested = profile("macro", {"genome": MACRO_NSGANET}, init_channels=8)
    assert profile("macro", str(flat), init_channels=8) == nested
    assert profile("macro", {"genome": MACRO_NSGANET[::-1]}, init_channels=8) != nested


@needs_dot
def test_non_json_file_is_named_by_its_stem_and_drawn_into_out(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    subnet = run / "net_3.subnet"  # what the search writes
    subnet.write_text(json.dumps({"genome": MACRO_NSGANET}))
    out = tmp_path / "drawings"
    assert visualize.main([str(subnet), "--net_type", "macro", "--format", "svg", "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["net_3_macro.svg"]
    assert not any(p.suffix == ".svg" for p in run.iterdir())
    assert capsys.readouterr().out.strip() == str(out / "net_3_macro.svg")


@pytest.mark.parametrize("genome", [5, [[[1], [0, 0], 5]] * 3, [[[2], [0, 0], [0]]] * 3])
def test_malformed_macro_genome_exits_2_with_one_line(tmp_path, capsys, genome):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"genome": genome}))
    assert visualize.main([str(path), "--net_type", "macro", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: macro genome") and "\n" not in err
    assert list(tmp_path.iterdir()) == [path]


def test_macro_dict_without_genome_exits_2_and_profile_refuses_it(tmp_path, capsys):
    from codebase.nsganet_profile import build_network

    path = tmp_path / "nogenome.json"
    path.write_text(json.dumps({"channels": [[3, 32], [32, 64], [64, 128]]}))
    assert visualize.main([str(path), "--net_type", "macro", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: macro architecture: missing field 'genome'"
    with pytest.raises(ValueError, match="missing field 'genome'"):
        build_network("macro", {"decoder": "dense"})


@pytest.mark.parametrize("content", [
    {"genome": MACRO_NSGANET, "decoder": "dense"},  # a macro architecture file
    MACRO_NSGANET,  # a bare nested macro genome
    [1] * 48,  # a flat 48-bit macro genome
])
def test_a_macro_file_drawn_as_micro_hints_at_net_type_macro(tmp_path, capsys, content):
    path = tmp_path / "MACRO.json"
    path.write_text(json.dumps(content))
    assert visualize.main([str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert err.endswith("; a macro architecture? add --net_type macro"), err
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("net_type", ["micro", "macro"])
@pytest.mark.parametrize("name, content", [
    ("net.subnet", {"ks": [3, 5, 7, 3, 5, 7, 3, 5, 7, 3], "e": [3, 4, 6, 3, 4, 6, 3, 4, 6, 3], "d": [2] * 5, "r": 224}),
    ("net.config", {"name": "MobileNetV3", "first_conv": {}, "blocks": [], "classifier": {}}),
])
def test_an_ofa_subnet_is_refused_in_one_line_as_not_drawable(tmp_path, capsys, net_type, name, content):
    # was: "micro genotype: missing field 'normal'" (or 'genome' with --net_type macro), as if a field were missing
    path = tmp_path / name
    path.write_text(json.dumps(content))
    assert visualize.main([str(path), "--net_type", net_type, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {path}: an OFA MobileNetV3 subnet, which this tool cannot draw (it draws NSGA-Net "
                   f"micro cells and macro phases)")
    assert list(tmp_path.iterdir()) == [path]


def test_a_broken_micro_file_gets_no_macro_hint(tmp_path, capsys):
    path = tmp_path / "cells.json"
    path.write_text(json.dumps({"normal": [["skip_connect", 0]] * 10, "normal_concat": [2]}))
    assert visualize.main([str(path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: micro genotype: missing field 'reduce'"


@pytest.mark.parametrize("argv, message", [
    (["NSGANet", "--format", "jpg"], "argument --format: invalid choice: 'jpg'"),
    (["NSGANet", "--net_type", "mikro"], "argument --net_type: invalid choice: 'mikro'"),
    (["NSGANet", "--form", "png"], "unrecognized arguments: --form png"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        visualize.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("net_type", ["micro", "macro"])
def test_out_that_is_a_file_exits_2_with_one_line(tmp_path, capsys, net_type):
    """--out naming a file (not a folder), or a folder beneath one, is one error line naming --out and exit code 2,
    found before drawing (was: "cannot write the drawing .../NSGANet_normal (File exists)" from graphviz)."""
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for out in (taken, taken / "drawings"):
        assert visualize.main(["NSGANet", "--net_type", net_type, "--format", "svg", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"error: --out {out}: {taken} is a file, not a folder\n"
    assert taken.read_text() == "not a folder"


@needs_dot
def test_drawing_never_touches_a_file_named_like_its_graphviz_source(tmp_path, capsys):
    """graphviz's render() wrote the DOT source to OUT/NSGANet_normal and deleted it afterwards (cleanup): a user's
    file of that name was overwritten and then removed. The drawing is now piped from dot and written atomically."""
    (tmp_path / "NSGANet_normal").write_text("precious")
    assert visualize.main(["NSGANet", "--format", "png", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "NSGANet_normal").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NSGANet_normal", "NSGANet_normal.png",
                                                          "NSGANet_reduction.png"]  # nothing else, no temporary


@needs_dot
def test_a_folder_where_the_drawing_goes_is_one_line_exit_2(tmp_path, capsys):
    """Was a CalledProcessError traceback from dot ("Could not open NSGANet_normal.png for writing")."""
    (tmp_path / "NSGANet_normal.png").mkdir()
    assert visualize.main(["NSGANet", "--format", "png", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "NSGANet_normal.png" in err, err


@needs_dot
def test_a_drawing_killed_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    """Drawings are written atomically: a kill between writing and renaming keeps the earlier drawing whole."""
    from codebase import io

    assert visualize.main(["NSGANet", "--net_type", "macro", "--format", "svg", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "NSGANet_macro.svg").read_bytes()

    def die(path):
        raise KeyboardInterrupt  # stands in for the kill, after the data is written, before the rename

    monkeypatch.setattr(io, "_maybe_die_mid_write", die)
    with pytest.raises(KeyboardInterrupt):
        visualize.main(["NSGANet", "--net_type", "macro", "--format", "svg", "--out", str(tmp_path)])
    assert (tmp_path / "NSGANet_macro.svg").read_bytes() == before
