"""jaxdl.compiler: jax.jit with the CPU options, the same results, a fallback when XLA refuses them."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import compiler, conv


def _conv_fwd_bwd(x, w):
    y, vjp = jax.vjp(lambda x, w: conv.conv2d(x, w, 1, 1), x, w)
    return y, vjp(y)


def test_options_per_backend():
    assert compiler.compiler_options("cpu") == compiler.CPU_COMPILER_OPTIONS
    assert compiler.compiler_options("gpu") is None
    assert compiler.compiler_options("tpu") is None


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are for XLA:CPU")
def test_convolutions_leave_ynnpack_on_cpu():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    text = compiler.jit(_conv_fwd_bwd).lower(x, w).compile().as_text()
    assert text.count(" convolution(") == 3  # forward, input gradient, kernel gradient ...
    assert '"__ynn_fusion"' not in text  # ... none handed to YNNPACK (this program has no dot)


def test_same_results_as_jax_jit():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    ours, reference = compiler.jit(_conv_fwd_bwd)(x, w), jax.jit(_conv_fwd_bwd)(x, w)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_decorator_forms_and_jit_attributes():
    @compiler.jit
    def double(x):
        return 2 * x

    @compiler.jit(static_argnames="n")
    def power(x, n):
        return x**n

    assert double.__name__ == "double"
    assert float(double(3.0)) == 6.0
    assert float(power(2.0, n=3)) == 8.0
    assert double.lower(1.0).compile() is not None  # .lower, .trace ... are jax.jit's own
    assert double.trace(1.0).jaxpr is not None
    donating = compiler.jit(lambda x: x + 1, donate_argnums=0)
    assert float(donating(jnp.ones(()))) == 2.0


def test_refused_options_fall_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(compiler, "CPU_COMPILER_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_TYPE"})
    compiler.compiler_options.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="compiles without its CPU options"):
            assert compiler.compiler_options("cpu") is None
    finally:
        monkeypatch.undo()
        compiler.compiler_options.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiler.compiler_options("cpu") is not None
