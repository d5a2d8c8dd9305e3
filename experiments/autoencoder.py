"""Lesson 15's convolutional autoencoder on Fashion-MNIST.

ConvAutoencoder (pad to 32, three stride-2 convolutions down to a 4x4x8 code, three
upsample + convolution steps back, crop, sigmoid), MSE between input and output,
AdamW lr 0.01, batch 256, 5 epochs: the lesson's narrow net (2, 4, 8 channels) tends to
collapse to a grey average, its "crummy" result. ``--best``: channels 16, 32, 8 (wider
layers, the lesson's 4x4x8 code of 128 numbers), Adam lr 0.001, 10 epochs, and
recognisable reconstructions. Writes test images over their
reconstructions and the loss curves, and reports the test MSE.
"""
from jaxdl import plots, train
from jaxdl.models import ConvAutoencoder
from jaxdl.run import experiment

BEST = {"channels": (16, 32, 8), "optimizer": "adam", "lr": 1e-3, "epochs": 10}
cfg = experiment.parse_args("autoencoder", epochs=5, batch_size=256, lr=0.01, optimizer="adamw", description=__doc__,
                            extra_args=[("--best", {"action": "store_true", "help": "jaxdl's wider setting"})])
channels = (2, 4, 8)
if cfg.extra["best"]:
    channels, cfg.optimizer, cfg.lr, cfg.epochs = BEST["channels"], BEST["optimizer"], BEST["lr"], BEST["epochs"]
exp = experiment.Experiment(cfg)

fashion = exp.load("fashion_mnist")
state, history = exp.fit("autoencoder", ConvAutoencoder(channels=channels), exp.batches(fashion.train),
                         exp.batches(fashion.test, shuffle=False), loss="mse", target="x")

images = fashion.test.images[:16]
plots.plot_reconstructions(images, train.make_predictions(state, images), n=16, path=exp.path("reconstructions.png"),
                           title=f"ConvAutoencoder{channels}: test inputs (top), reconstructions (bottom); "
                                 f"test MSE {history['test_loss'][-1]:.4f}")
plots.plot_loss_curves(history, exp.path("loss_curves.png"), title="ConvAutoencoder (MSE)")
exp.save(channels=channels, test_mse=history["test_loss"][-1])
