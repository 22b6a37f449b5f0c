"""Search spaces: genome encodings of architectures. One registry, one factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_space.base import SearchSpace
from search_space.nsganet_macro import MacroSearchSpace
from search_space.nsganet_micro import MicroSearchSpace
from search_space.ofa import NSGANETV2_RESOLUTIONS, OFA_ORACLE_RESOLUTIONS, OFASearchSpace

_REGISTRY: dict[str, Callable[..., SearchSpace]] = {
    "ofa": OFASearchSpace,
    "nsganet_macro": MacroSearchSpace,
    "nsganet_micro": MicroSearchSpace,
}


def register_search_space(name: str, factory: Callable[..., SearchSpace]) -> None:
    _REGISTRY[name] = factory


def get_search_space(name: str, **options: Any) -> SearchSpace:
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space '{name}'; choose from {sorted(_REGISTRY)}")
    return _REGISTRY[name](**options)


def search_space_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = [
    "MacroSearchSpace",
    "MicroSearchSpace",
    "NSGANETV2_RESOLUTIONS",
    "OFA_ORACLE_RESOLUTIONS",
    "OFASearchSpace",
    "SearchSpace",
    "get_search_space",
    "register_search_space",
    "search_space_names",
]
