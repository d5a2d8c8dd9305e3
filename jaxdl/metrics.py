"""Metrics of the course: accuracy, a weighted running mean, the confusion matrix.

Chapter 02 writes ``accuracy_fn(y_true, y_pred)`` (a percentage); chapter 03 plots a
confusion matrix with torchmetrics; the Learner of Lesson 15 keeps running means of
loss and accuracy weighted by batch size. Each is here as a small function of arrays.
The loss functions are :mod:`jaxdl.losses`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import ShapeError
from jaxdl.support.labels import LabelError


def accuracy_fn(y_true, y_pred) -> float:
    """Percentage of predictions equal to the labels: the course's ``accuracy_fn``."""
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"y_true has shape {tuple(y_true.shape)} but y_pred {tuple(y_pred.shape)}")
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
            raise ShapeError(f"predictions have shape {tuple(inputs.shape)} but targets {tuple(targets.shape)}")
        return jnp.mean(inputs == targets)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted class
    (as ``torchmetrics.ConfusionMatrix``)."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"{y_true.size} labels but {y_pred.size} predictions")
    bad = (y_true < 0) | (y_true >= num_classes) | (y_pred < 0) | (y_pred >= num_classes)
    if bad.any():
        raise LabelError(f"class indices must be in [0, {num_classes}); got e.g. "
                         f"label {y_true[bad][0]}, prediction {y_pred[bad][0]}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)
