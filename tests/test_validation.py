"""validation.py and codebase/checkpoints.py: every weight format, mismatches, resolution, preprocessing."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codebase.checkpoints import extract_state_dict, load_weights
from codebase.io import save_torch, write_json
from tests.data_fixtures import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)  # published CIFAR-10 channel statistics
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)


def tiny_export(folder: Path, n_classes: int = 10, seed: int = 0) -> tuple[Path, Path, torch.nn.Module]:
    """net.config + net.inherited of the smallest OFA MobileNetV3 w1.0 subnet, made with the ofa package."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(seed)
    supernet = OFAMobileNetV3(n_classes=n_classes, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                              depth_list=[2, 3, 4])
    supernet.set_active_subnet(ks=3, e=3, d=2)
    net = supernet.get_active_subnet(preserve_weight=True)
    for m in net.modules():  # non-trivial BN statistics, so that eval-mode outputs depend on them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "net.config", net.config)
    save_torch(folder / "net.inherited", {"state_dict": net.state_dict()})
    return folder / "net.config", folder / "net.inherited", net.eval()


def run_inline(script_main, *args) -> int:
    """A script's main() in this process (no interpreter start-up); returns its exit code."""
    return script_main([str(a) for a in args])


def run(script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    config, weights, net = tiny_export(folder / "model")
    written = write_cifar10(folder / "data", per_batch=2, n_test=24, seed=5)
    return config, weights, net, folder / "data", written


def test_every_weight_format_gives_the_same_tensors(export, tmp_path):
    _, weights, net, _, _ = export
    reference = net.state_dict()
    old_ofa = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
               for k, v in reference.items()}
    assert any("mobile_inverted_conv" in k for k in old_ofa)
    noise = {k: torch.zeros_like(v) for k, v in reference.items()}
    formats = {
        "raw": reference,
        "state_dict": {"state_dict": reference},
        "original_net_init": {"state_dict": old_ofa},
        "ddp": {"state_dict": {f"module.{k}": v for k, v in reference.items()}},
        "model_ema_only": {"model_ema": {f"module.{k}": v for k, v in reference.items()}},
        "timm_ema": {"state_dict": noise, "state_dict_ema": reference, "epoch": 3},
        # timm's CheckpointSaver (the original NSGANetV2's train_imagenet.py) stores its arguments as a Namespace
        "timm_saver": {"epoch": 3, "arch": "ofa", "state_dict": reference, "version": 2,
                       "args": argparse.Namespace(model="ofa", lr=0.1), "metric": 71.5},
    }
    for name, obj in formats.items():
        path = save_torch(tmp_path / f"{name}.pth", obj)
        got = load_weights(path, use_ema=name == "timm_ema")
        assert set(got) == set(reference), name
        assert all(torch.equal(got[k], reference[k]) for k in reference), name
    # without use_ema a timm checkpoint gives the trained (not the EMA) weights
    assert torch.equal(load_weights(tmp_path / "timm_ema.pth")["first_conv.conv.weight"],
                       noise["first_conv.conv.weight"])
    with pytest.raises(ValueError, match="no network weights"):
        extract_state_dict({"epoch": 1, "optimizer": {}}, "ckpt.pth")


