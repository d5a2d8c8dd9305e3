"""Chapter 01, the PyTorch workflow: learn a straight line (weight 0.7, bias 0.3).

LinearRegressionModel (explicit weight and bias; 200 epochs) and LinearRegressionModelV2
(one Dense; 1000 epochs, as the chapter's "putting it all together"), L1 loss, SGD lr
0.01, on the 40 training points at once. Writes the parameters before and after,
loss curves and the predictions plot.
"""
import jax

from jaxdl import plots, train
from jaxdl.data import make_linear
from jaxdl.models import LinearRegressionModel, LinearRegressionModelV2
from jaxdl.run import experiment

cfg = experiment.parse_args("linear_regression", epochs=200, lr=0.01, optimizer="sgd", description=__doc__,
                            extra_args=[("--epochs-v2", {"type": experiment.positive_int, "default": 1000,
                                                         "help": "epochs for LinearRegressionModelV2"})],
                            may_change=["epochs_v2"])
exp = experiment.Experiment(cfg)

# Data: X from 0 to 1 in steps of 0.02, y = 0.7 X + 0.3; the first 80% train, the rest test
X_train, y_train, X_test, y_test = make_linear(weight=0.7, bias=0.3)
train_data, test_data = experiment.full_batch(X_train, y_train), experiment.full_batch(X_test, y_test)



def weight_and_bias(params):
    """Both models hold one weight and one bias, in arrays of different shapes."""
    leaves = [params["weight"], params["bias"]] if "weight" in params else [
        params["Dense_0"]["kernel"], params["Dense_0"]["bias"]]
    return tuple(round(float(p.ravel()[0]), 4) for p in jax.device_get(leaves))


learned = {}
runs = (("model_0", LinearRegressionModel(), cfg.epochs), ("model_1", LinearRegressionModelV2(), cfg.extra["epochs_v2"]))
for name, model, epochs in runs:
    state, history = exp.fit(name, model, train_data, test_data, loss="l1", epochs=epochs, print_every=max(epochs // 10, 1))
    start = weight_and_bias(exp.initial_params[name])
    weight, bias = weight_and_bias(state.params)
    learned[name] = {"start": start, "weight": weight, "bias": bias, "test_loss": history["test_loss"][-1]}
    print(f"{state.model_name}: weight {start[0]} -> {weight}, bias {start[1]} -> {bias} (true 0.7, 0.3)")
    plots.plot_loss_curves(history, exp.path(f"{name}_loss_curves.png"), title=f"{state.model_name}: L1 loss")
    predictions = train.make_predictions(state, X_test)
    plots.plot_predictions(X_train, y_train, X_test, y_test, predictions, exp.path(f"{name}_predictions.png"),
                           title=f"{state.model_name} after {cfg.epochs} epochs")

exp.save(**learned)
