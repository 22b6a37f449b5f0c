"""Accuracy surrogates: one registry, one factory (like timm's model registry).

    model = get_acc_predictor("rbf", search_space=space).fit(X, y)
    err = model.predict(X_new)  # (n,) predicted top-1 error, percent

Every model takes `search_space=` (default `OFASearchSpace()`), `seed=` and `encoding=` (see
`acc_predictor.encoding`); the named variants below fix an encoding or a pool.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from acc_predictor.adaptive_switching import AdaptiveSwitching
from acc_predictor.base import Predictor, correlation
from acc_predictor.carts import CARTs
from acc_predictor.encoding import ENCODINGS
from acc_predictor.gp import GP
from acc_predictor.gp_additive import AdditiveGP
from acc_predictor.rbf import RBF


def _mlp(**options: Any) -> Predictor:
    """The MLP, importing torch only when one is built: a bad --predictor is then said at once."""
    from acc_predictor.mlp import MLP

    return MLP(**options)


def __getattr__(name: str) -> Any:  # `from acc_predictor import MLP` without importing torch up front
    if name == "MLP":
        from acc_predictor.mlp import MLP

        return MLP
    raise AttributeError(f"module 'acc_predictor' has no attribute {name!r}")


_REGISTRY: dict[str, Callable[..., Predictor]] = {
    "rbf": RBF,
    "gp": GP,
    "carts": CARTs,
    "mlp": _mlp,
    "as": AdaptiveSwitching,
    "gp_additive": AdditiveGP,
    "rbf_onehot": partial(RBF, encoding="onehot"),
    "rbf_ordinal": partial(RBF, encoding="ordinal"),
    "gp_onehot": partial(GP, encoding="onehot"),
    "mlp_onehot": partial(_mlp, encoding="onehot"),
}


def register_acc_predictor(name: str, factory: Callable[..., Predictor]) -> None:
    _REGISTRY[name] = factory


def get_acc_predictor(name: str, **options: Any) -> Predictor:
    """Build the named surrogate; ValueError for an unknown name or option."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown accuracy predictor '{name}'; choose from {acc_predictor_names()}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as e:
        raise ValueError(f"accuracy predictor '{name}': bad options {sorted(options)} ({e})") from None


def acc_predictor_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = [
    "ENCODINGS",
    "AdaptiveSwitching",
    "AdditiveGP",
    "CARTs",
    "GP",
    "Predictor",
    "RBF",
    "acc_predictor_names",
    "correlation",
    "get_acc_predictor",
    "register_acc_predictor",
]
