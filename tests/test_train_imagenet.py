"""train_imagenet.py: the original README's recipe through distributed_train.sh (2 gloo processes),
resume, the teacher, and validation.py reproducing the logged accuracy (model and EMA weights)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from codebase.io import load_torch, read_yaml, save_torch
from tests.data_fixtures import write_image_folder
from tests.test_validation import tiny_export

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["-b", "4", "--sched", "step", "--epochs", "1", "--decay-epochs", "2.4", "--decay-rate", ".97", "--opt",
          "rmsproptf", "--opt-eps", ".001", "-j", "0", "--warmup-lr", "1e-6", "--weight-decay", "1e-5", "--drop",
          "0.2", "--drop-path", "0.2", "--model-ema", "--model-ema-decay", "0.9999", "--aa", "rand-m9-mstd0.5",
          "--remode", "pixel", "--reprob", "0.2", "--amp", "--lr", ".024"]


def metrics(folder: Path) -> list[dict[str, float]]:
    with open(folder / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    folder = tmp_path_factory.mktemp("imagenet")
    config, weights, _ = tiny_export(folder / "model")  # 10-class head: fine-tuning starts a 3-class one
    write_image_folder(folder / "data", ["train", "test"], ["cat", "dog", "emu"], per_class=6, size=(40, 48))
    torch.manual_seed(3)
    supernet = OFAMobileNetV3(n_classes=3, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                              depth_list=[2, 3, 4])
    teacher = save_torch(folder / "supernet.pth", {"state_dict": supernet.state_dict()})
    return folder, config, weights, teacher, supernet


def test_readme_recipe_on_two_processes_and_validation(setup, tmp_path):
    folder, config, weights, teacher, _ = setup
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run([str(ROOT / "distributed_train.sh"), "2", folder / "data", "--dataset", "folder",
                             "--model", "nsganetv2_s", "--model-config", config, "--initial-checkpoint", weights,
                             "--img-size", "32", *RECIPE, "--teacher", teacher, "--teacher-width", "1.0",
                             "--output", out, "--quiet", "--device", "cpu"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    row = metrics(out)[-1]
    assert row["epoch"] == 1 and row["lr"] == pytest.approx(1e-6)  # first warm-up epoch
    saved = load_torch(out / "model.pth")
    assert {"state_dict", "state_dict_ema"} <= set(saved)
    assert saved["state_dict"]["classifier.linear.weight"].shape[0] == 3
    import validation

    for use_ema, key in ((False, "val_top1"), (True, "ema_top1")):
        argv = ["--dataset", "folder", "--data", folder / "data", "--model", out / "net.config", "--pretrained",
                out / "model.pth", "-j", "0", "-b", "5", "--save", tmp_path / "v.json", *(["--use-ema"] * use_ema)]
        assert validation.main([str(a) for a in argv]) == 0
        v = json.loads((tmp_path / "v.json").read_text())
        assert v["n"] == 18 and v["img_size"] == 32  # the whole test set, though each process scored half
        assert v["top1"] == pytest.approx(row[key], abs=1e-3)
        if not use_ema:  # rank 1 scored its half with rank 0's BN statistics, the ones saved
            assert v["loss"] == pytest.approx(row["val_loss"], rel=1e-5)
    assert v["top5"] == pytest.approx(row["ema_top5"], abs=1e-3)


def test_resume_continues_the_schedule(setup, tmp_path, capsys):
    import train_imagenet

    folder, config, weights, _, _ = setup
    # the recipe without augmentation (its --remode would then shape nothing, which is refused)
    recipe = [a for a in RECIPE if a not in ("--remode", "pixel")]
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", *recipe, "--output", tmp_path / "run", "--quiet", "--device", "cpu",
            "--aa", "", "--reprob", "0"]
    assert train_imagenet.main([str(a) for a in argv]) == 0
    # the recipe's --amp has no effect on CPU, and the run says so instead of ignoring it silently
    assert "note: --amp applies on CUDA only; training in fp32 on cpu" in capsys.readouterr().err
    first = metrics(tmp_path / "run")
    at = argv.index("--epochs")
    argv[at + 1] = "2"
    assert train_imagenet.main([str(a) for a in [*argv, "--resume"]]) == 0
    rows = metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0] == first[0]
    # timm's linear warm-up over 3 epochs: epoch index 1 runs at warmup_lr + (lr - warmup_lr) / 3
    assert rows[1]["lr"] == pytest.approx(1e-6 + (0.024 - 1e-6) / 3, rel=1e-4)
    assert load_torch(tmp_path / "run" / "checkpoint.pth")["epoch"] == 2
    # the same two epochs without the interruption: the same weights, EMA weights and metrics, so the resume
    # restored the weights, EMA, optimizer, schedule and random state
    argv[argv.index("--output") + 1] = tmp_path / "straight"
    assert train_imagenet.main([str(a) for a in argv]) == 0
    assert metrics(tmp_path / "straight") == rows
    resumed, straight = load_torch(tmp_path / "run" / "model.pth"), load_torch(tmp_path / "straight" / "model.pth")
    for key in ("state_dict", "state_dict_ema"):
        assert resumed[key].keys() == straight[key].keys()
        for name, tensor in straight[key].items():
            assert torch.equal(resumed[key][name], tensor), (key, name)


def test_two_process_resume_equals_the_uninterrupted_run(setup, tmp_path):
    """RandAugment and random erasing (Python's and torch's generators, in the main process: -j 0), mixup (numpy's),
    dropout and drop-path draw on each rank: the checkpoint must hold every rank's random state (under torchrun it
    held none, so the resumed epoch repeated the first epoch's draws)."""
    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", *RECIPE, "--mixup", "0.2", "--quiet", "--device", "cpu"]

    def torchrun(*extra):
        out = subprocess.run([os.sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              str(ROOT / "train_imagenet.py"), *map(str, [*argv, *extra])], cwd=ROOT,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    torchrun("--epochs", "2", "--output", tmp_path / "straight")
    torchrun("--epochs", "1", "--output", tmp_path / "run")
    resumed = torchrun("--epochs", "2", "--output", tmp_path / "run", "--resume")
    assert "random state is not restored" not in resumed.stderr
    assert metrics(tmp_path / "run") == metrics(tmp_path / "straight")
    run, straight = load_torch(tmp_path / "run" / "model.pth"), load_torch(tmp_path / "straight" / "model.pth")
    for key in ("state_dict", "state_dict_ema"):
        for name, tensor in straight[key].items():
            assert torch.equal(run[key][name], tensor), (key, name)
    assert len(load_torch(tmp_path / "run" / "checkpoint.pth")["rng"]) == 2  # one state per rank


def test_a_corrupt_image_on_one_rank_ends_every_rank_in_one_line(tmp_path):
    """As train_cifar: the other rank died in DDP's next collective with a page of gloo traceback and exit code 1."""
    from tests.test_train_cifar import assert_one_line_per_rank, corrupt_image_folder, launch_two_ranks

    bad = corrupt_image_folder(tmp_path / "data")
    config, weights, _ = tiny_export(tmp_path / "model", n_classes=2)
    argv = [tmp_path / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "--epochs", "1", "-b", "2", "-j", "0", "--device", "cpu", "--quiet", "--output",
            tmp_path / "out"]
    assert_one_line_per_rank(launch_two_ranks("train_imagenet.py", argv), bad)


def test_digits_runs_without_a_data_folder_and_other_sets_need_one(setup, tmp_path, capsys):
    """DATA was a required positional: --dataset digits (built in) could not run without a dummy "" for it, and a
    real folder was refused with "(digits is --dataset's default)", untrue here (imagenet is)."""
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = ["--model-config", config, "--initial-checkpoint", weights, "--img-size", "32", "-b", "64", "-j", "0",
            "--epochs", "1", "--quiet", "--device", "cpu"]

    def main(*extra):
        return train_imagenet.main([str(a) for a in [*extra, *argv]])

    with pytest.raises(ValueError, match="^the following arguments are required: data \\(the folder of --dataset "
                                         "imagenet; only --dataset digits, built in, needs none\\)$"):
        main("--output", tmp_path / "a")
    with pytest.raises(ValueError, match=f"^DATA {folder / 'data'}: --dataset digits is scikit-learn's built-in data "
                                         f"set, which reads no folder; leave DATA out"):
        main(folder / "data", "--dataset", "digits", "--output", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert main("--dataset", "digits", "--output", tmp_path / "run") == 0
    assert read_yaml(tmp_path / "run" / "args.yaml")["data"] is None and len(metrics(tmp_path / "run")) == 1


def test_teacher_is_the_supernets_largest_subnet(setup):
    from codebase.finetune_imagenet import load_teacher

    _, _, _, teacher_path, supernet = setup
    teacher = load_teacher(teacher_path, 1.0, 3)
    supernet.set_active_subnet(ks=7, e=6, d=4)  # the ofa package's own largest-subnet extraction
    reference = supernet.get_active_subnet(preserve_weight=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(teacher(x), reference(x), atol=1e-5)
    with pytest.raises(ValueError, match="3 classes, the data set 10"):
        load_teacher(teacher_path, 1.0, 10)
    with pytest.raises(ValueError, match="teacher-width"):
        load_teacher(teacher_path, 1.2, 3)


def test_the_teacher_adds_its_weighted_distillation_term(setup, tmp_path):
    """--teacher (the README recipe's) adds --teacher-weight x soft-target cross-entropy to the training loss. With
    lr 1e-9 the student does not move: the logged losses differ by that term (and by about 0.01 where building the
    teacher shifts the random draws of the augmentations). The fresh 3-class head outputs near-uniform q (its
    validation loss is ln 3), and the soft cross-entropy -sum p log q of a uniform q is ln 3 whatever the teacher's
    p; a teacher left out, or its weight ignored, fails."""
    import math

    import train_imagenet

    folder, config, weights, teacher, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--lr", "1e-9", "--warmup-epochs", "0",
            "--quiet", "--device", "cpu"]
    loss = {}
    for name, extra in (("plain", []), ("w1", ["--teacher", teacher, "--teacher-width", "1.0"]),
                        ("w2", ["--teacher", teacher, "--teacher-width", "1.0", "--teacher-weight", "2"])):
        assert train_imagenet.main([str(a) for a in [*argv, *extra, "--output", tmp_path / name]]) == 0
        (row,) = metrics(tmp_path / name)
        assert row["val_loss"] == pytest.approx(math.log(3), abs=1e-3)  # the premise: near-uniform outputs
        loss[name] = row["train_loss"]
    assert loss["w1"] - loss["plain"] == pytest.approx(math.log(3), abs=0.05)
    assert loss["w2"] - loss["plain"] == pytest.approx(2 * (loss["w1"] - loss["plain"]), rel=0.02)


def test_distributed_train_runs_under_plain_sh():
    # the original README starts it with `sh`, which is dash on Debian/Ubuntu (no pipefail, no [[ ]])
    usage = subprocess.run(["sh", str(ROOT / "distributed_train.sh"), "two"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr and "Illegal" not in usage.stderr
    out = subprocess.run(["sh", str(ROOT / "distributed_train.sh"), "1", "/nonexistent", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "usage: train_imagenet.py" in out.stdout, out.stderr[-2000:]


def test_resume_with_loader_workers_equals_the_uninterrupted_run(setup, tmp_path):
    # with worker processes the augmentations draw from the workers' random state: a resumed run must seed its
    # workers exactly as the uninterrupted run did in that epoch (persistent workers kept epoch 1's seeds)
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "1", "--lr", ".024", "--model-ema", "--reprob", "0.2", "--quiet",
            "--device", "cpu"]
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "1", "--output", tmp_path / "run"]]) == 0
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "2", "--output", tmp_path / "run",
                                                 "--resume"]]) == 0
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "2", "--output", tmp_path / "straight"]]) == 0
    assert metrics(tmp_path / "run") == metrics(tmp_path / "straight")
    resumed, straight = load_torch(tmp_path / "run" / "model.pth"), load_torch(tmp_path / "straight" / "model.pth")
    for key in ("state_dict", "state_dict_ema"):
        for name, tensor in straight[key].items():
            assert torch.equal(resumed[key][name], tensor), (key, name)


