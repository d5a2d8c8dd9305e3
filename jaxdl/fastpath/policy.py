"""Which fast kernel runs where, written as data.

A :class:`Policy` holds the fast path's choices for one kind of backend: which
convolutions go to which kernel (by shape), whether pools whose windows tile the
image take the tiled kernel, whether ``fit`` runs an epoch as one ``lax.scan``, and
the XLA options jaxdl's steps compile with. Every field is off by default, so
``Policy()`` is the plain path: the layers exactly as :mod:`jaxdl.layers` and
:mod:`jaxdl.conv` write them. :class:`Policies` gives one policy per platform;
:data:`FAST` (the default) holds the rules of ``docs/performance.md``, :data:`PLAIN`
the plain path everywhere.

Switching, without touching the library's code::

    with jaxdl.fastpath.use(jaxdl.fastpath.PLAIN):   # or jaxdl.fastpath.plain()
        state, history = fit(...)                  # every layer on its plain lax path
    jaxdl.fastpath.set_default(jaxdl.fastpath.PLAIN) # for the rest of the process

The policy is read when a function is traced: jaxdl's own steps
(:func:`jaxdl.fastpath.jit`) compile anew for each policy, while a function you
``jax.jit`` yourself keeps the kernels of its first trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import math
from collections.abc import Iterator

import jax
import numpy as np

from jaxdl.errors import ArgumentError, ArgumentTypeError


class ConvKernel(enum.Enum):
    """The ways a :class:`~jaxdl.layers.Conv2D` can convolve (all give the same values)."""

    LAX = "lax"  # the plain path: lax.conv_general_dilated
    CHUNKED = "lax, kernel gradient over batch chunks"
    IM2COL = "im2col + matmul"
    PACKED = "lax, pixels packed into channels"
    PLANES = "sum of shifted planes"


@dataclasses.dataclass(frozen=True)
class ConvChoice:
    """What :meth:`Policy.conv` picked for one convolution: the kernel, and its one
    parameter where it has one (pixels packed together, batch chunks)."""

    kernel: ConvKernel = ConvKernel.LAX
    pack: int = 1
    chunks: int = 1


SCAN_RULES = ("never", "always", "small steps")


@dataclasses.dataclass(frozen=True)
class Policy:
    """The fast path's choices for one kind of backend. Each rule is off at its default
    (0, ``False``, ``"never"``, ``()``); ``docs/performance.md`` says why each is set as
    it is in :data:`CPU`, :data:`GPU` and :data:`TPU`.

    Convolutions (stride 1 unless said): ``planes_*`` -- to at most
    ``planes_max_out_channels`` channels with at most ``planes_max_terms``
    multiply-adds a pixel, a sum of shifted planes; ``pack_*`` -- rows packed by 4 or 2
    pixels while the packed channels stay within the bounds; ``im2col_max_patch`` --
    im2col + matmul for a patch (``kh * kw * C_in``) at most this large;
    ``im2col_strided`` -- im2col for every strided convolution; ``im2col_max_matrix``
    -- im2col, any stride, while the patch matrix (output positions x patch) is at most
    this large; ``kernel_grad_chunk_bytes`` -- the others by ``lax`` with the kernel
    gradient summed over batch chunks of at most this many bytes of input.

    ``tiled_pools``: pools whose stride is their window by a reshape, with a written-out
    max-pool gradient. ``scan_epochs``: ``"always"``, ``"never"`` or ``"small steps"``
    (a train step of at most ``scan_max_step_flops`` with no ``lax`` convolution, in an
    epoch of more than one step). ``compiler_options``: XLA options for jaxdl's steps.
    """

    planes_max_out_channels: int = 0
    planes_max_terms: int = 0
    pack_max_in_channels: int = 0
    pack_max_out_channels: int = 0
    im2col_max_patch: int = 0
    im2col_strided: bool = False
    im2col_max_matrix: int = 0
    kernel_grad_chunk_bytes: int = 0
    tiled_pools: bool = False
    scan_epochs: str = "never"
    scan_max_step_flops: float = 0.0
    compiler_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.scan_epochs not in SCAN_RULES:
            raise ArgumentError(f"scan_epochs must be one of {SCAN_RULES}, got {self.scan_epochs!r}")

    def conv(self, images_shape, kernels_shape, strides=(1, 1), dilation=(1, 1), dtype=np.float32) -> ConvChoice:
        """The kernel for a convolution of NHWC ``images_shape`` by HWIO ``kernels_shape``."""
        kh, kw, cin, cout = kernels_shape
        plain_taps = tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
        if plain_taps and cout <= self.planes_max_out_channels and kh * kw * cin * cout <= self.planes_max_terms:
            return ConvChoice(ConvKernel.PLANES)
        if plain_taps and self.pack_max_in_channels:
            pack = next((p for p in (4, 2) if p * cin <= self.pack_max_in_channels
                         and p * cout <= self.pack_max_out_channels), 1)
            if pack > 1:
                return ConvChoice(ConvKernel.PACKED, pack=pack)
        strided = tuple(strides) != (1, 1)
        if (strided and self.im2col_strided) or (not strided and kh * kw * cin <= self.im2col_max_patch):
            return ConvChoice(ConvKernel.IM2COL)
        if self.im2col_max_matrix:
            n, h, w, _ = images_shape
            positions = n * -(-h // strides[0]) * -(-w // strides[1])  # 'same'-padded: an upper bound
            if positions * kh * kw * cin <= self.im2col_max_matrix:
                return ConvChoice(ConvKernel.IM2COL)
        if self.kernel_grad_chunk_bytes:
            image_bytes = math.prod(images_shape[1:]) * np.dtype(dtype).itemsize
            per_chunk = max(1, self.kernel_grad_chunk_bytes // max(image_bytes, 1))
            chunks = -(-images_shape[0] // per_chunk)
            if chunks > 1:
                return ConvChoice(ConvKernel.CHUNKED, chunks=chunks)
        return ConvChoice(ConvKernel.LAX)


PLAIN_POLICY = Policy()
"""The plain path: every rule off."""

CPU = Policy(
    planes_max_out_channels=2, planes_max_terms=72,
    pack_max_in_channels=32, pack_max_out_channels=64,
    im2col_max_patch=64, im2col_strided=True,
    kernel_grad_chunk_bytes=4 * 2**20,
    tiled_pools=True,
    scan_epochs="small steps", scan_max_step_flops=20e6,
    # XLA's default list is these two plus LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION:
    # convolutions stay on XLA's own (Eigen) kernels instead of YNNPACK's.
    compiler_options=(("xla_cpu_experimental_ynn_fusion_type",
                       "LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"),),
)
"""The fast path on a CPU (``docs/performance.md``, section "CPU")."""

GPU = Policy(im2col_max_matrix=2**23, tiled_pools=True, scan_epochs="always")
"""The fast path on a GPU (CUDA or ROCm): small convolutions as im2col + matmul, and
whole epochs as one ``lax.scan``."""

TPU = Policy(tiled_pools=True, scan_epochs="always")
"""The fast path on a TPU: whole epochs as one ``lax.scan``; convolutions by ``lax``."""


@dataclasses.dataclass(frozen=True)
class Policies:
    """One :class:`Policy` per platform; ``other`` for platforms not named."""

    cpu: Policy = CPU
    gpu: Policy = GPU
    tpu: Policy = TPU
    other: Policy = PLAIN_POLICY

    @classmethod
    def everywhere(cls, policy: Policy) -> Policies:
        return cls(policy, policy, policy, policy)

    def for_platform(self, platform: str) -> Policy:
        """The policy of ``platform`` (``"cpu"``, ``"cuda"``, ``"rocm"``, ``"gpu"``, ``"tpu"``, ...)."""
        if platform == "cpu":
            return self.cpu
        if platform in ("gpu", "cuda", "rocm"):
            return self.gpu
        if platform == "tpu":
            return self.tpu
        return self.other


FAST = Policies()
"""The default: the fast path's rules on each platform."""

