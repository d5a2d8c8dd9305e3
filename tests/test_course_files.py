"""The course's own files (jaxdl.data.course_files): chapter 04's pizza/steak/sushi zip and
photo, fetched from a local mirror on 127.0.0.1 and checked by their git object id,
unpacked only when safe -- and refused, leaving nothing behind, when the file is cut
short, another file, a zip escaping its folder, or the server never answers."""

import hashlib
import http.server
import io
import shutil
import socket
import subprocess
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxdl.data import course_files, datasets
from jaxdl.data import download as downloads


def _jpeg(color) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), color).save(out, "JPEG")
    return out.getvalue()


def _zip(members: dict) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


GOOD = _zip({f"{split}/{food}/{i}.jpg": _jpeg(color) for split, n in (("train", 3), ("test", 2))
             for food, color in (("pizza", "red"), ("steak", "brown"), ("sushi", "white")) for i in range(n)})


class Mirror:
    """A mirror on 127.0.0.1 serving ``files`` (path -> bytes), counting requests."""

    def __init__(self, files):
        self.files, self.requests = files, []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def course(tmp_path, monkeypatch):
    """The course's zip replaced by ``GOOD`` (with its own git object id), a mirror serving
    it, and an empty download folder."""
    (tmp_path / "good.zip").write_bytes(GOOD)
    entry = course_files.CourseFile("data/pizza_steak_sushi.zip", course_files.git_blob_id(tmp_path / "good.zip"),
                                    1 << 20)
    monkeypatch.setitem(course_files.COURSE_FILES, "pizza_steak_sushi", entry)
    mirror = Mirror({"pizza_steak_sushi/pizza_steak_sushi.zip": GOOD})
    monkeypatch.setenv(downloads.MIRROR_ENV, mirror.url)
    monkeypatch.setenv(downloads.DOWNLOAD_DIR_ENV, str(tmp_path / "downloads"))
    monkeypatch.delenv(datasets.OFFLINE_ENV, raising=False)
    yield mirror
    mirror.close()


def test_git_blob_id_is_gits_object_id(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"pizza\n")
    assert course_files.git_blob_id(tmp_path / "f.bin") == hashlib.sha1(b"blob 6\0pizza\n").hexdigest()
    if shutil.which("git"):
        assert course_files.git_blob_id(tmp_path / "f.bin") == _git_hash_object(tmp_path / "f.bin")


def _git_hash_object(path):
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def test_the_course_dataset_downloads_once_checked_and_unpacked(course, tmp_path):
    data = datasets.load_dataset("pizza_steak_sushi")
    assert data.class_names == ("pizza", "steak", "sushi")
    assert data.train.images.shape == (9, 64, 64, 3) and data.test.images.shape == (6, 64, 64, 3)
    assert np.bincount(np.asarray(data.train.labels)).tolist() == [3, 3, 3]
    assert "pizza_steak_sushi.zip" in data.source
    again = datasets.load_dataset("pizza_steak_sushi")  # from the download folder: nothing fetched again
    assert len(course.requests) == 1 and len(again.train) == 9
    train, test = course_files.course_image_folders()
    assert train.name == "train" and test.name == "test" and (train / "pizza").is_dir()
    with pytest.raises(datasets.DatasetUnavailableError, match="downloads are off"):
        datasets.load_dataset("pizza_steak_sushi_20_percent", offline=True)


