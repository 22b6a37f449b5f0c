"""Shared training loops (codebase/training.py) and supernet training (sandwich rule, resume)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codebase.supernet_training import SupernetTrainConfig, read_checkpoint, train_supernet
from codebase.training import accuracy, distillation_loss, evaluate, sgd_cosine, train_one_epoch
from tests.data_fixtures import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "folder", "resolutions": (24, 32), "vld_size": 6, "batch_size": 6, "epochs": 2,
        "n_random": 1, "lr": 0.02, "warmup_epochs": 0}


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    write_image_folder(root, ["train", "test"], ["a", "b", "c"], per_class=6, size=(36, 40), seed=7)
    return root


# ---------------------------------------------------------------------- codebase/training.py
def test_accuracy_matches_scikit_learn():
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(200, 10)), rng.integers(0, 10, 200)
    top1, top5 = accuracy(torch.tensor(logits), torch.tensor(labels))
    assert top1 == pytest.approx(100 * top_k_accuracy_score(labels, logits, k=1, labels=range(10)))
    assert top5 == pytest.approx(100 * top_k_accuracy_score(labels, logits, k=5, labels=range(10)))
    assert accuracy(torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), torch.tensor([0, 0]), (1, 2, 5)) == [50, 100, 100]


def test_sgd_cosine_schedule_by_hand():
    w = nn.Parameter(torch.zeros(3))
    optimizer, scheduler = sgd_cosine([w], lr=0.4, epochs=2, steps_per_epoch=5, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.2, 0.4] + [0.2 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert lrs == pytest.approx(expected)
    assert optimizer.param_groups[0]["nesterov"] and optimizer.param_groups[0]["weight_decay"] == 4e-5
    with pytest.raises(ValueError, match="lr > 0"):
        sgd_cosine([w], lr=0, epochs=1, steps_per_epoch=1)


class AuxNet(nn.Module):
    """A linear model with an auxiliary head: (logits, aux) in training mode, logits in eval mode."""

    def __init__(self):
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return (self.main(x), self.aux(x)) if self.training else self.main(x)


def test_train_one_epoch_losses_and_evaluate():
    torch.manual_seed(0)
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    model, teacher = AuxNet(), nn.Linear(4, 3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits, aux = model.train()(x)
        soft = teacher(x).softmax(1)
        expected = (nn.functional.cross_entropy(logits, y) + 0.4 * nn.functional.cross_entropy(aux, y)
                    - 0.5 * (soft * logits.log_softmax(1)).sum(1).mean())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = train_one_epoch(model, [(x, y)], optimizer, aux_weight=0.4, teacher=teacher, distill_weight=0.5)
    assert out["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert out["top1"] == pytest.approx(100 * (logits.argmax(1) == y).float().mean().item())
    assert not torch.equal(model.main.weight, start["main.weight"])

    scores = evaluate(model, [(x[:5], y[:5]), (x[5:], y[5:])], "cpu")
    with torch.no_grad():
        logits = model.main(x)
    assert scores["n"] == 12 and model.training  # mode restored
    assert scores["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert scores["top1"] == pytest.approx(100 * (logits.argmax(1) == y).float().mean().item())


def test_evaluate_counts_whole_images_so_equal_hits_score_equal():
    """Two networks that get the same 4 of 287 images wrong, in different batches, score exactly alike: 100 x 283 /
    287. Float32 per-batch means gave 98.6062733 and 98.6062726 (the digits Quickstart), and that noise kept a
    network with more FLOPs and the same true accuracy on the front as 'most accurate'."""
    y = torch.arange(287) % 10
    right = 5.0 * nn.functional.one_hot(y, 10).float()

    def batches(wrong):
        logits = right.clone()
        logits[wrong] = -logits[wrong]  # the target gets the lowest logit: outside the top 1 and the top 5
        return [(logits[i:i + 64], y[i:i + 64]) for i in range(0, 287, 64)]

    first, last = (evaluate(nn.Identity(), batches(w), "cpu") for w in ([0, 1, 2, 3], [283, 284, 285, 286]))
    assert first["top1"] == last["top1"] == first["top5"] == last["top5"] == 100 * 283 / 287
    torch.manual_seed(0)
    model, x = nn.Linear(10, 10), torch.eye(10)[y[:31]]
    with torch.no_grad():
        hits = int((model(x).argmax(1) == y[:31]).sum())
    train = train_one_epoch(model, [(x, y[:31])], torch.optim.SGD(model.parameters(), lr=0.0))
    assert train["top1"] == 100 * hits / 31


def test_distillation_loss_is_soft_cross_entropy():
    student, teacher = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    p = np.exp([0.0, 1.0, 0.0]) / np.exp([0.0, 1.0, 0.0]).sum()
    log_q = np.array([2.0, 0.0, -1.0]) - np.log(np.exp([2.0, 0.0, -1.0]).sum())
    assert distillation_loss(student, teacher).item() == pytest.approx(-(p * log_q).sum(), rel=1e-6)


# ---------------------------------------------------------------------- supernet training
def test_sandwich_order_and_resolutions():
    from codebase.supernet_training import _sandwich
    from search_space.ofa import OFASearchSpace

    space = OFASearchSpace(resolutions=(24, 28, 32))
    steps = _sandwich(space, 3, np.random.default_rng(0))
    assert len(steps) == 5
    (largest, r_max), (smallest, r_min) = steps[:2]
    assert largest["d"] == [4] * 5 and set(largest["ks"]) == {7} and set(largest["e"]) == {6} and r_max == 32
    assert smallest["d"] == [2] * 5 and set(smallest["ks"]) == {3} and set(smallest["e"]) == {3} and r_min == 24
    for subnet, r in steps[2:]:
        assert space.validate({**subnet, "r": r})


def test_one_epoch_then_resume_equals_a_straight_run(folder_data, tmp_path):
    config = SupernetTrainConfig(**TINY, data=str(folder_data))
    straight = read_checkpoint(train_supernet(config, tmp_path / "straight", device="cpu", progress=False))
    assert straight["epoch"] == 2 and "optimizer" not in straight and len(straight["history"]) == 2

    path = train_supernet(config, tmp_path / "resumed", device="cpu", progress=False, max_epochs=1)
    first = read_checkpoint(path)
    assert first["epoch"] == 1 and "optimizer" in first
    train_supernet(config, tmp_path / "resumed", device="cpu", progress=False)
    resumed = read_checkpoint(path)
    assert resumed["epoch"] == 2 and resumed["history"][0] == first["history"][0]
    for name, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    changed = [k for k, v in first["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert any("blocks.5.conv.depth_conv" in k for k in changed)  # the second epoch trained shared weights

    # a complete checkpoint is reused as is; other settings in the same folder are refused
    mtime = path.stat().st_mtime_ns
    assert train_supernet(config, tmp_path / "resumed", device="cpu", progress=False) == path
    assert path.stat().st_mtime_ns == mtime
    other = SupernetTrainConfig(**{**TINY, "lr": 0.2}, data=str(folder_data))
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.02 -> 0.2\)"):
        train_supernet(other, tmp_path / "resumed", device="cpu", progress=False)


def test_training_never_reads_the_validation_images(folder_data, tmp_path, monkeypatch):
    import codebase.supernet_training as training
    from codebase.data import train_validation_split

    seen = []
    real = training.training_subset
    monkeypatch.setattr(training, "training_subset",
                        lambda dataset, data, indices, r: seen.append(np.asarray(indices)) or real(dataset, data,
                                                                                                    indices, r))
    config = SupernetTrainConfig(**{**TINY, "epochs": 1, "n_random": 0}, data=str(folder_data))
    train_supernet(config, tmp_path, device="cpu", progress=False)
    train_idx, vld_idx = train_validation_split(18, 6, seed=0)
    assert len(seen) == 1 and np.array_equal(seen[0], train_idx) and not set(seen[0]) & set(vld_idx)


def test_evaluator_trains_a_supernet_when_none_is_given(folder_data, tmp_path, capsys):
    from codebase.evaluators.supernet import SupernetEvaluator

    options = {"dataset": "folder", "data": str(folder_data), "resolutions": [24, 32], "vld_size": 6,
               "bn_size": 12, "device": "cpu", "save": str(tmp_path), "supernet_epochs": 1, "quiet": True}
    evaluator = SupernetEvaluator(**options)
    path = tmp_path / "supernet" / "checkpoint.pth"
    ckpt = read_checkpoint(path)
    assert evaluator.supernet_path == str(path) and ckpt["epoch"] == 1 and ckpt["config"]["vld_size"] == 6
    assert ckpt["config"]["n_classes"] == 3 and evaluator.supernet.classifier.linear.out_features == 3
    mtime = path.stat().st_mtime_ns
    capsys.readouterr()
    SupernetEvaluator(**{**options, "quiet": False})  # complete: reused, not retrained, and said so
    assert path.stat().st_mtime_ns == mtime
    assert f"no --supernet_path: using the supernet in {tmp_path / 'supernet'}" in capsys.readouterr().out
    # the folder is a train_supernet.py folder: its args.yaml holds the checkpoint's settings, so
    # `train_supernet.py --resume SAVE/supernet` reads it (here: reuses the complete checkpoint)
    from codebase.io import read_yaml

    assert read_yaml(tmp_path / "supernet" / "args.yaml") == ckpt["config"]
    sys.path.insert(0, str(ROOT))
    import train_supernet as script

    assert script.main(["--resume", str(tmp_path / "supernet"), "--device", "cpu", "--quiet"]) == 0
    assert path.stat().st_mtime_ns == mtime
    stats = evaluator.evaluate({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 24})
    correct = stats["top1"] * 6 / 100  # scored on the 6 held-out images: a whole number of them right
    assert abs(correct - round(correct)) < 1e-6 and 0 <= round(correct) <= 6
    with pytest.warns(UserWarning, match="may have trained on the validation images"):
        SupernetEvaluator(**{**options, "vld_size": 5, "supernet_path": str(path)})
    # same split settings, one image more: every index of the split moved, and --supernet_path says so too
    import shutil
    import warnings

    grown = tmp_path / "grown"
    shutil.copytree(folder_data, grown)
    first = sorted((grown / "train").rglob("*.png"))[0]
    shutil.copy(first, first.with_name("extra.png"))
    with pytest.warns(UserWarning, match="other training images .*18 then, 19 now"):
        SupernetEvaluator(**{**options, "data": str(grown), "supernet_path": str(path)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unchanged images raise no warning
        SupernetEvaluator(**{**options, "supernet_path": str(path)})
        # nor does another search seed: the hold-out and the calibration images are fixed per data set
        other = SupernetEvaluator(**{**options, "seed": 3, "supernet_path": str(path)})
    assert torch.equal(other.vld_images, evaluator.vld_images) and torch.equal(other.bn_images, evaluator.bn_images)
    subnet = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 24}
    assert other.evaluate(subnet)["top1"] == stats["top1"]


def test_a_supernet_of_as_many_other_images_is_not_said_to_have_a_moved_split(folder_data, tmp_path):
    # a class renamed (c -> z), as many images: the warning said "(18 then, 18 now): the split moved", though the
    # split's indices are the same and the supernet may have trained on another data set
    import shutil

    from codebase.evaluators.supernet import SupernetEvaluator
    from codebase.supernet_training import _save, build_training_supernet, training_set_fingerprint

    config = SupernetTrainConfig(**TINY, data=str(folder_data), n_classes=3).resolved()
    path = tmp_path / "checkpoint.pth"
    _save(path, build_training_supernet(config), config, config.epochs, [], None, None,
          training_set_fingerprint("folder", folder_data))
    renamed = tmp_path / "renamed"
    shutil.copytree(folder_data, renamed)
    for split in ("train", "test"):
        (renamed / split / "c").rename(renamed / split / "z")
    options = {"dataset": "folder", "data": str(renamed), "resolutions": [24, 32], "vld_size": 6, "bn_size": 12,
               "device": "cpu", "supernet_path": str(path)}
    with pytest.warns(UserWarning) as said:
        SupernetEvaluator(**options)
    assert [str(w.message) for w in said] == [
        f"{path} was trained on other training images (as many, 18, but other class names, labels or file names): "
        f"it may have trained on another data set, or on the validation images"]


def test_a_checkpoint_of_an_earlier_versions_seeded_hold_out_is_not_reused(folder_data, tmp_path):
    # earlier versions drew the hold-out with the training seed; with seed 3 it held out other images
    from codebase.io import save_torch

    config = SupernetTrainConfig(**{**TINY, "epochs": 1, "n_random": 0, "seed": 3}, data=str(folder_data))
    path = train_supernet(config, tmp_path / "new", device="cpu", progress=False)
    ckpt = read_checkpoint(path)
    assert ckpt["split_seed"] == 0
    del ckpt["split_seed"]
    save_torch(tmp_path / "old" / "checkpoint.pth", ckpt)
    with pytest.raises(ValueError, match="drawn with seed 3"):
        train_supernet(config, tmp_path / "old", device="cpu", progress=False)
    assert train_supernet(config, tmp_path / "new", device="cpu", progress=False) == path  # reused as it is


@pytest.mark.slow
def test_train_supernet_script_and_resume(folder_data, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "train_supernet.py"), *args, "--quiet"],
                              capture_output=True, text=True, cwd=ROOT)

    out = run("--dataset", "folder", "--data", str(folder_data), "--resolutions", "24", "32", "--vld_size", "6",
              "--batch_size", "6", "--epochs", "1", "--n_random", "0", "--save", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    assert "largest subnet (r=32" in out.stdout and (tmp_path / "s" / "summary.json").is_file()
    again = run("--dataset", "folder", "--data", str(folder_data), "--save", str(tmp_path / "s"))
    assert again.returncode == 2 and "--resume" in again.stderr
    changed = run("--resume", str(tmp_path / "s"), "--epochs", "40", "--lr", "0.5")
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert "drop --epochs 40 (the run has 1), --lr 0.5 (the run has 0.05)" in changed.stderr
    resumed = run("--resume", str(tmp_path / "s"))
    assert resumed.returncode == 0, resumed.stderr
    import shutil

    from codebase.io import read_yaml

    moved = shutil.copytree(folder_data, tmp_path / "moved")  # the data moved: --data may change on resume
    resumed = run("--resume", str(tmp_path / "s"), "--data", str(moved))
    assert resumed.returncode == 0, resumed.stderr
    assert read_yaml(tmp_path / "s" / "args.yaml")["data"] == str(moved)


def test_a_supernet_is_not_reused_once_its_training_images_changed(folder_data, tmp_path):
    # The hold-out is train_validation_split(n_train, vld_size, seed) over the data set's item order: with one
    # more image every index names another image, so a supernet trained before would have seen validation
    # images. Moving the data elsewhere (same files) must still reuse it.
    import shutil

    data = shutil.copytree(folder_data, tmp_path / "data")
    config = SupernetTrainConfig(**{**TINY, "epochs": 1, "n_random": 0}, data=str(data))
    path = train_supernet(config, tmp_path / "run", device="cpu", progress=False)
    moved = shutil.move(str(data), str(tmp_path / "moved"))
    assert train_supernet(SupernetTrainConfig(**{**TINY, "epochs": 1, "n_random": 0}, data=moved),
                          tmp_path / "run", device="cpu", progress=False) == path
    shutil.copy(Path(moved) / "train" / "a" / "0.png", Path(moved) / "train" / "a" / "00.png")
    changed = SupernetTrainConfig(**{**TINY, "epochs": 1, "n_random": 0}, data=moved)
    from codebase.supernet_training import config_differences

    assert config_differences(read_checkpoint(path)["config"], changed.resolved()) == []  # same settings
    with pytest.raises(ValueError, match="training images changed") as error:
        train_supernet(changed, tmp_path / "run", device="cpu", progress=False)
    assert "18 training images then, 19 now" in str(error.value) and "\n" not in str(error.value)


def test_train_supernet_save_that_is_a_file_is_one_error_line(tmp_path, monkeypatch):
    import train_supernet as script
    from codebase import supernet_training

    # codebase.io.check_output_folder, before the data are read (a file on the way was found only by mkdir)
    monkeypatch.setattr(supernet_training.SupernetTrainConfig, "resolved", lambda self: pytest.fail("data read"))
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for save in (taken, taken / "run"):
        with pytest.raises(ValueError, match=rf"--save {save}: {taken} is a file, not a folder"):
            script.main(["--dataset", "digits", "--save", str(save), "--quiet"])
    assert taken.read_text() == "not a folder"


def test_train_supernet_resume_refuses_another_save_folder(tmp_path, monkeypatch):
    """--resume DIR continues in DIR: --save OTHER was silently ignored (the run went on in DIR)."""
    import train_supernet as script
    from codebase import supernet_training
    from codebase.io import write_yaml

    def trained(*args, **kwargs):
        raise RuntimeError("trained")

    monkeypatch.setattr(supernet_training, "train_supernet", trained)
    run = tmp_path / "run"
    write_yaml(run / "args.yaml", SupernetTrainConfig(dataset="digits").resolved().to_dict())
    with pytest.raises(ValueError, match=rf"--resume {run} continues the run in that folder; drop --save "
                                         rf"{tmp_path / 'other'}$"):
        script.main(["--resume", str(run), "--save", str(tmp_path / "other"), "--quiet"])
    assert not (tmp_path / "other").exists()
    with pytest.raises(RuntimeError, match="trained"):  # --save naming the run's own folder is no conflict
        script.main(["--resume", str(run), "--save", str(run), "--quiet"])


@pytest.mark.parametrize("field, value", [("kd_ratio", -1.0), ("warmup_epochs", -1), ("weight_decay", -1e-4),
                                          ("grad_clip", -5.0), ("dropout_rate", 1.0), ("resolutions", (-4, 24)),
                                          # these trained (nan: a step, then 'loss is nan'; a seed below 0 failed
                                          # in the data loader), leaving the folder behind
                                          ("lr", math.nan), ("lr", math.inf), ("seed", -1),
                                          ("weight_decay", math.inf), ("grad_clip", math.inf),
                                          ("kd_ratio", math.inf)])
def test_settings_that_would_train_nonsense_are_refused(field, value):
    # a negative kd_ratio pushes the subnets away from the teacher, a dropout rate of 1 zeroes the features,
    # a resolution below 1 pixel ended the first step in a RuntimeError traceback
    with pytest.raises(ValueError, match=field):
        SupernetTrainConfig(dataset="digits", **{field: value}).resolved()


def test_checkpoint_writes_sync_the_file_and_then_its_folder(tmp_path, monkeypatch):
    # os.replace is atomic, but the new directory entry reaches the disk only with an fsync of the folder:
    # without it a power loss can leave the old checkpoint (or none) after the run reported the new one saved.
    import os
    import stat

    from codebase.io import save_torch

    real_fsync, synced = os.fsync, []

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = save_torch(tmp_path / "run" / "checkpoint.pth", {"epoch": 3})
    assert synced == ["file", "folder"]
    assert torch.load(path, weights_only=True) == {"epoch": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pth"]  # no temporary file left


def test_an_image_folder_with_one_class_is_refused(tmp_path):
    # one class folder: every label is 0, the loss is zero from the start and every subnet scores 100%
    from codebase.supernet_training import resolve_n_classes

    write_image_folder(tmp_path, ["train", "test"], ["only"], per_class=3)
    with pytest.raises(ValueError, match="1 class folder.*at least 2"):
        resolve_n_classes("folder", tmp_path, None)
    write_image_folder(tmp_path, ["train", "test"], ["other"], per_class=3)
    assert resolve_n_classes("folder", tmp_path, None) == 2


def test_a_diverged_supernet_training_is_one_error_line(folder_data, tmp_path):
    import train_supernet as script

    argv = ["--dataset", "folder", "--data", folder_data, "--resolutions", "24", "--vld_size", "6", "--batch_size",
            "6", "--epochs", "1", "--n_random", "1", "--warmup_epochs", "0", "--lr", "1e12", "--grad_clip", "0",
            "--device", "cpu", "--quiet", "--save", tmp_path / "run"]
    with pytest.raises(ValueError, match="supernet training loss is nan; lower --lr"):  # was: a traceback
        script.main([str(a) for a in argv])


def test_resume_removes_what_a_killed_write_left(folder_data, tmp_path):
    save = tmp_path / "s"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "checkpoint.pth:1"}
    killed = subprocess.run([sys.executable, str(ROOT / "train_supernet.py"), "--dataset", "folder", "--data",
                             str(folder_data), "--resolutions", "24", "--vld_size", "6", "--batch_size", "6",
                             "--epochs", "1", "--n_random", "0", "--save", str(save), "--quiet", "--device", "cpu"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (stale,) = save.glob(".checkpoint.pth.*.tmp")  # the kill cut the first checkpoint's write short
    (save / ".notes.txt").write_text("mine")  # a hidden file of the user's
    sys.path.insert(0, str(ROOT))
    import train_supernet as script

    assert script.main(["--resume", str(save), "--device", "cpu", "--quiet"]) == 0
    assert read_checkpoint(save / "checkpoint.pth")["epoch"] == 1
    assert not stale.exists() and (save / ".notes.txt").read_text() == "mine"  # was: left for good


@pytest.mark.parametrize("extra, message", [
    (["--device", "foo"], "--device foo: not a device name"),
    (["--num_workers", "-1"], r"--num_workers -1: must be in \[0, 256\]"),
    (["--num_workers", "100000"], r"--num_workers 100000: must be in \[0, 256\]"),
    (["--init", "/nonexistent/ofa.pth"], "--init: /nonexistent/ofa.pth: weight file not found"),
])
def test_a_refused_start_leaves_no_folder_behind(tmp_path, extra, message):
    """These were refused after the folder, its args.yaml and log.txt were written (a bad --device, --num_workers
    at the first step, --init when the supernet was built)."""
    import train_supernet as script

    save = tmp_path / "sn"
    with pytest.raises(ValueError, match=message):
        script.main(["--dataset", "digits", "--save", str(save), "--quiet", *extra])
    assert not save.exists()


def test_relative_data_and_init_are_stored_absolute_so_a_resume_works_from_any_folder(folder_data, tmp_path,
                                                                                      monkeypatch):
    """`train_supernet.py --resume DIR` from another folder stopped at "the folder does not exist": args.yaml held
    --data (and --init) as typed, relative to where the training started."""
    import train_supernet as script
    from codebase.io import read_yaml, save_torch
    from codebase.supernet_training import build_training_supernet

    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    elsewhere.mkdir()
    supernet = build_training_supernet(SupernetTrainConfig(**TINY, data=str(folder_data)).resolved())
    init = save_torch(start / "init.pth", {"state_dict": supernet.state_dict()})
    monkeypatch.chdir(start)
    assert script.main(["--dataset", "folder", "--data", os.path.relpath(folder_data), "--init", "init.pth",
                        "--resolutions", "24", "--vld_size", "6", "--batch_size", "6", "--epochs", "1",
                        "--n_random", "0", "--save", "s", "--device", "cpu", "--quiet"]) == 0
    stored = read_yaml(start / "s" / "args.yaml")
    assert (stored["data"], stored["init"]) == (str(folder_data.resolve()), str(init.resolve()))
    monkeypatch.chdir(elsewhere)
    assert script.main(["--resume", "../start/s", "--device", "cpu", "--quiet"]) == 0
    # a --data given on resume (the data moved) is stored absolute too
    assert script.main(["--resume", "../start/s", "--data", os.path.relpath(folder_data), "--quiet"]) == 0
    assert read_yaml(start / "s" / "args.yaml")["data"] == str(folder_data.resolve())
    # the --init file gone: a resume (or reuse) of a run with a checkpoint reads none of it (was "--init: ...: weight
    # file not found" on a complete checkpoint; helper-55's audit)
    init.unlink()
    assert script.main(["--resume", "../start/s", "--device", "cpu", "--quiet"]) == 0


def test_a_supernet_msunas_trains_is_locked_and_stores_its_data_absolute(folder_data, tmp_path, monkeypatch):
    """The supernet msunas trains into SAVE/supernet took no lock, so `train_supernet.py --resume SAVE/supernet`
    trained the same folder at the same time; and its args.yaml kept a relative --data, so that resume failed from
    any other folder (helper-55's audit)."""
    from codebase.evaluators.supernet import SupernetEvaluator
    from codebase.io import FolderInUse, lock_folder, read_yaml

    monkeypatch.chdir(folder_data.parent)
    options = {"dataset": "folder", "data": folder_data.name, "resolutions": [24], "vld_size": 6, "bn_size": 12,
               "device": "cpu", "save": str(tmp_path / "run"), "supernet_epochs": 1, "quiet": True}
    (tmp_path / "run" / "supernet").mkdir(parents=True)
    held = lock_folder(tmp_path / "run" / "supernet", "train_supernet")  # a train_supernet.py at work on it
    try:
        with pytest.raises(FolderInUse, match=f"{tmp_path / 'run' / 'supernet'}: in use by another train_supernet"):
            SupernetEvaluator(**options)
    finally:
        os.close(held)
    assert not (tmp_path / "run" / "supernet" / "checkpoint.pth").exists()
    SupernetEvaluator(**options)
    assert read_yaml(tmp_path / "run" / "supernet" / "args.yaml")["data"] == str(folder_data.resolve())


@pytest.mark.parametrize("edit, message", [
    # a search's folder (msunas trains its supernet into SAVE/supernet/, so `--resume SAVE` is an easy slip): its
    # args.yaml was read as supernet settings, ending in a TypeError traceback (epochs: null) or a misleading
    # 'imagenet: no data folder given', and with an `epochs` of its own it trained into the search's folder
    ({"evaluator": "supernet", "n_doe": 100, "epochs": None, "lr": None, "n_random": None, "kd_ratio": None},
     r"not a train_supernet.py folder \(its args.yaml lacks"),
    ({"epochs": "20"}, r"args.yaml: corrupt \(epochs: '20' is not an integer\)"),  # a hand edit: was a TypeError
])
def test_resume_of_a_folder_that_is_no_supernet_run_is_one_line_and_touches_nothing(tmp_path, edit, message):
    import train_supernet as script
    from codebase.io import write_yaml

    run = tmp_path / "run"
    stored = {**SupernetTrainConfig(dataset="digits").resolved().to_dict(), **edit}
    write_yaml(run / "args.yaml", {k: v for k, v in stored.items() if v is not None or k not in edit})
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match=message):
        script.main(["--resume", str(run), "--device", "cpu", "--quiet"])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # no log.txt, no checkpoint


