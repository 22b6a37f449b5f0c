"""train_cifar.py on generated CIFAR folders: fine-tuning, resume after SIGKILL, --evaluate, NSGA-Net from
scratch, and validation.py reproducing the accuracy the run logged."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from codebase.io import load_torch
from tests.data_fixtures import write_cifar10, write_cifar100
from tests.test_validation import tiny_export

ROOT = Path(__file__).resolve().parents[1]


def metrics(folder: Path) -> list[dict[str, float]]:
    with open(folder / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    config, weights, _ = tiny_export(folder / "model")
    write_cifar10(folder / "data", per_batch=6, n_test=12, seed=7)
    common = ["--dataset", "cifar10", "--data", folder / "data", "--model-config", config, "--initial-checkpoint",
              weights, "--img-size", "32", "--epochs", "2", "-b", "10", "-j", "0", "--lr", "0.05", "--cutout",
              "--autoaugment", "--drop", "0.2", "--drop-path", "0.2", "--device", "cpu", "--quiet"]
    return folder, [str(a) for a in common]


def main_inline(script: str, argv: list[str]) -> int:
    module = __import__(script)
    return module.main([str(a) for a in argv])


def test_finetune_resume_after_kill_equals_uninterrupted_run(setup, tmp_path):
    folder, common = setup
    assert main_inline("train_cifar", [*common, "--save", tmp_path / "ref"]) == 0
    ref = metrics(tmp_path / "ref")
    assert [r["epoch"] for r in ref] == [1, 2] and ref[1]["lr"] < ref[0]["lr"]
    # SIGKILL while writing the second epoch's checkpoint, then resume from the first epoch's
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "checkpoint.pth:2"}
    killed = subprocess.run([sys.executable, str(ROOT / "train_cifar.py"), *common, "--save", tmp_path / "run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert load_torch(tmp_path / "run" / "checkpoint.pth")["epoch"] == 1
    assert main_inline("train_cifar", [*common, "--resume", tmp_path / "run"]) == 0
    resumed = metrics(tmp_path / "run")
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(ref, resumed):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    w_ref = load_torch(tmp_path / "ref" / "model.pth")["state_dict"]
    w_run = load_torch(tmp_path / "run" / "model.pth")["state_dict"]
    assert all(torch.allclose(w_ref[k].float(), w_run[k].float(), atol=1e-6) for k in w_ref)


def test_validation_and_evaluate_reproduce_the_logged_accuracy(setup, tmp_path, capsys):
    folder, common = setup
    run = tmp_path / "run"
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--save", run]) == 0
    logged = metrics(run)[-1]
    # validation.py finds img_size in the run's args.yaml (no --img-size given)
    assert main_inline("validation", ["--dataset", "cifar10", "--data", folder / "data", "--model",
                                      run / "net.config", "--pretrained", run / "model.pth", "-j", "0", "-b", "5",
                                      "--save", tmp_path / "v.json"]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["img_size"] == 32 and v["n"] == 12
    assert v["top1"] == pytest.approx(logged["val_top1"], abs=1e-3)
    assert v["top5"] == pytest.approx(logged["val_top5"], abs=1e-3)
    assert v["loss"] == pytest.approx(logged["val_loss"], rel=1e-4)
    # --evaluate keeps the checkpoint's head: the same numbers again (a reset head would not give them)
    capsys.readouterr()
    argv = [a for a in common if a not in ("--cutout", "--autoaugment")]
    at = argv.index("--initial-checkpoint")
    argv[at + 1] = str(run / "model.pth")
    assert main_inline("train_cifar", [*argv, "--evaluate"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["top1"] == pytest.approx(v["top1"], abs=1e-3)
    assert printed["loss"] == pytest.approx(v["loss"], rel=1e-3)
    # --evaluate --resume DIR scores DIR/model.pth, not the starting weights; no weights at all is an error
    del argv[at:at + 2]
    assert main_inline("train_cifar", [*argv, "--evaluate", "--resume", run]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == printed
    with pytest.raises(ValueError, match="--evaluate needs weights"):
        main_inline("train_cifar", [*argv, "--evaluate"])


def test_nsganet_micro_from_scratch_on_cifar100(tmp_path):
    write_cifar100(tmp_path / "data", n_train=12, n_test=6)
    argv = ["--net_type", "micro", "--arch", "NSGANet", "--layers", "3", "--init_channels", "4",
            "--filter_increment", "2", "--SE", "--auxiliary", "--cutout", "--droprate", "0.2", "--epochs", "2",
            "--dataset", "cifar100", "--data", tmp_path / "data", "-b", "6", "-j", "0", "--device", "cpu",
            "--quiet", "--save", tmp_path / "run"]
    from codebase.nsganet_profile import build_network

    torch.manual_seed(0)
    initial = build_network("micro", "NSGANet", 3, 4, 2, True, True, 100).state_dict()
    assert main_inline("train_cifar", argv) == 0
    rows = metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2]
    weights = load_torch(tmp_path / "run" / "model.pth")["state_dict"]
    assert weights["classifier.weight"].shape == (100, initial["classifier.weight"].shape[1])
    # the auxiliary head is trained (weight 0.4), not just carried along
    aux = [k for k in initial if k.startswith("auxiliary_head.") and k.endswith("weight")]
    assert aux and any(not torch.equal(weights[k], initial[k]) for k in aux)
    assert main_inline("validation", ["--dataset", "cifar100", "--data", tmp_path / "data", "--net_type", "micro",
                                      "--layers", "3", "--init_channels", "4", "--filter_increment", "2", "--SE",
                                      "--auxiliary", "--pretrained", tmp_path / "run" / "model.pth", "-j", "0",
                                      "--save", tmp_path / "v.json"]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["top1"] == pytest.approx(rows[-1]["val_top1"], abs=1e-3)
    assert v["loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-4)


def test_bad_arguments_are_rejected(setup):
    _, common = setup
    with pytest.raises(ValueError, match="not both"):
        main_inline("train_cifar", [*common, "--net_type", "micro"])
    with pytest.raises(ValueError, match="cifar-10-batches-py"):
        main_inline("train_cifar", [*common[:3], "/nonexistent", *common[4:], "--evaluate"])
