"""jaxdl: the beginner deep-learning course, in JAX.

Tensors, the train/test workflow, regression, classification, MLPs and CNNs on
MNIST and Fashion-MNIST, custom image datasets, convolutions from scratch, a
convolutional autoencoder -- as Flax Linen models with pure ``init``/``apply``,
explicit PRNG keys, and one jit-compiled training step for any number of devices::

    import jax, jaxdl

    data = jaxdl.load_dataset("fashion_mnist")
    model = jaxdl.models.FashionMNISTModelV2(1, 10, 10)
    state = jaxdl.create_train_state(model, jax.random.key(0), data.train.images[:1],
                                     jaxdl.train.make_optimizer("sgd", 0.1))
    state, history = jaxdl.fit(state, jaxdl.make_batches(data.train, 32, jax.random.key(1)),
                               jaxdl.make_batches(data.test, 32), epochs=3)

The course, top to bottom: :mod:`jaxdl.layers` (layers on ``jax.lax``), :mod:`jaxdl.conv`
(convolution three ways), :mod:`jaxdl.models` (every model of the course by its course
name; :mod:`jaxdl.nnx_models` has them in Flax NNX, trained through
:mod:`jaxdl.nnx_train`), :mod:`jaxdl.data`, :mod:`jaxdl.losses`, :mod:`jaxdl.metrics`, :mod:`jaxdl.train`
(the pure steps), :mod:`jaxdl.learner` (``fit`` and its events), :mod:`jaxdl.callbacks`,
:mod:`jaxdl.checkpoint`. Beside it, in rooms of their own: :mod:`jaxdl.fastpath` (faster
equivalents of the teaching layers, behind one switch) and :mod:`jaxdl.run` (what the
experiment scripts and the ``jaxdl`` command share).

Importing jaxdl changes nothing outside it, and loads a module only when it is first
used. :func:`jaxdl.run.runtime.setup` makes the process-wide settings that help a training
run (a compilation cache, CPU malloc and dispatch settings), when an entry script asks.
"""

from __future__ import annotations

from jaxdl.support.lazy import lazy_names

__version__ = "0.1.0"

_MODULES = ("callbacks", "checkpoint", "conv", "data", "epoch", "errors", "fastpath", "interop", "layers",
            "learner", "losses", "lr_find", "metrics", "model_summary", "models", "nnx_layers", "nnx_models",
            "nnx_train", "parallel", "plots", "precision", "run", "support", "train")
_NAMES = {  # the course's entry points, by the module they come from
    "fit": "learner", "Learner": "learner", "Callback": "learner",
    "create_train_state": "train", "make_optimizer": "train", "TrainState": "train",
    "load_dataset": "data", "make_batches": "data",
    "summary": "model_summary",
}

__all__ = [*_MODULES, *_NAMES, "__version__"]
__getattr__, __dir__ = lazy_names(__name__, {**{name: name for name in _MODULES}, **_NAMES})
