"""Lesson 15's SimpleCNN on MNIST: five stride-2 convolutions, 5,274 parameters.

Compared with the lesson's baseline MLP (784 -> 50 -> 10, 39,760 parameters) at the
same setting: cross-entropy, SGD lr 0.4, batch 256, 1 epoch. Then, as the lesson does,
SimpleCNN trains on for another epoch at a quarter of the learning rate (a new
optimizer for the same parameters).
"""
import flax.linen as nn

from jaxdl import plots
from jaxdl.layers import Dense, Flatten, relu
from jaxdl.models import SimpleCNN
from jaxdl.run import experiment


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
state = None
for name, model, lr in (("mlp", LessonMLP(), cfg.lr), ("simple_cnn", SimpleCNN(), cfg.lr),
                        ("simple_cnn_quarter_lr", SimpleCNN(), cfg.lr / 4)):
    state, history = exp.fit(name, model, train_data, test_data, tx=exp.optimizer(lr),
                             start_from=state if name == "simple_cnn_quarter_lr" else None)
    run = exp.results["runs"][name]
    label = f"{run['model']} ({run['params']:,} params)" + (", then lr/4" if name.endswith("quarter_lr") else "")
    results.append({"model_name": label, "model_acc": history["test_acc"][-1], "model_loss": history["test_loss"][-1]})
plots.plot_comparison(results, exp.path("compare_results.png"), title="MNIST: an MLP vs SimpleCNN")
exp.save(compare_results=results)
