"""Mixed precision: compute in bfloat16 or float16, keep the weights in float32.

Not a lesson of the course, but what every training library offers on the GPUs and
TPUs the course's models run on: Keras's ``mixed_bfloat16`` policy, fast.ai's
``MixedPrecision`` callback, Flax's ``dtype`` / ``param_dtype``. The parameters and
the optimizer state stay float32 (the *master weights*: small updates to them are not
lost to rounding); each step casts a copy of the parameters and the images to the
compute type, runs the forward and backward pass in it, and takes the loss and the
metrics in float32 from the model's outputs. BatchNorm computes its statistics and
keeps its running averages in float32 (:class:`jaxdl.layers.BatchNorm`).

``"bfloat16"`` has float32's range, so nothing else is needed. ``"float16"`` has a
narrow one (gradients below ~6e-8 become 0): its steps scale the loss up before the
backward pass and the gradients down after it, by a factor that halves whenever the
gradients overflow (that step's update is skipped) and doubles after
:attr:`Precision.growth_interval` steps without an overflow -- dynamic loss scaling.

Use it through :func:`jaxdl.train.create_train_state` or :func:`jaxdl.learner.fit`
(``precision="bfloat16"``), or the experiments' ``--precision`` flag.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import ArgumentError


@dataclasses.dataclass(frozen=True)
class Precision:
    """How a train step computes: ``compute_dtype`` for the forward and backward pass,
    float32 for everything kept. ``loss_scaling``: float16's dynamic loss scaling,
    starting at ``initial_scale`` and doubling after ``growth_interval`` good steps."""

    name: str
    compute_dtype: Any
    loss_scaling: bool = False
    initial_scale: float = 2.0**15
    growth_interval: int = 2000

    @property
    def mixed(self) -> bool:
        """Whether steps compute in a type other than float32."""
        return np.dtype(self.compute_dtype) != np.dtype(jnp.float32)

    def cast(self, tree):
        """The floating-point arrays of ``tree`` in the compute type (others as they are)."""
        if not self.mixed:
            return tree
        return jax.tree.map(lambda a: a.astype(self.compute_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                            tree)

    def initial_loss_scale(self) -> dict[str, jax.Array] | None:
        """The loss scale's state, kept in the training state (``None`` without scaling)."""
        if not self.loss_scaling:
            return None
        return {"scale": jnp.asarray(self.initial_scale, jnp.float32), "good_steps": jnp.zeros((), jnp.int32)}


FLOAT32 = Precision("float32", jnp.float32)
BFLOAT16 = Precision("bfloat16", jnp.bfloat16)
FLOAT16 = Precision("float16", jnp.float16, loss_scaling=True)

PRECISIONS: dict[str, Precision] = {p.name: p for p in (FLOAT32, BFLOAT16, FLOAT16)}
"""The precisions by name: ``"float32"`` (the default), ``"bfloat16"``, ``"float16"``."""


def as_precision(precision: str | Precision | None) -> Precision:
    """``precision`` if it is a :class:`Precision`, else the one of :data:`PRECISIONS` it
    names (``None``: float32)."""
    if precision is None:
        return FLOAT32
    if isinstance(precision, Precision):
        return precision
    if precision not in PRECISIONS:
        raise ArgumentError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)} or pass a Precision")
    return PRECISIONS[precision]


def all_finite(tree) -> jax.Array:
    """Whether every element of every array of ``tree`` is finite (one boolean)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def next_loss_scale(precision: Precision, loss_scale: dict[str, jax.Array], finite: jax.Array) -> dict[str, jax.Array]:
    """The loss scale after a step whose gradients were ``finite`` (or not): halved after
    an overflow (never below 1), doubled after ``growth_interval`` good steps in a row."""
    scale, good = loss_scale["scale"], loss_scale["good_steps"] + 1
    grow = good >= precision.growth_interval
    scale = jnp.where(finite, jnp.where(grow, scale * 2, scale), jnp.maximum(scale / 2, 1.0))
    good = jnp.where(finite & ~grow, good, 0)
    return {"scale": scale, "good_steps": good.astype(jnp.int32)}
