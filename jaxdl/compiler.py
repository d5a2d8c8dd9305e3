"""How jaxdl compiles its steps: ``jax.jit`` plus XLA options measured to be faster here.

XLA:CPU (jax 0.10) hands convolutions, dots and reductions to the YNNPACK library by
default. For convolutions that is the slower of its two kernels on the course's layers:
the same 3x3 convolution of 120x28x28x32 by 32 filters takes 18.4 ms forward through
YNNPACK and 9.7 ms through XLA's own Eigen kernel, and forward + backward 66.8 against
49.3 ms; TinyVGG's 10-channel layer on 62x62 images 40.6 against 16.1 ms
(``benchmarks/conv_speed_cpu.md``). So on a CPU jaxdl compiles its programs with
YNNPACK's convolution fusion left out and its dot and reduction fusions kept
(:data:`CPU_COMPILER_OPTIONS`); GPUs and TPUs get no extra options.

:func:`jit` is ``jax.jit`` with that choice made for the default backend when the
function is first called (not at import, which would start JAX's backends before the
user could configure them). ``jaxdl.train``'s steps use it; wrap your own jitted
functions with it to get the same convolutions.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import jax

CPU_COMPILER_OPTIONS: dict[str, str] = {
    # XLA's default list is these two plus LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION.
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}
"""XLA options for programs compiled for a CPU (see the module docstring)."""


@functools.cache
def compiler_options(backend: str) -> dict[str, str] | None:
    """The XLA options :func:`jit` compiles with on ``backend`` (``"cpu"``, ``"gpu"``, ...).

    ``None`` off the CPU, and on a CPU whose XLA no longer knows an option (they are
    experimental: a newer jaxlib may rename them), in which case a warning says so and
    programs compile with XLA's defaults, which are correct, only slower."""
    if backend != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(1.0).compile()
    except Exception as error:  # noqa: BLE001  (any rejection means: compile without them)
        warnings.warn(f"jaxdl compiles without its CPU options {CPU_COMPILER_OPTIONS}: this XLA "
                      f"rejected them ({type(error).__name__}: {str(error)[:200]})", RuntimeWarning, stacklevel=4)
        return None
    return CPU_COMPILER_OPTIONS


class _BackendJit:
    """``jax.jit(fun, **jit_kwargs)`` compiled with :func:`compiler_options` for the default
    backend, chosen at the first call. Calls, ``.lower``, ``.trace`` and every other
    attribute go to that jitted function."""

    def __init__(self, fun: Callable, jit_kwargs: dict[str, Any]):
        functools.update_wrapper(self, fun)
        self._fun, self._jit_kwargs, self._jitted = fun, jit_kwargs, {}

    def jitted(self):
        backend = jax.default_backend()
        fn = self._jitted.get(backend)
        if fn is None:
            fn = self._jitted[backend] = jax.jit(self._fun, compiler_options=compiler_options(backend),
                                                 **self._jit_kwargs)
        return fn

    def __call__(self, *args, **kwargs):
        return self.jitted()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.jitted(), name)


def jit(fun: Callable | None = None, /, **jit_kwargs):
    """``jax.jit`` with jaxdl's compiler options for the default backend; use it as
    ``jit(f, donate_argnums=0)``, ``@jit`` or ``@jit(static_argnames="n")``."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _BackendJit(fun, jit_kwargs)
