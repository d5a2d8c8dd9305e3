"""The course's loss functions, as objects that know their prediction.

The course's ``nn.L1Loss``, ``nn.MSELoss``, ``nn.BCEWithLogitsLoss`` and
``nn.CrossEntropyLoss`` (chapters 01 to 04, the autoencoder). A loss of the course knows
three things: its value per example (the training step weights them by the batch mask),
how the model's outputs become a prediction (softmax, sigmoid, or the outputs
themselves), and which targets it can take (integer labels for the classifiers). A
training state carries one; the names (``"cross_entropy"``, ...) stay as shortcuts.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.support.labels import LabelError, check_labels
from jaxdl.errors import ArgumentError, ShapeError


def _per_example(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).mean(axis=1)


@dataclasses.dataclass(frozen=True)
class Loss:
    """A loss function as the course uses it: ``loss(outputs, targets)`` gives one value
    per example; :meth:`probabilities` turns outputs into what ``make_predictions``
    returns; :meth:`predicted_labels` gives class predictions (``None``: no accuracy);
    :meth:`check_targets` refuses targets it cannot take, before training on them."""

    name: str = "loss"

    def __call__(self, outputs, targets) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} does not define its per-example value")

    def probabilities(self, outputs) -> jax.Array:
        return outputs

    def predicted_labels(self, outputs) -> jax.Array | None:
        return None

    def check_targets(self, targets, output_shape: tuple[int, ...], where: str) -> None:
        """Raise a :class:`~jaxdl.errors.ShapeError` or :class:`LabelError` naming what of
        ``targets`` this loss cannot take from a model whose outputs have
        ``output_shape`` (one example's batch of them)."""


@dataclasses.dataclass(frozen=True)
class L1Loss(Loss):
    """``nn.L1Loss``: mean absolute error (chapter 01's regression)."""

    name: str = "l1"

    def __call__(self, outputs, targets):
        return _per_example(jnp.abs(outputs - targets.reshape(outputs.shape)))


@dataclasses.dataclass(frozen=True)
class MSELoss(Loss):
    """``nn.MSELoss``: mean squared error (regression, the autoencoder)."""

    name: str = "mse"

    def __call__(self, outputs, targets):
        return _per_example((outputs - targets.reshape(outputs.shape)) ** 2)


@dataclasses.dataclass(frozen=True)
class BCEWithLogitsLoss(Loss):
    """``nn.BCEWithLogitsLoss`` on ``(N, 1)`` or ``(N,)`` logits and 0/1 labels: the
    sigmoid and the log fused, stable for large logits. Predicts ``sigmoid > 0.5``."""

    name: str = "bce_with_logits"

    def __call__(self, logits, labels):
        logits = logits.reshape(logits.shape[0], -1)[:, 0]
        labels = labels.astype(logits.dtype)
        return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))

    def probabilities(self, outputs):
        return jax.nn.sigmoid(outputs)

    def predicted_labels(self, outputs):
        return (outputs.reshape(outputs.shape[0], -1)[:, 0] > 0).astype(jnp.int32)

    def check_targets(self, targets, output_shape, where):
        targets = jnp.asarray(targets)
        if targets.ndim != 1 and targets.shape[1:] != tuple(output_shape[1:]):
            raise ShapeError(f"the labels of {where} have shape {tuple(targets.shape)}; a binary cross-entropy "
                             f"takes one 0 or 1 per example, shape ({targets.shape[0]},)")
        bad = int(jnp.flatnonzero((targets != 0) & (targets != 1), size=1, fill_value=-1)[0])
        if bad >= 0:
            raise LabelError(f"label {np.asarray(targets).ravel()[bad]} at index {bad} of {where} "
                             "is not 0 or 1, the two classes of a binary cross-entropy")


@dataclasses.dataclass(frozen=True)
class CrossEntropyLoss(Loss):
    """``nn.CrossEntropyLoss`` on ``(N, K)`` logits and integer labels from 0 to ``K - 1``.
    Predicts the softmax's argmax."""

    name: str = "cross_entropy"

    def __call__(self, logits, labels):
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(log_probs, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]

    def probabilities(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)

    def predicted_labels(self, outputs):
        return jnp.argmax(outputs, axis=-1)

    def check_targets(self, targets, output_shape, where):
        targets = jnp.asarray(targets)
        if targets.ndim != 1:
            hint = f"; flatten them with y.reshape(-1)" if targets.size == targets.shape[0] else ""
            raise ShapeError(f"the labels of {where} have shape {tuple(targets.shape)}; a cross-entropy takes "
                             f"one class index per example, shape ({targets.shape[0]},){hint}")
        # a label of -1 would silently count as the last class, one of K gives a NaN loss
        check_labels(targets, output_shape[-1], where)


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (L1Loss(), MSELoss(), BCEWithLogitsLoss(), CrossEntropyLoss())}
"""The course's losses by their short names: ``"l1"``, ``"mse"``, ``"bce_with_logits"``, ``"cross_entropy"``."""


def as_loss(loss: str | Loss) -> Loss:
    """``loss`` if it is a :class:`Loss`, else the one of :data:`LOSSES` it names."""
    if isinstance(loss, Loss):
        return loss
    if loss not in LOSSES:
        raise ArgumentError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)} or pass a Loss")
    return LOSSES[loss]