def test_a_resume_refused_for_other_training_images_leaves_args_yaml_as_it_was(folder_data, tmp_path):
    """`--resume DIR --data OTHER`, OTHER holding other images, was refused after args.yaml had been rewritten with
    OTHER: a plain `--resume DIR` then failed the same way until the user found the stored path."""
    import train_supernet as script
    from codebase.io import read_yaml

    save, other = tmp_path / "s", tmp_path / "other"
    write_image_folder(other, ["train", "test"], ["a", "b", "c"], per_class=7, size=(36, 40), seed=8)
    assert script.main(["--dataset", "folder", "--data", str(folder_data), "--resolutions", "24", "--vld_size", "6",
                        "--batch_size", "6", "--epochs", "1", "--n_random", "0", "--save", str(save),
                        "--device", "cpu", "--quiet"]) == 0
    before = (save / "args.yaml").read_bytes()
    with pytest.raises(ValueError, match="the training images changed"):
        script.main(["--resume", str(save), "--data", str(other), "--device", "cpu", "--quiet"])
    assert (save / "args.yaml").read_bytes() == before
    assert script.main(["--resume", str(save), "--device", "cpu", "--quiet"]) == 0  # was: refused again
    assert read_yaml(save / "args.yaml")["data"] == str(folder_data)


