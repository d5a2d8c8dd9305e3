"""The course's models as a Keras 3 user would write them: ``keras.Sequential`` of Keras's
own layers, channels last, ``padding="same"`` or ``"valid"`` as the course's PyTorch
layers pad. Each has the same trainable parameter count as its jaxdl twin in
``jaxdl.models.COURSE_MODELS`` (``peers.py`` checks it before it times anything).
Import it after setting ``KERAS_BACKEND`` (``peers.py`` sets ``jax``)."""

import keras
from keras import layers


def sequential(input_shape, *stack):
    return keras.Sequential([keras.Input(input_shape), *stack])


def mlp(features, relu=True, relu_last=False):
    stack = [layers.Flatten()]
    for i, units in enumerate(features):
        act = "relu" if relu and (i < len(features) - 1 or relu_last) else None
        stack.append(layers.Dense(units, activation=act))
    return stack


def vgg(input_shape, hidden, classes, padding):
    stack = []
    for _ in range(2):
        stack += [layers.Conv2D(hidden, 3, padding=padding, activation="relu"),
                  layers.Conv2D(hidden, 3, padding=padding, activation="relu"), layers.MaxPooling2D(2)]
    return sequential(input_shape, *stack, layers.Flatten(), layers.Dense(classes))


def fashion_cnn():
    convs = [layers.Conv2D(f, 3, strides=2, activation="relu") for f in (32, 64, 128)]
    return sequential((28, 28, 1), *convs, layers.Flatten(), layers.Dropout(0.2),
                      layers.Dense(512, activation="relu"), layers.Dropout(0.2), layers.Dense(10))


def batchnorm_cnn():
    stack = []
    for stage in ((32, 32, 32), (64, 64, 64)):
        for features in stage:
            stack += [layers.Conv2D(features, 3), layers.BatchNormalization(), layers.ReLU()]
        stack.append(layers.MaxPooling2D(2))
    return sequential((28, 28, 1), *stack, layers.Flatten(), layers.Dense(10))


def simple_cnn():
    convs = [layers.Conv2D(f, 3, strides=2, padding="same", activation="relu" if i < 4 else None)
             for i, f in enumerate((4, 8, 16, 16, 10))]
    return sequential((28, 28, 1), *convs, layers.Flatten())


def conv_autoencoder():
    encoder = [layers.Conv2D(f, 3, strides=2, padding="same", activation="relu") for f in (2, 4, 8)]
    decoder = []
    for i, f in enumerate((4, 2, 1)):
        decoder += [layers.UpSampling2D(2), layers.Conv2D(f, 3, padding="same", activation="relu" if i < 2 else None)]
    return sequential((28, 28, 1), layers.ZeroPadding2D(2), *encoder, *decoder, layers.Cropping2D(2),
                      layers.Activation("sigmoid"))


MODELS = {
    "FashionMNISTModelV0": lambda: sequential((28, 28, 1), *mlp((10, 10), relu=False)),
    "FashionMNISTModelV1": lambda: sequential((28, 28, 1), *mlp((10, 10), relu_last=True)),
    "FashionMNISTModelV2": lambda: vgg((28, 28, 1), 10, 10, "same"),
    "TinyVGG": lambda: vgg((64, 64, 3), 10, 3, "valid"),
    "FashionCNN": fashion_cnn,
    "MNISTBatchNormCNN": batchnorm_cnn,
    "MNISTMLP": lambda: sequential((28, 28, 1), *mlp((600, 600, 10))),
    "MNISTOneConv": lambda: sequential((28, 28, 1), layers.Conv2D(10, 7), *mlp((600, 600, 10))),
    "MNISTTwoConv": lambda: sequential((28, 28, 1), layers.Conv2D(10, 7), layers.Conv2D(55, 2),
                                       *mlp((600, 600, 10))),
    "SimpleCNN": simple_cnn,
    "ConvAutoencoder": conv_autoencoder,
}
