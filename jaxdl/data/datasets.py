"""Named datasets (MNIST, Fashion-MNIST, any tfds image classification set) on the device.

The course's computer-vision chapter starts with
``datasets.FashionMNIST(root="data", train=True, download=True, transform=ToTensor())``.
Here :func:`load_dataset` does that job and returns both splits already on the
device as NHWC float32 in [0, 1] with int32 labels and the class names.

Where the data comes from:

1. **A folder you name** -- ``data_dir``, or the environment variable ``JAXDL_DATA_DIR``
   -- holding the four official IDX files of the dataset (directly, or in a sub-folder
   named after it): they are read with NumPy and checked against the published
   checksums. A folder that holds a prepared tensorflow-datasets copy instead is read
   through tfds. A named folder that holds neither is an error that lists what was
   looked for: a misspelt path fails at once, it never starts a download.
2. **MNIST and Fashion-MNIST, no folder named**: the official files in jaxdl's download
   folder (``~/.cache/jaxdl/datasets``, or ``$JAXDL_DOWNLOAD_DIR``), downloaded there on
   first use from their published locations, or from ``$JAXDL_DATASET_MIRROR``, and
   checked (:mod:`jaxdl.data.download`). No TensorFlow is needed.
3. **Any other tfds dataset, no folder named**: tensorflow-datasets' own directory
   (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``). ``tfds.data_source`` reads a
   prepared dataset without TensorFlow; preparing one (the first use) needs it, from
   the ``prepare`` extra.

Downloads fail fast: a server that cannot be reached is an error within seconds, not
after minutes of retries; ``JAXDL_OFFLINE=1`` (or ``offline=True``) forbids them
altogether, and a failed download leaves nothing behind that a later run would trust.
:func:`prepare_from_official_files` prepares the tfds copy from the official files
with no network. All ways give identical arrays; everything after this module sees
one kind of object.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import socket
import urllib.parse

import numpy as np

from jaxdl.data import course_files
from jaxdl.data import download as downloads
from jaxdl.data.download import OFFLINE_ENV, offline_requested  # noqa: F401 -- part of this module's interface
from jaxdl.data import idx
from jaxdl.data.arrays import ArrayDataset, ImageClassificationData  # noqa: F401 -- part of this module's interface
from jaxdl.data.folder import unit_float
from jaxdl.errors import ArgumentError, JaxdlError
from jaxdl.support.labels import LabelError, check_labels  # noqa: F401 -- part of this module's interface
from jaxdl.support.project import DISTRIBUTION
from jaxdl.support.files import atomic_path

DATA_DIR_ENV = "JAXDL_DATA_DIR"
INSTALL_PREPARE = f'pip install "{DISTRIBUTION}[prepare]"'
"""What installs TensorFlow beside jaxdl, for preparing tensorflow-datasets copies."""

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
"""Class names of the datasets that can be read from their official files."""


class DatasetUnavailableError(JaxdlError, RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


def default_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """``data_dir`` if given, else ``$JAXDL_DATA_DIR`` if set, else ``None`` (tfds's default)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    return pathlib.Path(chosen).expanduser() if chosen else None


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 download: bool = True, offline: bool | None = None) -> ImageClassificationData:
    """Load both splits of dataset ``name`` onto the device.

    ``load_dataset("fashion_mnist", "../shared/data")`` reads the official files from
    that folder (or a prepared tfds copy there); ``load_dataset("fashion_mnist")``
    reads them from jaxdl's download folder, downloading them on first use unless
    ``download=False`` or ``offline`` (default ``$JAXDL_OFFLINE``); any other tfds
    dataset goes through tensorflow-datasets' own directory. ``"pizza_steak_sushi"``
    (and ``"pizza_steak_sushi_20_percent"``) are chapter 04's own photos, fetched from
    the course's repository on first use, checked and unpacked
    (:mod:`jaxdl.data.course_files`; :func:`~jaxdl.data.course_files.course_image_folders`
    gives their folders) and read at 64x64. See the module docstring for the order, and
    the book's Data page (``docs/data.md``).
    """
    allowed = download and not offline_requested(offline)
    if name in course_files.IMAGE_FOLDERS:
        return _load_course_folders(name, allowed)
    root = default_data_dir(data_dir)
    if root is None:
        if name in idx.OFFICIAL_SHA256:
            return _load_downloaded(name, allowed)
        return _load_tfds(name, None, allowed)
    if not root.is_dir():
        given = "data_dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise DatasetUnavailableError(f"the data folder {root} ({given}) does not exist. "
                                      + _how_to_get(name, None, short=True))
    folder = idx.find_official_folder(root, name)
    if folder is not None:
        if name not in CLASS_NAMES:
            raise ArgumentError(f"{folder} holds IDX files, but jaxdl knows no class names for "
                             f"{name!r}; use one of {sorted(CLASS_NAMES)}")
        return _load_official(folder, name, f"official files in {folder}")
    if _tfds_prepared(name, root):
        return _load_tfds(name, root, download=False)
    looked = [str(root / name), str(root / name.replace("_", "-")), str(root)]
    raise DatasetUnavailableError(
        f"{root} does not hold dataset {name!r}: no official files ({', '.join(idx.OFFICIAL_FILES.values())}) "
        f"in {', '.join(dict.fromkeys(looked))}, and no prepared tensorflow-datasets copy in {root / name}. "
        + _how_to_get(name, root, short=True))


