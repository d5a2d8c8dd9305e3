"""Metrics and losses of the course: accuracy, a weighted running mean, the confusion
matrix, and the loss functions as objects that know their prediction.

Chapter 02 writes ``accuracy_fn(y_true, y_pred)`` (a percentage); chapter 03 plots a
confusion matrix with torchmetrics; the Learner of Lesson 15 keeps running means of
loss and accuracy weighted by batch size. Each is here as a small function of arrays.
The losses (:class:`CrossEntropyLoss`, :class:`BCEWithLogitsLoss`, :class:`MSELoss`,
:class:`L1Loss`) are the course's ``nn`` losses; a training state carries one, and
its names (``"cross_entropy"``, ...) stay as shortcuts.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.datasets import LabelError, check_labels


def accuracy_fn(y_true, y_pred) -> float:
    """Percentage of predictions equal to the labels: the course's ``accuracy_fn``."""
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {tuple(y_true.shape)} but y_pred {tuple(y_pred.shape)}")
    return float(jnp.mean(y_true == y_pred) * 100)


class Metric:
    """A running mean weighted by how many examples each value stands for: Lesson 15's
    ``Metric``.

    ``add(inputs, targets=None, n=1)`` computes :meth:`calc` of one batch (by default the
    inputs themselves, e.g. a batch's loss), keeps it as ``last`` and remembers that it
    stands for ``n`` examples; ``value`` is the weighted mean so far. A partial last
    batch of 16 then counts half as much as a full batch of 32, which a plain mean of
    batch values gets wrong. Subclasses override :meth:`calc`, as :class:`Accuracy` does.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.values: list[float] = []
        self.counts: list[float] = []
        self.last = None

    def calc(self, inputs, targets):
        """One batch's value of the metric (here: the inputs, such as a batch's mean loss)."""
        return inputs

    def add(self, inputs, targets=None, n: float = 1) -> None:
        self.last = self.calc(inputs, targets)
        self.values.append(float(self.last))
        self.counts.append(float(n))

    @property
    def value(self) -> float:
        count = sum(self.counts)
        return sum(v * n for v, n in zip(self.values, self.counts)) / count if count else float("nan")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value:.4f}, count={sum(self.counts):g})"


class Accuracy(Metric):
    """The fraction of predictions equal to the targets (Lesson 15's ``Accuracy``)."""

    def calc(self, inputs, targets):
        inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
        if inputs.shape != targets.shape:
            raise ValueError(f"predictions have shape {tuple(inputs.shape)} but targets {tuple(targets.shape)}")
        return jnp.mean(inputs == targets)


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


# --- losses ---------------------------------------------------------------------------------
# A loss of the course knows three things: the value per example (the training step weights
# them by the batch mask), how the model's outputs become a prediction (softmax, sigmoid,
# or the outputs themselves), and which targets it can take. Integer labels for the classifiers.


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

    def check_targets(self, targets, num_outputs: int, where: str) -> None:
        """Raise a ``ValueError`` naming the first target this loss cannot take."""


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

    def check_targets(self, targets, num_outputs, where):
        targets = jnp.asarray(targets)
        bad = int(jnp.flatnonzero((targets != 0) & (targets != 1), size=1, fill_value=-1)[0])
        if bad >= 0:
            raise LabelError(f"label {np.asarray(targets).ravel()[bad]} at index {bad} of {where} "
                             "is not 0 or 1, the two classes of a binary cross-entropy")


@dataclasses.dataclass(frozen=True)
class CrossEntropyLoss(Loss):
    """``nn.CrossEntropyLoss`` on ``(N, K)`` logits and integer labels ``0 .. K-1``.
    Predicts the softmax's argmax."""

    name: str = "cross_entropy"

    def __call__(self, logits, labels):
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.take_along_axis(log_probs, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]

    def probabilities(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)

    def predicted_labels(self, outputs):
        return jnp.argmax(outputs, axis=-1)

    def check_targets(self, targets, num_outputs, where):
        # a label of -1 would silently count as the last class, one of K gives a NaN loss
        check_labels(targets, num_outputs, where)


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (L1Loss(), MSELoss(), BCEWithLogitsLoss(), CrossEntropyLoss())}
"""The course's losses by their short names: ``"l1"``, ``"mse"``, ``"bce_with_logits"``, ``"cross_entropy"``."""


def as_loss(loss: str | Loss) -> Loss:
    """``loss`` if it is a :class:`Loss`, else the one of :data:`LOSSES` it names."""
    if isinstance(loss, Loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)} or pass a Loss")
    return LOSSES[loss]
