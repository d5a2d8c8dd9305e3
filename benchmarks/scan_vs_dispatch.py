"""Per-batch dispatch vs a scanned epoch (``lax.scan``), side by side in one process.

    python benchmarks/scan_vs_dispatch.py [--model FashionMNISTModelV2] [--batch-size 32]
        [--examples 12000] [--repeats 3]

Trains the same model over the same batches both ways (after one warm-up epoch that
compiles) and prints images/s for each and their ratio; ``--profile DIR`` also writes
a JAX profiler trace of one scanned and one per-batch epoch.

``--probe`` times the one operation that makes the scan slow on CPU -- the
weight-gradient convolution, alone, 100 times in a Python loop of jitted calls and
100 times inside one ``lax.scan`` -- and prints the form XLA compiled it to in each
case (``dim_labels`` in the optimized HLO).
"""

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxdl import data, models, train
from jaxdl.run import runtime  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="FashionMNISTModelV2", choices=sorted(models.COURSE_MODELS))
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--examples", type=int, default=12000)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--data-dir", help="folder of the official files (default: $JAXDL_DATA_DIR, else tfds)")
parser.add_argument("--profile", help="write a profiler trace here")
parser.add_argument("--probe", action="store_true", help="time the weight-gradient convolution in and out of a loop")
args = parser.parse_args()
runtime.setup()


def probe(repeats: int = 100) -> None:
    import re

    from jax import lax

    from jaxdl.conv import conv2d

    x = jax.random.uniform(jax.random.key(0), (32, 28, 28, 10))
    k = jax.random.normal(jax.random.key(1), (3, 3, 10, 10))
    dkernel = jax.grad(lambda k, x: conv2d(x, k, 1, 1).sum())
    top = jax.jit(dkernel)

    @jax.jit
    def looped(k, x):
        return lax.scan(lambda c, i: (c + dkernel(k, x + i).sum(), None), 0.0, jnp.arange(repeats, dtype=jnp.float32))[0]

    def timed(fn):
        jax.block_until_ready(fn())
        began = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - began

    t_top = timed(lambda: [top(k, x + i) for i in range(repeats)][-1])
    t_loop = timed(lambda: looped(k, x))
    for name, fn in (("top level", top), ("in a scan", looped)):
        text = fn.lower(k, x).compile().as_text()
        labels = sorted(set(re.findall(r"convolution\(.*dim_labels=([^,\s]+)", text)))
        print(f"  weight-gradient conv {name:>9}: dim_labels {', '.join(labels)}")
    print(f"  {repeats} weight-gradient convs: jitted calls {t_top * 1e3:.0f} ms, one scan {t_loop * 1e3:.0f} ms "
          f"({t_loop / t_top:.1f}x)")


model, shape = models.COURSE_MODELS[args.model]
if shape != (28, 28, 1):
    sys.exit(f"{args.model} does not take 28x28 images; choose an MNIST/Fashion-MNIST model")
fashion = data.load_dataset("fashion_mnist", args.data_dir)
loader = data.make_batches(fashion.train.take(args.examples), args.batch_size, key=jax.random.key(0), drop_last=True)
state0 = train.create_train_state(model, jax.random.key(1), jnp.zeros((1, *shape)), train.make_optimizer("sgd", 0.1))


def per_batch(state, epoch):
    for batch in loader.epoch(epoch):
        state, metrics = train.train_step(state, batch)
    return state, metrics


def scanned(state, epoch):
    return train.scan_epoch(state, loader, epoch)


def clone(state):
    return jax.tree.map(jnp.copy, state)  # the steps donate their input


ways = {"per-batch": per_batch, "scan": scanned}
for way in ways.values():  # compile
    jax.block_until_ready(way(clone(state0), 0))
best = {}
for _ in range(args.repeats):
    for name, way in ways.items():  # alternate, so both see the same machine load
        state = clone(state0)
        began = time.perf_counter()
        jax.block_until_ready(way(state, 1))
        best[name] = max(best.get(name, 0), len(loader) * args.batch_size / (time.perf_counter() - began))
print(f"{args.model}, batch {args.batch_size}, {len(loader)} steps an epoch, {jax.devices()[0].device_kind}")
for name, rate in best.items():
    print(f"  {name:>9}: {rate:10,.0f} images/s")
print(f"  scan / per-batch: {best['scan'] / best['per-batch']:.2f}x")
if args.probe:
    probe()
if args.profile:
    with jax.profiler.trace(args.profile):
        for way in ways.values():
            jax.block_until_ready(way(clone(state0), 2))
    print(f"trace in {args.profile}")
