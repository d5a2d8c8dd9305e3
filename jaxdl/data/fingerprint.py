"""What a dataset is, in a few short strings: so that a resumed run can tell it has other data.

A run killed and started again must read the same examples, or its resumed steps would
train on something else while its checkpoints and history claim otherwise. Sizes alone
do not show it: a label changed in place, or one photo swapped for another, keeps every
count. :func:`fingerprint` describes a dataset so that any such change shows, and names
the part that changed:

* an :class:`~jaxdl.data.ArrayDataset` (MNIST, Fashion-MNIST, a loaded image folder):
  its number of examples and a hash of the bytes of its images and of its labels;
* an :class:`~jaxdl.data.ImageFolder`: for each class, its number of image files and a
  hash of their names, sizes and modification times (without reading the images; a file
  copied without its times therefore counts as changed).
"""

from __future__ import annotations

import hashlib
import os

import jax
import numpy as np

from jaxdl.data.arrays import ArrayDataset
from jaxdl.data.folder import ImageFolder
from jaxdl.errors import ArgumentTypeError


def digest(*parts: bytes | str) -> str:
    """A short hash of ``parts``: 16 hex digits of BLAKE2b (enough to tell data apart by
    accident; this is no defence against a forger)."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def fingerprint(dataset: ArrayDataset | ImageFolder) -> dict:
    """A JSON-able description of ``dataset`` that changes when any of its examples does."""
    if isinstance(dataset, ArrayDataset):
        images, labels = jax.device_get((dataset.images, dataset.labels))
        return {"examples": len(dataset),
                "images": digest(str(images.dtype), str(images.shape), np.ascontiguousarray(images).data),
                "labels": digest(str(labels.dtype), np.ascontiguousarray(labels).data)}
    if isinstance(dataset, ImageFolder):
        classes = {}
        for index, name in enumerate(dataset.classes):
            files = [path for path, label in dataset.samples if label == index]
            entries = []
            for path in files:
                info = os.stat(path)
                entries.append(f"{path.relative_to(dataset.root).as_posix()}:{info.st_size}:{info.st_mtime_ns}")
            classes[name] = {"files": len(files), "digest": digest(*entries)}
        return {"image_size": list(dataset.image_size), "classes": classes}
    raise ArgumentTypeError(f"fingerprint takes an ArrayDataset or an ImageFolder, got {type(dataset).__name__}")

