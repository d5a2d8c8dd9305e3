"""Data: the official files read right, tfds agrees, synthetic sets, image folders,
augmentation, and batches that are reproducible and see every example once."""

import gzip
import os
import shutil
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA
from jaxdl import data as D
from jaxdl import plots
from jaxdl.data import idx
from jaxdl.errors import ArgumentError


@pytest.fixture(scope="module")
def fashion():
    return D.load_dataset("fashion_mnist", SHARED_DATA)


# --- the official files ---------------------------------------------------------------


@pytest.mark.data
def test_fashion_mnist_from_the_official_files(fashion):
    assert fashion.source.startswith("official files")
    assert (len(fashion.train), len(fashion.test)) == (60_000, 10_000)
    assert fashion.train.images.shape == (60_000, 28, 28, 1)
    assert fashion.train.images.dtype == jnp.float32 and fashion.train.labels.dtype == jnp.int32
    assert float(fashion.train.images.min()) == 0.0 and float(fashion.train.images.max()) == 1.0
    np.testing.assert_array_equal(fashion.train.labels[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    np.testing.assert_array_equal(np.bincount(np.asarray(fashion.train.labels)), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(np.asarray(fashion.test.labels)), [1000] * 10)
    assert abs(float(fashion.train.images.mean()) - 0.286) < 0.001
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[-1] == "Ankle boot"
    assert fashion.train.class_to_idx["Bag"] == 8


@pytest.mark.data
def test_mnist_from_the_official_files_and_the_environment_variable(monkeypatch):
    monkeypatch.setenv("JAXDL_DATA_DIR", str(SHARED_DATA))
    mnist = D.load_dataset("mnist")
    assert (len(mnist.train), len(mnist.test)) == (60_000, 10_000)
    np.testing.assert_array_equal(mnist.train.labels[:5], [5, 0, 4, 1, 9])
    assert mnist.class_names == tuple("0123456789")


@pytest.fixture
def fashion_copy(tmp_path):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for name in idx.OFFICIAL_FILES.values():
        if "labels" in name:  # the small files are enough to break; the images are linked
            shutil.copy(SHARED_DATA / "fashion_mnist" / name, folder / name)
        else:
            (folder / name).symlink_to(SHARED_DATA / "fashion_mnist" / name)
    return folder


@pytest.mark.data
def test_missing_file_is_named(fashion_copy):
    (fashion_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        D.load_dataset("fashion_mnist", fashion_copy.parent)


@pytest.mark.data
def test_truncated_file_is_named(fashion_copy):
    path = fashion_copy / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(D.CorruptFileError, match="train-labels.*truncated"):
        D.load_dataset("fashion_mnist", fashion_copy.parent)
    path.write_bytes(path.read_bytes()[:200])  # a cut-off download: broken gzip stream
    with pytest.raises(D.CorruptFileError, match="download it again"):
        D.load_dataset("fashion_mnist", fashion_copy.parent)


@pytest.mark.data
def test_not_an_idx_file(fashion_copy):
    (fashion_copy / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"<html>404</html>"))
    with pytest.raises(D.CorruptFileError, match="IDX header"):
        D.load_dataset("fashion_mnist", fashion_copy.parent)


def test_missing_dataset_without_network_says_what_to_do(tmp_path):
    with pytest.raises(D.DatasetUnavailableError, match=r"put the four official \*-ubyte.gz files in a folder"):
        D.load_dataset("mnist", tmp_path, download=False)
    assert not any(tmp_path.rglob("*.array_record*"))


def test_a_data_folder_that_does_not_hold_the_dataset_lists_what_was_looked_for(tmp_path, monkeypatch):
    with pytest.raises(D.DatasetUnavailableError, match=r"data folder .*nope \(data_dir\) does not exist"):
        D.load_dataset("mnist", tmp_path / "nope")
    monkeypatch.setenv("JAXDL_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(D.DatasetUnavailableError, match=r"typo \(\$JAXDL_DATA_DIR\) does not exist"):
        D.load_dataset("mnist")
    with pytest.raises(D.DatasetUnavailableError) as raised:
        D.load_dataset("fashion_mnist", tmp_path)
    for looked in (tmp_path / "fashion_mnist", tmp_path / "fashion-mnist", "train-images-idx3-ubyte.gz"):
        assert str(looked) in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or created


def test_a_tfds_dataset_offline_or_unreachable_fails_at_once_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    if not D.datasets.tensorflow_installed():
        with pytest.raises(D.DatasetUnavailableError, match=r'needs TensorFlow.*pip install "jaxdl-course\[prepare\]"'):
            D.load_dataset("cifar10")
        return
    monkeypatch.setenv("JAXDL_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(D.DatasetUnavailableError, match="downloads are off"):
        D.load_dataset("cifar10")
    monkeypatch.delenv("JAXDL_OFFLINE")
    # online as far as jaxdl knows, but the server cannot be reached: one quick try, no retries
    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(D.datasets.socket, "create_connection", unreachable)
    with pytest.raises(D.DatasetUnavailableError, match="cannot reach www.cs.toronto.edu"):
        D.load_dataset("cifar10")
    assert time.perf_counter() - began < 30
    assert not (tmp_path / "tfds").exists() or not any((tmp_path / "tfds").rglob("*"))


@pytest.mark.data
def test_preparing_a_tfds_dataset_without_tensorflow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(D.datasets, "tensorflow_installed", lambda: False)
    with pytest.raises(D.DatasetUnavailableError, match=r'needs TensorFlow.*jaxdl-course\[prepare\]'):
        D.prepare_from_official_files("mnist", SHARED_DATA, tmp_path / "tfds")
    assert not (tmp_path / "tfds").exists()
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(D.DatasetUnavailableError, match=r"preparing tensorflow-datasets' cifar10 .*needs TensorFlow"):
        D.load_dataset("cifar10")


@pytest.mark.data
def test_files_of_another_dataset_are_refused(tmp_path):
    folder = tmp_path / "fashion_mnist"
    shutil.copytree(SHARED_DATA / "mnist", folder)  # MNIST's files under Fashion-MNIST's name
    with pytest.raises(D.WrongDatasetError, match="train-images-idx3-ubyte.gz is mnist's"):
        D.load_dataset("fashion_mnist", tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress((SHARED_DATA / "fashion_mnist" / labels.name).read_bytes())))
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(SHARED_DATA / "fashion_mnist" / name, folder / name)
    D.load_dataset("fashion_mnist", tmp_path)  # re-compressed, same content: accepted
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one label changed: unknown content
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.warns(UserWarning, match="content differs from the published fashion_mnist files"):
        D.load_dataset("fashion_mnist", tmp_path)


@pytest.mark.data
def test_prepare_refuses_another_datasets_files_and_writes_nothing(tmp_path, capsys):
    from jaxdl.run import cli

    assert cli.main(["data", "prepare", "fashion_mnist", "--from", str(SHARED_DATA / "mnist"),
                     "--data-dir", str(tmp_path / "tfds")]) == 1
    assert "does not hold the official fashion_mnist files" in capsys.readouterr().err
    assert not (tmp_path / "tfds").exists()


def test_labels_out_of_range_are_named_where_the_data_is_built():
    images = jnp.zeros((6, 4, 4, 1))
    for labels, message in (([0, 1, 2, 10, 3, 4], "label 10 at index 3 of an ArrayDataset is not one of the 10"),
                            ([0, 1, -1, 2, 3, 4], "label -1 at index 2"),
                            ([0, 200, 1, 2, 3, 4], "label 200 at index 1")):
        with pytest.raises(D.LabelError, match=message):
            D.ArrayDataset(images, jnp.asarray(labels, jnp.int32), tuple("0123456789"))
    with pytest.raises(D.LabelError, match="the train split of somewhere"):
        D.ArrayDataset.from_uint8(np.zeros((2, 4, 4, 1), np.uint8), [0, 3], ("a", "b"),
                                  origin="the train split of somewhere")
    with pytest.raises(TypeError, match="from_uint8 takes uint8 images"):
        D.ArrayDataset.from_uint8(np.zeros((2, 4, 4, 1), np.float32), [0, 1], ("a", "b"))
    with pytest.raises(ValueError, match="take\\(n\\) needs a positive number"):
        D.ArrayDataset(images, jnp.zeros(6, jnp.int32), ("a",)).take(0)


def test_labels_out_of_range_are_refused_before_training_and_evaluation():
    from jaxdl import train as T
    from jaxdl.learner import fit
    from jaxdl.models import BlobModel

    x = jnp.zeros((8, 2))
    state = T.create_train_state(BlobModel(2, 4), jax.random.key(0), x[:1], T.make_optimizer("sgd", 0.1))
    bad = D.make_batches((x, jnp.asarray([0, 1, 2, 3, 4, 0, 1, 2])), 4)
    with pytest.raises(D.LabelError, match="label 4 at index 4 of the training data is not one of the 4 classes"):
        fit(state, bad, epochs=1)
    negative = D.make_batches((x, jnp.asarray([0, 1, 2, 3, 0, -1, 1, 2])), 4)
    with pytest.raises(D.LabelError, match="label -1 at index 5 of the evaluation data"):
        T.eval_model(state, negative)
    binary = T.create_train_state(BlobModel(2, 1), jax.random.key(0), x[:1], T.make_optimizer("sgd", 0.1),
                                  loss="bce_with_logits")
    with pytest.raises(D.LabelError, match="label 2.0 at index 3 .* is not 0 or 1"):
        fit(binary, D.make_batches((x, jnp.asarray([0, 1, 1, 2, 0, 0, 1, 1.0])), 4), epochs=1)


# --- tensorflow-datasets ----------------------------------------------------------------


def test_tfds_path_with_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)  # no folder named: tfds's own directory

    with tfds.testing.mock_data(num_examples=12):  # a tfds dataset jaxdl does not download itself
        data = D.load_dataset("cifar10", None)
    assert data.source.startswith("tensorflow-datasets")
    assert data.train.images.shape == (12, 32, 32, 3) and data.train.images.dtype == jnp.float32
    assert len(data.class_names) == 10  # (mock data carry no class names of their own)


def test_a_large_tfds_dataset_streams_from_the_host(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)

    with tfds.testing.mock_data(num_examples=20):
        source = D.TfdsImageSource("fashion_mnist", "train")
        loader = D.make_batches(source, 8, key=jax.random.key(0), worker_count=0)  # the mock is this process's
        assert isinstance(loader, D.HostBatches) and len(loader) == 3
        batches = list(loader.epoch(0))
    assert batches[0]["x"].shape == (8, 28, 28, 1) and batches[0]["x"].dtype == jnp.float32
    assert float(batches[0]["x"].max()) <= 1.0 and float(batches[-1]["mask"].sum()) == 4
    assert source.class_names[0] == "T-shirt/top"


@pytest.mark.data
def test_tfds_prepared_offline_from_the_official_files_gives_the_same_examples(tmp_path):
    if not D.datasets.tensorflow_installed():
        pytest.skip("preparing a tensorflow-datasets copy needs TensorFlow: pip install -e \".[prepare]\"")
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import resource

    # a wrong file already in tfds's download cache (another dataset's, under MNIST's name)
    # would be trusted by tfds without a look: preparation must replace it
    url, info = next(iter(tfds.builder("mnist", data_dir=tmp_path).url_infos.items()))
    (tmp_path / "downloads").mkdir()
    shutil.copy(SHARED_DATA / "fashion_mnist" / info.filename,
                tmp_path / "downloads" / resource.get_dl_fname(url, info.checksum))
    D.prepare_from_official_files("mnist", SHARED_DATA, tmp_path)
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "downloads").iterdir())
    via_tfds = D.load_dataset("mnist", tmp_path, download=False)
    direct = D.load_dataset("mnist", SHARED_DATA)

    def as_sorted(ds):  # tfds stores examples in its own shuffled order
        images = np.asarray(ds.images * 255).round().astype(np.uint8).reshape(len(ds), -1)
        keys = np.concatenate([np.asarray(ds.labels)[:, None].astype(np.uint8), images], axis=1)
        return keys[np.lexsort(keys.T[::-1])]

    for split in ("train", "test"):
        np.testing.assert_array_equal(as_sorted(getattr(via_tfds, split)), as_sorted(getattr(direct, split)))


