"""The three convolutions agree; the size arithmetic is the course's formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import conv


@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
@pytest.mark.parametrize("padding", [0, 1, (2, 0), "SAME", "VALID", ((1, 0), (0, 2))])
@pytest.mark.parametrize("kernel_hw", [(3, 3), (2, 4)])
def test_three_convolutions_agree(stride, padding, kernel_hw):
    k1, k2 = jax.random.split(jax.random.key(stride if isinstance(stride, int) else 7))
    images = jax.random.normal(k1, (2, 9, 8, 3))
    kernels = jax.random.normal(k2, (*kernel_hw, 3, 5))
    reference = conv.conv2d(images, kernels, stride, padding)
    loops = conv.conv2d_loops(images, kernels, stride, padding)
    im2col = conv.conv2d_im2col(images, kernels, stride, padding)
    assert loops.shape == im2col.shape == reference.shape
    np.testing.assert_allclose(loops, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(im2col, reference, rtol=1e-4, atol=1e-4)


def test_dilation_agrees():
    images = jax.random.normal(jax.random.key(1), (1, 10, 10, 2))
    kernels = jax.random.normal(jax.random.key(2), (3, 3, 2, 4))
    reference = conv.conv2d(images, kernels, 1, 2, dilation=2)
    np.testing.assert_allclose(conv.conv2d_loops(images, kernels, 1, 2, 2), reference, atol=1e-4)
    np.testing.assert_allclose(conv.conv2d_im2col(images, kernels, 1, 2, 2), reference, atol=1e-4)


def test_im2col_is_jittable_and_matches():
    images = jax.random.normal(jax.random.key(3), (4, 7, 7, 1))
    kernels = jnp.asarray(conv.edge_kernels())
    fast = jax.jit(conv.conv2d_im2col, static_argnums=(2, 3))(images, kernels, 2, 1)
    np.testing.assert_allclose(fast, conv.conv2d(images, kernels, 2, 1), atol=1e-5)


def test_auto_picks_im2col_where_it_was_measured_faster():
    assert conv.uses_im2col((3, 3, 1, 10), 1, backend="cpu")        # 9-value patch
    assert conv.uses_im2col((3, 3, 32, 64), 2, backend="cpu")      # strided
    assert not conv.uses_im2col((3, 3, 32, 32), 1, backend="cpu")  # 288-value patch
    # GPU: while the patch matrix is small, at any stride
    assert conv.uses_im2col((3, 3, 10, 10), 1, backend="gpu", images_shape=(32, 28, 28, 10))   # 2.3M values
    assert conv.uses_im2col((3, 3, 64, 128), 2, backend="gpu", images_shape=(128, 6, 6, 64))   # 0.3M
    assert not conv.uses_im2col((3, 3, 32, 32), 1, backend="gpu", images_shape=(120, 28, 28, 32))  # 27M
    assert not conv.uses_im2col((3, 3, 1, 10), 1, backend="gpu")  # size unknown
    assert not conv.uses_im2col((3, 3, 1, 10), 2, backend="tpu")


@pytest.mark.parametrize("shape, kernel, stride", [((2, 9, 9, 1), (3, 3, 1, 4), 1), ((2, 9, 9, 8), (3, 3, 8, 4), 1),
                                                   ((2, 9, 9, 8), (3, 3, 8, 4), 2), ((2, 9, 9, 2), (3, 3, 2, 1), 1),
                                                   ((2, 8, 9, 4), (3, 3, 4, 2), 1), ((2, 7, 9, 10), (3, 3, 10, 10), 1)])
def test_auto_has_the_values_and_gradients_of_lax(shape, kernel, stride):
    images = jax.random.normal(jax.random.key(0), shape)
    kernels = jax.random.normal(jax.random.key(1), kernel)

    def loss(conv_fn):
        return jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv_fn(x, w, stride, 1))), argnums=(0, 1))

    np.testing.assert_allclose(conv.conv2d_auto(images, kernels, stride, 1), conv.conv2d(images, kernels, stride, 1),
                               rtol=1e-5, atol=1e-5)
    for auto, reference in zip(loss(conv.conv2d_auto)(images, kernels), loss(conv.conv2d)(images, kernels)):
        np.testing.assert_allclose(auto, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", [0, 1, ((1, 0), (2, 1)), "SAME"])
@pytest.mark.parametrize("kernel", [(3, 3, 2, 1), (2, 3, 1, 2)])
def test_planes_has_the_values_and_gradients_of_lax(padding, kernel):
    images = jax.random.normal(jax.random.key(0), (3, 8, 7, kernel[2]))
    kernels = jax.random.normal(jax.random.key(1), kernel)
    np.testing.assert_allclose(conv.conv2d_planes(images, kernels, padding), conv.conv2d(images, kernels, 1, padding),
                               rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(images, kernels)
             for f in (lambda x, w: conv.conv2d_planes(x, w, padding), lambda x, w: conv.conv2d(x, w, 1, padding))]
    for planes, reference in zip(*grads):
        np.testing.assert_allclose(planes, reference, rtol=1e-4, atol=1e-4)


def test_auto_takes_planes_for_one_or_two_output_channels_on_cpu():
    assert conv.uses_planes((3, 3, 2, 1), backend="cpu")       # the autoencoder's last layer
    assert conv.uses_planes((3, 3, 4, 2), backend="cpu")       # 72 terms
    assert not conv.uses_planes((3, 3, 8, 4), backend="cpu")   # four channels out
    assert not conv.uses_planes((3, 3, 1, 2), 2, backend="cpu")  # strided
    assert not conv.uses_planes((3, 3, 2, 1), dilation=2, backend="cpu")
    assert not conv.uses_planes((3, 3, 2, 1), backend="gpu")


@pytest.mark.parametrize("pack", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", [0, 1, ((1, 0), (2, 1)), "SAME"])
@pytest.mark.parametrize("kernel", [(3, 3, 3, 5), (2, 4, 1, 3), (3, 3, 8, 2)])  # the last: patch > IM2COL_MAX_PATCH
def test_packed_has_the_values_and_gradients_of_lax(pack, padding, kernel):
    # widths 9 and 8 with these kernels and paddings give rows that pack evenly and rows that do not
    images = jax.random.normal(jax.random.key(0), (2, 7, 9 if pack != 2 else 8, kernel[2]))
    kernels = jax.random.normal(jax.random.key(1), kernel)
    np.testing.assert_allclose(conv.conv2d_packed(images, kernels, padding, pack), conv.conv2d(images, kernels, 1, padding),
                               rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(images, kernels)
             for f in (lambda x, w: conv.conv2d_packed(x, w, padding, pack), lambda x, w: conv.conv2d(x, w, 1, padding))]
    for packed, reference in zip(*grads):
        np.testing.assert_allclose(packed, reference, rtol=1e-4, atol=1e-4)


def test_packed_first_layer_has_lax_second_order_gradients():
    # a small patch takes its kernel gradient from the unpacked convolution (a custom VJP):
    # gradients of gradients must still be lax's
    images = jax.random.normal(jax.random.key(0), (2, 6, 8, 1))
    kernels = jax.random.normal(jax.random.key(1), (3, 3, 1, 4))

    def grad_norm(conv_fn):
        kernel_grad = jax.grad(lambda w, x: jnp.sum(jnp.sin(conv_fn(x, w))))
        return jax.grad(lambda w, x: jnp.sum(kernel_grad(w, x) ** 2), argnums=(0, 1))

    packed = grad_norm(lambda x, w: conv.conv2d_packed(x, w, 1, 2))(kernels, images)
    reference = grad_norm(lambda x, w: conv.conv2d(x, w, 1, 1))(kernels, images)
    for got, want in zip(packed, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chunks", [1, 2, 3, 7])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0)])
def test_chunked_kernel_grad_has_the_values_and_gradients_of_lax(chunks, stride, padding):
    images = jax.random.normal(jax.random.key(0), (7, 6, 5, 3))  # 7 images: chunks of unequal sizes
    kernels = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    chunked = lambda x, w: conv.conv2d_chunked_kernel_grad(x, w, stride, padding, 1, chunks)  # noqa: E731
    plain = lambda x, w: conv.conv2d(x, w, stride, padding)  # noqa: E731
    np.testing.assert_allclose(chunked(images, kernels), plain(images, kernels), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(images, kernels) for f in (chunked, plain)]
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    second = [jax.grad(lambda w: jnp.sum(jax.grad(lambda w_: jnp.sum(jnp.sin(f(images, w_))))(w) ** 2))(kernels)
              for f in (chunked, plain)]
    np.testing.assert_allclose(*second, rtol=1e-4, atol=1e-4)


def test_chunked_kernel_grad_rejects_bad_chunks():
    with pytest.raises(ValueError, match="chunks must be an int from 1 to the batch size 2, got 3"):
        conv.conv2d_chunked_kernel_grad(jnp.zeros((2, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), chunks=3)


def test_kernel_grad_chunks_hold_a_few_mib_of_input_on_cpu():
    per_chunk = conv.KERNEL_GRAD_CHUNK_BYTES // (28 * 28 * 32 * 4)   # 41 of MNISTBatchNormCNN's 28x28x32 inputs
    assert conv.kernel_grad_chunks((120, 28, 28, 32), backend="cpu") == -(-120 // per_chunk) == 3
    assert conv.kernel_grad_chunks((120, 14, 14, 32), backend="cpu") == 1
    assert conv.kernel_grad_chunks((1, 512, 512, 64), backend="cpu") == 1   # one image bigger than a chunk
    assert conv.kernel_grad_chunks((120, 28, 28, 32), backend="gpu") == 1


def test_auto_chunks_the_kernel_gradient_of_large_lax_convolutions(monkeypatch):
    monkeypatch.setattr(conv, "KERNEL_GRAD_CHUNK_BYTES", 2 * 8 * 8 * 32 * 4)  # two images a chunk
    images = jax.random.normal(jax.random.key(0), (5, 8, 8, 32))
    kernels = jax.random.normal(jax.random.key(1), (3, 3, 32, 32)) * 0.1
    assert conv.conv_algorithm(images.shape, kernels.shape) == "lax"
    kernel_grad = jax.jit(jax.grad(lambda w: jnp.sum(jnp.sin(conv.conv2d_auto(images, w, 1, 1)))))
    program = kernel_grad.lower(kernels).compile().as_text()
    on_cpu = jax.default_backend() == "cpu"
    assert program.count(" convolution(") == (1 + 3 if on_cpu else 2)  # forward, then 3 chunks of 2, 2 and 1 images
    got = kernel_grad(kernels)
    want = jax.grad(lambda w: jnp.sum(jnp.sin(conv.conv2d(images, w, 1, 1))))(kernels)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((3, 13, 11, 2), (3, 3, 2, 4), 2, 1),        # SimpleCNN-like, odd sizes
    ((2, 9, 8, 2), (2, 3, 2, 3), 3, (1, 2)),      # stride above the kernel height
    ((2, 9, 8, 2), (5, 5, 2, 3), (2, 3), 2),      # kernel over twice the stride
])
def test_strided_im2col_has_lax_gradients_of_both_orders(shape, kernel, stride, padding):
    # a strided im2col's input gradient is gathered phase by phase (a custom VJP)
    images = jax.random.normal(jax.random.key(0), shape)
    kernels = jax.random.normal(jax.random.key(1), kernel)

    def grads(conv_fn):
        loss = lambda x, w: jnp.sum(jnp.sin(conv_fn(x, w, stride, padding)))  # noqa: E731
        first = jax.grad(loss, argnums=(0, 1))(images, kernels)
        second = jax.grad(lambda x: jnp.sum(jax.grad(loss)(x, kernels) ** 2))(images)
        return (*first, second)

    for got, want in zip(grads(conv.conv2d_im2col), grads(conv.conv2d)):  # float32 sums in another order
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_packed_kernels_put_each_tap_where_its_pixel_reads():
    kernels = np.arange(3 * 3 * 2 * 5, dtype=np.float32).reshape(3, 3, 2, 5) + 1
    pack, (kh, kw, cin, cout) = 2, kernels.shape
    packed = np.asarray(conv.packed_kernels(kernels, pack))
    assert packed.shape == (3, 2, pack * cin, pack * cout)  # output pixels 0, 1 read input pixels 0..3: two blocks
    for q in range(2):
        for r in range(pack):
            for p in range(pack):
                tap = q * pack + r - p
                block = packed[:, q, r * cin:(r + 1) * cin, p * cout:(p + 1) * cout]
                np.testing.assert_array_equal(block, kernels[:, tap] if 0 <= tap < kw else 0)


def test_auto_packs_rows_of_few_channels_on_cpu():
    assert conv.packing((3, 3, 10, 10), backend="cpu") == 2   # V2's and TinyVGG's layers: 20 -> 20
    assert conv.packing((3, 3, 1, 10), backend="cpu") == 4    # a first layer: 4 -> 40
    assert conv.packing((3, 3, 1, 32), backend="cpu") == 2    # 2 -> 64
    assert conv.packing((3, 3, 32, 32), backend="cpu") == 1   # measured slower packed
    assert conv.packing((3, 3, 10, 10), 2, backend="cpu") == 1
    assert conv.packing((3, 3, 10, 10), dilation=2, backend="cpu") == 1
    assert conv.packing((3, 3, 10, 10), backend="gpu") == 1
    with pytest.raises(ValueError, match="pack must be a positive int"):
        conv.conv2d_packed(jnp.zeros((1, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), 0, 0)


@pytest.mark.parametrize("n,k,s,p,expected", [
    (28, 3, 1, 1, 28), (28, 3, 1, 0, 26), (64, 3, 1, 0, 62), (28, 3, 2, 1, 14),
    (7, 3, 2, 1, 4), (28, 7, 1, 0, 22), (22, 2, 1, 0, 21), (32, 3, 2, 1, 16),
])
def test_conv_output_size_is_the_course_formula(n, k, s, p, expected):
    assert conv.conv_output_size(n, k, s, p) == expected == (n + 2 * p - k) // s + 1


def test_conv_output_size_matches_what_lax_computes():
    for n, k, s, p in [(28, 3, 2, 1), (13, 5, 3, 2), (10, 4, 1, 0)]:
        out = conv.conv2d(jnp.zeros((1, n, n, 1)), jnp.zeros((k, k, 1, 1)), s, p)
        assert out.shape[1] == conv.conv_output_size(n, k, s, p)


def test_kernel_larger_than_input_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        conv.conv_output_size(2, 5)


def test_top_edge_kernel_finds_a_horizontal_edge():
    # dark top half, bright bottom half: the top-edge kernel fires on the boundary only
    image = np.zeros((6, 6), np.float32)
    image[3:] = 1.0
    out = np.asarray(conv.conv2d_loops(image[None, :, :, None], conv.TOP_EDGE[:, :, None, None]))[0, :, :, 0]
    assert out.shape == (4, 4)
    np.testing.assert_array_equal(out[:, 0], [0, 3, 3, 0])
    assert conv.apply_kernel(image, 3, 3, conv.TOP_EDGE) == 3.0
    assert conv.apply_kernel(image, 1, 3, conv.TOP_EDGE) == 0.0


def test_edge_kernels_are_a_hwio_bank():
    bank = conv.edge_kernels()
    assert bank.shape == (3, 3, 1, 4)
    np.testing.assert_array_equal(bank[:, :, 0, 1], conv.LEFT_EDGE)
    np.testing.assert_array_equal(conv.LEFT_EDGE, conv.TOP_EDGE.T)


@pytest.mark.parametrize("fn", [conv.conv2d, conv.conv2d_im2col, conv.conv2d_loops])
def test_bad_shapes_name_expected_and_received(fn):
    with pytest.raises(ValueError, match=r"NHWC.*\(28, 28\)"):
        fn(np.zeros((28, 28)), conv.edge_kernels())
    with pytest.raises(ValueError, match=r"3 channels.*expect 1"):
        fn(np.zeros((1, 28, 28, 3)), conv.edge_kernels())
    with pytest.raises(ValueError, match="padding"):
        fn(np.zeros((1, 28, 28, 1)), conv.edge_kernels(), 1, "FULL")


def test_conv_benchmark_finds_every_course_conv_layer():
    """benchmarks/conv_speed.py lists the layers by intercepting the models: the list
    must follow them (FashionCNN's three strided layers, TinyVGG's 64x64 RGB input)."""
    import conv_speed  # benchmarks/ is on sys.path (conftest)

    layers = conv_speed.course_conv_layers()
    by_model = {}
    for name, shape, layer in layers:
        by_model.setdefault(name, []).append((shape, layer))
    assert [layer["strides"] for _, layer in by_model["FashionCNN"]] == [(2, 2)] * 3
    assert by_model["TinyVGG"][0][0] == (32, 64, 64, 3)  # course batch size 32
    assert {"FashionMNISTModelV2", "MNISTBatchNormCNN", "SimpleCNN", "ConvAutoencoder"} <= set(by_model)
