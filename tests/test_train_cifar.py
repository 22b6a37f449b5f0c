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
    (stale,) = (tmp_path / "run").glob(".checkpoint.pth.*.tmp")  # what the kill left
    for name in (".notes.txt", ".x.tmp"):  # hidden files of the user's
        (tmp_path / "run" / name).write_text("mine")
    assert main_inline("train_cifar", [*common, "--resume", tmp_path / "run"]) == 0
    assert not stale.exists() and not list((tmp_path / "run").glob(".*.*.tmp"))  # was: left for good
    assert all((tmp_path / "run" / name).read_text() == "mine" for name in (".notes.txt", ".x.tmp"))
    resumed = metrics(tmp_path / "run")
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(ref, resumed):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    w_ref = load_torch(tmp_path / "ref" / "model.pth")["state_dict"]
    w_run = load_torch(tmp_path / "run" / "model.pth")["state_dict"]
    assert all(torch.allclose(w_ref[k].float(), w_run[k].float(), atol=1e-6) for k in w_ref)


def torchrun(argv: list, kill: str | None = None) -> subprocess.CompletedProcess:
    """train_cifar.py on 2 CPU processes (gloo), rank 0 SIGKILLed mid-write of `kill` (NAME:N) when given."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"NSGANETV2_TEST_KILL_DURING_WRITE": kill} if kill else {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           str(ROOT / "train_cifar.py"), *map(str, argv)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def launch_two_ranks(script: str, argv: list, timeout: float = 240) -> list[tuple[int, str]]:
    """`script` as ranks 0 and 1 of a gloo job started by hand (torchrun would stop the survivor itself and print
    its own report): [(exit code, stderr)] by rank."""
    from codebase.distributed import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / script), *map(str, argv)], cwd=ROOT, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for r in (0, 1)]
    try:
        errors = [p.communicate(timeout=timeout)[1] for p in procs]
        return [(p.returncode, err) for p, err in zip(procs, errors)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def corrupt_image_folder(root: Path) -> Path:
    """A 2-class image folder whose 8 training images (one of them corrupt) are all read in the first epoch of 2
    processes with batch 2; returns the corrupt file."""
    from tests.data_fixtures import write_image_folder

    write_image_folder(root, ["train", "test"], ["cat", "dog"], per_class=4, size=(32, 32))
    (root / "train" / "dog" / "3.png").unlink()
    bad = root / "train" / "dog" / "bad.jpg"
    bad.write_bytes(b"not an image" * 20)
    return bad


def assert_one_line_per_rank(ranks: list[tuple[int, str]], bad: Path) -> None:
    """The rank that read the corrupt image says so, the other that it lost contact: one line each, exit code 2."""
    lines = [err.strip().splitlines() for _, err in ranks]
    assert [code for code, _ in ranks] == [2, 2], lines
    failed = [r for r, rank_lines in enumerate(lines) if rank_lines == [f"error: {bad}: not a readable image "
                                                                        "(UnidentifiedImageError)"]]
    assert len(failed) == 1, lines
    other = 1 - failed[0]
    assert lines[other] == [f"error: rank {other}: lost contact with the other ranks (another rank stopped; see "
                            "its error above)"], lines


def test_a_corrupt_image_on_one_rank_ends_every_rank_in_one_line(tmp_path):
    """The rank that read it said so in one line; the other died in DDP's next collective with a page of gloo
    traceback (`Connection closed by peer`) and exit code 1."""
    bad = corrupt_image_folder(tmp_path / "data")
    config, weights, _ = tiny_export(tmp_path / "model", n_classes=2)
    argv = ["--dataset", "folder", "--data", tmp_path / "data", "--model-config", config, "--initial-checkpoint",
            weights, "--img-size", "32", "--epochs", "1", "-b", "2", "-j", "0", "--device", "cpu", "--quiet",
            "--save", tmp_path / "run"]
    assert_one_line_per_rank(launch_two_ranks("train_cifar.py", argv), bad)


def test_an_error_outside_a_collective_is_not_called_lost_contact():
    from codebase.distributed import RankStopped, lost_contact_as_error

    gloo = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:1"
    with pytest.raises(RankStopped, match=r"^rank 1: lost contact with the other ranks \(another rank stopped"):
        with lost_contact_as_error(1, 2):
            raise RuntimeError(gloo)
    with pytest.raises(RankStopped, match="no answer within the timeout"):
        with lost_contact_as_error(0, 2):
            raise RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 1800000ms for recv")
    for rank, world, error in ((0, 2, RuntimeError("mat1 and mat2 shapes cannot be multiplied")),
                               (0, 1, RuntimeError(gloo)), (1, 2, ValueError("x.jpg: not a readable image"))):
        with pytest.raises(type(error), match=str(error)[:20].replace("[", r"\[")):
            with lost_contact_as_error(rank, world):  # this rank's own error, or a single process: unchanged
                raise error


def test_two_process_resume_after_kill_equals_uninterrupted_run(setup, tmp_path):
    """Each rank draws its own dropout, drop-path, Cutout and AutoAugment numbers (in the main process: -j 0), so
    the checkpoint must hold every rank's random state (it held none under torchrun: the resumed epoch repeated
    the first epoch's draws)."""
    _, common = setup
    straight = torchrun([*common, "--save", tmp_path / "straight"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = torchrun([*common, "--save", tmp_path / "run"], kill="checkpoint.pth:2")
    assert killed.returncode != 0 and load_torch(tmp_path / "run" / "checkpoint.pth")["epoch"] == 1
    resumed = torchrun(["--resume", tmp_path / "run"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "random state is not restored" not in resumed.stderr
    assert metrics(tmp_path / "run") == metrics(tmp_path / "straight")
    w_ref = load_torch(tmp_path / "straight" / "model.pth")["state_dict"]
    w_run = load_torch(tmp_path / "run" / "model.pth")["state_dict"]
    assert all(torch.equal(w_ref[k], w_run[k]) for k in w_ref)
    assert len(load_torch(tmp_path / "run" / "checkpoint.pth")["rng"]) == 2  # one state per rank


def test_a_resume_on_another_number_of_processes_continues_the_schedule(setup, tmp_path, capsys):
    """The cosine schedule is stepped per batch, and each process takes 1/world of the data: the stored batch count
    of 2 processes (1 batch per epoch here) read by 1 process (3 per epoch) put epoch 3 at 4/9 of the schedule."""
    import math

    _, common = setup
    argv = [*common, "--epochs", "3", "--save", tmp_path / "run"]
    killed = torchrun(argv, kill="checkpoint.pth:2")
    assert killed.returncode != 0 and load_torch(tmp_path / "run" / "checkpoint.pth")["epoch"] == 1
    assert main_inline("train_cifar", ["--resume", tmp_path / "run"]) == 0
    assert "3 batches per epoch now, 1 before" in capsys.readouterr().err
    # the learning rate at the start of epoch e of E is lr (1 + cos(pi e / E)) / 2, whatever the batch count
    lrs = [row["lr"] for row in metrics(tmp_path / "run")]
    assert lrs == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)], rel=1e-5)


def test_a_run_with_a_new_head_resumes_without_its_export_and_evaluate_scores_it(setup, tmp_path, capsys):
    """Fine-tuning a 5-class export on CIFAR-10 gives the network a 10-class head: --evaluate --resume built the
    export's 5-class network and refused model.pth, and a plain --resume needed the export's files still there."""
    import shutil

    folder, common = setup
    config, weights, _ = tiny_export(tmp_path / "export", n_classes=5)
    argv = list(common)
    argv[argv.index("--model-config") + 1], argv[argv.index("--initial-checkpoint") + 1] = str(config), str(weights)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "checkpoint.pth:2"}
    killed = subprocess.run([sys.executable, str(ROOT / "train_cifar.py"), *argv, "--save", tmp_path / "run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    shutil.rmtree(tmp_path / "export")  # the run folder alone, as on another machine
    assert main_inline("train_cifar", ["--resume", tmp_path / "run"]) == 0
    assert [row["epoch"] for row in metrics(tmp_path / "run")] == [1, 2]
    capsys.readouterr()
    assert main_inline("train_cifar", ["--evaluate", "--resume", tmp_path / "run"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["top1"] == pytest.approx(metrics(tmp_path / "run")[-1]["val_top1"], abs=1e-3)
    assert scored["loss"] == pytest.approx(metrics(tmp_path / "run")[-1]["val_loss"], rel=1e-4)


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # ended meanwhile
            continue
        if stat and int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its parent's wait is missing


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) and /proc are Linux's")
def test_workers_end_with_a_sigkilled_torchrun(setup, tmp_path):
    """torchrun starts its workers in sessions of their own: SIGKILLed (which it cannot pass on), it left them
    training as orphans, writing into the run folder. Now each worker gets SIGTERM when its launcher dies and exits
    through Python: every file whole, no temporary left."""
    import signal
    import time

    _, common = setup
    run = tmp_path / "run"
    argv = [*common, "--epochs", "1000", "--save", run]
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                 str(ROOT / "train_cifar.py"), *map(str, argv)], cwd=ROOT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pth").exists():  # training: an epoch is written
            assert launcher.poll() is None and time.monotonic() < deadline, "torchrun ended or never trained"
            time.sleep(0.1)
        workers = _children(launcher.pid)
        assert len(workers) == 2 and all(map(_running, workers))
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 15
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _running(w)], "workers outlived their launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not list(run.glob(".*.tmp"))  # nothing half-written
    assert load_torch(run / "checkpoint.pth")["epoch"] >= 1


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
    # the same folder resumed with an NSGA-Net network: refused, naming the flags (the stored settings rule)
    at = common.index("--model-config")
    other = [*common[:at], *common[at + 4:], "--net_type", "micro", "--layers", "3", "--init_channels", "4",
             "--filter_increment", "2"]
    refused = (r"drop --epochs 2 \(the run has 1\), --net_type micro \(the run has None\), --layers 3 \(the run "
               r"has 20\), --init_channels 4 \(the run has 34\), --filter_increment 2 \(the run has 4\); only")
    with pytest.raises(ValueError, match=refused):
        main_inline("train_cifar", [*other, "--resume", run])
    # args.yaml edited to another network: an error naming a tensor, not load_state_dict's traceback
    from codebase.io import read_yaml, write_yaml

    stored = read_yaml(run / "args.yaml")
    write_yaml(run / "args.yaml", {**stored, "model_config": None, "pretrained": None, "net_type": "micro",
                                   "layers": 3, "init_channels": 4, "filter_increment": 2})
    with pytest.raises(ValueError, match=r"checkpoint.pth does not fit the network: tensor '"):
        main_inline("train_cifar", ["--resume", run])
    with pytest.raises(ValueError, match="--device foo"):
        main_inline("train_cifar", [*common, "--device", "foo", "--save", tmp_path / "other"])


def test_resume_dir_alone_continues_the_run_with_its_stored_settings(setup, tmp_path, monkeypatch, capsys):
    """`--resume DIR` and `--evaluate --resume DIR` need no other flag: DIR/args.yaml holds the settings."""
    import codebase.finetune as finetune

    folder, common = setup
    assert main_inline("train_cifar", [*common, "--save", tmp_path / "ref"]) == 0
    ref = metrics(tmp_path / "ref")
    save_epoch = finetune._save_epoch

    def save_then_stop(folder, epoch, *rest):
        save_epoch(folder, epoch, *rest)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "_save_epoch", save_then_stop)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        main_inline("train_cifar", [*common, "--save", run])
    monkeypatch.setattr(finetune, "_save_epoch", save_epoch)
    assert [r["epoch"] for r in metrics(run)] == [1]
    assert main_inline("train_cifar", ["--resume", run]) == 0
    resumed = metrics(run)
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(ref, resumed):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    # --evaluate --resume DIR alone scores DIR/model.pth: the numbers logged for the last epoch
    capsys.readouterr()
    assert main_inline("train_cifar", ["--evaluate", "--resume", run]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["top1"] == pytest.approx(resumed[-1]["val_top1"], abs=1e-3)
    assert printed["loss"] == pytest.approx(resumed[-1]["val_loss"], rel=1e-4)
    # a finished run resumed again trains nothing
    assert main_inline("train_cifar", ["--resume", run]) == 0
    assert "nothing to train" in capsys.readouterr().err
    assert metrics(run) == resumed


def test_resume_refuses_flags_it_cannot_honour(setup, tmp_path):
    """A resume keeps the stored schedule, optimizer and network: --epochs 5 (stored 1) would run epochs at lr 0,
    so it is one error line (exit 2), like any changed training flag; --data, --device, --workers may change."""
    folder, common = setup
    run = tmp_path / "run"
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--save", run]) == 0
    before = (run / "metrics.csv").read_text()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "train_cifar.py"), "--resume", str(run), "--epochs", "5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-2000:]
    assert err[0].startswith("error: --resume") and "drop --epochs " in err[0] and "args.yaml" in err[0]
    with pytest.raises(ValueError, match=r"drop --lr 0.1 \(the run has 0.05\), --batch-size 4 \(the run has 10\), "
                                         r"--model-config other.config \(the run has /\S+/net.config\); only --data"):
        main_inline("train_cifar", ["--resume", run, "--lr", "0.1", "-b", "4", "--model-config", "other.config"])
    assert (run / "metrics.csv").read_text() == before
    # allowed: the data moved, another device / loader, the same values repeated
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--resume", run, "--data", folder / "data",
                                       "--device", "cpu", "-j", "0"]) == 0
    assert (run / "metrics.csv").read_text() == before


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


