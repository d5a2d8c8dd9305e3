"""Named datasets (MNIST, Fashion-MNIST, any tfds image classification set) on the device.

The course's computer-vision chapter starts with
``datasets.FashionMNIST(root="data", train=True, download=True, transform=ToTensor())``.
Here :func:`load_dataset` does that job and returns both splits already on the
device as NHWC float32 in [0, 1] with int32 labels and the class names.

Where the data comes from, in this order:

1. **The official files** (offline, no TensorFlow): when ``data_dir`` -- or the
   environment variable ``JAXDL_DATA_DIR`` -- holds the four official IDX files of the
   dataset (directly, or in a sub-folder named after it), they are read with NumPy.
2. **tensorflow-datasets**: otherwise ``tfds.data_source(name, data_dir=data_dir)``
   reads the prepared dataset (no TensorFlow at read time), downloading and preparing
   it on first use when ``download=True`` (preparation needs TensorFlow, which the
   set-up installs). :func:`prepare_from_official_files` prepares the tfds copy from
   the official files with no network.

Both give identical arrays; everything after this module sees one kind of object.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data import idx

DATA_DIR_ENV = "JAXDL_DATA_DIR"

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
"""Class names of the datasets that can be read from their official files."""


class DatasetUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """A labelled image dataset held whole in memory (on the device, by default).

    ``images``: ``(N, H, W, C)`` float32 in [0, 1]; ``labels``: ``(N,)`` int32.
    Like the course's ``train_data``: ``len(ds)``, ``ds.classes``, ``ds.class_to_idx``.
    """

    images: jax.Array
    labels: jax.Array
    class_names: tuple[str, ...]

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(f"images must be NHWC, got shape {tuple(self.images.shape)}")
        if self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")

    @classmethod
    def from_uint8(cls, images: np.ndarray, labels: np.ndarray, class_names) -> ArrayDataset:
        """Put uint8 images on the device (4x fewer bytes to move) and scale them there:
        the course's ``ToTensor()``."""
        images = jnp.asarray(images, jnp.uint8).astype(jnp.float32) / 255.0
        return cls(images, jnp.asarray(labels, jnp.int32), tuple(class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.class_names)}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def take(self, n: int) -> ArrayDataset:
        """The first ``n`` examples (for smoke runs and tests)."""
        return ArrayDataset(self.images[:n], self.labels[:n], self.class_names)


@dataclasses.dataclass(frozen=True)
class ImageClassificationData:
    """Both splits of a dataset and where they came from."""

    train: ArrayDataset
    test: ArrayDataset
    name: str
    source: str

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names


