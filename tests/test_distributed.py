"""Distributed evaluation: 2 CPU processes (gloo) give the single-process archive, via torchrun and via
--n_gpus; a failing evaluation on one rank is recorded; a dead or hung rank ends the run instead of
hanging it, and the run resumes to the same archive."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codebase import distributed
from codebase.distributed import RankGroup, evaluate_safely

ROOT = Path(__file__).resolve().parents[1]
ORACLE = Path(__file__).resolve().parents[2] / "shared/data/ofa/acc_predictor.pth"
SMALL = ["--n_doe", "12", "--iterations", "2", "--n_iter", "4", "--inner_pop", "20", "--inner_gens", "5",
         "--seed", "3", "--quiet"]
# A test-only evaluator: the OFA oracle plus the rank that evaluated, failing or dying on rank 1 on demand.
FLAKY_SCRIPT = f"""
import os, signal, sys, time
sys.path.insert(0, {str(ROOT)!r})
import msunas
from codebase.cli import run_main
from codebase.evaluators import register_evaluator
from codebase.evaluators.oracle import OracleEvaluator


class FlakyEvaluator(OracleEvaluator):
    calls = 0

    def __init__(self, **kw):
        error = os.environ.get("FLAKY_SETUP_ERROR")  # rank 1 cannot build its evaluator
        if error and os.environ.get("RANK") == "1":
            raise {{"ValueError": ValueError, "PermissionError": PermissionError}}[error]("/data: no access here")
        super().__init__(**kw)

    def evaluate(self, subnet):
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0 and os.environ.get("FLAKY_SLOW0"):
            time.sleep(float(os.environ["FLAKY_SLOW0"]))
        if rank == 1:
            self.calls += 1
            if os.environ.get("FLAKY_DIE_AT") == str(self.calls):
                os._exit(3)
            if os.environ.get("FLAKY_KILL_AT") == str(self.calls):  # as the OOM killer does
                os.kill(os.getpid(), signal.SIGKILL)
            if os.environ.get("FLAKY_HANG_AT") == str(self.calls):
                time.sleep(600)
            if self.calls % int(os.environ.get("FLAKY_FAIL_EVERY") or 10**9) == 0:
                raise RuntimeError(f"simulated failure on rank {{rank}}")
        return {{**super().evaluate(subnet), "rank": rank}}


register_evaluator("flaky_oracle", lambda **kw: FlakyEvaluator(**kw))
if os.environ.get("FLAKY_DISK_FULL_AT") and os.environ.get("RANK", "0") == "0":  # rank 0 cannot write
    from codebase.search import engine

    real_write, writes = engine.write_json, []

    def write_json(path, obj):
        if path.name.startswith("net_") and path.suffix == ".stats":
            writes.append(path)
            if len(writes) == int(os.environ["FLAKY_DISK_FULL_AT"]):
                raise OSError(28, "No space left on device")
        return real_write(path, obj)

    engine.write_json = write_json
if __name__ == "__main__":
    run_main(msunas.main)
