"""The fast path: faster equivalents of the teaching layers, the policy that picks them,
and how jaxdl's steps compile and loop.

The course's layers are :mod:`jaxdl.layers` and :mod:`jaxdl.conv`, each the few lines
over its ``lax`` primitive. Everything here computes the same values by a faster route
for some layer shapes on some backends, and the teaching code reaches it at one seam:
a layer asks :func:`faster_conv2d` / :func:`faster_pool` whether the policy in force has
a faster kernel for it, and runs its plain path when not. jaxdl's steps compile with
:func:`jit` and ``fit`` asks :func:`scan_epochs` whether to scan an epoch.

* :mod:`~jaxdl.fastpath.policy` -- :class:`Policy` (the rules, as data, per backend),
  :data:`FAST` (the default) and :data:`PLAIN`; :func:`use` / :func:`plain` switch them
  for a block, :func:`set_default` for the process;
* :mod:`~jaxdl.fastpath.convolution` -- im2col with a phase-by-phase gradient, packed
  pixels, shifted planes, a batch-chunked kernel gradient;
* :mod:`~jaxdl.fastpath.pool` -- tiled pools with a written-out max-pool gradient;
* :mod:`~jaxdl.fastpath.compiler` -- :func:`jit`, with each platform's XLA options;
* :mod:`~jaxdl.fastpath.scan` -- :func:`scan_epochs`, the rule for scanned epochs.

Why each exists, with the measurements behind the rules: ``docs/performance.md``.
``tests/test_fastpath.py`` holds every kernel, and every course model's train step,
against the plain path.
"""

from jaxdl.fastpath.compiler import jit
from jaxdl.fastpath.convolution import (
    conv2d_chunked_kernel_grad,
    conv2d_im2col,
    conv2d_packed,
    conv2d_planes,
    faster_conv2d,
    packed_kernels,
)
from jaxdl.fastpath.policy import (
    CPU,
    FAST,
    GPU,
    PLAIN,
    PLAIN_POLICY,
    TPU,
    ConvChoice,
    ConvKernel,
    Policies,
    Policy,
    active,
    current,
    plain,
    set_default,
    use,
)
from jaxdl.fastpath.pool import faster_pool, tiled_pool
from jaxdl.fastpath.scan import scan_epochs

__all__ = [
    "CPU", "FAST", "GPU", "PLAIN", "PLAIN_POLICY", "TPU", "ConvChoice", "ConvKernel", "Policies", "Policy",
    "active", "conv2d_chunked_kernel_grad", "conv2d_im2col", "conv2d_packed", "conv2d_planes", "current",
    "faster_conv2d", "faster_pool", "jit", "packed_kernels", "plain", "scan_epochs", "set_default",
    "tiled_pool", "use",
]
