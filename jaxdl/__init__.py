"""jaxdl: the beginner deep-learning course, in JAX.

Tensors, the train/test workflow, regression, classification, MLPs and CNNs on
MNIST and Fashion-MNIST, custom image datasets, convolutions from scratch, a
convolutional autoencoder -- as Flax Linen models with pure ``init``/``apply``,
explicit PRNG keys, and one jit-compiled training step for any number of devices.

Modules, top to bottom: :mod:`jaxdl.layers` (layers on ``jax.lax``),
:mod:`jaxdl.conv` (convolution three ways), :mod:`jaxdl.models` (every model of the
course by its course name), :mod:`jaxdl.data`, :mod:`jaxdl.train` (the pure steps),
:mod:`jaxdl.learner` (``fit`` and its events), :mod:`jaxdl.callbacks`,
:mod:`jaxdl.checkpoint`; :mod:`jaxdl.kernels` is the fast path, behind one switch.

Importing jaxdl changes nothing outside it. :func:`jaxdl.runtime.setup` makes the
process-wide settings that help a training run (a compilation cache, CPU malloc and
dispatch settings), when an entry script asks for them.
"""

from jaxdl import kernels, runtime
from jaxdl.summary import summary

__version__ = "0.1.0"
__all__ = ["kernels", "runtime", "summary", "__version__"]
