"""--sec_obj parsing: names, measured devices, and objectives a space cannot provide."""

from pathlib import Path

import pytest

from codebase.search.objectives import (
    complete_stats,
    measured_devices,
    objective_keys,
    objective_names,
    parse_objectives,
)
from search_space import OFASearchSpace


def test_names_and_devices_ignore_spaces():
    assert objective_names(" flops , cpu,") == ["flops", "cpu"]
    assert measured_devices("flops, cpu") == ("cpu",)
    assert measured_devices("gpu,params, cpu") == ("cpu", "gpu")
    assert measured_devices("flops,lut:cpu_table") == ()


def test_flops_ofa_is_refused_outside_ofa_spaces():
    from search_space import get_search_space

    macro = get_search_space("nsganet_macro")
    with pytest.raises(ValueError, match="flops_ofa: OFA's FLOPs convention exists for OFA spaces only"):
        parse_objectives("flops_ofa", macro, 10)
    assert [o.name for o in parse_objectives("flops_ofa", OFASearchSpace(), 10)] == ["top1_err", "flops_ofa"]


def test_complete_stats_fills_only_missing_exact_objectives():
    from codebase.complexity import subnet_complexity

    space = OFASearchSpace()
    objectives = parse_objectives("flops,params", space, 10)
    genome = space.largest()
    # the reference: the closed form checked against torchprofile and the real networks (test_complexity.py),
    # for the space's width (1.0) and the 10 classes given; each objective its own quantity
    counted = subnet_complexity(space.decode(genome), 1.0, 10)
    flops, params = counted["flops"], counted["params"]
    assert flops != pytest.approx(params)  # the check below tells the two apart
    assert [float(o.compute(genome[None])[0]) for o in objectives[1:]] == pytest.approx([flops, params], rel=1e-9)
    stats = complete_stats(objectives, {"top1": 50.0, "flops": 1.0}, genome)
    assert stats == {"top1": 50.0, "flops": 1.0, "params": pytest.approx(params, rel=1e-9)}  # a reported value is kept
    assert complete_stats(objectives, {"top1": 1.0}, genome) == {
        "top1": 1.0, "flops": pytest.approx(flops, rel=1e-9), "params": pytest.approx(params, rel=1e-9)}
    full = {"top1": 1.0, "flops": 2.0, "params": 3.0}
    assert complete_stats(objectives, full, genome) == full  # nothing missing: unchanged


def test_objective_keys_are_the_parsed_names_without_building_anything(tmp_path):
    lut = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "note10_lut"
    specs = ["flops", "params, cpu", "flops_ofa,gpu"] + ([f"flops,lut:{lut}"] if lut.exists() else [])
    for spec in specs:
        space = OFASearchSpace(width_mult=1.2, resolutions=(160, 176, 192, 208, 224))  # what note10_lut covers
        assert objective_keys(spec) == [o.name for o in parse_objectives(spec, space, 1000)]
    for spec, message in [("joules", "unknown objective 'joules'"), ("flops,flops", "named twice"),
                          ("cpu,flops,params,gpu", "1 to 3"), ("", "1 to 3"),
                          (f"lut:{tmp_path / 'none.yaml'}", "none.yaml")]:
        with pytest.raises(ValueError, match=message):
            objective_keys(spec)


def test_a_latency_objective_needs_a_path_and_only_one_table(tmp_path, monkeypatch):
    # "lut:" loaded the current folder's tables ("error: .: no *_lookup_table.yaml", or silently whatever was
    # there); two tables were "an objective is named twice", though the paths differ
    lut = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "note10_lut"
    if not lut.is_dir():
        pytest.skip(f"needs {lut}")
    monkeypatch.chdir(lut)
    with pytest.raises(ValueError, match=r"^--sec_obj lut: needs the latency table's path, e\.g\. lut:PATH$"):
        objective_keys("flops,lut:")
    with pytest.raises(ValueError, match="one latency table per search: 'lut:a' and 'lut:b' both give 'latency'"):
        objective_keys("lut:a, lut:b")