def test_a_new_training_into_a_search_folder_is_refused_and_touches_nothing(tmp_path, monkeypatch):
    """train_supernet.py --save SEARCH (msunas trains into SEARCH/supernet/, so the slip is easy) replaced the search's
    args.yaml with the supernet's settings, so its --resume broke, and wrote into its log.txt."""
    import train_supernet as script
    from codebase import supernet_training
    from codebase.io import write_yaml

    monkeypatch.setattr(supernet_training, "train_supernet", lambda *a, **k: pytest.fail("trained"))
    search = tmp_path / "search"
    write_yaml(search / "args.yaml", {"save": str(search), "sec_obj": "flops", "n_doe": 100, "dataset": "digits",
                                      "epochs": None, "seed": 0})
    (search / "log.txt").write_text("the search's log\n")
    before = {p.name: p.read_bytes() for p in search.iterdir()}
    with pytest.raises(ValueError, match=rf"^--save {search}: not a train_supernet.py folder \(its args.yaml lacks"):
        script.main(["--dataset", "digits", "--save", str(search), "--device", "cpu", "--quiet"])
    assert {p.name: p.read_bytes() for p in search.iterdir()} == before
    # a train_supernet folder killed before its first checkpoint still starts again
    write_yaml(search / "args.yaml", SupernetTrainConfig(dataset="digits").resolved().to_dict())
    with pytest.raises(pytest.fail.Exception, match="trained"):
        script.main(["--dataset", "digits", "--save", str(search), "--device", "cpu", "--quiet"])


