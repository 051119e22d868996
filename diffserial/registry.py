"""Name -> object lookup used by configs, with errors that list the valid names."""

from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], kind: str, name: str) -> T:
    """Return registry[name]; an unknown name raises ValueError listing the valid ones."""
    if name not in registry:
        valid = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {valid}")
    return registry[name]
