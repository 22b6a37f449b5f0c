"""scripts/build_latency_lut.py end to end on one tiny resolution: the table it writes has OFA's
format (the `ofa` package's MBv3LatencyTable reads it), LatencyTable loads it, and a re-run
measures only what is missing."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from codebase.latency import LatencyTable, measure_latency
from codebase.latency.layers import layer_configurations
from codebase.latency.table import ofa_key
from codebase.supernet import build_supernet, extract_subnet, padded_layers

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_latency_lut.py"
R = 32  # sizes 16, 16, 8, 4, 2, 1 through the network: every layer is cheap
FAST = ["--resolutions", str(R), "--repeats", "1", "--warmup", "0"]


def _script():
    spec = importlib.util.spec_from_file_location("build_latency_lut", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("lut")
    assert _script().main(["--save", str(save), *FAST]) == 0
    return save


def _entries(save: Path) -> dict:
    return yaml.safe_load((save / f"{R}_lookup_table.yaml").read_text())


def test_table_holds_every_layer_in_ofa_format(built):
    entries = _entries(built)
    assert set(entries) == {ofa_key(layer) for layer in layer_configurations(R, 1.0)}
    assert len(entries) == 96  # 91 blocks + first conv, final expand, pool, feature mix, classifier
    for entry in entries.values():
        assert set(entry) == {"count", "mean", "std"} and entry["count"] == 1
        assert entry["mean"] > 0 and entry["std"] >= 0
    args = yaml.safe_load((built / "args.yaml").read_text())
    assert args["device"] == "cpu" and args["threads"] == 1 and args["resolutions"] == [R]


def test_loaded_table_predicts_like_ofa(built):
    from ofa.nas.efficiency_predictor.latency_lookup_table import MBv3LatencyTable

    reference = MBv3LatencyTable.__new__(MBv3LatencyTable)
    reference.lut = _entries(built)
    table = LatencyTable.load(built)
    assert table.resolutions == [R] and table.width_mults == [1.0]
    supernet = build_supernet(width_mult=1.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = rng.integers(2, 5, size=5).tolist()
        subnet = {"ks": rng.choice([3, 5, 7], sum(d)).tolist(), "e": rng.choice([3, 4, 6], sum(d)).tolist(),
                  "d": d, "r": R}
        ks, e = padded_layers(subnet)
        supernet.set_active_subnet(ks=ks, e=e, d=d)
        expected = reference.predict_network_latency_given_config(supernet.get_active_net_config(), R)
        assert table.predict(subnet) == pytest.approx(expected, rel=1e-12)


def test_rerun_measures_only_missing_entries(built):
    path = built / f"{R}_lookup_table.yaml"
    stamp = path.stat().st_mtime_ns
    assert _script().main(["--save", str(built), *FAST]) == 0
    assert path.stat().st_mtime_ns == stamp  # complete: nothing measured, nothing rewritten

    entries = _entries(built)
    removed = [k for k in entries if "kernel:7" in k and "expand:96" in k]
    assert removed
    kept = {k: v for k, v in entries.items() if k not in removed}
    path.write_text(yaml.safe_dump(kept))
    assert _script().main(["--save", str(built), *FAST]) == 0
    again = _entries(built)
    assert set(again) == set(entries)
    assert {k: again[k] for k in kept} == kept  # untouched entries are not re-measured


def test_settings_mismatch_and_bad_input_exit_2(built, tmp_path, capsys):
    assert _script().main(["--save", str(built), *FAST, "--threads", "2"]) == 2
    assert "threads=1, not 2" in capsys.readouterr().err
    assert _script().main(["--save", str(tmp_path / "x"), "--resolutions", "0"]) == 2
    assert "resolutions" in capsys.readouterr().err
    assert _script().main(["--save", str(tmp_path / "y"), *FAST, "--repeats", "0"]) == 2
    assert capsys.readouterr().err == "error: repeats, batch_size and n_classes must be at least 1 and warmup at " \
                                      "least 0\n"
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before anything is written


def test_a_folder_built_up_over_several_builds_lists_all_their_choices_and_refuses_other_repeats(tmp_path, capsys):
    """A second build with other kernel sizes and class count: args.yaml said kernel_sizes [5], n_classes 10, though
    the table still held the first build's kernel-3 entries and 1000-class head; and it took --repeats 7 beside
    entries timed once (helper-53's audit)."""
    save = tmp_path / "lut"
    small = ["--save", str(save), *FAST, "--expand_ratios", "3"]
    assert _script().main([*small, "--kernel_sizes", "3"]) == 0
    assert _script().main([*small, "--kernel_sizes", "5", "--n_classes", "10"]) == 0
    args = yaml.safe_load((save / "args.yaml").read_text())
    assert (args["kernel_sizes"], args["expand_ratios"], args["n_classes"]) == ([3, 5], [3], [10, 1000])
    keys = set(_entries(save))
    assert {"kernel:3" in k for k in keys if k.startswith("expanded_conv")} == {True, False}
    assert {k.split("output:")[-1] for k in keys if k.startswith("Logits")} == {"10", "1000"}
    assert _script().main([*small, "--kernel_sizes", "5", "--repeats", "7"]) == 2
    assert "holds tables measured with repeats=1, not 7" in capsys.readouterr().err
    assert yaml.safe_load((save / "args.yaml").read_text()) == args  # refused: nothing rewritten


def test_a_width_the_supernet_lacks_and_a_corrupt_folder_are_refused(tmp_path, capsys):
    from codebase.latency.build import build_tables

    # 1.25's first conv has 1.2's 24 channels: its table would load as a (wrong) width-1.2 table
    with pytest.raises(ValueError, match=r"width_mult must be one of the OFA supernet's widths \(1.0, 1.2\)"):
        build_tables(tmp_path / "w", [R], width_mult=1.25, repeats=1, warmup=0, progress=False)
    assert not (tmp_path / "w").exists()
    with pytest.raises(SystemExit):
        _script().main(["--save", str(tmp_path / "w"), *FAST, "--width_mult", "1.25"])
    assert "invalid choice: 1.25" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "args.yaml").write_text("- not\n- settings\n")
    assert _script().main(["--save", str(tmp_path / "c"), *FAST]) == 2
    assert "args.yaml: corrupt" in capsys.readouterr().err
    assert (tmp_path / "c" / "args.yaml").read_text() == "- not\n- settings\n"