@pytest.mark.parametrize("served", ["truncated", "wrong"])
def test_a_cut_or_other_file_is_refused_and_nothing_is_left(course, tmp_path, served):
    course.files["pizza_steak_sushi/pizza_steak_sushi.zip"] = \
        GOOD[: len(GOOD) // 2] if served == "truncated" else _zip({"train/pizza/0.jpg": _jpeg("red")})
    with pytest.raises(datasets.DatasetUnavailableError) as err:
        datasets.load_dataset("pizza_steak_sushi")
    assert "is not the course's data/pizza_steak_sushi.zip" in str(err.value) and "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()]


@pytest.mark.parametrize("member", ["../escaped.jpg", "/tmp/absolute.jpg", "link"])
def test_an_archive_that_escapes_its_folder_is_not_unpacked(tmp_path, member):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("train/pizza/0.jpg", _jpeg("red"))
        if member == "link":
            info = zipfile.ZipInfo("train/pizza/link.jpg")
            info.external_attr = 0o120777 << 16  # a symbolic link, as zip -y stores one
            archive.writestr(info, "/etc/passwd")
        else:
            archive.writestr(member, _jpeg("red"))
    (tmp_path / "bad.zip").write_bytes(out.getvalue())
    with pytest.raises(course_files.UnsafeArchiveError) as err:
        course_files.unpack_zip(tmp_path / "bad.zip", tmp_path / "unpacked" / "images")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "escaped.jpg").exists() and not (tmp_path / "unpacked" / "images").exists()
    assert not list((tmp_path / "unpacked").iterdir())  # the scratch folder is gone too


def test_more_bytes_than_allowed_stop_the_unpacking(tmp_path):
    (tmp_path / "big.zip").write_bytes(_zip({"train/a/big.bin": b"\0" * 100_000}))
    with pytest.raises(course_files.UnsafeArchiveError, match="more than 50,000 bytes"):
        course_files.unpack_zip(tmp_path / "big.zip", tmp_path / "out", max_bytes=50_000)
    assert not (tmp_path / "out").exists()


def test_a_server_that_never_answers_fails_in_seconds_and_leaves_nothing(course, tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never sends a byte
    monkeypatch.setenv(downloads.MIRROR_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}")
    began = time.monotonic()
    with pytest.raises(downloads.DownloadError, match="could not download the course's data/pizza_steak_sushi.zip"):
        course_files.course_image_folders(timeout=1.0)
    assert time.monotonic() - began < 10
    assert not [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()]
    silent.close()


def test_the_course_photo_is_fetched_and_checked_the_same_way(course, tmp_path, monkeypatch):
    photo = _jpeg("orange")
    (tmp_path / "photo.jpeg").write_bytes(photo)
    entry = course_files.CourseFile("data/04-pizza-dad.jpeg", course_files.git_blob_id(tmp_path / "photo.jpeg"),
                                    len(photo))
    monkeypatch.setitem(course_files.COURSE_FILES, "04-pizza-dad.jpeg", entry)
    course.files["course_files/04-pizza-dad.jpeg"] = photo
    path = course_files.fetch_course_file("04-pizza-dad.jpeg")
    assert path.read_bytes() == photo and path.name == "04-pizza-dad.jpeg"
    course.files["course_files/04-pizza-dad.jpeg"] = photo + b"x"
    path.unlink()
    with pytest.raises(downloads.DownloadError, match="more than the"):
        course_files.fetch_course_file("04-pizza-dad.jpeg")
    assert not path.exists()


def test_custom_images_trains_on_the_course_photos_where_they_can_be_had(course, tmp_path, monkeypatch, capsys):
    import json
    import runpy
    import sys

    from conftest import ROOT

    photo = _jpeg("orange")
    (tmp_path / "photo.jpeg").write_bytes(photo)
    monkeypatch.setitem(course_files.COURSE_FILES, "04-pizza-dad.jpeg", course_files.CourseFile(
        "data/04-pizza-dad.jpeg", course_files.git_blob_id(tmp_path / "photo.jpeg"), len(photo)))
    course.files["course_files/04-pizza-dad.jpeg"] = photo
    work = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["custom_images.py", "--workdir", str(work), "--epochs", "1", "--image-size", "32"])
    runpy.run_path(str(ROOT / "experiments" / "custom_images.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "using the course's pizza, steak and sushi photos" in out and "stand-in" not in out
    results = json.loads((work / "results.json").read_text())
    assert results["summary"]["custom_image"]["path"].endswith("04-pizza-dad.jpeg")
    assert results["summary"]["custom_image"]["prediction"] in ("pizza", "steak", "sushi")
