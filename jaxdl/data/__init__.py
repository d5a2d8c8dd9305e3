"""Where examples come from and how they reach the device.

* :func:`load_dataset` -- MNIST, Fashion-MNIST and other tfds image datasets, on the
  device (offline from the official files, or through tensorflow-datasets);
* :mod:`~jaxdl.data.synthetic` -- the course's line, circles and blobs, drawn with keys;
* :class:`ImageFolder` -- ``root/<class>/<image>`` folders, :func:`walk_through_dir`;
* :mod:`~jaxdl.data.augment` -- flips and TrivialAugmentWide on the device;
* :func:`make_batches` -- shuffled, fixed-size, masked batches gathered on the device
  (or streamed from the host when the data does not fit).
"""

from jaxdl.data.augment import compose, random_horizontal_flip, random_translate, trivial_augment_wide
from jaxdl.data.batches import DeviceBatches, HostBatches, make_batches
from jaxdl.data.datasets import (
    ArrayDataset,
    DatasetUnavailableError,
    ImageClassificationData,
    LabelError,
    TfdsImageSource,
    check_labels,
    load_dataset,
    prepare_from_official_files,
)
from jaxdl.data.folder import (
    ImageFolder,
    ImageFolderError,
    export_image_folder,
    find_classes,
    image_folder_splits,
    read_image,
    walk_through_dir,
    write_image_folder,
)
from jaxdl.data.idx import CorruptFileError, WrongDatasetError
from jaxdl.data.synthetic import make_blobs, make_circles, make_linear, train_test_split

__all__ = [
    "ArrayDataset", "CorruptFileError", "DatasetUnavailableError", "DeviceBatches", "HostBatches",
    "ImageClassificationData", "ImageFolder", "ImageFolderError", "LabelError", "TfdsImageSource",
    "WrongDatasetError", "check_labels", "compose", "export_image_folder", "find_classes",
    "image_folder_splits", "load_dataset", "make_batches", "make_blobs", "make_circles", "make_linear",
    "prepare_from_official_files", "random_horizontal_flip", "random_translate", "read_image",
    "train_test_split", "trivial_augment_wide", "walk_through_dir", "write_image_folder",
]