def test_corrupt_and_unsafe_weight_files_are_named_for_what_they_are(export, tmp_path):
    """torch's own message for both suggests the unsafe weights_only=False, over several lines."""
    import pathlib

    _, _, net, _, _ = export
    whole = save_torch(tmp_path / "whole.pth", {"state_dict": net.state_dict()}).read_bytes()
    (tmp_path / "truncated.pth").write_bytes(whole[: len(whole) // 2])
    for name in ("truncated.pth",):  # a text file: test_a_file_that_is_no_checkpoint_is_named_so
        with pytest.raises(ValueError, match=f"{name}: cannot load weights \\(not a PyTorch weight file, or a corrupt"):
            load_weights(tmp_path / name)
    save_torch(tmp_path / "object.pth", {"state_dict": net.state_dict(), "where": pathlib.PurePosixPath("/x")})
    with pytest.raises(ValueError, match="object of type pathlib.PurePosixPath") as error:
        load_weights(tmp_path / "object.pth")
    assert "weights_only" not in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content, kind", [
    (b"hello world\n", "a text file"),  # was: cannot load weights (KeyError: 101)
    (b"epoch 3\n", "a text file"),  # was: (IndexError: pop from empty list)
    (b"N.\n", "a text file"),  # was: (RuntimeError: Invalid magic number; corrupt file?)
    (b"not weights\n", "a text file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "neither a zip archive nor a pickle"),
    (b"", "an empty file"),
])
def test_a_file_that_is_no_checkpoint_is_named_so(tmp_path, content, kind):
    """Every loader (validation --pretrained, train_* --initial-checkpoint, --resume's checkpoint.pth) goes through
    load_torch: its refusal says what the file is, where it reported the unpickler's KeyError or IndexError."""
    from codebase.io import load_torch

    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    expected = f"{path}: cannot load weights (not a PyTorch checkpoint: {kind})"
    for load in (load_weights, load_torch):
        with pytest.raises(ValueError) as error:
            load(path)
        assert str(error.value) == expected


NO_DATA_PKL = "a zip archive without the data.pkl that torch.save writes"


@pytest.mark.parametrize("files, kind", [
    ({"hello.txt": "hi"}, f"{NO_DATA_PKL} (it holds 1 file, e.g. hello.txt)"),
    ({"data.pkl": "x", "b": ""}, f"{NO_DATA_PKL} (it holds 2 files, e.g. data.pkl)"),  # torch's sits one folder down
    ({}, f"{NO_DATA_PKL} (it holds 0 files)"),
])
def test_a_zip_archive_that_is_no_checkpoint_is_named_so(tmp_path, files, kind):
    """A zip archive that torch.save did not write (a data set's archive given as weights) was refused with torch's
    'file in archive is not in a subdirectory'; a real checkpoint, itself a zip archive, still loads."""
    import zipfile

    import torch

    from codebase.io import load_torch

    path = tmp_path / "weights.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    with pytest.raises(ValueError) as error:
        load_torch(path)
    assert str(error.value) == f"{path}: cannot load weights (not a PyTorch checkpoint: {kind})"
    torch.save({"w": torch.arange(3)}, tmp_path / "real.pth")
    assert zipfile.is_zipfile(tmp_path / "real.pth")
    assert load_torch(tmp_path / "real.pth")["w"].tolist() == [0, 1, 2]


def test_a_config_or_subnet_that_is_json_but_no_object_is_one_line(export, tmp_path):
    # valid JSON of another shape was an AttributeError traceback ('list' object has no attribute 'get')
    from codebase.models import resolve_image_size

    config, weights, _, data, _ = export
    (tmp_path / "list.config").write_text("[1, 2]")
    out = run("validation.py", "--dataset", "cifar10", "--data", data, "--model", tmp_path / "list.config",
              "--pretrained", weights, "-j", "0", check=False)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        f"error: {tmp_path / 'list.config'}: expected a JSON object (an ofa MobileNetV3 config), got list"]
    folder = tmp_path / "exported"  # a good config beside a net.subnet of another shape
    folder.mkdir()
    (folder / "net.config").write_text(Path(config).read_text())
    (folder / "net.subnet").write_text("[[3, 3], [3, 3]]")
    with pytest.raises(ValueError, match=r"net\.subnet: expected a JSON object with keys ks, e, d, r$"):
        resolve_image_size(None, "cifar10", folder / "net.config", weights)


def test_validation_of_a_text_file_is_one_line_and_exit_2(export, tmp_path):
    config, _, _, data, _ = export
    (tmp_path / "weights.txt").write_text("hello world\n")
    out = run("validation.py", "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained",
              tmp_path / "weights.txt", "--img-size", "32", "-j", "0", check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [f"error: {tmp_path / 'weights.txt'}: cannot load weights (not a PyTorch "
                                       f"checkpoint: a text file)"]


def test_genuine_load_failures_of_checkpoint_files_keep_their_own_message(export, tmp_path):
    """Only files that cannot be a checkpoint (no zip archive, no pickle) are called so: a damaged checkpoint keeps
    its message, and so does an error that is no format's (a folder)."""
    _, _, net, _, _ = export
    whole = save_torch(tmp_path / "whole.pth", {"state_dict": net.state_dict()}).read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ValueError, match="cut.pth: cannot load weights \\(not a PyTorch weight file, or a corrupt "
                                         "or truncated one\\)$"):
        load_weights(tmp_path / "cut.pth")
    with pytest.raises(ValueError, match="a folder, not a weight file"):
        load_weights(tmp_path)


def _independent_top1(net, written, n_classes=10):
    """Top-1 of `net` on the fixture's test images, preprocessed by hand: CIFAR at its native 32 px
    needs no resize, only scaling to 0..1 and the published mean/std."""
    images, labels = written["test"]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = net.eval()(x)
    y = torch.from_numpy(labels)
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    return 100.0 * (logits.argmax(1) == y).float().mean().item(), loss, logits


