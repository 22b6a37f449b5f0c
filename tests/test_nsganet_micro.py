"""NSGA-Net micro space: genome encoding, cell networks, published parameter counts and multiply-adds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codebase.checkpoints import load_into
from codebase.networks.genotypes import DARTS_V2, MICRO_GENOTYPES, OPERATIONS, NSGANet, genotype_from_dict
from codebase.networks.nsganet_micro import build_micro_network, from_original_names
from codebase.networks.operations import DilConv, ReLUConvBN, SepConv
from codebase.nsganet_profile import count_flops, count_params, profile
from search_space.nsganet_micro import MicroSearchSpace

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SPACE = MicroSearchSpace()
FIVE_BLOCK = [name for name, g in MICRO_GENOTYPES.items() if len(g.normal) == 10]

# README of the original tool: (init_channels, filter_increment, SE, n_classes) -> (params M, Multiply-Adds M).
# (34, 4, True) is the earlier README's entry for that command with --SE (2.42M, 550M); the final README
# dropped --SE and the parameter count (2.20M) but kept 550M.
PUBLISHED = {
    (26, 4, True, 10): (1.97, 417),
    (34, 4, False, 10): (2.20, 550),
    (34, 4, True, 10): (2.42, 550),
    (36, 6, True, 10): (4.05, 817),
    (36, 6, True, 100): (4.1, 817),
}
# Regression pins, not independent figures: what our re-implementation of the original procedure
# (misc/flops_counter.py's counted layer types on one eval-mode 32x32 image, printed as
# np.round(flops / 1e6, 4)) gives. The original counter is not available here; the independent check is
# that these round to the README's integers (second test below).
ORIGINAL_COUNT = {
    (26, 4, True, 10): 417.6514,
    (34, 4, False, 10): 548.4994,
    (34, 4, True, 10): 550.4813,
    (36, 6, True, 10): 816.6031,
    (36, 6, True, 100): 816.6571,
}


@pytest.fixture(scope="module")
def published_profiles():
    return {
        key: profile("micro", "NSGANet", layers=20, init_channels=key[0], filter_increment=key[1],
                     auxiliary=True, SE=key[2], n_classes=key[3])
        for key in PUBLISHED
    }


# ---------------------------------------------------------------- published numbers
def test_published_parameter_counts_match_readme(published_profiles):
    for key, (params, _) in PUBLISHED.items():
        digits = 1 if key[3] == 100 else 2  # the table prints 4.1M for CIFAR-100
        assert round(published_profiles[key]["params"], digits) == params, key


def test_published_multiply_adds_match_readme(published_profiles):
    for key, flops in ORIGINAL_COUNT.items():
        assert published_profiles[key]["flops"] == pytest.approx(flops, abs=1e-4), key
    # Against the README's integers: 417.65 shows truncated, 816.60 and 550.48 rounded (no single rule fits
    # both 417 and 817, and no choice of counted layer types does either). Without SE, C=34 gives 548.50,
    # not 550: that 550 belongs to the SE model.
    flops = {key: p["flops"] for key, p in published_profiles.items()}
    assert int(flops[26, 4, True, 10]) == PUBLISHED[26, 4, True, 10][1]
    for key in [(34, 4, True, 10), (36, 6, True, 10), (36, 6, True, 100)]:
        assert round(flops[key]) == PUBLISHED[key][1], key
    assert round(flops[34, 4, False, 10]) == 548
    macs_only = profile("micro", "NSGANet", init_channels=34, filter_increment=4, auxiliary=True, convention="macs")
    assert macs_only["flops"] == pytest.approx(527.7584, abs=1e-4)  # conv+linear alone: 4% low


def test_darts_v2_matches_darts_paper_parameter_count():
    # DARTS paper, CIFAR-10: 20 cells, 36 channels, auxiliary head -> 3.3M parameters
    net = build_micro_network(DARTS_V2, init_channels=36, layers=20, auxiliary=True)
    assert round(count_params(net) / 1e6, 1) == 3.3


def test_count_params_excludes_auxiliary_head():
    with_aux = build_micro_network(NSGANet, 8, 5, auxiliary=True)
    without = build_micro_network(NSGANet, 8, 5, auxiliary=False)
    assert count_params(with_aux) == count_params(without)
    assert sum(p.numel() for p in with_aux.parameters()) > count_params(with_aux)


def test_count_flops_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 32*32*8 outputs x (27 + 1 bias)
        nn.BatchNorm2d(8),  # 2 x 8192
        nn.ReLU(),  # 8192
        nn.MaxPool2d(2),  # 8192 inputs
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # 16*16*8 x 9
        nn.AdaptiveAvgPool2d(1),  # 2048 inputs
        nn.Flatten(),
        nn.Linear(8, 5),  # 5 x 8: the original counter has no bias term for linear layers
    )
    macs = 8192 * 28 + 2048 * 9 + 40
    assert count_flops(net, 32, "macs") == macs
    assert count_flops(net, 32, "nsganet") == macs + 2 * 8192 + 8192 + 8192 + 2048
    with pytest.raises(ValueError, match="convention"):
        count_flops(net, 32, "thop")


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("name", sorted(set(MICRO_GENOTYPES)))
def test_published_genotypes_forward_backward(name):
    net = build_micro_network(MICRO_GENOTYPES[name], init_channels=8, layers=5, auxiliary=True, SE=True,
                              filter_increment=2, drop_path_prob=0.2)
    net.train()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if "auxiliary" not in n)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_published_20_layer_network_forward_backward():
    net = build_micro_network(NSGANet, init_channels=26, layers=20, auxiliary=True, SE=True, filter_increment=4)
    logits, aux = net(torch.randn(2, 3, 32, 32))
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert net.classifier.weight.grad.abs().sum() > 0


def test_channel_schedules():
    cifar = build_micro_network(NSGANet, init_channels=8, layers=6)
    pyramid = build_micro_network(NSGANet, init_channels=8, layers=6, filter_increment=4)
    # NSGANet cells concatenate 4 states; cifar doubles at cells 2 and 4, pyramid adds 4 per cell
    assert [c.out_channels for c in cifar.cells] == [32, 32, 64, 64, 128, 128]
    assert [c.out_channels for c in pyramid.cells] == [4 * (8 + 4 * i) for i in range(6)]
    assert [c.reduction for c in cifar.cells] == [False, False, True, False, True, False]


def test_odd_widths_are_refused_only_where_a_factorized_reduction_halves_them():
    """FactorizedReduce splits C into two stride-2 halves; it runs in the cell after a reduction (preprocess0) and
    for a reduction cell's skip_connect on its inputs. The original builds every other width: its search network
    (NetworkCIFAR) takes odd init_channels, since the reductions double C before any FactorizedReduce sees it."""
    net = build_micro_network(NSGANet, init_channels=15, layers=8)
    assert [c.out_channels // len(c.concat) for c in net.cells] == [15, 15, 30, 30, 30, 60, 60, 60]
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    # pyramid, layers 6 (reductions at cells 2 and 4): only cells 3 and 5 halve; 9 + 3 * 3 = 18, 9 + 5 * 3 = 24
    pyramid = build_micro_network(NSGANet, init_channels=9, layers=6, filter_increment=3)
    assert [c.out_channels // len(c.concat) for c in pyramid.cells] == [9, 12, 15, 18, 21, 24]
    assert pyramid(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="cell 3 has 17 channels per block"):
        build_micro_network(NSGANet, init_channels=8, layers=6, filter_increment=3)
    # the ImageNet stem reduces, so cell 0 halves
    with pytest.raises(ValueError, match="cell 0 has 15 channels per block"):
        build_micro_network(NSGANet, init_channels=15, layers=8, imagenet=True)
    strided_skip = NSGANet.to_dict() | {"reduce": [["skip_connect", 0], *NSGANet.to_dict()["reduce"][1:]]}
    with pytest.raises(ValueError, match="cell 2 has 15 channels per block"):  # a reduction cell's own skip
        build_micro_network(strided_skip, init_channels=9, layers=6, filter_increment=3)
    for bad, message in ((0, "init_channels must be at least 1, got 0"), (-4, "at least 1")):
        with pytest.raises(ValueError, match=message):
            build_micro_network(NSGANet, init_channels=bad, layers=8)
    with pytest.raises(ValueError, match="cell 2 has 0 channels"):  # a shrinking pyramid
        build_micro_network(NSGANet, init_channels=8, layers=6, filter_increment=-4)


def test_imagenet_network_runs():
    net = build_micro_network(NSGANet, init_channels=8, layers=5, n_classes=7, auxiliary=True, imagenet=True)
    net.train()
    logits, aux = net(torch.randn(2, 3, 224, 224))
    assert logits.shape == aux.shape == (2, 7)


def test_drop_path_only_in_training():
    from codebase.networks.operations import drop_path

    torch.manual_seed(0)
    net = build_micro_network(NSGANet, init_channels=8, layers=3, drop_path_prob=0.9).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        # training: batch-norm on batch statistics is deterministic, so only dropped paths can change the output
        net.train()
        dropped = [net(x) for _ in range(2)]
        assert not torch.allclose(dropped[0], dropped[1])
        net.drop_path_prob = 0.0
        assert torch.equal(net(x), net(x))
    # stochastic depth by hand: each sample's branch is zeroed with probability p, the kept ones scaled by 1/(1-p)
    h = torch.rand(20_000, 2, 3, 3) + 1.0
    out = drop_path(h, 0.3)
    kept = (out != 0).flatten(1).all(1)
    assert torch.equal(kept, (out != 0).flatten(1).any(1))  # whole samples, never parts of one
    torch.testing.assert_close(out[kept], h[kept] / 0.7)
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.02  # binomial sd 0.003
    assert drop_path(h, 0.0) is h


# ---------------------------------------------------------------- search space
def test_geometry():
    assert SPACE.name == "nsganet_micro" and SPACE.n_var == 40
    # per block: op (0..8), input (0..b+1), op, input
    assert SPACE.xu[:8].tolist() == [8, 1, 8, 1, 8, 2, 8, 2]
    assert SPACE.xu[20:28].tolist() == SPACE.xu[:8].tolist()
    assert len(OPERATIONS) == 9


@pytest.mark.parametrize("name", FIVE_BLOCK)
def test_published_genotypes_round_trip(name):
    g = MICRO_GENOTYPES[name]
    x = SPACE.encode(g)
    assert SPACE.decode(x) == g.to_dict()
    assert genotype_from_dict(SPACE.decode(x)) == g


def test_nsganet_genome_by_hand():
    x = SPACE.encode(NSGANet)
    # normal block 0: (skip_connect, 0), (max_pool_3x3, 0); reduce block 4: (dil_conv_5x5, 1), (dil_conv_3x3, 1)
    assert x[:4].tolist() == [2, 0, 0, 0]
    assert x[36:].tolist() == [6, 1, 5, 1]


def test_random_genomes_round_trip():
    X = SPACE.sample(200, np.random.default_rng(0))
    assert ((X >= SPACE.xl) & (X <= SPACE.xu)).all()
    for x in X:
        assert np.array_equal(SPACE.encode(SPACE.decode(x)), x)


def test_concat_is_unused_states():
    arch = SPACE.decode(SPACE.encode(NSGANet))
    assert arch["normal_concat"] == [2, 4, 5, 6] and arch["reduce_concat"] == [3, 4, 5, 6]


def test_canonical_sorts_pairs_and_keeps_the_network():
    rng = np.random.default_rng(1)
    x = rng.integers(0, SPACE.xu + 1)
    c = SPACE.canonical(x)
    assert np.array_equal(SPACE.canonical(c), c)
    pairs = c.reshape(-1, 2, 2)
    assert all(tuple(a) <= tuple(b) for a, b in pairs)
    assert sorted(map(tuple, x.reshape(-1, 2, 2).reshape(-1, 2).tolist())) == sorted(
        map(tuple, c.reshape(-1, 2).tolist()))
    small = {"init_channels": 8, "layers": 3}
    assert np.array_equal(SPACE.complexity(x, **small), SPACE.complexity(c, **small))
    swapped = x.copy().reshape(-1, 2, 2)[:, ::-1].reshape(-1)
    assert np.array_equal(SPACE.canonical(swapped), c)


def test_initialize_distinct():
    X = SPACE.initialize(30, np.random.default_rng(2))
    assert len({row.tobytes() for row in X}) == 30
    assert np.array_equal(SPACE.canonical(X), X)


def test_initialize_refuses_more_architectures_than_the_space_holds():
    # one block per cell: an unordered pair of the 9 * 2 (op, input) choices, 171 per cell, 171 ** 2 in all;
    # asking for more used to loop forever
    tiny = MicroSearchSpace(n_blocks=1)
    assert tiny.size == 171**2
    pairs = {tuple(sorted([(a, i), (b, j)])) for a in range(9) for i in range(2) for b in range(9) for j in range(2)}
    assert len(pairs) == 171  # the count by enumeration
    with pytest.raises(ValueError, match="fewer than n_doe=29242"):
        tiny.initialize(171**2 + 1, np.random.default_rng(0))
    assert len(tiny.initialize(50, np.random.default_rng(0))) == 50


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="4 pairs|8 pairs|pairs"):
        SPACE.encode(DARTS_V2)  # 4 blocks: not in the 5-block space
    bad = NSGANet.to_dict() | {"normal_concat": [2, 3]}
    with pytest.raises(ValueError, match="normal_concat"):
        SPACE.encode(bad)
    with pytest.raises(ValueError, match="unknown operation"):
        SPACE.encode(NSGANet.to_dict() | {"normal": [["conv_9x9", 0]] * 10})
    with pytest.raises(ValueError, match="gene 1"):
        SPACE.canonical(np.r_[0, 5, np.zeros(38, dtype=int)])
    with pytest.raises(ValueError, match="unknown micro architecture"):
        profile("micro", "NoSuchNet")


# ---------------------------------------------------------------- reviewed defects
def test_reduction_cell_may_not_concatenate_its_unreduced_inputs(tmp_path):
    bad = NSGANet.to_dict() | {"reduce_concat": [1, 3, 4, 5, 6]}
    with pytest.raises(ValueError, match=r"reduce_concat': 1 is not a state in 2\.\.6 .*unreduced"):
        genotype_from_dict(bad)
    with pytest.raises(ValueError, match="reduce_concat"):
        profile("micro", bad, layers=3, init_channels=8)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    out = subprocess.run([sys.executable, "evaluator.py", "--profile", "--net_type", "micro", "--arch", str(path)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         timeout=300)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith("error: ") and "reduce_concat" in out.stderr


def test_normal_cell_may_concatenate_its_inputs():
    # a normal cell's inputs have its blocks' resolution and width (preprocess0 reduces after a reduction)
    g = NSGANet.to_dict() | {"normal_concat": [0, 1, 2, 4, 5, 6]}
    for options, size in (({}, 32), ({"filter_increment": 2}, 32), ({"imagenet": True}, 224)):
        net = build_micro_network(g, init_channels=8, layers=5, auxiliary=True, **options).train()
        logits, aux = net(torch.randn(2, 3, size, size))
        assert logits.shape == aux.shape == (2, 10)
        assert [c.out_channels // len(c.concat) for c in net.cells if not c.reduction][0] == 8


def test_auxiliary_head_does_not_change_the_logits_with_3_cells():
    # with 3 cells the auxiliary head reads the last cell's output, which global pooling reads after it
    torch.manual_seed(0)
    with_aux = build_micro_network(NSGANet, init_channels=8, layers=3, auxiliary=True).train()
    plain = build_micro_network(NSGANet, init_channels=8, layers=3).train()
    plain.load_state_dict({k: v for k, v in with_aux.state_dict().items() if not k.startswith("auxiliary")})
    x = torch.randn(4, 3, 32, 32)
    logits, aux = with_aux(x)
    assert aux.shape == (4, 10)
    assert torch.equal(logits, plain(x))


def test_imagenet_auxiliary_head_has_no_batchnorm_after_its_768_conv():
    # as the original AuxiliaryHeadImageNet, whose BatchNorm2d(768) is commented out; the CIFAR head keeps it
    imagenet = build_micro_network(NSGANet, init_channels=8, layers=5, n_classes=7, auxiliary=True, imagenet=True)
    cifar = build_micro_network(NSGANet, init_channels=8, layers=5, n_classes=7, auxiliary=True)
    names = [n for n, _ in imagenet.auxiliary_head.named_parameters()]
    assert names == ["features.2.weight", "features.3.weight", "features.3.bias", "features.5.weight",
                     "classifier.weight", "classifier.bias"]
    c = imagenet.cells[imagenet.aux_index].out_channels
    n_params = sum(p.numel() for p in imagenet.auxiliary_head.parameters())
    assert n_params == c * 128 + 2 * 128 + 128 * 768 * 4 + 768 * 7 + 7
    assert "features.6.weight" in dict(cifar.auxiliary_head.named_parameters())  # BatchNorm2d(768)


def _original_state_dict(net: nn.Module, imagenet: bool = False) -> dict[str, torch.Tensor]:
    """net's weights under the original code's names (models/micro_models.py and its operations in
    ianwhale/nsga-net): ImageNet stem `stem0`, cell operations `_ops`, squeeze-excite `se_layer`,
    and ReLUConvBN / SepConv / DilConv with their layers inside a Sequential named `op`."""
    wrapped = {name for name, m in net.named_modules() if isinstance(m, (ReLUConvBN, SepConv, DilConv))}
    out = {}
    for key, value in net.state_dict().items():
        module, _, leaf = key.rpartition(".")
        owner, _, index = module.rpartition(".")
        parts = (f"{owner}.op.{index}" if owner in wrapped else module).split(".")
        parts = ["_ops" if p == "ops" else "se_layer" if p == "se" else p for p in parts]
        if imagenet and parts[0] == "stem":
            parts[0] = "stem0"
        out[".".join([*parts, leaf])] = value
    return out


@pytest.mark.parametrize("options", [
    {"genotype": NSGANet, "filter_increment": 4, "SE": True, "auxiliary": True},
    {"genotype": MICRO_GENOTYPES["AmoebaNet"], "SE": True},  # conv_7x1_1x7, stride-2 skip (FactorizedReduce)
    {"genotype": MICRO_GENOTYPES["ENAS"], "imagenet": True, "auxiliary": True},
])
def test_original_weights_load_under_our_names(options):
    options = dict(options)
    genotype, size = options.pop("genotype"), 64 if options.get("imagenet") else 32
    torch.manual_seed(0)
    source = build_micro_network(genotype, init_channels=8, layers=6, **options)
    for m in source.modules():  # non-trivial running statistics, so buffers are checked too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    original = _original_state_dict(source, options.get("imagenet", False))
    assert any("._ops." in k and ".op." in k for k in original) and original.keys() != source.state_dict().keys()
    target = build_micro_network(genotype, init_channels=8, layers=6, **options)
    load_into(target, from_original_names(original), "original weights")
    assert from_original_names(source.state_dict()).keys() == source.state_dict().keys()  # ours pass unchanged
    x = torch.randn(2, 3, size, size)
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_original_weights_load_through_model_path(tmp_path):
    from codebase.io import save_torch
    from codebase.models import build_nsganet_model

    torch.manual_seed(0)
    source = build_nsganet_model("micro", "NSGANet", 6, 8, 4, True, True, 10)
    save_torch(tmp_path / "original.pt", {"state_dict": _original_state_dict(source)})
    loaded = build_nsganet_model("micro", "NSGANet", 6, 8, 4, True, True, 10, weights=tmp_path / "original.pt")
    x = torch.randn(2, 3, 32, 32)
    source.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))


def test_auxiliary_head_on_too_small_images_is_one_clear_error():
    """The auxiliary head pools 5x5 (stride 3) and then convolves 2x2: CIFAR networks need 29 px and up.
    Smaller training images (e.g. --img-size 28) are a ValueError naming --img-size and --auxiliary, not a
    RuntimeError from deep inside the pooling layer."""
    net = build_micro_network(NSGANet, init_channels=4, layers=3, auxiliary=True).train()
    logits, aux = net(torch.randn(2, 3, 29, 29))
    assert aux.shape == logits.shape == (2, 10)
    for size in (28, 8):
        with pytest.raises(ValueError, match=r"--img-size.*--auxiliary"):
            net(torch.randn(2, 3, size, size))
    net.eval()  # no auxiliary head at inference: small images still work
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 10)