def test_a_second_training_on_a_folder_in_use_is_refused_and_touches_nothing(tmp_path, monkeypatch):
    """A second `--save DIR` (or `--resume DIR`) beside a live training still in its first epoch (no checkpoint yet)
    replaced its args.yaml and wrote into its log; the folder is now held by a lock, as msunas holds its run's."""
    import train_supernet as script
    from codebase import supernet_training
    from codebase.io import FolderInUse, holding_lock, write_yaml

    # a start refused after taking the lock of an existing folder leaves it as it was, without a lock file
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="--init: /nonexistent/ofa.pth: weight file not found"):
        script.main(["--dataset", "digits", "--save", str(empty), "--init", "/nonexistent/ofa.pth", "--quiet"])
    assert list(empty.iterdir()) == []

    monkeypatch.setattr(supernet_training, "train_supernet", lambda *a, **k: pytest.fail("trained"))
    save = tmp_path / "sn"
    write_yaml(save / "args.yaml", SupernetTrainConfig(dataset="digits").resolved().to_dict())
    (save / "log.txt").write_text("the live run's log\n")
    with holding_lock(save, "train_supernet"):  # as the live run holds it
        before = {p.name: p.read_bytes() for p in save.iterdir()}
        assert ".train_supernet.lock" in before
        for argv in (["--dataset", "digits", "--save", str(save)], ["--resume", str(save)]):
            with pytest.raises(FolderInUse, match=rf"^{save}: in use by another train_supernet process "
                                                  rf"\(pid {os.getpid()}\); wait for it or kill it$"):
                script.main([*argv, "--device", "cpu", "--quiet"])
            assert {p.name: p.read_bytes() for p in save.iterdir()} == before
    # once the holder is gone (killed before its first checkpoint) a new start goes ahead, as before
    with pytest.raises(pytest.fail.Exception, match="trained"):
        script.main(["--dataset", "digits", "--save", str(save), "--device", "cpu", "--quiet"])