def test_bad_arguments_are_one_error_line(setup, tmp_path):
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--quiet", "--device", "cpu"]

    def main(*extra):
        return train_imagenet.main([str(a) for a in [*argv, *extra]])

    with pytest.raises(ValueError, match="even --batch-size"):  # timm's Mixup asserts on odd batches, cutmix too
        main("--cutmix", "1.0", "-b", "3", "--output", tmp_path / "a")
    with pytest.raises(ValueError, match="--aa bogus"):
        main("--aa", "bogus", "--output", tmp_path / "b")
    with pytest.raises(ValueError, match="--device foo"):
        main("--device", "foo", "--output", tmp_path / "c")
    # resuming with another architecture is refused by name, before anything is loaded; the run folder's
    # net.config (a resume builds the network from it) edited in place names the first tensor of checkpoint.pth
    # that differs
    own = tmp_path / "net.config"
    own.write_text(Path(config).read_text())
    at = argv.index("--model-config")
    mine = [*argv[:at], "--model-config", own, *argv[at + 4:]]  # no --initial-checkpoint: it fits only `config`
    assert train_imagenet.main([str(a) for a in [*mine, "--output", tmp_path / "run"]]) == 0
    other, _, _ = tiny_export(tmp_path / "other", n_classes=3)
    cfg = json.loads(other.read_text())
    cfg["classifier"]["in_features"] = cfg["feature_mix_layer"]["out_channels"] = 64
    other.write_text(json.dumps(cfg))
    changed = [*argv[:at], "--model-config", other, *argv[at + 4:]]
    with pytest.raises(ValueError, match=r"--model-config \S+other/net.config \(the run has \S+/net.config\)"):
        train_imagenet.main([str(a) for a in [*changed, "--output", tmp_path / "run", "--resume"]])
    (tmp_path / "run" / "net.config").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"checkpoint.pth does not fit the network: tensor 'feature_mix_layer"):
        train_imagenet.main([str(a) for a in [*mine, "--output", tmp_path / "run", "--resume"]])


