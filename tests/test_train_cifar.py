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


def test_resume_into_another_network_or_a_bad_device_is_one_error(setup, tmp_path):
    folder, common = setup
    run = tmp_path / "run"
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--save", run]) == 0
    # the same folder resumed with an NSGA-Net network: an error naming a tensor, not load_state_dict's traceback
    at = common.index("--model-config")
    other = [*common[:at], *common[at + 4:], "--net_type", "micro", "--layers", "3", "--init_channels", "4",
             "--filter_increment", "2"]
    with pytest.raises(ValueError, match=r"checkpoint.pth does not fit the network: tensor '"):
        main_inline("train_cifar", [*other, "--resume", run])
    with pytest.raises(ValueError, match="--device foo"):
        main_inline("train_cifar", [*common, "--device", "foo", "--save", tmp_path / "other"])


def test_finetuning_optimizer_is_the_originals_plain_momentum_sgd():
    """NSGANetV2's train_cifar.py: optim.SGD(lr=0.01, momentum=0.9, weight_decay=4e-5), no Nesterov. Two steps on
    f(w) = w^2 / 2 from w = 1 (gradient w + wd * w), by hand: heavy-ball momentum v = 0.9 v + g, w -= lr v."""
    import train_cifar
    from codebase.training import sgd_cosine

    args = train_cifar.resolve(train_cifar.build_parser().parse_args(["--model-config", "net.config"]))
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer, _ = sgd_cosine([w], args.lr, args.epochs, 10**6, args.momentum, args.weight_decay,
                              nesterov=args.nesterov)
    expected, v = 1.0, 0.0
    for _ in range(2):
        optimizer.zero_grad()
        (w ** 2 / 2).sum().backward()
        optimizer.step()
        g = expected * (1 + 4e-5)
        v = 0.9 * v + g
        expected -= 0.01 * v
    assert w.item() == pytest.approx(expected, rel=1e-12)


def test_checkpoint_random_state_includes_the_gpu_generators(monkeypatch):
    """On a GPU dropout and drop-path masks come from the CUDA generators: --resume must restore them too (the
    CPU generator alone repeats a CPU run only). Stand-in CUDA functions record what is saved and restored."""
    from codebase.training import restore_rng_state, rng_state

    generators = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [g.clone() for g in generators])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(list(states)))
    state = rng_state()
    generators = [torch.zeros(16, dtype=torch.uint8)] * 2  # the generators move on after the checkpoint
    restore_rng_state(state)
    assert len(restored) == 1
    assert [g.tolist() for g in restored[0]] == [list(range(16)), list(range(16, 32))]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_restored_random_state_repeats_gpu_dropout():
    from codebase.training import restore_rng_state, rng_state

    torch.manual_seed(0)
    x = torch.ones(4096, device="cuda")
    torch.nn.functional.dropout(x, 0.5)  # the CUDA generator is in use
    state = rng_state()
    first = torch.nn.functional.dropout(x, 0.5)
    restore_rng_state(state)
    assert torch.equal(torch.nn.functional.dropout(x, 0.5), first)


def test_cutout_fills_like_each_original():
    """NSGANetV2's train_cifar.py cuts out before Normalize (a black square); NSGA-Net (DARTS) after it (zeros of
    the normalised image, i.e. the mean colour). A cutout of 64 px covers the whole 32 px image wherever it lands."""
    from PIL import Image

    import train_cifar
    from codebase.finetune import finetune_transform

    grey = Image.new("RGB", (32, 32), (90, 120, 200))
    base = ["--dataset", "cifar10", "--img-size", "32", "--cutout", "--cutout_length", "64"]
    ofa = train_cifar.resolve(train_cifar.build_parser().parse_args([*base, "--model-config", "net.config"]))
    black = torch.tensor([-0.49139968 / 0.24703233, -0.48215827 / 0.24348505, -0.44653124 / 0.26158768])
    out = finetune_transform(ofa)(grey)
    assert out.shape == (3, 32, 32)
    torch.testing.assert_close(out, black.view(3, 1, 1).expand(3, 32, 32), rtol=1e-6, atol=1e-6)
    nsga = train_cifar.resolve(train_cifar.build_parser().parse_args([*base, "--net_type", "micro"]))
    assert torch.equal(finetune_transform(nsga)(grey), torch.zeros(3, 32, 32))
