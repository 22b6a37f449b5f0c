"""msunas.py over NSGA-Net's micro and macro spaces with the nsganet_train evaluator (candidates trained
from scratch on a generated CIFAR-10 folder), and the evaluator's complexity against the search's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codebase.networks.nsganet_macro import build_macro_network
from codebase.networks.nsganet_micro import build_micro_network
from codebase.nsganet_profile import count_flops, count_params
from tests.data_fixtures import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["--predictor", "none", "--pop_size", "4", "--n_offspring", "2", "--n_gens", "3", "--epochs", "1",
          "--init_channels", "4", "--dataset", "cifar10", "--vld_size", "6", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, per_batch=6, n_test=4, seed=11)
    (root / "cifar-10-batches-py" / "test_batch").unlink()  # the search must never read the test set
    return root


def msunas(*args):
    out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def directly_built_complexity(space: str, subnet: dict) -> tuple[float, float]:
    """Params and FLOPs of the search-time network built here from the subnet (4 channels, 3 cells, 10 classes).

    The same counters as the evaluator's; they are checked against hand counts in test_nsganet_macro.py.
    What this checks is that the run's network options reach the evaluator and the search's objective."""
    if space == "nsganet_micro":
        net = build_micro_network(subnet, init_channels=4, layers=3, n_classes=10)
    else:
        net = build_macro_network(subnet["genome"], init_channels=4, n_classes=10)
    return count_params(net) / 1e6, count_flops(net, 32) / 1e6


@pytest.mark.parametrize("space", ["nsganet_micro", "nsganet_macro"])
def test_three_generation_search(space, data, tmp_path):
    # NSGA-Net's --n_gens counts the initial population (pymoo's n_gen termination): 3 generations are the initial
    # 4 and 2 rounds of 2 offspring; the original ran one round more than it was told before this was mapped
    save = tmp_path / "run"
    layers = ["--layers", "3"] if space == "nsganet_micro" else []
    msunas("--search_space", space, *SEARCH, *layers, "--data", data, "--save", save)
    assert (save / "args.yaml").is_file() and not (save / "failed").exists()
    for k, n_new in ((0, 4), (1, 2), (2, 2)):
        stats = json.loads((save / f"iter_{k}.stats").read_text())
        assert stats["objectives"] == ["top1_err", "flops"]
        assert len(stats["candidates"]) == n_new and len(stats["archive"]) == 4 + 2 * k
    for path in sorted((save / "iter_0").glob("net_*.stats")):
        result = json.loads(path.read_text())
        subnet = json.loads(path.with_suffix(".subnet").read_text())
        params, flops = directly_built_complexity(space, subnet)
        assert result["flops"] == pytest.approx(flops, rel=1e-9) and result["params"] == pytest.approx(params)
        assert result["n_vld"] == 6 and result["epochs"] == 1
        # 6 held-out images: top-1 is a multiple of 1/6
        assert 0 <= result["top1"] <= 100 and abs(result["top1"] * 6 / 100 - round(result["top1"] * 6 / 100)) < 1e-4
    # the archive's FLOPs objective is what the search computes for the same genome
    from codebase.evaluators import get_evaluator
    from codebase.search.objectives import complexity_function

    evaluator = get_evaluator("nsganet_train", search_space=space, dataset="cifar10", data=data, init_channels=4,
                              layers=3 if layers else None, epochs=1)
    compute = complexity_function(evaluator.space, evaluator.n_classes)
    archive = json.loads((save / "iter_2.stats").read_text())["archive"]
    X = np.array([evaluator.space.encode(entry[0]) for entry in archive])
    assert np.allclose(compute(X)["flops"], [entry[2] for entry in archive], rtol=1e-9)


def test_evaluator_defaults_and_errors(data):
    from codebase.evaluators import get_evaluator

    micro = get_evaluator("nsganet_train", search_space="nsganet_micro", dataset="cifar10", data=data)
    assert micro.network_options == {"init_channels": 16, "layers": 8, "n_classes": 10} and micro.epochs == 20
    macro = get_evaluator("nsganet_train", search_space="nsganet_macro", dataset="cifar10", data=data)
    assert macro.network_options == {"init_channels": 32, "n_classes": 10}
    with pytest.raises(ValueError, match="at least 3 layers"):
        get_evaluator("nsganet_train", search_space="nsganet_micro", dataset="cifar10", data=data, layers=2)
    # the refusal names NSGA-Net's own spelling too, which msunas accepts (`--search_space MICRO` listed only the long)
    with pytest.raises(ValueError, match=re.escape("must be one of ['nsganet_macro', 'nsganet_micro'] (NSGA-Net's "
                                                   "micro, macro), got 'ofa'")):
        get_evaluator("nsganet_train", search_space="ofa", dataset="cifar10", data=data)


@pytest.mark.parametrize("options, message", [
    # 0 was read as "not given" (`x or default`): the default network was trained, or a tenth held out
    ({"init_channels": 0}, "init_channels must be at least 1, got 0"),
    ({"layers": 0}, "at least 3 layers (cells), got 0"),
    ({"vld_size": 0}, "vld_size must be between 1 and"),
    ({"search_space": "nsganet_macro", "layers": 0}, "--layers applies to nsganet_micro only"),
    # these failed once per candidate (a search of failures), or in a traceback, or after the run's first files
    ({"n_classes": 1}, "--n_classes must be at least 2, got 1"),
    ({"n_classes": 5}, "--n_classes 5 is smaller than the 10 classes of cifar10"),
    ({"device": "foo"}, "--device foo: not a device name"),
    ({"vld_size": 10_000}, "vld_size must be between 1 and"),
    ({"data": None}, "cifar10: no data folder given"),
])
def test_bad_options_are_refused_when_the_evaluator_is_built(data, options, message):
    from codebase.evaluators import get_evaluator

    with pytest.raises(ValueError, match=re.escape(message)):
        get_evaluator("nsganet_train", **{"search_space": "nsganet_micro", "dataset": "cifar10", "data": data,
                                          **options})


def test_one_candidate_learns_a_separable_task(tmp_path):
    """Trained from scratch for a few epochs, a candidate separates two colours on held-out images."""
    from PIL import Image

    from codebase.evaluators.nsganet_train import NSGANetTrainer

    root = tmp_path / "colours"
    for split in ("train", "test"):
        for c, colour in enumerate(((220, 30, 30), (30, 30, 220))):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            rng = np.random.default_rng(c)
            for i in range(20):
                pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    torch.manual_seed(0)
    trainer = NSGANetTrainer("nsganet_macro", dataset="folder", data=root, init_channels=4, epochs=10,
                             vld_size=10, batch_size=10, lr=0.05)
    x = trainer.space.base.initialize(1, np.random.default_rng(0))[0]
    result = trainer.evaluate(trainer.space.decode(x))
    assert result["n_vld"] == 10 and result["top1"] >= 90.0


def test_configured_space_copies_and_pickles():
    import copy
    import pickle

    from codebase.evaluators.nsganet_train import ConfiguredSpace
    from search_space import get_search_space

    space = ConfiguredSpace(get_search_space("nsganet_micro"), init_channels=4, layers=3, n_classes=10)
    x = space.base.initialize(1, np.random.default_rng(0))[0]
    for twin in (copy.copy(space), copy.deepcopy(space), pickle.loads(pickle.dumps(space))):
        assert twin.network_options == space.network_options and twin.n_var == space.n_var
        assert np.array_equal(twin.complexity(x[None]), space.complexity(x[None]))
    assert not hasattr(ConfiguredSpace.__new__(ConfiguredSpace), "base")  # half-built: AttributeError, no recursion


@pytest.mark.parametrize("name", ["micro", "macro"])
def test_original_search_space_names_are_accepted(name, tmp_path):
    """NSGA-Net's README searches with `--search_space micro|macro`: they name the nsganet_ spaces, for a new
    run and when repeated on a resume of a run that stored the full name."""
    import msunas
    from codebase.io import write_yaml

    args = msunas.resolve_args(["--search_space", name, "--init_channels", "16", "--n_gens", "30"])
    assert args.search_space == f"nsganet_{name}" and args.evaluator == "nsganet_train"
    assert args.iterations == 29  # 30 generations, the initial population included
    run = tmp_path / "run"
    run.mkdir()
    write_yaml(run / "args.yaml", {**vars(args), "save": str(run)})
    resumed = msunas.resolve_args(["--resume", str(run), "--search_space", name])
    assert resumed.search_space == f"nsganet_{name}"


def test_measured_latency_objective_and_resolved_hold_out(data, tmp_path):
    """`--sec_obj params,cpu` over an NSGA-Net space: every trained candidate's CPU latency is measured (it
    failed every evaluation after training before), and args.yaml records the hold-out size actually used
    (a tenth of the 30 training images) instead of null."""
    from codebase.io import read_yaml

    save = tmp_path / "run"
    args = [a for a in SEARCH if a not in ("--vld_size", "6")]
    args[args.index("--n_gens") + 1] = "1"  # the initial population alone
    msunas("--search_space", "nsganet_micro", *args, "--layers", "3", "--sec_obj", "params,cpu",
           "--data", data, "--save", save)
    stats = json.loads((save / "iter_0.stats").read_text())
    assert not (save / "failed").exists() and len(stats["archive"]) == 4
    assert len(stats["objectives"]) == 3 and "cpu" in stats["objectives"][2]
    latencies = [entry[3] for entry in stats["archive"]]
    assert all(ms > 0 for ms in latencies) and len(set(latencies)) > 1  # measured per network, not a constant
    assert read_yaml(save / "args.yaml")["vld_size"] == 3
    for i, entry in enumerate(stats["archive"]):  # the objective is each evaluation's own measurement
        net = json.loads((save / "iter_0" / f"net_{i}.stats").read_text())
        assert net["n_vld"] == 3 and net["latency_cpu"] == entry[3] and net["params"] == entry[2]
        assert entry[0] == json.loads((save / "iter_0" / f"net_{i}.subnet").read_text())


@pytest.mark.parametrize("argv, noted", [
    (["--search_space", "micro", "--pop_size", "40", "--n_gens", "30"], True),  # the original's command as typed
    (["--search_space", "micro", "--pop_size", "40", "--predictor", "none"], False),
    (["--search_space", "micro", "--pop_size", "40", "--predictor", "rbf"], False),  # asked for: no note
    (["--search_space", "micro", "--n_doe", "40"], False),  # MSuNAS's own flags: MSuNAS meant
    (["--pop_size", "40"], False),  # the OFA space
])
def test_nsganet_flags_without_a_predictor_say_how_to_run_nsganet(argv, noted):
    # NSGA-Net's README commands, typed here unchanged, silently ran MSuNAS with the rbf surrogate
    import msunas
    from codebase.cli import flags_given

    note = msunas.nsganet_note(msunas.resolve_args(argv), flags_given(msunas.build_parser, argv))
    assert (note is not None) == noted
    if noted:
        assert note == ("note: --predictor rbf (the default) searches nsganet_micro with a surrogate (MSuNAS, 8 "
                        "evaluations per iteration); NSGA-Net's own algorithm, plain NSGA-II, is --predictor none "
                        "(NSGA-Net's defaults where not given: --pop_size 40 --n_offspring 40 --n_gens 50)")


@pytest.mark.parametrize("argv, budget", [
    # NSGA-Net's README command: was 100 + 29 x 8 trainings, the original's 40 + 29 x 40 (its evolution_search.py
    # defaults: --pop_size 40 --n_offspring 40 --n_gens 50)
    (["--search_space", "macro", "--init_channels", "32", "--n_gens", "30"], (40, 40, 29)),
    (["--search_space", "micro"], (40, 40, 49)),
    (["--search_space", "micro", "--n_doe", "12", "--n_offspring", "4"], (12, 4, 49)),  # given: kept
    (["--search_space", "micro", "--iterations", "3", "--n_iter", "5"], (40, 5, 3)),
])
def test_nsganets_algorithm_takes_nsganets_population_defaults(argv, budget):
    import msunas

    args = msunas.resolve_args([*argv, "--predictor", "none"])
    assert (args.n_doe, args.n_iter, args.iterations) == budget
    args = msunas.resolve_args(argv)  # MSuNAS on the same space keeps MSuNAS's defaults
    assert (args.n_doe, args.n_iter) == (int(argv[argv.index("--n_doe") + 1]) if "--n_doe" in argv else 100,
                                         budget[1] if "--n_offspring" in argv or "--n_iter" in argv else 8)
