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
import hashlib
import pathlib
import warnings
import zlib

import numpy as np

from jaxdl.errors import JaxdlError

OFFICIAL_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
"""The four files of an MNIST-style dataset, under their official names."""

OFFICIAL_SHA256 = {
    "mnist": {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
"""SHA-256 of the *decompressed* content of each published file. The content, not the
``.gz`` bytes: the same data re-compressed (Debian's package, a ``gzip -6`` copy) has
other bytes but the same content. Taken from files whose content has the MD5 sums
published with the datasets."""


OFFICIAL_SIZES = {"train_images": 16 + 60000 * 28 * 28, "train_labels": 8 + 60000,
                  "test_images": 16 + 10000 * 28 * 28, "test_labels": 8 + 10000}
"""The size in bytes of each official file's decompressed content (both datasets)."""


class CorruptFileError(JaxdlError, ValueError):
    """An IDX file that cannot be read as what it claims to be."""


class WrongDatasetError(JaxdlError, ValueError):
    """Official files that are not the dataset they were asked for."""


def read_idx(path: str | pathlib.Path) -> np.ndarray:
    """Read one (optionally gzip-compressed) IDX file of uint8 into an array.

    Raises :class:`CorruptFileError` naming the file when it is truncated, not gzip,
    or its header does not describe its contents.
    """
    path = pathlib.Path(path)
    return parse_idx(read_content(path), path)


MAX_IDX_BYTES = 1 << 30
"""The most data an IDX file may declare (1 GiB; MNIST's training images are 45 MiB):
a file that declares more, or decompresses to more than it declares, is refused before
it fills the memory."""


def read_content(path: str | pathlib.Path, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """The bytes of an IDX file, decompressed if it ends in ``.gz``: read as a stream,
    never more than its header declares (at most ``max_bytes``) plus one byte, so a
    file that would decompress to gigabytes is refused without reading it all."""
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read(4)
            if len(data) == 4 and data[:2] == b"\0\0":
                data += f.read(4 * data[3])
                shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=(len(data) - 4) // 4, offset=4))
                size = int(np.prod(shape, dtype=np.int64))
                if size > max_bytes:
                    raise CorruptFileError(f"{path} declares {size:,} bytes of data (shape {shape}), more than the "
                                           f"{max_bytes:,} jaxdl reads from one IDX file; is it an MNIST-style file?")
                data += _read_up_to(f, size + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptFileError(
            f"{path} is not a readable gzip file ({err}); it is probably truncated or "
            "corrupt -- download it again"
        ) from err
    return data


def _read_up_to(f, n: int) -> bytes:
    chunks = []
    while n > 0 and (chunk := f.read(min(n, 1 << 24))):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def parse_idx(data: bytes, path: str | pathlib.Path) -> np.ndarray:
    """The array an IDX file's content describes (``path`` names it in errors)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptFileError(f"{path} does not start with an IDX header (two zero bytes)")
    if data[2] != 0x08:
        raise CorruptFileError(f"{path} holds IDX type 0x{data[2]:02x}; only uint8 (0x08) is supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{path} is truncated inside its header")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header > expected:
        raise CorruptFileError(f"{path} holds more than the {expected:,} bytes of data its header declares "
                               f"(shape {shape}); it is corrupt -- download it again")
    if len(data) - header < expected:
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
                "copy the missing files there (the book's Data page, docs/data.md, names them)"
            )
    return None


def identify(contents: dict[str, bytes]) -> dict[str, str | None]:
    """Which published dataset each file's content is (``None``: none of them)."""
    digests = {key: hashlib.sha256(content).hexdigest() for key, content in contents.items()}
    return {key: next((name for name, files in OFFICIAL_SHA256.items() if files.get(key) == digest), None)
            for key, digest in digests.items()}


def check_dataset(folder: pathlib.Path, name: str, contents: dict[str, bytes], strict: bool) -> None:
    """Refuse files of another published dataset than ``name``; files of no published
    dataset are refused when ``strict`` and read with a warning otherwise."""
    if name not in OFFICIAL_SHA256:
        return
    found = identify(contents)
    others = {key: other for key, other in found.items() if other not in (None, name)}
    if others:
        described = ", ".join(f"{OFFICIAL_FILES[key]} is {other}'s" for key, other in others.items())
        raise WrongDatasetError(f"{folder} does not hold the official {name} files: {described}; "
                                f"point to the folder of {name}'s own files")
    unknown = [OFFICIAL_FILES[key] for key, other in found.items() if other is None]
    if unknown:
        message = (f"{', '.join(str(folder / f) for f in unknown)}: content differs from the published "
                   f"{name} files (SHA-256 of the decompressed content)")
        if strict:
            raise WrongDatasetError(message + "; download the official files again")
        warnings.warn(message + "; reading them anyway", stacklevel=3)


def load_idx_folder(folder: str | pathlib.Path, name: str | None = None, *,
                    strict: bool = False) -> dict[str, np.ndarray]:
    """The four official files of ``folder`` as arrays: images ``(N, 28, 28, 1)`` uint8
    and labels ``(N,)`` uint8, keyed like :data:`OFFICIAL_FILES`.

    With ``name`` (``"mnist"``, ``"fashion_mnist"``), the contents are checked against
    the published checksums (:data:`OFFICIAL_SHA256`): another dataset's files raise
    :class:`WrongDatasetError`; unknown contents too when ``strict``, else a warning.
    """
    folder = pathlib.Path(folder)
    contents = {key: read_content(folder / fname) for key, fname in OFFICIAL_FILES.items()}
    arrays = {key: parse_idx(contents[key], folder / OFFICIAL_FILES[key]) for key in OFFICIAL_FILES}
    if name is not None:  # after parsing: a truncated file is reported as truncated
        check_dataset(folder, name, contents, strict)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptFileError(
                f"{folder}: {split} images have shape {images.shape} and labels {labels.shape}; "
                "expected (N, H, W) images and N labels"
            )
        if len(images) == 0 or 0 in images.shape:
            raise CorruptFileError(f"{folder}: the {split} images have shape {images.shape}: no example to "
                                   "learn from or test on")
        arrays[f"{split}_images"] = images[..., None]  # NHWC with one channel
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise CorruptFileError(f"{folder}: the training images are {'x'.join(map(str, arrays['train_images'].shape[1:3]))} "
                               f"but the test images {'x'.join(map(str, arrays['test_images'].shape[1:3]))}; "
                               "a model takes one image size: use the files of one dataset")
    return arrays