def test_evaluator_py_scores_a_subnet_at_the_supernets_resolutions_as_the_search_did(folder_data, tmp_path):
    """evaluator.py without --resolutions took the data set's (192..256 for a folder) plus r: images decoded at 256
    and resized to r scored the search's subnet otherwise (86.11% where net.stats said 80.56%; helper-55's audit).
    It now takes the resolutions the checkpoint was trained at, as the search did."""
    import json

    import evaluator as script
    from codebase.evaluators.supernet import SupernetEvaluator, trained_resolutions

    config = SupernetTrainConfig(**{**TINY, "epochs": 1}, data=str(folder_data))
    path = train_supernet(config, tmp_path / "sn", device="cpu", progress=False)
    assert trained_resolutions(path) == [24, 32] and trained_resolutions(tmp_path / "none.pth") is None
    subnet = {"ks": [5] * 10, "e": [4] * 10, "d": [2] * 5, "r": 24}
    searched = SupernetEvaluator(dataset="folder", data=str(folder_data), supernet_path=str(path),
                                 resolutions=[24, 32], vld_size=6, bn_size=12, device="cpu").evaluate(subnet)
    (tmp_path / "net.subnet").write_text(json.dumps(subnet))
    assert script.main(["--subnet", str(tmp_path / "net.subnet"), "--dataset", "folder", "--data", str(folder_data),
                        "--supernet_path", str(path), "--vld_size", "6", "--bn_size", "12", "--device", "cpu",
                        "--save", str(tmp_path / "net.stats")]) == 0
    stats = json.loads((tmp_path / "net.stats").read_text())
    assert (stats["top1"], stats["loss"]) == (searched["top1"], searched["loss"])
    other = SupernetEvaluator(dataset="folder", data=str(folder_data), supernet_path=str(path),
                              resolutions=[24, 256], vld_size=6, bn_size=12, device="cpu").evaluate(subnet)
    assert other["loss"] != searched["loss"]  # the resolutions do matter: what the old default gave differs



