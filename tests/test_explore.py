"""jaxdl.explore: what the convolution explorer shows, checked against jaxdl.conv and by hand,
and its widgets driven headless: every control redraws, bad input becomes a message."""

import datetime
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdl import conv, data, learner, train
from jaxdl.explore import convolution as cv
from jaxdl.explore import features
from jaxdl.models import SimpleCNN

RNG = np.random.default_rng(0)
IMAGE = RNG.random((28, 28, 1)).astype(np.float32)


def test_the_lessons_kernels_and_the_others():
    assert np.array_equal(cv.named_kernel("top edge"), conv.TOP_EDGE)
    assert np.array_equal(cv.named_kernel("diagonal 2"), conv.DIAG2_EDGE)
    top5 = cv.named_kernel("top edge", 5)
    assert (top5[:2] == -1).all() and (top5[2] == 0).all() and (top5[3:] == 1).all()
    assert np.isclose(cv.named_kernel("blur", 4).sum(), 1) and np.isclose(cv.named_kernel("sharpen", 5).sum(), 1)
    identity = cv.convolution_view(IMAGE, cv.named_kernel("identity", 3), cv.Geometry(3, padding=1))
    np.testing.assert_allclose(identity.output, IMAGE, atol=1e-6)
    assert np.array_equal(cv.named_kernel("random", 3, seed=1), cv.named_kernel("random", 3, seed=1))
    assert not np.array_equal(cv.named_kernel("random", 3, seed=1), cv.named_kernel("random", 3, seed=2))
    with pytest.raises(cv.ExplorerError, match="not 'sobel'"):
        cv.named_kernel("sobel")


def test_typed_kernels_parse_or_say_what_is_wrong():
    np.testing.assert_allclose(cv.parse_kernel("[[1, -2.5], [3e-1, .4]]", 2), [[1, -2.5], [0.3, 0.4]], rtol=1e-6)
    with pytest.raises(cv.ExplorerError, match="'two' is not a number"):
        cv.parse_kernel("1 two 3 4", 2)
    with pytest.raises(cv.ExplorerError, match="8 numbers typed where a 3x3 kernel has 9"):
        cv.parse_kernel("1 2 3 4 5 6 7 8", 3)


@pytest.mark.parametrize("bad", [dict(stride=0), dict(dilation=0), dict(padding=-1), dict(kernel_size=0),
                                 dict(stride=1.5)])
def test_a_stride_or_dilation_of_zero_is_refused(bad):
    with pytest.raises(cv.ExplorerError, match="at least"):
        cv.Geometry(**bad)


def test_a_kernel_larger_than_the_padded_input_is_refused_with_the_numbers():
    with pytest.raises(cv.ExplorerError, match="spans 13 pixels, more than the padded input's 10"):
        cv.convolution_view(IMAGE[:8, :8], cv.named_kernel("blur", 7), cv.Geometry(7, padding=1, dilation=2))


@pytest.mark.parametrize("k,s,p,d", [(3, 1, 0, 1), (3, 2, 1, 1), (5, 3, 2, 1), (7, 2, 3, 2), (4, 1, 0, 3), (1, 4, 0, 1)])
def test_the_course_formula_and_the_shape_jax_computes_agree(k, s, p, d):
    view = cv.convolution_view(IMAGE, cv.named_kernel("left edge", k), cv.Geometry(k, s, p, d), out_channels=2)
    side = conv.conv_output_size(28, k, s, p, d)
    assert view.jax_shape == (1, side, side, 2) and view.formula.endswith(f"= {side}")
    want = conv.conv2d(IMAGE[None], view.kernels, s, p, d)[0]
    np.testing.assert_allclose(view.output, want, atol=1e-6)


