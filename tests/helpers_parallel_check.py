"""Run with 8 simulated CPU devices (the test sets XLA_FLAGS): the same training steps
on 1 device, data-parallel over 8 with jit, under shard_map and under pmap (and, with
jit, for a Flax NNX twin holding the Linen model's weights); a fit of
scanned epochs cut into chunks, in bfloat16, on 1 device and on 8; a checkpoint saved
from 8 devices restored onto 1. Prints one JSON line of the largest differences."""

import json
import pathlib
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from flax import nnx  # noqa: E402

from jaxdl import checkpoint, learner, nnx_models, nnx_train, parallel, train
from jaxdl.run import runtime  # noqa: E402
from jaxdl.data import DeviceBatches  # noqa: E402
from jaxdl.models import MNISTBatchNormCNN, SimpleCNN  # noqa: E402

runtime.setup()  # as a training script does
assert jax.device_count() == 8, jax.devices()
x = jax.random.uniform(jax.random.key(0), (100, 28, 28, 1))
y = jax.random.randint(jax.random.key(1), (100,), 0, 10)


def new_state(model):
    return train.create_train_state(model, jax.random.key(2), x[:1], train.make_optimizer("sgd", 0.002, momentum=0.5))


def run(model, step_fn, put_state, put_batch, get):
    state = put_state(new_state(model))
    losses = []
    for batch in DeviceBatches(x, y, 32, key=jax.random.key(3)).epoch(0):  # 4 batches, the last partial
        state, metrics = step_fn(state, put_batch(batch))
        losses.append(float(get(metrics)["loss_sum"]))
    return get(state), losses


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


result = {}
mesh = parallel.make_mesh(8)
identity = lambda t: t  # noqa: E731
for model in (SimpleCNN(), MNISTBatchNormCNN()):
    name = type(model).__name__
    one, one_losses = run(model, train.train_step, identity, identity, identity)
    many, many_losses = run(model, train.train_step, lambda s: parallel.replicate_state(s, mesh),
                            lambda b: parallel.shard_batch(b, mesh), identity)
    result[f"{name}_jit8_params"] = max_diff(one.params, many.params)
    result[f"{name}_jit8_stats"] = max_diff(one.batch_stats, many.batch_stats) if one.batch_stats else 0.0
    result[f"{name}_jit8_loss"] = float(np.max(np.abs(np.subtract(one_losses, many_losses))))
    result[f"{name}_sharded"] = len(many.params["Conv2D_0"]["kernel"].sharding.device_set)
    if not one.batch_stats:  # BatchNorm under pmap uses per-device statistics, as DDP does
        pm, pm_losses = run(model, train.pmap_train_step, parallel.replicate, parallel.split_for_pmap,
                            parallel.unreplicate)
        result[f"{name}_pmap_params"] = max_diff(one.params, pm.params)
        result[f"{name}_pmap_loss"] = float(np.max(np.abs(np.subtract(one_losses, pm_losses))))
        sm, sm_losses = run(model, train.shard_map_train_step(mesh), lambda s: parallel.replicate_state(s, mesh),
                            lambda b: parallel.shard_batch(b, mesh), identity)
        result[f"{name}_shard_map_params"] = max_diff(one.params, sm.params)
        result[f"{name}_shard_map_loss"] = float(np.max(np.abs(np.subtract(one_losses, sm_losses))))
        result[f"{name}_shard_map_vs_pmap"] = max_diff(sm.params, pm.params)

# the NNX twin of MNISTBatchNormCNN, with the Linen model's first weights, over 8 devices
linen_one, _ = run(MNISTBatchNormCNN(), train.train_step, identity, identity, identity)
twin = nnx_models.from_linen(nnx_models.MNISTBatchNormCNN(rngs=nnx.Rngs(0)), new_state(MNISTBatchNormCNN()).variables)
nnx_many, _ = run(twin, train.train_step, lambda s: parallel.replicate_state(s, mesh),
                  lambda b: parallel.shard_batch(b, mesh), identity)
result["nnx_sharded"] = len(nnx_many.params["classifier"]["kernel"].sharding.device_set)
trained = nnx_models.to_linen(nnx_train.update_model(twin, nnx_many))
result["nnx_jit8_vs_linen_one_params"] = max_diff(linen_one.params, trained["params"])
result["nnx_jit8_vs_linen_one_stats"] = max_diff(linen_one.batch_stats, trained["batch_stats"])

# fit: scanned epochs in chunks of 3 steps, computing in bfloat16, on 1 device and on 8
for name, mesh_or_none in (("one", None), ("eight", mesh)):
    sharding = None if mesh_or_none is None else parallel.batch_sharding(mesh_or_none)
    state = train.create_train_state(SimpleCNN(), jax.random.key(2), x[:1], train.make_optimizer("sgd", 0.05),
                                     precision="bfloat16")
    if mesh_or_none is not None:
        state = parallel.replicate_state(state, mesh_or_none)
    loader = DeviceBatches(x, y, 16, key=jax.random.key(3), sharding=sharding)  # 7 steps an epoch
    state, history = learner.fit(state, loader, epochs=2, scan=True, steps_per_execution=3)
    result[f"bf16_scan_{name}"] = (jax.device_get(state.params), history["train_loss"], int(state.step))
(p1, l1, s1), (p8, l8, s8) = result.pop("bf16_scan_one"), result.pop("bf16_scan_eight")
result["bf16_scan_steps"] = [s1, s8]
result["bf16_scan_params"] = max_diff(p1, p8)
result["bf16_scan_loss"] = float(np.max(np.abs(np.subtract(l1, l8))))

# a checkpoint saved from 8 devices, restored into the abstract state of 1 device
with tempfile.TemporaryDirectory() as tmp:
    state = parallel.replicate_state(new_state(SimpleCNN()), mesh)
    store = checkpoint.CheckpointStore(tmp)
    store.save(state, {"history": {}, "epoch_sums": None})
    store.wait()
    abstract = jax.eval_shape(lambda: new_state(SimpleCNN()))
    single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=single), abstract)
    restored, _, _ = store.restore(abstract)
    result["restored_devices"] = len(restored.params["Conv2D_0"]["kernel"].sharding.device_set)
    result["restored_diff"] = max_diff(restored.params, state.params)
    store.close()
print(json.dumps(result))