def test_save_that_is_or_lies_beneath_a_file_is_one_error_line(tmp_path, capsys):
    # codebase.io.check_output_folder: a file on the way of --save was an OSError traceback from mkdir
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for save in (taken, taken / "luts"):
        assert _script().main(["--save", str(save), *FAST]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --save {save}: {taken} is a file, not a folder\n"
    assert taken.read_text() == "not a folder"


@pytest.mark.slow
def test_table_prediction_tracks_measured_latency(tmp_path):
    """A table built on this CPU predicts a whole subnet's measured time within a factor of 3."""
    assert _script().main(["--save", str(tmp_path), "--resolutions", "128", "--repeats", "20"]) == 0
    table = LatencyTable.load(tmp_path)
    subnet = {"ks": [5] * 15, "e": [4] * 15, "d": [3] * 5, "r": 128}
    net = extract_subnet(build_supernet(width_mult=1.0), subnet)
    measured = measure_latency(net, 128, "cpu", warmup=5, repeats=30, threads=1)
    assert 1 / 3 < table.predict(subnet) / measured < 3  # loose: CPUs shared with other jobs are noisy


def test_an_even_kernel_or_a_huge_resolution_is_refused_before_anything_is_written(tmp_path):
    from codebase.latency.build import build_tables

    # were: ofa's AssertionError traceback after a table was written; an out-of-memory traceback after args.yaml
    with pytest.raises(ValueError, match=r"kernel_sizes must be odd .*got \[3, 4\]"):
        build_tables(tmp_path / "k", [R], kernel_sizes=[3, 4], repeats=1, warmup=0, progress=False)
    with pytest.raises(ValueError, match="resolution 99999: expected an input resolution in 1..1024 pixels"):
        build_tables(tmp_path / "r", [R, 99999], repeats=1, warmup=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_build_killed_mid_write_resumes_and_removes_the_temporary_it_left(tmp_path):
    """A SIGKILL during a table's atomic write left `.R_lookup_table.yaml.XXXXXXXX.tmp` beside the table for good
    (a re-run resumed but never removed it; each kill added one, as large as the table)."""
    import os
    import subprocess
    import sys

    save = tmp_path / "lut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "_lookup_table.yaml:5"}
    command = [sys.executable, str(SCRIPT), "--save", str(save), *FAST, "--kernel_sizes", "3", "--expand_ratios", "3"]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (stale,) = save.glob(f".{R}_lookup_table.yaml.*.tmp")
    assert len(yaml.safe_load((save / f"{R}_lookup_table.yaml").read_text())) == 4  # every finished entry kept
    (save / ".notes.tmp").write_text("mine")  # not a temporary of the build's
    env.pop("NSGANETV2_TEST_KILL_DURING_WRITE")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not stale.exists() and (save / ".notes.tmp").read_text() == "mine"
    expected = {ofa_key(layer) for layer in layer_configurations(R, 1.0, (3,), (3,))}
    assert set(_entries(save)) == expected


@pytest.mark.parametrize("other", [
    # a train_supernet.py folder: its args.yaml was replaced by the build's settings (the supernet's lost), so its
    # --resume no longer worked
    {"dataset": "digits", "epochs": 20, "batch_size": 1, "lr": 0.05, "seed": 0},
    # a search's folder: refused, but as "holds tables measured with device=None, not 'cpu'"
    {"save": "runs/x", "sec_obj": "flops", "n_doe": 100, "device": None, "seed": 0},
])
def test_save_holding_another_tools_args_yaml_is_refused_and_left_alone(tmp_path, capsys, other):
    save = tmp_path / "run"
    save.mkdir()
    (save / "args.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    before = (save / "args.yaml").read_bytes()
    assert _script().main(["--save", str(save), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --save {save}: not a build_latency_lut.py folder (its args.yaml lacks ") and \
        err.count("\n") == 1, err
    assert (save / "args.yaml").read_bytes() == before and sorted(p.name for p in save.iterdir()) == ["args.yaml"]


def test_a_second_build_on_a_folder_in_use_is_refused_and_touches_nothing(built, capsys):
    # two builds in one folder each rewrote the tables with their own entries; the first's lock is held here
    import os

    from codebase.io import lock_folder

    fd = lock_folder(built, "build_latency_lut")
    try:
        files = {p: p.stat().st_mtime_ns for p in built.iterdir()}  # the lock file holds this process's pid now
        assert _script().main(["--save", str(built), *FAST, "--resolutions", "40"]) == 2
        assert capsys.readouterr().err == (f"error: {built}: in use by another build_latency_lut process (pid "
                                           f"{os.getpid()}); wait for it or kill it\n")
        assert {p: p.stat().st_mtime_ns for p in built.iterdir()} == files and not (built / "40_lookup_table.yaml"
                                                                                   ).exists()
    finally:
        os.close(fd)
    assert _script().main(["--save", str(built), *FAST]) == 0  # let go: the next build runs
