"""The fast path against the plain path: each kernel has the values and gradients (of both
orders) of ``conv.conv2d`` / ``lax.reduce_window``; every course model's train step is the
same under the fast and the plain policy; the policy picks its kernel by layer shape and
platform; the switch and the compiler behave."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import conv, fastpath
from jaxdl import layers as L
from jaxdl import train as T
from jaxdl.fastpath import compiler
from jaxdl.fastpath.scan import has_primitive
from jaxdl.models import COURSE_MODELS


def grads(conv_fn, images, kernels, order=1):
    loss = lambda x, w: jnp.sum(jnp.sin(conv_fn(x, w)))  # noqa: E731
    first = jax.grad(loss, argnums=(0, 1))(images, kernels)
    if order == 1:
        return first
    second = jax.grad(lambda x, w: jnp.sum(jax.grad(loss, argnums=1)(x, w) ** 2), argnums=(0, 1))(images, kernels)
    return (*first, *second)


def assert_same_convolution(fast, plain, images, kernels, order=2, tol=1e-4):
    np.testing.assert_allclose(fast(images, kernels), plain(images, kernels), rtol=1e-5, atol=1e-5)
    for got, want in zip(grads(fast, images, kernels, order), grads(plain, images, kernels, order)):
        # float32 sums in another order: errors grow with the values (second-order ones reach hundreds)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


# --- each kernel against conv.conv2d -----------------------------------------------------


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((3, 13, 11, 2), (3, 3, 2, 4), 2, 1),        # SimpleCNN-like, odd sizes
    ((2, 9, 8, 2), (2, 3, 2, 3), 3, (1, 2)),      # stride above the kernel height
    ((2, 9, 8, 2), (5, 5, 2, 3), (2, 3), 2),      # kernel over twice the stride
    ((2, 9, 9, 1), (3, 3, 1, 4), 1, 1),           # stride 1: the lesson's im2col itself
])
def test_im2col(shape, kernel, stride, padding):
    images = jax.random.normal(jax.random.key(0), shape)
    weights = jax.random.normal(jax.random.key(1), kernel)
    assert_same_convolution(lambda x, w: fastpath.conv2d_im2col(x, w, stride, padding),
                            lambda x, w: conv.conv2d(x, w, stride, padding), images, weights, tol=1e-3)


@pytest.mark.parametrize("padding", [0, 1, ((1, 0), (2, 1)), "SAME"])
@pytest.mark.parametrize("kernel", [(3, 3, 2, 1), (2, 3, 1, 2)])
def test_planes(padding, kernel):
    images = jax.random.normal(jax.random.key(0), (3, 8, 7, kernel[2]))
    weights = jax.random.normal(jax.random.key(1), kernel)
    assert_same_convolution(lambda x, w: fastpath.conv2d_planes(x, w, padding),
                            lambda x, w: conv.conv2d(x, w, 1, padding), images, weights, order=1)


@pytest.mark.parametrize("pack", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", [0, 1, ((1, 0), (2, 1)), "SAME"])
@pytest.mark.parametrize("kernel", [(3, 3, 3, 5), (2, 4, 1, 3), (3, 3, 8, 2)])  # the last: a patch over 64
def test_packed(pack, padding, kernel):
    # widths 9 and 8 with these kernels and paddings give rows that pack evenly and rows that do not
    images = jax.random.normal(jax.random.key(0), (2, 7, 9 if pack != 2 else 8, kernel[2]))
    weights = jax.random.normal(jax.random.key(1), kernel)
    assert_same_convolution(lambda x, w: fastpath.conv2d_packed(x, w, padding, pack),
                            lambda x, w: conv.conv2d(x, w, 1, padding), images, weights,
                            order=2 if pack == 2 and padding == 1 else 1)


def test_packed_kernels_put_each_tap_where_its_pixel_reads():
    weights = np.arange(3 * 3 * 2 * 5, dtype=np.float32).reshape(3, 3, 2, 5) + 1
    pack, (kh, kw, cin, cout) = 2, weights.shape
    packed = np.asarray(fastpath.packed_kernels(weights, pack))
    assert packed.shape == (3, 2, pack * cin, pack * cout)  # output pixels 0, 1 read input pixels 0..3: two blocks
    for q in range(2):
        for r in range(pack):
            for p in range(pack):
                tap = q * pack + r - p
                block = packed[:, q, r * cin:(r + 1) * cin, p * cout:(p + 1) * cout]
                np.testing.assert_array_equal(block, weights[:, tap] if 0 <= tap < kw else 0)


@pytest.mark.parametrize("chunks", [1, 2, 3, 7])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 0)])
def test_chunked_kernel_grad(chunks, stride, padding):
    images = jax.random.normal(jax.random.key(0), (7, 6, 5, 3))  # 7 images: chunks of unequal sizes
    weights = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    assert_same_convolution(lambda x, w: fastpath.conv2d_chunked_kernel_grad(x, w, stride, padding, 1, chunks),
                            lambda x, w: conv.conv2d(x, w, stride, padding), images, weights)


def test_bad_kernel_arguments_are_named():
    with pytest.raises(ValueError, match="chunks must be an int from 1 to the batch size 2, got 3"):
        fastpath.conv2d_chunked_kernel_grad(jnp.zeros((2, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), chunks=3)
    with pytest.raises(ValueError, match="pack must be a positive int"):
        fastpath.conv2d_packed(jnp.zeros((1, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), 0, 0)


@pytest.mark.parametrize("window, padding", [(2, 0), (3, 0), (2, 1), ((2, 3), 0), (3, "SAME"), (2, ((1, 0), (0, 1)))])
@pytest.mark.parametrize("init, op", [(-jnp.inf, jax.lax.max), (0.0, jax.lax.add)])
def test_tiled_pools(window, padding, init, op):
    """Values and gradients of ``lax.reduce_window`` (odd sizes drop the partial last window)."""
    x = jax.random.normal(jax.random.key(0), (3, 9, 11, 4))
    wh, ww = conv.pair(window, "window")
    pads = conv.resolve_padding(padding, x.shape[1:3], (wh, ww), (wh, ww))

    def reference(x):
        return jax.lax.reduce_window(x, init, op, (1, wh, ww, 1), (1, wh, ww, 1), ((0, 0), *pads, (0, 0)))

    tiled = lambda x: fastpath.tiled_pool(x, init, op, (wh, ww), pads)  # noqa: E731
    np.testing.assert_allclose(tiled(x), reference(x), rtol=1e-5, atol=1e-6)
    got = jax.grad(lambda x: jnp.sum(tiled(x) ** 2))(x)
    np.testing.assert_allclose(got, jax.grad(lambda x: jnp.sum(reference(x) ** 2))(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", [fastpath.FAST, fastpath.PLAIN], ids=["fast", "plain"])
def test_max_pool_gradient_goes_to_the_first_of_tied_maxima(policy):
    """As PyTorch's MaxPool2d, on both paths: a window of equal values (a ReLU's zeros)
    passes its gradient to its first element in row-major order, not shared among the ties."""
    x = jnp.array([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 3.0, 2.0]]).reshape(1, 2, 4, 1)
    with fastpath.use(policy):
        grad = jax.grad(lambda x: jnp.sum(L.MaxPool2D(2).apply({}, x) * jnp.array([2.0, 5.0]).reshape(1, 1, 2, 1)))(x)
    np.testing.assert_array_equal(grad[0, :, :, 0], [[2, 0, 0, 5], [0, 0, 0, 0]])


# --- every course model: the fast path trains as the plain path does ----------------------------


def one_step(name, policy):
    model, shape = COURSE_MODELS[name]
    x = jax.random.uniform(jax.random.key(1), (6, *shape))
    out = jax.eval_shape(model.init, jax.random.key(0), x[:1])["params"]
    loss, target = ("mse", "x") if name == "ConvAutoencoder" else ("cross_entropy", "y")
    if name.startswith(("LinearRegression", "CircleModel")):
        loss = "l1" if name.startswith("Linear") else "bce_with_logits"
    batch = {"x": x, "y": jnp.arange(6) % 2, "mask": jnp.ones(6)}
    with fastpath.use(policy):
        state = T.create_train_state(model, jax.random.key(0), x[:1], T.make_optimizer("sgd", 0.05), loss, target)
        state, metrics = T.train_step(state, batch)
        return jax.device_get(state.params), jax.device_get(metrics), out


@pytest.mark.parametrize("name", sorted(COURSE_MODELS))
def test_each_course_models_train_step_is_the_same_on_the_fast_and_the_plain_path(name):
    fast_params, fast_metrics, _ = one_step(name, fastpath.FAST)
    plain_params, plain_metrics, _ = one_step(name, fastpath.PLAIN)
    np.testing.assert_allclose(fast_metrics["loss_sum"], plain_metrics["loss_sum"], rtol=1e-5)
    for got, want in zip(jax.tree.leaves(fast_params), jax.tree.leaves(plain_params)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# --- the policy --------------------------------------------------------------------------------------

# (images, kernel, stride) of course layers, and the kernel each platform's policy picks
COURSE_LAYERS = [
    ((32, 28, 28, 1), (3, 3, 1, 10), 1, "PACKED 4", "IM2COL", "LAX"),      # FashionMNISTModelV2's first
    ((32, 28, 28, 10), (3, 3, 10, 10), 1, "PACKED 2", "IM2COL", "LAX"),    # its 10 -> 10 layers
    ((120, 28, 28, 32), (3, 3, 32, 32), 1, "CHUNKED 3", "LAX", "LAX"),     # MNISTBatchNormCNN's big ones
    ((120, 14, 14, 32), (3, 3, 32, 64), 1, "LAX", "IM2COL", "LAX"),
    ((120, 14, 14, 64), (3, 3, 64, 64), 1, "CHUNKED 2", "LAX", "LAX"),
    ((128, 28, 28, 1), (3, 3, 1, 32), 2, "IM2COL", "IM2COL", "LAX"),       # FashionCNN's strided layers
    ((256, 28, 28, 1), (3, 3, 1, 4), 2, "IM2COL", "IM2COL", "LAX"),        # SimpleCNN's
    ((256, 32, 32, 2), (3, 3, 2, 1), 1, "PLANES", "IM2COL", "LAX"),        # the autoencoder's last
    ((32, 64, 64, 3), (3, 3, 3, 10), 1, "PACKED 4", "IM2COL", "LAX"),      # TinyVGG's first, 64x64 RGB
]


@pytest.mark.parametrize("images, kernel, stride, cpu, gpu, tpu", COURSE_LAYERS)
def test_the_policy_picks_a_kernel_by_layer_shape_and_platform(images, kernel, stride, cpu, gpu, tpu):
    for platform, expected in (("cpu", cpu), ("cuda", gpu), ("tpu", tpu)):
        choice = fastpath.FAST.for_platform(platform).conv(images, kernel, (stride, stride))
        name, _, n = expected.partition(" ")
        assert choice.kernel is fastpath.ConvKernel[name], (platform, choice)
        assert (choice.pack if name == "PACKED" else choice.chunks) == int(n or 1), (platform, choice)
        assert fastpath.PLAIN.for_platform(platform).conv(images, kernel, (stride, stride)).kernel is fastpath.ConvKernel.LAX


def test_the_switch_changes_what_layers_run_and_what_steps_compile():
    x, w = jnp.zeros((2, 8, 8, 1)), jnp.zeros((3, 3, 1, 4))
    with fastpath.use(fastpath.CPU):
        assert fastpath.faster_conv2d(x.shape, w.shape) is not None and fastpath.active()[1] is fastpath.CPU
        with fastpath.plain():
            assert fastpath.faster_conv2d(x.shape, w.shape) is None and fastpath.faster_pool((2, 2), (2, 2)) is None
            assert fastpath.current() is fastpath.PLAIN
        assert fastpath.active()[1] is fastpath.CPU
    calls = []

    @fastpath.jit
    def traced(x):
        calls.append(fastpath.active()[1])
        return x + 1

    traced(1.0)
    with fastpath.plain():
        traced(1.0)
        traced(2.0)  # compiled once for this policy
    traced(3.0)
    assert calls == [fastpath.current().for_platform(jax.default_backend()), fastpath.PLAIN_POLICY]
    # and jaxdl's own steps, traced under each policy, hold that policy's kernels
    model, shape = COURSE_MODELS["SimpleCNN"]  # strided convolutions: im2col on the CPU policy
    x = jnp.zeros((4, *shape))
    state = T.create_train_state(model, jax.random.key(0), x[:1], T.make_optimizer("sgd", 0.1))
    batch = {"x": x, "y": jnp.zeros(4, jnp.int32), "mask": jnp.ones(4)}
    programs = {}
    for name, policy in (("fast", fastpath.CPU), ("plain", fastpath.PLAIN)):
        with fastpath.use(policy):
            programs[name] = T.train_step.trace(state, batch).jaxpr.jaxpr
    assert not has_primitive(programs["fast"], "conv_general_dilated")
    assert has_primitive(programs["plain"], "conv_general_dilated")
    fastpath.set_default(fastpath.PLAIN)
    try:
        assert fastpath.active()[1] is fastpath.PLAIN_POLICY
    finally:
        fastpath.set_default(fastpath.FAST)
    with pytest.raises(TypeError, match="Policies"):
        fastpath.set_default(fastpath.CPU)
    with pytest.raises(ValueError, match="scan_epochs must be one of"):
        fastpath.Policy(scan_epochs="sometimes")


def test_scanned_epochs_by_policy():
    model, shape = COURSE_MODELS["FashionMNISTModelV0"]
    x = jnp.zeros((32, *shape))
    state = T.create_train_state(model, jax.random.key(0), x[:1], T.make_optimizer("sgd", 0.1))
    batch = {"x": x, "y": jnp.zeros(32, jnp.int32), "mask": jnp.ones(32)}
    small = fastpath.Policy(scan_epochs="small steps", scan_max_step_flops=1e9)
    with fastpath.use(small):
        assert fastpath.scan_epochs(T.train_step, state, batch, 100)
        assert not fastpath.scan_epochs(T.train_step, state, batch, 1)  # one step an epoch: nothing to save
        assert not fastpath.scan_epochs(T.train_step)
    with fastpath.use(fastpath.Policy(scan_epochs="small steps", scan_max_step_flops=10.0)):
        assert not fastpath.scan_epochs(T.train_step, state, batch, 100)  # a bigger step than that
    conv_model, conv_shape = COURSE_MODELS["FashionMNISTModelV2"]
    cx = jnp.zeros((4, *conv_shape))
    conv_state = T.create_train_state(conv_model, jax.random.key(0), cx[:1], T.make_optimizer("sgd", 0.1))
    with fastpath.use(small):  # with a lax convolution in the step: never on this rule
        assert not fastpath.scan_epochs(T.train_step, conv_state, {"x": cx, "y": jnp.zeros(4, jnp.int32),
                                                                 "mask": jnp.ones(4)}, 100)
    for rule, expected in (("always", True), ("never", False)):
        with fastpath.use(fastpath.Policy(scan_epochs=rule)):
            assert fastpath.scan_epochs(T.train_step) is expected


# --- the compiler ---------------------------------------------------------------------------------


def _conv_fwd_bwd(x, w):
    y, vjp = jax.vjp(lambda x, w: conv.conv2d(x, w, 1, 1), x, w)
    return y, vjp(y)


def test_jit_gives_jax_jits_results_and_takes_its_arguments():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    ours, reference = fastpath.jit(_conv_fwd_bwd)(x, w), jax.jit(_conv_fwd_bwd)(x, w)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    @fastpath.jit(static_argnames="n")
    def power(x, n):
        return x ** n

    assert float(power(2.0, n=3)) == 8.0 and power.__name__ == "power"
    assert fastpath.jit(lambda x: x * 2).lower(1.0).compile()(1.0) == 2.0
    donating = fastpath.jit(lambda x: x + 1, donate_argnums=0)
    assert float(donating(jnp.ones(3)).sum()) == 6.0


def test_options_this_xla_rejects_fall_back_with_a_warning():
    options = (("xla_cpu_experimental_ynn_fusion_type", "NO_SUCH_TYPE"),)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compiler.compiler_options("cpu", options) is None
    assert any("compiles without its cpu options" in str(w.message) for w in caught)
    assert compiler.compiler_options("gpu", ()) is None
    if jax.default_backend() == "cpu":  # jaxdl's own: taken, or refused with the warning by an older XLA
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            taken = compiler.compiler_options.__wrapped__("cpu", fastpath.CPU.compiler_options)
        assert taken == dict(fastpath.CPU.compiler_options) or (taken is None and caught)
