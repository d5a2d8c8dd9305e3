"""Downloading the official MNIST / Fashion-MNIST files into a cache folder, checked.

The course's ``datasets.FashionMNIST(root="data", download=True)`` downloads the four
official IDX files and reads them. This module does the same without TensorFlow: each
file is fetched from its published location (or from a mirror you name), its
decompressed content is checked against the published checksum
(:data:`jaxdl.data.idx.OFFICIAL_SHA256`), and only then does it take its place in the
cache folder, in one rename. A download cut off half-way is tried again; a file whose
content is not the published one is never kept; a file already in the cache is checked
and not fetched again.

Where the files go: ``$JAXDL_DOWNLOAD_DIR/<dataset>`` if that is set, else
``~/.cache/jaxdl/datasets/<dataset>`` (``$XDG_CACHE_HOME`` is honoured). Where they
come from: ``$JAXDL_DATASET_MIRROR`` if set -- a base URL under which
``<dataset>/<file>`` is served, e.g. a copy on your own network -- else
:data:`OFFICIAL_URLS`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pathlib
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable

from jaxdl.data import idx
from jaxdl.errors import ArgumentError, JaxdlError
from jaxdl.support.files import atomic_path

DOWNLOAD_DIR_ENV = "JAXDL_DOWNLOAD_DIR"
MIRROR_ENV = "JAXDL_DATASET_MIRROR"
OFFLINE_ENV = "JAXDL_OFFLINE"

OFFICIAL_URLS = {
    # tensorflow-datasets' location first, then torchvision's
    "mnist": ("https://storage.googleapis.com/cvdf-datasets/mnist/",
              "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    # Zalando Research's own bucket, then the files in its repository
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
}
"""Published locations of each dataset's four files (base URLs, tried in order)."""


class DownloadError(JaxdlError, OSError):
    """No location gave a file whose content is the published one; the message says
    what each location answered."""