@pytest.mark.filterwarnings("ignore:No handlers found")
def test_validation_matches_hand_preprocessing_and_reports_complexity(export, tmp_path, capsys):
    config, _, net, data, written = export
    # a timm-style EMA checkpoint of the same weights, under DDP prefixes
    ema = {f"module.{k}": v for k, v in net.state_dict().items()}
    ckpt = save_torch(tmp_path / "timm.pth", {"state_dict_ema": ema})
    import validation

    code = run_inline(validation.main, "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained", ckpt,
                      "--use-ema", "--img-size", "32", "-b", "7", "-j", "0", "--save", tmp_path / "out.json")
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    top1, loss, logits = _independent_top1(net, written)
    assert result["n"] == 24 and result["img_size"] == 32
    assert result["top1"] == pytest.approx(top1, abs=1e-4)
    assert result["loss"] == pytest.approx(loss, rel=1e-4)
    ranks = (logits.topk(5, 1).indices == torch.from_numpy(written["test"][1]).view(-1, 1)).any(1)
    assert result["top5"] == pytest.approx(100.0 * ranks.float().mean().item(), abs=1e-4)
    # params: every tensor of the ofa network (torch's own count); FLOPs: the closed form at 32 px
    assert result["params"] == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6, rel=1e-6)
    from torchprofile import profile_macs

    macs = profile_macs(net.eval(), torch.zeros(1, 3, 32, 32)) / 1e6
    assert result["flops"] == pytest.approx(macs, rel=0.02)
    assert code == 0 and json.loads(printed.strip().splitlines()[-1])["top1"] == pytest.approx(result["top1"], abs=1e-3)


