"""Where examples come from and how they reach the device.

* :func:`load_dataset` -- MNIST, Fashion-MNIST and other tfds image datasets, on the
  device (offline from the official files, or through tensorflow-datasets);
* :func:`course_image_folders` -- chapter 04's pizza/steak/sushi photos, fetched from the
  course's repository on first use and checked (:mod:`~jaxdl.data.course_files`);
* :mod:`~jaxdl.data.synthetic` -- the course's line, circles, blobs and spirals, drawn with keys;
* :class:`ImageFolder` -- ``root/<class>/<image>`` folders, :func:`walk_through_dir`;
  :class:`ImageRecords` -- such a folder as one ArrayRecord file (:mod:`~jaxdl.data.records`);
* :mod:`~jaxdl.data.augment` -- flips and TrivialAugmentWide on the device;
* :func:`make_batches` -- shuffled, fixed-size, masked batches gathered on the device
  (or streamed from the host by a Grain pipeline when the data does not fit,
  :mod:`~jaxdl.data.stream`), each loader declaring what the training loop may ask of
  it (:mod:`~jaxdl.data.loader`).

Each name is imported from its module on first use.
"""

from jaxdl.support.lazy import lazy_names

_NAMES = {  # each public name, by the module it comes from
    **dict.fromkeys(("compose", "random_horizontal_flip", "random_translate", "trivial_augment_wide"), "augment"),
    **dict.fromkeys(("DeviceBatches", "make_batches"), "batches"),
    **dict.fromkeys(("course_image_folders", "fetch_course_file"), "course_files"),
    **dict.fromkeys(("DownloadError", "offline_requested"), "download"),
    **dict.fromkeys(("HostBatches", "default_worker_count"), "stream"),
    **dict.fromkeys(("ArrayDataset", "ImageClassificationData"), "arrays"),
    **dict.fromkeys(("DatasetUnavailableError", "LabelError", "TfdsImageSource", "check_labels", "load_dataset",
                     "prepare_from_official_files"), "datasets"),
    **dict.fromkeys(("ImageFileError", "ImageFolder", "ImageFolderError", "export_image_folder", "find_classes", "image_folder_splits",
                     "read_image", "walk_through_dir", "write_image_folder"), "folder"),
    **dict.fromkeys(("CorruptFileError", "WrongDatasetError"), "idx"),
    **dict.fromkeys(("ImageRecords", "ImageRecordsError", "write_image_records"), "records"),
    **dict.fromkeys(("DeviceLoader", "Gather", "Loader"), "loader"),
    **dict.fromkeys(("make_blobs", "make_circles", "make_linear", "make_spirals", "train_test_split"), "synthetic"),
    **{module: module for module in ("arrays", "augment", "batches", "course_files", "datasets", "download", "fingerprint", "folder", "idx",
                                     "loader", "order", "reading", "records", "stream", "synthetic")},
}

__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
