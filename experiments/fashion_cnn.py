"""A deeper Fashion-MNIST CNN: FashionCNN (three stride-2 convolutions, dropout 0.2).

Cross-entropy, Adam lr 0.001, batch 128, 15 epochs. Writes the loss curves, the
confusion matrix and the misclassified test images.
"""
import numpy as np

from jaxdl import plots, train
from jaxdl.metrics import confusion_matrix
from jaxdl.models import FashionCNN
from jaxdl.run import experiment

cfg = experiment.parse_args("fashion_cnn", epochs=15, batch_size=128, lr=1e-3, optimizer="adam", description=__doc__)
exp = experiment.Experiment(cfg)

fashion = exp.load("fashion_mnist")
test_data = exp.batches(fashion.test, shuffle=False)
state, history = exp.fit("fashion_cnn", FashionCNN(num_classes=10), exp.batches(fashion.train), test_data)

predicted = train.make_predictions(state, test_data).argmax(axis=1)
labels = np.asarray(fashion.test.labels)
plots.plot_loss_curves(history, exp.path("loss_curves.png"), title="FashionCNN")
plots.plot_confusion_matrix(confusion_matrix(labels, predicted, 10), fashion.class_names,
                            exp.path("confusion_matrix.png"), title=f"FashionCNN: {history['test_acc'][-1]:.2f}%")
plots.plot_misclassified(fashion.test.images, labels, predicted, fashion.class_names, path=exp.path("misclassified.png"))
exp.save(train_acc=history["train_acc"][-1], test_acc=history["test_acc"][-1])
