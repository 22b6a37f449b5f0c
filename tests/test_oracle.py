"""The numpy oracle against the `ofa` package's own AccuracyPredictor and MobileNetArchEncoder."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

from codebase.oracle import FEATURE_RESOLUTIONS, OFAOracle, oracle_space
from search_space.ofa import OFASearchSpace

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa" / "acc_predictor.pth"


def _encoder() -> MobileNetArchEncoder:
    return MobileNetArchEncoder(image_size_list=list(FEATURE_RESOLUTIONS), ks_list=[3, 5, 7], expand_list=[3, 4, 6])


def _random_archs(n: int, seed: int) -> list[dict]:
    """Random subnets in OFA's padded form (20 ks/e entries), resolutions of the oracle space."""
    random.seed(seed)
    encoder = _encoder()
    archs = []
    for _ in range(n):
        arch = encoder.random_sample_arch()
        arch["image_size"] = random.choice(oracle_space().resolutions)
        archs.append(arch)
    return archs


def _genomes(archs: list[dict]) -> np.ndarray:
    space = oracle_space()
    return np.stack([space.encode({"ks": a["ks"], "e": a["e"], "d": a["d"], "r": a["image_size"]}) for a in archs])


def test_nas_layout_matches_ofa_predictor(tmp_path):
    torch.manual_seed(0)
    reference = AccuracyPredictor(_encoder(), device="cpu")
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.05)
        reference.base_acc.fill_(0.75)
    torch.save(reference.state_dict(), tmp_path / "pred.pth")

    archs = _random_archs(200, seed=1)
    with torch.no_grad():
        expected = reference.predict_acc(archs).double().numpy() * 100
    got = OFAOracle(tmp_path / "pred.pth").top1(_genomes(archs))
    assert got.shape == (200,)
    assert np.std(expected) > 0.1  # the check is not trivially passing on a constant output
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)


@pytest.mark.skipif(not PUBLISHED.is_file(), reason="published OFA predictor not available")
def test_published_predictor_matches_ofa_forward():
    """The published file uses the tutorial layout: features [kernel | expand | resolution], last bias."""
    state = torch.load(PUBLISHED, map_location="cpu", weights_only=True)
    encoder = _encoder()
    reference = AccuracyPredictor(encoder, device="cpu")
    mapped = {
        "layers.0.0.weight": state["0.weight"],
        "layers.0.0.bias": state["0.bias"],
        "layers.1.0.weight": state["2.weight"],
        "layers.1.0.bias": state["2.bias"],
        "layers.2.0.weight": state["4.weight"],
        "layers.2.0.bias": state["4.bias"],
        "layers.3.weight": state["6.weight"],
        "base_acc": state["6.bias"],
    }
    reference.load_state_dict(mapped)

    archs = _random_archs(300, seed=2)
    feats = np.stack([encoder.arch2feature(a) for a in archs])  # [res 8 | kernel 60 | expand 60]
    tutorial_order = np.r_[8:128, 0:8]
    with torch.no_grad():
        expected = reference(torch.tensor(feats[:, tutorial_order]).float()).double().numpy() * 100
    oracle = OFAOracle(PUBLISHED)
    got = oracle.top1(_genomes(archs))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    # published ImageNet top-1 range of OFA w1.2 subnets at 160..224 px is roughly 70..81 %
    assert 65 < got.min() < got.max() < 85
    # the largest subnet beats the smallest
    space = oracle_space()
    big, small = oracle.top1(np.stack([space.largest(), space.smallest()]))
    assert big > small + 3


def test_top1_err_is_complement(tmp_path):
    torch.manual_seed(3)
    torch.save(AccuracyPredictor(_encoder(), device="cpu").state_dict(), tmp_path / "p.pth")
    oracle = OFAOracle(tmp_path / "p.pth")
    X = oracle_space().sample(5, np.random.default_rng(0))
    np.testing.assert_allclose(oracle.top1_err(X), 100 - oracle.top1(X))


def test_missing_file_is_value_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        OFAOracle(tmp_path / "nope.pth")


def test_the_evaluator_names_the_flag_of_a_missing_oracle(tmp_path):
    from codebase.evaluators.oracle import OracleEvaluator

    with pytest.raises(ValueError, match=f"^--oracle_path: {tmp_path / 'none.pth'}: weight file not found$"):
        OracleEvaluator(oracle_path=tmp_path / "none.pth")  # was: the path alone, no flag


def test_wrong_shape_is_value_error(tmp_path):
    state = {
        "0.weight": torch.zeros(400, 100),
        "0.bias": torch.zeros(400),
        "2.weight": torch.zeros(400, 400),
        "2.bias": torch.zeros(400),
        "4.weight": torch.zeros(400, 400),
        "4.bias": torch.zeros(400),
        "6.weight": torch.zeros(1, 400),
        "6.bias": torch.zeros(1),
    }
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(400, 100\)"):
        OFAOracle(tmp_path / "bad.pth")


def test_unrelated_state_dict_is_value_error(tmp_path):
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an OFA accuracy predictor"):
        OFAOracle(tmp_path / "other.pth")


def test_incompatible_space_is_value_error(tmp_path):
    torch.save(AccuracyPredictor(_encoder(), device="cpu").state_dict(), tmp_path / "p.pth")
    with pytest.raises(ValueError, match="resolutions"):
        OFAOracle(tmp_path / "p.pth", space=OFASearchSpace(width_mult=1.2))  # 192..256 step 4


def test_gpu_latency_is_measured_on_cuda(monkeypatch):
    # --sec_obj gpu names the device "gpu"; the latency code takes torch device names
    import codebase.latency
    from codebase.evaluators.oracle import OracleEvaluator

    if not PUBLISHED.is_file():
        pytest.skip(f"needs {PUBLISHED}")
    devices = []
    monkeypatch.setattr(codebase.latency, "measure_latency",
                        lambda net, r, device, **kw: devices.append(device) or 1.0)
    evaluator = OracleEvaluator(PUBLISHED, measure=("gpu",))
    subnet = evaluator.space.decode(evaluator.space.smallest())
    assert evaluator.evaluate(subnet)["latency_gpu"] == 1.0 and devices == ["cuda"]