def test_image_size_comes_from_the_run_or_the_subnet(export, tmp_path):
    from codebase.models import resolve_image_size

    config, weights, _, _, _ = export
    assert resolve_image_size(None, "cifar10", config, weights) == 224  # nothing says otherwise: data set default
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "net.config").write_text(Path(config).read_text())
    write_json(folder / "net.subnet", {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 176})
    assert resolve_image_size(None, "cifar10", folder / "net.config", weights) == 176
    write_json(folder / "net.subnet", {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": [192]})  # the [R] form
    assert resolve_image_size(None, "cifar10", folder / "net.config", weights) == 192
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "args.yaml").write_text("img_size: 48\ndataset: cifar10\n")
    save_torch(run_dir / "model.pth", {"state_dict": {}})
    assert resolve_image_size(None, "cifar10", folder / "net.config", run_dir / "model.pth") == 48
    assert resolve_image_size(64, "cifar10", folder / "net.config", run_dir / "model.pth") == 64
    # the released NSGANetV2 / NAT net.config files carry the size as "img_size" (their validation.py read it)
    released = tmp_path / "released"
    released.mkdir()
    write_json(released / "net.config", {**json.loads(Path(config).read_text()), "img_size": 208})
    assert resolve_image_size(None, "cifar10", released / "net.config", weights) == 208


def test_mismatch_names_the_first_tensor_and_exits_2(export, tmp_path):
    config, weights, net, data, _ = export
    state = dict(net.state_dict())
    key = "blocks.3.conv.depth_conv.conv.weight"
    state[key] = torch.zeros(5, 1, 3, 3)
    bad = save_torch(tmp_path / "bad.pth", {"state_dict": state})
    out = run("validation.py", "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained", bad,
              "--img-size", "32", "-j", "0", check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "(5, 1, 3, 3)" in lines[0]
    missing = {k: v for k, v in net.state_dict().items() if not k.startswith("final_expand_layer")}
    from codebase.checkpoints import check_compatible

    with pytest.raises(ValueError, match="final_expand_layer.conv.weight"):
        check_compatible(net, missing)


def test_nsganet_network_validation(tmp_path, export):
    from codebase.nsganet_profile import build_network, count_flops, count_params

    _, _, _, data, written = export
    torch.manual_seed(1)
    net = build_network("micro", "NSGANet", layers=3, init_channels=4, filter_increment=2, auxiliary=True,
                        SE=True, n_classes=10)
    weights = save_torch(tmp_path / "micro.pt", net.state_dict())
    import validation

    code = run_inline(validation.main, "--dataset", "cifar10", "--data", data, "--net_type", "micro",
                      "--arch", "NSGANet", "--layers", "3", "--init_channels", "4", "--filter_increment", "2", "--SE",
                      "--auxiliary", "--pretrained", weights, "-j", "0", "--save", tmp_path / "micro.json")
    result = json.loads((tmp_path / "micro.json").read_text())
    top1, loss, _ = _independent_top1(net, written)
    assert result["img_size"] == 32
    assert result["top1"] == pytest.approx(top1, abs=1e-4) and result["loss"] == pytest.approx(loss, rel=1e-4)
    assert result["params"] == pytest.approx(count_params(net) / 1e6)
    assert result["flops"] == pytest.approx(count_flops(net, 32) / 1e6)
    assert np.isfinite(result["loss"]) and code == 0


CIFAR100_MEAN = (0.50707516, 0.48654887, 0.44091784)  # published CIFAR-100 channel statistics
CIFAR100_STD = (0.26733429, 0.25643846, 0.27615047)


def test_original_nsganet_test_py_commands_work(export, tmp_path):
    """The NSGA-Net README's `validation/test.py --net_type ... --model_path W` evaluates CIFAR-10 without
    naming a data set, and `--task cifar100` picks CIFAR-100; NSGANetV2's validation.py spelled --model `-m`."""
    from codebase.nsganet_profile import build_network

    config, weights, net, data, written = export
    torch.manual_seed(2)
    micro = build_network("micro", "NSGANet", layers=3, init_channels=4, filter_increment=2, auxiliary=True,
                          SE=False, n_classes=10)
    path = save_torch(tmp_path / "weights.pt", micro.state_dict())
    import validation

    shape = ["--net_type", "micro", "--arch", "NSGANet", "--layers", "3", "--init_channels", "4",
             "--filter_increment", "2", "--auxiliary"]
    assert run_inline(validation.main, *shape, "--model_path", path, "--data", data, "-j", "0", "--save",
                      tmp_path / "c10.json") == 0
    result = json.loads((tmp_path / "c10.json").read_text())
    top1, loss, _ = _independent_top1(micro, written)
    assert result["dataset"] == "cifar10" and result["n"] == 24
    assert result["top1"] == pytest.approx(top1, abs=1e-4) and result["loss"] == pytest.approx(loss, rel=1e-4)

    from tests.data_fixtures import write_cifar100

    c100 = write_cifar100(tmp_path / "c100", n_train=2, n_test=6, seed=4)
    torch.manual_seed(3)
    micro100 = build_network("micro", "NSGANet", layers=3, init_channels=4, filter_increment=2, auxiliary=True,
                             SE=False, n_classes=100)
    path100 = save_torch(tmp_path / "weights100.pt", micro100.state_dict())
    assert run_inline(validation.main, "--task", "cifar100", *shape, "--model_path", path100, "--data",
                      tmp_path / "c100", "-j", "0", "--save", tmp_path / "c100.json") == 0
    result = json.loads((tmp_path / "c100.json").read_text())
    images, labels = c100["test"]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = micro100.eval()(x)
    logits = logits[0] if isinstance(logits, tuple) else logits
    y = torch.from_numpy(labels)
    assert result["dataset"] == "cifar100" and result["n"] == 6
    assert result["top1"] == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item(), abs=1e-4)
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-4)

    # NSGANetV2's validation.py: -m net.config
    assert run_inline(validation.main, "--dataset", "cifar10", "--data", data, "-m", config, "--pretrained", weights,
                      "--img-size", "32", "-j", "0", "--save", tmp_path / "m.json") == 0
    top1, loss, _ = _independent_top1(net, written)
    assert json.loads((tmp_path / "m.json").read_text())["top1"] == pytest.approx(top1, abs=1e-4)


def test_bad_device_is_one_error_line(export):
    config, weights, _, data, _ = export
    import validation

    argv = ["--dataset", "cifar10", "--data", data, "--model", config, "--pretrained", weights, "--img-size", "32",
            "-j", "0"]
    with pytest.raises(ValueError, match="--device foo"):
        run_inline(validation.main, *argv, "--device", "foo")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            run_inline(validation.main, *argv, "--device", "cuda")