def test_fingerprint_of_utf8_names_is_unchanged_and_other_names_do_not_stop_it(tmp_path):
    # the name bytes on disk are hashed: a class folder or file named in another encoding (b"ch\xe2t", from an old
    # zip) was a UnicodeEncodeError that stopped train_supernet.py and msunas.py, while train_cifar trained on it
    from codebase.supernet_training import training_set_fingerprint

    utf8 = tmp_path / "utf8"
    write_image_folder(utf8, ["train"], ["café", "dog"], per_class=2, size=(8, 8))
    (utf8 / "train" / "dog" / "1.png").rename(utf8 / "train" / "dog" / "naïve.png")
    # the digest earlier versions stored for this tree: their checkpoints must still be reused
    assert training_set_fingerprint("folder", utf8) == {
        "n_images": 4, "sha256": "25d8f6664f068863961dade78b2a2e7bdcdf4bdebe9f1a5a6c11cde368a9ab1e"}
    digests = []
    for byte in (b"\xe2", b"\xe3"):
        root = tmp_path / f"latin1_{byte.hex()}"
        write_image_folder(root, ["train"], ["a", "b"], per_class=2, size=(8, 8))
        train = os.fsencode(root / "train")
        os.rename(train + b"/b", train + b"/ch" + byte + b"t")
        os.rename(train + b"/a/0.png", train + b"/a/" + byte + b".png")
        fingerprint = training_set_fingerprint("folder", root)
        assert fingerprint["n_images"] == 4
        digests.append(fingerprint["sha256"])
    assert digests[0] != digests[1]  # the bytes themselves count