# --- synthetic data -----------------------------------------------------------------------


def test_linear_data_is_the_courses():
    x_train, y_train, x_test, y_test = D.make_linear()
    assert (len(x_train), len(x_test)) == (40, 10)
    np.testing.assert_allclose(x_train[:3, 0], [0.0, 0.02, 0.04], atol=1e-7)
    np.testing.assert_allclose(y_test, 0.7 * x_test + 0.3)
    assert float(x_test[0, 0]) == pytest.approx(0.8)


def test_circles_like_make_circles():
    x, y = D.make_circles(jax.random.key(42))
    assert x.shape == (1000, 2) and y.shape == (1000,) and y.dtype == jnp.int32
    assert int(y.sum()) == 500
    radius = np.linalg.norm(np.asarray(x), axis=1)
    assert abs(radius[np.asarray(y) == 0].mean() - 1.0) < 0.01
    assert abs(radius[np.asarray(y) == 1].mean() - 0.8) < 0.01
    assert 0.02 < np.abs(radius[np.asarray(y) == 0] - 1.0).mean() < 0.04  # noise 0.03
    x2, y2 = D.make_circles(jax.random.key(42))
    assert jnp.array_equal(x, x2) and jnp.array_equal(y, y2)
    assert not jnp.array_equal(x, D.make_circles(jax.random.key(43))[0])


