"""Checkers of notebook 06 (the convolutional autoencoder of Lesson 15)."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, as_array, call, exercise, expect_shape


@functools.cache
def code_numbers(channels: tuple[int, ...]) -> int:
    """How many numbers ConvAutoencoder(channels=channels) encodes one 28x28 image into."""
    from jaxdl.models import ConvAutoencoder

    model = ConvAutoencoder(channels=channels)
    image = jax.ShapeDtypeStruct((1, 28, 28, 1), np.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), image)
    return math.prod(jax.eval_shape(lambda v, x: model.apply(v, x, method=ConvAutoencoder.encode),
                                    variables, image).shape[1:])


@exercise("06.1", "code_size(channels): how many numbers ConvAutoencoder(channels=channels) codes an image into",
          function="def code_size(channels): ...")
def code_size(answer) -> str:
    for channels in ((3, 6, 12), (16, 32, 5), (2, 4, 8)):  # the lesson's own last: a hint never gives it away
        got = call(answer, channels, what=f"code_size({channels})")
        if isinstance(got, (tuple, list)) or getattr(got, "ndim", 0):
            raise Wrong(f"code_size({channels}) gave {tuple(np.asarray(got).tolist())}, a shape: the count of numbers "
                        "is the product of its sizes")
        want = code_numbers(channels)
        if got == 784:
            raise Wrong("784 is the number of pixels of the image; the code is the encoder's output")
        if got != want:
            raise Wrong(f"code_size({channels}) gave {got}, not the count of the encoder's output: run "
                        "ConvAutoencoder.encode on one image and count (its last layer sets the channels)")
    return "right for three encoders (the lesson's (2, 4, 8): 128 numbers for 784 pixels)"


@exercise("06.2", "add_noise(key, images): images plus 0.2 times normal noise drawn from key, clipped to [0, 1]",
          function="def add_noise(key, images): ...")
def add_noise(answer) -> str:
    images = np.full((16, 28, 28, 1), 0.5, np.float32)
    first, other = jax.random.key(1618), jax.random.key(1414)
    noisy = expect_shape(call(answer, first, images, what="add_noise(key, images)"), images.shape, "the noisy images")
    if np.array_equal(noisy, images):
        raise Wrong("the images came back unchanged: add the noise to them")
    if noisy.min() < 0 or noisy.max() > 1:
        raise Wrong(f"the noisy images run from {noisy.min():.2f} to {noisy.max():.2f}: clip them to [0, 1] "
                    "(jnp.clip), the range the autoencoder was trained on")
    if not np.array_equal(noisy, as_array(call(answer, first, images, what="add_noise(key, images)"), "noisy")):
        raise Wrong("the same key gave other noise the second time: draw it with jax.random from the key you are "
                    "given")
    if np.array_equal(noisy, as_array(call(answer, other, images, what="add_noise(key, images)"), "noisy")):
        raise Wrong("two different keys gave the same noise: draw it from the key you are given, not from a key "
                    "made inside the function")
    spread = float((noisy - images).std())
    if not 0.15 < spread < 0.25:
        raise Wrong(f"the noise's standard deviation is {spread:.3f} where 0.2 was asked: 0.2 * "
                    "jax.random.normal(key, images.shape)")
    if len(np.unique(noisy[0] - noisy[1])) < 10:
        raise Wrong("every image got the same noise: draw noise of the images' whole shape")
    return f"noise of spread {spread:.3f} from the key (new for a new key), clipped to [0, 1]"
