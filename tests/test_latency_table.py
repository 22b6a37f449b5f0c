"""Look-up-table latency against the shipped tables: their own key sets, hand-summed entries, and
the `ofa` package's MBv3LatencyTable walking the `ofa` network's config."""

import copy
import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from codebase.latency import LatencyTable
from codebase.latency.layers import layer_configurations
from codebase.latency.table import nsganetv2_key, ofa_key
from codebase.supernet import build_supernet, padded_layers
from search_space.ofa import OFA_ORACLE_RESOLUTIONS, OFASearchSpace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NOTE10 = DATA / "ofa" / "note10_lut"
I7 = DATA / "luts" / "i7-8700K_lut.yaml"
I7_RESOLUTIONS = tuple(range(96, 257, 4))

pytestmark = pytest.mark.skipif(not (NOTE10.is_dir() and I7.is_file()), reason="shipped latency tables absent")


@functools.cache
def _cached_raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _raw(path: Path) -> dict:
    """The table file as plain YAML (a fresh copy: tests may edit it)."""
    return copy.deepcopy(_cached_raw(path))


@pytest.fixture(scope="module")
def note10() -> LatencyTable:
    return LatencyTable.load(NOTE10)


@pytest.fixture(scope="module")
def i7() -> LatencyTable:
    return LatencyTable.load(I7)


@pytest.fixture(scope="module")
def supernets() -> dict:
    return {w: build_supernet(width_mult=w) for w in (1.0, 1.2)}


def _net_config(supernet, subnet: dict) -> dict:
    ks, e = padded_layers(subnet)
    supernet.set_active_subnet(ks=ks, e=e, d=list(subnet["d"]))
    return supernet.get_active_net_config()


def _subnets(n: int, resolutions, width_mult: float, seed: int) -> list[dict]:
    space = OFASearchSpace(resolutions=resolutions, width_mult=width_mult)
    return [space.decode(x) for x in space.sample(n, np.random.default_rng(seed))]


# ---------------------------------------------------------------- key sets of the shipped tables
@pytest.mark.parametrize("r", OFA_ORACLE_RESOLUTIONS)
def test_enumerated_layers_are_exactly_the_note10_keys(r):
    keys = {ofa_key(layer) for layer in layer_configurations(r, width_mult=1.2)}
    assert keys == set(_raw(NOTE10 / f"{r}_lookup_table.yaml"))


def test_enumerated_layers_are_exactly_the_nsganetv2_keys():
    keys = {nsganetv2_key(layer) for w in (1.0, 1.2) for r in I7_RESOLUTIONS for layer in layer_configurations(r, w)}
    assert keys - {None} == set(_raw(I7))