def test_blobs_like_make_blobs():
    x, y = D.make_blobs(jax.random.key(42))
    assert x.shape == (1000, 2)
    np.testing.assert_array_equal(np.bincount(np.asarray(y)), [250] * 4)
    for c in range(4):
        spread = np.asarray(x)[np.asarray(y) == c].std(axis=0)
        assert np.all(np.abs(spread - 1.5) < 0.25)


def test_train_test_split():
    x, y = jnp.arange(100.0)[:, None], jnp.arange(100)
    x_train, x_test, y_train, y_test = D.train_test_split(jax.random.key(0), x, y, test_size=0.2)
    assert (len(x_train), len(x_test)) == (80, 20)
    assert jnp.array_equal(x_train[:, 0].astype(jnp.int32), y_train)  # rows stay paired
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="test_size"):
        D.train_test_split(jax.random.key(0), x, y, test_size=20)


# --- image folders --------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 5), ("test", 2)):
        for name in ("sushi", "pizza", "steak"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                size = (int(rng.integers(30, 90)), int(rng.integers(30, 90)))
                array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                fmt = "png" if i % 2 else "jpg"
                Image.fromarray(array).save(folder / f"{i}.{fmt}")
    return tmp_path


def test_image_folder(image_folder, capsys):
    rows = D.walk_through_dir(image_folder)
    assert "There are 3 directories and 0 images" in capsys.readouterr().out
    assert len(rows) == 1 + 2 + 6
    train = D.ImageFolder(image_folder / "train", image_size=(64, 64))
    assert train.classes == ["pizza", "steak", "sushi"]
    assert train.class_to_idx == {"pizza": 0, "steak": 1, "sushi": 2}
    assert len(train) == 15
    image, label = train[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.float32 and label == 0
    assert 0.0 <= image.min() and image.max() <= 1.0
    on_device = train.load()
    assert on_device.images.shape == (15, 64, 64, 3) and on_device.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5


def test_an_empty_class_folder_or_mismatched_splits_are_refused(image_folder):
    (image_folder / "train" / "tacos").mkdir()
    with pytest.raises(D.ImageFolderError, match=r"class folder .*train/tacos of .*train holds no image"):
        D.ImageFolder(image_folder / "train")
    (image_folder / "train" / "tacos" / "0.png").write_bytes((image_folder / "train" / "pizza" / "1.png").read_bytes())
    with pytest.raises(D.ImageFolderError, match="only in train: tacos; only in test: -"):
        D.image_folder_splits(image_folder)
    (image_folder / "test" / "tacos").mkdir()
    (image_folder / "test" / "tacos" / "0.png").write_bytes((image_folder / "train" / "pizza" / "1.png").read_bytes())
    train, test = D.image_folder_splits(image_folder, (16, 16))
    assert train.classes == test.classes == ["pizza", "steak", "sushi", "tacos"]


def test_image_folder_without_classes(tmp_path):
    with pytest.raises(FileNotFoundError, match="class folder"):
        D.ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.ImageFolder(tmp_path / "nope")


def test_broken_image_is_named(image_folder):
    bad = image_folder / "train" / "pizza" / "0.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="0.jpg"):
        D.ImageFolder(image_folder / "train")[0]


def test_what_is_not_a_whole_image_is_refused_by_name_before_it_is_decoded(image_folder, tmp_path):
    from PIL import Image

    pizza = image_folder / "train" / "pizza"
    os.mkfifo(pizza / "fifo.png")  # reading it would block for ever
    (pizza / "empty.jpg").write_bytes(b"")
    (pizza / "text.jpg").write_text("not a jpeg")
    (pizza / "cut.png").write_bytes((pizza / "1.png").read_bytes()[:-40])
    Image.new("1", (10_000, 10_000)).save(pizza / "huge.png")  # 100 million pixels in a few kilobytes
    Image.new("1", (14_000, 14_000)).save(pizza / "huger.png")  # beyond Pillow's own limit
    expected = {"fifo.png": "it is not a regular file", "empty.jpg": "the file is empty",
                "text.jpg": "cannot read image .*text.jpg: cannot identify", "cut.png": "cannot decode image .*cut.png",
                "huge.png": "it is 10000 x 10000 pixels, more than the 89,478,485 pixels",
                "huger.png": "it has more than the 89,478,485 pixels"}
    for name, message in expected.items():
        with pytest.raises(D.ImageFileError, match=message), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow's, between 1x and 2x its limit
            D.read_image(pizza / name)
    folder = D.ImageFolder(image_folder / "train")
    for name in expected:
        index = [path.name for path, _ in folder.samples].index(name)
        with pytest.raises(D.ImageFileError, match=name), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            folder[index]


def test_hidden_files_and_folders_named_like_images_are_not_images(image_folder):
    pizza = image_folder / "train" / "pizza"
    (pizza / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (pizza / "album.png").mkdir()
    (pizza / "album.png" / "inside.png").write_bytes((pizza / "1.png").read_bytes())
    names = [path.name for path, _ in D.ImageFolder(image_folder / "train").samples if path.parent.name != "steak"]
    assert "._0.png" not in names and "album.png" not in names and "inside.png" in names


def test_16_bit_and_palette_images_keep_their_brightness(tmp_path):
    from PIL import Image

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63000 of 65535
    Image.frombytes("I;16", (8, 8), ramp.astype("<u2").tobytes()).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode.startswith("I")  # Pillow's convert("RGB") would clip this to white
    deep = D.read_image(tmp_path / "deep.png", (8, 8))
    np.testing.assert_allclose(deep[..., 0], np.round(ramp / 65535 * 255) / 255, atol=1 / 255)
    assert deep.min() == 0.0 and deep.max() < 1.0
    colours = Image.new("RGB", (8, 8), (200, 30, 60)).convert("P", palette=Image.ADAPTIVE, colors=4)
    colours.save(tmp_path / "palette.png")
    np.testing.assert_allclose(D.read_image(tmp_path / "palette.png", (8, 8))[0, 0], np.array([200, 30, 60]) / 255)
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(D.ImageFileError, match="float.tif: its pixels are 32-bit floats"):
        D.read_image(tmp_path / "float.tif")


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_streamed_batches_are_the_device_batches_whatever_the_workers(image_folder, workers):
    """Grain reads a folder in worker processes in jaxdl's order: epoch after epoch, from
    any step of any epoch, the batches the device would gather."""
    folder = D.ImageFolder(image_folder / "train", image_size=(32, 32))
    key = jax.random.key(5)
    streamed = D.make_batches(folder, 4, key, worker_count=workers)
    gathered = D.make_batches(folder.load(), 4, key)
    assert len(streamed) == len(gathered) == 4
    for epoch, start in ((0, 0), (1, 0), (2, 0), (4, 2), (5, 0), (2, 3)):  # on, and resumed elsewhere
        pairs = list(zip(streamed.epoch(epoch, start), gathered.epoch(epoch, start), strict=True))
        assert len(pairs) == 4 - start
        for a, b in pairs:
            for name in ("x", "y", "mask"):
                np.testing.assert_allclose(a[name], b[name], atol=1e-6)
    streamed.close()


def test_an_array_record_file_streams_the_folder_it_was_written_from(image_folder, tmp_path):
    folder = D.ImageFolder(image_folder / "train", image_size=(32, 32))
    path = D.write_image_records(folder, tmp_path / "train.array_record")
    records = D.ImageRecords(path, image_size=(32, 32))
    assert len(records) == len(folder) and records.class_names == folder.class_names
    image, label = records[3]
    assert image.dtype == np.float32 and label == folder.samples[3][1]
    np.testing.assert_array_equal(image, folder[3][0])
    key = jax.random.key(2)
    for a, b in zip(D.make_batches(records, 4, key, worker_count=2).epoch(1),
                    D.make_batches(folder.load(), 4, key).epoch(1), strict=True):
        for name in ("x", "y", "mask"):
            np.testing.assert_allclose(a[name], b[name], atol=1e-6)
    cut = tmp_path / "cut.array_record"
    cut.write_bytes(path.read_bytes())
    (tmp_path / "cut.array_record.json").write_text('{"class_names": ["a"], "records": 99}')
    with pytest.raises(D.ImageRecordsError, match="holds 15 records, but its description says 99"):
        D.ImageRecords(cut)
    with pytest.raises(D.ImageRecordsError, match="no readable description"):
        D.ImageRecords(tmp_path / "cut.array_record.json")


def test_a_bad_image_is_named_from_the_worker_that_read_it(image_folder):
    bad = image_folder / "train" / "pizza" / "2.jpg"
    bad.write_bytes(b"not a jpeg at all")
    loader = D.make_batches(D.ImageFolder(image_folder / "train", (16, 16)), 4, worker_count=2)
    began = time.perf_counter()
    with pytest.raises(D.ImageFileError, match=f"cannot read image {bad}: cannot identify image file"):
        list(loader.epoch(0))
    assert time.perf_counter() - began < 60


class DiesAtSeven:
    """A source whose reader process dies (as one killed for memory would) at example 7."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        if index == 7:
            os._exit(3)
        return np.zeros((2, 2, 1), np.float32), 0


def test_a_worker_that_dies_fails_the_loader_at_once():
    loader = D.make_batches(DiesAtSeven(), 4, worker_count=1)
    began = time.perf_counter()
    with pytest.raises(D.stream.WorkerError, match="a data-loading worker process ended before its batch was read"):
        list(loader.epoch(0))
    assert time.perf_counter() - began < 60


def test_several_processes_need_a_global_batch_they_can_share(image_folder, monkeypatch):
    folder = D.ImageFolder(image_folder / "train", (16, 16))  # 15 images
    monkeypatch.setattr(D.stream.jax, "process_count", lambda: 2)
    with pytest.raises(ArgumentError, match="needs the sharding of a global batch"):
        D.make_batches(folder, 4)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with pytest.raises(ArgumentError, match="batch_size 5 cannot be split evenly over 2 processes"):
        D.make_batches(folder, 5, sharding=sharding)
    with pytest.raises(ArgumentError, match="15 examples, fewer than one global batch of 16 over 2"):
        D.make_batches(folder, 16, sharding=sharding)


# --- batches ---------------------------------------------------------------------------------


def _labels_per_epoch(loader, epoch):
    return [np.asarray(b["y"])[np.asarray(b["mask"]) > 0] for b in loader.epoch(epoch)]


def test_batches_are_reproducible_and_cover_each_example_once():
    x, y = jnp.arange(103.0)[:, None], jnp.arange(103)
    loader = D.make_batches((x, y), 10, jax.random.key(1))
    assert len(loader) == 11
    first = _labels_per_epoch(loader, 0)
    assert sorted(np.concatenate(first).tolist()) == list(range(103))
    again = _labels_per_epoch(D.make_batches((x, y), 10, jax.random.key(1)), 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other_key = _labels_per_epoch(D.make_batches((x, y), 10, jax.random.key(2)), 0)
    assert not np.array_equal(np.concatenate(first), np.concatenate(other_key))
    next_epoch = _labels_per_epoch(loader, 1)
    assert not np.array_equal(np.concatenate(first), np.concatenate(next_epoch))


def test_partial_last_batch_is_padded_and_masked():
    x, y = jnp.arange(25.0)[:, None], jnp.arange(25)
    batches = list(D.make_batches((x, y), 10).epoch(0))
    assert [b["x"].shape for b in batches] == [(10, 1)] * 3  # one shape: one compilation
    np.testing.assert_array_equal(batches[-1]["mask"], [1] * 5 + [0] * 5)
    np.testing.assert_array_equal(batches[0]["y"], np.arange(10))  # no key: in order
    dropped = D.make_batches((x, y), 10, drop_last=True)
    assert len(dropped) == 2 and all(float(b["mask"].min()) == 1 for b in dropped.epoch(0))


def test_a_full_batch_epoch_keeps_its_order():
    x, y = jnp.arange(25.0)[:, None], jnp.arange(25)
    for batch_size, drop_last in ((25, True), (30, False)):
        (batch,) = D.make_batches((x, y), batch_size, jax.random.key(0), drop_last=drop_last).epoch(3)
        np.testing.assert_array_equal(batch["y"], np.arange(25))  # 30: the set itself, as PyTorch yields it
        np.testing.assert_array_equal(batch["mask"], [1] * 25)
    # split over devices, the batch keeps its size (padded, masked) so that it divides evenly
    sharded = D.make_batches((x, y), 30, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    assert sharded.batch_size == 30
    np.testing.assert_array_equal(next(iter(sharded))["mask"], [1] * 25 + [0] * 5)
    # one batch that leaves an example out: which one changes from epoch to epoch
    loader = D.make_batches((x, y), 24, jax.random.key(0), drop_last=True)
    left_out = {int(np.setdiff1d(np.arange(25), next(loader.epoch(e))["y"])[0]) for e in range(8)}
    assert len(left_out) > 1


def test_bad_batching_arguments():
    x, y = jnp.zeros((5, 1)), jnp.zeros(5)
    with pytest.raises(ValueError, match="no batch at all"):
        D.make_batches((x, y), 10, drop_last=True)
    with pytest.raises(ValueError, match="x has 5 examples but y has 4"):
        D.make_batches((x, y[:4]), 2)
    with pytest.raises(TypeError, match="cannot make batches"):
        D.make_batches(42, 2)


def test_augmentation_inside_the_batches():
    images = jax.random.uniform(jax.random.key(0), (8, 16, 16, 3))
    flip_all = lambda k, im: D.random_horizontal_flip(k, im, p=1.0)
    loader = D.make_batches((images, jnp.arange(8)), 8, transform=flip_all, transform_key=jax.random.key(1))
    batch = next(iter(loader))
    np.testing.assert_array_equal(batch["x"], images[:, :, ::-1, :])


# --- augmentation ------------------------------------------------------------------------------


def test_trivial_augment_wide():
    images = jax.random.uniform(jax.random.key(0), (16, 32, 32, 3))
    out = jax.jit(D.trivial_augment_wide)(jax.random.key(1), images)
    assert out.shape == images.shape and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    changed = np.abs(np.asarray(out - images)).reshape(16, -1).max(axis=1) > 1e-6
    assert changed.sum() >= 8  # most draws change the image (not Identity, nor magnitude 0)
    again = jax.jit(D.trivial_augment_wide)(jax.random.key(1), images)
    assert jnp.array_equal(out, again)  # same key, same augmentation
    assert not jnp.array_equal(out, jax.jit(D.trivial_augment_wide)(jax.random.key(2), images))


@pytest.mark.parametrize("name,magnitude,check", [
    ("Identity", 0.0, lambda x, y: np.allclose(x, y)),
    ("TranslateX", 4.0, lambda x, y: np.allclose(y[:, 4:], x[:, :-4], atol=1e-6) and np.all(y[:, :4] == 0)),
    ("Rotate", 90.0, lambda x, y: np.allclose(y, np.rot90(x, k=-1, axes=(0, 1)), atol=1e-5)),
    ("Brightness", -0.5, lambda x, y: np.allclose(y, x * 0.5, atol=1e-6)),
    ("Solarize", 0.5, lambda x, y: np.allclose(y, np.where(x >= 0.5, 1 - x, x))),
    ("Posterize", 1.0, lambda x, y: set(np.unique(np.round(y * 255))) <= {0, 128}),
    ("AutoContrast", 0.0, lambda x, y: np.isclose(y.min(), 0) and np.isclose(y.max(), 1)),
])
def test_trivial_augment_ops(name, magnitude, check):
    names = [op[0] for op in D.augment.TRIVIAL_AUGMENT_OPS]
    image = np.asarray(jax.random.uniform(jax.random.key(3), (9, 9, 3)) * 0.6 + 0.2)
    out = np.asarray(D.augment.apply_trivial_augment_op(image, names.index(name), jnp.float32(magnitude)))
    assert check(image, out)


# --- pictures ------------------------------------------------------------------------------------


@pytest.mark.data
def test_course_pictures_are_written(fashion, image_folder, tmp_path):
    fig = plots.display_random_images(fashion.train.images, fashion.train.labels, fashion.class_names,
                                      jax.random.key(0), n=5, path=tmp_path / "random.png")
    assert len(fig.axes) == 5
    folder = D.ImageFolder(image_folder / "train")
    plots.display_random_images(folder, None, folder.classes, jax.random.key(1), n=3,
                                path=tmp_path / "folder.png")
    originals = np.stack([folder[i][0] for i in range(3)])
    plots.plot_transformed_images(originals, D.trivial_augment_wide(jax.random.key(2), originals),
                                  path=tmp_path / "transformed.png")
    for name in ("random.png", "folder.png", "transformed.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 100


@pytest.mark.data
def test_export_image_folder_makes_a_photo_folder_stand_in(fashion, tmp_path):
    root = D.export_image_folder(fashion, tmp_path / "shoes", classes=(9, 5), per_class={"train": 3, "test": 2},
                                 size=(64, 64))
    train = D.ImageFolder(root / "train")
    assert train.classes == ["Ankle boot", "Sandal"] and len(train) == 6 and len(D.ImageFolder(root / "test")) == 4
    with Image.open(train.samples[0][0]) as image:
        assert image.mode == "RGB" and image.size == (64, 64)