def test_output_of_another_run_is_refused_and_a_first_epoch_kill_resumes(setup, tmp_path):
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--model-ema", "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "model.pth:1"}
    killed = subprocess.run([os.sys.executable, str(ROOT / "train_imagenet.py"), *argv, "--output", tmp_path / "run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
    (stale,) = (tmp_path / "run").glob(".model.pth.*.tmp")  # what the kill left
    (tmp_path / "run" / ".notes.txt").write_text("mine")  # a hidden file of the user's
    # the first epoch again (was: "checkpoint.pth: weight file not found"), as an uninterrupted run has it
    assert train_imagenet.main([str(a) for a in [*argv, "--output", tmp_path / "run", "--resume"]]) == 0
    assert not stale.exists() and (tmp_path / "run" / ".notes.txt").read_text() == "mine"  # was: left for good
    assert train_imagenet.main([str(a) for a in [*argv, "--output", tmp_path / "ref"]]) == 0
    assert metrics(tmp_path / "run") == metrics(tmp_path / "ref")
    # a fresh run into a finished one is refused before anything is written (was: overwritten)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ValueError, match="--output .* already holds a run .*--resume --output"):
        train_imagenet.main([str(a) for a in [*argv, "--output", tmp_path / "run"]])
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    with pytest.raises(ValueError, match="not a train_imagenet.py run folder"):
        train_imagenet.main([str(a) for a in [*argv, "--output", tmp_path / "none", "--resume"]])
    assert not (tmp_path / "none").exists()


def test_negative_epochs_and_a_diverged_loss_are_one_error_line(setup, tmp_path):
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--quiet", "--device", "cpu", "--output", tmp_path / "run"]
    with pytest.raises(ValueError, match="--epochs -1: must be >= 0"):  # was: an empty run, exit 0
        train_imagenet.main([str(a) for a in [*argv, "--epochs", "-1"]])
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="training loss is nan at epoch 1; lower --lr"):  # was: a traceback
        train_imagenet.main([str(a) for a in [*argv, "--epochs", "1", "--opt", "sgd", "--lr", "1e12",
                                              "--warmup-epochs", "0"]])


def test_resume_takes_the_stored_settings_and_refuses_a_changed_one_by_name(setup, tmp_path, monkeypatch):
    """--resume continues with the run's args.yaml: a changed --lr was silently overridden by the checkpoint's
    optimizer and schedule while args.yaml recorded it; flags left out were the defaults in args.yaml."""
    import train_imagenet
    from codebase.io import read_yaml

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--img-size", "32", "-b", "4", "-j",
            "0", "--model-ema", "--quiet", "--device", "cpu"]

    def main(*extra):
        return train_imagenet.main([str(a) for a in [*argv, *extra]])

    monkeypatch.chdir(Path(weights).parent)  # a relative path is stored absolute: the resume runs elsewhere
    assert main("--epochs", "1", "--lr", "0.05", "--warmup-epochs", "0", "--initial-checkpoint", Path(weights).name,
                "--output", tmp_path / "run") == 0
    assert read_yaml(tmp_path / "run" / "args.yaml")["initial_checkpoint"] == str(weights)
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ValueError, match=r"--lr 0.1 \(the run has 0.05\), --opt sgd \(the run has rmsproptf\); "
                                         r"only --epochs") as error:
        main("--epochs", "2", "--lr", "0.1", "--opt", "sgd", "--output", tmp_path / "run", "--resume")
    assert "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    # the flags left out are the run's (lr 0.05, no warm-up, its weights), not the defaults (0.024, 3 warm-up
    # epochs, none)
    assert main("--epochs", "2", "--output", tmp_path / "run", "--resume") == 0
    stored = read_yaml(tmp_path / "run" / "args.yaml")
    assert (stored["lr"], stored["warmup_epochs"], stored["epochs"]) == (0.05, 0, 2)
    assert stored["initial_checkpoint"] == str(weights)
    assert main("--epochs", "2", "--lr", "0.05", "--warmup-epochs", "0", "--initial-checkpoint", weights,
                "--output", tmp_path / "straight") == 0
    assert metrics(tmp_path / "run") == metrics(tmp_path / "straight")


