"""What an update rule is: the one interface the sampling loop (`diffserial.samplers.loop`) calls.

One step of a chain goes from grid time t to s < t:

    x_s, state_s = rule.step(dynamics, fn, x_t, state_t, t, s, key)

for ONE sample x (the loop vmaps over seeds), with `dynamics` the forward process (continuous) or the
masking schedule (masked), `fn` the score function or the predictor, and `state` the rule's own carry
(`init_state(x)` at the first time of the grid). Rules are frozen, hashable dataclasses: they are
static structure of the compiled program.

Capabilities are declared as class attributes, never probed:

    nfe_per_step                   evaluations of fn per step (the cost of a step)
    requires_variance_preserving   (continuous rules) the rule needs m_t^2 + s_t^2 = 1

`diffserial.samplers.continuous.ContinuousRule` and `diffserial.samplers.masked.MaskedRule` are the two
base classes that give every rule of a family these declarations.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax

Array = jax.Array


class Rule(Protocol):
    """An update rule of the sampling loop (see the module docstring)."""

    nfe_per_step: int

    def init_state(self, x: Array) -> Any:
        """The rule's carry for the initial sample x (a pytree; () when the rule keeps none)."""

    def step(self, dynamics: Any, fn: Callable[[Array, Array], Array], x: Array, state: Any, t: Array,
             s: Array, key: Array) -> tuple[Array, Any]:
        """One step of one sample from t to s < t: (x_s, state_s)."""


__all__ = ["Rule"]
