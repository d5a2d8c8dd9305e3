"""Lesson 15's SimpleCNN on MNIST: five stride-2 convolutions, 5,274 parameters.

Compared with the lesson's baseline MLP (784 -> 50 -> 10, 39,760 parameters) at the
same setting: cross-entropy, SGD lr 0.4, batch 256, 1 epoch.
"""
import flax.linen as nn

from jaxdl import experiment, plots
from jaxdl.layers import Dense, Flatten, relu
from jaxdl.models import SimpleCNN


class LessonMLP(nn.Module):
    """The lesson's baseline: 784 -> 50 -> ReLU -> 10 (39,760 parameters)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return Dense(10)(relu(Dense(50)(Flatten()(x))))


cfg = experiment.parse_args("mnist_simple_cnn", epochs=1, batch_size=256, lr=0.4, optimizer="sgd",
                            description=__doc__)
exp = experiment.Experiment(cfg)
mnist = exp.load("mnist")
train_data, test_data = exp.batches(mnist.train), exp.batches(mnist.test, shuffle=False)

results = []
for name, model in (("mlp", LessonMLP()), ("simple_cnn", SimpleCNN())):
    state, history = exp.fit(name, model, train_data, test_data)
    run = exp.results["runs"][name]
    results.append({"model_name": f"{run['model']} ({run['params']:,} params)", "model_acc": history["test_acc"][-1],
                    "model_loss": history["test_loss"][-1]})
plots.plot_comparison(results, exp.path("compare_results.png"), title="MNIST: an MLP vs SimpleCNN")
exp.save(compare_results=results)
