"""Evaluators: what gives an architecture its true accuracy (and measured objectives).

An evaluator has a `space` (the search space it scores), `n_classes` (of its task's head, which the
complexity objectives count) and `evaluate(subnet) -> net.stats dict` with at least "top1" (percent)
and the complexity keys. Factories receive every resolved msunas argument and take what they need.
One registry, one factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from search_space.base import SearchSpace


class Evaluator(Protocol):
    space: SearchSpace
    n_classes: int

    def evaluate(self, subnet: dict[str, Any]) -> dict[str, Any]: ...


def _ofa_oracle(**options: Any) -> Evaluator:
    from codebase.evaluators.oracle import OracleEvaluator

    return OracleEvaluator(**options)


def _nsganet_train(**options: Any) -> Evaluator:
    from codebase.evaluators.nsganet_train import NSGANetTrainer

    return NSGANetTrainer(**options)


def _supernet(**options: Any) -> Evaluator:
    from codebase.evaluators.supernet import SupernetEvaluator

    return SupernetEvaluator(**options)


_REGISTRY: dict[str, Callable[..., Evaluator]] = {"ofa_oracle": _ofa_oracle, "nsganet_train": _nsganet_train,
                                                  "supernet": _supernet}


def register_evaluator(name: str, factory: Callable[..., Evaluator]) -> None:
    _REGISTRY[name] = factory


def evaluator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_evaluator(name: str, **options: Any) -> Evaluator:
    if name not in _REGISTRY:
        raise ValueError(f"unknown evaluator '{name}'; choose from {evaluator_names()}")
    return _REGISTRY[name](**options)
