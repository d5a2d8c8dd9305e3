"""jaxdl: the beginner deep-learning course, in JAX.

Tensors, the train/test workflow, regression, classification, MLPs and CNNs on
MNIST and Fashion-MNIST, custom image datasets, convolutions from scratch, a
convolutional autoencoder -- as Flax Linen models with pure ``init``/``apply``,
explicit PRNG keys, and one jit-compiled training step for any number of devices.

Modules, top to bottom: :mod:`jaxdl.layers` (layers on ``jax.lax``),
:mod:`jaxdl.conv` (convolution three ways), :mod:`jaxdl.models` (every model of the
course by its course name), :mod:`jaxdl.summary` (a torchinfo-like table).

Importing jaxdl switches on JAX's persistent compilation cache
(:mod:`jaxdl.compilation_cache`; ``JAXDL_CACHE_DIR=off`` to leave it off), and has glibc's
``malloc`` keep the memory a CPU step frees for the next one, with XLA:CPU running programs
in the calling thread (:mod:`jaxdl.host_memory`; ``JAXDL_HOST_MALLOC=system`` to leave
both alone). Import jaxdl before JAX's first computation for the second to count.
"""

from jaxdl import host_memory

host_memory.keep_freed_memory()  # before anything below could start JAX's threads

from jaxdl import compilation_cache  # noqa: E402
from jaxdl.summary import summary  # noqa: E402

compilation_cache.enable()

__version__ = "0.1.0"
__all__ = ["summary", "__version__"]
