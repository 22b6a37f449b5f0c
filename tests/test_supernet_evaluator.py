"""The supernet evaluator: official checkpoint format, new heads, batch-norm recalibration, the validation
split, evaluate() against an independent pipeline (PIL transforms + scikit-learn metrics), export, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from codebase.evaluators.supernet import SupernetEvaluator, export_subnet, load_supernet_weights
from codebase.supernet import build_supernet, extract_subnet
from codebase.training import recalibrate_batchnorm
from tests.data_fixtures import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["ant", "bee", "cat"]
SMALL = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 32}
MIXED = {"ks": [7, 3, 5, 3, 5, 7, 3, 5, 7, 3, 5, 3], "e": [6, 3, 4, 3, 4, 6, 3, 4, 6, 3, 4, 4],
         "d": [3, 2, 2, 2, 3], "r": 40}
OPTIONS = {"dataset": "folder", "n_classes": None, "resolutions": [32, 40], "vld_size": 6, "bn_size": 12,
           "batch_size": 5, "device": "cpu", "seed": 0}


def _old_spelling(state: dict) -> dict:
    """The key spelling of the checkpoints OFA published (MobileInvertedResidualBlock.mobile_inverted_conv)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks" and parts[2] == "conv":
            parts[2] = "mobile_inverted_conv"
        out[".".join(parts)] = value
    return out


@pytest.fixture(scope="module")
def imagenet_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(1)
    supernet = build_supernet(1.0, 1000)
    for m in supernet.modules():  # non-default statistics, so that loading them is visible
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "ofa_mbv3_w1.0.pth"
    old = _old_spelling(state)
    assert any(".mobile_inverted_conv." in k for k in old) and any("5to3_matrix" in k for k in old)
    torch.save({"state_dict": old}, path)
    return path, state


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    write_image_folder(root, ["train", "test"], CLASSES, per_class=8, size=(44, 52), seed=5)
    return root