def test_resume_needs_only_data_and_the_output_folder(setup, tmp_path):
    """The README's form `train_imagenet.py DATA --resume --output DIR`: --model-config is the run's, like every flag
    left out (argparse required it, so the resume stopped at "the following arguments are required")."""
    import train_imagenet
    from codebase.io import read_yaml

    folder, config, weights, _, _ = setup
    export = tmp_path / "export"  # a copy, deleted below: the run folder alone continues (it needed the export)
    shutil.copytree(Path(config).parent, export)
    config, weights = export / Path(config).name, export / Path(weights).name
    data, run = str(folder / "data"), str(tmp_path / "run")
    assert train_imagenet.main([data, "--dataset", "folder", "--model-config", str(config), "--initial-checkpoint",
                                str(weights), "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1",
                                "--warmup-epochs", "0", "--quiet", "--device", "cpu", "--output", run]) == 0
    shutil.rmtree(export)
    assert train_imagenet.main([data, "--resume", "--output", run, "--epochs", "2"]) == 0
    assert [row["epoch"] for row in metrics(tmp_path / "run")] == [1, 2]
    assert read_yaml(tmp_path / "run" / "args.yaml")["model_config"] == str(config)
    with pytest.raises(ValueError, match="^the following arguments are required: --model-config") as error:
        train_imagenet.main([data, "--output", str(tmp_path / "new")])
    assert "\n" not in str(error.value) and not (tmp_path / "new").exists()