@pytest.mark.parametrize("script", ["validation", "train_cifar", "train_imagenet"])
def test_usage_errors_are_one_line_and_exit_2(script, capsys):
    module = __import__(script)
    with pytest.raises(SystemExit) as stop:
        module.main(["DATA", "--model-config", "net.config", "--no-such-flag"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err


def test_truncated_weight_files_are_named_at_every_length(export, tmp_path):
    # a zip cut short in its first kilobytes fails inside torch as a seek past the end (OSError EINVAL)
    _, _, net, _, _ = export
    whole = save_torch(tmp_path / "whole.pth", {"state_dict": net.state_dict()}).read_bytes()
    for length in (10, 5000, 20000, len(whole) // 2, len(whole) - 1):
        (tmp_path / "cut.pth").write_bytes(whole[:length])
        with pytest.raises(ValueError, match="cut.pth: cannot load weights \\(not a PyTorch weight file, or a corrupt"):
            load_weights(tmp_path / "cut.pth")


def test_bad_save_path_and_image_size_are_refused_before_the_evaluation(export, tmp_path, monkeypatch):
    config, weights, _, data, _ = export
    import validation

    monkeypatch.setattr(validation, "validate", lambda args: pytest.fail("evaluated before the check"))
    argv = ["--dataset", "cifar10", "--data", data, "--model", config, "--pretrained", weights, "-j", "0"]
    with pytest.raises(ValueError, match="--save .*: is a folder"):
        run_inline(validation.main, *argv, "--save", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="file is a file, not a folder"):
        run_inline(validation.main, *argv, "--save", tmp_path / "file" / "v.json")
    monkeypatch.undo()
    # --img-size 0 is refused, not read as "not given" (which scored at another resolution)
    from codebase.models import resolve_image_size

    for size in (0, -3, 5000):
        with pytest.raises(ValueError, match=f"--img-size {size}: expected an input resolution in 1..1024"):
            resolve_image_size(size, "cifar10", config, weights)


def test_save_to_a_broken_link_is_refused_and_the_link_kept(export, tmp_path, monkeypatch):
    """--save LINK, a symbolic link to nothing: the results replaced the link with a file after the evaluation;
    now one line naming the link and its target, before the evaluation, the link left as it was."""
    config, weights, _, data, _ = export
    import validation

    monkeypatch.setattr(validation, "validate", lambda args: pytest.fail("evaluated before the check"))
    link = tmp_path / "v.json"
    link.symlink_to(tmp_path / "gone" / "v.json")
    with pytest.raises(ValueError) as error:
        run_inline(validation.main, "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained",
                   weights, "-j", "0", "--save", link)
    assert str(error.value) == f"--save {link}: is a broken symbolic link (to {tmp_path / 'gone' / 'v.json'})"
    assert link.is_symlink() and not link.exists()
    monkeypatch.undo()
    out = run("validation.py", "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained", weights,
              "--img-size", "32", "-j", "0", "--save", link, check=False)
    assert out.returncode == 2 and out.stderr.splitlines() == [f"error: {error.value}"]
    assert link.is_symlink() and not link.exists()


@pytest.mark.parametrize("extra, message", [
    (["-b", "0"], "--batch-size 0: must be >= 1"),  # was: DataLoader's `batch_size should be ...` after loading
    (["-j", "-1"], r"--workers -1: must be in \[0, 256\]"),
    (["-j", "100000"], r"--workers 100000: must be in \[0, 256\]"),
    (["--layers", "8", "--auxiliary"], r"--layers, --auxiliary only with --net_type"),  # was: silently ignored
    (["--arch", "DARTS"], r"--arch only with --net_type"),
])
def test_bad_loader_values_and_nsganet_flags_without_net_type_are_refused_first(export, monkeypatch, extra, message):
    config, weights, _, data, _ = export
    import validation

    monkeypatch.setattr(validation, "validate", lambda args: pytest.fail("evaluated before the check"))
    with pytest.raises(ValueError, match=message):
        run_inline(validation.main, "--dataset", "cifar10", "--data", data, "--model", config, "--pretrained",
                   weights, *extra)


@pytest.mark.parametrize("cores, workers", [(1, 1), (2, 2), (16, 4)])
def test_default_loader_count_is_at_most_the_cpu_count(monkeypatch, cores, workers):
    # torch warned on every run of a 2-core machine about the 4 loaders asked for; scoring is deterministic,
    # so fewer loaders change no result
    import validation

    monkeypatch.setattr(validation.os, "cpu_count", lambda: cores)
    assert validation.build_parser().parse_args(["--model", "m", "--pretrained", "w"]).workers == workers


def test_use_ema_on_a_checkpoint_without_ema_weights_is_refused(export, tmp_path):
    """--use-ema on a checkpoint that holds no EMA weights (a train_cifar model.pth, a train_imagenet run without
    --model-ema) scored the plain weights as though they were the EMA's; now one line naming the file."""
    _, _, net, _, _ = export
    path = save_torch(tmp_path / "model.pth", {"state_dict": net.state_dict(), "epoch": 3, "top1": 50.0})
    with pytest.raises(ValueError, match="model.pth: --use-ema, but the file holds no EMA weights"):
        load_weights(path, use_ema=True)
    # a raw state dict may be EMA weights saved on their own (timm's clean_checkpoint --use-ema): taken as they are
    raw = save_torch(tmp_path / "raw.pth", net.state_dict())
    assert set(load_weights(raw, use_ema=True)) == set(net.state_dict())
