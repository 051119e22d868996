"""Pytree helpers shared by the library's small configuration objects."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax


def static_dataclass(cls):
    """Make `cls` a frozen dataclass registered as a pytree with no leaves.

    Every field is static metadata: instances are hashable, compare by value and pass through
    `jax.jit` as part of the program's structure (a new value compiles a new program).
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=[], meta_fields=fields)


@static_dataclass
class StaticModule:
    """A pytree with no leaves holding a (hashable) flax module as static structure: the module is
    compared by its configuration, so `jax.tree_util.Partial(apply, StaticModule(model), params)` compiles
    once per architecture and traces only `params`."""

    module: Any