PLAIN = Policies.everywhere(PLAIN_POLICY)
"""The plain path on every platform."""

_default: Policies = FAST
_chosen: contextvars.ContextVar[Policies | None] = contextvars.ContextVar("jaxdl_kernels_policies", default=None)
_compiling: contextvars.ContextVar[tuple[str, Policy] | None] = contextvars.ContextVar(
    "jaxdl_kernels_compiling", default=None)


def set_default(policies: Policies) -> None:
    """Make ``policies`` the process's default (``FAST`` until changed)."""
    global _default
    if not isinstance(policies, Policies):
        raise ArgumentTypeError(f"set_default takes a Policies (FAST, PLAIN, or your own), got {type(policies).__name__}")
    _default = policies


def current() -> Policies:
    """The policies in force: those of the innermost :func:`use`, else the default."""
    return _chosen.get() or _default


@contextlib.contextmanager
def use(policies: Policies | Policy) -> Iterator[Policies]:
    """Run the block under ``policies`` (a :class:`Policy` applies to every platform)."""
    if isinstance(policies, Policy):
        policies = Policies.everywhere(policies)
    if not isinstance(policies, Policies):
        raise ArgumentTypeError(f"use takes a Policies or a Policy, got {type(policies).__name__}")
    token = _chosen.set(policies)
    try:
        yield policies
    finally:
        _chosen.reset(token)


def plain() -> contextlib.AbstractContextManager[Policies]:
    """``with plain():`` -- every layer on its plain path, no compiler options, per-batch epochs."""
    return use(PLAIN)


def default_platform() -> str:
    """The platform a program compiles for unless its inputs say otherwise: that of JAX's
    default device (``jax.default_device``) if one is set, else JAX's default backend."""
    device = jax.config.jax_default_device
    if device is not None and not isinstance(device, str):
        return device.platform
    return device or jax.default_backend()


def active() -> tuple[str, Policy]:
    """``(platform, policy)`` for what is being traced now: set by :func:`jaxdl.fastpath.jit`
    while it compiles, else the default platform and its policy in force."""
    compiling = _compiling.get()
    if compiling is not None:
        return compiling
    platform = default_platform()
    return platform, current().for_platform(platform)


@contextlib.contextmanager
def compiling_for(platform: str, policy: Policy) -> Iterator[None]:
    """While tracing a program for ``platform``, have the layers follow ``policy``."""
    token = _compiling.set((platform, policy))
    try:
        yield
    finally:
        _compiling.reset(token)
