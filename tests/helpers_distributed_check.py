"""Two processes on this machine (loopback) train one model together with
jax.distributed; each feeds half of every batch. Run as

    python tests/helpers_distributed_check.py PORT PROCESS_ID OUT.npz

Process 0 writes the final parameters to OUT.npz for the test to compare with one
process training on the whole batches."""

import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxdl import parallel, train
from jaxdl.run import runtime  # noqa: E402
from jaxdl.data import DeviceBatches  # noqa: E402
from jaxdl.models import SimpleCNN  # noqa: E402

port, process_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runtime.setup()  # as a training script does
parallel.initialize_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
assert jax.process_count() == 2 and jax.device_count() == 2, jax.devices()

x = jax.random.uniform(jax.random.key(0), (64, 28, 28, 1))
y = jax.random.randint(jax.random.key(1), (64,), 0, 10)
mesh = parallel.make_mesh()
state = train.create_train_state(SimpleCNN(), jax.random.key(2), x[:1],
                                 train.make_optimizer("sgd", 0.01, momentum=0.5))
sharding = parallel.replicated(mesh)
state = jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a)[idx]),
                     state)
half = 8  # each process holds half of every 16-example batch
for batch in DeviceBatches(x, y, 16, key=jax.random.key(3)).epoch(0):
    mine = jax.tree.map(lambda a: np.asarray(a)[process_id * half:(process_id + 1) * half], batch)
    state, metrics = train.train_step(state, parallel.host_local_batch_to_global(mine, mesh))

if process_id == 0:
    leaves = jax.tree_util.tree_flatten_with_path(state.params)[0]
    np.savez(out, **{jax.tree_util.keystr(p): np.asarray(a.addressable_shards[0].data) for p, a in leaves})
print("process", process_id, "done at step", int(np.asarray(state.step.addressable_shards[0].data)), flush=True)