@pytest.fixture(scope="module")
def task_checkpoint(tmp_path_factory) -> Path:
    """A 3-class supernet (what train_supernet.py writes for a 3-class task)."""
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("task") / "supernet.pth"
    torch.save({"state_dict": build_supernet(1.0, 3).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def evaluator(folder_data, task_checkpoint) -> SupernetEvaluator:
    return SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(task_checkpoint))


def test_official_format_loads_like_the_ofa_package(imagenet_checkpoint):
    path, state = imagenet_checkpoint
    ours = build_supernet(1.0, 1000)
    assert load_supernet_weights(ours, path) is False  # same head: nothing replaced
    reference = build_supernet(1.0, 1000)
    reference.load_state_dict(torch.load(path, weights_only=True)["state_dict"])  # ofa's own remapping
    for name, value in ours.state_dict().items():
        assert torch.equal(value, state[name]), name
        assert torch.equal(value, reference.state_dict()[name]), name


def test_other_class_count_gets_a_new_head_and_keeps_the_body(imagenet_checkpoint):
    path, state = imagenet_checkpoint
    supernet = build_supernet(1.0, 10)
    head_before = supernet.classifier.linear.weight.clone()
    assert load_supernet_weights(supernet, path) is True
    loaded = supernet.state_dict()
    body = [k for k in state if not k.startswith("classifier.")]
    assert len(body) > 400 and all(torch.equal(loaded[k], state[k]) for k in body)
    assert supernet.classifier.linear.weight.shape == (10, 1280)
    assert torch.equal(supernet.classifier.linear.weight, head_before)
    assert supernet(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    # a checkpoint whose head already has the task's classes loads as is
    own = supernet.state_dict()
    own["classifier.linear.weight"] = torch.randn(10, 1280)
    ten = path.parent / "ten.pth"
    torch.save({"state_dict": own}, ten)
    assert load_supernet_weights(supernet, ten) is False
    assert torch.equal(supernet.classifier.linear.weight, own["classifier.linear.weight"])

    # a body that does not fit names the first mismatched tensor (in the network's order)
    bad = dict(state)
    bad["blocks.3.conv.point_linear.bn.bn.weight"] = torch.ones(7)
    bad["final_expand_layer.bn.weight"] = torch.ones(7)
    torch.save({"state_dict": bad}, path.parent / "bad.pth")
    with pytest.raises(ValueError, match=r"'blocks\.3\.conv\.point_linear\.bn\.bn\.weight' has shape \(7,\)"):
        load_supernet_weights(supernet, path.parent / "bad.pth")
    torch.save({"state_dict": {**state, "extra.weight": torch.ones(1)}}, path.parent / "extra.pth")
    with pytest.raises(ValueError, match="'extra.weight' is not part of an OFA MobileNetV3 supernet"):
        load_supernet_weights(supernet, path.parent / "extra.pth")


def test_a_new_head_is_the_same_in_every_process_and_is_never_scored_untrained(imagenet_checkpoint, folder_data):
    # the head of a 1000-class checkpoint is replaced for a 3-class task: it must not depend on the process's
    # random state (ranks and reruns would score different heads), and scoring it untrained is refused
    from codebase.evaluators import supernet as module

    path, _ = imagenet_checkpoint
    heads = []
    for seed in (11, 12):
        module._SUPERNETS.clear()
        torch.manual_seed(seed)
        net = module.load_supernet(path, 1.0, 3)
        assert net.new_head
        heads.append(net.classifier.linear.weight.clone())
    assert torch.equal(heads[0], heads[1])
    module._SUPERNETS.clear()
    with pytest.raises(ValueError, match="scored with an untrained head; fine-tune each subnet"):
        SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(path))
    module._SUPERNETS.clear()


def test_batchnorm_recalibration_is_the_cumulative_batch_average():
    torch.manual_seed(3)
    net = extract_subnet(build_supernet(1.0, 10), SMALL).eval()
    batches = [torch.randn(6, 3, 32, 32) * 2 + 1 for _ in range(3)]
    bn = net.first_conv.bn
    before = bn.running_mean.clone(), bn.running_var.clone()
    assert recalibrate_batchnorm(net, batches) == 3
    # manual: the first BN sees first_conv's convolution; average the per-batch mean and unbiased variance
    with torch.no_grad():
        outs = [net.first_conv.conv(x) for x in batches]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(o.shape[1], -1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(bn.running_mean, before[0]) and not torch.allclose(bn.running_var, before[1])
    assert bn.momentum == 0.1 and not net.training  # restored


def test_validation_split_never_touches_the_test_set(folder_data, task_checkpoint, monkeypatch):
    import codebase.data.cache as cache
    import codebase.supernet_training as training
    from codebase.data import decode_uint8_subset, train_validation_split

    splits = []
    for module in (cache, training):
        real = module.get_dataset
        monkeypatch.setattr(module, "get_dataset",
                            lambda name, root, split, transform=None, _real=real: splits.append(split)
                            or _real(name, root, split, transform))
    ev = SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(task_checkpoint))
    assert splits and set(splits) == {"train"}
    _, vld_idx = train_validation_split(24, 6, seed=0)
    expected, labels = decode_uint8_subset("folder", folder_data, "train", vld_idx, max_resolution=40)
    assert torch.equal(ev.vld_images, expected) and torch.equal(ev.vld_labels, labels)
    assert ev.vld_size == 6 and len(ev.train_idx) == 18 and not set(ev.train_idx) & set(vld_idx)
    assert len(ev.bn_images) == 12  # calibration images come from the 18 training ones
    splits.clear()
    ev = SupernetEvaluator(**{**OPTIONS, "test": True}, data=str(folder_data), supernet_path=str(task_checkpoint))
    assert "test" in splits and len(ev.vld_images) == 24


def _pil_pipeline_logits(net, root: Path, split: str, indices, resolution: int):
    """Logits and labels through the original tool's path: a DataLoader with PIL eval transforms."""
    from codebase.data import eval_transform, get_dataset

    ds = Subset(get_dataset("folder", root, split, eval_transform("folder", resolution)), list(indices))
    xs, ys = zip(*DataLoader(ds, batch_size=50))
    with torch.no_grad():
        return net(torch.cat(xs)).double().softmax(1).numpy(), torch.cat(ys).numpy()


@pytest.mark.parametrize("subnet", [SMALL, MIXED])
def test_evaluate_matches_an_independent_computation(evaluator, folder_data, subnet):
    from sklearn.metrics import accuracy_score, log_loss

    from codebase.complexity import subnet_complexity
    from codebase.data import train_validation_split, uint8_to_input

    stats = evaluator.evaluate(subnet)
    assert set(stats) == {"top1", "top5", "loss", "params", "flops", "flops_ofa"}
    assert stats == {**stats, **subnet_complexity(subnet, 1.0, 3)}

    net = evaluator.prepare(subnet).to(memory_format=torch.contiguous_format)
    with torch.no_grad():  # the evaluator's images, one batch, scored by scikit-learn
        probs = net(uint8_to_input(evaluator.vld_images, "folder", subnet["r"])).double().softmax(1).numpy()
    labels = evaluator.vld_labels.numpy()
    assert stats["top1"] == pytest.approx(100 * accuracy_score(labels, probs.argmax(1)), abs=1e-4)
    assert stats["top5"] == 100.0  # 3 classes: the label is always among the top 5
    assert stats["loss"] == pytest.approx(log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-4)
    # the original tool's path (a DataLoader with PIL transforms of the held-out training images) gives the
    # same numbers at the largest resolution; below it, photo sets differ by a second resampling (see
    # codebase/data/cache.py), which moves a random network's outputs a lot
    _, vld_idx = train_validation_split(24, 6, seed=0)
    probs_pil, pil_labels = _pil_pipeline_logits(net, folder_data, "train", vld_idx, subnet["r"])
    assert np.array_equal(pil_labels, labels)
    if subnet["r"] == max(OPTIONS["resolutions"]):
        np.testing.assert_allclose(probs_pil, probs, atol=2e-3)


def test_prepare_recalibrates_on_training_images_only(evaluator):
    net = evaluator.prepare(SMALL)
    stats = net.first_conv.bn.running_mean
    supernet_stats = evaluator.supernet.first_conv.bn.running_mean
    assert not torch.allclose(stats.cpu(), supernet_stats)
    reference = extract_subnet(evaluator.supernet, SMALL)
    from codebase.data import uint8_to_input

    x = uint8_to_input(evaluator.bn_images, "folder", 32)
    recalibrate_batchnorm(reference, [x[a:b] for a, b in ((0, 5), (5, 10))])  # not the same batches:
    assert not torch.allclose(reference.first_conv.bn.running_var, net.first_conv.bn.running_var)
    recalibrate_batchnorm(reference, [x[0:4], x[4:8], x[8:12]])  # 12 images in near-equal batches of <= 5
    torch.testing.assert_close(reference.first_conv.bn.running_mean, net.first_conv.bn.running_mean)


def test_export_subnet_loads_with_ofa_and_matches(evaluator, folder_data, task_checkpoint, tmp_path):
    from ofa.imagenet_classification.networks import MobileNetV3

    args = {**OPTIONS, "data": str(folder_data), "supernet_path": str(task_checkpoint)}
    net = export_subnet(args, MIXED, tmp_path)
    config = json.loads((tmp_path / "net.config").read_text())
    rebuilt = MobileNetV3.build_from_config(config)
    rebuilt.load_state_dict(torch.load(tmp_path / "net.inherited", weights_only=True)["state_dict"])
    rebuilt.eval()
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        expected = evaluator.prepare(MIXED)(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(rebuilt(x), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
    assert len(config["blocks"]) == 1 + sum(MIXED["d"]) and config["classifier"]["out_features"] == 3


def test_export_from_a_runs_args_yaml_uses_its_batch_sizes_like_the_search(folder_data, task_checkpoint, tmp_path):
    """A run's args.yaml names the batch sizes with the original's flags (--trn_batch_size, --vld_batch_size):
    post_search's export built its evaluator without mapping them, so it fine-tuned with batches of 64 where the
    search used 3, and net.inherited scored 34.5% where net.stats said 58.5% (the same hold-out)."""
    from codebase.evaluators import get_evaluator
    from codebase.evaluators.supernet import cached_evaluator

    run_args = {**{k: v for k, v in OPTIONS.items() if k != "batch_size"}, "data": str(folder_data),
                "supernet_path": str(task_checkpoint), "n_epochs": 1, "trn_batch_size": 3, "vld_batch_size": 2,
                "n_workers": 0}
    searched = get_evaluator("supernet", **run_args)  # as msunas builds it
    assert (searched.ft_batch_size, searched.batch_size) == (3, 2)
    exported = cached_evaluator(run_args)
    assert (exported.ft_batch_size, exported.batch_size) == (3, 2)
    net = export_subnet(run_args, MIXED, tmp_path)
    scored = searched.prepare(MIXED).to("cpu")  # the network the search scored
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(net(x), scored(x), rtol=1e-4, atol=1e-4)


def test_bad_subnet_and_missing_supernet(evaluator, folder_data):
    with pytest.raises(ValueError, match="resolutions"):
        evaluator.evaluate({**SMALL, "r": 36})
    with pytest.raises(ValueError, match="supernet_path"):
        SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=None, save=None)


def test_a_supernet_path_naming_a_folder_points_to_the_checkpoint_in_it(tmp_path):
    from codebase.evaluators.supernet import load_supernet

    with pytest.raises(ValueError, match=f"--supernet_path {tmp_path}: a folder, not a file; give a checkpoint in it"):
        load_supernet(tmp_path, 1.0, 10)  # was: "file not found", though it is there
    with pytest.raises(ValueError, match="file not found"):
        load_supernet(tmp_path / "none.pth", 1.0, 10)


def test_cli_round_trip(evaluator, folder_data, task_checkpoint, tmp_path):
    (tmp_path / "net.subnet").write_text(json.dumps(MIXED))
    out = subprocess.run(
        [sys.executable, str(ROOT / "evaluator.py"), "--subnet", str(tmp_path / "net.subnet"), "--dataset", "folder",
         "--data", str(folder_data), "--supernet_path", str(task_checkpoint), "--vld_size", "6", "--bn_size", "12",
         "--resolutions", "32", "40", "--device", "cpu", "--save", str(tmp_path / "net.stats"),
         "--save_config", str(tmp_path / "export")],
        capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    saved = json.loads((tmp_path / "net.stats").read_text())
    assert json.loads(out.stdout.strip().splitlines()[-1]) == saved
    expected = SupernetEvaluator(**{**OPTIONS, "batch_size": 200}, data=str(folder_data),
                                 supernet_path=str(task_checkpoint)).evaluate(MIXED)
    assert saved.keys() == expected.keys()
    for key in expected:
        assert saved[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert (tmp_path / "export" / "net.config").is_file() and (tmp_path / "export" / "net.inherited").is_file()
    # validation.py reads the image size from net.subnet beside net.config
    assert json.loads((tmp_path / "export" / "net.subnet").read_text()) == MIXED
    assert json.loads((tmp_path / "export" / "net.stats").read_text()) == saved
    from codebase.models import resolve_image_size

    assert resolve_image_size(None, "folder", config=tmp_path / "export" / "net.config") == MIXED["r"]

    bad = subprocess.run([sys.executable, str(ROOT / "evaluator.py"), "--subnet", str(tmp_path / "net.subnet")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--supernet_path" in bad.stderr and "Traceback" not in bad.stderr


def test_n_classes_below_the_data_sets_classes_is_refused(folder_data, task_checkpoint):
    with pytest.raises(ValueError, match="--n_classes 2 is smaller than the 3 classes of folder"):
        SupernetEvaluator(**{**OPTIONS, "n_classes": 2}, data=str(folder_data), supernet_path=str(task_checkpoint))


def test_fine_tuning_trains_the_subnet_not_the_supernet(evaluator, folder_data, task_checkpoint):
    before = {k: v.clone() for k, v in evaluator.supernet.state_dict().items()}
    tuned = SupernetEvaluator(**{**OPTIONS, "n_epochs": 2, "ft_lr": 0.05}, data=str(folder_data),
                              supernet_path=str(task_checkpoint))
    assert tuned.supernet is evaluator.supernet  # loaded once per process
    plain, fine = evaluator.prepare(SMALL), tuned.prepare(SMALL)
    assert not torch.allclose(plain.classifier.linear.weight, fine.classifier.linear.weight)
    assert torch.equal(plain.blocks[1].conv.depth_conv.conv.weight.contiguous(),
                       extract_subnet(evaluator.supernet, SMALL).blocks[1].conv.depth_conv.conv.weight)
    assert all(torch.equal(v, before[k]) for k, v in evaluator.supernet.state_dict().items())
    assert tuned.evaluate(SMALL) != evaluator.evaluate(SMALL)


def test_a_resolution_the_supernet_never_trained_at_is_warned_about_once(folder_data, task_checkpoint, evaluator,
                                                                           tmp_path, recwarn):
    # a train_supernet.py checkpoint records its training resolutions; scoring outside them extrapolates
    state = torch.load(task_checkpoint, weights_only=True)["state_dict"]
    trained = tmp_path / "trained.pth"
    torch.save({"state_dict": state, "config": {"dataset": "another", "resolutions": [24, 28, 32]}}, trained)
    scorer = SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(trained))
    scorer.evaluate(SMALL)  # r=32: trained
    assert not [w for w in recwarn if "extrapolated" in str(w.message)]
    with pytest.warns(UserWarning, match=r"resolution 40, but .*trained.pth was trained at resolutions 24\.\.32 "
                                         r"step 4 only: its accuracy there is extrapolated"):
        scorer.evaluate(MIXED)
    recwarn.clear()
    scorer.evaluate(MIXED)  # once per resolution, not once per subnet
    evaluator.evaluate(MIXED)  # OFA's own checkpoints record no resolutions: nothing to say
    assert not [w for w in recwarn if "extrapolated" in str(w.message)]


def test_evaluator_cli_scores_at_img_size_and_checks_its_outputs_first(folder_data, task_checkpoint, tmp_path,
                                                                        monkeypatch):
    import evaluator as cli

    (tmp_path / "net.subnet").write_text(json.dumps(SMALL))
    base = ["--subnet", str(tmp_path / "net.subnet"), "--dataset", "folder", "--data", str(folder_data),
            "--supernet_path", str(task_checkpoint), "--vld_size", "6", "--bn_size", "12", "--device", "cpu",
            "--resolutions", "32", "40"]
    # --img-size scores (and exports) the subnet at that size, as --profile counts it there
    stats = cli.evaluate(cli.build_parser().parse_args([*base, "--img-size", "40", "--save_config", str(tmp_path)]))
    at_40 = SupernetEvaluator(**{**OPTIONS, "batch_size": 200}, data=str(folder_data),
                              supernet_path=str(task_checkpoint)).evaluate({**SMALL, "r": 40})
    assert stats == pytest.approx(at_40, rel=1e-4, abs=1e-6)
    assert json.loads((tmp_path / "net.subnet").read_text())["r"] == 40

    # bad outputs and options are refused before the evaluation, never after minutes of it
    def no_evaluation(*_, **__):
        raise AssertionError("evaluated before refusing")

    monkeypatch.setattr(SupernetEvaluator, "evaluate", no_evaluation)
    for extra, message in [(["--save", str(tmp_path)], "is a folder"),
                           (["--save_config", str(tmp_path / "net.subnet")], "is a file"),
                           (["--n_epochs", "-1"], "--n_epochs must be at least 0"),
                           (["--img-size", "0"], "--img-size 0: expected an input resolution")]:
        with pytest.raises(ValueError, match=message):
            cli.evaluate(cli.build_parser().parse_args([*base, *extra]))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="measuring gpu latency: .*no CUDA device"):
            cli.evaluate(cli.build_parser().parse_args([*base, "--measure", "gpu"]))


ORACLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "acc_predictor.pth"


@pytest.mark.skipif(not ORACLE.is_file(), reason="OFA's accuracy predictor absent")
def test_the_oracle_evaluator_refuses_resolutions_it_would_ignore():
    from codebase.evaluators import get_evaluator

    with pytest.raises(ValueError, match="--resolutions 160 168 224: the ofa_oracle space has .* 160 176 192 208 224"):
        get_evaluator("ofa_oracle", oracle_path=str(ORACLE), resolutions=[160, 168, 224])
    for resolutions in (None, [160, 176, 192, 208, 224]):  # a new run, and a resume (its args.yaml's values)
        assert get_evaluator("ofa_oracle", oracle_path=str(ORACLE), resolutions=resolutions).space.resolutions == \
            (160, 176, 192, 208, 224)


def test_evaluator_outputs_under_a_file_are_refused_before_anything_is_loaded(tmp_path):
    import evaluator as cli

    (tmp_path / "file").write_text("")
    base = ["--subnet", str(tmp_path / "net.subnet"), "--supernet_path", str(tmp_path / "supernet.pth")]
    # was: mkdir's FileExistsError / NotADirectoryError traceback after the whole evaluation
    for extra in (["--save", str(tmp_path / "file" / "net.stats")], ["--save_config", str(tmp_path / "file" / "x")]):
        with pytest.raises(ValueError, match="file is a file, not a folder"):
            cli.evaluate(cli.build_parser().parse_args([*base, *extra]))


def test_profile_refuses_data_it_would_not_read(folder_data, tmp_path):
    import evaluator as cli

    (tmp_path / "net.subnet").write_text(json.dumps(SMALL))
    base = ["--profile", "--subnet", str(tmp_path / "net.subnet")]
    # was: --data without --dataset (or with the built-in digits) silently counted another head (1000 or 10 classes)
    with pytest.raises(ValueError, match=f"--data {folder_data}: name its data set with --dataset"):
        cli.profile(cli.build_parser().parse_args([*base, "--data", str(folder_data)]))
    with pytest.raises(ValueError, match="the data set is digits, scikit-learn's built-in one, which reads no folder"):
        cli.profile(cli.build_parser().parse_args([*base, "--dataset", "digits", "--data", str(folder_data)]))
    three = cli.profile(cli.build_parser().parse_args([*base, "--dataset", "folder", "--data", str(folder_data)]))
    assert three == cli.profile(cli.build_parser().parse_args([*base, "--n_classes", "3"]))


@pytest.mark.parametrize("name", ["net.config", "net.inherited", "net.subnet", "net.stats"])
def test_save_config_with_a_folder_in_place_of_an_export_file_is_refused_first(folder_data, task_checkpoint,
                                                                               tmp_path, monkeypatch, name):
    import evaluator as cli

    (tmp_path / "net.subnet").write_text(json.dumps(SMALL))
    export = tmp_path / "export"
    (export / name).mkdir(parents=True)

    def no_evaluation(*_, **__):
        raise AssertionError("evaluated before refusing")

    monkeypatch.setattr(SupernetEvaluator, "evaluate", no_evaluation)
    # was: IsADirectoryError traceback after the evaluation, with net.config already written beside the folder
    with pytest.raises(ValueError, match=f"--save_config {export}: .*{name}: is a folder"):
        cli.evaluate(cli.build_parser().parse_args(
            ["--subnet", str(tmp_path / "net.subnet"), "--dataset", "folder", "--data", str(folder_data),
             "--supernet_path", str(task_checkpoint), "--vld_size", "6", "--bn_size", "12", "--device", "cpu",
             "--resolutions", "32", "--save_config", str(export)]))
    assert sorted(p.name for p in export.iterdir()) == [name]


def test_extract_subnet_reads_the_padded_form_as_the_compact_one():
    from codebase.supernet import padded_layers

    # DESIGN: readers accept the 20-entry padded form (4 slots per stage, the first d of them active)
    compact = MIXED
    slots_ks, slots_e, i = [], [], 0
    for d in compact["d"]:
        slots_ks += compact["ks"][i:i + d] + [3] * (4 - d)
        slots_e += compact["e"][i:i + d] + [3] * (4 - d)
        i += d
    padded = {**compact, "ks": slots_ks, "e": slots_e}
    # was: the padded lists read as compact ones, so most layers got another layer's kernel and expand ratio
    assert padded_layers(padded) == padded_layers(compact)
    supernet = build_supernet(1.0, 3)
    assert extract_subnet(supernet, padded).config == extract_subnet(supernet, compact).config
    with pytest.raises(ValueError, match="subnet field 'ks': expected sum\\(d\\) = 12 entries"):
        padded_layers({**compact, "ks": compact["ks"][:-1]})  # was: an IndexError
    largest = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}  # no resolution: finetune_imagenet's teacher
    assert padded_layers(largest) == ([7] * 20, [6] * 20)


def test_an_unfinished_train_supernet_checkpoint_is_warned_about(folder_data, tmp_path, recwarn):
    # train_supernet.py killed (or still running) after 1 of 2 epochs: its checkpoint scored subnets silently
    from codebase.supernet_training import SupernetTrainConfig, train_supernet

    config = SupernetTrainConfig(dataset="folder", data=str(folder_data), resolutions=(32, 40), vld_size=6,
                                 batch_size=6, epochs=2, n_random=0, lr=0.02, warmup_epochs=0)
    folder = tmp_path / "supernet"
    path = train_supernet(config, folder, device="cpu", progress=False, max_epochs=1)
    message = (f"{path} is an unfinished supernet (1 of 2 epochs trained; its training was stopped or is still "
               f"running): the subnets scored or exported from it have partly trained weights")
    with pytest.warns(UserWarning) as caught:
        SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(path))
    assert [str(w.message) for w in caught] == [message]
    (tmp_path / "net.subnet").write_text(json.dumps(SMALL))
    (folder / "args.yaml").write_text("epochs: 2\n")  # a train_supernet.py folder: the warning says how to finish it
    out = subprocess.run(
        [sys.executable, str(ROOT / "evaluator.py"), "--subnet", str(tmp_path / "net.subnet"), "--dataset", "folder",
         "--data", str(folder_data), "--supernet_path", str(path), "--vld_size", "6", "--bn_size", "12",
         "--device", "cpu"],
        capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stderr == f"warning: {message}; train_supernet.py --resume {folder} " \
        f"finishes it\n", out.stderr
    train_supernet(config, folder, device="cpu", progress=False)  # the second epoch: finished, nothing to say
    recwarn.clear()
    SupernetEvaluator(**OPTIONS, data=str(folder_data), supernet_path=str(path))
    assert not [w for w in recwarn if "unfinished" in str(w.message)]