def test_a_lengthened_cosine_run_follows_the_schedule_of_its_new_length(setup, tmp_path):
    # the schedule restored from checkpoint.pth kept the old length: epoch 2 of a cosine run lengthened from 1 to
    # 2 epochs ran at the minimum lr instead of half way down, unlike the same 2 epochs run straight
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--quiet", "--device", "cpu", "--sched", "cosine",
            "--warmup-epochs", "0", "--lr", "0.02", "--min-lr", "0", "--model-ema"]
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "1", "--output", tmp_path / "run"]]) == 0
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "2", "--output", tmp_path / "run",
                                                 "--resume"]]) == 0
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "2", "--output", tmp_path / "straight"]]) == 0
    rows = metrics(tmp_path / "run")
    assert rows[1]["lr"] == pytest.approx(0.01)
    assert rows == metrics(tmp_path / "straight")


def test_plateau_decays_on_validation_top1_and_a_resume_keeps_its_patience_count(setup, tmp_path):
    """--sched plateau trained at --warmup-lr for good (timm's step(0) without warm-up) and never decayed (no metric
    passed); timm's own checkpoint keeps only the best metric, so a resume also restarted the patience count."""
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--quiet", "--device", "cpu", "--sched", "plateau",
            "--warmup-epochs", "0", "--lr", "0.02", "--patience-epochs", "1", "--decay-rate", "0.5", "--model-ema"]
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "5", "--output", tmp_path / "straight"]]) == 0
    rows = metrics(tmp_path / "straight")
    # torch's ReduceLROnPlateau rule by hand on the EMA's top-1 (timm's choice with --model-ema): halve once more
    # than 1 epoch in a row brings no better one
    lr, best, bad, expected = 0.02, -float("inf"), 0, []
    for row in rows:
        expected.append(lr)
        best, bad = (row["ema_top1"], 0) if row["ema_top1"] > best * (1 + 1e-4) else (best, bad + 1)
        if bad > 1:
            lr, bad = lr / 2, 0
    assert [row["lr"] for row in rows] == pytest.approx(expected) and min(expected) < 0.02
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "2", "--output", tmp_path / "run"]]) == 0
    assert train_imagenet.main([str(a) for a in [*argv, "--epochs", "5", "--output", tmp_path / "run",
                                                 "--resume"]]) == 0
    assert metrics(tmp_path / "run") == rows