def _load_course_folders(name: str, allowed: bool) -> ImageClassificationData:
    """The course's own image folders (chapter 04's pizza, steak and sushi), fetched and
    checked on first use, read at the course's 64x64."""
    from jaxdl.data.folder import image_folder_splits

    try:
        train_dir, _ = course_files.course_image_folders(name, allowed=allowed)
    except downloads.DownloadError as err:
        raise DatasetUnavailableError(f"{name}: {err}. Where the course's repository cannot be reached, set "
                                      f"${downloads.MIRROR_ENV} to a server holding {name}/"
                                      f"{course_files.COURSE_FILES[name].name}") from err
    train, test = (folder.load() for folder in image_folder_splits(train_dir.parent, (64, 64)))
    return ImageClassificationData(train, test, name, f"the course's {course_files.COURSE_FILES[name].path}, "
                                   f"unpacked in {train_dir.parent}", reader="image folders")


def _load_official(folder: pathlib.Path, name: str, source: str, strict: bool = False) -> ImageClassificationData:
    arrays = idx.load_idx_folder(folder, name, strict=strict)
    splits = {s: ArrayDataset.from_uint8(arrays[f"{s}_images"], arrays[f"{s}_labels"], CLASS_NAMES[name],
                                         origin=f"the {s} split of {folder}") for s in ("train", "test")}
    return ImageClassificationData(splits["train"], splits["test"], name, source)