def test_each_rank_restores_its_own_random_state_and_only_with_the_same_world_size():
    from types import SimpleNamespace

    from codebase.finetune import restore_rank_rng
    from codebase.training import rng_state

    def state_after(seed):
        torch.manual_seed(seed)
        return rng_state()

    saved = [state_after(0), state_after(1)]  # a 2-process checkpoint, indexed by rank
    torch.manual_seed(7)
    restore_rank_rng(saved, SimpleNamespace(world=2, rank=1, main=False), "--resume")
    assert torch.equal(torch.get_rng_state(), saved[1]["torch"])
    restore_rank_rng([saved[0]], SimpleNamespace(world=1, rank=0, main=True), "--resume")
    assert torch.equal(torch.get_rng_state(), saved[0]["torch"])
    restore_rank_rng(saved[1], SimpleNamespace(world=1, rank=0, main=True), "--resume")  # an older checkpoint
    assert torch.equal(torch.get_rng_state(), saved[1]["torch"])
    restore_rank_rng(None, SimpleNamespace(world=1, rank=0, main=True), "--resume")  # older still: none saved
    assert torch.equal(torch.get_rng_state(), saved[1]["torch"])
    # another number of processes: each keeps its fresh seed, and rank 0 says so once
    torch.manual_seed(7)
    fresh = torch.get_rng_state()
    with pytest.warns(UserWarning, match=r"--resume: the checkpoint holds the random state of 2 processes, this "
                                         r"run has 1: the random state is not restored"):
        restore_rank_rng(saved, SimpleNamespace(world=1, rank=0, main=True), "--resume")
    restore_rank_rng([saved[0]], SimpleNamespace(world=2, rank=1, main=False), "--resume")  # rank 1: silent
    assert torch.equal(torch.get_rng_state(), fresh)


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


