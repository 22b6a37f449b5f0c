"""Measured latency: the timed model is a copy (the original is untouched), the copy computes the
same function, the timer times the forward pass, and thread settings are applied and restored."""

import copy
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from codebase.latency import measure_latency, prepare_for_timing, time_forward
from codebase.latency.measure import fold_batchnorm
from codebase.supernet import build_supernet, extract_subnet


@pytest.fixture(scope="module")
def subnet_model() -> nn.Module:
    torch.manual_seed(0)
    supernet = build_supernet(width_mult=1.0)
    net = extract_subnet(supernet, {"ks": [3, 5, 7, 3, 5, 7, 3, 5, 7, 3], "e": [3, 4, 6] * 3 + [3], "d": [2] * 5,
                                    "r": 32})
    for m in net.modules():  # non-trivial BN statistics, so folding them in is not a no-op
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net


def _snapshot(model: nn.Module) -> tuple[dict, list, list, list]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return (state, [m.training for m in model.modules()], [type(m) for m in model.modules()],
            [(p.device, p.requires_grad) for p in model.parameters()])


def test_measure_latency_never_touches_the_model(subnet_model):
    model = subnet_model.train()  # train mode: a forward pass on it would update BN running stats
    before = _snapshot(model)
    ms = measure_latency(model, 32, "cpu", batch_size=2, warmup=1, repeats=3, threads=1, channels_last=True)
    assert np.isfinite(ms) and ms > 0
    state, training, types, params = _snapshot(model)
    assert training == before[1] and all(training)
    assert types == before[2]  # no BN folded away, no module replaced
    assert params == before[3]
    assert state.keys() == before[0].keys()
    for k, v in state.items():
        assert torch.equal(v, before[0][k]), k


def test_prepared_copy_computes_the_same_function(subnet_model):
    reference = copy.deepcopy(subnet_model).eval()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in reference.modules())
    prepared = prepare_for_timing(subnet_model, "cpu", fold_bn=True, channels_last=True)
    assert prepared is not subnet_model and not prepared.training
    assert n_bn > 20 and not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)
        got = prepared(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert fold_batchnorm(copy.deepcopy(reference)) == n_bn


class _Sleep(nn.Module):
    """Sleeps a fixed time per forward and records the thread count it ran with (shared across copies)."""

    seen_threads: list = []

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        _Sleep.seen_threads.append(torch.get_num_threads())
        time.sleep(self.seconds)
        return x


def test_timer_times_the_forward_pass():
    times = time_forward(_Sleep(0.004), (1, 3, 8, 8), "cpu", warmup=0, repeats=5)
    assert times.shape == (5,)
    assert np.all(times >= 4.0) and np.median(times) < 40.0
    assert 4.0 <= measure_latency(_Sleep(0.004), 8, "cpu", warmup=0, repeats=3) < 40.0


def test_threads_are_set_for_the_measurement_and_restored():
    outer = torch.get_num_threads()
    inner = 2 if outer == 1 else 1
    _Sleep.seen_threads.clear()
    measure_latency(_Sleep(0.0), 8, "cpu", warmup=1, repeats=2, threads=inner)
    assert _Sleep.seen_threads == [inner] * 3
    assert torch.get_num_threads() == outer
    _Sleep.seen_threads.clear()
    measure_latency(_Sleep(0.0), 8, "cpu", warmup=0, repeats=2)  # threads=None: torch's setting
    assert _Sleep.seen_threads == [outer] * 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"resolution": 0}, "resolution"),
        ({"batch_size": 0}, "batch_size"),
        ({"threads": 0}, "threads"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"resolution": 8, "device": "cpu", **kwargs}
    with pytest.raises(ValueError, match=message):
        measure_latency(_Sleep(0.0), **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        measure_latency(_Sleep(0.0), 8, "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_measurement_leaves_the_cpu_model_on_cpu(subnet_model):
    before = _snapshot(subnet_model)
    ms = measure_latency(subnet_model, 32, "cuda", warmup=2, repeats=5, channels_last=True)
    assert np.isfinite(ms) and ms > 0
    after = _snapshot(subnet_model)
    assert after[3] == before[3] and all(dev.type == "cpu" for dev, _ in after[3])
    for k, v in after[0].items():
        assert torch.equal(v, before[0][k]), k
