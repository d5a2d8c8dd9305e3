"""Image folders: the course's custom-datasets chapter (pizza, steak, sushi).

The course lays images out as ``root/<class_name>/<image>`` (with ``train/`` and
``test/`` beside each other), walks the tree with ``walk_through_dir``, and loads it
with ``torchvision.datasets.ImageFolder`` and ``transforms.Resize((64, 64))``.
:class:`ImageFolder` does the same: classes are the sorted sub-folder names, each
image is decoded with Pillow, converted to RGB and resized, and comes out as an
``(H, W, 3)`` float32 array in [0, 1] (NHWC once batched).
"""

from __future__ import annotations

import io
import os
import pathlib
import stat

import numpy as np
from PIL import Image

from jaxdl.data.arrays import ArrayDataset
from jaxdl.errors import ArgumentError, JaxdlError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_image_name(path: pathlib.Path) -> bool:
    """Whether ``path`` is named like an image that belongs to the dataset: an image
    extension, and not hidden (which leaves out macOS's ``._photo.jpg`` resource forks)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


class ImageFolderError(JaxdlError, ValueError):
    """An image folder whose classes cannot be trusted: an empty class folder, or
    splits with different classes."""


def walk_through_dir(dir_path: str | os.PathLike) -> list[tuple[str, int, int]]:
    """Print how many folders and images each folder under ``dir_path`` holds, as the
    course's ``walk_through_dir`` does, and return the ``(path, dirs, files)`` rows."""
    rows = []
    for dirpath, dirnames, filenames in sorted(os.walk(dir_path)):
        rows.append((dirpath, len(dirnames), len(filenames)))
        print(f"There are {len(dirnames)} directories and {len(filenames)} images in '{dirpath}'.")
    return rows


