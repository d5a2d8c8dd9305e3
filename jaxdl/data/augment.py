"""Data augmentation on the device, with explicit keys (the custom-datasets chapter).

The course augments its pizza/steak/sushi images with
``transforms.RandomHorizontalFlip(p=0.5)`` and ``transforms.TrivialAugmentWide(num_magnitude_bins=31)``:
for every image, one operation chosen at random from fourteen, applied at a magnitude
drawn from 31 bins. Both run here on a whole NHWC float32 batch at once, jit-able, so
they can live inside the batch-gathering call of :class:`jaxdl.data.DeviceBatches`.

Geometric operations (shear, translate, rotate) use DeepMind's PIX
(``dm_pix.affine_transform``, nearest neighbour, black fill); PIX has no posterize, sharpness,
auto-contrast or equalize, nor torchvision's multiplicative brightness and
grey-mean contrast, so those are written here in a few lines each, following
torchvision's definitions on images in [0, 1].
"""

from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.errors import ShapeError


def random_horizontal_flip(key: jax.Array, images: jax.Array, p: float = 0.5) -> jax.Array:
    """Flip each image of an NHWC batch left-right with probability ``p``."""
    flip = jax.random.bernoulli(key, p, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1, :], images)


# --- The fourteen operations of TrivialAugmentWide, on one HWC image in [0, 1] ---------


def _grayscale(image):
    return pix.rgb_to_grayscale(image, keep_dims=True) if image.shape[-1] == 3 else image


def _blend(image, other, factor):
    return jnp.clip(other + factor * (image - other), 0.0, 1.0)


def _affine(image, matrix_yx, offset_yx):
    """Pull-resample ``image``: output pixel (y, x) reads input ``M @ (y, x) + offset``."""
    matrix = jnp.eye(4).at[:2, :2].set(matrix_yx).at[:2, 3].set(offset_yx)
    # nearest neighbour, as torchvision's TrivialAugmentWide; it also keeps an exact 90-degree
    # rotation exact, where bilinear would drop border pixels whose coordinate rounds to n - 1 + 1e-7
    return pix.affine_transform(image, matrix, order=0, mode="constant", cval=0.0)


def _identity(image, m):
    return image


def _shear_x(image, m):
    return _affine(image, jnp.array([[1.0, 0.0], [m, 1.0]]), jnp.zeros(2))


def _shear_y(image, m):
    return _affine(image, jnp.array([[1.0, m], [0.0, 1.0]]), jnp.zeros(2))


def _translate_x(image, m):
    return _affine(image, jnp.eye(2), jnp.array([0.0, -jnp.trunc(m)]))


def _translate_y(image, m):
    return _affine(image, jnp.eye(2), jnp.array([-jnp.trunc(m), 0.0]))


def _rotate(image, degrees):
    theta = jnp.deg2rad(degrees)
    rotation = jnp.array([[jnp.cos(theta), -jnp.sin(theta)], [jnp.sin(theta), jnp.cos(theta)]])
    center = (jnp.array(image.shape[:2], jnp.float32) - 1) / 2
    return _affine(image, rotation, center - rotation @ center)


def _brightness(image, m):
    return _blend(image, jnp.zeros_like(image), 1.0 + m)


def _color(image, m):
    return _blend(image, _grayscale(image), 1.0 + m)


def _contrast(image, m):
    return _blend(image, _grayscale(image).mean(), 1.0 + m)


def _sharpness(image, m):
    # torchvision smooths with [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 and keeps the border
    kernel = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    c = image.shape[-1]
    smooth = lax.conv_general_dilated(
        image[None], jnp.tile(kernel[:, :, None, None], (1, 1, 1, c)), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)[0]
    inside = jnp.zeros(image.shape[:2], bool).at[1:-1, 1:-1].set(True)[..., None]
    return _blend(image, jnp.where(inside, smooth, image), 1.0 + m)


def _posterize(image, bits):
    levels = jnp.floor(image * 255.0).astype(jnp.int32)
    mask = 256 - (2 ** (8 - bits.astype(jnp.int32)))
    return (levels & mask).astype(image.dtype) / 255.0


def _solarize(image, threshold):
    return pix.solarize(image, threshold)


def _autocontrast(image, m):
    low = image.min(axis=(0, 1), keepdims=True)
    high = image.max(axis=(0, 1), keepdims=True)
    scale = jnp.where(high > low, 1.0 / jnp.maximum(high - low, 1e-12), 1.0)
    low = jnp.where(high > low, low, 0.0)
    return jnp.clip((image - low) * scale, 0.0, 1.0)