def test_the_view_is_the_lessons_convolution_and_its_channels():
    kernel = cv.named_kernel("top edge")
    view = cv.convolution_view(IMAGE, kernel, cv.Geometry(3), out_channels=4)
    by_loops = conv.conv2d_loops(IMAGE[None], kernel[:, :, None, None])[0, :, :, 0]
    np.testing.assert_allclose(view.output[:, :, 0], by_loops, atol=1e-5)
    turned = conv.conv2d(IMAGE[None], np.rot90(kernel, -1).copy()[:, :, None, None])[0, :, :, 0]
    np.testing.assert_allclose(view.output[:, :, 1], turned, atol=1e-5)  # a quarter turn: the left edge
    rgb = cv.convolution_view(IMAGE, kernel, cv.Geometry(3), in_channels=3)
    assert rgb.kernels.shape == (3, 3, 3, 1)
    np.testing.assert_allclose(rgb.output, view.output[:, :, :1], atol=1e-5)  # grey repeated gives the same


def test_windows_and_receptive_fields_by_hand():
    assert sorted(map(tuple, cv.window((0, 0), cv.Geometry(3)))) == [(r, c) for r in range(3) for c in range(3)]
    assert sorted({int(r) for r, _ in cv.window((1, 1), cv.Geometry(3, stride=2, padding=1))}) == [1, 2, 3]
    assert sorted({int(r) for r, _ in cv.window((0, 0), cv.Geometry(3, dilation=2))}) == [0, 2, 4]
    corner = cv.receptive_field((28, 28, 1), cv.Geometry(3, padding=1), (0, 0))
    assert corner.sum() == 4 and corner[:2, :2].all()  # the rest of its window is padding
    dilated = cv.receptive_field((28, 28), cv.Geometry(3, dilation=2), (0, 0))
    assert sorted(zip(*map(list, np.nonzero(dilated)))) == [(r, c) for r in (0, 2, 4) for c in (0, 2, 4)]


@pytest.mark.parametrize("k,s,p,d", [(3, 2, 1, 1), (5, 1, 2, 1), (4, 3, 0, 2), (7, 2, 3, 1)])
def test_receptive_fields_are_the_windows_and_the_outputs_seeing_a_pixel_their_inverse(k, s, p, d):
    geometry = cv.Geometry(k, s, p, d)
    side = geometry.output_side(12)
    for out in [(0, 0), (side - 1, side // 2)]:
        field = cv.receptive_field((12, 12, 3), geometry, out)
        inside = {(int(r), int(c)) for r, c in cv.window(out, geometry) if 0 <= r < 12 and 0 <= c < 12}
        assert {(int(r), int(c)) for r, c in zip(*np.nonzero(field))} == inside
    seeing = cv.outputs_seeing((12, 12), geometry, (5, 0))
    for r in range(side):
        for c in range(side):
            assert seeing[r, c] == cv.receptive_field((12, 12), geometry, (r, c))[5, 0]


def test_uploads_and_drawings():
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (255, 0, 0)).save(out, "PNG")
    grey, colour = cv.read_upload(out.getvalue(), 1), cv.read_upload(out.getvalue(), 3)
    assert grey.shape == (28, 28, 1) and colour.shape == (28, 28, 3) and np.isclose(colour[0, 0, 0], 1.0)
    with pytest.raises(cv.ExplorerError, match="not an image Pillow can open"):
        cv.read_upload(b"just some text", 1)
    cells = np.zeros(28 * 28)
    cells[28 * 3 + 4] = 1
    assert cv.drawn_image(cells)[3, 4, 0] == 1
    with pytest.raises(cv.ExplorerError, match="784 cells, got 10"):
        cv.drawn_image(np.zeros(10))


@pytest.fixture(scope="module")
def cnn_state():
    images = jnp.asarray(RNG.random((64, 28, 28, 1)), jnp.float32)
    state = train.create_train_state(SimpleCNN(), jax.random.key(0), images[:1], train.make_optimizer("sgd", 0.1))
    state, _ = learner.fit(state, data.make_batches((images, jnp.arange(64) % 10), 32), epochs=1)
    return state, np.asarray(images)


def test_a_trained_models_feature_maps_and_kernels(cnn_state):
    state, images = cnn_state
    maps = features.feature_maps(state, images[0])
    assert list(maps) == [f"Conv2D_{i}" for i in range(5)]
    assert [m.shape for m in maps.values()] == [(14, 14, 4), (7, 7, 8), (4, 4, 16), (2, 2, 16), (1, 1, 10)]
    first = state.params["Conv2D_0"]
    want = conv.conv2d(images[:1], first["kernel"], 2, 1)[0] + first["bias"]
    np.testing.assert_allclose(maps["Conv2D_0"], want, atol=1e-5)
    kernels = features.layer_kernels(state)
    assert kernels["Conv2D_1"].shape == (3, 3, 4, 8)
    with pytest.raises(cv.ExplorerError, match="train state"):
        features.feature_maps({"params": state.params}, images[0])


# the widgets, driven headless
widgets = pytest.importorskip("ipywidgets")


def upload_value(content: bytes, name: str):
    """What a FileUpload's value holds after a file is chosen, in ipywidgets 8 or 7."""
    if int(widgets.__version__.split(".")[0]) >= 8:
        return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
                 "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    return {name: {"metadata": {"name": name, "type": "", "size": len(content), "lastModified": 0},
                   "content": content}}