"""

needs_oracle = pytest.mark.skipif(not ORACLE.is_file(), reason=f"needs {ORACLE}")


def run(*cmd, env=None, timeout=300):
    """Run a script in its own session; past the timeout, every process of it prints where it hangs
    (faulthandler on SIGABRT) and the whole session is killed, so no rank outlives the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, *map(str, cmd)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s; stacks:\n{err[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def oracle_args(save, evaluator="ofa_oracle"):
    return ["--evaluator", evaluator, "--oracle_path", ORACLE, "--save", save, *SMALL]


def load(path):
    return json.loads(Path(path).read_text())


def run_files(save):
    return sorted(str(p.relative_to(save)) for p in Path(save).rglob("*") if not p.name.endswith(".tmp"))


@pytest.fixture
def flaky(tmp_path):
    script = tmp_path / "flaky_msunas.py"
    script.write_text(FLAKY_SCRIPT)
    return script


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    save = tmp_path_factory.mktemp("single") / "run"
    out = run(ROOT / "msunas.py", *oracle_args(save))
    assert out.returncode == 0, out.stderr[-2000:]
    return save


def assert_same_run(save, reference):
    assert run_files(save) == run_files(reference)  # no rank > 0 wrote a file of its own
    for k in range(3):
        assert load(save / f"iter_{k}.stats") == load(reference / f"iter_{k}.stats")
    for path in reference.glob("iter_*/*"):  # plans, subnets and net.stats, byte for byte
        assert (save / path.relative_to(reference)).read_bytes() == path.read_bytes(), path
    log = (save / "log.txt").read_text()
    assert [log.count(f"iter {k}: ") for k in range(3)] == [1, 1, 1]  # one search, not two


# ---------------------------------------------------------------------- in-process pieces
def test_shares_cover_every_candidate_once():
    pending = [(i, {"r": i}) for i in (0, 2, 3, 5, 8, 9, 11)]
    for world in (1, 2, 3, 8):
        shares = [distributed._share(pending, r, world) for r in range(world)]
        assert sorted(i for share in shares for i, _ in share) == [0, 2, 3, 5, 8, 9, 11]
    assert [i for i, _ in distributed._share(pending, 1, 3)] == [2, 8]


def test_evaluate_safely_keeps_the_error_text():
    def boom(subnet):
        raise MemoryError("CUDA out of memory (simulated)")

    assert evaluate_safely(lambda s: {"top1": s["r"] / 4}, {"r": 224}) == ({"top1": 56.0}, None)
    assert evaluate_safely(boom, {"r": 224}) == (None, "MemoryError: CUDA out of memory (simulated)")


_PDEATHSIG_PROBE = """
import ctypes, os, signal, sys
from codebase import distributed
real = os.getppid()
answers = iter([real, 1 if sys.argv[1] == "died" else real])  # the launcher as seen before and after prctl
os.getppid = lambda: next(answers)
distributed.die_with_launcher()
got = ctypes.c_int(-1)
ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
print(got.value, signal.getsignal(signal.SIGTERM) is distributed._exit_on_sigterm)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
@pytest.mark.parametrize("torchrun, launcher, expected", [
    (True, "alive", (0, "15 True")),  # SIGTERM when the launcher dies, and SIGTERM exits through Python
    (True, "died", (128 + signal.SIGTERM, "")),  # it died before prctl took effect: no signal would ever come
    (False, "alive", (0, "0 False")),  # not torchrun's worker (a plain run, msunas --n_gpus): left as it was
])
def test_a_torchrun_worker_is_bound_to_its_launcher(torchrun, launcher, expected):
    env = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
    out = subprocess.run([sys.executable, "-c", _PDEATHSIG_PROBE, launcher], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={**env, **({"TORCHELASTIC_RUN_ID": "x"} if torchrun else {})})
    assert (out.returncode, out.stdout.strip()) == expected, out.stderr


def test_torchrun_detection(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched_by_torchrun() and distributed.init_from_env("cpu") is None
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node 1: a single process
    assert not distributed.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.launched_by_torchrun()
    with pytest.raises(ValueError, match="--dist_timeout must be > 0"):
        distributed.init_from_env("cpu", timeout_s=0)


class ToyEvaluator:
    """Closed-form complexity and a made-up accuracy; every 4th call fails."""

    def __init__(self):
        self.calls = 0

    def evaluate(self, subnet):
        from codebase.complexity import subnet_complexity

        self.calls += 1
        if self.calls % 4 == 0:
            raise RuntimeError("CUDA out of memory (simulated)")
        stats = subnet_complexity(subnet, 1.0, 10)
        return {"top1": 50 + 10 * np.log(stats["flops"]), **stats}


@pytest.fixture
def one_rank_group():
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{distributed.free_port()}", rank=0, world_size=1)
    yield RankGroup(0, 1)
    dist.destroy_process_group()


def test_engine_through_a_process_group_equals_the_plain_loop(tmp_path, one_rank_group):
    from codebase.search.engine import MSuNAS, SearchSettings
    from codebase.search.objectives import parse_objectives
    from search_space import OFASearchSpace

    space = OFASearchSpace(width_mult=1.0, resolutions=(160, 176, 192))
    settings = SearchSettings(n_doe=12, iterations=1, n_iter=5, inner_pop=12, inner_gens=2)
    objectives = parse_objectives("flops", space, 10)
    for name, ranks in (("plain", None), ("group", one_rank_group)):
        MSuNAS(tmp_path / name, space, ToyEvaluator(), objectives, settings, ranks=ranks).run(progress=False)
    assert run_files(tmp_path / "group") == run_files(tmp_path / "plain")
    for k in range(2):
        assert load(tmp_path / "group" / f"iter_{k}.stats") == load(tmp_path / "plain" / f"iter_{k}.stats")
    failed = load(tmp_path / "group" / "failed" / "iter_0_net_3.json")
    assert failed["index"] == 3 and "CUDA out of memory" in failed["error"]


# ---------------------------------------------------------------------- two CPU processes
@needs_oracle
def test_torchrun_two_processes_give_the_single_process_run(single_run, tmp_path):
    save = tmp_path / "run"
    out = run("-m", "torch.distributed.run", "--nproc_per_node", "2", ROOT / "msunas.py", *oracle_args(save))
    assert out.returncode == 0, out.stderr[-3000:]
    assert_same_run(save, single_run)


@needs_oracle
def test_n_gpus_two_processes_give_the_single_process_run(single_run, tmp_path):
    save = tmp_path / "run"
    out = run(ROOT / "msunas.py", *oracle_args(save), "--n_gpus", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done: 20 evaluations") == 1  # rank 0 alone reports
    assert_same_run(save, single_run)


@needs_oracle
def test_a_failing_evaluation_on_one_rank_is_recorded(single_run, tmp_path, flaky):
    save = tmp_path / "run"
    out = run(flaky, *oracle_args(save, "flaky_oracle"), "--n_gpus", "2", env={"FLAKY_FAIL_EVERY": "3"})
    assert out.returncode == 0, out.stderr[-3000:]
    # rank 1 gets the odd plan indices: iteration 0 calls 1..6 on nets 1,3,..,11 (the 3rd and 6th fail),
    # iteration 1 calls 7, 8 on nets 1, 3, iteration 2 call 9 on net 1 (fails)
    expected = ["iter_0_net_11.json", "iter_0_net_5.json", "iter_2_net_1.json"]
    assert sorted(p.name for p in (save / "failed").iterdir()) == expected
    for name in expected:
        record = load(save / "failed" / name)
        k, i = record["iteration"], record["index"]
        assert record["error"] == "RuntimeError: simulated failure on rank 1"
        assert record["subnet"] == load(save / f"iter_{k}" / f"net_{i}.subnet")
        assert not (save / f"iter_{k}" / f"net_{i}.stats").exists()
    for stats_file in save.glob("iter_*/net_*.stats"):
        assert load(stats_file)["rank"] == int(stats_file.stem.split("_")[1]) % 2  # the round-robin split
    last = load(save / "iter_2.stats")
    assert last["n_evaluations"] == 20 - 3 and [f["index"] for f in last["failed"]] == [1]
    assert [f["index"] for f in load(save / "iter_0.stats")["failed"]] == [5, 11]
    reference = {json.dumps(e[0], sort_keys=True): e[1:] for e in load(single_run / "iter_0.stats")["archive"]}
    for entry in load(save / "iter_0.stats")["archive"]:  # the same plan; only the failures are missing
        np.testing.assert_array_equal(entry[1:], reference[json.dumps(entry[0], sort_keys=True)])


@needs_oracle
def test_an_error_on_rank_0_mid_evaluation_ends_every_rank_at_once(tmp_path, flaky):
    # rank 0 fails writing its 2nd result while rank 1 waits to hand its results over: rank 1 used to
    # wait in that gather for the whole --dist_timeout, and rank 0's error was lost in the noise
    start = time.time()
    out = run(flaky, *oracle_args(tmp_path / "run", "flaky_oracle"), "--n_gpus", "2", "--dist_timeout", "90",
              env={"FLAKY_DISK_FULL_AT": "2"})
    assert out.returncode != 0 and time.time() - start < 60, out.stderr[-3000:]
    assert "No space left on device" in out.stderr and "lost contact" not in out.stderr


def test_share_error_passes_rank_0s_outcome(one_rank_group):
    one_rank_group.share_error(None)  # nothing failed: nothing raised
    with pytest.raises(ValueError, match="training failed"):
        one_rank_group.share_error(ValueError("training failed"))


def launch_by_hand(flaky, save, env, timeout_s):
    """Two ranks without a supervisor (torchrun or --n_gpus would stop the survivor for us)."""
    common = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": str(distributed.free_port()), "WORLD_SIZE": "2"}
    cmd = [sys.executable, str(flaky), *map(str, oracle_args(save, "flaky_oracle")), "--dist_timeout", str(timeout_s)]
    return [subprocess.Popen(cmd, cwd=ROOT, env={**common, "RANK": str(r), "LOCAL_RANK": str(r), **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]


@pytest.mark.slow
@needs_oracle
@pytest.mark.parametrize("trouble", [{"FLAKY_DIE_AT": "2"}, {"FLAKY_HANG_AT": "2"}])
def test_a_dead_or_hung_rank_ends_the_run_and_it_resumes(single_run, tmp_path, flaky, trouble):
    save = tmp_path / "run"
    rank0, rank1 = launch_by_hand(flaky, save, trouble, timeout_s=5)
    try:
        start = time.time()
        _, err = rank0.communicate(timeout=120)
        assert rank0.returncode != 0 and time.time() - start < 120
        assert "lost contact with the other ranks" in err and "--resume" in err
    finally:
        rank1.kill()
        rank1.communicate()
    assert not (save / "iter_0.stats").exists() and (save / "iter_0" / "net_0.stats").exists()
    done = {p: p.stat().st_mtime_ns for p in save.glob("iter_0/net_*.stats")}
    out = run(flaky, "--resume", save, "--n_gpus", "2", "--dist_timeout", "120")
    assert out.returncode == 0, out.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in done} == done  # evaluations written before the crash: not redone
    for k in range(3):
        assert load(save / f"iter_{k}.stats")["archive"] == load(single_run / f"iter_{k}.stats")["archive"]


@needs_oracle
@pytest.mark.parametrize("extra, message", [(["--n_gpus", "0"], "--n_gpus must be >= 1"),
                                            (["--n_gpus", "2"], "already holds a run")])
def test_bad_launches_fail_before_starting_processes(single_run, extra, message):
    before = {p: p.stat().st_mtime_ns for p in single_run.rglob("*")}
    out = run(ROOT / "msunas.py", *oracle_args(single_run), *extra, timeout=60)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in single_run.rglob("*")} == before


@needs_oracle
def test_n_gpus_without_gpus_is_capped_at_the_usable_cores(tmp_path):
    # 64 CPU processes on 2 cores only take turns (each with its own model); taskset leaves one core
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "msunas.py", *map(str, oracle_args(tmp_path / "run")),
                          "--n_gpus", "2"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --n_gpus 2 without GPUs starts that many CPU processes, but only 1 CPU core usable here; "
        "use --n_gpus 1 or fewer"]
    assert not (tmp_path / "run").exists()


@needs_oracle
@pytest.mark.parametrize("timeout", ["0", "inf", "nan"])
def test_a_bad_dist_timeout_is_one_line_before_starting_processes(tmp_path, timeout):
    # every rank used to say it (or, for inf and nan, print a traceback from deep inside torch)
    out = run(ROOT / "msunas.py", *oracle_args(tmp_path / "run"), "--n_gpus", "2", "--dist_timeout", timeout,
              timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: --dist_timeout must be > 0 seconds (and at most 1e9), got {float(timeout)}"]
    assert not (tmp_path / "run").exists()


def test_a_bad_torchrun_environment_is_one_error_not_a_wait(monkeypatch):
    env = {"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(distributed.free_port())}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = time.time()  # a rank outside 0..WORLD_SIZE-1 used to wait the whole --dist_timeout, then raise
    with pytest.raises(ValueError, match=r"^environment variable RANK=5 is not in 0\.\.1 \(WORLD_SIZE=2\)$"):
        distributed.init_from_env("cpu", timeout_s=5)
    assert time.time() - start < 2
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 is set but RANK, MASTER_PORT are not: start every process "
                                         "with torchrun"):
        distributed.init_from_env("cpu", timeout_s=5)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="environment variable WORLD_SIZE='two' is not an integer"):
        distributed.launched_by_torchrun()


@needs_oracle
def test_ranks_that_never_join_end_in_one_line(tmp_path):
    env = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(distributed.free_port())}
    out = run(ROOT / "msunas.py", *oracle_args(tmp_path / "run"), "--dist_timeout", "2", env=env, timeout=60)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-3000:]
    assert out.stderr.startswith("error: rank 0: could not join the other ranks at 127.0.0.1:")
    assert not (tmp_path / "run").exists()


@needs_oracle
@pytest.mark.parametrize("error", ["ValueError", "PermissionError"])
def test_an_error_building_the_evaluator_on_rank_1_is_reported_by_rank_0(tmp_path, flaky, error):
    # any other error used to end rank 1 alone, rank 0 saying "lost contact ... continue with --resume" (there was
    # nothing to resume); and rank 0 left an empty folder and log.txt behind
    save = tmp_path / "run"
    out = run(flaky, *oracle_args(save, "flaky_oracle"), "--n_gpus", "2", env={"FLAKY_SETUP_ERROR": error}, timeout=90)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: rank 1: {'' if error == 'ValueError' else error + ': '}/data: no access here"], out.stderr
    assert not save.exists()


@needs_oracle
@pytest.mark.parametrize("slow_rank_0", [pytest.param(False), pytest.param(True, marks=pytest.mark.slow)])
def test_a_killed_rank_is_named_and_the_run_resumes(single_run, tmp_path, flaky, slow_rank_0):
    # rank 1 killed by SIGKILL (the OOM killer): rank 0 notices at the next exchange and says so in one line; a
    # rank 0 still busy with its share 10 s later is stopped. Both used to leave no word of the cause: a page of
    # traceback, or (rank 0 stopped) nothing at all
    save = tmp_path / "run"
    env = {"FLAKY_KILL_AT": "2", **({"FLAKY_SLOW0": "3"} if slow_rank_0 else {})}
    out = run(flaky, *oracle_args(save, "flaky_oracle"), "--n_gpus", "2", env=env, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and lines[-1].startswith("error: rank 1 was killed by SIGKILL"), out.stderr[-3000:]
    if slow_rank_0:  # stopped on the way: no word of its own, nor the resource tracker's about leaked semaphores
        assert len(lines) == 1 and lines[0].endswith("rank 0 was stopped: every file written so far is complete, "
                                                     "continue with --resume")
    else:
        assert lines[0].startswith("error: rank 0: lost contact with the other ranks") and len(lines) == 2
        assert lines[0].endswith("every file written so far is complete: continue with --resume")
    assert not (save / "iter_0.stats").exists() and (save / "iter_0" / "net_0.stats").exists()
    out = run(flaky, "--resume", save, "--n_gpus", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    for k in range(3):
        assert load(save / f"iter_{k}.stats")["archive"] == load(single_run / f"iter_{k}.stats")["archive"]