def _load_downloaded(name: str, allowed: bool) -> ImageClassificationData:
    """The official files of ``name`` from the download folder, fetched first if they
    are not all there (or not all the published content)."""
    folder = downloads.download_dir() / name
    try:
        return _load_official(folder, name, f"official files downloaded to {folder}", strict=True)
    except (idx.CorruptFileError, idx.WrongDatasetError):
        pass  # not there yet, or not whole: fetch what is missing
    if not allowed:
        raise DatasetUnavailableError(_how_to_get(
            name, folder, "the official files are not in the download folder, and downloads are off "
            "(download=False or $JAXDL_OFFLINE)"))
    try:
        downloads.fetch_official_files(name)
    except downloads.DownloadError as err:
        raise DatasetUnavailableError(_how_to_get(name, folder, str(err))) from err
    return _load_official(folder, name, f"official files downloaded to {folder}", strict=True)


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (tfds needs it to prepare a dataset, not to read one)."""
    return importlib.util.find_spec("tensorflow") is not None


def _require_tensorflow(what: str) -> None:
    if not tensorflow_installed():
        raise DatasetUnavailableError(
            f"{what} needs TensorFlow, which jaxdl's base install leaves out; install it with "
            f"{INSTALL_PREPARE} (in a checkout of jaxdl: pip install -e \".[prepare]\")")


def _tfds_builder(name: str, data_dir: pathlib.Path | None):
    import tensorflow_datasets as tfds

    try:
        known = set(tfds.list_builders(with_community_datasets=False)) | set(idx.OFFICIAL_SHA256)
    except Exception:  # noqa: BLE001 -- then tfds.builder below says what it can
        known = None
    if known is not None and name.split(":")[0].split("/")[0] not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        raise DatasetUnavailableError(
            f"there is no dataset {name!r} (in jaxdl or tensorflow-datasets)"
            + (f"; did you mean {' or '.join(map(repr, close))}?" if close else
               "; the course's are 'mnist' and 'fashion_mnist', and tensorflow-datasets lists the others"))
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises DatasetNotFoundError and friends
        if not tensorflow_installed():  # some tfds releases cannot describe a dataset without it
            _require_tensorflow(f"preparing tensorflow-datasets' {name} (this tensorflow-datasets cannot "
                                f"even describe it without TensorFlow: {err})")
        raise DatasetUnavailableError(f"tensorflow-datasets has no dataset {name!r}: {err}") from err


def _tfds_prepared(name: str, data_dir: pathlib.Path | None) -> bool:
    if data_dir is not None and not (data_dir / name).is_dir():
        return False  # not even a folder for it: no need to ask tfds
    builder = _tfds_builder(name, data_dir)
    return builder.is_prepared() if hasattr(builder, "is_prepared") else builder.data_path.exists()


def check_reachable(urls, timeout: float = 5.0) -> None:
    """Raise :class:`DatasetUnavailableError` unless the host of the first of ``urls``
    accepts a connection within ``timeout`` seconds: one quick try before tfds starts
    a download that it would otherwise retry for minutes on a machine without a network."""
    urls = list(urls)
    if not urls:
        return
    parsed = urllib.parse.urlsplit(urls[0])
    if not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise DatasetUnavailableError(f"cannot reach {parsed.hostname} to download ({err})") from err


def _read_records(source, chunk: int = 4096) -> list:
    """Every record of a tfds data source, decoded; batched reads where the source has
    them (several times faster than one by one)."""
    from tqdm.auto import tqdm

    records = []
    with tqdm(total=len(source), desc="reading", unit="ex", leave=False, disable=len(source) < chunk) as bar:
        for start in range(0, len(source), chunk):
            keys = list(range(start, min(start + chunk, len(source))))
            try:
                records += source.__getitems__(keys)
            except (AttributeError, TypeError):  # e.g. tfds's mock sources
                records += [source[k] for k in keys]
            bar.update(len(keys))
    return records


def _tfds_split_to_arrays(source) -> tuple[np.ndarray, np.ndarray]:
    records = _read_records(source)
    images = np.stack([np.asarray(r["image"]) for r in records])
    labels = np.asarray([r["label"] for r in records])
    if images.ndim == 3:
        images = images[..., None]
    return images, labels


def _load_tfds(name: str, data_dir: pathlib.Path | None, download: bool) -> ImageClassificationData:
    builder = _tfds_builder(name, data_dir)
    sources = _tfds_sources(name, ("train", "test"), data_dir, download, builder)
    class_names = tuple(builder.info.features["label"].names)
    splits = {s: ArrayDataset.from_uint8(*_tfds_split_to_arrays(source), class_names,
                                         origin=f"the {s} split of tensorflow-datasets' {name}")
              for s, source in sources.items()}
    return ImageClassificationData(splits["train"], splits["test"], name,
                                   f"tensorflow-datasets in {builder.data_dir}", reader="tensorflow-datasets")


def _tfds_sources(name: str, splits, data_dir: pathlib.Path | None, download: bool, builder=None) -> dict:
    """``tfds.data_source`` of each split: what is prepared is read; otherwise, when
    allowed, a download -- tried against the network first, and cleaned up when it fails."""
    import tensorflow_datasets as tfds

    try:
        return {s: tfds.data_source(name, split=s, data_dir=data_dir, download=False) for s in splits}
    except Exception as err:
        if not download:
            reason = (f"it is not prepared ({type(err).__name__}), and downloads are off "
                      "(download=False or $JAXDL_OFFLINE)")
            raise DatasetUnavailableError(_how_to_get(name, data_dir, reason)) from err
    _require_tensorflow(f"preparing tensorflow-datasets' {name} (it is not prepared in "
                        f"{data_dir or 'tfds directory'})")
    builder = builder or _tfds_builder(name, data_dir)
    try:
        check_reachable(getattr(builder, "url_infos", None) or ())
    except DatasetUnavailableError as err:
        raise DatasetUnavailableError(_how_to_get(name, data_dir, str(err))) from None
    downloads = pathlib.Path(builder.data_dir_root) / "downloads"
    before = set(downloads.iterdir()) if downloads.is_dir() else set()
    try:
        return {s: tfds.data_source(name, split=s, data_dir=data_dir, download=True) for s in splits}
    except Exception as err:
        # leave no partial download for a later run to trip over
        for entry in (set(downloads.iterdir()) if downloads.is_dir() else set()) - before:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        raise DatasetUnavailableError(_how_to_get(name, data_dir, f"{type(err).__name__}: {err}")) from err


class TfdsImageSource:
    """A tfds image-classification split as a random-access source of ``(image, label)``
    pairs -- float32 HWC in [0, 1] and an int -- for datasets too large to hold on the
    device: ``make_batches(TfdsImageSource("imagenette", "train"), 64, key)`` streams
    it from the host through a Grain pipeline, with the same batches interface."""

    def __init__(self, name: str, split: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True, offline: bool | None = None):
        root = default_data_dir(data_dir)
        if root is not None and not _tfds_prepared(name, root):
            raise DatasetUnavailableError(f"{root} holds no prepared tensorflow-datasets copy of {name!r} "
                                          f"(looked for {root / name}). " + _how_to_get(name, root, short=True))
        builder = _tfds_builder(name, root)
        download = download and root is None and not offline_requested(offline)
        self.source = _tfds_sources(name, (split,), root, download, builder)[split]
        self.class_names = tuple(builder.info.features["label"].names)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image, label = self.read_uint8(index)
        return unit_float(image), label

    def read_uint8(self, index: int) -> tuple[np.ndarray, int]:
        """Example ``index`` as tfds stores it: uint8 HWC in 0-255, and its label
        (:class:`~jaxdl.data.reading.ByteImageSource`)."""
        record = self.source[index]
        image = np.asarray(record["image"], np.uint8)
        return (image[..., None] if image.ndim == 2 else image), int(record["label"])


def _how_to_get(name: str, data_dir, reason: str = "", short: bool = False) -> str:
    """What a user can do to get dataset ``name``: the message of every
    :class:`DatasetUnavailableError`."""
    if name in idx.OFFICIAL_SHA256:
        options = (
            f"To get it: with a network, load_dataset({name!r}) with no data folder (and "
            f"{DATA_DIR_ENV} unset) downloads the official files into {downloads.download_dir()} "
            f"(${downloads.DOWNLOAD_DIR_ENV}), from ${downloads.MIRROR_ENV} if set; offline, put the four "
            f"official *-ubyte.gz files in a folder and pass data_dir=FOLDER (--data-dir FOLDER, or set "
            f"{DATA_DIR_ENV}=FOLDER).")
    else:
        options = (
            f"To get it: with a network and TensorFlow ({INSTALL_PREPARE}), load_dataset({name!r}) with "
            f"no data folder prepares it in tensorflow-datasets' directory; or pass data_dir=FOLDER "
            f"holding a prepared tensorflow-datasets copy.")
    if short:
        return options
    where = data_dir or "tensorflow-datasets' directory (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    return f"cannot load dataset {name!r} from {where}: {reason}. {options}"


def prepare_from_official_files(name: str, folder: str | os.PathLike,
                                data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Prepare the tensorflow-datasets copy of ``name`` from its official files, offline.

    tfds keeps what it downloads in ``<data_dir>/downloads`` under a name derived from
    the URL and the registered checksum, and uses a file found there without fetching
    or re-hashing it. So the official files are first checked against the published
    checksums (a truncated file, another dataset's files, any other content are refused
    with :class:`~jaxdl.data.idx.WrongDatasetError` or ``CorruptFileError``), then
    copied there under those names -- each through a temporary file and an atomic
    rename, replacing a cached file whose content differs -- and tfds prepares the
    dataset as if it had downloaded them. tfds
    itself writes the prepared dataset to a temporary folder that it renames only when
    complete, so an interrupted run leaves nothing that a later run would trust.
    Needs TensorFlow. Returns the prepared dataset's directory.
    """
    folder = pathlib.Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--from folder {folder} does not exist")
    found = idx.find_official_folder(folder, name)
    if found is None:
        raise FileNotFoundError(f"no official {name} files ({', '.join(idx.OFFICIAL_FILES.values())}) "
                                f"in {folder}")
    # refuse a truncated file, another dataset's files or any unpublished content before tfds sees it
    idx.load_idx_folder(found, name, strict=True)
    _require_tensorflow(f"preparing tensorflow-datasets' {name}")
    from tensorflow_datasets.core.download import resource as tfds_resource

    builder = _tfds_builder(name, None if data_dir is None else pathlib.Path(data_dir).expanduser())
    downloads = pathlib.Path(builder.data_dir_root) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for url, info in builder.url_infos.items():
        target = downloads / tfds_resource.get_dl_fname(url, info.checksum)
        source = found / info.filename
        if not target.exists() or _content_sha256(target) != _content_sha256(source):
            # a file tfds would trust blindly: it must be the published content
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        with atomic_path(target.with_suffix(target.suffix + ".INFO")) as tmp:
            tmp.write_text(json.dumps({"urls": [url], "original_fname": info.filename}))
    builder.download_and_prepare(file_format="array_record")
    return pathlib.Path(builder.data_dir)


def _content_sha256(path: pathlib.Path) -> str | None:
    """SHA-256 of a file's decompressed content; ``None`` if it does not read."""
    try:
        return hashlib.sha256(idx.read_content(path)).hexdigest()
    except idx.CorruptFileError:
        return None