def find_classes(directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
    """Sorted class folder names of ``directory`` and their indices (the course's
    ``find_classes``). Raises ``FileNotFoundError`` when there is no class folder."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {directory} does not exist")
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(
            f"couldn't find any class folder in {directory}: expected {directory}/<class_name>/<image>"
        )
    return classes, {name: i for i, name in enumerate(classes)}


class ImageFolder:
    """``root/<class_name>/<image>`` as a random-access dataset of ``(image, label)``.

    ``image_size``: ``(height, width)`` every image is resized to (the course uses 64x64).
    A class folder without an image is refused with its name: it would still take a
    label, and every later class's label would differ from a split that has it.
    Hidden files (macOS's ``._photo.jpg``) and folders named like images are left out;
    any other file named like an image must be one (:class:`ImageFileError` names it).
    ``folder[i]`` gives a float32 ``(H, W, 3)`` array in [0, 1] and an int label;
    :meth:`load` reads all of them into an on-device :class:`ArrayDataset` (for folders
    that fit), and :func:`jaxdl.data.make_batches` streams them from the host otherwise.
    """

    def __init__(self, root: str | os.PathLike, image_size: tuple[int, int] = (64, 64)):
        self.root = pathlib.Path(root)
        self.image_size = check_image_size(image_size)
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples: list[tuple[pathlib.Path, int]] = [
            (path, self.class_to_idx[name])
            for name in self.classes
            for path in sorted((self.root / name).rglob("*"))
            if is_image_name(path) and not path.is_dir()  # a folder named like an image is still a folder
        ]
        if not self.samples:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}")
        counts = {name: 0 for name in self.classes}
        for _, label in self.samples:
            counts[self.classes[label]] += 1
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            raise ImageFolderError(f"class folder{'s' if len(empty) > 1 else ''} "
                             f"{', '.join(str(self.root / name) for name in empty)} of {self.root} "
                             f"hold{'' if len(empty) > 1 else 's'} no image ({', '.join(IMAGE_EXTENSIONS)}); "
                             "remove it or add its images")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, index: int) -> Image.Image:
        """The original image at ``index``, as Pillow opens it (the course's ``load_image``)."""
        return open_image(self.samples[index][0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        return read_image(path, self.image_size), label

    def read_uint8(self, index: int) -> tuple[np.ndarray, int]:
        """Image ``index`` resized, as uint8 ``(H, W, 3)`` in 0-255, and its label: what a
        loader moves to the device and scales there
        (:class:`~jaxdl.data.reading.ByteImageSource`)."""
        path, label = self.samples[index]
        return read_image_uint8(path, self.image_size), label

    def load(self):
        """Every image of the folder, resized, as an on-device ``ArrayDataset`` (scaled to
        [0, 1] there, as ``ArrayDataset.from_uint8`` does)."""
        check_memory_for(len(self), self.image_size, f"the images of {self.root}")
        images = np.stack([self.read_uint8(i)[0] for i in range(len(self))])
        return ArrayDataset.from_uint8(images, np.asarray(self.targets, np.int32), self.class_names,
                                       origin=f"the image folder {self.root}")


def image_folder_splits(root: str | os.PathLike, image_size: tuple[int, int] = (64, 64),
                        splits: tuple[str, ...] = ("train", "test")) -> tuple[ImageFolder, ...]:
    """``root/train`` and ``root/test`` (the course's layout) as :class:`ImageFolder` s,
    refused unless they have the same class folders: a class that one split lacks would
    shift the labels of every class after it."""
    root = pathlib.Path(root)
    folders = tuple(ImageFolder(root / split, image_size) for split in splits)
    first = folders[0]
    for folder in folders[1:]:
        if folder.classes != first.classes:
            only_first = sorted(set(first.classes) - set(folder.classes))
            only_this = sorted(set(folder.classes) - set(first.classes))
            raise ImageFolderError(
                f"{first.root} and {folder.root} must have the same class folders; only in "
                f"{first.root.name}: {', '.join(only_first) or '-'}; only in {folder.root.name}: "
                f"{', '.join(only_this) or '-'}")
    return folders


MAX_PIXELS = 89_478_485
"""The most pixels an image may have to be decoded (Pillow's own bomb limit: about
9459 x 9459, a 268 MB RGB array); larger files are refused before they are decoded."""


class ImageFileError(JaxdlError, ValueError):
    """An image file that cannot be used: not a regular file, not an image, cut short,
    too large, or of a pixel format with no fixed range. The message names the file."""


def open_image(path: str | os.PathLike) -> Image.Image:
    """Pillow's ``Image.open``, refusing what is not a regular image file (a FIFO or device
    would block the read for ever) or what is larger than :data:`MAX_PIXELS` -- found
    from the header, before anything is decoded -- with an error that names the file."""
    path = pathlib.Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        raise ImageFileError(f"cannot read image {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        raise ImageFileError(f"cannot read image {path}: it is {kind}")
    if info.st_size == 0:
        raise ImageFileError(f"cannot read image {path}: the file is empty (0 bytes)")
    return _opened(path, path)


def _opened(source, name) -> Image.Image:
    """Pillow's ``Image.open`` of ``source`` (a path or a file object): its header only,
    refused with an :class:`ImageFileError` naming ``name`` when it is no image or has
    more than :data:`MAX_PIXELS` pixels."""
    too_large = f"more than the {MAX_PIXELS:,} pixels jaxdl decodes; make a smaller copy of it"
    try:
        image = Image.open(source)  # reads the header only
    except Image.DecompressionBombError:  # twice Pillow's limit (below that, Pillow warns)
        raise ImageFileError(f"cannot read image {name}: it has {too_large}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"cannot read image {name}: {err}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageFileError(f"cannot read image {name}: it is {width} x {height} pixels, {too_large}")
    return image


def _as_rgb(image: Image.Image, path: pathlib.Path) -> Image.Image:
    """``image`` as 8-bit RGB, as the course's ``convert("RGB")`` -- except that 16-bit
    grey images (PNG, TIFF) are scaled to 8 bits instead of clipped to white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ImageFileError(f"cannot read image {path}: its 32-bit integer pixels are outside 0-65535, "
                                 "so they have no known brightness scale")
        grey = np.round(values * (255 / 65535)).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "F":
        raise ImageFileError(f"cannot read image {path}: its pixels are 32-bit floats, which have no fixed "
                             "brightness scale; save it as an 8- or 16-bit image")
    return image.convert("RGB")  # palette (P), grey (L, LA), RGBA, CMYK, 1-bit: Pillow maps them


def check_image_size(image_size) -> tuple[int, int]:
    """``image_size`` as ``(height, width)`` of positive ints with at most :data:`MAX_PIXELS`
    pixels, or an :class:`~jaxdl.errors.ArgumentError` that says what it may be."""
    try:
        height, width = (int(side) for side in image_size)
        whole = all(int(side) == side for side in image_size)
    except (TypeError, ValueError):
        height = width = whole = None
    if not whole or height < 1 or width < 1:
        raise ArgumentError(f"image_size must be (height, width), two whole numbers >= 1, got {image_size!r}")
    if height * width > MAX_PIXELS:
        raise ArgumentError(f"image_size {height}x{width} is {height * width:,} pixels an image, more than the "
                            f"{MAX_PIXELS:,} jaxdl decodes; the course uses 64x64")
    return height, width


def check_memory_for(count: int, image_size: tuple[int, int], what: str) -> None:
    """Raise :class:`ImageFolderError` if ``count`` RGB float32 images of ``image_size``
    would not fit in the memory free now: found before the first one is decoded."""
    height, width = check_image_size(image_size)
    needed, free = count * height * width * 3 * 4, _free_memory()
    if free is not None and needed > free:
        raise ImageFolderError(
            f"{count} images ({what}) at {height}x{width} need {needed / 2**30:.1f} GiB, and this machine has "
            f"{free / 2**30:.1f} GiB free; choose a smaller image size, or stream a folder from disk with "
            "make_batches(folder, batch_size)")


def _free_memory() -> int | None:
    """Bytes of memory free now, where the system says (Linux, macOS); else ``None``."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def read_image(path: str | os.PathLike, image_size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """One image file as RGB, resized to ``image_size`` (height, width): float32
    ``(H, W, 3)`` in [0, 1] -- the course's ``Resize`` + ``ToTensor``. Add a batch axis
    with ``[None]`` to predict on it (the course's "predict on a custom image").
    Raises :class:`ImageFileError`, naming the file, for anything that is not a whole
    image (see :func:`open_image`)."""
    return unit_float(read_image_uint8(path, image_size))


def unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (0-255) as float32 in [0, 1]: the course's ``ToTensor`` scaling, on the host."""
    scaled = pixels.astype(np.float32)
    scaled /= 255.0
    return scaled


def read_image_uint8(path: str | os.PathLike, image_size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """:func:`read_image` before the scaling: uint8 ``(H, W, 3)`` in 0-255."""
    path = pathlib.Path(path)
    image_size = check_image_size(image_size)
    with open_image(path) as image:
        return _resized_rgb(image, path, image_size)


def decode_image_uint8(encoded: bytes, image_size: tuple[int, int], name: str) -> np.ndarray:
    """An image file's bytes (a JPEG or PNG as stored), decoded as :func:`read_image_uint8`
    decodes a file; errors name ``name`` (where the bytes came from)."""
    image_size = check_image_size(image_size)
    with _opened(io.BytesIO(encoded), name) as image:
        return _resized_rgb(image, name, image_size)


def _resized_rgb(image: Image.Image, name, image_size: tuple[int, int]) -> np.ndarray:
    try:
        resized = _as_rgb(image, name).resize(image_size[::-1], Image.BILINEAR)
    except (OSError, SyntaxError, ValueError) as err:  # a truncated file fails only when decoded
        if isinstance(err, ImageFileError):
            raise
        raise ImageFileError(f"cannot decode image {name}: {err}") from None
    return np.asarray(resized)


def write_image_folder(images, labels, class_names, root: str | os.PathLike,
                       size: tuple[int, int] | None = None) -> pathlib.Path:
    """Write images (NHWC floats in [0, 1]) as ``root/<class_name>/<index>.png`` -- the
    layout :class:`ImageFolder` reads. ``size`` resizes them (height, width); grey
    images are saved as RGB, like the photos of the course's custom dataset."""
    root = pathlib.Path(root)
    images = np.asarray(images)
    for i, (image, label) in enumerate(zip(images, np.asarray(labels))):
        folder = root / class_names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
        if size is not None:
            picture = picture.resize(tuple(size)[::-1], Image.BILINEAR)
        picture.save(folder / f"{i:05d}.png")
    return root


def export_image_folder(dataset, root: str | os.PathLike, classes, per_class: dict[str, int],
                        size: tuple[int, int] | None = None) -> pathlib.Path:
    """Write the first ``per_class[split]`` examples of each of ``classes`` (indices) of an
    :class:`ImageClassificationData` as ``root/<split>/<class_name>/<n>.png``.

    Used to make a small photo-folder stand-in (the course's pizza/steak/sushi has 75
    training and 25 test images a class) from a dataset that is available offline.
    """
    root = pathlib.Path(root)
    classes = tuple(classes)
    names = [dataset.class_names[c] for c in classes]
    for split, n in per_class.items():
        ds = getattr(dataset, split)
        labels = np.asarray(ds.labels)
        chosen = np.concatenate([np.flatnonzero(labels == c)[:n] for c in classes])
        relabelled = np.array([classes.index(c) for c in labels[chosen]])
        write_image_folder(np.asarray(ds.images)[chosen], relabelled, names, root / split, size)
    return root