def offline_requested(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``$JAXDL_OFFLINE`` is set to 1/true/yes."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def download_dir(root: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache folder downloads go to: ``root``, else ``$JAXDL_DOWNLOAD_DIR``, else
    ``~/.cache/jaxdl/datasets``."""
    chosen = root if root is not None else os.environ.get(DOWNLOAD_DIR_ENV)
    if chosen:
        return pathlib.Path(chosen).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache).expanduser() / "jaxdl" / "datasets"


def locations(name: str) -> tuple[str, ...]:
    """The base URLs dataset ``name`` is fetched from: the mirror if one is set, else
    the published ones."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return (f"{mirror.rstrip('/')}/{name}/",)
    if name not in OFFICIAL_URLS:
        raise ArgumentError(f"jaxdl downloads only {sorted(OFFICIAL_URLS)} itself, not {name!r}")
    return OFFICIAL_URLS[name]


def is_published(path: pathlib.Path, name: str, key: str) -> bool:
    """Whether ``path`` holds the published content of file ``key`` of dataset ``name``."""
    try:
        content = idx.read_content(path)
    except (idx.CorruptFileError, FileNotFoundError):
        return False
    return hashlib.sha256(content).hexdigest() == idx.OFFICIAL_SHA256[name][key]


def missing_files(name: str, folder: pathlib.Path) -> list[str]:
    """Keys of the official files of ``name`` that ``folder`` lacks or holds with other content."""
    return [key for key, fname in idx.OFFICIAL_FILES.items() if not is_published(folder / fname, name, key)]


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a download must be to be kept: at most ``most`` bytes, and a file for which
    ``check(path)`` finds nothing wrong (it returns ``None``, or why the file is not the
    published one)."""

    most: int
    check: Callable[[pathlib.Path], str | None]


def _official_file(name: str, key: str, url: str) -> Expected:
    size = idx.OFFICIAL_SIZES[key]

    def check(path: pathlib.Path) -> str | None:
        if _content_digest(path, url.endswith(".gz"), size) != idx.OFFICIAL_SHA256[name][key]:
            return (f"the content differs from the published {name} file (SHA-256 of the decompressed content), "
                    "so it was not kept")
        return None

    # gzip never grows data by more than a few bytes in 32 KiB
    return Expected(size + size // 8 + (1 << 16), check)


def fetch_official_files(name: str, root: str | os.PathLike | None = None, *, timeout: float = 15.0,
                         deadline: float = 600.0, attempts: int = 2, progress: bool = True) -> pathlib.Path:
    """Make ``<download_dir(root)>/<name>`` hold the four published files of ``name``,
    fetching those it lacks; returns the folder.

    Each location is tried ``attempts`` times per file (a connection cut off half-way
    is worth a second try; a server that cannot be reached, or that stops sending, fails
    within ``timeout`` seconds; one that sends too slowly gives up after ``deadline``
    seconds for the file). What arrives is checked before it is kept: no more bytes
    than the file can have, decompressed as a stream that stops at the published size.
    Raises :class:`DownloadError` when no location gives the published content.
    """
    if name not in idx.OFFICIAL_SHA256:
        raise ArgumentError(f"jaxdl downloads only {sorted(idx.OFFICIAL_SHA256)} itself, not {name!r}")
    folder = download_dir(root) / name
    for key in missing_files(name, folder):
        fname = idx.OFFICIAL_FILES[key]
        urls = [base + fname for base in locations(name)]
        failures = fetch_checked_from_any({url: _official_file(name, key, url) for url in urls}, folder / fname,
                                          timeout, deadline, attempts, progress)
        if failures:
            raise DownloadError(f"could not download {name}'s {fname}: " + "; ".join(failures))
    return folder


def fetch_checked_from_any(urls: dict[str, Expected], target: pathlib.Path, timeout: float = 15.0,
                           deadline: float = 600.0, attempts: int = 2, progress: bool = True) -> list[str]:
    """Fetch ``target`` from the first of ``urls`` that gives what it is ``Expected`` to;
    what each one answered when none did (empty: fetched). Nothing but a file that
    passed its check is ever left at ``target``."""
    failures = []
    for url, expected in urls.items():
        for _ in range(attempts):
            try:
                _fetch_checked(url, target, expected, timeout, deadline, progress)
                return []
            except _Unpublished as err:
                failures.append(f"{url}: {err}")
                break  # the same server would give the same content again
            except (OSError, EOFError, zlib.error) as err:
                failures.append(f"{url}: {_reason(err)}")
                if isinstance(err, urllib.error.HTTPError) or _unreachable(err):
                    break  # an answer, not an interruption: try the next location
    return failures


class _Unpublished(Exception):
    """A download that arrived whole but is not the published file."""


def _fetch_checked(url: str, target: pathlib.Path, expected_file: Expected, timeout: float, deadline: float,
                   progress: bool) -> None:
    from tqdm.auto import tqdm

    most = expected_file.most
    began = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        expected = response.headers.get("Content-Length")
        expected = int(expected) if expected and expected.isdigit() else None
        if expected is not None and expected > most:
            raise _Unpublished(f"it is {expected:,} bytes, more than the published file can be")
        with atomic_path(target) as tmp:  # renamed into place only after the check below
            received = 0
            with open(tmp, "wb") as out, tqdm(total=expected, desc=target.name, unit="B", unit_scale=True,
                                              leave=False, disable=not progress) as bar:
                while chunk := response.read1(1 << 16):  # what has arrived: the deadline is checked between
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                    if received > most:
                        raise _Unpublished(f"it sent more than the {most:,} bytes the published file can be")
                    if time.monotonic() - began > deadline:
                        raise TimeoutError(f"it sent {received:,} bytes in {deadline:g} s (the deadline for one "
                                           "file), too slowly to finish")
            if expected is not None and received != expected:
                raise ConnectionError(f"the connection closed after {received:,} of {expected:,} bytes")
            wrong = expected_file.check(tmp)
            if wrong is not None:
                raise _Unpublished(wrong)


def _content_digest(path: pathlib.Path, compressed: bool, size: int) -> str | None:
    """SHA-256 of the content of ``path``, decompressed as a stream; ``None`` as soon as it
    exceeds ``size`` bytes (a file that would decompress to gigabytes is never held whole)."""
    h, total = hashlib.sha256(), 0
    with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
            if total > size:
                return None
            h.update(chunk)
    return h.hexdigest()


def _unreachable(err: BaseException) -> bool:
    """A name that does not resolve or a host that does not answer: trying it again won't help."""
    reason = getattr(err, "reason", err)
    return isinstance(reason, (TimeoutError, ConnectionRefusedError)) or "Name or service" in str(reason) \
        or "unreachable" in str(reason).lower() or "resolution" in str(reason)


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    if isinstance(err, (EOFError, zlib.error, gzip.BadGzipFile)):
        return f"not a whole gzip file ({err})"
    return str(err) or type(err).__name__
