"""MNIST with batch normalisation: MNISTBatchNormCNN (six conv + BatchNorm + ReLU layers).

Cross-entropy, Adam lr 0.01, batch 120, 25 epochs. Writes the loss curves and the
per-batch loss and accuracy curves.
"""
from jaxdl import callbacks, plots
from jaxdl.models import MNISTBatchNormCNN
from jaxdl.run import experiment

cfg = experiment.parse_args("mnist_batchnorm", epochs=25, batch_size=120, lr=0.01, optimizer="adam",
                            description=__doc__)
exp = experiment.Experiment(cfg)

mnist = exp.load("mnist")
recorder = callbacks.Recorder(exp.path("batchnorm_cnn/batches.jsonl"))  # kept across --resume
state, history = exp.fit("batchnorm_cnn", MNISTBatchNormCNN(), exp.batches(mnist.train),
                         exp.batches(mnist.test, shuffle=False), callbacks=[recorder])

plots.plot_loss_curves(history, exp.path("loss_curves.png"), title="MNISTBatchNormCNN")
plots.plot_batch_curves(recorder.losses, recorder.accs, exp.path("batch_curves.png"), title="MNISTBatchNormCNN",
                        steps=recorder.steps)
exp.save(test_acc=history["test_acc"][-1], best_test_acc=max(history["test_acc"]))
