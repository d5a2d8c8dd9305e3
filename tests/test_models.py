"""Every course model builds, has the output shape and the parameter count of the
same model in PyTorch (counted by hand below), and fails clearly on a wrong input."""

import jax
import jax.numpy as jnp
import pytest

import jaxdl
import jaxdl.models as m


def conv(cin, cout, k):  # a k x k PyTorch Conv2d: weights + biases
    return k * k * cin * cout + cout


def dense(nin, nout):
    return nin * nout + nout


EXPECTED = {
    # name: (output shape for a batch of 2, parameter count in PyTorch)
    "LinearRegressionModel": ((2, 1), 2),
    "LinearRegressionModelV2": ((2, 1), dense(1, 1)),
    "CircleModelV0": ((2, 1), dense(2, 5) + dense(5, 1)),
    "CircleModelV1": ((2, 1), dense(2, 10) + dense(10, 10) + dense(10, 1)),
    "CircleModelV2": ((2, 1), dense(2, 10) + dense(10, 10) + dense(10, 1)),
    "BlobModel": ((2, 4), dense(2, 8) + dense(8, 8) + dense(8, 4)),
    "FashionMNISTModelV0": ((2, 10), dense(784, 10) + dense(10, 10)),
    "FashionMNISTModelV1": ((2, 10), dense(784, 10) + dense(10, 10)),
    "FashionMNISTModelV2": ((2, 10), conv(1, 10, 3) + 3 * conv(10, 10, 3) + dense(10 * 7 * 7, 10)),
    "TinyVGG": ((2, 3), conv(3, 10, 3) + 3 * conv(10, 10, 3) + dense(10 * 13 * 13, 3)),
    "FashionCNN": ((2, 10), conv(1, 32, 3) + conv(32, 64, 3) + conv(64, 128, 3)
                   + dense(128 * 2 * 2, 512) + dense(512, 10)),
    # the lesson's nn.Conv2d(cin, cout, 3): padding 0, so 28 -> 26 -> 24 -> 22 -> pool 11 -> 9 -> 7 -> 5 -> pool 2
    "MNISTBatchNormCNN": ((2, 10), conv(1, 32, 3) + 2 * conv(32, 32, 3) + conv(32, 64, 3)
                          + 2 * conv(64, 64, 3) + 2 * (3 * 32 + 3 * 64) + dense(2 * 2 * 64, 10)),
    "MNISTMLP": ((2, 10), dense(784, 600) + dense(600, 600) + dense(600, 10)),
    "MNISTOneConv": ((2, 10), conv(1, 10, 7) + dense(22 * 22 * 10, 600) + dense(600, 600) + dense(600, 10)),
    "MNISTTwoConv": ((2, 10), conv(1, 10, 7) + conv(10, 55, 2) + dense(21 * 21 * 55, 600)
                     + dense(600, 600) + dense(600, 10)),
    "SimpleCNN": ((2, 10), conv(1, 4, 3) + conv(4, 8, 3) + conv(8, 16, 3) + conv(16, 16, 3) + conv(16, 10, 3)),
    "ConvAutoencoder": ((2, 28, 28, 1), conv(1, 2, 3) + conv(2, 4, 3) + conv(4, 8, 3)
                        + conv(8, 4, 3) + conv(4, 2, 3) + conv(2, 1, 3)),
}