# ---------------------------------------------------------------- hand-summed entries
def test_note10_smallest_subnet_equals_hand_summed_entries(note10):
    subnet = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 160}
    keys = [  # written out by hand from OFAMobileNetV3 w1.2 at 160 px
        "Conv-input:160x160x3-output:80x80x24",
        "expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
        "expanded_conv-input:80x80x24-output:40x40x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0",
        "expanded_conv-input:40x40x32-output:40x40x32-expand:96-kernel:3-stride:1-idskip:1-se:0-hs:0",
        "expanded_conv-input:40x40x32-output:20x20x48-expand:96-kernel:3-stride:2-idskip:0-se:1-hs:0",
        "expanded_conv-input:20x20x48-output:20x20x48-expand:144-kernel:3-stride:1-idskip:1-se:1-hs:0",
        "expanded_conv-input:20x20x48-output:10x10x96-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:1",
        "expanded_conv-input:10x10x96-output:10x10x96-expand:288-kernel:3-stride:1-idskip:1-se:0-hs:1",
        "expanded_conv-input:10x10x96-output:10x10x136-expand:288-kernel:3-stride:1-idskip:0-se:1-hs:1",
        "expanded_conv-input:10x10x136-output:10x10x136-expand:408-kernel:3-stride:1-idskip:1-se:1-hs:1",
        "expanded_conv-input:10x10x136-output:5x5x192-expand:408-kernel:3-stride:2-idskip:0-se:1-hs:1",
        "expanded_conv-input:5x5x192-output:5x5x192-expand:576-kernel:3-stride:1-idskip:1-se:1-hs:1",
        "Conv_1-input:5x5x192-output:5x5x1152",
        "AvgPool2D-input:5x5x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ]
    raw = _raw(NOTE10 / "160_lookup_table.yaml")
    expected = sum(raw[k]["mean"] for k in keys)
    assert note10.predict(subnet) == pytest.approx(expected, rel=1e-12)
    assert note10.predict(subnet, width_mult=1.2) == pytest.approx(expected, rel=1e-12)
    assert [k for k, _ in note10.layer_latencies(subnet)] == keys


def test_nsganetv2_mixed_subnet_equals_hand_summed_entries(i7):
    subnet = {"ks": [7, 5, 3, 7, 5, 3, 7, 5, 3, 7], "e": [6, 4, 3, 6, 4, 3, 6, 4, 3, 6], "d": [2] * 5, "r": 200}
    keys = [  # written out by hand from OFAMobileNetV3 w1.0 at 200 px (odd sizes round up)
        "first_conv-input:200x200x3-output:100x100x16",
        "MBConv-input:100x100x16-output:100x100x16-expand:1-kernel:3-stride:1-idskip:1-se:0",
        "MBConv-input:100x100x16-output:50x50x24-expand:6-kernel:7-stride:2-idskip:0-se:0",
        "MBConv-input:50x50x24-output:50x50x24-expand:4-kernel:5-stride:1-idskip:1-se:0",
        "MBConv-input:50x50x24-output:25x25x40-expand:3-kernel:3-stride:2-idskip:0-se:1",
        "MBConv-input:25x25x40-output:25x25x40-expand:6-kernel:7-stride:1-idskip:1-se:1",
        "MBConv-input:25x25x40-output:13x13x80-expand:4-kernel:5-stride:2-idskip:0-se:0",
        "MBConv-input:13x13x80-output:13x13x80-expand:3-kernel:3-stride:1-idskip:1-se:0",
        "MBConv-input:13x13x80-output:13x13x112-expand:6-kernel:7-stride:1-idskip:0-se:1",
        "MBConv-input:13x13x112-output:13x13x112-expand:4-kernel:5-stride:1-idskip:1-se:1",
        "MBConv-input:13x13x112-output:7x7x160-expand:3-kernel:3-stride:2-idskip:0-se:1",
        "MBConv-input:7x7x160-output:7x7x160-expand:6-kernel:7-stride:1-idskip:1-se:1",
        "final_expand_layer-input:7x7x160-output:7x7x960",
        "feature_mix_layer-input:1x1x960-output:1x1x1280",
        "classifier-input:1280-output:1000",
    ]
    raw = _raw(I7)
    assert i7.predict(subnet, width_mult=1.0) == pytest.approx(sum(raw[k]["mean"] for k in keys), rel=1e-12)
    assert [k for k, _ in i7.layer_latencies(subnet, width_mult=1.0)] == keys


# ---------------------------------------------------------------- the ofa package as reference
def test_note10_matches_ofa_latency_table(note10, supernets):
    from ofa.nas.efficiency_predictor.latency_lookup_table import MBv3LatencyTable

    reference = {}
    for r in OFA_ORACLE_RESOLUTIONS:  # ofa's loader downloads and uses yaml.load: fill its table directly
        reference[r] = MBv3LatencyTable.__new__(MBv3LatencyTable)
        reference[r].lut = _raw(NOTE10 / f"{r}_lookup_table.yaml")
    subnets = _subnets(40, OFA_ORACLE_RESOLUTIONS, 1.2, seed=0)
    expected = [reference[s["r"]].predict_network_latency_given_config(_net_config(supernets[1.2], s), s["r"])
                for s in subnets]
    np.testing.assert_allclose(note10.predict_many(subnets), expected, rtol=1e-12)
    np.testing.assert_allclose([note10.predict(s) for s in subnets], expected, rtol=1e-12)

    subnet = subnets[0]  # and once on the real extracted network's modules
    ks, e = padded_layers(subnet)
    supernets[1.2].set_active_subnet(ks=ks, e=e, d=subnet["d"])
    net = supernets[1.2].get_active_subnet(preserve_weight=False)
    assert note10.predict(subnet) == pytest.approx(
        reference[subnet["r"]].predict_network_latency(net, subnet["r"]), rel=1e-12
    )


def _nsganetv2_reference(lut: dict, config: dict, r: int) -> float:
    """NSGANetV2 keys built from the ofa network config (its channels, strides, shortcuts, SE flags)."""
    size = (r + 1) // 2
    total = lut[f"first_conv-input:{r}x{r}x3-output:{size}x{size}x{config['first_conv']['out_channels']}"]["mean"]
    for block in config["blocks"]:
        conv = block["conv"]
        out = (size - 1) // conv["stride"] + 1
        key = (f"MBConv-input:{size}x{size}x{conv['in_channels']}-output:{out}x{out}x{conv['out_channels']}"
               f"-expand:{conv['expand_ratio']}-kernel:{conv['kernel_size']}-stride:{conv['stride']}"
               f"-idskip:{int(block['shortcut'] is not None)}-se:{int(conv['use_se'])}")
        total += lut[key]["mean"]
        size = out
    fe, fm, cl = config["final_expand_layer"], config["feature_mix_layer"], config["classifier"]
    fe_key = f"final_expand_layer-input:{size}x{size}x{fe['in_channels']}-output:{size}x{size}x{fe['out_channels']}"
    total += lut[fe_key]["mean"]
    total += lut[f"feature_mix_layer-input:1x1x{fm['in_channels']}-output:1x1x{fm['out_channels']}"]["mean"]
    return total + lut[f"classifier-input:{cl['in_features']}-output:{cl['out_features']}"]["mean"]


@pytest.mark.parametrize("width_mult", [1.0, 1.2])
def test_nsganetv2_matches_ofa_network_config(i7, supernets, width_mult):
    lut = _raw(I7)
    subnets = _subnets(30, I7_RESOLUTIONS, width_mult, seed=1)
    expected = [_nsganetv2_reference(lut, _net_config(supernets[width_mult], s), s["r"]) for s in subnets]
    np.testing.assert_allclose(i7.predict_many(subnets, width_mult=width_mult), expected, rtol=1e-12)


# ---------------------------------------------------------------- loading and errors
def test_single_note10_file_and_padded_subnets(note10):
    single = LatencyTable.load(NOTE10 / "192_lookup_table.yaml")
    assert single.resolutions == [192] and note10.resolutions == list(OFA_ORACLE_RESOLUTIONS)
    assert single.format == note10.format == "ofa" and note10.width_mults == [1.2]
    subnet = _subnets(1, (192,), 1.2, seed=2)[0]
    assert single.predict(subnet) == note10.predict(subnet)
    padded_ks, padded_e = padded_layers(subnet)
    padded = {"ks": padded_ks, "e": padded_e, "d": subnet["d"], "r": [192]}
    assert note10.predict(padded) == note10.predict(subnet)
    with pytest.raises(ValueError, match=r"no table for resolution 224"):
        single.predict({**subnet, "r": 224})


def test_nsganetv2_table_needs_width(i7):
    assert i7.format == "nsganetv2" and i7.width_mults == [1.0, 1.2] and i7.resolutions == list(I7_RESOLUTIONS)
    with pytest.raises(ValueError, match="pass width_mult"):
        i7.predict({"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 200})


def test_missing_layer_names_key_and_table(note10, tmp_path):
    subnet = {"ks": [5] * 10, "e": [4] * 10, "d": [2] * 5, "r": 224}
    with pytest.raises(ValueError, match=r"'Conv-input:224x224x3-output:112x112x16'") as err:
        note10.predict(subnet, width_mult=1.0)
    assert "224_lookup_table.yaml" in str(err.value)
    with pytest.raises(ValueError, match=r"'Logits-input:1x1x1536-output:10' .*build_latency_lut.py --n_classes 10"):
        note10.predict(subnet, n_classes=10)
    with pytest.raises(ValueError, match="no table for resolution 200"):
        note10.predict({**subnet, "r": 200})

    shutil.copy(NOTE10 / "224_lookup_table.yaml", tmp_path / "224_lookup_table.yaml")
    raw = _raw(tmp_path / "224_lookup_table.yaml")
    gone = "expanded_conv-input:56x56x32-output:28x28x48-expand:128-kernel:5-stride:2-idskip:0-se:1-hs:0"
    del raw[gone]
    (tmp_path / "224_lookup_table.yaml").write_text(yaml.safe_dump(raw))
    table = LatencyTable.load(tmp_path)
    table.predict({**subnet, "e": [3] * 10})  # does not use the removed layer
    with pytest.raises(ValueError, match=f"{tmp_path / '224_lookup_table.yaml'} has no entry '{gone}'"):
        table.predict(subnet)


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no \\*_lookup_table.yaml"):
        LatencyTable.load(tmp_path)
    (tmp_path / "x.yaml").write_text("conv-a:\n  mean: 1.0\n")
    with pytest.raises(ValueError, match="unknown latency table format"):
        LatencyTable.load(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("MBConv-a: 3\n")
    with pytest.raises(ValueError, match="'MBConv-a' has no 'mean'"):
        LatencyTable.load(tmp_path / "y.yaml")
    with pytest.raises(ValueError, match="file not found"):
        LatencyTable.load(tmp_path / "missing.yaml")
    # a folder holding a single-file table (NSGANetV2's i7-8700K_lut.yaml): the message named nothing to give
    with pytest.raises(ValueError, match=r"no \*_lookup_table.yaml latency tables in this folder \(it holds x.yaml, "
                                         r"y.yaml: give a single-file table's own path\)"):
        LatencyTable.load(tmp_path)


@pytest.mark.parametrize("mean", ["null", ".nan", "-100", "abc", ".inf", "true"])  # true: read as 1.0 ms before
def test_a_latency_that_is_no_finite_non_negative_number_is_refused(tmp_path, mean):
    (tmp_path / "t.yaml").write_text(f"MBConv-a:\n  mean: 1.5\nMBConv-b:\n  mean: {mean}\n")
    with pytest.raises(ValueError, match="t.yaml: entry 'MBConv-b' has mean .*expected a latency >= 0"):
        LatencyTable.load(tmp_path / "t.yaml")


def test_a_binary_file_is_refused_naming_it(tmp_path):
    (tmp_path / "t.yaml").write_bytes(bytes(range(128, 256)))
    with pytest.raises(ValueError, match="t.yaml: not a text"):
        LatencyTable.load(tmp_path / "t.yaml")


# ---------------------------------------------------------------- vectorised over genomes
@pytest.mark.parametrize(
    "table_path, resolutions, width_mult",
    [(NOTE10, OFA_ORACLE_RESOLUTIONS, 1.2), (I7, I7_RESOLUTIONS, 1.0), (I7, (192, 256), 1.2)],
)
def test_predict_genomes_equals_predict(table_path, resolutions, width_mult, note10, i7):
    table = note10 if table_path == NOTE10 else i7
    space = OFASearchSpace(resolutions=resolutions, width_mult=width_mult)
    X = np.concatenate([space.sample(300, np.random.default_rng(3)), [space.smallest(), space.largest()]])
    expected = [table.predict(space.decode(x), width_mult=width_mult) for x in X]
    np.testing.assert_allclose(table.predict_genomes(X, space), expected, rtol=1e-12)


def test_predict_genomes_missing_entry(tmp_path):
    raw = _raw(NOTE10 / "176_lookup_table.yaml")
    gone = "expanded_conv-input:11x11x136-output:11x11x136-expand:816-kernel:7-stride:1-idskip:1-se:1-hs:1"
    del raw[gone]
    (tmp_path / "176_lookup_table.yaml").write_text(yaml.safe_dump(raw))
    table = LatencyTable.load(tmp_path)
    space = OFASearchSpace(resolutions=(176,), width_mult=1.2)
    smallest, largest = space.smallest(), space.largest()
    assert table.predict_genomes(smallest, space)[0] == pytest.approx(table.predict(space.decode(smallest)))
    with pytest.raises(ValueError, match=f"has no entry '{gone}'"):
        table.predict_genomes(np.stack([smallest, largest]), space)


def test_a_search_objective_refuses_a_table_missing_a_middle_choice(tmp_path):
    # an entry neither the smallest nor the largest genome uses: the search's start-up check missed it and the
    # first candidate using it failed mid-search
    from codebase.search.objectives import parse_objectives

    for r in (160, 176):
        shutil.copy(NOTE10 / f"{r}_lookup_table.yaml", tmp_path / f"{r}_lookup_table.yaml")
    raw = _raw(NOTE10 / "176_lookup_table.yaml")
    gone = "expanded_conv-input:11x11x136-output:11x11x136-expand:544-kernel:5-stride:1-idskip:1-se:1-hs:1"
    del raw[gone]
    (tmp_path / "176_lookup_table.yaml").write_text(yaml.safe_dump(raw))
    space = OFASearchSpace(resolutions=(160, 176), width_mult=1.2)
    table = LatencyTable.load(tmp_path)
    table.predict_genomes(np.stack([space.smallest(), space.largest()]), space)  # the ends do not need it
    with pytest.raises(ValueError, match=f"176_lookup_table.yaml has no entry '{gone}'.*at resolution 176"):
        table.check_covers(space)
    with pytest.raises(ValueError, match=f"has no entry '{gone}'"):
        parse_objectives(f"lut:{tmp_path}", space, 1000)
    LatencyTable.load(NOTE10).check_covers(space)  # the complete table covers it


@pytest.mark.parametrize(
    "change, message",
    [
        ({"d": [2] * 4}, "field 'd'"),
        ({"ks": [3] * 9}, "field 'ks': expected sum\\(d\\) = 10"),
        ({"e": ["x"] * 10}, "field 'e': expected integers, got 'x'"),
        ({"r": [160, 176]}, "field 'r'"),
        ({"r": 0}, "field 'r'"),
    ],
)
def test_bad_subnets_are_refused(note10, change, message):
    subnet = {"ks": [3] * 10, "e": [3] * 10, "d": [2] * 5, "r": 160, **change}
    with pytest.raises(ValueError, match=message):
        note10.predict(subnet)
    with pytest.raises(ValueError, match="keys ks, e, d, r"):
        note10.predict({"ks": [3] * 10})


def test_predict_genomes_refuses_a_table_that_misses_a_resolution_of_the_space(tmp_path):
    # a search asks for the smallest and largest genomes first: a resolution in between without a table (or
    # a table whose build stopped before its head entries) must fail then, not hours into the search
    for r in (160, 192):
        shutil.copy(NOTE10 / f"{r}_lookup_table.yaml", tmp_path / f"{r}_lookup_table.yaml")
    table = LatencyTable.load(tmp_path)
    space = OFASearchSpace(resolutions=(160, 176, 192), width_mult=1.2)
    ends = np.stack([space.smallest(), space.largest()])
    with pytest.raises(ValueError, match=r"no table for resolution 176; has \[160, 192\]"):
        table.predict_genomes(ends, space)

    raw = _raw(NOTE10 / "176_lookup_table.yaml")
    head = "Logits-input:1x1x1536-output:1000"
    del raw[head]
    (tmp_path / "176_lookup_table.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=f"176_lookup_table.yaml has no entry '{head}'"):
        LatencyTable.load(tmp_path).predict_genomes(ends, space)
    complete = LatencyTable.load(NOTE10)
    np.testing.assert_allclose(complete.predict_genomes(ends, space), [complete.predict(space.decode(x)) for x in ends])


def test_an_entry_given_twice_is_refused_naming_its_line(tmp_path):
    # yaml kept the last of two equal keys silently: a hand-merged table lost one of the latencies
    (tmp_path / "t.yaml").write_text("MBConv-a:\n  mean: 1.5\nMBConv-b:\n  mean: 2.0\nMBConv-a:\n  mean: 9.0\n")
    with pytest.raises(ValueError, match=r"t.yaml: corrupt YAML file \(key 'MBConv-a' given twice .*line 5"):
        LatencyTable.load(tmp_path / "t.yaml")