def test_the_explorer_redraws_on_every_control_and_shows_bad_input_as_a_message():
    from jaxdl.explore import ConvolutionExplorer

    explorer = ConvolutionExplorer({"digit": RNG.random((5, 28, 28, 1)), "small": RNG.random((3, 9, 9, 1))})
    assert explorer.message == "" and bytes(explorer.picture.value).startswith(b"\x89PNG")
    assert "⌊(28 + 2·0 − 3) / 1⌋ + 1 = 26" in explorer.status.value and "(1, 26, 26, 1)" in explorer.status.value
    for control, value in ((explorer.size, 5), (explorer.stride, 2), (explorer.padding, 2), (explorer.dilation, 2),
                           (explorer.out_channels, 3), (explorer.in_channels, 3), (explorer.kernel, "sharpen"),
                           (explorer.row, 4), (explorer.col, 5), (explorer.index, 2)):
        before = bytes(explorer.picture.value), explorer.status.value
        control.value = value  # channels in: the same picture of a grey image, a (k, k, 3, out) bank
        assert explorer.message == "" and (bytes(explorer.picture.value), explorer.status.value) != before, value
    assert explorer.view().pixel == (4, 5) and explorer.row.max == explorer.view().output.shape[0] - 1
    explorer.kernel.value = "typed"
    explorer.typed.value = "1 2 three"
    assert "'three' is not a number" in explorer.message and "three" in explorer.status.value
    explorer.kernel.value = "blur"
    explorer.source.value = "small"
    explorer.size.value, explorer.dilation.value, explorer.padding.value = 7, 3, 0
    assert "spans 19 pixels, more than the padded input's 9" in explorer.message
    explorer.source.value = "upload"
    assert "choose an image file" in explorer.message
    explorer.upload.set_trait("value", upload_value(b"not an image", "notes.txt"))  # read-only in ipywidgets 7
    assert "not an image Pillow can open" in explorer.message
    explorer.source.value = "draw"
    grid = explorer.input_box.children[1].children[0]
    assert len(grid.children) == 28 * 28
    explorer.size.value, explorer.dilation.value = 3, 1
    grid.children[28 * 10 + 10].value = True
    assert explorer.message == "" and explorer.input_image()[10, 10, 0] == 1
    bundle = explorer._repr_mimebundle_()
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(bundle)
    assert "in Jupyter and Colab the explorer is interactive" in bundle["text/plain"]


def test_the_feature_map_explorer(cnn_state):
    from jaxdl.explore import FeatureMapExplorer

    state, images = cnn_state
    explorer = FeatureMapExplorer(state, images[:4], labels=np.arange(4), class_names=[str(i) for i in range(10)])
    assert explorer.message == "" and list(explorer.layer.options)[0] == "Conv2D_0"
    before = bytes(explorer.picture.value)
    explorer.layer.value = "Conv2D_2"
    explorer.index.value = 3
    assert explorer.message == "" and bytes(explorer.picture.value) != before
