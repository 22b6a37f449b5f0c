"""Evaluating a search's candidates on several processes with torch.distributed.

Launch with `torchrun --nproc_per_node N [--nnodes M ...] msunas.py ...`, or `msunas.py --n_gpus N`,
which starts the N processes on this machine itself (127.0.0.1, a free port) on the same path.
Rank 0 runs the search and writes every file. The other ranks only evaluate: each iteration rank 0
broadcasts the candidates still without results, every rank (rank 0 included) evaluates the
indices i with i % world_size == rank, and rank 0 gathers the results. An evaluation that raises
travels back as its error text. At the end rank 0 broadcasts "stop".

Messages are JSON text (read back with `weights_only` unpickling): nothing else crosses processes.
The process group's timeout bounds every wait, so a rank that dies or hangs cannot make the others
wait forever; it must exceed the longest wait between two messages (rank 0's planning plus the
slowest rank's share of one iteration).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

DEFAULT_TIMEOUT_S = 7200.0
_GRACE_S = 10.0  # how long --n_gpus waits for rank 0 to exit by itself after another rank failed
_STOPPED = False  # this rank was told to stop (SIGTERM from spawn_ranks)

Outcome = tuple[int, "dict[str, Any] | None", "str | None"]  # (plan index, net.stats, error text)


class LostContact(RuntimeError):
    """A rank died, hung past --dist_timeout, or never joined: the run stops; its files are complete."""


class RankStopped(ValueError):
    """Training under torchrun: a collective operation failed because another rank stopped (it said why, above) or
    stopped answering. A ValueError, so that this rank ends as the one whose input was bad did: one line and exit
    code 2, not torch's page of traceback."""


# where torch raises the failure of a collective: its distributed package and DDP's buffer and gradient syncs
_COLLECTIVE_CODE = ("/torch/distributed/", "/torch/nn/parallel/distributed.py")


def collective_failed(error: BaseException) -> bool:
    """Whether `error` is the failure of a collective operation (another rank gone, a wait past the timeout), not
    this rank's own: torch's distributed errors, a RuntimeError raised in torch.distributed or DDP's code, or one in
    gloo's or NCCL's words (DDP's gradient all-reduce fails inside autograd, far from either)."""
    import traceback

    import torch.distributed as dist

    if isinstance(error, dist.DistError):
        return True
    if not isinstance(error, RuntimeError):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    raised_in = frames[-1].filename.replace(os.sep, "/") if frames else ""
    return any(part in raised_in for part in _COLLECTIVE_CODE) or "gloo" in str(error) or "NCCL" in str(error)


@contextlib.contextmanager
def lost_contact_as_error(rank: int, world_size: int) -> Iterator[None]:
    """Around a training run of several processes: a collective operation that fails (the rank that met a corrupt
    image exited with its own one-line error) ends this rank with one line too, as RankStopped, instead of
    torch's traceback. Any other error passes unchanged."""
    try:
        yield
    except RuntimeError as e:
        if world_size < 2 or not collective_failed(e):
            raise
        text = str(e).lower()
        why = ("no answer within the timeout: another rank hung or stopped" if "timed out" in text or "timeout" in
               text else "another rank stopped; see its error above")
        raise RankStopped(f"rank {rank}: lost contact with the other ranks ({why})") from None


def _env_int(name: str, default: str) -> int:
    """An integer torchrun sets in the environment; a bad one is a ValueError naming it."""
    value = os.environ.get(name) or default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (or `spawn_ranks`) started as one of several ranks."""
    return _env_int("WORLD_SIZE", "1") > 1


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_launcher() -> None:
    """A worker that torchrun started (on Linux): exit, through Python, when the launcher dies.

    torchrun starts its workers in sessions of their own, so a launcher killed by SIGKILL (which it cannot pass on)
    left them training and writing the run folder as orphans. The kernel now sends this process SIGTERM when its
    parent (the launcher) dies, and SIGTERM raises SystemExit: `finally` blocks run and atomic_write removes its
    temporary, so every file stays whole. No-op on other systems and outside torchrun."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    launcher = os.getppid()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return  # refused (a sandbox): the worker runs as before
    if os.getppid() != launcher:  # the launcher died before the request took effect: no signal will come
        _exit_on_sigterm(signal.SIGTERM, None)


