"""Class labels checked before training on them, for the datasets and the losses alike.

A label of -1 would silently count as the last class in an ``argmax`` comparison, and one
of ``K`` gives a NaN cross-entropy: both are refused here with the first bad label, its
index and where it came from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import JaxdlError


class LabelError(JaxdlError, ValueError):
    """A label outside the classes of its dataset or model."""


def check_labels(labels, num_classes: int, where: str) -> None:
    """Raise :class:`LabelError` naming the first label of ``labels`` that is not a
    class index from 0 to ``num_classes - 1`` (its value and its index) and ``where`` the
    labels came from. One reduction on the device, and a look at the host only when a
    label is bad."""
    labels = jnp.asarray(labels)
    if labels.size == 0:
        return
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise LabelError(f"labels of {where} must be integer class indices, got dtype {labels.dtype}")
    low, high = (int(v) for v in jax.device_get((labels.min(), labels.max())))
    if low >= 0 and high < num_classes:
        return
    host = np.asarray(labels).ravel()
    index = int(np.flatnonzero((host < 0) | (host >= num_classes))[0])
    raise LabelError(f"label {int(host[index])} at index {index} of {where} is not one of the "
                     f"{num_classes} classes (0 to {num_classes - 1})")