def test_every_course_model_is_checked():
    assert set(EXPECTED) == set(m.COURSE_MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_shape_and_parameter_count(name, key):
    model, shape = m.COURSE_MODELS[name]
    x = jax.random.uniform(key, (2, *shape))
    variables = jax.jit(model.init)(key, x)
    out = jax.jit(model.apply)(variables, x)
    expected_shape, expected_params = EXPECTED[name]
    assert out.shape == expected_shape
    assert out.dtype == jnp.float32
    assert m.count_params(variables) == expected_params


def test_counts_quoted_by_the_course():
    assert EXPECTED["SimpleCNN"][1] == 5_274
    assert EXPECTED["TinyVGG"][1] == 8_083
    assert EXPECTED["FashionMNISTModelV2"][1] == 7_740
    assert EXPECTED["MNISTMLP"][1] == 837_610


def test_flattened_size_follows_the_input(key):
    # TinyVGG on 32x32 images: 32 -> 30 -> 28 -> 14 -> 12 -> 10 -> 5
    model = m.TinyVGG(3, 10, 3)
    variables = model.init(key, jnp.zeros((1, 32, 32, 3)))
    assert variables["params"]["Dense_0"]["kernel"].shape == (10 * 5 * 5, 3)


def test_linear_regression_model_is_weight_times_x_plus_bias(key):
    model = m.LinearRegressionModel()
    variables = {"params": {"weight": jnp.array([0.7]), "bias": jnp.array([0.3])}}
    x = jnp.arange(0, 1, 0.02)[:, None]
    assert jnp.allclose(model.apply(variables, x), 0.7 * x + 0.3)


def test_autoencoder_encodes_to_4x4x8_and_reconstructs_in_unit_range(key):
    model = m.ConvAutoencoder()
    x = jax.random.uniform(key, (3, 28, 28, 1))
    variables = model.init(key, x)
    code = model.apply(variables, x, method=m.ConvAutoencoder.encode)
    assert code.shape == (3, 4, 4, 8)
    out = model.apply(variables, code, method=m.ConvAutoencoder.decode)
    assert out.shape == x.shape and bool(((out >= 0) & (out <= 1)).all())


def test_dropout_model_differs_between_train_and_eval(key):
    model = m.FashionCNN()
    x = jax.random.uniform(key, (4, 28, 28, 1))
    variables = model.init(key, x)
    eval_out = model.apply(variables, x)
    assert jnp.array_equal(eval_out, model.apply(variables, x))
    train_a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not jnp.allclose(train_a, eval_out) and not jnp.allclose(train_a, train_b)


def test_batchnorm_model_as_the_lesson_and_padded():
    assert EXPECTED["MNISTBatchNormCNN"][1] == 114_314  # the lesson's model, counted by hand above
    padded = jax.eval_shape(m.MNISTBatchNormCNN(padding=1).init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    assert m.count_params(padded) == EXPECTED["MNISTBatchNormCNN"][1] - dense(2 * 2 * 64, 10) + dense(7 * 7 * 64, 10)


@pytest.mark.parametrize("conv_relu", [False, True])
def test_mlp_to_cnn_convolutions_feed_the_mlp_as_the_lesson_speaks_it(conv_relu, key):
    # the lesson names no ReLU after its convolutions: the first Dense sees the raw maps
    model = m.MNISTTwoConv(conv_relu=conv_relu)
    x = jax.random.normal(key, (2, 28, 28, 1))
    variables = model.init(key, x)
    _, state = model.apply(variables, x, capture_intermediates=True)
    seen = state["intermediates"]
    maps = seen["Conv2D_1"]["__call__"][0]
    assert float(maps.min()) < 0  # so a ReLU would change what follows
    dense = variables["params"]["MLPHead_0"]["Dense_0"]
    flat = (jax.nn.relu(maps) if conv_relu else maps).reshape(2, -1)
    expected = flat @ dense["kernel"] + dense["bias"]
    first_dense = seen["MLPHead_0"]["Dense_0"]["__call__"][0]
    assert jnp.allclose(first_dense, expected, atol=1e-4)


def test_batchnorm_model_updates_statistics_only_in_training(key):
    model = m.MNISTBatchNormCNN()
    x = jax.random.uniform(key, (4, 28, 28, 1))
    variables = model.init(key, x)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updates["batch_stats"])
    assert any(not jnp.allclose(a, b) for a, b in zip(before, after))
    with pytest.raises(Exception):  # eval must not try to write the statistics
        model.apply(variables, x, train=True)


@pytest.mark.parametrize("name,bad_shape,message", [
    ("FashionMNISTModelV2", (2, 28, 28, 3), "expects 1 input features/channels"),
    ("TinyVGG", (2, 64, 64), "rank-4"),
    ("CircleModelV0", (2, 3), "expects 2 input features"),
    ("FashionMNISTModelV0", (2, 32, 32, 1), "expects examples of 784 values"),
])
def test_wrong_input_names_expected_and_received_shape(name, bad_shape, message, key):
    model, _ = m.COURSE_MODELS[name]
    with pytest.raises(ValueError, match=message) as err:
        model.init(key, jnp.zeros(bad_shape))
    assert str(bad_shape) in str(err.value)


def test_integer_images_are_refused_with_a_hint(key):
    model, shape = m.COURSE_MODELS["SimpleCNN"]
    with pytest.raises(TypeError, match="astype"):
        model.init(key, jnp.zeros((1, *shape), jnp.uint8))


def test_summary_lists_layers_shapes_and_total():
    table = jaxdl.summary(m.TinyVGG(3, 10, 3), (1, 64, 64, 3))
    assert "Total params: 8,083" in table
    assert "(1, 13, 13, 10)" in table and "Dense_0 (Dense)" in table
    lines = table.splitlines()
    # a parent row comes before its children
    assert lines.index(next(l for l in lines if "VGGBlock_0" in l)) < lines.index(
        next(l for l in lines if "Conv2D_0" in l))
    bn = jaxdl.summary(m.MNISTBatchNormCNN(), (1, 28, 28, 1))
    assert "Non-trainable state" in bn
