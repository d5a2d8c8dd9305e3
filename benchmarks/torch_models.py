"""The course's models as the course writes them in PyTorch (NCHW, nn.Sequential), for
the side-by-side benchmarks. Each takes the same arguments as its jaxdl twin in
``jaxdl.models.COURSE_MODELS`` and has the same number of parameters (checked by
``train_speed.py`` before it times anything)."""

import torch
from torch import nn


def vgg_block(cin, cout, padding):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=padding), nn.ReLU(), nn.MaxPool2d(2))


class LinearRegressionModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, x):
        return self.weight * x + self.bias


def mlp_head(cin, hidden=600, out=10, relu=True):
    act = nn.ReLU() if relu else nn.Identity()
    return nn.Sequential(nn.Flatten(), nn.Linear(cin, hidden), act, nn.Linear(hidden, hidden), act, nn.Linear(hidden, out))


def conv_bn_relu(cin, cout):  # the lesson's nn.Conv2d(cin, cout, 3): padding 0
    return [nn.Conv2d(cin, cout, 3), nn.BatchNorm2d(cout), nn.ReLU()]


def simple_cnn():
    layers, cin = [], 1
    for i, cout in enumerate((4, 8, 16, 16, 10)):
        layers.append(nn.Conv2d(cin, cout, 3, stride=2, padding=1))
        if i < 4:
            layers.append(nn.ReLU())
        cin = cout
    return nn.Sequential(*layers, nn.Flatten())


def conv_autoencoder():
    def conv(cin, cout):
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]

    def deconv(cin, cout, act=True):
        return [nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1)] + ([nn.ReLU()] if act else [])

    return nn.Sequential(nn.ZeroPad2d(2), *conv(1, 2), *conv(2, 4), *conv(4, 8), *deconv(8, 4), *deconv(4, 2),
                         *deconv(2, 1, act=False), nn.ZeroPad2d(-2), nn.Sigmoid())


MODELS = {
    "LinearRegressionModel": LinearRegressionModel,
    "LinearRegressionModelV2": lambda: nn.Linear(1, 1),
    "CircleModelV0": lambda: nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 1)),
    "CircleModelV1": lambda: nn.Sequential(nn.Linear(2, 10), nn.Linear(10, 10), nn.Linear(10, 1)),
    "CircleModelV2": lambda: nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1)),
    "BlobModel": lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)),
    "FashionMNISTModelV0": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.Linear(10, 10)),
    "FashionMNISTModelV1": lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU()),
    "FashionMNISTModelV2": lambda: nn.Sequential(vgg_block(1, 10, 1), vgg_block(10, 10, 1), nn.Flatten(),
                                                 nn.Linear(10 * 7 * 7, 10)),
    "TinyVGG": lambda: nn.Sequential(vgg_block(3, 10, 0), vgg_block(10, 10, 0), nn.Flatten(), nn.Linear(10 * 13 * 13, 3)),
    "FashionCNN": lambda: nn.Sequential(nn.Conv2d(1, 32, 3, stride=2), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
                                        nn.Conv2d(64, 128, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                                        nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10)),
    "MNISTBatchNormCNN": lambda: nn.Sequential(*conv_bn_relu(1, 32), *conv_bn_relu(32, 32), *conv_bn_relu(32, 32),
                                               nn.MaxPool2d(2), *conv_bn_relu(32, 64), *conv_bn_relu(64, 64),
                                               *conv_bn_relu(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                                               nn.Linear(2 * 2 * 64, 10)),
    "MNISTMLP": lambda: mlp_head(784),
    # as the lesson speaks them: no ReLU after the convolutions
    "MNISTOneConv": lambda: nn.Sequential(nn.Conv2d(1, 10, 7), mlp_head(22 * 22 * 10)),
    "MNISTTwoConv": lambda: nn.Sequential(nn.Conv2d(1, 10, 7), nn.Conv2d(10, 55, 2), mlp_head(21 * 21 * 55)),
    "SimpleCNN": simple_cnn,
    "ConvAutoencoder": conv_autoencoder,
}
