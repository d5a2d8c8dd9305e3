"""What the convolution explorer shows, as pure functions of its knobs.

Notebook 05 (Lesson 15) builds a convolution by hand; the explorer lets a learner turn
its knobs. Every picture it draws comes from :func:`convolution_view`, which computes
with :func:`jaxdl.conv.conv2d` -- the convolution the layers train with -- and finds a
receptive field with ``jax.grad``, as the notebook does. The widgets
(:mod:`jaxdl.explore.widgets`) only wire controls to these functions, so everything here
is tested without a browser.

Coordinates are (row, column); images are ``(H, W, C)`` float32 in [0, 1]; kernels are
``(k, k)`` (one channel) or HWIO banks ``(k, k, in, out)``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import conv
from jaxdl.errors import ArgumentError

KERNEL_NAMES = ("top edge", "left edge", "diagonal 1", "diagonal 2", "blur", "sharpen", "identity", "random",
                "typed")
"""The kernels the explorer offers: the lesson's four edge kernels (grown to any odd or
even size), a box blur, a sharpen, the identity, a random one (from a seed) and typed-in
values."""

SIDE = 28
"""The side of a drawn image and of the dataset's digits and garments."""


class ExplorerError(ArgumentError):
    """A knob or an input the explorer cannot use; its message is shown in the explorer."""


@dataclasses.dataclass(frozen=True)
class Geometry:
    """A convolution's kernel size, stride, padding and dilation (the same along both axes)."""

    kernel_size: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def __post_init__(self):
        for name, least in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ExplorerError(f"{name.replace('_', ' ')} must be a whole number of at least {least}, "
                                    f"got {value!r}")

    @property
    def span(self) -> int:
        """How many input pixels the dilated kernel spans: ``d(k - 1) + 1``."""
        return self.dilation * (self.kernel_size - 1) + 1

    def output_side(self, n: int) -> int:
        """The output's side for an input of side ``n`` (by the course's formula); an
        :class:`ExplorerError` where the kernel does not fit."""
        if self.span > n + 2 * self.padding:
            dilated = f" dilated by {self.dilation}" if self.dilation > 1 else ""
            raise ExplorerError(f"a {self.kernel_size}x{self.kernel_size} kernel{dilated} spans {self.span} pixels, "
                                f"more than the padded input's {n + 2 * self.padding} ({n} + 2 x padding "
                                f"{self.padding}): use a smaller kernel or dilation, or more padding")
        return conv.conv_output_size(n, self.kernel_size, self.stride, self.padding, self.dilation)

    def formula(self, n: int) -> str:
        """The course's output-size formula with this geometry's numbers in it."""
        out = self.output_side(n)
        dilated = f"{self.dilation}·({self.kernel_size} − 1) − 1" if self.dilation > 1 else f"{self.kernel_size}"
        return f"⌊({n} + 2·{self.padding} − {dilated}) / {self.stride}⌋ + 1 = {out}"


