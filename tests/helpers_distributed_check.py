"""Two processes on this machine (loopback) train one model together with
jax.distributed; each feeds half of every batch. Run as

    python tests/helpers_distributed_check.py PORT PROCESS_ID OUT.npz [FOLDER]

Process 0 writes the final parameters to OUT.npz for the test to compare with one
process training on the whole batches. Without FOLDER the batches are arrays each
process slices by hand; with FOLDER they are read from that image folder by the Grain
loader (one worker process), each process reading only its share, and every image a
process opens is logged to OUT.npz.opened.PROCESS_ID.
"""

import os
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxdl import data, parallel, train  # noqa: E402
from jaxdl.data import DeviceBatches  # noqa: E402
from jaxdl.models import SimpleCNN  # noqa: E402
from jaxdl.run import runtime  # noqa: E402


class LoggedFolder(data.ImageFolder):
    """An ImageFolder that appends each image it reads to a log (from whichever process reads it)."""

    def __init__(self, root, log):
        super().__init__(root, (28, 28))
        self.log = log

    def read_uint8(self, index):  # what the loader reads an ImageFolder with
        with open(self.log, "a") as f:
            f.write(f"{self.samples[index][0].name}\n")
        x, y = super().read_uint8(index)
        return x[..., :1], y  # the folder's grey images, one channel again


def main():
    port, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    folder = sys.argv[4] if len(sys.argv) > 4 else None
    runtime.setup()  # as a training script does
    parallel.initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    assert jax.process_count() == 2 and jax.device_count() == 2, jax.devices()

    x = jax.random.uniform(jax.random.key(0), (64, 28, 28, 1))
    y = jax.random.randint(jax.random.key(1), (64,), 0, 10)
    mesh = parallel.make_mesh()
    state = train.create_train_state(SimpleCNN(), jax.random.key(2), x[:1],
                                     train.make_optimizer("sgd", 0.01, momentum=0.5))
    sharding = parallel.replicated(mesh)
    state = jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding,
                                                                lambda idx: np.asarray(a)[idx]), state)
    if folder is None:
        half = 8  # each process holds half of every 16-example batch
        for batch in DeviceBatches(x, y, 16, key=jax.random.key(3)).epoch(0):
            mine = jax.tree.map(lambda a: np.asarray(a)[process_id * half:(process_id + 1) * half], batch)
            state, metrics = train.train_step(state, parallel.host_local_batch_to_global(mine, mesh))
    else:
        source = LoggedFolder(folder, f"{out}.opened.{process_id}")
        loader = data.make_batches(source, 16, key=jax.random.key(3), sharding=parallel.batch_sharding(mesh),
                                   worker_count=1)
        for batch in loader.epoch(0):
            state, metrics = train.train_step(state, batch)
        loader.close()

    if process_id == 0:
        leaves = jax.tree_util.tree_flatten_with_path(state.params)[0]
        np.savez(out, **{jax.tree_util.keystr(p): np.asarray(a.addressable_shards[0].data) for p, a in leaves})
    print("process", process_id, "done at step", int(np.asarray(state.step.addressable_shards[0].data)),
          "pid", os.getpid(), flush=True)


if __name__ == "__main__":  # the loader's worker processes import this file again
    main()