def check_timeout(timeout_s: float) -> None:
    """--dist_timeout: a positive number of seconds (inf or nan would fail deep inside torch)."""
    if not (math.isfinite(timeout_s) and 0 < timeout_s <= 1e9):
        raise ValueError(f"--dist_timeout must be > 0 seconds (and at most 1e9), got {timeout_s}")


def resolve_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_safely(evaluate: Callable[[dict[str, Any]], dict[str, Any]],
                    subnet: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(stats, None), or (None, "ErrorType: message") when the evaluation raises: the search goes on."""
    try:
        return evaluate(subnet), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


def _to_builtin(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot send {type(obj).__name__} to another rank")


def _pack(obj: Any) -> str:
    return json.dumps(obj, default=_to_builtin)


class RankGroup:
    """This process's place in the default process group, and the messages the search exchanges."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size
        self.broken = False  # a collective failed: sending more would only wait for the timeout

    # ------------------------------------------------------------------ collectives
    def _collective(self, call: Callable[[], Any]) -> Any:
        if _STOPPED:
            raise SystemExit(128 + signal.SIGTERM)
        try:
            return call()
        except RuntimeError as e:  # a rank died, hung past the timeout, or the group broke
            self.broken = True
            raise LostContact(f"rank {self.rank}: lost contact with the other ranks ({e}); every file written "
                              "so far is complete: continue with --resume") from e
        except BaseException:
            self.broken = True
            raise

    def _broadcast(self, message: Any = None) -> Any:
        import torch.distributed as dist

        box = [_pack(message) if self.rank == 0 else None]
        self._collective(lambda: dist.broadcast_object_list(box, src=0, weights_only=True))
        return json.loads(box[0])

    def _gather(self, message: Any) -> list[Any] | None:
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        self._collective(lambda: dist.gather_object(_pack(message), out, dst=0, weights_only=True))
        return None if out is None else [json.loads(m) for m in out]

    def agree(self, error: Exception | None) -> None:
        """Every rank reports whether its setup worked; if one failed, all stop (rank 0 says why)."""
        import torch.distributed as dist

        text = None if error is None else str(error) if isinstance(error, ValueError) else \
            f"{type(error).__name__}: {error}"
        errors: list[Any] = [None] * self.world_size
        self._collective(lambda: dist.all_gather_object(errors, _pack(text), weights_only=True))
        failed = [(r, json.loads(e)) for r, e in enumerate(errors) if json.loads(e) is not None]
        if not failed:
            return
        if self.rank != 0:
            raise SystemExit(2)  # rank 0 prints the one line
        if error is not None:
            raise error
        rank, text = failed[0]
        raise ValueError(f"rank {rank}: {text}")

    # ------------------------------------------------------------------ rank 0
    def evaluate(self, evaluate: Callable[[dict[str, Any]], dict[str, Any]],
                 pending: list[tuple[int, dict[str, Any]]]) -> Iterator[Outcome]:
        """Rank 0: share `pending` (plan index, subnet) out; yields rank 0's own outcomes as they come
        (so their files are written at once), then everyone else's."""
        self._broadcast({"op": "evaluate", "pending": pending})
        gathered = False
        try:
            for i, subnet in _share(pending, self.rank, self.world_size):
                yield (i, *evaluate_safely(evaluate, subnet))
            others, gathered = self._gather([]), True
            for outcomes in others[1:]:
                for i, stats, error in outcomes:
                    yield i, stats, error
        finally:
            if not gathered and not self.broken:
                # the caller stopped early (its own error, e.g. a full disk): still meet the other ranks at
                # the gather they wait in, so that `stop` releases them now and not after the timeout
                self._gather([])

    def share_error(self, error: Exception | None) -> None:
        """Every rank learns whether rank 0's step failed (instead of waiting at a barrier it never
        reaches); ranks > 0 raise rank 0's error text, rank 0 its own error."""
        text = self._broadcast(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if text is not None:
            raise ValueError(f"rank 0: {text}")

    def stop(self) -> None:
        """Rank 0: release the other ranks (they return from `serve`)."""
        if self.rank == 0 and not self.broken:
            self._broadcast({"op": "stop"})

    # ------------------------------------------------------------------ other ranks
    def serve(self, evaluate: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Ranks > 0: evaluate this rank's share of every plan rank 0 sends, until it says stop."""
        while True:
            message = self._broadcast()
            if message["op"] == "stop":
                return
            pending = [(int(i), subnet) for i, subnet in message["pending"]]
            self._gather([[i, *evaluate_safely(evaluate, subnet)] for i, subnet in
                          _share(pending, self.rank, self.world_size)])


def _share(pending: list[tuple[int, dict[str, Any]]], rank: int, world_size: int) -> list[tuple[int, Any]]:
    """Round robin over the pending list: which rank evaluates what never changes a result."""
    return pending[rank::world_size]


def init_from_env(device: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> RankGroup | None:
    """Join the process group torchrun describes in the environment; None for a single process.

    gloo on CPU, NCCL on CUDA (each process on GPU LOCAL_RANK, which object collectives need)."""
    if not launched_by_torchrun():
        return None
    import torch
    import torch.distributed as dist

    check_timeout(timeout_s)
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not: start every process with torchrun (or "
                         "msunas.py --n_gpus N), which sets them all")
    world_size, rank = _env_int("WORLD_SIZE", "1"), _env_int("RANK", "0")
    if not 0 <= rank < world_size:  # it would wait for the whole timeout for a group that has no place for it
        raise ValueError(f"environment variable RANK={rank} is not in 0..{world_size - 1} (WORLD_SIZE={world_size})")
    die_with_launcher()
    backend = "gloo"
    if resolve_device(device).startswith("cuda"):
        local_rank = _env_int("LOCAL_RANK", "0")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                             "start at most one process per GPU, or use --device cpu")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except RuntimeError as e:  # the other ranks did not join within the timeout, or the port is taken
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        raise LostContact(f"rank {rank}: could not join the other ranks at {where} (--dist_timeout {timeout_s:g} s): "
                          f"{' '.join(str(e).split())}") from e
    return RankGroup(dist.get_rank(), dist.get_world_size())


def close(group: RankGroup | None) -> None:
    import torch.distributed as dist

    if group is not None and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------- --n_gpus: start the ranks here
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _run_rank(rank: int, world_size: int, port: int, entry: Callable[[list[str]], int], argv: list[str],
              threads: int | None = None) -> None:
    from codebase.cli import run_main

    if threads is not None:  # CPU ranks share the cores: each would otherwise start one thread per core
        import torch

        torch.set_num_threads(threads)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    # stopped by spawn_ranks: exit through Python, whose clean-up releases what the process holds (else the
    # parent's resource tracker warns of leaked semaphores)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    run_main(lambda: entry(argv))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    global _STOPPED
    _STOPPED = True  # the clean-up on the way out must not wait for the rank that failed
    raise SystemExit(128 + signum)


def spawn_ranks(entry: Callable[[list[str]], int], n: int, argv: list[str], threads: int | None = None) -> int:
    """Run entry(argv) in n fresh processes as ranks 0..n-1 of one torch.distributed job on this
    machine, each with `threads` torch threads when given. Returns rank 0's exit code (or a failed
    rank's when rank 0 exited cleanly)."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_run_rank, args=(r, n, port, entry, list(argv), threads), name=f"msunas-rank{r}")
             for r in range(n)]
    for p in procs:
        p.start()
    try:
        while True:
            running = [p for p in procs if p.exitcode is None]
            if procs[0] not in running:
                break
            wait([p.sentinel for p in running], timeout=5.0)
            if any(p.exitcode not in (None, 0) for p in procs[1:]):
                procs[0].join(_GRACE_S)  # rank 0 normally notices the broken group and exits by itself
                break
        for p in procs[1:]:
            p.join(_GRACE_S)
    finally:
        stuck = [p for p in procs if p.exitcode is None]
        for p in stuck:
            p.terminate()
        for p in stuck:
            p.join(_GRACE_S)
            if p.exitcode is None:  # busy in a call that does not return to Python
                p.kill()
                p.join()
    codes = [int(r == 0) if p in stuck else _exit_code(p.exitcode) for r, p in enumerate(procs)]
    failed = [r for r, c in enumerate(codes) if r > 0 and c]
    for r in failed:
        # a rank killed by a signal (the OOM killer) could not say so, nor could rank 0 when stopped here
        if codes[0] == 0 or procs[0] in stuck or procs[r].exitcode < 0:
            stopped = "; rank 0 was stopped: every file written so far is complete, continue with --resume" \
                if procs[0] in stuck else ""
            print(f"error: rank {r} {_ended(procs[r].exitcode)}{stopped}", file=sys.stderr)
    return codes[failed[0]] if codes[0] == 0 and failed else codes[0]


def _exit_code(code: int | None) -> int:
    return 1 if code is None or code < 0 else code  # killed by a signal: a failure all the same


def _ended(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"
