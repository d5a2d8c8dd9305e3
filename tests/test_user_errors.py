"""What a careless or unlucky user meets, tried as they would meet it -- by running the
experiment scripts: every mistake ends the script with one line that names the problem
and a non-zero exit, found before training where it can be, and nothing outside the
run directory changes; what jaxdl recovers from, it reports in one line too."""

import gzip
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import SHARED_DATA
from test_workdir import one_line_error, script, snapshot


def small_image_folder(root, size=16, per_class=2):
    from PIL import Image

    for split in ("train", "test"):
        for name in ("pizza", "steak"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (size, size), (60 * i, 0, 0)).save(root / split / name / f"{i}.png")
    return root


def custom_images(tmp_path, images, *extra):
    return script("custom_images", "--workdir", tmp_path / "run", "--images", images, "--image-size", "16",
                  "--epochs", "1", *extra)


@pytest.mark.parametrize("damage, message", [
    ("text.jpg", "cannot read image {path}: cannot identify image file"),
    ("empty.png", "cannot read image {path}: the file is empty"),
    ("cut.png", "cannot decode image {path}"),
])
def test_a_bad_image_in_a_folder_is_named_in_one_line(tmp_path, damage, message):
    images = small_image_folder(tmp_path / "images")
    bad = images / "train" / "steak" / damage
    good = (images / "train" / "steak" / "0.png").read_bytes()
    bad.write_bytes({"text.jpg": b"not a photo", "empty.png": b"", "cut.png": good[:-30]}[damage])
    (images / "train" / "steak" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS")  # not an image: left out
    (images / "train" / "pizza" / "album.png").mkdir()  # a folder, not an image
    before = snapshot(images)
    out = custom_images(tmp_path, images)
    one_line_error(out, message.format(path=bad))
    assert "Epoch" not in out.stdout and snapshot(images) == before


def test_the_image_to_predict_on_is_checked_before_training(tmp_path):
    images = small_image_folder(tmp_path / "images")
    out = custom_images(tmp_path, images, "--image", tmp_path / "my_photo.jpg")
    one_line_error(out, f"cannot read image {tmp_path / 'my_photo.jpg'}: No such file or directory")
    assert "Epoch" not in out.stdout


def test_an_image_size_that_cannot_fit_is_refused_at_once(tmp_path):
    images = small_image_folder(tmp_path / "images")
    out = script("custom_images", "--workdir", tmp_path / "run", "--images", images, "--image-size", "100000")
    one_line_error(out, "image_size 100000x100000 is 10,000,000,000 pixels an image")
    out = script("custom_images", "--workdir", tmp_path / "run2", "--image-size", "9000")  # the stand-in: 300 of them
    one_line_error(out, "300 images (the stand-in folder) at 9000x9000 need 271.6 GiB")


def test_a_model_too_deep_for_the_image_size_is_one_line(tmp_path):
    images = small_image_folder(tmp_path / "images", size=8)
    out = script("custom_images", "--workdir", tmp_path / "run", "--images", images, "--image-size", "8")
    one_line_error(out, "does not fit an input of size 2")


def test_flags_out_of_range_are_refused_by_name(tmp_path):
    out = script("blobs", "--workdir", tmp_path / "run", "--seed", str(2**64))
    assert out.returncode == 2 and "argument --seed: must be a whole number from 0 to 9223372036854775807" in out.stderr
    out = script("blobs", "--workdir", tmp_path / "run", "--devices", "2")
    one_line_error(out, "asked for 2 devices but 1 are available")


@pytest.mark.data
def test_idx_files_that_do_not_make_a_dataset_are_one_line(tmp_path):
    data = tmp_path / "data" / "mnist"
    data.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes((SHARED_DATA / "mnist" / name).read_bytes())
    small = b"\x00\x00\x08\x03" + (10_000).to_bytes(4, "big") + (14).to_bytes(4, "big") * 2 + bytes(10_000 * 14 * 14)
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(small))
    out = script("mnist_batchnorm", "--workdir", tmp_path / "run", "--data-dir", tmp_path / "data", "--epochs", "1")
    one_line_error(out, "the training images are 28x28 but the test images 14x14")
    empty = b"\x00\x00\x08\x03" + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(empty))
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(4)))
    out = script("mnist_batchnorm", "--workdir", tmp_path / "run2", "--data-dir", tmp_path / "data", "--epochs", "1")
    one_line_error(out, "the test images have shape (0, 28, 28): no example")


def test_every_checkpoint_damaged_is_one_line_and_nothing_is_lost(tmp_path):
    run = tmp_path / "run"
    assert script("blobs", "--workdir", run, "--epochs", "2").returncode == 0
    checkpoints = run / "model_4" / "checkpoints"
    steps = sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit())
    assert steps
    for array in checkpoints.glob("*/state/d/*"):  # the arrays' bytes, not their metadata
        array.write_bytes(b"garbage")
    out = script("blobs", "--workdir", run, "--epochs", "3", "--resume")
    one_line_error(out, "no checkpoint in", "could be restored", "start the run afresh")
    assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr
    warnings = [w for w in out.stderr.splitlines() if w.startswith("warning: ")]
    assert len(warnings) == len(steps) and all("is damaged" in w and "moved it to" in w for w in warnings)
    assert len(out.stderr.strip().splitlines()) == len(steps) + 1, out.stderr  # a line each, and the error
    assert sorted(p.name for p in (run / "model_4" / "checkpoints_damaged").iterdir()) == steps


