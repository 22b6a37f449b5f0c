"""Every top-level script's command line: full spellings only, one-line usage errors, documented forms."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from codebase.cli import OneLineParser

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    """A top-level script (`evaluator`) or one of scripts/ (`scripts/plot_runs`) as a module."""
    path = ROOT / f"{name}.py"
    spec = importlib.util.spec_from_file_location(Path(name).name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(script: str, argv: list[str]):
    """Run the script's own argument parsing on argv."""
    module = _module(script)
    if hasattr(module, "build_parser"):
        return module.build_parser().parse_args(argv)
    return module.parse_args(argv)


def _usage_error(capsys, script: str, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        _parse(script, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2, stop.value.code
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_one_line_parser_refuses_abbreviations(capsys):
    p = OneLineParser(prog="x")
    p.add_argument("--epochs", type=int, default=3)
    with pytest.raises(SystemExit) as stop:
        p.parse_args(["--epoch", "1"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == "error: unrecognized arguments: --epoch 1 (see x --help)"
    assert p.parse_args(["--epochs", "1"]).epochs == 1
    # a script may still opt in explicitly
    assert OneLineParser(allow_abbrev=True).allow_abbrev


# an abbreviation of one of the script's long flags, after whatever the script needs
ABBREVIATED = [
    ("train_supernet", ["--epoch", "1"]),
    ("evaluator", ["--profile", "--n_class", "10"]),
    ("visualize", ["NSGANet", "--form", "png"]),
    ("post_search", ["--expr", "x.stats", "--pref", "top1#80+flops#150"]),
    ("validation", ["--pretrained", "w.pth", "--datas", "cifar10"]),
    ("train_imagenet", ["DATA", "--model-config", "net.config", "--epoch", "1"]),
    ("train_cifar", ["--epoch", "1"]),
    ("msunas", ["--iter", "3"]),
    ("scripts/build_latency_lut", ["--save", "luts/x", "--repeat", "1"]),
    ("scripts/plot_runs", ["runs/a", "--lab", "A"]),
]


@pytest.mark.parametrize("script, argv", ABBREVIATED, ids=[s for s, _ in ABBREVIATED])
def test_abbreviated_flags_are_refused_in_one_line(script, argv, capsys):
    err = _usage_error(capsys, script, argv)
    assert "unrecognized arguments" in err and argv[-2] in err, err


@pytest.mark.parametrize("script", [s for s, _ in ABBREVIATED])
def test_every_script_parses_with_one_line_parser(script):
    module = _module(script)
    assert isinstance(module.build_parser(), OneLineParser)


@pytest.mark.parametrize("script, argv, message", [
    ("evaluator", ["--profile", "--net_type", "mikro"], "argument --net_type: invalid choice: 'mikro'"),
    ("evaluator", ["--profile", "--width", "1.5"], "argument --width/--width_mult: invalid choice: 1.5"),
    ("visualize", ["NSGANet", "--format", "jpg"], "argument --format: invalid choice: 'jpg'"),
    ("scripts/build_latency_lut", ["--save", "x", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    ("train_supernet", ["--width_mult", "2"], "argument --width_mult: invalid choice: 2.0"),
])
def test_invalid_choices_are_one_line_exit_2(script, argv, message, capsys):
    assert message in _usage_error(capsys, script, argv)


# the commands of this README and of the two original READMEs (NSGA-Net, NSGANetV2), as argv
DOCUMENTED = [
    ("evaluator", "--profile --subnet net.subnet --width 1.2 --n_classes 10"),
    ("evaluator", "--profile --config net.config --img-size 224"),
    ("evaluator", "--profile --net_type micro --arch NSGANet --layers 20 --init_channels 34 --filter_increment 4 "
                  "--auxiliary --SE"),
    ("evaluator", "--subnet net.subnet --dataset digits --supernet_path ckpt.pth --save net.stats --save_config ex"),
    ("visualize", "NSGANet --format png --out drawings"),
    ("visualize", "NSGANet --net_type macro --format png"),
    ("post_search", "--expr SAVE/iter_30.stats --save final -n 3 --prefer top1#80+flops#150"),
    ("post_search", "-n 3 --save search-imagenet/final --expr search-imagenet/iter_30.stats "
                    "--prefer top1#80+flops#150 --supernet_path w.pth"),
    ("post_search", "--expr SAVE/iter_30.stats --save final --supernet_path supernet.pth --data D"),
    ("scripts/plot_runs", "runs/msunas runs/nsga2 runs/random --labels MSuNAS NSGA-II random --out hv.png"),
    ("scripts/build_latency_lut", "--save luts/mine --device cpu --threads 1 --resolutions 192 224 "
                                  "--width_mult 1.0 --repeats 50 --n_classes 10"),
    ("train_supernet", "--dataset folder --data PATH --epochs 20 --save runs/my-supernet"),
    ("train_supernet", "--dataset folder --data PATH --init ofa_mbv3_d234_e346_k357_w1.0 --save runs/adapted"),
    ("train_supernet", "--resume DIR"),
    ("msunas", "--dataset cifar10 --data DATA --save search-xxx --sec_obj flops --n_gpus 8 --supernet_path w "
               "--vld_size 5000 --n_epochs 5"),
    ("msunas", "--search_space nsganet_micro --init_channels 16 --layers 8 --epochs 20 --n_offspring 20 "
               "--n_gens 30 --pop_size 40 --predictor none --dataset cifar10 --data DATA"),
    ("train_imagenet", "/path/to/imagenet --model nsganetv2_m --model-config net.config "
                       "--initial-checkpoint net.inherited --img-size 224 -b 128 --sched step --epochs 450 "
                       "--decay-epochs 2.4 --decay-rate .97 --opt rmsproptf --opt-eps .001 -j 6 --warmup-lr 1e-6 "
                       "--weight-decay 1e-5 --drop 0.2 --drop-path 0.2 --model-ema --model-ema-decay 0.9999 "
                       "--aa rand-m9-mstd0.5 --remode pixel --reprob 0.2 --amp --lr .024 --teacher w.pth"),
    ("train_imagenet", "DATA --model-config net.config -b128 -j6 -vb 64 --resume --output DIR"),
    ("train_cifar", "--dataset cifar10 --data DATA --model nsganetv2_s --model-config net.config "
                    "--initial-checkpoint net.inherited --img-size 224 --drop 0.2 --drop-path 0.2 --cutout "
                    "--autoaugment --save runs/c10"),
    ("train_cifar", "--data DATA --model nsganetv2_s --model-config net.config --img-size 224 --drop 0.2 "
                    "--drop-path 0.2 --cutout --autoaugment --save"),
    ("train_cifar", "--net_type macro --cutout --batch_size 128 --epochs 350"),
    ("train_cifar", "--net_type micro --arch NSGANet --layers 20 --init_channels 34 --filter_increment 4 --cutout "
                    "--auxiliary --batch_size 96 --droprate 0.2 --SE --epochs 600"),
    ("validation", "--dataset cifar10 --data DATA --model net.config --pretrained net.init --img-size 224 "
                   "-b 256 -j 4 --save out.json"),
    ("validation", "--dataset imagenet --data DATA --model net.config --pretrained net.init"),
    ("validation", "--net_type macro --model_path weights.pt --data DATA"),
    ("validation", "--task cifar100 --net_type micro --arch NSGANet --init_channels 36 --filter_increment 6 --SE "
                   "--auxiliary --model_path weights.pt"),
    ("validation", "-m net.config --pretrained w.pth --use-ema"),
]


@pytest.mark.parametrize("script, command", DOCUMENTED)
def test_documented_commands_still_parse(script, command):
    _parse(script, command.split())


@pytest.mark.parametrize("script, launcher", [("evaluator", "python evaluator.py"),
                                              ("train_cifar", "python train_cifar.py"),
                                              ("train_imagenet", "./distributed_train.sh 8"),
                                              ("validation", "python validation.py")])
def test_help_examples_keep_their_line_breaks_and_parse(script, launcher):
    """--help shows the module docstring's examples; a backslash ending a line of a plain docstring joined it to
    the next (an example then read `... --model-config net.config         --initial-checkpoint ...`)."""
    text = _module(script).build_parser().format_help()
    lines = text.splitlines()
    continued = [i for i, line in enumerate(lines) if line.endswith(" \\")]
    assert continued and all(re.match(r" {8}[-\[]", lines[i + 1]) for i in continued)
    parsed = 0
    for i, line in enumerate(lines):
        if line.strip().startswith(launcher) and line.endswith(" \\"):  # a whole multi-line example
            command, j = line.strip()[:-1], i
            while lines[j].endswith(" \\"):
                j += 1
                command += " " + lines[j].strip().removesuffix("\\")
            argv = command[len(launcher):].split()
            if "[" not in command and "..." not in command:
                _parse(script, argv)
                parsed += 1
    assert parsed >= (script != "evaluator")  # evaluator.py's multi-line examples show optional [flags]


# ---------------------------------------------------------------------------------------- evaluator.py
SUBNET = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}


@pytest.mark.parametrize("n_classes", ["0", "-5"])
def test_profile_refuses_a_head_without_classes(tmp_path, n_classes):
    evaluator = _module("evaluator")
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps(SUBNET))
    args = evaluator.build_parser().parse_args(["--profile", "--subnet", str(path), "--n_classes", n_classes])
    with pytest.raises(ValueError, match=f"--n_classes must be positive, got {n_classes}"):
        evaluator.profile(args)
    micro = evaluator.build_parser().parse_args(["--profile", "--net_type", "micro", "--n_classes", n_classes])
    with pytest.raises(ValueError, match=f"--n_classes must be positive, got {n_classes}"):
        evaluator.profile(micro)


def test_profile_default_and_explicit_class_counts(tmp_path):
    evaluator = _module("evaluator")
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps(SUBNET))
    default = evaluator.profile(evaluator.build_parser().parse_args(["--profile", "--subnet", str(path)]))
    explicit = evaluator.profile(evaluator.build_parser().parse_args(
        ["--profile", "--subnet", str(path), "--n_classes", "1000"]))
    ten = evaluator.profile(evaluator.build_parser().parse_args(
        ["--profile", "--subnet", str(path), "--n_classes", "10"]))
    assert default == explicit
    # by hand: width 1.0's head is Linear(1280, n): 990 classes fewer save 1280 * 990 MACs and 1280 * 990 + 990 params
    assert (default["params"] - ten["params"]) * 1e6 == pytest.approx(1280 * 990 + 990)
    assert (default["flops"] - ten["flops"]) * 1e6 == pytest.approx(1280 * 990)
    assert (default["flops_ofa"] - ten["flops_ofa"]) * 1e6 == pytest.approx(1280 * 990)


def test_profile_checks_n_classes_against_the_dataset_as_a_search_does(tmp_path):
    """--dataset cifar100 --n_classes 10 counted a 10-class head silently (--dataset ignored), where a search on
    cifar100 refuses that head; a larger head is what the search would build, and a class folder not given to
    count takes --n_classes as it comes."""
    evaluator = _module("evaluator")
    path = tmp_path / "net.subnet"
    path.write_text(json.dumps(SUBNET))

    def profile(*argv):
        return evaluator.profile(evaluator.build_parser().parse_args(["--profile", "--subnet", str(path), *argv]))

    with pytest.raises(ValueError, match="^--n_classes 10 is smaller than the 100 classes of cifar100$"):
        profile("--dataset", "cifar100", "--n_classes", "10")
    twelve = profile("--n_classes", "12")
    assert profile("--dataset", "cifar10", "--n_classes", "12") == twelve
    assert profile("--dataset", "folder", "--n_classes", "12") == twelve
    assert profile("--dataset", "cifar10") == profile("--n_classes", "10") != twelve


@pytest.mark.parametrize("argv, message", [
    # --profile --save wrote nothing; --net_type, --layers, --config were ignored by an evaluation, --subnet and
    # --img-size by --net_type, --layers by macro networks: each printed numbers of something else than asked
    (["--profile", "--subnet", "S", "--save", "x.json"], "--save only without --profile (evaluating a subnet)"),
    (["--profile", "--subnet", "S", "--supernet_path", "w.pth"], "--supernet_path only without --profile"),
    (["--subnet", "S", "--supernet_path", "w.pth", "--net_type", "micro"], "--net_type only with --profile"),
    (["--subnet", "S", "--supernet_path", "w.pth", "--layers", "5", "--SE"], "--layers, --SE only with --profile"),
    (["--profile", "--net_type", "micro", "--subnet", "S"], "--subnet only for OFA subnets"),
    (["--profile", "--net_type", "micro", "--img-size", "64"], "--img-size only for OFA subnets"),
    (["--profile", "--net_type", "macro", "--layers", "5"], "--layers only with --net_type micro"),
    (["--profile", "--subnet", "S", "--init_channels", "8"], "--init_channels only with --net_type"),
])
def test_evaluator_refuses_flags_of_another_mode(argv, message):
    evaluator = _module("evaluator")
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluator.main(argv)


# ---------------------------------------------------------------------------------------- plot_runs.py
def test_plot_runs_help_names_the_default_output(capsys):
    with pytest.raises(SystemExit) as stop:
        _module("scripts/plot_runs").main(["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT PNG file for the overlay (default: runs_hv.png in the current folder)" in text, text


def test_msunas_args_yaml_leaves_a_supernet_trained_into_the_run_to_the_run_folder(tmp_path):
    # a relative SAVE/supernet path recorded in args.yaml would break `--resume /abs/SAVE` from elsewhere
    from types import SimpleNamespace

    from search_space import OFASearchSpace

    msunas = _module("msunas")
    args = msunas.build_parser().parse_args(["--save", str(tmp_path / "run"), "--dataset", "digits"])
    args.evaluator = "supernet"
    space = OFASearchSpace(resolutions=(24, 28, 32))
    own = SimpleNamespace(space=space, n_classes=10, vld_size=287,
                          supernet_path=str(tmp_path / "run" / "supernet" / "checkpoint.pth"))
    stored = msunas.resolved_arguments(args, own)
    assert stored["supernet_path"] is None and stored["vld_size"] == 287 and stored["resolutions"] == [24, 28, 32]
    given = SimpleNamespace(**{**vars(own), "supernet_path": "/models/ofa.pth"})
    assert msunas.resolved_arguments(args, given)["supernet_path"] == "/models/ofa.pth"


def test_a_script_warning_is_one_line():
    import subprocess
    import sys

    code = ("import warnings\nfrom codebase.cli import run_main\n"
            "run_main(lambda: warnings.warn('the supernet was trained on other\\ntraining images', UserWarning))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0
    assert out.stderr == "warning: the supernet was trained on other training images\n"


@pytest.mark.parametrize("script, argv, message", [
    ("msunas.py", ["--iter", "3"], "error: unrecognized arguments: --iter 3"),
    ("msunas.py", ["--resume", "no_such_run"], "error: --resume no_such_run"),
    ("msunas.py", ["--dist_timeout", "0"], "error: --dist_timeout must be > 0"),
    ("train_imagenet.py", ["DATA", "--model-config", "c", "--resume"], "error: --resume needs --output DIR"),
    ("train_cifar.py", ["--epochs", "-1"], "error: --epochs must be >= 0"),
    ("train_cifar.py", ["--resume", "no_such_run"], "error: --resume no_such_run"),
])
def test_bad_arguments_under_torchrun_are_said_once_per_machine(tmp_path, script, argv, message):
    # every process of a torchrun job has the same command line: only local rank 0 says what is wrong with it
    import os
    import subprocess
    import sys

    said = {}
    for local_rank in ("0", "1"):
        env = {**os.environ, "LOCAL_RANK": local_rank, "RANK": local_rank, "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, str(ROOT / script), *argv], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=120)
        assert out.returncode == 2
        said[local_rank] = out.stderr.strip().splitlines()
    assert len(said["0"]) == 1 and said["0"][0].startswith(message), said["0"]
    assert said["1"] == []


def test_a_resume_names_each_flag_that_would_change_its_run(tmp_path, monkeypatch):
    """The one mechanism of msunas, train_cifar, train_imagenet and train_supernet --resume."""
    from codebase.cli import changed_settings, check_resume_save, flag_names, same_setting

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.config").write_text("{}")
    parser = OneLineParser()
    parser.add_argument("--model-config", "--model_config", dest="model_config")
    parser.add_argument("--lr", type=float)
    stored = {"model_config": str(tmp_path / "net.config"), "lr": 0.05, "sizes": [160, 224], "epochs": 2}
    given = {"model_config": "net.config", "lr": 0.1, "sizes": [160, 192], "epochs": 3}
    same = lambda key, a, b: same_setting(a, b, path=key == "model_config")  # noqa: E731
    assert changed_settings(given, stored, {"epochs"}, flag_names(parser), same) == [
        "--lr 0.1 (the run has 0.05)", "--sizes 160 192 (the run has 160 224)"]  # the same file, typed relative
    assert changed_settings(given, stored, {"epochs"})[0].startswith("--model_config net.config (the run has /")
    check_resume_save(tmp_path, {"save": "."})  # the run's own folder, typed otherwise
    with pytest.raises(ValueError, match=r"continues the run in that folder; drop --save other$"):
        check_resume_save(tmp_path, {"save": "other"})


# ---------------------------------------------------------------------------------------- flag values and modes
def test_check_ranges_names_the_flag_and_its_interval():
    from argparse import Namespace

    from codebase.cli import check_ranges

    ranges = {"lr": "(0, inf)", "drop": "[0, 1)", "reprob": "[0, 1]", "unset": "[1, inf)"}
    check_ranges(Namespace(lr=0.1, drop=0.0, reprob=1.0, unset=None), ranges)  # bounds as written; None unchecked
    for value, bad, message in [("lr", 0.0, "--lr 0.0: must be > 0"), ("drop", 1.0, r"--drop 1.0: must be in \[0, 1\)"),
                                ("drop", -0.1, "must be in"), ("reprob", float("nan"), "--reprob nan: must be in"),
                                ("lr", float("inf"), "--lr inf: must be > 0")]:
        args = Namespace(lr=0.1, drop=0.0, reprob=1.0, unset=None)
        setattr(args, value, bad)
        with pytest.raises(ValueError, match=message):
            check_ranges(args, ranges, {"lr": "--lr"})


def test_check_unused_names_each_flag_with_when_it_applies():
    from codebase.cli import check_unused

    unused = {"layers": "only with --net_type", "SE": "only with --net_type", "cutout_length": "only with --cutout"}
    check_unused({"epochs": 3}, unused)
    with pytest.raises(ValueError, match=r"^--layers, --SE only with --net_type; --cutout_length only with --cutout: "
                                         r"no effect here \(not silently ignored\); leave them out$"):
        check_unused({"SE": True, "layers": 3, "cutout_length": 8}, unused)


def test_check_storable_names_the_flag_whose_path_args_yaml_cannot_hold():
    import os

    from codebase.cli import check_storable

    check_storable({"data": "/tmp/café", "resolutions": [24, 32], "init": None})  # UTF-8: fine
    with pytest.raises(ValueError, match=r"^--init /w/d\\xe9ta/s.pth: not UTF-8 text, which the run's args.yaml "
                                         r"cannot hold \(a --resume could not read it back\); rename it"):
        check_storable({"data": "/tmp/x", "init": os.fsdecode(b"/w/d\xe9ta/s.pth")})
    with pytest.raises(ValueError, match=r"^--model-config /w/\\xff\\xfe: "):
        check_storable({"model_config": os.fsdecode(b"/w/\xff\xfe")}, {"model_config": "--model-config"})


@pytest.mark.parametrize("script, argv", [
    ("msunas.py", ["--dataset", "folder", "--data", "DATA", "--save", "OUT", "--n_doe", "4", "--iterations", "0"]),
    ("train_cifar.py", ["--dataset", "folder", "--data", "DATA", "--save", "OUT", "--epochs", "1"]),
    ("train_imagenet.py", ["DATA", "--dataset", "folder", "--model-config", "CONFIG", "--output", "OUT",
                           "--epochs", "1"]),
])
def test_a_data_path_that_is_not_utf8_is_refused_before_a_run_folder_is_made(tmp_path, script, argv):
    """Each tool that writes an args.yaml refuses a --data path YAML cannot hold in one line, before its run folder
    exists (written, every --resume of the run would refuse its args.yaml as corrupt)."""
    import os
    import subprocess
    import sys

    data = os.path.join(os.fsencode(tmp_path), b"d\xe9ta")
    for split in (b"train", b"test"):
        os.makedirs(os.path.join(data, split, b"cat"))
    config = tmp_path / "net.config"
    config.write_text(json.dumps({"name": "MobileNetV3"}))
    out = tmp_path / "run"
    fill = {"DATA": data, "OUT": os.fsencode(out), "CONFIG": os.fsencode(config)}
    command = [os.fsencode(sys.executable), os.fsencode(ROOT / script), *(fill.get(a, a.encode()) for a in argv)]
    done = subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = done.stderr.decode(errors="replace").strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(err) == 1 and "d\\xe9ta" in err[0] and "not UTF-8 text, which the run's args.yaml cannot hold" in err[0]
    assert not out.exists()


def test_a_bare_measure_is_a_usage_error_not_an_empty_measurement(capsys):
    """`evaluator.py --measure` with no device measured nothing and said nothing (nargs='*')."""
    err = _usage_error(capsys, "evaluator", ["--subnet", "s.subnet", "--measure"])
    assert "--measure" in err
    assert _parse("evaluator", ["--subnet", "s.subnet", "--measure", "cpu"]).measure == ["cpu"]


def test_train_imagenets_default_loader_processes_fit_the_machine():
    """timm's default of 6 loader processes made torch warn every epoch on machines of fewer cores."""
    import os

    workers = _parse("train_imagenet", ["DATA", "--model-config", "net.config"]).workers
    assert workers == min(6, os.cpu_count() or 1)
