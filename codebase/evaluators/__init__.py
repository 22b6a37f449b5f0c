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


def _renamed(options: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """msunas's options with the original's flag names (`names`: flag -> parameter) passed under the evaluator's
    parameter names; those not given keep the evaluator's defaults."""
    out = {key: value for key, value in options.items() if key not in names}
    out.update({names[key]: value for key, value in options.items() if key in names and value is not None})
    return out


def _nsganet_train(**options: Any) -> Evaluator:
    from codebase.evaluators.nsganet_train import NSGANetTrainer

    return NSGANetTrainer(**_renamed(options, {"n_workers": "workers", "trn_batch_size": "batch_size"}))


def _supernet(**options: Any) -> Evaluator:
    from codebase.evaluators.supernet import SupernetEvaluator

    return SupernetEvaluator(**_renamed(options, {"n_workers": "num_workers", "trn_batch_size": "ft_batch_size",
                                                  "vld_batch_size": "batch_size"}))


_REGISTRY: dict[str, Callable[..., Evaluator]] = {"ofa_oracle": _ofa_oracle, "nsganet_train": _nsganet_train,
                                                  "supernet": _supernet}


# the msunas flags each evaluator has no use for ({dest: why}): given, they are refused, never silently ignored
_NSGANET_FLAGS = "only with --evaluator nsganet_train (NSGA-Net's spaces)"
_OFA_FLAGS = "only with --evaluator supernet (OFA subnets with inherited weights)"
_REAL_DATA = ("only with real evaluation: --evaluator ofa_oracle scores OFA w1.2 subnets with OFA's ImageNet "
              "accuracy predictor")
UNUSED_FLAGS: dict[str, dict[str, str]] = {
    "ofa_oracle": dict.fromkeys(("dataset", "data", "n_classes", "vld_size", "n_workers", "trn_batch_size",
                                 "vld_batch_size"), _REAL_DATA)
    | dict.fromkeys(("supernet_path", "width_mult", "n_epochs", "test"), _OFA_FLAGS)
    | dict.fromkeys(("init_channels", "layers", "epochs"), _NSGANET_FLAGS),
    "supernet": {"init_channels": _NSGANET_FLAGS, "layers": _NSGANET_FLAGS, "epochs": _NSGANET_FLAGS,
                 "oracle_path": "only with --evaluator ofa_oracle"},
    "nsganet_train": {"supernet_path": _OFA_FLAGS, "width_mult": _OFA_FLAGS, "resolutions": _OFA_FLAGS,
                      "n_epochs": _OFA_FLAGS, "test": _OFA_FLAGS, "vld_batch_size": _OFA_FLAGS,
                      "oracle_path": "only with --evaluator ofa_oracle"},
}
# the search space each evaluator scores (None: it checks --search_space itself)
SPACES: dict[str, str | None] = {"supernet": "ofa", "ofa_oracle": "ofa", "nsganet_train": None}


def check_evaluator_flags(name: str, given: dict[str, Any], search_space: str) -> None:
    """Before anything is built or trained: a ValueError for a --search_space the evaluator `name` does not
    score, or for flags (`given`, from codebase.cli.flags_given) it has no use for."""
    from codebase.cli import check_unused

    space = SPACES.get(name)
    if space is not None and search_space != space:
        raise ValueError(f"--evaluator {name} scores {space} subnets, not --search_space {search_space}; use "
                         f"--evaluator nsganet_train for NSGA-Net's spaces, or drop --search_space")
    check_unused(given, UNUSED_FLAGS.get(name, {}))


def register_evaluator(name: str, factory: Callable[..., Evaluator]) -> None:
    _REGISTRY[name] = factory


def evaluator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_evaluator(name: str, **options: Any) -> Evaluator:
    if name not in _REGISTRY:
        raise ValueError(f"unknown evaluator '{name}'; choose from {evaluator_names()}")
    return _REGISTRY[name](**options)
