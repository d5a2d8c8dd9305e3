"""Chapter 02, multi-class classification: four Gaussian blobs.

BlobModel(2 -> 8 -> 8 -> 4, ReLU), cross-entropy, SGD lr 0.1, 100 epochs on all 800
training points at once. Writes the decision boundary and the loss curves.
"""
import jax
import jax.numpy as jnp

from jaxdl import plots, train
from jaxdl.data import make_blobs, train_test_split
from jaxdl.models import BlobModel
from jaxdl.run import experiment

cfg = experiment.parse_args("blobs", epochs=100, lr=0.1, optimizer="sgd", description=__doc__)
exp = experiment.Experiment(cfg)

# Data: 1000 points around 4 centres (std 1.5), 80% train / 20% test
X, y = make_blobs(jax.random.fold_in(exp.key, 0), n_samples=1000, n_features=2, centers=4, cluster_std=1.5)
X_train, X_test, y_train, y_test = train_test_split(jax.random.fold_in(exp.key, 1), X, y, test_size=0.2)

state, history = exp.fit("model_4", BlobModel(input_features=2, output_features=4, hidden_units=8),
                         experiment.full_batch(X_train, y_train), experiment.full_batch(X_test, y_test),
                         print_every=10)
predict = lambda points: train.make_predictions(state, jnp.asarray(points)).argmax(axis=1)  # noqa: E731
plots.plot_decision_boundaries([("Train", predict, X_train, y_train),
                                (f"Test ({history['test_acc'][-1]:.1f}%)", predict, X_test, y_test)],
                               exp.path("decision_boundary.png"), title="BlobModel")
plots.plot_loss_curves(history, exp.path("loss_curves.png"), title="BlobModel")
exp.save(test_acc=history["test_acc"][-1], test_loss=history["test_loss"][-1])