def test_a_validation_batch_size_below_1_is_refused_before_anything_is_written(setup, tmp_path):
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--quiet", "--device", "cpu", "-vb", "0",
            "--output", tmp_path / "run"]
    with pytest.raises(ValueError, match="--validation-batch-size 0: must be >= 1"):  # was: after the first epoch
        train_imagenet.main([str(a) for a in argv])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, message", [
    (["--smoothing", "1.5"], r"--smoothing 1.5: must be in \[0, 1\)"),  # was: timm's bare AssertionError traceback
    (["--drop-path", "2"], r"--drop-path 2.0: must be in \[0, 1\)"),  # was: a traceback in the first step
    (["--warmup-lr", "-1"], "--warmup-lr -1.0: must be >= 0"),  # was: trained at lr -1 silently
    (["-j", "100000"], r"--workers 100000: must be in \[0, 256\]"),  # was: 100,000 loader processes forked
    (["--decay-rate", "-1"], r"--decay-rate -1.0: must be > 0"),
    (["--decay-rate", "1.5"], r"--decay-rate 1.5: must be in \(0, 1\] \(above 1 only as --sched poly's power\)"),
    # these were timm's errors (or an AttributeError on a None schedule) after the data set was read
    (["--sched", "nosuch"], "--opt rmsproptf --sched nosuch: Unknown scheduler 'nosuch'"),
    (["--opt", "nosuch"], "--opt nosuch --sched step: "),
    # read only by some schedules: were silently ignored by the others
    (["--sched", "cosine", "--decay-epochs", "3"], "--decay-epochs only with --sched step, wsd, rsqrt"),
    (["--sched", "cosine", "--decay-rate", "0.5"], "--decay-rate only with --sched step, multistep, plateau, poly"),
    (["--momentum", "-1"], r"--momentum -1.0: must be in \[0, 1\)"),  # was: timm's line after the data set was read
    (["--model-ema-decay", "0.99"], "--model-ema-decay only with --model-ema"),  # was: silently ignored
    (["--teacher-weight", "2"], "--teacher-weight only with --teacher"),
    # random erasing is off without --reprob: its mode and count were silently ignored
    (["--remode", "const"], r"--remode only with --reprob > 0"),
    (["--recount", "2"], r"--recount only with --reprob > 0"),
    # timm turns colour jitter off under AutoAugment / RandAugment (except its 3a policies): was silently ignored
    (["--aa", "rand-m9-mstd0.5", "--color-jitter", "0.3"], r"--color-jitter only without --aa"),
    # was: "--aa None / --remode bogus: not a timm augmentation setting ()" after the weights were loaded
    (["--reprob", "0.2", "--remode", "bogus"], r"^--remode bogus: not a random erasing mode \(const, rand, pixel\)$"),
])
def test_bad_values_and_flags_without_effect_are_refused_before_anything_is_read(setup, tmp_path, monkeypatch, extra,
                                                                               message):
    import codebase.finetune_imagenet
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--quiet", "--device", "cpu",
            "--output", tmp_path / "run"]
    monkeypatch.setattr(codebase.finetune_imagenet, "finetune_imagenet", lambda args: pytest.fail("trained"))
    with pytest.raises(ValueError, match=message):
        train_imagenet.main([str(a) for a in [*argv, *extra]])
    assert not (tmp_path / "run").exists()


