"""The OFA MobileNetV3 genome: round trips, canonical form, bounds, sampling, input checks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search_space import OFA_ORACLE_RESOLUTIONS, OFASearchSpace, get_search_space
from search_space.ofa import load_subnet

ROOT = Path(__file__).resolve().parents[1]


def test_genome_layout_matches_the_original_tool():
    space = OFASearchSpace()
    # Original encode: per stage [depth idx, 4 kernel idx, 4 expand idx], then resolution idx.
    subnet = {"ks": [3, 5, 7, 7, 5, 3, 5, 3, 3, 3, 7, 7, 7, 5], "e": [3, 4, 6, 6, 4, 3, 4, 3, 3, 3, 6, 6, 6, 4],
              "d": [2, 3, 4, 2, 3], "r": 196}
    x = space.encode(subnet)
    assert x.tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 0,
                          1, 2, 2, 1, 0, 2, 2, 1, 0,
                          2, 0, 1, 0, 0, 0, 1, 0, 0,
                          0, 0, 2, 0, 0, 0, 2, 0, 0,
                          1, 2, 2, 1, 0, 2, 2, 1, 0, 1]
    assert space.decode(x) == subnet


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_encode_decode_round_trip(width):
    space = OFASearchSpace(width_mult=width)
    X = space.sample(500, np.random.default_rng(0))
    for x in X:
        assert np.array_equal(space.encode(space.decode(x)), x)
        assert space.validate(space.decode(x)) == space.decode(x)


def test_canonical_zeroes_unused_layers_so_one_architecture_has_one_genome():
    space = OFASearchSpace()
    rng = np.random.default_rng(1)
    raw = rng.integers(0, space.xu + 1, size=(200, space.n_var))
    canon = space.canonical(raw)
    for r, c in zip(raw, canon):
        # same architecture, read straight from the raw genes (decode itself canonicalises, so it cannot tell)
        d = [space.depths[r[9 * s]] for s in range(5)]
        by_hand = {"ks": [space.kernel_sizes[r[9 * s + 1 + j]] for s in range(5) for j in range(d[s])],
                   "e": [space.expand_ratios[r[9 * s + 5 + j]] for s in range(5) for j in range(d[s])],
                   "d": d, "r": space.resolutions[r[45]]}
        assert space.decode(c) == by_hand
        assert np.array_equal(space.encode(space.decode(r)), c)  # and the canonical genome
    # Two genomes differing only in an unused layer's genes are equal after canonicalisation.
    a = space.smallest().copy()
    b = a.copy()
    b[3] = 2  # kernel of layer 3 of stage 1: unused at depth 2
    assert not np.array_equal(a, b) and np.array_equal(space.canonical(a), space.canonical(b))
    assert np.array_equal(space.canonical(canon), canon)  # idempotent


def test_bounds_and_sampling_cover_the_space():
    space = OFASearchSpace(resolutions=OFA_ORACLE_RESOLUTIONS)
    assert space.n_var == 46 and space.xl.tolist() == [0] * 46
    assert space.xu[-1] == 4 and space.xu[:-1].max() == 2
    X = space.sample(2000, np.random.default_rng(2))
    assert X.min() == 0 and np.array_equal(X.max(axis=0)[[0, 1, 5, 45]], [2, 2, 2, 4])
    assert np.array_equal(space.canonical(X), X)


def test_initialize_holds_smallest_largest_and_distinct_random():
    space = OFASearchSpace()
    X = space.initialize(100, np.random.default_rng(3))
    assert X.shape == (100, 46)
    assert space.decode(X[0]) == {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 192}
    assert space.decode(X[1]) == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 256}
    assert len(np.unique(X, axis=0)) == 100
    assert np.array_equal(X, space.initialize(100, np.random.default_rng(3)))  # seeded


def test_largest_is_canonical_when_the_deepest_stage_is_shallower_than_four_layers():
    # depths (2, 3): layer slot 3 of every stage is never used, so the largest genome must carry 0 there
    space = OFASearchSpace(depths=(2, 3))
    largest = space.largest()
    assert np.array_equal(space.canonical(largest), largest)
    assert space.decode(largest) == {"ks": [7] * 15, "e": [6] * 15, "d": [3] * 5, "r": 256}
    X = space.initialize(20, np.random.default_rng(4))
    assert np.array_equal(space.canonical(X), X) and np.array_equal(X[1], largest)


def test_padded_20_entry_form_is_accepted():
    space = OFASearchSpace()
    padded = {"ks": [5, 7, 3, 3] * 5, "e": [4, 6, 3, 3] * 5, "d": [2, 2, 2, 2, 2], "r": 224}
    assert space.validate(padded) == {"ks": [5, 7] * 5, "e": [4, 6] * 5, "d": [2] * 5, "r": 224}


@pytest.mark.parametrize(
    "subnet, field",
    [
        ({"ks": [9] + [3] * 19, "e": [3] * 20, "d": [4] * 5, "r": 224}, "'ks'"),
        ({"ks": [3] * 20, "e": [5] * 20, "d": [4] * 5, "r": 224}, "'e'"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [4, 4, 4, 4, 5], "r": 224}, "'d'"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [4] * 5, "r": 225}, "'r'"),
        ({"ks": [3] * 13, "e": [3] * 20, "d": [4] * 5, "r": 224}, "'ks'"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [4] * 4, "r": 224}, "'d'"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [4] * 5}, "'r'"),
        ({"ks": "3", "e": [3] * 20, "d": [4] * 5, "r": 224}, "'ks'"),
    ],
)
def test_bad_subnets_name_the_field(subnet, field):
    with pytest.raises(ValueError, match=field):
        OFASearchSpace().validate(subnet)


def test_bad_space_and_genome_inputs():
    with pytest.raises(ValueError, match="width_mult"):
        OFASearchSpace(width_mult=1.1)
    for bad in ({"resolutions": (0, 32)}, {"resolutions": (-4,)}, {"kernel_sizes": (0, 3)}):
        with pytest.raises(ValueError, match="must be positive"):
            OFASearchSpace(**bad)
    # was accepted: msunas and train_supernet started training at 5000 px (evaluator.py already capped --img-size)
    with pytest.raises(ValueError, match="resolutions must be at most 1024 pixels, got 5000"):
        OFASearchSpace(resolutions=(224, 5000))
    assert OFASearchSpace(resolutions=(1024,)).resolutions == (1024,)
    with pytest.raises(ValueError, match="unknown search space"):
        get_search_space("nope")
    with pytest.raises(ValueError, match="gene 45"):
        OFASearchSpace().canonical(np.r_[np.zeros(45, int), 99])
    with pytest.raises(ValueError, match="shape"):
        OFASearchSpace().canonical(np.zeros((2, 45), int))


def test_malformed_subnet_file(tmp_path):
    (tmp_path / "bad.subnet").write_text('{"ks": [3,')
    with pytest.raises(ValueError, match="bad.subnet: not a JSON subnet file"):
        load_subnet(tmp_path / "bad.subnet")
    with pytest.raises(ValueError, match="cannot read"):
        load_subnet(tmp_path / "missing.subnet")
    (tmp_path / "net.pth").write_bytes(b"PK\x03\x04\xff\xfe binary")  # a weight file given as --subnet
    with pytest.raises(ValueError, match=r"net.pth: not a JSON subnet file \(not UTF-8 text\)"):
        load_subnet(tmp_path / "net.pth")


def _evaluator(*args):
    return subprocess.run([sys.executable, str(ROOT / "evaluator.py"), *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_profile_command_prints_one_json_line(tmp_path):
    from codebase.complexity import subnet_complexity

    subnet = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [4, 3, 2, 4, 3], "r": 208}
    (tmp_path / "net.subnet").write_text(json.dumps(subnet))
    out = _evaluator("--profile", "--subnet", str(tmp_path / "net.subnet"), "--width", "1.2", "--n_classes", "10")
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip())
    expected = subnet_complexity(OFASearchSpace().validate(subnet), 1.2, 10)
    assert set(line) == {"params", "flops", "flops_ofa"}
    assert line["params"] == pytest.approx(expected["params"], abs=1e-6)
    assert line["flops"] == pytest.approx(expected["flops"], abs=1e-6)
    assert line["flops_ofa"] == pytest.approx(expected["flops_ofa"], abs=1e-6)
    (tmp_path / "net.subnet").write_text(json.dumps({**subnet, "r": [208]}))  # some tools write r as [R]
    out = _evaluator("--profile", "--subnet", str(tmp_path / "net.subnet"), "--width", "1.2", "--n_classes", "10")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip()) == line


def test_profile_config_command(tmp_path):
    from codebase.supernet import build_supernet, extract_subnet

    subnet = OFASearchSpace().decode(OFASearchSpace().sample(1, np.random.default_rng(9))[0])
    config = extract_subnet(build_supernet(1.0, 10), subnet).config
    (tmp_path / "net.config").write_text(json.dumps(config))
    out = _evaluator("--profile", "--config", str(tmp_path / "net.config"), "--img-size", str(subnet["r"]))
    assert out.returncode == 0, out.stderr
    from codebase.complexity import subnet_complexity

    expected = subnet_complexity(subnet, 1.0, 10)  # the config's head has 10 classes, its widths are w1.0's
    assert json.loads(out.stdout) == pytest.approx(expected, abs=1e-6)


def test_profile_bad_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "net.subnet").write_text(json.dumps({"ks": [11] * 20, "e": [3] * 20, "d": [4] * 5, "r": 224}))
    out = _evaluator("--profile", "--subnet", str(tmp_path / "net.subnet"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "'ks'" in out.stderr and "Traceback" not in out.stderr
