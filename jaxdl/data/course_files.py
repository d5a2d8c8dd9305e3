"""The course's own files, fetched on first use and checked: the pizza, steak and sushi
photos of chapter 04 and the photo it predicts on.

The course's notebook downloads ``data/pizza_steak_sushi.zip`` from the course's public
repository and unpacks it into ``train/`` and ``test/`` image folders, one folder a class.
The course publishes no checksum for it, but its git repository names every file's
content: the file's *git object id*, the SHA-1 of ``b"blob <size>\\0" + content``
(:func:`git_blob_id`). jaxdl keeps those ids (:data:`COURSE_FILES`, read from the course
repository's tree) and keeps a download only if it has that id -- the very bytes the
course committed, of the very size.

A zip is unpacked only after every member has been checked: no absolute path, no ``..``,
no symbolic link, no more than :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED_BYTES`
bytes in all (counted as they are written, not taken from the zip's own word). It is
unpacked into a temporary folder beside the target and renamed into place whole.

Where the files come from: ``$JAXDL_DATASET_MIRROR/<dataset>/<file>`` if the mirror is
set (as for MNIST), else :data:`COURSE_URL`. Where they go: jaxdl's download folder
(:func:`jaxdl.data.download.download_dir`), under ``<dataset>/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import stat
import tempfile
import zipfile

from jaxdl.data import download as downloads
from jaxdl.errors import ArgumentError, JaxdlError

COURSE_URL = "https://github.com/mrdbourke/pytorch-deep-learning/raw/main/"
"""The course repository's files, by their path in it (what the course's notebooks fetch)."""

MAX_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 2 * 2**30


@dataclasses.dataclass(frozen=True)
class CourseFile:
    """One file of the course's repository: its path there, its git object id, and the
    most bytes a download of it may take before it is given up."""

    path: str
    blob_id: str
    most: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


COURSE_FILES = {
    "pizza_steak_sushi": CourseFile("data/pizza_steak_sushi.zip", "65f3915a380f5efd456a6a5750f0365350de8dd0",
                                    256 * 2**20),
    "pizza_steak_sushi_20_percent": CourseFile("data/pizza_steak_sushi_20_percent.zip",
                                               "dfc8ad2ae9415304d69cc6a0ee443c340cb29049", 256 * 2**20),
    "04-pizza-dad.jpeg": CourseFile("data/04-pizza-dad.jpeg", "2c225f0456d7c432820fc672198b544e5af1353a",
                                    2_874_848),
}
"""The course's files jaxdl fetches: the two image-folder zips of chapter 04 (all the
images, and the 20 % the chapter's later experiments use) and the photo it predicts on."""

IMAGE_FOLDERS = ("pizza_steak_sushi", "pizza_steak_sushi_20_percent")


class UnsafeArchiveError(JaxdlError, ValueError):
    """A zip that would write outside its folder, make a link, or unpack to too much."""


def git_blob_id(path: str | os.PathLike) -> str:
    """The git object id of a file's content: SHA-1 of ``b"blob <size>\\0"`` and the bytes,
    what ``git hash-object FILE`` prints."""
    path = pathlib.Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _urls(dataset: str, file: CourseFile) -> dict[str, downloads.Expected]:
    def check(path: pathlib.Path) -> str | None:
        found = git_blob_id(path)
        if found != file.blob_id:
            return (f"its content (git object {found[:12]}) is not the course's {file.path} "
                    f"(git object {file.blob_id[:12]}), so it was not kept")
        return None

    expected = downloads.Expected(file.most, check)
    mirror = os.environ.get(downloads.MIRROR_ENV, "").strip()
    url = f"{mirror.rstrip('/')}/{dataset}/{file.name}" if mirror else COURSE_URL + file.path
    return {url: expected}


