"""msunas.py end to end against the OFA oracle: outputs, baselines, bad input, and resume after SIGKILL."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codebase.search.engine import MSuNAS, SearchSettings
from codebase.search.objectives import parse_objectives
from search_space import OFASearchSpace

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "data" / "ofa" / "acc_predictor.pth"
SMALL = ["--n_doe", "12", "--iterations", "3", "--n_iter", "4", "--inner_pop", "20", "--inner_gens", "5",
         "--seed", "3", "--quiet"]
NSGA2_SMALL = [a for a in SMALL if a not in ("--inner_pop", "20", "--inner_gens", "5")]  # refused with no surrogate

pytestmark = pytest.mark.skipif(not ORACLE.is_file(), reason=f"needs {ORACLE}")


def msunas(*args, env=None, check=True):
    out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "NSGANETV2_PLOTS": "0", **(env or {})}, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


def oracle_run(save, *extra, small=SMALL, **kw):
    return msunas("--evaluator", "ofa_oracle", "--oracle_path", ORACLE, "--save", save, *small, *extra, **kw)


def load(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    save = tmp_path_factory.mktemp("ref") / "run"
    oracle_run(save)
    return save


def test_run_writes_every_output(reference_run):
    save = reference_run
    assert (save / "args.yaml").is_file() and (save / "log.txt").read_text().count("iter ") >= 4
    space = OFASearchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224))
    previous = []
    for k in range(4):
        stats = load(save / f"iter_{k}.stats")
        assert stats["objectives"] == ["top1_err", "flops"]
        assert len(stats["archive"]) == 12 + 4 * k
        assert len(stats["ref_point"]) == 2 and stats["hv"] > 0
        n_new = 12 if k == 0 else 4
        assert len(stats["candidates"]) == n_new
        for i in range(n_new):
            subnet = load(save / f"iter_{k}" / f"net_{i}.subnet")
            net_stats = load(save / f"iter_{k}" / f"net_{i}.stats")
            assert set(net_stats) >= {"top1", "params", "flops"}
            assert stats["candidates"][i] == [subnet, 100 - net_stats["top1"], net_stats["flops"]]
        genomes = [space.encode(entry[0]).tobytes() for entry in stats["archive"]]
        assert len(set(genomes)) == len(genomes)  # no architecture evaluated twice
        assert stats["archive"][: len(previous)] == previous
        previous = stats["archive"]
        if k > 0:
            assert set(stats["surrogate"]) >= {"model", "rmse", "rho", "tau"}
    hvs = [load(save / f"iter_{k}.stats")["hv"] for k in range(4)]
    assert hvs == sorted(hvs)  # the reference point is fixed, the archive only grows
    # the reference point: the initial design's nadir pushed out by 1 % of its range, kept for the whole run;
    # each hv: pymoo's hypervolume of the archive's points that beat it (the independent reference)
    from pymoo.indicators.hv import HV

    F0 = np.array([entry[1:] for entry in load(save / "iter_0.stats")["archive"]])
    ref = F0.max(axis=0) + 0.01 * (F0.max(axis=0) - F0.min(axis=0))
    for k in range(4):
        stats = load(save / f"iter_{k}.stats")
        assert stats["ref_point"] == pytest.approx(ref.tolist(), rel=1e-12)
        F = np.array([entry[1:] for entry in stats["archive"]])
        inside = F[np.all(F < ref, axis=1)]
        assert len(inside) > 1 and stats["hv"] == pytest.approx(float(HV(ref_point=ref)(inside)), rel=1e-9)
    assert hvs[-1] > hvs[0]  # the search found something better than its initial design
    first = load(save / "iter_0.stats")
    assert first["archive"][0][0] == space.decode(space.smallest())
    assert first["archive"][1][0] == space.decode(space.largest())


def test_objective_values_match_the_oracle_and_closed_form(reference_run):
    from codebase.complexity import subnet_complexity
    from codebase.oracle import OFAOracle, oracle_space

    space = oracle_space()
    oracle = OFAOracle(ORACLE)
    archive = load(reference_run / "iter_3.stats")["archive"]
    X = np.array([space.encode(e[0]) for e in archive])
    np.testing.assert_allclose([e[1] for e in archive], 100 - oracle.top1(X), rtol=1e-6)  # float32 MLP
    assert [e[2] for e in archive] == [subnet_complexity(e[0], 1.2, 1000)["flops"] for e in archive]


@pytest.mark.parametrize(
    "kill",
    [
        {"NSGANETV2_TEST_KILL_DURING_WRITE": "net_2.stats:2"},  # mid-write of an evaluation in iteration 1
        {"NSGANETV2_TEST_KILL_DURING_WRITE": "iter_2.stats:1"},  # mid-write of an iteration's summary
        {"NSGANETV2_TEST_KILL_DURING_WRITE": "plan.json:3"},  # mid-write of iteration 2's plan
        {"NSGANETV2_TEST_KILL_DURING_WRITE": "net_7.stats:1"},  # inside the initial design
    ],
)
def test_resume_after_sigkill_gives_the_same_archive(reference_run, tmp_path, kill):
    save = tmp_path / "run"
    out = oracle_run(save, env=kill, check=False)
    assert out.returncode == -signal.SIGKILL
    assert not (save / "iter_3.stats").exists()
    stale = list(save.rglob(".*.tmp"))
    assert stale  # the write really was cut off (its temporary file is left over)
    for name in (".notes.txt", ".x.tmp", "iter_0/.notes.txt"):  # hidden files of the user's
        (save / name).write_text("mine")
    msunas("--resume", save, "--quiet")
    for k in range(4):
        assert load(save / f"iter_{k}.stats")["archive"] == load(reference_run / f"iter_{k}.stats")["archive"]
    # the resume removed what the kill left (was: left for good), and nothing else
    assert not any(p.exists() for p in stale) and not list(save.rglob(".*.*.tmp"))
    assert all((save / name).read_text() == "mine" for name in (".notes.txt", ".x.tmp", "iter_0/.notes.txt"))


def test_resume_after_sigkill_at_an_arbitrary_moment(reference_run, tmp_path):
    save = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "msunas.py"), "--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE),
           "--save", str(save), *SMALL]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (save / "iter_1" / "net_1.stats").exists() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    assert (save / "iter_1" / "net_1.stats").exists() and not (save / "iter_3.stats").exists()
    msunas("--resume", save, "--quiet")
    assert load(save / "iter_3.stats")["archive"] == load(reference_run / "iter_3.stats")["archive"]


def test_resume_can_extend_a_finished_run(reference_run, tmp_path):
    import shutil

    save = tmp_path / "run"
    shutil.copytree(reference_run, save)
    finished = {p: p.stat().st_mtime_ns for p in save.glob("iter_*") if p.name != "plots"}
    finished.update({p: p.stat().st_mtime_ns for p in save.glob("iter_*/*")})
    msunas("--resume", save, "--iterations", "4", "--quiet")
    assert len(load(save / "iter_4.stats")["archive"]) == 12 + 4 * 4
    # NSGA-Net's name (6 generations, the initial one included, are 5 iterations); --seed: an unchanged setting
    msunas("--resume", save, "--n_gens", "6", "--seed", "3", "--quiet")
    assert len(load(save / "iter_5.stats")["archive"]) == 12 + 5 * 4
    # extended, not redone: the finished iterations' files are untouched and each new one adds 4 new architectures
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    for k in range(4):
        assert load(save / f"iter_{k}.stats") == load(reference_run / f"iter_{k}.stats")
    space = OFASearchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224))
    for k in (4, 5):
        stats, before = load(save / f"iter_{k}.stats"), load(save / f"iter_{k - 1}.stats")
        assert stats["archive"][:len(before["archive"])] == before["archive"]
        assert stats["archive"][len(before["archive"]):] == stats["candidates"]
        assert stats["ref_point"] == before["ref_point"] and stats["hv"] >= before["hv"]
    genomes = [space.encode(entry[0]).tobytes() for entry in load(save / "iter_5.stats")["archive"]]
    assert len(set(genomes)) == len(genomes)


def test_a_killed_extension_is_continued_by_a_plain_resume(reference_run, tmp_path):
    # `--resume DIR --iterations 5` killed in iteration 4: a plain `--resume DIR` (the README's "continue a killed
    # run") read iterations 3 from args.yaml, said "done" with iter_3.stats and left iteration 4 half done
    import shutil

    from codebase.io import read_yaml

    save = tmp_path / "run"
    shutil.copytree(reference_run, save)
    kill = {"NSGANETV2_TEST_KILL_DURING_WRITE": "iter_4.stats:1"}
    out = msunas("--resume", save, "--iterations", "5", "--quiet", env=kill, check=False)
    assert out.returncode == -signal.SIGKILL and not (save / "iter_4.stats").exists()
    assert read_yaml(save / "args.yaml")["iterations"] == 5  # the extension is the run's setting from its start
    out = msunas("--resume", save, "--quiet")
    assert "iter_5.stats" in out.stdout and len(load(save / "iter_5.stats")["archive"]) == 12 + 5 * 4
    msunas("--resume", save, "--iterations", "4", "--quiet")  # a smaller value stops earlier, never shrinks it
    assert read_yaml(save / "args.yaml")["iterations"] == 5


def test_resume_refuses_a_setting_it_would_ignore(reference_run):
    before = {p: p.stat().st_mtime_ns for p in reference_run.rglob("*")}
    out = msunas("--resume", reference_run, "--predictor", "gp", "--n_doe", "50", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "drop --predictor gp (the run has rbf), --n_doe 50 (the run has 12)" in out.stderr
    # a flag a resume may change, that the run's evaluator has no use for: accepted in silence (helper-54's audit)
    out = msunas("--resume", reference_run, "--n_workers", "1", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: --n_workers only with real evaluation: --evaluator ofa_oracle"), out.stderr
    assert {p: p.stat().st_mtime_ns for p in reference_run.rglob("*")} == before


@pytest.mark.parametrize("flags, message", [
    (["--n_doe", "5"], "its --n_doe 5 (NSGA-Net's --pop_size) is too small to fit a surrogate; start a new run"),
    (["--n_doe", "2", "--predictor", "none", "--sec_obj", "flops,params"],
     "its --n_doe 2: NSGA-III over 3 objectives needs a population of at least 3"),
])
def test_a_random_search_too_small_to_extend_says_so_on_resume(tmp_path, flags, message):
    """The resume of a --iterations 0 run whose design cannot seed the search said 'use at least 10, or --predictor
    none', flags a resume refuses (helper-53's audit)."""
    save = tmp_path / "run"
    msunas("--evaluator", "ofa_oracle", "--oracle_path", ORACLE, "--save", save, "--iterations", "0", "--quiet",
           *flags)
    out = msunas("--resume", save, "--iterations", "2", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.strip() == f"error: --resume {save}: this run cannot go on to --iterations 2: {message}"


def test_args_yaml_holds_the_resolved_settings(reference_run):
    from codebase.io import read_yaml

    stored = read_yaml(reference_run / "args.yaml")
    # an oracle run's architectures are ImageNet subnets of OFA w1.2 at 160..224, whatever --dataset said
    assert (stored["dataset"], stored["n_classes"], stored["width_mult"]) == ("imagenet", 1000, 1.2)
    assert stored["resolutions"] == [160, 176, 192, 208, 224] and stored["evaluator"] == "ofa_oracle"


def test_random_search_and_nsga2_baselines(tmp_path):
    oracle_run(tmp_path / "random", "--iterations", "0", "--n_doe", "30")
    assert len(load(tmp_path / "random" / "iter_0.stats")["archive"]) == 30
    assert not (tmp_path / "random" / "iter_1.stats").exists()
    oracle_run(tmp_path / "nsga2", "--predictor", "none", small=NSGA2_SMALL)
    stats = load(tmp_path / "nsga2" / "iter_3.stats")
    assert len(stats["archive"]) == 24 and len(stats["population"]) == 12
    assert "tau" not in stats["surrogate"]


def test_three_objectives(tmp_path):
    from codebase.complexity import subnet_complexity

    oracle_run(tmp_path / "three", "--sec_obj", "flops,params", "--iterations", "1")
    stats = load(tmp_path / "three" / "iter_1.stats")
    assert stats["objectives"] == ["top1_err", "flops", "params"] and len(stats["ref_point"]) == 3
    assert len(stats["archive"]) == 12 + 4
    for subnet, _, flops, params in stats["archive"]:
        counted = subnet_complexity(subnet, 1.2, 1000)
        assert (flops, params) == pytest.approx((counted["flops"], counted["params"]))


def test_lookup_table_latency_objective(tmp_path):
    from codebase.latency import LatencyTable

    lut = ROOT.parent / "shared" / "data" / "ofa" / "note10_lut"
    oracle_run(tmp_path / "lut", "--sec_obj", f"flops, lut:{lut}", "--iterations", "1")  # a space after the comma
    stats = load(tmp_path / "lut" / "iter_1.stats")
    assert stats["objectives"] == ["top1_err", "flops", "latency"] and not (tmp_path / "lut" / "failed").exists()
    assert len(stats["archive"]) == 12 + 4
    space = OFASearchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224))
    table = LatencyTable.load(lut)
    genomes = np.array([space.encode(entry[0]) for entry in stats["archive"]])
    expected = table.predict_genomes(genomes, space, n_classes=1000)
    assert [entry[3] for entry in stats["archive"]] == pytest.approx(expected)
    assert load(tmp_path / "lut" / "iter_1" / "net_0.stats")["latency"] == pytest.approx(
        table.predict_genomes(space.encode(load(tmp_path / "lut" / "iter_1" / "net_0.subnet"))[None], space, 1000)[0])


def test_a_run_started_with_relative_paths_resumes_from_any_folder(tmp_path):
    """args.yaml stores the oracle and the latency table as absolute paths; a resume that repeats the relative
    paths (or spaces --sec_obj differently) names the same files, so it is not refused."""
    from codebase.io import read_yaml

    (tmp_path / "o.pth").symlink_to(ORACLE)
    (tmp_path / "lut").symlink_to(ROOT.parent / "shared" / "data" / "ofa" / "note10_lut")

    def run(cwd, *args):
        out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), *map(str, args)], capture_output=True,
                             text=True, cwd=cwd, env={**os.environ, "NSGANETV2_PLOTS": "0"}, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]

    run(tmp_path, "--evaluator", "ofa_oracle", "--oracle_path", "o.pth", "--sec_obj", "flops, lut:lut",
        "--save", "run", *SMALL[:2], "--iterations", "1", *SMALL[4:])
    stored = read_yaml(tmp_path / "run" / "args.yaml")
    assert stored["oracle_path"] == str((tmp_path / "o.pth").resolve())
    assert stored["sec_obj"] == f"flops,lut:{(tmp_path / 'lut').resolve()}"
    run(ROOT, "--resume", tmp_path / "run", "--iterations", "2", "--quiet")  # from elsewhere
    run(tmp_path, "--resume", "run", "--iterations", "3", "--oracle_path", "o.pth", "--sec_obj", "flops,lut:lut")
    assert len(load(tmp_path / "run" / "iter_3.stats")["archive"]) == 12 + 3 * 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sec_obj", "joules"], "unknown objective 'joules'"),
        (["--predictor", "svm"], "unknown predictor 'svm'"),
        (["--evaluator", "magic"], "unknown evaluator 'magic'"),
        (["--n_doe", "5"], "too small to fit a surrogate"),
        (["--sec_obj", "lut:/nonexistent/table.yaml"], "/nonexistent/table.yaml"),
        (["--ref_point", "1", "2", "3"], "--ref_point needs 2 values (top1_err, flops), got 3"),
        (["--ref_point", "inf", "1e9"], "--ref_point needs finite values"),  # hv inf, Infinity in the stats
        # these used to pass the checks, evaluate iteration 0 and then crash, leaving a run that cannot resume
        (["--inner_pop", "0"], "--inner_pop >= 1"),
        (["--inner_gens", "0"], "--inner_gens >= 1"),
        (["--seed", "-1"], "--seed must be >= 0"),
        # NSGA-III below one individual per reference direction: pymoo printed a 3-line warning every iteration
        (["--sec_obj", "flops,params,cpu", "--inner_pop", "3"], "NSGA-III over 4 objectives needs a population"),
        (["--sec_obj", "flops,params", "--predictor", "none", "--n_doe", "2"], "--n_doe 2: NSGA-III over 3"),
        # the oracle's space and accuracies are fixed: these were silently replaced (args.yaml told the truth)
        (["--dataset", "cifar10", "--width_mult", "1.0"], "--dataset only with real evaluation: --evaluator "
         "ofa_oracle scores OFA w1.2 subnets with OFA's ImageNet accuracy predictor; --width_mult only with "
         "--evaluator supernet"),
        (["--supernet_path", "x.pth"], "--supernet_path only with --evaluator supernet"),
        (["--layers", "8"], "--layers only with --evaluator nsganet_train"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, args, message):
    small = NSGA2_SMALL if "none" in args else SMALL  # plain NSGA-II refuses the inner search's flags
    out = oracle_run(tmp_path / "bad", *args, check=False, small=small)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_latency_table_that_misses_the_space_is_said_before_a_supernet_is_trained(tmp_path):
    """--evaluator supernet without --supernet_path trains one first (minutes: 20 epochs on digits); a table timed
    at 160..224 px for a digits space (24..32 px) was refused only after that training."""
    lut = ROOT.parent / "shared" / "data" / "ofa" / "note10_lut"
    out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), "--dataset", "digits", "--sec_obj", f"lut:{lut}",
                          "--save", str(tmp_path / "run"), "--n_doe", "10", "--iterations", "1", "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "NSGANETV2_PLOTS": "0", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == f"error: latency table {lut}: no table for resolution 24; has [160, 176, 192, " \
                                 "208, 224]"
    assert not (tmp_path / "run").exists()  # no supernet folder, no log
    assert not (tmp_path / "bad").exists()  # a refused start leaves nothing behind, not even an empty log


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sec_obj", "joules"], "unknown objective 'joules'"),
        (["--ref_point", "1", "2", "3"], "--ref_point needs 2 values"),
        # a forgotten --dataset: digits would have been searched, the folder never read
        (["--data", "/some/cifar"], "--data /some/cifar: the data set is digits, scikit-learn's built-in one"),
        # the original's scripts/search.sh form (--gpu 1 --n_workers 4 ...): its flags pass, the data is looked at
        (["--gpu", "1", "--n_workers", "4", "--trn_batch_size", "96", "--vld_batch_size", "250", "--n_epochs", "5",
          "--dataset", "cifar10", "--data", "/some/cifar"], "cifar10: expected torchvision's CIFAR-10 python folder"),
        (["--gpu", "2"], "--gpu 2: each evaluation runs on one GPU here; --n_gpus N starts N evaluation processes"),
        (["--trn_batch_size", "0", "--n_epochs", "1"], "--trn_batch_size 0: must be >= 1"),
        (["--trn_batch_size", "32"], "--trn_batch_size only with --n_epochs 1 or more"),
    ],
)
def test_bad_arguments_are_refused_before_a_supernet_is_trained(tmp_path, args, message):
    """The default evaluator trains a supernet first (minutes): these were said only after it."""
    out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), "--save", str(tmp_path / "bad"), *args],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "NSGANETV2_PLOTS": "0"})
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        # the supernet evaluator trained a supernet and searched OFA subnets, ignoring these
        (["--init_channels", "16", "--layers", "8"], "--init_channels, --layers only with --evaluator nsganet_train"),
        (["--epochs", "5"], "--epochs only with --evaluator nsganet_train"),
        (["--oracle_path", str(ORACLE), "--n_workers", "4"], "--n_workers only with real evaluation"),
        (["--search_space", "nsganet_micro", "--vld_batch_size", "50"], "--vld_batch_size only with --evaluator "
                                                                        "supernet"),
        (["--evaluator", "supernet", "--oracle_path", str(ORACLE)], "--oracle_path only with --evaluator ofa_oracle"),
        (["--search_space", "nsganet_micro", "--evaluator", "supernet"],
         "--evaluator supernet scores ofa subnets, not --search_space nsganet_micro"),
        (["--search_space", "macro", "--oracle_path", str(ORACLE)],
         "--evaluator ofa_oracle scores ofa subnets, not --search_space nsganet_macro"),
        # nsganet_train trained its candidates without these
        (["--search_space", "micro", "--supernet_path", "w.pth", "--test"],
         "--supernet_path, --test only with --evaluator supernet"),
        (["--search_space", "micro", "--n_epochs", "2"], "--n_epochs only with --evaluator supernet"),
        # the NSGA-Net name silently won over MSuNAS's
        (["--pop_size", "20", "--n_doe", "30"], "--pop_size 20 and --n_doe 30 name the same setting"),
        (["--n_gens", "3", "--iterations", "5"], "--n_gens 3 and --iterations 5 name the same setting (--n_gens N "
                                                 "is NSGA-Net's name for --iterations N-1)"),
        (["--n_gens", "0"], "--n_gens must be >= 1 (NSGA-Net's generations, the initial population included)"),
        # were "--n_doe must be >= 2, --n_iter >= 1 and --iterations >= 0", flags never typed
        (["--search_space", "micro", "--pop_size", "1"], "--pop_size must be >= 2, got 1"),
        (["--search_space", "micro", "--n_offspring", "0"], "--n_offspring must be >= 1, got 0"),
    ],
)
def test_flags_the_evaluator_would_ignore_are_refused(args, message):
    import msunas as script

    with pytest.raises(ValueError, match=re.escape(message)):
        script.resolve_args(["--save", "unused", *args])


def test_a_bad_device_is_refused_whatever_the_evaluator(tmp_path):
    """The oracle never read --device: `--device foo` searched on (a resume of its run too)."""
    import msunas as script
    from codebase.io import write_yaml

    with pytest.raises(ValueError, match="--device foo: not a device name"):
        script.main(["--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE), "--save", str(tmp_path / "r"),
                     "--device", "foo"])
    assert not (tmp_path / "r").exists()
    write_yaml(tmp_path / "run" / "args.yaml", {"evaluator": "ofa_oracle", "oracle_path": str(ORACLE)})
    with pytest.raises(ValueError, match="an ofa_oracle run reads no data set; drop --data"):
        script.resolve_args(["--resume", str(tmp_path / "run"), "--data", "/some/cifar"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
def test_gpu_latency_without_cuda_is_refused_before_anything_is_written(tmp_path):
    out = oracle_run(tmp_path / "bad", "--sec_obj", "flops,gpu", check=False)
    assert out.returncode == 2 and "needs a CUDA device" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_save_where_a_file_is_in_the_way_is_one_line_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for save in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "run"):  # was a FileExistsError traceback
        out = oracle_run(save, check=False)
        assert out.returncode == 2 and "notes.txt is a file, not a folder" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_save_where_no_folder_can_be_made_is_one_line_exit_2():
    # a read-only or foreign location: mkdir's PermissionError (here /proc's FileNotFoundError) was a traceback
    out = oracle_run("/proc/nsganetv2-no-run-here", check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip() == "error: --save /proc/nsganetv2-no-run-here: cannot write in /proc (No such file " \
                                 "or directory)"  # said by check_output_folder, before anything is read


def test_a_warning_is_a_line_of_its_own_beside_the_progress_bar(tmp_path):
    # it was printed after the bar's text on the bar's line: "msunas:   0%|          | 0/2 [...]warning: ..."
    out = msunas("--evaluator", "ofa_oracle", "--oracle_path", ORACLE, "--save", tmp_path / "run", *SMALL[:-1],
                 "--iterations", "1", "--ref_point", "0", "0")
    lines = [line for line in re.split(r"[\r\n]", out.stderr) if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: no architecture of the initial design"), out.stderr


def test_abbreviated_flags_are_refused(reference_run):
    # a resume recognises --iterations by its full name; "--iter 6" must not be silently ignored
    out = msunas("--resume", reference_run, "--iter", "6", check=False)
    assert out.returncode == 2 and "unrecognized arguments: --iter 6" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1  # one line, like every other bad input


def test_existing_run_is_never_overwritten(reference_run):
    before = {p: p.stat().st_mtime_ns for p in reference_run.rglob("*")}
    out = oracle_run(reference_run, check=False)
    assert out.returncode == 2 and "already holds a run" in out.stderr
    assert {p: p.stat().st_mtime_ns for p in reference_run.rglob("*")} == before


def test_the_originals_evaluation_flags_reach_each_evaluator_under_its_own_names(monkeypatch):
    import codebase.evaluators.nsganet_train
    import codebase.evaluators.supernet
    from codebase.evaluators import get_evaluator

    calls = []
    for module, name in ((codebase.evaluators.supernet, "SupernetEvaluator"),
                         (codebase.evaluators.nsganet_train, "NSGANetTrainer")):
        monkeypatch.setattr(module, name, lambda _name=name, **options: calls.append((_name, options)))
    flags = {"n_workers": 4, "trn_batch_size": 32, "vld_batch_size": 100, "dataset": "digits"}
    get_evaluator("supernet", **flags)
    get_evaluator("nsganet_train", **{**flags, "vld_batch_size": None})
    get_evaluator("supernet", n_workers=None, trn_batch_size=None, vld_batch_size=None)  # not given: its defaults
    assert calls == [
        ("SupernetEvaluator", {"num_workers": 4, "ft_batch_size": 32, "batch_size": 100, "dataset": "digits"}),
        ("NSGANetTrainer", {"workers": 4, "batch_size": 32, "dataset": "digits", "vld_batch_size": None}),
        ("SupernetEvaluator", {})]


def test_a_folder_of_another_tools_search_is_refused_without_suggesting_a_resume(reference_run, tmp_path):
    # it said "continue it with --resume", which then said "not a run folder (no args.yaml)"
    (tmp_path / "iter_0.stats").write_bytes((reference_run / "iter_0.stats").read_bytes())
    out = oracle_run(tmp_path, check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --save {tmp_path} holds iter_K.stats files but no args.yaml (a search of another tool, which "
        f"--resume cannot continue; post_search.py reads it); choose another folder"], out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_0.stats"]


def test_resume_errors(tmp_path):
    out = msunas("--resume", tmp_path, check=False)
    assert out.returncode == 2 and "not a run folder" in out.stderr
    (tmp_path / "supernet").mkdir()
    (tmp_path / "supernet" / "checkpoint.pth").write_bytes(b"")  # killed while training its supernet
    out = msunas("--resume", tmp_path, check=False)
    assert out.returncode == 2 and "run the original command again (without --resume)" in out.stderr
    save = tmp_path / "run"
    oracle_run(save, "--iterations", "1")
    (save / "iter_1.stats").write_text('{"archive": [')
    out = msunas("--resume", save, "--iterations", "2", check=False)
    assert out.returncode == 2 and "iter_1.stats: corrupt JSON" in out.stderr
    (save / "iter_1.stats").unlink()
    # args.yaml edited to another objective: was "iter_0.stats: corrupt iteration stats (ref_point needs 3 values)"
    args = (save / "args.yaml").read_text()
    (save / "args.yaml").write_text(args.replace("sec_obj: flops", "sec_obj: flops,params"))
    out = msunas("--resume", save, "--iterations", "2", check=False)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: {save / 'iter_0.stats'}: the run's objectives ['top1_err', 'flops'] differ from this search's "
        "['top1_err', 'flops', 'params'] (its args.yaml changed after the run began?)"), out.stderr
    (save / "args.yaml").write_text("seed: [1,\n  n_doe: 12\n")
    out = msunas("--resume", save, check=False)
    assert out.returncode == 2 and "args.yaml: corrupt YAML file" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("old, new, message", [
    ("n_iter: 4", "n_iter: abc", "args.yaml: corrupt (n_iter: 'abc' is not an integer)"),
    ("seed: 3", "seed: '3'", "args.yaml: corrupt (seed: '3' is not an integer)"),
    ("ref_point: null", "ref_point: [a, 1]", "args.yaml: corrupt (ref_point: ['a', 1] is not a list of numbers)"),
    # were a TypeError traceback from the oracle's loader, and a switch taken as true
    ("oracle_path: /", "oracle_path: 5\nold_oracle_path: /", "args.yaml: corrupt (oracle_path: 5 is not text)"),
    ("test: false", "test: 'no'", "args.yaml: corrupt (test: 'no' is not true or false)"),
    # cut short after its first keys: was "unknown evaluator 'None'"
    ("evaluator: ofa_oracle", "", "args.yaml: incomplete (no evaluator); the run cannot continue from it"),
])
def test_an_args_yaml_value_of_the_wrong_type_is_one_line_naming_it(reference_run, tmp_path, old, new, message):
    # a hand-edited or damaged args.yaml was a TypeError traceback from deep in the checks
    import shutil

    save = tmp_path / "run"
    shutil.copytree(reference_run, save)
    text = (save / "args.yaml").read_text()
    assert old in text
    (save / "args.yaml").write_text(text.replace(old, new))
    out = msunas("--resume", save, "--iterations", "4", check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"error: {save / message}"], out.stderr
    assert not (save / "iter_4").exists()


@pytest.mark.parametrize("text", [
    "epochs: 3\nlr: 0.1\ndataset: digits\n",  # another tool's run (train_cifar.py): was "unknown evaluator 'None'"
    "evaluator: ofa_oracle\noracle_path: ORACLE\n",  # was a new 100-architecture search with default settings
])
def test_a_folder_whose_args_yaml_is_not_a_search_is_not_resumed(tmp_path, text):
    (tmp_path / "args.yaml").write_text(text.replace("ORACLE", str(ORACLE)))
    out = msunas("--resume", tmp_path, "--iterations", "0", check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --resume {tmp_path}: not a run folder (its args.yaml holds no seed, sec_obj, n_doe, iterations, "
        f"n_iter, predictor)"], out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.yaml"]


def test_a_run_killed_while_writing_args_yaml_says_to_start_again(tmp_path):
    save = tmp_path / "run"
    out = oracle_run(save, env={"NSGANETV2_TEST_KILL_DURING_WRITE": "args.yaml:1"}, check=False)
    assert out.returncode == -signal.SIGKILL and list(save.glob(".args.yaml.*.tmp"))
    out = msunas("--resume", save, check=False)  # was "not a run folder (no args.yaml)"
    assert out.returncode == 2 and "stopped before writing its args.yaml; run the original command again" in out.stderr
    oracle_run(save)  # which then starts it, and clears the left-over temporary
    assert (save / "iter_3.stats").exists() and not list(save.glob(".*.tmp"))


@pytest.mark.parametrize("flag", ["--resume", "--save"])
def test_an_empty_folder_name_is_refused(tmp_path, flag):
    # --resume "" (an unset "$RUN") started a new default search: a supernet trained into ./search-exp; --save ""
    # wrote the run into the current folder
    oracle = ["--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE)] if flag == "--save" else []
    out = subprocess.run([sys.executable, str(ROOT / "msunas.py"), flag, "", *oracle], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and out.stderr.strip() == f"error: {flag} needs a folder name, got ''", out.stderr
    assert not list(tmp_path.iterdir())


def _rewrite_json(path, change):
    path.write_text(json.dumps(change(load(path))))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: (run / "iter_3.stats").write_text("{}"),
         "iter_3.stats: corrupt iteration stats (no archive, hv, ref_point, objectives)"),
        (lambda run: (run / "iter_3.stats").write_text("[]"), "iter_3.stats: corrupt iteration stats (not a JSON"),
        (lambda run: _rewrite_json(run / "iter_3.stats", lambda s: {**s, "archive": [e[:2] for e in s["archive"]]}),
         "iter_3.stats: corrupt iteration stats (each archive entry needs a subnet and 2 objective values)"),
        # an archive emptied, cut short or made a mapping was taken as it was: the resumed run went on with it
        (lambda run: _rewrite_json(run / "iter_3.stats", lambda s: {**s, "archive": {}}),
         "iter_3.stats: corrupt iteration stats (archive is not a list)"),
        (lambda run: _rewrite_json(run / "iter_3.stats", lambda s: {**s, "archive": s["archive"][:5]}),
         "iter_3.stats: corrupt iteration stats (archive holds 5 entries, n_evaluations says 24)"),
        # a null objective value: the surrogate's fit said 'y holds a NaN' without naming the file
        (lambda run: _rewrite_json(run / "iter_3.stats", lambda s: {**s, "archive": [[s["archive"][0][0], None, 1.0],
                                                                                     *s["archive"][1:]]}),
         "iter_3.stats: corrupt iteration stats (an archive objective value is not a finite number)"),
        (lambda run: ((run / "iter_3.stats").unlink(), (run / "iter_3" / "plan.json").write_text('{"genomes": [[1]]}')),
         "plan.json: corrupt plan (genomes must be lists of 46 integers)"),
        (lambda run: ((run / "iter_3.stats").unlink(), (run / "iter_3" / "net_1.stats").write_text('{"flops": 3}')),
         "net_1.stats: corrupt (evaluation returned no 'top1')"),
        # a prediction that is not a number stopped the iteration after its evaluations, with a traceback
        (lambda run: ((run / "iter_3.stats").unlink(),
                      _rewrite_json(run / "iter_3" / "plan.json",
                                    lambda p: {**p, "predicted": [["x", 1.0], *p["predicted"][1:]]})),
         "plan.json: corrupt plan (predicted values must be numbers)"),
    ],
)
def test_a_damaged_run_file_that_is_still_json_is_one_line_naming_it(reference_run, tmp_path, damage, message):
    import shutil

    save = tmp_path / "run"
    shutil.copytree(reference_run, save)
    damage(save)
    before = {p: p.stat().st_mtime_ns for p in save.rglob("*") if p.name not in ("log.txt", ".msunas.lock")}
    out = msunas("--resume", save, "--iterations", "4", check=False)  # with its progress bar
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines()[-1].startswith("error: ") and message in out.stderr.splitlines()[-1], out.stderr
    assert {p: p.stat().st_mtime_ns for p in save.rglob("*") if p.name not in ("log.txt", ".msunas.lock")} == before


class ToyEvaluator:
    """Deterministic accuracy on a tiny space, so the search runs out of new architectures."""

    def __init__(self, space, fail_every=0):
        self.space, self.calls, self.fail_every = space, 0, fail_every
        self.succeeded = []  # (error, flops) of every evaluation that returned, in call order

    def evaluate(self, subnet):
        from codebase.complexity import subnet_complexity

        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("CUDA out of memory (simulated)")
        stats = subnet_complexity(subnet, self.space.width_mult, 10)
        top1 = 50 + 10 * np.log(stats["flops"])
        self.succeeded.append((100 - top1, stats["flops"]))
        return {"top1": top1, **stats}


def _toy_search(save, space, evaluator, **settings):
    objectives = parse_objectives("flops", space, 10)
    return MSuNAS(save, space, evaluator, objectives, SearchSettings(**settings)).run(progress=False)


def test_running_out_of_unique_candidates_does_not_crash(tmp_path):
    # 2 depths per stage (32 combinations) x 2 resolutions = 64 architectures in all
    space = OFASearchSpace(kernel_sizes=(3,), expand_ratios=(3,), depths=(2, 3), resolutions=(160, 176))
    stats = _toy_search(tmp_path, space, ToyEvaluator(space), n_doe=20, iterations=8, n_iter=8, inner_pop=16,
                        inner_gens=3)
    assert stats["n_evaluations"] == 64  # everything, each once
    notes = [n for k in range(1, 9) for n in json.loads((tmp_path / f"iter_{k}.stats").read_text())["notes"]]
    assert any("topped up" in n for n in notes)


def test_failed_evaluations_are_recorded_and_skipped(tmp_path):
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    evaluator = ToyEvaluator(space, fail_every=5)
    stats = _toy_search(tmp_path, space, evaluator, n_doe=15, iterations=2, n_iter=5, inner_pop=16, inner_gens=3)
    failed = sorted((tmp_path / "failed").glob("*.json"))
    assert len(failed) == 5 and stats["n_evaluations"] == 25 - 5
    record = json.loads(failed[0].read_text())
    assert "CUDA out of memory" in record["error"] and set(record["subnet"]) == {"ks", "e", "d", "r"}
    # failures never move the reference point: it is the nadir of the 12 initial evaluations that returned
    # (calls 1-15 minus 5, 10, 15), pushed out by 1% of their range
    ok = np.array(evaluator.succeeded[:12])
    expected = ok.max(axis=0) + 0.01 * (ok.max(axis=0) - ok.min(axis=0))
    first = json.loads((tmp_path / "iter_0.stats").read_text())
    assert first["ref_point"] == pytest.approx(expected.tolist())


def test_a_non_finite_objective_is_a_failed_evaluation(tmp_path):
    # top1 NaN (a diverged fine-tune, a broken measurement) went into the archive: ref_point [NaN, ...], hv 0,
    # NaN in iter_0.stats, then the surrogate's fit raised in iteration 1, and again on every resume
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))

    class SometimesNaN(ToyEvaluator):
        def evaluate(self, subnet):
            stats = super().evaluate(subnet)
            if self.calls % 5 == 0:
                self.succeeded.pop()
                return {**stats, "top1": float("nan")}
            return stats

    evaluator = SometimesNaN(space)
    stats = _toy_search(tmp_path, space, evaluator, n_doe=15, iterations=2, n_iter=5, inner_pop=16, inner_gens=3)
    assert stats["n_evaluations"] == 25 - 5 and len(list((tmp_path / "failed").glob("*.json"))) == 5
    assert "not a finite number" in json.loads(sorted((tmp_path / "failed").glob("*.json"))[0].read_text())["error"]
    ok = np.array(evaluator.succeeded[:12])  # the reference point comes from the finite evaluations only
    expected = ok.max(axis=0) + 0.01 * (ok.max(axis=0) - ok.min(axis=0))
    assert json.loads((tmp_path / "iter_0.stats").read_text())["ref_point"] == pytest.approx(expected.tolist())
    assert "NaN" not in (tmp_path / "iter_2.stats").read_text()


@pytest.mark.parametrize("in_the_way", ["failed", "iter_1"])
def test_a_file_where_the_run_writes_a_folder_is_refused_before_evaluating(tmp_path, in_the_way):
    # was FileExistsError's traceback after the evaluations (on the first failure, for failed/)
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    (tmp_path / in_the_way).write_text("mine")
    evaluator = ToyEvaluator(space, fail_every=5)
    with pytest.raises(ValueError, match=f"^{tmp_path / in_the_way}: a file where the run writes a folder$"):
        _toy_search(tmp_path, space, evaluator, n_doe=12, iterations=1, n_iter=4, inner_pop=16, inner_gens=3)
    assert evaluator.calls == 0 and (tmp_path / in_the_way).read_text() == "mine"


def test_an_initial_design_that_mostly_failed_goes_on_with_random_architectures(tmp_path):
    # 1 of 12 initial evaluations returned: iteration 1 used to fail fitting (and every resume again)
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))

    class MostlyFailing(ToyEvaluator):
        def evaluate(self, subnet):
            if self.calls < 12 and self.calls != 0:
                self.calls += 1
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().evaluate(subnet)

    stats = _toy_search(tmp_path, space, MostlyFailing(space), n_doe=12, iterations=3, n_iter=4, inner_pop=16,
                        inner_gens=3)
    assert stats["n_evaluations"] == 1 + 3 * 4
    first = json.loads((tmp_path / "iter_1.stats").read_text())
    assert any("too few to fit a surrogate" in n for n in first["notes"])
    last = json.loads((tmp_path / "iter_3.stats").read_text())
    assert last["notes"] == [] and "tau" in last["surrogate"]  # 9 successes by then: the surrogate is back


def test_a_reference_point_no_initial_architecture_beats_is_warned_about(tmp_path):
    # flops 1 (million) is below every subnet: the hypervolume stays 0 and the selection has no gains to go by
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    with pytest.warns(UserWarning, match="no architecture of the initial design lies inside --ref_point 100.0 1.0"):
        stats = _toy_search(tmp_path, space, ToyEvaluator(space), n_doe=12, iterations=1, n_iter=4, inner_pop=16,
                            inner_gens=3, ref_point=[100.0, 1.0])
    assert stats["hv"] == 0.0
    first = json.loads((tmp_path / "iter_0.stats").read_text())
    assert any("lies inside --ref_point" in note for note in first["notes"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a reachable point: no warning
        _toy_search(tmp_path / "ok", space, ToyEvaluator(space), n_doe=12, iterations=0, ref_point=[100.0, 1e6])


def test_surrogate_quality_with_fewer_than_two_new_evaluations_is_recorded(tmp_path):
    # `--n_iter 1` (or all but one candidate failing) gave iterations whose stats had no rmse/rho/tau at all
    from codebase import plots

    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    _toy_search(tmp_path / "one", space, ToyEvaluator(space), n_doe=12, iterations=2, n_iter=1, inner_pop=16,
                inner_gens=3)
    for k in (1, 2):
        stats = load(tmp_path / "one" / f"iter_{k}.stats")
        plan = load(tmp_path / "one" / f"iter_{k}" / "plan.json")
        quality = stats["surrogate"]
        assert len(stats["candidates"]) == 1 and quality["model"] == "rbf"
        assert quality["rmse"] == pytest.approx(abs(plan["predicted"][0][0] - stats["candidates"][0][1]))
        assert quality["rho"] is None and quality["tau"] is None  # JSON null, not a missing key
        assert quality["reason"] == "1 new evaluation: rank correlations need at least 2"

    class FailingAfterTheDesign(ToyEvaluator):
        def evaluate(self, subnet):
            if self.calls >= 12:
                self.calls += 1
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().evaluate(subnet)

    _toy_search(tmp_path / "none", space, FailingAfterTheDesign(space), n_doe=12, iterations=1, n_iter=3,
                inner_pop=16, inner_gens=3)
    quality = load(tmp_path / "none" / "iter_1.stats")["surrogate"]
    assert {k: quality[k] for k in ("rmse", "rho", "tau")} == {"rmse": None, "rho": None, "tau": None}
    assert quality["reason"] == "no new evaluation returned (3 failed)"
    # what reads the entry copes with the nulls: the plots of both runs are drawn
    for run in ("one", "none"):
        assert (tmp_path / run / "plots" / "surrogate.png") in plots.plot_run(tmp_path / run)


def _all_initial_evaluations_failed(save):
    """A run folder whose initial design was evaluated and all of it failed (as a CUDA error would), no
    iter_0.stats yet: the state `msunas.py` stops in."""
    out = oracle_run(save, env={"NSGANETV2_TEST_KILL_DURING_WRITE": "iter_0.stats:1"}, check=False)
    assert out.returncode == -signal.SIGKILL
    (save / "failed").mkdir()
    for stats in sorted((save / "iter_0").glob("net_*.stats")):
        i = int(stats.stem.split("_")[1])
        (save / "failed" / f"iter_0_net_{i}.json").write_text(json.dumps(
            {"iteration": 0, "index": i, "subnet": load(save / "iter_0" / f"net_{i}.subnet"),
             "error": "RuntimeError: CUDA out of memory (simulated)"}))
        stats.unlink()


def test_an_initial_design_that_all_failed_says_how_to_go_on(reference_run, tmp_path):
    # was "cannot derive a hypervolume reference point: every initial evaluation failed" on every --resume
    save = tmp_path / "run"
    _all_initial_evaluations_failed(save)
    for _ in range(2):  # a resume re-evaluates nothing: the same message, naming what to do
        out = msunas("--resume", save, check=False)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1] == (
            f"error: all 12 evaluations of the initial design failed (the first: RuntimeError: CUDA out of memory "
            f"(simulated); see {save / 'failed'}/iter_0_net_*.json and {save / 'log.txt'}); a resume re-evaluates "
            f"nothing and would stop here again: fix the cause, delete {save / 'failed'}/iter_0_net_*.json and "
            f"run --resume {save} to evaluate them again (or start over in a new folder)"), out.stderr
        assert not (save / "iter_0.stats").exists()
    for record in (save / "failed").glob("iter_0_net_*.json"):  # what the message says to do
        record.unlink()
    msunas("--resume", save, "--quiet")
    for k in range(4):  # the same search as one whose evaluations never failed
        assert load(save / f"iter_{k}.stats")["archive"] == load(reference_run / f"iter_{k}.stats")["archive"]


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    # two processes on one folder (two --resume, or a resume beside the original) both wrote its files
    save = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "msunas.py"), "--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE),
           "--save", str(save), *SMALL[:2], "--iterations", "200", *SMALL[4:]]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "NSGANETV2_PLOTS": "0"})
    try:
        deadline = time.time() + 120
        while not (save / "iter_1.stats").exists() and time.time() < deadline:
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)  # still holding the run: stopped in the middle of it
        assert first.poll() is None and (save / "iter_1.stats").exists()
        files = {p: p.stat().st_mtime_ns for p in save.rglob("*")}  # the lock file too: only looked at
        for args in (["--resume", save], ["--resume", save, "--iterations", "300"]):
            out = msunas(*args, check=False)
            assert out.returncode == 2 and out.stderr.strip().splitlines() == [
                f"error: {save}: in use by another msunas process (pid {first.pid}); wait for it or kill it"], \
                out.stderr
        out = oracle_run(save, check=False)  # a new run there: told that a run is there
        assert out.returncode == 2 and "already holds a run" in out.stderr
        assert {p: p.stat().st_mtime_ns for p in save.rglob("*")} == files and (save / ".msunas.lock").is_file()
    finally:
        first.kill()
        first.wait()
    msunas("--resume", save, "--iterations", "3", "--quiet")  # killed: the OS let go of the lock at once
    assert len(load(save / "iter_3.stats")["archive"]) == 12 + 3 * 4

    # a start refused after taking the lock (here: no oracle file) still leaves nothing behind, lock file included
    out = msunas("--evaluator", "ofa_oracle", "--oracle_path", tmp_path / "missing.pth", "--save",
                 tmp_path / "refused", check=False)
    assert out.returncode == 2 and "weight file not found" in out.stderr and not (tmp_path / "refused").exists()


def test_warnings_go_to_the_log_too(tmp_path):
    # a warning was printed on the terminal only: the run's log.txt had no trace of it
    for quiet in ([], ["--quiet"]):
        save = tmp_path / f"run{len(quiet)}"
        out = msunas("--evaluator", "ofa_oracle", "--oracle_path", ORACLE, "--save", save, *SMALL[:-1],
                     "--iterations", "1", "--ref_point", "0", "0", *quiet)
        lines = [line for line in re.split(r"[\r\n]", out.stderr) if "warning" in line]
        assert len(lines) == 1 and lines[0].startswith("warning: no architecture of the initial design"), out.stderr
        logged = [line for line in (save / "log.txt").read_text().splitlines() if "no architecture" in line]
        assert len(logged) == 1 and re.fullmatch(
            r"\S+ \S+ WARNING no architecture of the initial design lies inside --ref_point 0\.0 0\.0: .*", logged[0])



@pytest.mark.parametrize("alias, value, name", [("--pop_size", 50, "n_doe"), ("--n_offspring", 9, "n_iter")])
def test_a_refused_nsganet_flag_on_resume_is_named_as_given(reference_run, alias, value, name):
    # `--resume DIR --pop_size 50` said "drop --n_doe 50", a flag the user never gave
    out = msunas("--resume", reference_run, alias, value, check=False)
    stored = {"n_doe": 12, "n_iter": 4}[name]
    assert out.returncode == 2 and f"drop {alias} {value} (the run has {stored});" in out.stderr, out.stderr
    assert f"--{name}" not in out.stderr.split(";")[0]
    # both names of one setting with different values: refused on a resume as on a new run (--n_gens silently won)
    import msunas as script

    with pytest.raises(ValueError, match=re.escape("--n_gens 5 and --iterations 6 name the same setting")):
        script.resolve_args(["--resume", str(reference_run), "--n_gens", "5", "--iterations", "6"])


def _folder_supernet_run(tmp_path, supernet_path=None):
    """A supernet search on a tiny 3-class image folder (seconds): 2 random architectures, iteration 0 only."""
    from tests.data_fixtures import write_image_folder

    data = tmp_path / "data"
    if not data.exists():
        write_image_folder(data, ["train", "test"], ["a", "b", "c"], per_class=6, size=(36, 40), seed=7)
    flags = ["--dataset", "folder", "--data", data, "--resolutions", "24", "32", "--vld_size", "6",
             "--predictor", "none", "--n_doe", "2", "--n_iter", "1", "--iterations", "0", "--device", "cpu", "--quiet"]
    return [*flags, *(["--supernet_path", supernet_path] if supernet_path else [])]


def _random_supernet(path, seed, n_classes=3):
    import torch

    from codebase.supernet import build_supernet

    torch.manual_seed(seed)
    torch.save({"state_dict": build_supernet(1.0, n_classes).state_dict()}, path)


def test_a_resume_refuses_a_supernet_replaced_since_the_run_began(tmp_path):
    # the checkpoint at --supernet_path retrained (or another copied over it) between the start and --resume: the
    # resumed run scored the rest of its archive with the other weights, two supernets' accuracies in one archive
    import shutil

    import yaml

    weights, first, other = tmp_path / "sn.pth", tmp_path / "first.pth", tmp_path / "other.pth"
    _random_supernet(first, 1)
    _random_supernet(other, 2)
    shutil.copy(first, weights)
    save = tmp_path / "run"
    msunas(*_folder_supernet_run(tmp_path, weights), "--save", save)
    stored = yaml.safe_load((save / "args.yaml").read_text())
    old_run = tmp_path / "old"  # a run of an earlier version: no identity recorded, resumed unchecked
    shutil.copytree(save, old_run)
    (old_run / "args.yaml").write_text(yaml.safe_dump({k: v for k, v in stored.items() if k != "supernet_identity"},
                                                      sort_keys=False))
    shutil.copy(other, weights)
    out = msunas("--resume", save, "--iterations", "1", check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --resume {save}: the supernet {weights} changed since the run began (its size and sha256 differ "
        f"from those in args.yaml), so the rest of the archive would be scored with other weights; restore the "
        f"original file, or start a new run (another --save) to search with this one"], out.stderr
    assert not (save / "iter_1.stats").exists()
    msunas("--resume", old_run, "--iterations", "1")
    assert (old_run / "iter_1.stats").is_file()
    shutil.copy(first, weights)  # the same bytes again (a new mtime): the run goes on
    msunas("--resume", save, "--iterations", "1")
    assert len(load(save / "iter_1.stats")["archive"]) == 3
    assert stored["supernet_identity"]["size"] == weights.stat().st_size


@pytest.mark.slow  # about 25-45 s: several digits supernet searches
def test_a_resume_refuses_data_of_other_classes_and_warns_of_other_images(tmp_path):
    # --data may change on a resume (the data moved), but one of the same class count and other classes was taken:
    # the rest of the archive was scored on another task, mixed with the first's scores (args.yaml held n_classes)
    import shutil

    import yaml

    from tests.data_fixtures import write_image_folder

    weights, save = tmp_path / "sn.pth", tmp_path / "run"
    _random_supernet(weights, 1)
    msunas(*_folder_supernet_run(tmp_path, weights), "--save", save)
    other = tmp_path / "other"
    write_image_folder(other, ["train", "test"], ["a", "b", "z"], per_class=6, size=(36, 40), seed=9)
    before = {p: p.read_bytes() for p in save.rglob("*") if p.is_file()}
    out = msunas("--resume", save, "--data", other, "--iterations", "1", check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --resume {save}: {other} holds other classes than the run's data set (the run's class c is "
        f"missing, z is new), so the rest of the archive would be scored on another task; give the run's data (or a "
        f"copy of it) as --data, or start a new run (another --save)"], out.stderr
    assert {p: p.read_bytes() for p in save.rglob("*") if p.is_file()} == before  # not even the log touched
    stored = yaml.safe_load((save / "args.yaml").read_text())
    assert stored["data_identity"]["classes"] == ["a", "b", "c"] and stored["data_identity"]["n_images"] == 18
    old_run = tmp_path / "old"  # a run of an earlier version: nothing recorded, resumed unchecked
    shutil.copytree(save, old_run)
    (old_run / "args.yaml").write_text(yaml.safe_dump({k: v for k, v in stored.items() if k != "data_identity"},
                                                      sort_keys=False))
    msunas("--resume", old_run, "--data", other, "--iterations", "1")
    moved = tmp_path / "moved"  # the same data elsewhere: resumed without a word
    shutil.copytree(tmp_path / "data", moved)
    out = msunas("--resume", save, "--data", moved, "--iterations", "1")
    assert "warning" not in out.stderr and (save / "iter_1.stats").is_file()
    first = sorted((moved / "train").rglob("*.png"))[0]  # one image more: warned of (in log.txt too), not refused
    shutil.copy(first, first.with_name("extra.png"))
    out = msunas("--resume", save, "--data", moved, "--iterations", "2")
    warning = (f"--resume {save}: the training images in {moved} differ from the run's (18 then, 19 now; the same "
               f"classes): the validation hold-out holds other images now, so the rest of the archive is scored on "
               f"them; restore the run's images for scores comparable with the earlier ones")
    assert f"warning: {warning}\n" in out.stderr and warning in (save / "log.txt").read_text()
    assert (save / "iter_2.stats").is_file()


def test_a_start_refused_after_a_warning_or_a_note_leaves_no_log(tmp_path):
    # the warning of a supernet trained on other images (or the note of a new head) was in log.txt when a corrupt
    # image (or the refusal of an untrained head) stopped the start: the log, with its folder, was left behind; and
    # with --quiet the note was a second line before the error
    import shutil

    from codebase.supernet_training import SupernetTrainConfig, _save, build_training_supernet, training_set_fingerprint

    flags = _folder_supernet_run(tmp_path)
    data = tmp_path / "data"
    config = SupernetTrainConfig(dataset="folder", data=str(data), n_classes=3, resolutions=(24, 32), vld_size=6,
                                 epochs=1).resolved()
    trained = tmp_path / "trained.pth"
    _save(trained, build_training_supernet(config), config, 1, [], None, None, training_set_fingerprint("folder", data))
    grown = tmp_path / "grown"  # one image more, a corrupt one
    shutil.copytree(data, grown)
    bad = grown / "train" / "a" / "zz.png"
    bad.write_bytes(b"not an image" * 20)
    at = flags.index("--data") + 1
    save, mine = tmp_path / "run", tmp_path / "mine"
    mine.mkdir()  # a folder of the user's: kept, and left as it was
    for folder in (save, mine):
        out = msunas(*flags[:at], grown, *flags[at + 1:], "--supernet_path", trained, "--save", folder, check=False)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and lines[-1] == f"error: {bad}: not a readable image (UnidentifiedImageError)"
        assert len(lines) == 2 and "was trained on other training images (18 then, 19 now)" in lines[0], lines
    assert not save.exists() and mine.is_dir() and not any(mine.iterdir())
    ten = tmp_path / "ten.pth"  # a 10-class head for a 3-class task, scored untrained: refused
    _random_supernet(ten, 1, n_classes=10)
    out = msunas(*flags, "--supernet_path", ten, "--save", save, check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --supernet_path {ten}: its classifier has another class count than the task's 3, so every subnet "
        f"would be scored with an untrained head; fine-tune each subnet (--n_epochs 1 or more) or train a supernet "
        f"for this task (omit --supernet_path)"], out.stderr
    assert not save.exists()


@pytest.mark.slow  # about 25-45 s: several digits supernet searches
def test_a_run_that_trained_its_own_supernet_resumes_and_refuses_one_trained_anew(tmp_path):
    # a run without --supernet_path uses SAVE/supernet/checkpoint.pth; here one written as train_supernet leaves a
    # finished one (20 epochs would take minutes), which the run reuses
    import shutil

    from codebase.supernet_training import SupernetTrainConfig, _save, build_training_supernet, training_set_fingerprint

    flags = _folder_supernet_run(tmp_path)
    data = str(tmp_path / "data")
    config = SupernetTrainConfig(dataset="folder", data=data, n_classes=3, resolutions=(24, 32), vld_size=6,
                                 epochs=20).resolved()
    folder = tmp_path / "run" / "supernet"
    folder.mkdir(parents=True)
    _save(folder / "checkpoint.pth", build_training_supernet(config), config, 20, [], None, None,
          training_set_fingerprint("folder", data))
    shutil.copy(folder / "checkpoint.pth", tmp_path / "first.pth")
    msunas(*flags, "--save", tmp_path / "run")
    msunas("--resume", tmp_path / "run", "--iterations", "1")  # its own supernet, unchanged: resumed
    assert (tmp_path / "run" / "iter_1.stats").is_file()
    (folder / "checkpoint.pth").unlink()  # gone: a resume would train another
    out = msunas("--resume", tmp_path / "run", "--iterations", "2", check=False)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --resume {tmp_path / 'run'}: the run's supernet {folder / 'checkpoint.pth'} is gone, and a resume "
        f"would train another; restore it, or start a new run (another --save)"], out.stderr
    assert not (folder / "checkpoint.pth").exists() and not (tmp_path / "run" / "iter_2.stats").exists()
    shutil.copy(tmp_path / "first.pth", folder / "checkpoint.pth")
    msunas("--resume", tmp_path / "run", "--iterations", "2")
    assert (tmp_path / "run" / "iter_2.stats").is_file()


class LatencyToyEvaluator(ToyEvaluator):
    """ToyEvaluator that also 'measures' a cpu latency (ms), deterministic in the subnet."""

    def evaluate(self, subnet):
        stats = super().evaluate(subnet)
        return {**stats, "latency_cpu": 2.0 + 0.05 * stats["flops"] + 0.3 * (subnet["r"] % 7)}


def _engine(tmp_path, spec="flops,cpu"):
    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    return MSuNAS(tmp_path, space, LatencyToyEvaluator(space), parse_objectives(spec, space, 10),
                  SearchSettings(n_doe=12, iterations=2, n_iter=4, inner_pop=16, inner_gens=3))


def test_predicted_error_and_measured_latency_stay_within_what_they_can_be(tmp_path, monkeypatch):
    # the rbf extrapolated a measured latency of 12.5 ms to -7 ms, and a tiny design's error model to -26.5 %
    import acc_predictor

    class Wild:
        def fit(self, X, y):
            self.y = np.asarray(y, dtype=float)
            return self

        def predict(self, X):
            return np.where(np.arange(len(X)) % 2, self.y.max() + 200.0, -26.5 - self.y.max())

    monkeypatch.setattr(acc_predictor, "get_acc_predictor", lambda name, **kw: Wild())
    engine = _engine(tmp_path)
    space = engine.space
    X = space.sample(6, np.random.default_rng(0))
    F = np.column_stack([np.linspace(20, 30, 6), np.linspace(100, 200, 6), np.linspace(12.5, 14.0, 6)])
    F_pred = engine._predict(engine._fit_models(X, F, seed=0), space.sample(4, np.random.default_rng(1)))
    assert F_pred[:, 0].tolist() == [0.0, 100.0, 0.0, 100.0]  # percent
    assert F_pred[0, 2] == 12.5 / 2 and F_pred[1, 2] == 14.0 + 200.0  # no lower than half the fastest measured


def test_every_measured_objectives_surrogate_quality_is_recorded(tmp_path):
    engine = _engine(tmp_path)
    engine.run(progress=False)
    for k in (1, 2):
        stats = load(tmp_path / f"iter_{k}.stats")
        plan = load(tmp_path / f"iter_{k}" / "plan.json")
        quality = stats["surrogate"]
        assert set(quality) >= {"model", "winner", "rmse", "rho", "tau"}  # the error model's, as before
        latency = quality["objectives"]["latency_cpu"]
        assert set(latency) == {"rmse", "rho", "tau"} and list(quality["objectives"]) == ["latency_cpu"]
        pred = np.array(plan["predicted"])[:, 2]
        true = np.array([c[3] for c in stats["candidates"]])
        assert latency["rmse"] == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)))
    # exact objectives only: no entry (and the 2-objective stats keep their keys)
    _engine(tmp_path / "flops", "flops").run(progress=False)
    assert "objectives" not in load(tmp_path / "flops" / "iter_1.stats")["surrogate"]


def test_a_resumed_iteration_records_the_same_quality_from_its_plan(tmp_path):
    import shutil

    _engine(tmp_path / "run").run(progress=False)
    shutil.copytree(tmp_path / "run", tmp_path / "resumed")
    (tmp_path / "resumed" / "iter_2.stats").unlink()  # killed after its evaluations: rebuilt from plan.json
    _engine(tmp_path / "resumed").run(progress=False)
    assert load(tmp_path / "resumed" / "iter_2.stats") == load(tmp_path / "run" / "iter_2.stats")


@pytest.mark.parametrize("flags, named", [
    (["--subset", "spread"], "--subset"),
    (["--subset", "hv_bands"], "--subset"),  # the default given: still no effect
    (["--inner_pop", "20", "--inner_gens", "5"], "--inner_pop, --inner_gens"),
])
def test_plain_nsga2_refuses_the_surrogate_searchs_flags(flags, named):
    # --predictor none never reads them: all three --subset values gave the identical run
    import msunas as script

    with pytest.raises(ValueError, match=re.escape(f"{named} only with a surrogate (--predictor none is plain")):
        script.resolve_args(["--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE), "--predictor", "none",
                             *flags])


@pytest.mark.parametrize("argv", [
    ["--evaluator", "ofa_oracle", "--oracle_path", str(ORACLE), "--subset", "spread", "--inner_pop", "20",
     "--inner_gens", "5"],  # with a surrogate they are read
    ["--search_space", "micro", "--predictor", "none", "--pop_size", "4", "--n_offspring", "2", "--n_gens", "3"],
    ["--search_space", "macro", "--predictor", "none", "--n_doe", "4", "--n_iter", "2", "--iterations", "2"],
])
def test_the_surrogate_flags_and_nsganets_are_accepted_where_read(argv):
    import msunas as script

    script.resolve_args(argv)


def test_an_nsga2_run_begun_with_the_surrogate_flags_still_resumes(tmp_path):
    # an earlier version accepted them and stored them in args.yaml (as every run stores every setting)
    from codebase.io import read_yaml, write_yaml

    save = tmp_path / "run"
    oracle_run(save, "--predictor", "none", "--iterations", "1", small=NSGA2_SMALL)
    write_yaml(save / "args.yaml", {**read_yaml(save / "args.yaml"), "subset": "spread", "inner_pop": 20})
    out = msunas("--resume", save, "--iterations", "2", check=False)
    assert out.returncode == 0, out.stderr
    assert len(load(save / "iter_2.stats")["archive"]) == 12 + 2 * 4


def test_the_log_writes_a_message_naming_a_file_that_is_not_utf8_escaped(tmp_path, capsys):
    """A failed evaluation's message may name an image whose name is not UTF-8 (b'b\\xe9d.jpg'): the log file's
    handler printed a '--- Logging error ---' traceback for each one instead of writing it."""
    import logging
    import os

    import msunas

    msunas.setup_logging(tmp_path, quiet=False)
    logger = logging.getLogger("msunas")
    logger.propagate = False  # pytest's capture would hand the record to xdist, which cannot send lone surrogates
    try:
        logger.warning("evaluation failed: %s: cannot identify image file", os.fsdecode(b"/d/train/dog/b\xe9d.jpg"))
    finally:
        logger.propagate = True
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err
    assert "/d/train/dog/b\\udce9d.jpg: cannot identify image file" in (tmp_path / "log.txt").read_text()