def _equalize_channel(channel):
    levels = jnp.round(channel * 255.0).astype(jnp.int32)
    hist = jnp.bincount(levels.ravel(), length=256)
    last_nonzero = hist[jnp.max(jnp.where(hist > 0, jnp.arange(256), -1))]
    step = (hist.sum() - last_nonzero) // 255
    lut = (jnp.cumsum(hist) + step // 2) // jnp.maximum(step, 1)
    lut = jnp.clip(jnp.concatenate([jnp.zeros(1, lut.dtype), lut[:-1]]), 0, 255)
    return jnp.where(step == 0, channel, lut[levels].astype(channel.dtype) / 255.0)


def _equalize(image, m):
    return jax.vmap(_equalize_channel, in_axes=-1, out_axes=-1)(image)


TRIVIAL_AUGMENT_OPS = (
    # (name, operation, magnitude at bin b of n, signed)
    ("Identity", _identity, lambda b, n: 0.0, False),
    ("ShearX", _shear_x, lambda b, n: 0.99 * b / (n - 1), True),
    ("ShearY", _shear_y, lambda b, n: 0.99 * b / (n - 1), True),
    ("TranslateX", _translate_x, lambda b, n: 32.0 * b / (n - 1), True),
    ("TranslateY", _translate_y, lambda b, n: 32.0 * b / (n - 1), True),
    ("Rotate", _rotate, lambda b, n: 135.0 * b / (n - 1), True),
    ("Brightness", _brightness, lambda b, n: 0.99 * b / (n - 1), True),
    ("Color", _color, lambda b, n: 0.99 * b / (n - 1), True),
    ("Contrast", _contrast, lambda b, n: 0.99 * b / (n - 1), True),
    ("Sharpness", _sharpness, lambda b, n: 0.99 * b / (n - 1), True),
    ("Posterize", _posterize, lambda b, n: 8.0 - jnp.round(b / ((n - 1) / 6)), False),
    ("Solarize", _solarize, lambda b, n: 1.0 - b / (n - 1), False),
    ("AutoContrast", _autocontrast, lambda b, n: 0.0, False),
    ("Equalize", _equalize, lambda b, n: 0.0, False),
)
"""TrivialAugmentWide's operations and magnitude ranges, as torchvision defines them."""


def apply_trivial_augment_op(image: jax.Array, op: jax.Array, magnitude: jax.Array) -> jax.Array:
    """Apply operation number ``op`` of :data:`TRIVIAL_AUGMENT_OPS` to one HWC image."""
    return lax.switch(op, [fn for _, fn, _, _ in TRIVIAL_AUGMENT_OPS], image, magnitude)


def trivial_augment_wide(key: jax.Array, images: jax.Array, num_magnitude_bins: int = 31) -> jax.Array:
    """TrivialAugmentWide on an NHWC batch: per image, one of fourteen operations
    chosen uniformly, at a magnitude from a uniformly chosen bin of
    ``num_magnitude_bins``, negated with probability 1/2 for the signed ones."""
    if images.ndim != 4:
        raise ShapeError(f"trivial_augment_wide expects an NHWC batch, got shape {tuple(images.shape)}")
    n = images.shape[0]
    k_op, k_bin, k_sign = jax.random.split(key, 3)
    ops = jax.random.randint(k_op, (n,), 0, len(TRIVIAL_AUGMENT_OPS))
    bins = jax.random.randint(k_bin, (n,), 0, num_magnitude_bins).astype(jnp.float32)
    table = jnp.stack([jnp.broadcast_to(jnp.asarray(mag(bins, num_magnitude_bins), jnp.float32), (n,))
                       for _, _, mag, _ in TRIVIAL_AUGMENT_OPS])  # (ops, n)
    signed = jnp.array([s for *_, s in TRIVIAL_AUGMENT_OPS])
    flip = signed[ops] & jax.random.bernoulli(k_sign, 0.5, (n,))
    magnitudes = jnp.where(flip, -1.0, 1.0) * table[ops, jnp.arange(n)]
    return jax.vmap(apply_trivial_augment_op)(images, ops, magnitudes)


def compose(*transforms):
    """Chain batched transforms ``t(key, images)``; each gets its own key."""

    def composed(key: jax.Array, images: jax.Array) -> jax.Array:
        for i, transform in enumerate(transforms):
            images = transform(jax.random.fold_in(key, i), images)
        return images

    return composed



def random_translate(key: jax.Array, images: jax.Array, max_shift: int = 2) -> jax.Array:
    """Shift each image of an NHWC batch by up to ``max_shift`` pixels in each direction,
    filling with zeros: ``transforms.RandomCrop(size, padding=max_shift)``."""
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * max_shift + 1)
    crop = lambda image, offset: lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)
