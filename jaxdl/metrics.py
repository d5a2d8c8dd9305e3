"""Metrics of the course: accuracy, a weighted running mean, the confusion matrix.

Chapter 02 writes ``accuracy_fn(y_true, y_pred)`` (a percentage); chapter 03 plots a
confusion matrix with torchmetrics; the Learner of Lesson 15 keeps running means of
loss and accuracy weighted by batch size. Each is here as a small function of arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def accuracy_fn(y_true, y_pred) -> float:
    """Percentage of predictions equal to the labels: the course's ``accuracy_fn``."""
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {tuple(y_true.shape)} but y_pred {tuple(y_pred.shape)}")
    return float(jnp.mean(y_true == y_pred) * 100)


class Metric:
    """A running mean weighted by how many examples each value stands for.

    The course's Learner keeps one per metric: ``add(batch_loss, n=len(batch))`` per
    batch, ``value`` at the end of the epoch. A partial last batch of 16 then counts
    half as much as a full batch of 32, which a plain mean of batch values gets wrong.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0.0

    def add(self, value, n: float = 1.0) -> None:
        self.total += float(value) * float(n)
        self.count += float(n)

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def __repr__(self) -> str:
        return f"Metric(value={self.value:.4f}, count={self.count:g})"


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted class
    (as ``torchmetrics.ConfusionMatrix``)."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} labels but {y_pred.size} predictions")
    bad = (y_true < 0) | (y_true >= num_classes) | (y_pred < 0) | (y_pred >= num_classes)
    if bad.any():
        raise ValueError(f"class indices must be in [0, {num_classes}); got e.g. "
                         f"label {y_true[bad][0]}, prediction {y_pred[bad][0]}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


# --- per-example losses, as the course's loss functions ---------------------------------
# Each takes the model's outputs and the targets and returns one value per example; the
# training step weights them by the batch mask. Integer labels for the classifiers.


def _per_example(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).mean(axis=1)


def l1_loss(outputs, targets):
    """``nn.L1Loss``: mean absolute error (chapter 01's regression)."""
    return _per_example(jnp.abs(outputs - targets.reshape(outputs.shape)))


def mse_loss(outputs, targets):
    """``nn.MSELoss``: mean squared error (regression, the autoencoder)."""
    return _per_example((outputs - targets.reshape(outputs.shape)) ** 2)


def bce_with_logits_loss(logits, labels):
    """``nn.BCEWithLogitsLoss`` on ``(N, 1)`` or ``(N,)`` logits and 0/1 labels: the
    sigmoid and the log fused, stable for large logits."""
    logits = logits.reshape(logits.shape[0], -1)[:, 0]
    labels = labels.astype(logits.dtype)
    return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def cross_entropy_loss(logits, labels):
    """``nn.CrossEntropyLoss`` on ``(N, K)`` logits and integer labels."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]


LOSSES = {
    "l1": l1_loss,
    "mse": mse_loss,
    "bce_with_logits": bce_with_logits_loss,
    "cross_entropy": cross_entropy_loss,
}


def predicted_labels(loss: str, outputs):
    """Class predictions from model outputs: argmax for cross-entropy, ``sigmoid > 0.5``
    (logit > 0) for BCE; ``None`` for regression losses, which have no accuracy."""
    if loss == "cross_entropy":
        return jnp.argmax(outputs, axis=-1)
    if loss == "bce_with_logits":
        return (outputs.reshape(outputs.shape[0], -1)[:, 0] > 0).astype(jnp.int32)
    return None
