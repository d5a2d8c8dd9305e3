"""Downloading the official files: from a mirror on 127.0.0.1 serving the shared files,
checked, cached, retried when cut off, never kept when wrong, and fast to fail offline."""

import ast
import gzip
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA
from jaxdl import data as D
from jaxdl.data import download, idx


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``SHARED_DATA`` as ``/<dataset>/<file>``, that
    can be told to serve other content for a file or to cut a file's first answer short."""

    def __init__(self):
        self.requests: list[str] = []
        self.replaced: dict[str, bytes] = {}  # path -> body served instead of the file
        self.cut_once: set[str] = set()  # paths whose next answer stops half-way
        self.trickle: set[str] = set()  # paths served a byte at a time, slowly
        self.closing = threading.Event()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                body = mirror.replaced.get(self.path)
                if body is None:
                    file = SHARED_DATA / self.path.lstrip("/")
                    if ".." in self.path or not file.is_file():
                        self.send_error(404)
                        return
                    body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in mirror.trickle:
                    for i in range(len(body)):
                        if mirror.closing.is_set():
                            return
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                if self.path in mirror.cut_once:
                    mirror.cut_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    served = Mirror()
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)
    monkeypatch.setenv("JAXDL_DATASET_MIRROR", served.url)
    monkeypatch.setenv("JAXDL_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    yield served
    served.close()


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.data
def test_download_checks_caches_and_reads_the_same_examples(mirror, tmp_path):
    data = D.load_dataset("fashion_mnist")
    assert data.source == f"official files downloaded to {tmp_path / 'downloads' / 'fashion_mnist'}"
    direct = D.load_dataset("fashion_mnist", SHARED_DATA)
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(data, split).labels, getattr(direct, split).labels)
        np.testing.assert_array_equal(getattr(data, split).images, getattr(direct, split).images)
    assert sorted(mirror.requests) == sorted(f"/fashion_mnist/{f}" for f in idx.OFFICIAL_FILES.values())
    D.load_dataset("fashion_mnist")  # from the cache: nothing fetched again
    assert len(mirror.requests) == 4 and leftovers(tmp_path) == []


def relabelled(path):
    """The file at ``path`` with its first label changed: a whole gzip file of other content."""
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[8] = (content[8] + 1) % 10
    return gzip.compress(bytes(content))


@pytest.mark.data
def test_a_download_of_other_content_is_refused_and_not_kept(mirror, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    mirror.replaced[f"/mnist/{name}"] = relabelled(SHARED_DATA / "mnist" / name)
    with pytest.raises(D.DatasetUnavailableError, match="content differs from the published mnist file") as raised:
        D.load_dataset("mnist")
    assert f"could not download mnist's {name}" in str(raised.value)
    folder = tmp_path / "downloads" / "mnist"
    assert not (folder / name).exists() and leftovers(tmp_path) == []
    # the three good files stay; once the mirror is right, only the fourth is fetched
    del mirror.replaced[f"/mnist/{name}"]
    mirror.requests.clear()
    assert len(D.load_dataset("mnist").test) == 10_000
    assert mirror.requests == [f"/mnist/{name}"]


@pytest.mark.data
def test_a_file_in_the_cache_that_is_not_the_published_one_is_fetched_again(mirror, tmp_path):
    folder = tmp_path / "downloads" / "mnist"
    folder.mkdir(parents=True)
    for name in idx.OFFICIAL_FILES.values():
        (folder / name).write_bytes((SHARED_DATA / "mnist" / name).read_bytes())
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"truncated")
    assert len(D.load_dataset("mnist").train) == 60_000
    assert mirror.requests == ["/mnist/train-labels-idx1-ubyte.gz"]


@pytest.mark.data
def test_an_interrupted_download_is_retried_cleanly(mirror, tmp_path):
    cut = "/fashion_mnist/train-labels-idx1-ubyte.gz"
    mirror.cut_once.add(cut)
    data = D.load_dataset("fashion_mnist")
    assert mirror.requests.count(cut) == 2 and len(data.train) == 60_000
    assert leftovers(tmp_path) == []