def test_resume_of_another_tools_folder_or_a_damaged_checkpoint_is_one_line(setup, tmp_path):
    """A train_cifar.py run folder resumed by train_imagenet.py failed with the optimizer's 'different number of
    parameter groups', a search folder with 'required: --model-config'; a checkpoint.pth without its optimizer
    state was a KeyError traceback."""
    import train_imagenet
    from codebase.io import load_torch, write_yaml

    folder, config, weights, _, _ = setup
    cifar_run, search = tmp_path / "cifar", tmp_path / "search"
    write_yaml(cifar_run / "args.yaml", {"dataset": "folder", "data": str(folder / "data"), "model_config": str(config),
                                         "pretrained": str(weights), "cutout": False, "save": str(cifar_run)})
    write_yaml(search / "args.yaml", {"save": str(search), "seed": 0, "n_doe": 20, "dataset": "digits"})
    for run in (cifar_run, search):
        with pytest.raises(ValueError, match=f"--resume --output {run}: not a train_imagenet.py run folder \\(its "
                                             f"args.yaml lacks "):
            train_imagenet.main([str(folder / "data"), "--resume", "--output", str(run)])
    run = tmp_path / "run"
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "1", "--warmup-epochs", "0", "--quiet", "--device",
            "cpu", "--output", run]
    assert train_imagenet.main([str(a) for a in argv]) == 0
    state = load_torch(run / "checkpoint.pth")
    torch.save({k: v for k, v in state.items() if k != "optimizer"}, run / "checkpoint.pth")
    with pytest.raises(ValueError, match="checkpoint.pth: not a complete training checkpoint \\(no 'optimizer'"):
        train_imagenet.main([str(folder / "data"), "--resume", "--output", str(run), "--epochs", "2"])


@pytest.mark.parametrize("argv", [["0", "/data"], ["00", "/data"], ["2"], ["2", ""]])
def test_distributed_train_without_processes_or_data_is_the_usage_line(argv):
    """`distributed_train.sh 0 DATA` was torchrun's AssertionError traceback, and `distributed_train.sh 2` (no DATA)
    started both processes, each failing, then torchrun's 40-line failure report with exit code 1."""
    out = subprocess.run(["sh", str(ROOT / "distributed_train.sh"), *argv], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("usage:") and len(out.stderr.splitlines()) == 1, out.stderr


def test_zero_epochs_is_refused_before_anything_is_written(setup, tmp_path):
    """--epochs 0 (the check said 'no epoch to run: refused rather than an empty run folder', but tested < 0) ended
    with exit code 0 and a folder of args.yaml and net.config only."""
    import train_imagenet

    folder, config, weights, _, _ = setup
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--img-size", "32", "-b", "4", "-j",
            "0", "--quiet", "--device", "cpu", "--epochs", "0", "--output", tmp_path / "run"]
    with pytest.raises(ValueError, match="^--epochs 0: no epoch to train"):
        train_imagenet.main([str(a) for a in argv])
    assert not (tmp_path / "run").exists()


def test_a_resume_shorter_than_the_epochs_trained_is_refused(setup, tmp_path, capsys):
    """--resume --epochs 1 on a run that had trained 2 ended with exit 0, no message, and args.yaml rewritten to 1
    epoch beside a checkpoint, weights and metrics of 2. Now one line and the folder unchanged; the same length is
    said to be finished."""
    import train_imagenet

    folder, config, weights, _, _ = setup
    run = tmp_path / "run"
    argv = [folder / "data", "--dataset", "folder", "--model-config", config, "--initial-checkpoint", weights,
            "--img-size", "32", "-b", "4", "-j", "0", "--epochs", "2", "--warmup-epochs", "0", "--quiet", "--device",
            "cpu", "--output", run]
    assert train_imagenet.main([str(a) for a in argv]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match="--epochs 1: the run in .* has trained 2 epochs already"):
        train_imagenet.main([str(folder / "data"), "--resume", "--output", str(run), "--epochs", "1"])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    capsys.readouterr()
    assert train_imagenet.main([str(folder / "data"), "--resume", "--output", str(run), "--epochs", "2"]) == 0
    assert "the run has finished its 2 epochs; nothing to train" in capsys.readouterr().err


def test_an_args_yaml_value_of_the_wrong_type_is_one_line(setup, tmp_path):
    """`lr: fast` in a hand-edited args.yaml was a TypeError traceback on --resume."""
    import train_imagenet
    from codebase.io import write_yaml

    folder, config, _, _, _ = setup
    run = tmp_path / "run"
    write_yaml(run / "args.yaml", {"data": str(folder / "data"), "dataset": "folder", "model_config": str(config),
                                   "initial_checkpoint": None, "sched": "step", "output": str(run), "lr": "fast"})
    with pytest.raises(ValueError, match=r"args.yaml: corrupt \(lr: 'fast' is not a number\)"):
        train_imagenet.main([str(folder / "data"), "--resume", "--output", str(run)])
