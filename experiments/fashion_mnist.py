"""Chapter 03, computer vision: Fashion-MNIST with FashionMNISTModelV0, V1 and V2.

V0 (linear), V1 (with ReLU) and V2 (TinyVGG), cross-entropy, SGD lr 0.1, batch 32,
3 epochs each. Writes the course's comparison table and bar chart, 9 random test
predictions (green right, red wrong) and V2's confusion matrix.
"""
import jax
import numpy as np

from jaxdl import plots, train
from jaxdl.metrics import confusion_matrix
from jaxdl.models import FashionMNISTModelV0, FashionMNISTModelV1, FashionMNISTModelV2
from jaxdl.run import experiment

cfg = experiment.parse_args("fashion_mnist", epochs=3, batch_size=32, lr=0.1, optimizer="sgd", description=__doc__)
exp = experiment.Experiment(cfg)

fashion = exp.load("fashion_mnist")
train_data, test_data = exp.batches(fashion.train), exp.batches(fashion.test, shuffle=False)
class_names = fashion.class_names

results = []
for name, model in (("model_0", FashionMNISTModelV0(input_shape=784, hidden_units=10, output_shape=10)),
                    ("model_1", FashionMNISTModelV1(input_shape=784, hidden_units=10, output_shape=10)),
                    ("model_2", FashionMNISTModelV2(input_shape=1, hidden_units=10, output_shape=10))):
    state, history = exp.fit(name, model, train_data, test_data)
    results.append({**train.eval_model(state, test_data), "train_time_s": exp.results["runs"][name]["train_time_s"]})

# compare_results: the course's table and bar chart
print(f"\n{'model_name':<22}{'model_loss':>11}{'model_acc':>11}{'train_time_s':>14}")
for r in results:
    print(f"{r['model_name']:<22}{r['model_loss']:>11.4f}{r['model_acc']:>11.2f}{r['train_time_s']:>14.1f}")
plots.plot_comparison(results, exp.path("compare_results.png"), title="Fashion-MNIST test accuracy")

# the last model (V2): random predictions and the confusion matrix
predicted = train.make_predictions(state, test_data).argmax(axis=1)
plots.plot_random_predictions(fashion.test.images, fashion.test.labels, predicted, class_names,
                              jax.random.fold_in(exp.key, 2), path=exp.path("predictions.png"),
                              title="FashionMNISTModelV2 on random test images")
matrix = confusion_matrix(np.asarray(fashion.test.labels), predicted, len(class_names))
plots.plot_confusion_matrix(matrix, class_names, exp.path("confusion_matrix.png"),
                            title=f"FashionMNISTModelV2: {results[-1]['model_acc']:.2f}% test accuracy")
exp.save(compare_results=results, confusion_matrix=matrix)