def _cut_and_uncut(args, image, seed):
    """The training transform of `args` on `image` with and without Cutout from the same random state: the two
    differ only inside the cut square."""
    import argparse

    from codebase.finetune import finetune_transform

    torch.manual_seed(seed)
    uncut = finetune_transform(argparse.Namespace(**{**vars(args), "cutout": False}))(image)
    torch.manual_seed(seed)
    return finetune_transform(args)(image), uncut


def test_cutout_fills_like_each_original():
    """NSGANetV2's train_cifar.py cuts out before Normalize (a black square); NSGA-Net (DARTS) after it (zeros of
    the normalised image, i.e. the mean colour)."""
    from PIL import Image

    import train_cifar

    grey = Image.new("RGB", (32, 32), (90, 120, 200))
    base = ["--dataset", "cifar10", "--img-size", "32", "--cutout"]
    ofa = train_cifar.resolve(train_cifar.build_parser().parse_args([*base, "--model-config", "net.config"]))
    assert ofa.cutout_length == 16  # the originals' 16 px on 32-px CIFAR
    black = torch.tensor([-0.49139968 / 0.24703233, -0.48215827 / 0.24348505, -0.44653124 / 0.26158768])
    out, uncut = _cut_and_uncut(ofa, grey, 0)
    assert out.shape == (3, 32, 32)
    cut = (out != uncut).any(0)
    assert cut.sum() >= 8 * 8
    torch.testing.assert_close(out[:, cut], black.view(3, 1).expand(3, int(cut.sum())), rtol=1e-6, atol=1e-6)
    nsga = train_cifar.resolve(train_cifar.build_parser().parse_args([*base, "--net_type", "micro"]))
    out, uncut = _cut_and_uncut(nsga, grey, 0)
    cut = (out != uncut).any(0)
    assert cut.sum() >= 8 * 8 and torch.equal(out[:, cut], torch.zeros(3, int(cut.sum())))


