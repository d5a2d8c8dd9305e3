"""Reading the official MNIST / Fashion-MNIST files (the IDX format) with NumPy.

The course gets its data from ``torchvision.datasets.FashionMNIST(download=True)``,
which downloads these same four gzip-compressed IDX files. Reading them directly is
the offline path: a machine with no network (CI, an air-gapped cluster) and a copy of
the official files gets exactly the arrays tensorflow-datasets would give.

IDX: a big-endian header -- two zero bytes, a type byte (0x08 = uint8), the number of
dimensions, one 4-byte size per dimension -- then the raw array in C order.
"""

from __future__ import annotations

import gzip
import pathlib
import zlib

import numpy as np

OFFICIAL_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
"""The four files of an MNIST-style dataset, under their official names."""


class CorruptFileError(ValueError):
    """An IDX file that cannot be read as what it claims to be."""


def read_idx(path: str | pathlib.Path) -> np.ndarray:
    """Read one (optionally gzip-compressed) IDX file of uint8 into an array.

    Raises :class:`CorruptFileError` naming the file when it is truncated, not gzip,
    or its header does not describe its contents.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptFileError(
            f"{path} is not a readable gzip file ({err}); it is probably truncated or "
            "corrupt -- download it again"
        ) from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptFileError(f"{path} does not start with an IDX header (two zero bytes)")
    if data[2] != 0x08:
        raise CorruptFileError(f"{path} holds IDX type 0x{data[2]:02x}; only uint8 (0x08) is supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{path} is truncated inside its header")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise CorruptFileError(
            f"{path} should hold {expected:,} bytes of data for shape {shape} but holds "
            f"{len(data) - header:,}; it is truncated or corrupt -- download it again"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def find_official_folder(data_dir: str | pathlib.Path, name: str) -> pathlib.Path | None:
    """Where the official files of dataset ``name`` lie under ``data_dir``, if anywhere.

    Looks in ``data_dir/<name>``, ``data_dir/<name with - for _>`` (Debian's
    ``/usr/share/datasets/fashion-mnist``) and ``data_dir`` itself. A folder that holds
    some of the four files but not all is an error that names the missing ones.
    """
    root = pathlib.Path(data_dir).expanduser()
    for folder in (root / name, root / name.replace("_", "-"), root):
        present = [f for f in OFFICIAL_FILES.values() if (folder / f).is_file()]
        if len(present) == len(OFFICIAL_FILES):
            return folder
        if present:
            missing = sorted(set(OFFICIAL_FILES.values()) - set(present))
            raise FileNotFoundError(
                f"{folder} holds some of the official {name} files but not {', '.join(missing)}; "
                "copy the missing files there (see README: 'Data')"
            )
    return None


def load_idx_folder(folder: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The four official files of ``folder`` as arrays: images ``(N, 28, 28, 1)`` uint8
    and labels ``(N,)`` uint8, keyed like :data:`OFFICIAL_FILES`."""
    folder = pathlib.Path(folder)
    arrays = {key: read_idx(folder / fname) for key, fname in OFFICIAL_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptFileError(
                f"{folder}: {split} images have shape {images.shape} and labels {labels.shape}; "
                "expected (N, H, W) images and N labels"
            )
        arrays[f"{split}_images"] = images[..., None]  # NHWC with one channel
    return arrays
