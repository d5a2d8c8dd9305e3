"""MNIST from an MLP to convolutions, one change at a time.

The MLP 784 -> 600 -> 600 -> 10 without ReLU, then with ReLU, then one 7x7
convolution in front, then a second 2x2 convolution (no ReLU after the convolutions,
as the lesson speaks the models): cross-entropy, SGD (lr 0.01, batch 64), 3 epochs
each, and the two-convolution model again for 10 epochs. Writes the comparison table
and bar chart, and the two MLPs' per-batch curves (the ReLU MLP starts more slowly).
"""
from jaxdl import callbacks, plots
from jaxdl.models import MNISTMLP, MNISTOneConv, MNISTTwoConv
from jaxdl.run import experiment

cfg = experiment.parse_args("mnist_mlp_to_cnn", epochs=3, batch_size=64, lr=0.01, optimizer="sgd",
                            description=__doc__, may_change=["long_epochs"],
                            extra_args=[("--long-epochs", {"type": experiment.positive_int, "default": 10,
                                                           "help": "epochs for the last model"})])
exp = experiment.Experiment(cfg)

mnist = exp.load("mnist")
train_data, test_data = exp.batches(mnist.train), exp.batches(mnist.test, shuffle=False)

steps = (("mlp", MNISTMLP(relu=False), cfg.epochs), ("mlp_relu", MNISTMLP(relu=True), cfg.epochs),
         ("one_conv", MNISTOneConv(), cfg.epochs), ("two_conv", MNISTTwoConv(), cfg.epochs),
         ("two_conv_long", MNISTTwoConv(), cfg.extra["long_epochs"]))
results, recorders = [], {"mlp": callbacks.Recorder(), "mlp_relu": callbacks.Recorder()}
for name, model, epochs in steps:
    state, history = exp.fit(name, model, train_data, test_data, epochs=epochs,
                             callbacks=[recorders[name]] if name in recorders else [])
    results.append({"model_name": f"{name} ({epochs} ep)", "model_acc": history["test_acc"][-1],
                    "model_loss": history["test_loss"][-1]})
    print(f"{name}: {history['test_acc'][-1]:.2f}% after {epochs} epochs")
plots.plot_comparison(results, exp.path("compare_results.png"), title="MNIST: MLP to CNN")
plots.plot_batch_comparison({"MLP (linear)": recorders["mlp"], "MLP with ReLU": recorders["mlp_relu"]},
                            exp.path("mlp_vs_relu_batches.png"), title="MNIST MLP: without and with ReLU")
exp.save(compare_results=results)