def test_a_torn_log_line_is_one_warning_and_the_resume_goes_on(tmp_path):
    run = tmp_path / "run"
    assert script("blobs", "--workdir", run, "--epochs", "2").returncode == 0
    log = run / "model_4" / "log.jsonl"
    whole = log.read_text().splitlines()
    log.write_text(whole[0] + "\n" + whole[1][: len(whole[1]) // 2])  # the power went off mid-write
    out = script("blobs", "--workdir", run, "--epochs", "3", "--resume")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        f"warning: {log}: line 2 did not read back (torn by a crash?); dropped, and the log rewritten from the "
        "restored history"], out.stderr
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1, 2] and json.loads(whole[1]) == rows[1]


def test_a_misspelt_dataset_says_what_was_meant(tmp_path):
    out = script("best", "--workdir", tmp_path / "run", "--dataset", "fashoin_mnist")
    assert out.returncode == 2 and "invalid choice: 'fashoin_mnist'" in out.stderr
    code = ("from jaxdl import data\ntry:\n    data.load_dataset('fashoin_mnist', offline=True)\n"
            "except data.DatasetUnavailableError as err:\n    print(err)\n")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "JAXDL_DATA_DIR": ""}).stdout.strip()
    assert printed.startswith("there is no dataset 'fashoin_mnist'") and "did you mean 'fashion_mnist'" in printed
    assert len(printed.splitlines()) == 1


@pytest.mark.data
def test_a_smoke_run_smaller_than_a_plot_and_its_resume_finish(tmp_path):
    run = tmp_path / "run"
    args = ["--workdir", run, "--examples", "10", "--epochs", "1"]
    first = script("fashion_mnist", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    again = script("fashion_mnist", *args, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert pathlib.Path(run / "results.json").is_file()


# --- the Python API: jaxdl's own errors, with the argument's name, at the public edge -------------


def test_the_api_refuses_bad_arguments_with_jaxdl_errors():
    import jax
    import jax.numpy as jnp

    from jaxdl import errors, layers, lr_find, train
    from jaxdl.data import make_batches
    from jaxdl.learner import NonFiniteLossError, fit
    from jaxdl.models import TinyVGG

    for bad in (-1.0, float("nan"), "0.1"):
        with pytest.raises(errors.ArgumentError, match=r"learning_rate must be a finite number >= 0"):
            train.make_optimizer("sgd", bad)
    with pytest.raises(errors.ArgumentError, match=r"momentum must be a number in \[0, 1\)"):
        train.make_optimizer("sgd", 0.1, momentum=1.5)
    tx = train.make_optimizer("sgd", 0.01)
    with pytest.raises(errors.ShapeError, match=r"example_input must be a batch of at least one example"):
        train.create_train_state(TinyVGG(3, 10, 3), jax.random.key(0), jnp.zeros((0, 16, 16, 3)), tx)
    for layer, x in ((layers.Dense(3), jnp.zeros((2, 0))), (layers.Conv2D(4, 3), jnp.zeros((1, 8, 8, 0)))):
        with pytest.raises(errors.ShapeError, match="an axis of size 0 after the batch axis"):
            layer.init(jax.random.key(0), x)
    state = train.create_train_state(TinyVGG(3, 10, 3), jax.random.key(0), jnp.zeros((1, 64, 64, 3)), tx)
    other_size = make_batches((jnp.zeros((8, 32, 32, 3)), jnp.zeros(8, jnp.int32)), 4)
    with pytest.raises(errors.ShapeError, match=r"TinyVGG does not take the examples of the training data, of "
                                                r"shape \(32, 32, 3\): its parameters were made for"):
        fit(state, other_size, epochs=1)
    column = make_batches((jnp.zeros((8, 64, 64, 3)), jnp.zeros((8, 1), jnp.int32)), 4)
    with pytest.raises(errors.ShapeError, match=r"labels of the training data have shape \(8, 1\); a cross-"
                                                r"entropy takes one class index per example, shape \(8,\); flatten"):
        fit(state, column, epochs=1)
    nan_data = make_batches((jnp.full((8, 64, 64, 3), jnp.nan), jnp.zeros(8, jnp.int32)), 4)
    with pytest.raises(NonFiniteLossError, match="no rate to suggest"):
        lr_find.lr_find(state, nan_data, num_steps=4)
    with pytest.raises(errors.ShapeError, match="make_predictions needs a batch of at least one example"):
        train.make_predictions(state, jnp.zeros((0, 64, 64, 3)))
