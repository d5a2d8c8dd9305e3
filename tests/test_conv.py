"""The teaching module: the three convolutions agree, the size arithmetic is the course's
formula, the edge kernels are the lesson's. (The fast kernels: test_fastpath.py.)"""

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