def test_a_data_path_args_yaml_cannot_hold_is_refused_before_anything_is_made(folder_data, tmp_path):
    # a --data that is not UTF-8 was written to args.yaml as an escape yaml refuses: the training ran, and every
    # --resume of it then failed with "corrupt YAML file"; a resume's new --data (the data moved) likewise
    import shutil

    import train_supernet

    data = shutil.copytree(folder_data, os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9ta"))
    flags = ["--dataset", "folder", "--resolutions", "24", "32", "--vld_size", "6", "--batch_size", "6",
             "--epochs", "1", "--n_random", "0", "--quiet"]
    shown = f"{tmp_path}/d\\\\xe9ta"
    with pytest.raises(ValueError, match=f"^--data {shown}: not UTF-8 text, which the run's args.yaml cannot hold"):
        train_supernet.main([*flags, "--data", data, "--save", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
    run = tmp_path / "run"
    assert train_supernet.main([*flags, "--data", str(folder_data), "--save", str(run)]) == 0
    stored = (run / "args.yaml").read_bytes()
    os.symlink(data, tmp_path / "link")  # stored as the path it leads to: no way around
    for given in (data, str(tmp_path / "link")):
        with pytest.raises(ValueError, match=f"^--data {shown}: not UTF-8 text"):
            train_supernet.main(["--resume", str(run), "--data", given, "--quiet"])
    assert (run / "args.yaml").read_bytes() == stored


def test_a_search_refuses_to_train_its_supernet_on_a_data_path_args_yaml_cannot_hold(folder_data, tmp_path):
    # SAVE/supernet/args.yaml (a train_supernet.py folder) holds --data: refused before that folder is made
    import shutil

    from codebase.evaluators.supernet import SupernetEvaluator

    data = shutil.copytree(folder_data, os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9ta"))
    with pytest.raises(ValueError, match=f"^{tmp_path}/run/supernet/args.yaml: data {tmp_path}/d\\\\xe9ta: not UTF-8"):
        SupernetEvaluator(dataset="folder", data=data, resolutions=[24, 32], vld_size=6, bn_size=12, device="cpu",
                          save=str(tmp_path / "run"), supernet_epochs=1, quiet=True)
    assert not (tmp_path / "run" / "supernet").exists()
