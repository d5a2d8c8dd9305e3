"""The course's models as a Flax user would write them without jaxdl: ``flax.linen``'s own
``nn.Conv``, ``nn.Dense``, ``nn.max_pool``, ``nn.BatchNorm``, NHWC, the way the Flax
examples write a CNN. Each has the same layers and parameter count as its jaxdl twin in
``jaxdl.models.COURSE_MODELS`` (``peers.py`` checks the count before it times anything).
Flax's ``nn.Conv`` pads ``"SAME"`` unless told; the course's PyTorch layers pad 0, so
every convolution here says which it wants."""

import flax.linen as nn
import jax.numpy as jnp


def flatten(x):
    return x.reshape((x.shape[0], -1))


class MLP(nn.Module):
    """``Dense(hidden) -> [ReLU] -> ... -> Dense(out)`` on the flattened image."""

    features: tuple[int, ...]
    relu: bool = True
    relu_last: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = flatten(x)
        for i, features in enumerate(self.features):
            x = nn.Dense(features)(x)
            if self.relu and (i < len(self.features) - 1 or self.relu_last):
                x = nn.relu(x)
        return x


class VGG(nn.Module):
    """Two blocks of ``[Conv 3x3 -> ReLU] x 2 -> max-pool 2``, then ``Dense(classes)``."""

    hidden: int
    classes: int
    padding: str

    @nn.compact
    def __call__(self, x, train: bool = False):
        for _ in range(2):
            for _ in range(2):
                x = nn.relu(nn.Conv(self.hidden, (3, 3), padding=self.padding)(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(self.classes)(flatten(x))


class FashionCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        for features in (32, 64, 128):
            x = nn.relu(nn.Conv(features, (3, 3), strides=(2, 2), padding="VALID")(x))
        x = nn.Dropout(0.2, deterministic=not train)(flatten(x))
        x = nn.Dropout(0.2, deterministic=not train)(nn.relu(nn.Dense(512)(x)))
        return nn.Dense(10)(x)


class BatchNormCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        for stage in ((32, 32, 32), (64, 64, 64)):
            for features in stage:
                x = nn.Conv(features, (3, 3), padding="VALID")(x)
                x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(10)(flatten(x))


class ConvMLP(nn.Module):
    """The MLP-to-CNN lesson's convolutions (no ReLU after them) in front of its MLP."""

    convs: tuple[tuple[int, int], ...]

    @nn.compact
    def __call__(self, x, train: bool = False):
        for features, size in self.convs:
            x = nn.Conv(features, (size, size), padding="VALID")(x)
        return MLP((600, 600, 10))(x)


class SimpleCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, features in enumerate((4, 8, 16, 16, 10)):
            x = nn.Conv(features, (3, 3), strides=(2, 2), padding=1)(x)
            if i < 4:
                x = nn.relu(x)
        return flatten(x)


class ConvAutoencoder(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        for features in (2, 4, 8):
            x = nn.relu(nn.Conv(features, (3, 3), strides=(2, 2), padding=1)(x))
        for i, features in enumerate((4, 2, 1)):
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest-neighbour upsampling
            x = nn.Conv(features, (3, 3), padding=1)(x)
            if i < 2:
                x = nn.relu(x)
        return nn.sigmoid(x[:, 2:-2, 2:-2, :])


MODELS = {
    "FashionMNISTModelV0": lambda: MLP((10, 10), relu=False),
    "FashionMNISTModelV1": lambda: MLP((10, 10), relu_last=True),
    "FashionMNISTModelV2": lambda: VGG(10, 10, "SAME"),
    "TinyVGG": lambda: VGG(10, 3, "VALID"),
    "FashionCNN": FashionCNN,
    "MNISTBatchNormCNN": BatchNormCNN,
    "MNISTMLP": lambda: MLP((600, 600, 10)),
    "MNISTOneConv": lambda: ConvMLP(((10, 7),)),
    "MNISTTwoConv": lambda: ConvMLP(((10, 7), (55, 2))),
    "SimpleCNN": SimpleCNN,
    "ConvAutoencoder": ConvAutoencoder,
}
