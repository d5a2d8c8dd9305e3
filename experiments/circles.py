"""Chapter 02, binary classification: two circles, and why a model needs non-linearity.

CircleModelV0 (2 -> 5 -> 1), CircleModelV1 (2 -> 10 -> 10 -> 1) and CircleModelV2 (V1 with
ReLU), BCE-with-logits, SGD lr 0.1 on all 800 training points at once: V0 for 100 epochs,
V1 and V2 for 1000. The linear models stay near 50%; V2 separates the circles. Writes
the decision boundaries side by side and the loss curves.
"""
import jax
import jax.numpy as jnp

from jaxdl import plots, train
from jaxdl.data import make_circles, train_test_split
from jaxdl.models import CircleModelV0, CircleModelV1, CircleModelV2
from jaxdl.run import experiment

cfg = experiment.parse_args("circles", epochs=1000, lr=0.1, optimizer="sgd", description=__doc__,
                            extra_args=[("--epochs-v0", {"type": experiment.positive_int, "default": 100,
                                                         "help": "epochs for V0"})],
                            may_change=["epochs_v0"])
exp = experiment.Experiment(cfg)

# Data: 1000 points on two noisy circles, 80% train / 20% test
X, y = make_circles(jax.random.fold_in(exp.key, 0), n_samples=1000, noise=0.03)
X_train, X_test, y_train, y_test = train_test_split(jax.random.fold_in(exp.key, 1), X, y, test_size=0.2)
train_data, test_data = experiment.full_batch(X_train, y_train), experiment.full_batch(X_test, y_test)

panels, summary = [], {}
models = (("model_0", CircleModelV0(), cfg.extra["epochs_v0"]), ("model_1", CircleModelV1(), cfg.epochs),
          ("model_2", CircleModelV2(), cfg.epochs))
for name, model, epochs in models:
    state, history = exp.fit(name, model, train_data, test_data, loss="bce_with_logits", epochs=epochs,
                             print_every=max(epochs // 10, 1))
    summary[name] = {"model": state.model_name, "test_acc": history["test_acc"][-1], "epochs": epochs}
    predict = lambda points, state=state: train.make_predictions(state, jnp.asarray(points))[:, 0] > 0.5  # noqa: E731
    panels += [(f"{state.model_name}: train", predict, X_train, y_train),
               (f"{state.model_name}: test ({history['test_acc'][-1]:.1f}%)", predict, X_test, y_test)]
    plots.plot_loss_curves(history, exp.path(f"{name}_loss_curves.png"), title=state.model_name)

plots.plot_decision_boundaries(panels[1::2], exp.path("decision_boundaries.png"),
                               title="Decision boundaries on the test set: no ReLU (V0, V1) vs ReLU (V2)")
plots.plot_decision_boundaries(panels, exp.path("decision_boundaries_train_test.png"))
exp.save(**summary)