def test_a_server_that_sends_a_byte_now_and_then_meets_the_deadline(mirror, tmp_path):
    mirror.trickle.add("/mnist/train-images-idx3-ubyte.gz")
    began = time.perf_counter()
    with pytest.raises(download.DownloadError, match=r"bytes in 1 s \(the deadline for one file\), too slowly"):
        download.fetch_official_files("mnist", deadline=1.0, progress=False)
    assert time.perf_counter() - began < 15 and leftovers(tmp_path) == []


def bomb(declared, extra):
    """An IDX labels file declaring ``declared`` labels, followed by ``extra`` zero bytes, gzipped."""
    return gzip.compress(b"\0\0\x08\x01" + declared.to_bytes(4, "big") + bytes(declared + extra), 9)


def test_a_gzip_bomb_is_refused_without_being_decompressed_whole(mirror, tmp_path):
    import tracemalloc

    name = "t10k-labels-idx1-ubyte.gz"
    mirror.replaced[f"/mnist/{name}"] = bomb(10_000, 60 << 20)  # 60 KB that decompress to 60 MB
    tracemalloc.start()
    with pytest.raises(download.DownloadError, match="content differs from the published mnist file"):
        download.fetch_official_files("mnist", progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 << 20, peak
    mirror.replaced[f"/mnist/{name}"] = bomb(10_000, 600 << 20)  # larger than the file can be
    with pytest.raises(download.DownloadError, match="more than the published file can be"):
        download.fetch_official_files("mnist", progress=False)
    assert not (tmp_path / "downloads" / "mnist" / name).exists() and leftovers(tmp_path) == []


def test_an_idx_file_is_read_only_as_far_as_its_header_declares(tmp_path):
    import tracemalloc

    (tmp_path / "more.gz").write_bytes(bomb(10, 200 << 20))
    tracemalloc.start()
    with pytest.raises(idx.CorruptFileError, match=r"more.gz holds more than the 10 bytes of data its header"):
        idx.read_idx(tmp_path / "more.gz")
    assert tracemalloc.get_traced_memory()[1] < 20 << 20
    tracemalloc.stop()
    (tmp_path / "huge.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\xff\xff\xff\xff" * 3))
    with pytest.raises(idx.CorruptFileError, match=r"huge.gz declares .* bytes of data .*, more than the"):
        idx.read_idx(tmp_path / "huge.gz")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_or_unreachable_fails_at_once_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)
    monkeypatch.setenv("JAXDL_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("JAXDL_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(D.DatasetUnavailableError, match="downloads are off") as raised:
        D.load_dataset("mnist")
    assert "put the four official *-ubyte.gz files in a folder" in str(raised.value)
    monkeypatch.delenv("JAXDL_OFFLINE")
    # online as far as jaxdl knows, but nothing answers: one quick try per file, no minutes of retries
    monkeypatch.setenv("JAXDL_DATASET_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(D.DatasetUnavailableError, match="could not download mnist's train-images-idx3-ubyte.gz"):
        D.load_dataset("mnist")
    assert time.perf_counter() - began < 30
    assert leftovers(tmp_path) == [] and not any((tmp_path / "downloads").rglob("*.gz"))


def test_the_download_folder_and_locations():
    assert download.download_dir("~/x") == download.download_dir(os.path.expanduser("~/x"))
    assert download.locations("mnist")[0].startswith("https://")
    with pytest.raises(ValueError, match="downloads only"):
        download.fetch_official_files("cifar10")


@pytest.mark.data
def test_the_quickstart_downloads_verifies_and_trains(mirror, tmp_path):
    env = {**os.environ, "JAXDL_DATASET_MIRROR": mirror.url, "JAXDL_DOWNLOAD_DIR": str(tmp_path / "downloads")}
    env.pop("JAXDL_DATA_DIR", None)
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "quickstart.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(mirror.requests) == 4 and (tmp_path / "downloads" / "fashion_mnist").is_dir()
    final = ast.literal_eval(out.stdout.strip().splitlines()[-1])  # eval_model's dictionary
    assert final["model_name"] == "FashionMNISTModelV2" and final["model_acc"] > 80