def fetch_course_file(key: str, root: str | os.PathLike | None = None, *, allowed: bool | None = None,
                      timeout: float = 15.0, deadline: float = 600.0, progress: bool = True) -> pathlib.Path:
    """The course's file ``key`` (of :data:`COURSE_FILES`) in the download folder, fetched
    and checked first if it is not there with its git object id. ``allowed=False`` (default:
    off when ``$JAXDL_OFFLINE`` is set) raises :class:`~jaxdl.data.download.DownloadError`
    instead of fetching."""
    if key not in COURSE_FILES:
        raise ArgumentError(f"the course's files jaxdl fetches are {sorted(COURSE_FILES)}, not {key!r}")
    file = COURSE_FILES[key]
    dataset = key if key in IMAGE_FOLDERS else "course_files"
    target = downloads.download_dir(root) / dataset / file.name
    if target.is_file() and git_blob_id(target) == file.blob_id:
        return target
    if allowed is None:
        allowed = not downloads.offline_requested()
    if not allowed:
        raise downloads.DownloadError(f"the course's {file.path} is not in {target.parent}, and downloads are off "
                                      "(download=False or $JAXDL_OFFLINE)")
    failures = downloads.fetch_checked_from_any(_urls(dataset, file), target, timeout, deadline, progress=progress)
    if failures:
        raise downloads.DownloadError(f"could not download the course's {file.path}: " + "; ".join(failures))
    return target


def _checked_members(archive: zipfile.ZipFile, where: str) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{where} holds {len(members):,} members, more than the {MAX_MEMBERS:,} jaxdl unpacks")
    for member in members:
        name = member.filename
        parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
            raise UnsafeArchiveError(f"{where} holds {name!r}, a path outside the folder it unpacks into")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UnsafeArchiveError(f"{where} holds {name!r}, a symbolic link; jaxdl unpacks files and folders only")
    return members


def unpack_zip(path: str | os.PathLike, target: str | os.PathLike,
               max_bytes: int = MAX_UNPACKED_BYTES) -> pathlib.Path:
    """Unpack the zip ``path`` into the folder ``target`` (made whole, by one rename), after
    :func:`_checked_members`; more than ``max_bytes`` written in all stops it, leaving
    nothing behind. Raises :class:`UnsafeArchiveError` or, for a file that is not a whole
    zip, :class:`zipfile.BadZipFile`."""
    path, target = pathlib.Path(path), pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(path) as archive:
            written = 0
            for member in _checked_members(archive, str(path)):
                destination = scratch.joinpath(*pathlib.PurePosixPath(member.filename.replace("\\", "/")).parts)
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(destination, "wb") as out:
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UnsafeArchiveError(f"{path} unpacks to more than {max_bytes:,} bytes; "
                                                     "jaxdl stopped and kept nothing")
                        out.write(chunk)
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def course_image_folders(name: str = "pizza_steak_sushi", root: str | os.PathLike | None = None, *,
                         allowed: bool | None = None, timeout: float = 15.0) -> tuple[pathlib.Path, pathlib.Path]:
    """``(train_dir, test_dir)`` of the course's image-folder dataset ``name``
    (``"pizza_steak_sushi"`` or ``"pizza_steak_sushi_20_percent"``), fetched, checked and
    unpacked on first use, as the course's ``train_dir`` and ``test_dir``."""
    if name not in IMAGE_FOLDERS:
        raise ArgumentError(f"the course's image folders are {', '.join(IMAGE_FOLDERS)}, not {name!r}")
    archive = fetch_course_file(name, root, allowed=allowed, timeout=timeout)
    folder = archive.parent / "images"
    marker = folder / ".unpacked_from"
    if not (marker.is_file() and marker.read_text() == COURSE_FILES[name].blob_id):
        unpack_zip(archive, folder)
        marker.write_text(COURSE_FILES[name].blob_id)
    train, test = folder / "train", folder / "test"
    if not (train.is_dir() and test.is_dir()):
        raise UnsafeArchiveError(f"{archive} did not unpack into train/ and test/ folders")
    return train, test