def named_kernel(name: str, size: int = 3, seed: int = 0) -> np.ndarray:
    """The ``size`` x ``size`` kernel called ``name`` (one of :data:`KERNEL_NAMES` but
    ``"typed"``). At size 3 the edge kernels are the lesson's (``conv.TOP_EDGE``, ...);
    at other sizes they find the same edges: −1 on one side of the middle, +1 on the other."""
    if name not in KERNEL_NAMES or name == "typed":
        raise ExplorerError(f"the kernels are {', '.join(KERNEL_NAMES[:-1])}, not {name!r}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ExplorerError(f"a kernel's size must be a whole number of at least 1, got {size!r}")
    if size == 3 and name in ("top edge", "left edge", "diagonal 1", "diagonal 2"):
        return {"top edge": conv.TOP_EDGE, "left edge": conv.LEFT_EDGE, "diagonal 1": conv.DIAG1_EDGE,
                "diagonal 2": conv.DIAG2_EDGE}[name].copy()
    middle = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) - middle
    if name == "top edge":
        kernel = np.sign(rows)
    elif name == "left edge":
        kernel = np.sign(cols)
    elif name == "diagonal 1":
        kernel = np.sign(rows + cols) * (np.abs(rows + cols) <= 1)
    elif name == "diagonal 2":
        kernel = np.sign(rows - cols) * (np.abs(rows - cols) <= 1)
    elif name == "blur":
        kernel = np.full((size, size), 1 / size**2)
    elif name == "identity":
        kernel = np.zeros((size, size))
        kernel[size // 2, size // 2] = 1
    elif name == "sharpen":
        kernel = 2 * named_kernel("identity", size) - named_kernel("blur", size)
    else:
        kernel = np.random.default_rng(seed).normal(size=(size, size))  # NumPy: no compiling for a new size
    return np.asarray(kernel, np.float32)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def parse_kernel(text: str, size: int) -> np.ndarray:
    """Typed-in kernel values -- numbers separated by spaces, commas or new lines, with
    or without brackets -- as a ``size`` x ``size`` kernel; an :class:`ExplorerError`
    naming what does not parse, or how many numbers are missing."""
    words = [w for w in re.split(r"[\s,;\[\]()]+", text) if w]
    bad = [w for w in words if not _NUMBER.match(w)]
    if bad:
        raise ExplorerError(f"{bad[0]!r} is not a number: type the kernel's {size * size} values as numbers "
                            "separated by spaces, commas or new lines")
    if len(words) != size * size:
        raise ExplorerError(f"{len(words)} numbers typed where a {size}x{size} kernel has {size * size}")
    return np.asarray([float(w) for w in words], np.float32).reshape(size, size)


def kernel_bank(kernel: np.ndarray, in_channels: int = 1, out_channels: int = 1) -> np.ndarray:
    """An HWIO bank ``(k, k, in_channels, out_channels)`` from one ``(k, k)`` kernel:
    output channel ``j`` uses the kernel turned by ``j`` quarter turns (the top edge kernel
    then gives the four edge directions), each input channel a share of it, so that a grey
    image repeated over three channels gives what it gives with one."""
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ExplorerError(f"a kernel is a square grid of numbers, got shape {kernel.shape}")
    for name, value in (("channels in", in_channels), ("channels out", out_channels)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ExplorerError(f"{name} must be a whole number of at least 1, got {value!r}")
    turned = np.stack([np.rot90(kernel, -j) for j in range(out_channels)], axis=-1)
    return np.repeat(turned[:, :, None, :] / in_channels, in_channels, axis=2)


def as_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """``image`` ``(H, W)`` or ``(H, W, C)`` with ``in_channels`` channels: grey repeated,
    or colour averaged to grey."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ExplorerError(f"an image is (height, width) or (height, width, channels), got shape {image.shape}")
    if image.shape[-1] == in_channels:
        return image
    grey = image.mean(axis=-1, keepdims=True)
    return np.repeat(grey, in_channels, axis=-1)


def window(out_pixel: tuple[int, int], geometry: Geometry) -> np.ndarray:
    """The input pixels ``(row, col)`` under the kernel for output pixel ``out_pixel``,
    ``k*k`` of them in kernel order; those in the padding lie outside ``[0, n)``."""
    rows = out_pixel[0] * geometry.stride - geometry.padding + geometry.dilation * np.arange(geometry.kernel_size)
    cols = out_pixel[1] * geometry.stride - geometry.padding + geometry.dilation * np.arange(geometry.kernel_size)
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


@functools.lru_cache(maxsize=128)
def _convolve_and_field(shape: tuple[int, int, int], geometry: Geometry, bank_shape: tuple[int, ...]):
    """One jitted function for a shape, a geometry and a kernel bank's shape:
    ``(image, bank, one_hot) -> (conv2d(image, bank), receptive field)``, where the field is
    where ``d (output * one_hot).sum() / d image`` is not zero for an all-ones kernel (so
    that a zero in the kernel does not hide a pixel it covers). Compiled once for each
    setting of the knobs that changes a shape; a new output pixel is a new ``one_hot``."""
    ones = jnp.ones((geometry.kernel_size, geometry.kernel_size, shape[-1], 1), jnp.float32)

    def convolve(image, bank):
        return conv.conv2d(image[None], bank, geometry.stride, geometry.padding, geometry.dilation)[0]

    def convolve_and_field(image, bank, one_hot):
        grad = jax.grad(lambda x: (convolve(x, ones)[:, :, 0] * one_hot).sum())(image)
        return convolve(image, bank), jnp.abs(grad).sum(axis=-1) > 0

    return jax.jit(convolve_and_field)


def prepare(shape: tuple[int, int, int], geometry: Geometry, out_channels: int = 1) -> bool:
    """Compile what :func:`convolution_view` runs for an image of ``shape`` at ``geometry``
    with ``out_channels``, ahead of its first use (the explorer does this for the settings
    one step from the current one while the learner looks). ``False`` where the kernel
    does not fit."""
    try:
        out = geometry.output_side(shape[0]), geometry.output_side(shape[1])
    except ExplorerError:
        return False
    bank_shape = (geometry.kernel_size, geometry.kernel_size, shape[-1], out_channels)
    run = _convolve_and_field(tuple(shape), geometry, bank_shape)
    jax.block_until_ready(run(np.zeros(shape, np.float32), np.zeros(bank_shape, np.float32), np.zeros(out, np.float32)))
    return True


def _one_hot(shape: tuple[int, int, int], geometry: Geometry, out_pixel: tuple[int, int]) -> np.ndarray:
    out = geometry.output_side(shape[0]), geometry.output_side(shape[1])
    if not (0 <= out_pixel[0] < out[0] and 0 <= out_pixel[1] < out[1]):
        raise ExplorerError(f"output pixel {tuple(out_pixel)} is outside the {out[0]}x{out[1]} output")
    one_hot = np.zeros(out, np.float32)
    one_hot[out_pixel[0], out_pixel[1]] = 1.0
    return one_hot


def receptive_field(shape: tuple[int, ...], geometry: Geometry, out_pixel: tuple[int, int]) -> np.ndarray:
    """Which input pixels (a boolean ``(H, W)`` mask) can change output pixel
    ``out_pixel``: where the gradient of that output with respect to the input is not
    zero, found with ``jax.grad`` as notebook 05 does."""
    shape = tuple(int(s) for s in shape) + ((1,) if len(shape) == 2 else ())
    bank_shape = (geometry.kernel_size, geometry.kernel_size, shape[-1], 1)
    run = _convolve_and_field(shape, geometry, bank_shape)
    _, field = run(np.zeros(shape, np.float32), np.zeros(bank_shape, np.float32), _one_hot(shape, geometry, out_pixel))
    return np.asarray(field)


def outputs_seeing(shape: tuple[int, int], geometry: Geometry, in_pixel: tuple[int, int]) -> np.ndarray:
    """Which output pixels (a boolean mask of the output's shape) have input pixel
    ``in_pixel`` in their window: where a change of that one pixel changes the output,
    found by pushing it forward through the convolution (``jax.jvp``)."""
    height, width = int(shape[0]), int(shape[1])
    ones = jnp.ones((geometry.kernel_size, geometry.kernel_size, 1, 1), jnp.float32)
    tangent = jnp.zeros((1, height, width, 1), jnp.float32).at[0, in_pixel[0], in_pixel[1], 0].set(1.0)
    _, changed = jax.jvp(lambda x: conv.conv2d(x, ones, geometry.stride, geometry.padding, geometry.dilation),
                         (jnp.zeros((1, height, width, 1), jnp.float32),), (tangent,))
    return np.asarray(changed[0, :, :, 0] != 0)


@dataclasses.dataclass(frozen=True)
class ConvolutionView:
    """Everything the explorer draws for one setting of its knobs."""

    image: np.ndarray         # (H, W, C) the input
    kernels: np.ndarray       # (k, k, C, O) the HWIO bank applied
    output: np.ndarray        # (Ho, Wo, O) the feature maps
    geometry: Geometry
    pixel: tuple[int, int]    # the chosen output pixel
    window: np.ndarray        # (k*k, 2) its window's input pixels
    field: np.ndarray         # (H, W) its receptive field, by jax.grad
    formula: str              # the course's formula with the numbers in it
    jax_shape: tuple[int, ...]  # the shape conv2d returned, (1, Ho, Wo, O)

    @property
    def value(self) -> float:
        """The chosen output pixel's value in output channel 0."""
        return float(self.output[self.pixel[0], self.pixel[1], 0])


def convolution_view(image: np.ndarray, kernel: np.ndarray, geometry: Geometry, in_channels: int = 1,
                     out_channels: int = 1, pixel: tuple[int, int] = (0, 0)) -> ConvolutionView:
    """Convolve ``image`` with ``kernel`` (``(k, k)``, made a bank by :func:`kernel_bank`)
    at ``geometry`` with :func:`jaxdl.conv.conv2d`, and find output pixel ``pixel``'s window
    and receptive field. ``pixel`` is clipped into the output, which may have shrunk."""
    kernel = np.asarray(kernel, np.float32)
    if kernel.shape != (geometry.kernel_size, geometry.kernel_size):
        raise ExplorerError(f"the kernel has shape {kernel.shape} where the kernel size is {geometry.kernel_size}")
    if not np.isfinite(kernel).all():
        raise ExplorerError("the kernel holds a value that is not a finite number")
    image = as_channels(image, in_channels)
    out_h, out_w = geometry.output_side(image.shape[0]), geometry.output_side(image.shape[1])
    bank = kernel_bank(kernel, in_channels, out_channels)
    pixel = (min(max(int(pixel[0]), 0), out_h - 1), min(max(int(pixel[1]), 0), out_w - 1))
    run = _convolve_and_field(image.shape, geometry, bank.shape)
    output, field = run(image, bank, _one_hot(image.shape, geometry, pixel))
    return ConvolutionView(image=image, kernels=bank, output=np.asarray(output), geometry=geometry, pixel=pixel,
                           window=window(pixel, geometry), field=np.asarray(field),
                           formula=geometry.formula(image.shape[0]), jax_shape=(1, *output.shape))


def read_upload(content: bytes, in_channels: int = 1, side: int = SIDE) -> np.ndarray:
    """An uploaded image file's bytes as a ``side`` x ``side`` image in [0, 1] with
    ``in_channels`` channels (grey, or RGB for 3); an :class:`ExplorerError` for a file
    that is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(content))) as opened:
            picture = opened.convert("RGB" if in_channels == 3 else "L").resize((side, side))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ExplorerError(f"that file is not an image Pillow can open ({type(err).__name__}): upload a PNG or "
                            "JPEG") from err
    return as_channels(np.asarray(picture, np.float32) / 255.0, in_channels)


def drawn_image(cells, side: int = SIDE) -> np.ndarray:
    """A drawing on a ``side`` x ``side`` grid (``side*side`` on/off cells, row by row) as
    an ``(side, side, 1)`` image: 1 where drawn."""
    cells = np.asarray(cells, np.float32).reshape(-1)
    if cells.size != side * side:
        raise ExplorerError(f"a drawing has {side * side} cells, got {cells.size}")
    return cells.reshape(side, side, 1)
