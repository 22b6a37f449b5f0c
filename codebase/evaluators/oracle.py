"""The CPU benchmark evaluator: OFA's published ImageNet accuracy predictor as the true top-1.

Fixes the space to what the predictor covers (OFA MobileNetV3 w1.2, resolutions 160..224 step 16).
Complexity is exact (closed form, 1,000 classes); measured latency, when asked for, is timed on the
extracted subnet (latency does not depend on the weights, so the supernet need not be trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codebase.complexity import subnet_complexity
from codebase.oracle import OFAOracle, oracle_space


class OracleEvaluator:
    def __init__(self, oracle_path: str | Path | None = None, measure: tuple[str, ...] = (),
                 resolutions: list[int] | tuple[int, ...] | None = None, **_: Any) -> None:
        if not oracle_path:
            raise ValueError("--evaluator ofa_oracle needs --oracle_path (OFA's acc_predictor.pth)")
        self.space = oracle_space()
        if resolutions and sorted(set(resolutions)) != list(self.space.resolutions):
            # a silently different space would search resolutions the user did not ask for
            raise ValueError(f"--resolutions {' '.join(map(str, resolutions))}: the ofa_oracle space has the "
                             f"resolutions of OFA's published search, {' '.join(map(str, self.space.resolutions))}; "
                             f"drop --resolutions")
        self.n_classes = 1000  # ImageNet
        try:
            self.oracle = OFAOracle(oracle_path, self.space)
        except ValueError as e:  # "/x: weight file not found" did not say which flag named /x
            raise ValueError(f"--oracle_path: {e}") from None
        self.measure = tuple(measure)
        self._supernet = None

    def evaluate(self, subnet: dict[str, Any]) -> dict[str, Any]:
        x = self.space.encode(subnet)
        stats: dict[str, Any] = {"top1": float(self.oracle.top1(x[None])[0])}
        stats.update(subnet_complexity(subnet, self.space.width_mult, 1000))
        for device in self.measure:
            stats[f"latency_{device}"] = self._latency(subnet, device)
        return stats

    def _latency(self, subnet: dict[str, Any], device: str) -> float:
        from codebase.latency import measure_latency, objective_device
        from codebase.supernet import build_supernet, extract_subnet

        if self._supernet is None:
            self._supernet = build_supernet(self.space.width_mult, 1000)
        net = extract_subnet(self._supernet, subnet).eval()
        return measure_latency(net, subnet["r"], device=objective_device(device), warmup=3, repeats=10)