def default_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path | None:
    """``data_dir`` if given, else ``$JAXDL_DATA_DIR`` if set, else ``None`` (tfds's default)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    return pathlib.Path(chosen).expanduser() if chosen else None


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 download: bool = True) -> ImageClassificationData:
    """Load both splits of dataset ``name`` onto the device.

    ``load_dataset("fashion_mnist", "../shared/data")`` reads the official files;
    ``load_dataset("fashion_mnist")`` goes through tensorflow-datasets. See the
    module docstring for the order, and the README's "Data" section.
    """
    root = default_data_dir(data_dir)
    folder = idx.find_official_folder(root, name) if root is not None else None
    if folder is not None:
        if name not in CLASS_NAMES:
            raise ValueError(f"{folder} holds IDX files, but jaxdl knows no class names for "
                             f"{name!r}; use one of {sorted(CLASS_NAMES)}")
        arrays = idx.load_idx_folder(folder)
        splits = {s: ArrayDataset.from_uint8(arrays[f"{s}_images"], arrays[f"{s}_labels"],
                                             CLASS_NAMES[name]) for s in ("train", "test")}
        return ImageClassificationData(splits["train"], splits["test"], name, f"official files in {folder}")
    return _load_tfds(name, root, download)


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
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises DatasetNotFoundError and friends
        raise DatasetUnavailableError(f"tensorflow-datasets has no dataset {name!r}: {err}") from err
    prepared = builder.is_prepared() if hasattr(builder, "is_prepared") else builder.data_path.exists()
    if not prepared and not download:
        raise DatasetUnavailableError(_how_to_get(name, data_dir, "it is not prepared and download=False"))
    try:
        sources = {s: tfds.data_source(name, split=s, data_dir=data_dir, download=download)
                   for s in ("train", "test")}
    except Exception as err:
        raise DatasetUnavailableError(_how_to_get(name, data_dir, f"{type(err).__name__}: {err}")) from err
    class_names = tuple(builder.info.features["label"].names)
    splits = {s: ArrayDataset.from_uint8(*_tfds_split_to_arrays(source), class_names)
              for s, source in sources.items()}
    return ImageClassificationData(splits["train"], splits["test"], name,
                                   f"tensorflow-datasets in {builder.data_dir}")


class TfdsImageSource:
    """A tfds image-classification split as a random-access source of ``(image, label)``
    pairs -- float32 HWC in [0, 1] and an int -- for datasets too large to hold on the
    device: ``make_batches(TfdsImageSource("imagenette", "train"), 64, key)`` streams
    it from the host in background threads, with the same batches interface."""

    def __init__(self, name: str, split: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True):
        import tensorflow_datasets as tfds

        try:
            self.source = tfds.data_source(name, split=split, data_dir=default_data_dir(data_dir),
                                           download=download)
            self.class_names = tuple(tfds.builder(name, data_dir=default_data_dir(data_dir))
                                     .info.features["label"].names)
        except Exception as err:
            raise DatasetUnavailableError(_how_to_get(name, data_dir, f"{type(err).__name__}: {err}")) from err

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        record = self.source[index]
        image = np.asarray(record["image"], np.float32) / 255.0
        return (image[..., None] if image.ndim == 2 else image), int(record["label"])


def _how_to_get(name: str, data_dir, reason: str) -> str:
    where = data_dir or "tfds's default data directory (~/tensorflow_datasets)"
    return (
        f"cannot load dataset {name!r} from {where}: {reason}.\n"
        "  - with a network: load_dataset(name) downloads and prepares it (needs tensorflow);\n"
        f"  - offline, with the four official *-ubyte.gz files in a folder: pass data_dir=FOLDER "
        f"(or set {DATA_DIR_ENV}=FOLDER), or prepare the tfds copy with\n"
        f"    jaxdl data prepare {name} --from FOLDER"
    )


def prepare_from_official_files(name: str, folder: str | os.PathLike,
                                data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Prepare the tensorflow-datasets copy of ``name`` from its official files, offline.

    tfds keeps what it downloads in ``<data_dir>/downloads`` under a name derived from
    the URL and the registered checksum, and uses a file found there without fetching
    or re-hashing it. So the official files are first checked (their IDX contents must
    read), then copied there under those names -- each through a temporary file and an
    atomic rename -- and tfds prepares the dataset as if it had downloaded them. tfds
    itself writes the prepared dataset to a temporary folder that it renames only when
    complete, so an interrupted run leaves nothing that a later run would trust.
    Needs TensorFlow. Returns the prepared dataset's directory.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import resource as tfds_resource

    folder = pathlib.Path(folder).expanduser()
    found = idx.find_official_folder(folder, name)
    if found is None:
        raise FileNotFoundError(f"no official {name} files ({', '.join(idx.OFFICIAL_FILES.values())}) "
                                f"in {folder}")
    idx.load_idx_folder(found)  # refuse a truncated or corrupt file before tfds sees it
    builder = tfds.builder(name, data_dir=data_dir)
    downloads = pathlib.Path(builder.data_dir_root) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for url, info in builder.url_infos.items():
        target = downloads / tfds_resource.get_dl_fname(url, info.checksum)
        if not target.exists():
            with tempfile.NamedTemporaryFile(dir=downloads, delete=False, suffix=".tmp") as tmp:
                with open(found / info.filename, "rb") as src:
                    shutil.copyfileobj(src, tmp)
            os.replace(tmp.name, target)
        target.with_suffix(target.suffix + ".INFO").write_text(
            json.dumps({"urls": [url], "original_fname": info.filename}))
    builder.download_and_prepare(file_format="array_record")
    return pathlib.Path(builder.data_dir)
