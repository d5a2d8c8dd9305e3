"""An image folder as one ArrayRecord file: many small photos in one file, read at random.

A folder of a hundred thousand JPEGs is a hundred thousand files to open each epoch; on
a network file system or a cloud bucket that, not decoding, is what bounds the input.
ArrayRecord (the file format Grain and tensorflow-datasets read) keeps them in one file
that still reads any example by its index, so the shuffled order costs nothing::

    records = write_image_records(ImageFolder("pizza_steak_sushi/train"), "train.array_record")
    loader = make_batches(ImageRecords(records, image_size=(64, 64)), 32, key)

Each record is the image file's own bytes (JPEG, PNG, ...: nothing is decoded or
re-encoded when writing) after its label as a 4-byte big-endian integer; the class
names and the number of records are in ``<file>.json`` beside it. :class:`ImageRecords`
decodes as :class:`~jaxdl.data.ImageFolder` reads a file (RGB, resized, the same checks,
errors naming the record) and, as a :class:`~jaxdl.data.reading.ByteImageSource`, gives
uint8 images that the loader scales on the device.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from jaxdl.data.folder import ImageFolder, check_image_size, decode_image_uint8, unit_float
from jaxdl.errors import JaxdlError
from jaxdl.support.files import atomic_path


class ImageRecordsError(JaxdlError, ValueError):
    """An ArrayRecord file of images that cannot be used: missing, without its ``.json``
    description, or holding another number of records than the description says."""


def _description(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".json")


def write_image_records(folder: ImageFolder, path: str | os.PathLike) -> pathlib.Path:
    """Write every image file of ``folder`` (its bytes as stored) with its label into the
    ArrayRecord file ``path``, and the class names beside it (``path + ".json"``); both
    are written under temporary names and renamed when whole. Returns ``path``."""
    try:
        from array_record.python.array_record_module import ArrayRecordWriter
    except ImportError:  # Grain brings it on Linux only
        raise ImageRecordsError("writing ArrayRecord files needs the array_record package: "
                                "pip install array-record") from None
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        writer = ArrayRecordWriter(str(tmp), "group_size:1")  # one record a chunk: any index reads alone
        try:
            for file, label in folder.samples:
                writer.write(int(label).to_bytes(4, "big") + pathlib.Path(file).read_bytes())
        finally:
            writer.close()
        with atomic_path(_description(path)) as described:
            described.write_text(json.dumps({"class_names": list(folder.class_names), "records": len(folder),
                                             "written_from": str(folder.root)}, indent=2) + "\n")
    return path


class ImageRecords:
    """The images of an ArrayRecord file written by :func:`write_image_records`, as a
    random-access source of ``(image, label)`` -- float32 ``(H, W, 3)`` in [0, 1] and an
    int, as :class:`~jaxdl.data.ImageFolder` gives them, every image resized to
    ``image_size`` (height, width)."""

    def __init__(self, path: str | os.PathLike, image_size: tuple[int, int] = (64, 64)):
        import grain

        self.path = pathlib.Path(path)
        self.image_size = check_image_size(image_size)
        if not self.path.is_file():
            raise ImageRecordsError(f"no ArrayRecord file at {self.path}")
        try:
            described = json.loads(_description(self.path).read_text())
            self.class_names = tuple(described["class_names"])
            count = int(described["records"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ImageRecordsError(f"{self.path} has no readable description {_description(self.path).name} "
                                    f"beside it ({err}); write it with write_image_records") from None
        try:
            self.records = grain.sources.ArrayRecordDataSource([str(self.path)])
        except ImportError:  # Grain brings array_record on Linux only
            raise ImageRecordsError("reading ArrayRecord files needs the array_record package: "
                                    "pip install array-record") from None
        if len(self.records) != count:
            raise ImageRecordsError(f"{self.path} holds {len(self.records)} records, but its description says "
                                    f"{count}: is it cut short, or from another folder?")

    @property
    def classes(self) -> list[str]:
        return list(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def read_uint8(self, index: int) -> tuple[np.ndarray, int]:
        """Record ``index`` decoded: uint8 ``(H, W, 3)`` and its label."""
        record = self.records[index]
        label = int.from_bytes(record[:4], "big")
        return decode_image_uint8(record[4:], self.image_size, f"record {index} of {self.path}"), label

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image, label = self.read_uint8(index)
        return unit_float(image), label
