"""The course's synthetic data, drawn with explicit keys.

Chapter 01 makes a straight line (``weight=0.7, bias=0.3``); chapter 02 calls
scikit-learn's ``make_circles`` and ``make_blobs``, and its exercise CS231n's spirals. These functions draw from the
same distributions with ``jax.random``, so the same key gives the same data on any
device, with no global seed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxdl.errors import ArgumentError, ShapeError


def make_linear(weight: float = 0.7, bias: float = 0.3, start: float = 0.0, end: float = 1.0,
                step: float = 0.02, train_fraction: float = 0.8):
    """Chapter 01's straight line: ``X = arange(start, end, step)[:, None]``,
    ``y = weight * X + bias``; the first ``train_fraction`` is train, the rest test
    (no shuffling, as in the course). Returns ``(X_train, y_train, X_test, y_test)``,
    40 and 10 points with the defaults.
    """
    x = jnp.arange(start, end, step, dtype=jnp.float32)[:, None]
    y = weight * x + bias
    split = int(train_fraction * len(x))
    return x[:split], y[:split], x[split:], y[split:]


def make_circles(key: jax.Array, n_samples: int = 1000, noise: float = 0.03,
                 factor: float = 0.8, shuffle: bool = True):
    """Two concentric circles, as ``sklearn.datasets.make_circles``.

    ``n_samples // 2`` points evenly spaced on the unit circle (label 0) and the rest
    on a circle of radius ``factor`` (label 1), plus Gaussian noise of std ``noise``.
    Returns ``X`` ``(n_samples, 2)`` float32 and ``y`` ``(n_samples,)`` int32.
    """
    if not 0 < factor < 1:
        raise ArgumentError(f"factor must be in (0, 1), got {factor}")
    n_out = n_samples // 2
    n_in = n_samples - n_out
    angles_out = jnp.linspace(0, 2 * math.pi, n_out, endpoint=False)
    angles_in = jnp.linspace(0, 2 * math.pi, n_in, endpoint=False)
    x = jnp.concatenate([
        jnp.stack([jnp.cos(angles_out), jnp.sin(angles_out)], axis=1),
        factor * jnp.stack([jnp.cos(angles_in), jnp.sin(angles_in)], axis=1),
    ]).astype(jnp.float32)
    y = jnp.concatenate([jnp.zeros(n_out, jnp.int32), jnp.ones(n_in, jnp.int32)])
    shuffle_key, noise_key = jax.random.split(key)
    if shuffle:
        order = jax.random.permutation(shuffle_key, n_samples)
        x, y = x[order], y[order]
    return x + noise * jax.random.normal(noise_key, x.shape), y


def make_blobs(key: jax.Array, n_samples: int = 1000, n_features: int = 2, centers: int = 4,
               cluster_std: float = 1.5, center_box: tuple[float, float] = (-10.0, 10.0),
               shuffle: bool = True):
    """Gaussian blobs, as ``sklearn.datasets.make_blobs``: ``centers`` centres drawn
    uniformly in ``center_box``, about ``n_samples / centers`` points around each with
    std ``cluster_std``. Returns ``X`` ``(n_samples, n_features)`` float32 and ``y``
    ``(n_samples,)`` int32 (the centre's index).
    """
    center_key, point_key, shuffle_key = jax.random.split(key, 3)
    means = jax.random.uniform(center_key, (centers, n_features), minval=center_box[0],
                               maxval=center_box[1])
    counts = [n_samples // centers + (1 if i < n_samples % centers else 0) for i in range(centers)]
    y = jnp.concatenate([jnp.full(c, i, jnp.int32) for i, c in enumerate(counts)])
    x = means[y] + cluster_std * jax.random.normal(point_key, (n_samples, n_features))
    if shuffle:
        order = jax.random.permutation(shuffle_key, n_samples)
        x, y = x[order], y[order]
    return x.astype(jnp.float32), y


def make_spirals(key: jax.Array, n_per_class: int = 100, classes: int = 3, noise: float = 0.2):
    """Interleaved spiral arms, one per class: the data of the course's chapter 02
    exercise (CS231n's spirals). Class ``c``'s points lie at radius ``linspace(0, 1)``
    and angle ``linspace(4c, 4(c+1))`` plus ``noise`` times normal noise. Returns
    ``(X, y)``: ``(n_per_class * classes, 2)`` float32 points and int32 labels, class
    by class (shuffle with :func:`train_test_split`).
    """
    if n_per_class < 1 or classes < 1:
        raise ArgumentError(f"make_spirals needs at least one class and one point a class, got "
                            f"classes={classes}, n_per_class={n_per_class}")
    radius = jnp.tile(jnp.linspace(0.0, 1.0, n_per_class), classes)
    start = jnp.repeat(jnp.arange(classes, dtype=jnp.float32) * 4, n_per_class)
    angle = start + jnp.tile(jnp.linspace(0.0, 4.0, n_per_class), classes)
    angle = angle + noise * jax.random.normal(key, angle.shape)
    x = jnp.stack([radius * jnp.sin(angle), radius * jnp.cos(angle)], axis=1).astype(jnp.float32)
    return x, jnp.repeat(jnp.arange(classes, dtype=jnp.int32), n_per_class)


def train_test_split(key: jax.Array, x, y, test_size: float = 0.2):
    """Shuffle with ``key`` and split, as ``sklearn.model_selection.train_test_split``:
    ``ceil(test_size * n)`` examples go to the test set.
    Returns ``(X_train, X_test, y_train, y_test)``.
    """
    n = len(x)
    if len(y) != n:
        raise ShapeError(f"X has {n} rows but y has {len(y)}")
    if not 0 < test_size < 1:
        raise ArgumentError(f"test_size must be a fraction in (0, 1), got {test_size}")
    n_test = math.ceil(test_size * n)
    order = jax.random.permutation(key, n)
    train, test = order[: n - n_test], order[n - n_test:]
    return x[train], x[test], y[train], y[test]
