"""Closed-form params/MACs against the real extracted networks (torchprofile and the ofa counter)."""

import json
import warnings

import numpy as np
import pytest
import torch

from codebase.complexity import genome_complexity, subnet_complexity, to_millions
from codebase.ofa_config import build_from_config, config_complexity, normalize_config
from codebase.supernet import build_supernet, extract_subnet
from search_space import OFASearchSpace

RESOLUTIONS = (128, 150, 160, 175, 192, 224, 256)
N_PER_WIDTH = 20


def _reference_counts(net: torch.nn.Module, r: int) -> tuple[int, int, int]:
    """params, torchprofile MACs, ofa MACs of a real network (ofa counted in float64: exact)."""
    import torchprofile
    from ofa.utils import count_net_flops

    params = sum(p.numel() for p in net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs = torchprofile.profile_macs(net.eval(), torch.zeros(1, 3, r, r))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the ofa counter accumulates in the default dtype
    try:
        macs_ofa = count_net_flops(net.double(), (1, 3, r, r))
    finally:
        torch.set_default_dtype(default)
        net.float()
    return params, int(macs), int(round(macs_ofa))


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_closed_form_equals_extracted_network(width):
    torch.manual_seed(0)
    space = OFASearchSpace(width_mult=width, resolutions=RESOLUTIONS)
    rng = np.random.default_rng(int(width * 10))
    X = space.sample(N_PER_WIDTH, rng)
    X[0], X[1] = space.smallest(), space.largest()
    n_classes = (10, 100, 1000)
    supernets = {n: build_supernet(width, n) for n in n_classes}
    batch = {n: genome_complexity(space, X, n) for n in n_classes}
    seen_r = set()
    for i, x in enumerate(X):
        n = n_classes[i % 3]
        subnet = space.decode(x)
        seen_r.add(subnet["r"])
        net = extract_subnet(supernets[n], subnet, preserve_weight=False)
        params, macs, macs_ofa = _reference_counts(net, subnet["r"])
        assert batch[n].params[i] == params, subnet
        assert batch[n].macs[i] == macs, subnet
        assert batch[n].macs_ofa[i] == macs_ofa, subnet
    assert len(seen_r) >= 5


def test_single_subnet_matches_batch():
    space = OFASearchSpace(width_mult=1.2)
    X = space.sample(20, np.random.default_rng(3))
    batch = to_millions(genome_complexity(space, X, 37))
    for i, x in enumerate(X):
        single = subnet_complexity(space.decode(x), 1.2, 37)
        for key in ("params", "flops", "flops_ofa"):
            assert single[key] == pytest.approx(batch[key][i], rel=1e-12)


def test_padded_subnet_and_wrapped_resolution_count_the_same_network():
    compact = {"ks": [3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7], "e": [3, 4, 6] * 5, "d": [3, 2, 2, 4, 4], "r": 192}
    padded, layer = {"ks": [7] * 20, "e": [6] * 20, "d": compact["d"], "r": [192]}, 0  # 7/6 in the unused slots
    for stage, depth in enumerate(compact["d"]):
        for j in range(depth):
            padded["ks"][4 * stage + j], padded["e"][4 * stage + j] = compact["ks"][layer], compact["e"][layer]
            layer += 1
    assert subnet_complexity(padded, 1.2, 1000) == pytest.approx(subnet_complexity(compact, 1.2, 1000), rel=1e-12)
    at_160 = subnet_complexity(compact, 1.2, resolution=160)
    assert subnet_complexity({**compact, "r": 160}, 1.2) == pytest.approx(at_160)
    with pytest.raises(ValueError, match="field 'ks': expected sum"):
        subnet_complexity({**compact, "ks": [3] * 7})


def test_head_size_follows_the_number_of_classes():
    c = subnet_complexity({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}, 1.2, 1000)
    # Hand-computed: a 1000-class head costs 1536*1000 MACs more than a 10-class one, and 1536*990+990 params.
    c10 = subnet_complexity({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}, 1.2, 10)
    assert (c["flops_ofa"] - c10["flops_ofa"]) * 1e6 == pytest.approx(1536 * 990)
    assert (c["params"] - c10["params"]) * 1e6 == pytest.approx(1536 * 990 + 990)


@pytest.mark.parametrize("old_spelling", [False, True])
def test_config_complexity_equals_built_network(old_spelling):
    space = OFASearchSpace(width_mult=1.0)
    supernet = build_supernet(1.0, 10)
    for x in space.sample(4, np.random.default_rng(5)):
        subnet = space.decode(x)
        config = json.loads(json.dumps(extract_subnet(supernet, subnet).config))
        if old_spelling:  # the ofa 0.0.4 names the original NSGANetV2 wrote
            for block in config["blocks"]:
                block["name"] = "MobileInvertedResidualBlock"
                block["mobile_inverted_conv"] = block.pop("conv")
                block["mobile_inverted_conv"]["name"] = "MBInvertedConvLayer"
        net = build_from_config(config)
        params, macs, macs_ofa = _reference_counts(net, subnet["r"])
        c = config_complexity(config, subnet["r"])
        assert round(c["params"] * 1e6) == params
        assert round(c["flops"] * 1e6) == macs
        assert round(c["flops_ofa"] * 1e6) == macs_ofa


def test_malformed_config_names_the_field():
    with pytest.raises(ValueError, match="missing field 'blocks'"):
        normalize_config({"first_conv": {}})
    with pytest.raises(ValueError, match=r"blocks\[0\]"):
        normalize_config({"first_conv": {}, "blocks": [{"name": "Foo"}], "final_expand_layer": {},
                          "feature_mix_layer": {}, "classifier": {}})


def _profile(*argv: str) -> dict:
    import evaluator

    return evaluator.profile(evaluator.build_parser().parse_args(["--profile", *argv]))


def test_profile_counts_small_resolutions_exactly(tmp_path):
    # digits subnets are 24..32 px (the quickstart's search); the closed form is exact there too
    subnet = {"ks": [3, 5, 7, 3, 5, 7, 3, 5, 7, 3], "e": [3, 4, 6, 3, 4, 6, 3, 4, 6, 3], "d": [2] * 5, "r": 28}
    (tmp_path / "net.subnet").write_text(json.dumps(subnet))
    net = extract_subnet(build_supernet(1.0, 10), subnet)
    params, macs, macs_ofa = _reference_counts(net, 28)
    c = _profile("--subnet", str(tmp_path / "net.subnet"), "--n_classes", "10")
    assert (round(c["params"] * 1e6), round(c["flops"] * 1e6), round(c["flops_ofa"] * 1e6)) == (params, macs, macs_ofa)
    at_24 = _profile("--subnet", str(tmp_path / "net.subnet"), "--n_classes", "10", "--img-size", "24")
    assert at_24 == subnet_complexity({**subnet, "r": 24}, 1.0, 10) and at_24["flops"] < c["flops"]
    # --dataset gives the head its class count (a 1000-class head was counted, --dataset ignored)
    assert _profile("--subnet", str(tmp_path / "net.subnet"), "--dataset", "cifar10") == c
    assert _profile("--subnet", str(tmp_path / "net.subnet"), "--dataset", "cifar100") == subnet_complexity(
        subnet, 1.0, 100)
    assert _profile("--net_type", "micro", "--arch", "NSGANet", "--layers", "3", "--init_channels", "8",
                    "--dataset", "cifar100") == _profile("--net_type", "micro", "--arch", "NSGANet", "--layers", "3",
                                                         "--init_channels", "8", "--n_classes", "100")


def test_profile_refuses_a_bad_img_size_and_flags_a_config_ignores(tmp_path):
    subnet = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 32}
    (tmp_path / "net.subnet").write_text(json.dumps(subnet))
    (tmp_path / "net.config").write_text(json.dumps(extract_subnet(build_supernet(1.0, 10), subnet).config))
    for size in ("0", "-5"):  # 0 was read as "not given", -5 gave negative FLOPs
        with pytest.raises(ValueError, match=f"--img-size {size}: expected an input resolution"):
            _profile("--config", str(tmp_path / "net.config"), "--img-size", size)
        with pytest.raises(ValueError, match=f"--img-size {size}: expected an input resolution"):
            _profile("--subnet", str(tmp_path / "net.subnet"), "--img-size", size)
    for flag in (["--n_classes", "5"], ["--width", "1.2"]):  # the config fixes them: refused, not ignored
        with pytest.raises(ValueError, match="the config fixes the head and the widths"):
            _profile("--config", str(tmp_path / "net.config"), "--img-size", "32", *flag)
    assert _profile("--config", str(tmp_path / "net.config"), "--img-size", "32") == \
        _profile("--subnet", str(tmp_path / "net.subnet"), "--n_classes", "10")