def test_default_cutout_on_digits_leaves_most_of_the_image():
    """The cutout length is in pixels at the native size: half the native side by default (4 px on 8-px digits,
    16 px at --img-size 32), not CIFAR's 16 px (which, scaled by 32/8, blanked every digit); a length that covers
    the whole native image is one error line."""
    from PIL import Image

    import train_cifar

    digit = Image.new("RGB", (8, 8), (200, 200, 200))
    for flags in (["--model-config", "net.config"], ["--net_type", "micro"]):
        args = train_cifar.resolve(train_cifar.build_parser().parse_args(
            ["--dataset", "digits", "--img-size", "32", "--cutout", *flags]))
        assert args.cutout_length == 4
        fractions = []
        for seed in range(20):
            out, uncut = _cut_and_uncut(args, digit, seed)
            assert out.shape == (3, 32, 32) and out.std() > 0.1  # not a blank image
            fractions.append(float((out != uncut).any(0).float().mean()))
        assert max(fractions) <= 0.25 and 0.1 < sum(fractions) / len(fractions)  # about a quarter at most
    with pytest.raises(ValueError, match=r"--cutout_length 8 covers the whole image: .*digits's native size of 8 px"):
        train_cifar.resolve(train_cifar.build_parser().parse_args(
            ["--dataset", "digits", "--cutout", "--cutout_length", "8", "--model-config", "net.config"]))
    done = subprocess.run([sys.executable, str(ROOT / "train_cifar.py"), "--dataset", "digits", "--cutout",
                           "--cutout_length", "16", "--model-config", "net.config"], cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "native size of 8 px" in err[0], done.stderr[-2000:]


def test_macro_flags_the_network_does_not_have_are_warned_about():
    """`--net_type macro --arch NSGANet --init_channels 8` silently built the published 128-wide network (a
    1.3-GFLOP run where a tiny one was asked for); --layers and --filter_increment never apply to macro."""
    import warnings

    from codebase.nsganet_profile import warn_ignored_macro_flags

    published = "NSGANet"
    with pytest.warns(UserWarning, match=r"--layers, --init_channels ignored: the macro network NSGANet \(fixed "
                                         r"phase widths 128, 128, 128\)"):
        warn_ignored_macro_flags(published, {"layers": 8, "init_channels": 8})
    searched = [[[1], [0, 0], [0, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1, 1], [0]]] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a searched genome's widths do follow --init_channels
        warn_ignored_macro_flags(searched, {"init_channels": 8})
    with pytest.warns(UserWarning, match="--filter_increment ignored"):
        warn_ignored_macro_flags(searched, {"filter_increment": 4})


def test_a_new_run_never_overwrites_another_and_bad_outputs_are_refused_first(setup, tmp_path):
    folder, common = setup
    run = tmp_path / "run"
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--save", run]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match="already holds a run \\(checkpoint.pth\\); continue it with --resume"):
        main_inline("train_cifar", [*common, "--epochs", "1", "--save", run])
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (tmp_path / "file").write_text("")
    for save in (tmp_path / "file", tmp_path / "file" / "run"):
        with pytest.raises(ValueError, match="file is a file, not a folder"):
            main_inline("train_cifar", [*common, "--save", save])
    with pytest.raises(ValueError, match="--img-size 0: expected an input resolution"):  # was: silently 224 px
        main_inline("train_cifar", [*common, "--img-size", "0", "--save", tmp_path / "zero"])
    assert not (tmp_path / "zero").exists()


def test_resume_of_a_run_killed_in_its_first_epoch_starts_it_again(setup, tmp_path):
    folder, common = setup
    argv = [*common, "--epochs", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NSGANETV2_TEST_KILL_DURING_WRITE": "model.pth:1"}
    killed = subprocess.run([sys.executable, str(ROOT / "train_cifar.py"), *argv, "--save", tmp_path / "run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "run" / "args.yaml").is_file() and not (tmp_path / "run" / "checkpoint.pth").exists()
    assert main_inline("train_cifar", ["--resume", tmp_path / "run"]) == 0  # was: "no checkpoint.pth", exit 2
    assert main_inline("train_cifar", [*argv, "--save", tmp_path / "ref"]) == 0
    assert metrics(tmp_path / "run") == metrics(tmp_path / "ref")
    # a run whose checkpoint went missing after later epochs cannot restart silently
    (tmp_path / "ref" / "checkpoint.pth").unlink()
    (tmp_path / "ref" / "metrics.csv").write_text((tmp_path / "ref" / "metrics.csv").read_text() + "2,0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="no checkpoint.pth, though its metrics.csv logged epochs after the first"):
        main_inline("train_cifar", ["--resume", tmp_path / "ref"])


def test_restarting_a_killed_run_reads_its_metrics_once(tmp_path, monkeypatch):
    from codebase.finetune import restart_killed_run

    header = "epoch,lr,train_loss,train_top1,val_loss,val_top1,val_top5\n"
    (tmp_path / "metrics.csv").write_text(header + "1,0.1,1,50,1,50,90\n")
    reads = []
    read_text = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: reads.append(self.name) or read_text(self, *a, **k))
    restart_killed_run(tmp_path, "--resume", say=False)  # only the first epoch logged: it starts again
    assert reads == ["metrics.csv"]  # was: read twice
    (tmp_path / "metrics.csv").write_text(header + "1,0.1,1,50,1,50,90\n2,0.1,1,50,1,50,90\n")
    with pytest.raises(ValueError, match="no checkpoint.pth, though its metrics.csv logged epochs after the first"):
        restart_killed_run(tmp_path, "--resume", say=False)


def test_a_diverged_training_is_one_error_line_and_can_be_started_again(setup, tmp_path):
    _, common = setup
    argv = [*common, "--epochs", "1", "--save", tmp_path / "run"]
    with pytest.raises(ValueError, match="training loss is nan; lower the learning rate"):  # was: a traceback
        main_inline("train_cifar", [*argv, "--lr", "1e12", "--grad_clip", "0"])
    assert main_inline("train_cifar", argv) == 0  # no epoch finished: the folder holds no run yet


def test_relative_paths_are_stored_absolute_so_a_resume_works_from_any_folder(setup, tmp_path, monkeypatch, capsys):
    folder, common = setup
    monkeypatch.chdir(folder)
    argv = [*common, "--epochs", "1", "--save", tmp_path / "run"]
    for flag, relative in (("--data", "data"), ("--model-config", "model/net.config"),
                           ("--initial-checkpoint", "model/net.inherited")):
        argv[argv.index(flag) + 1] = relative
    assert main_inline("train_cifar", argv) == 0
    monkeypatch.chdir(tmp_path)  # was: "model/net.config: file not found" (or another folder's file of that name)
    capsys.readouterr()
    assert main_inline("train_cifar", ["--evaluate", "--resume", tmp_path / "run"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["top1"] == pytest.approx(metrics(tmp_path / "run")[0]["val_top1"], abs=1e-3)


@pytest.mark.parametrize("extra, message", [
    (["--drop-path", "2"], r"--drop-path 2.0: must be in \[0, 1\)"),  # was: a traceback in the first step, files left
    (["--drop", "-0.1"], r"--drop -0.1: must be in \[0, 1\)"),  # was: trained silently
    (["--momentum", "-1"], r"--momentum -1.0: must be in \[0, 1\)"),  # was: torch's line after the data set was read
    (["--lr", "0"], "--lr 0.0: must be > 0"),
    (["-j", "-1"], r"--workers -1: must be in \[0, 256\]"),
    (["-j", "100000"], r"--workers 100000: must be in \[0, 256\]"),  # a typo would have forked 100,000 loaders
    (["--grad_clip", "-1"], "--grad_clip -1.0: must be >= 0"),  # was: silently no clipping
    (["--layers", "8", "--SE"], r"--layers, --SE only with --net_type"),  # was: silently ignored
    (["--net_type", "micro", "--model-config", ""], "--drop, --drop-path only with --model-config"),
    (["--cutout_length", "8"], "--cutout_length only with --cutout"),
    (["--evaluate"], r"--save only when training \(--evaluate writes nothing\)"),  # was: no folder, no word
])
def test_bad_values_and_flags_without_effect_are_refused_before_anything_is_read(setup, tmp_path, monkeypatch, extra,
                                                                               message):
    import codebase.finetune

    _, common = setup
    argv = [a for a in common if a != "--cutout"]
    monkeypatch.setattr(codebase.finetune, "finetune", lambda args: pytest.fail("trained before the check"))
    with pytest.raises(ValueError, match=message):
        main_inline("train_cifar", [*argv, *extra, "--save", tmp_path / "run"])
    assert not (tmp_path / "run").exists()


def test_resume_of_another_tools_folder_or_a_damaged_checkpoint_is_one_line(setup, tmp_path):
    """A train_imagenet.py or msunas.py run folder given to --resume was read as train_cifar settings: 'give
    --model-config' for a search, the optimizer's 'different number of parameter groups' for a train_imagenet run;
    a checkpoint.pth without its optimizer state was a KeyError traceback. Now each is one line naming the folder or
    file, and nothing in the folder changes."""
    from codebase.io import write_yaml

    folder, common = setup
    imagenet_run, search = tmp_path / "imagenet", tmp_path / "search"
    write_yaml(imagenet_run / "args.yaml", {"data": str(folder / "data"), "dataset": "cifar10", "model": "x",
                                            "model_config": common[common.index("--model-config") + 1],
                                            "initial_checkpoint": None, "sched": "step", "output": str(imagenet_run)})
    write_yaml(search / "args.yaml", {"save": str(search), "seed": 0, "n_doe": 20, "dataset": "digits",
                                      "epochs": 20, "layers": 8})
    for run in (imagenet_run, search):
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        with pytest.raises(ValueError, match=f"--resume {run}: not a train_cifar.py run folder \\(its args.yaml "
                                             f"lacks ") as error:
            main_inline("train_cifar", ["--resume", run])
        assert "\n" not in str(error.value)
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    run = tmp_path / "run"
    assert main_inline("train_cifar", [*common, "--epochs", "1", "--save", run]) == 0
    state = load_torch(run / "checkpoint.pth")
    for damage in ("optimizer", "scheduler", "epoch"):
        torch.save({k: v for k, v in state.items() if k != damage}, run / "checkpoint.pth")
        with pytest.raises(ValueError, match=f"checkpoint.pth: not a complete training checkpoint \\(no '{damage}'"):
            main_inline("train_cifar", ["--resume", run])


def test_zero_epochs_is_refused_unless_only_scoring(setup, tmp_path, capsys):
    """--epochs 0 ended with exit code 0 and a run folder holding only args.yaml and net.config: no weights, no
    message, and a folder --resume could never continue (its epochs cannot change). Now one line, nothing written;
    --evaluate, which trains nothing, still takes it."""
    _, common = setup
    with pytest.raises(ValueError, match="^--epochs 0: no epoch to train") as error:
        main_inline("train_cifar", [*common, "--epochs", "0", "--save", tmp_path / "run"])
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()
    assert main_inline("train_cifar", [*common, "--epochs", "0", "--evaluate"]) == 0


def test_an_args_yaml_value_of_the_wrong_type_is_one_line(setup, tmp_path):
    """args.yaml edited by hand to `epochs: two` made --resume end in a TypeError traceback ('<' not supported
    between instances of 'str' and 'int'); now one line naming the file and the setting."""
    from codebase.io import write_yaml

    _, common = setup
    run = tmp_path / "run"
    write_yaml(run / "args.yaml", {**read_yaml_args(common, run), "epochs": "two"})
    with pytest.raises(ValueError, match=r"args.yaml: corrupt \(epochs: 'two' is not an integer\)"):
        main_inline("train_cifar", ["--resume", run])


def read_yaml_args(common: list[str], run: Path) -> dict:
    """The args.yaml a fresh run with `common` would store, without running it."""
    import train_cifar

    args = train_cifar.build_parser().parse_args([*common, "--save", str(run)])
    return {k: v for k, v in vars(train_cifar.resolve(args, {})).items() if k != "resume"} | {"n_classes": 10}


def test_droprate_for_the_macro_network_is_refused(tmp_path, monkeypatch):
    """The macro network has no drop path: `--net_type macro --droprate 0.3` trained without it, silently (its
    --auxiliary and --SE were already refused)."""
    import codebase.finetune

    monkeypatch.setattr(codebase.finetune, "finetune", lambda args: pytest.fail("trained before the check"))
    with pytest.raises(ValueError, match="--droprate only with --net_type micro"):
        main_inline("train_cifar", ["--net_type", "macro", "--dataset", "digits", "--droprate", "0.3", "--epochs", "1",
                                    "--save", tmp_path / "run"])
    assert not (tmp_path / "run").exists()


def test_a_macro_network_too_deep_for_the_image_size_is_refused_before_the_run_folder(tmp_path):
    """--img-size 4 with a 3-phase macro genome was PyTorch's 'Output size is too small' traceback in the first
    batch, leaving a run folder that held only args.yaml (helper-52's audit)."""
    (tmp_path / "genome.json").write_text(str([1] * 48))
    with pytest.raises(ValueError, match="macro network: 3 active phases .* need images of at least 6 pixels, got 4"):
        main_inline("train_cifar", ["--net_type", "macro", "--arch", tmp_path / "genome.json",
                                    "--init_channels", "2", "--img-size", "4", "--dataset", "digits", "--epochs", "1",
                                    "--device", "cpu", "--save", tmp_path / "run"])
    assert not (tmp_path / "run").exists()

