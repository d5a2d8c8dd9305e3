"""Training speed of the course models' Flax NNX twins against their Linen originals.

    python benchmarks/nnx_speed.py                              # the conv models, course batch sizes
    python benchmarks/nnx_speed.py --models TinyVGG --rounds 7 --examples 4000

For each model, in one fresh process: the Linen model and its NNX twin
(:mod:`jaxdl.nnx_models`, holding the same weights) each trained by ``jaxdl.fit``, and
the twin trained by the loop Flax's documentation teaches NNX users (``nnx.Optimizer``,
an ``nnx.jit`` step on ``(model, optimizer, batch)``), over the same batches. Each is
compiled by a first epoch; then they take turns, one epoch each, for ``--rounds``
rounds, and each figure is the median of its rounds (images/s), each ratio the median
of the per-round ratios with their range. An epoch's time is ``fit``'s own record of it
(``history["epoch_time"]``: the steps, not ``fit``'s checks of the data before them); the
``nnx.jit`` loop compiles with JAX's default XLA options, jaxdl's steps with its own
(:mod:`jaxdl.fastpath.compiler`). Data: MNIST / Fashion-MNIST from
``$JAXDL_DATA_DIR`` (random 64x64 RGB images for TinyVGG), as in ``train_speed.py``.
Writes ``nnx_speed_<backend>.md`` beside this file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import time

import train_speed as ts

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONV_MODELS = ("FashionMNISTModelV2", "TinyVGG", "FashionCNN", "MNISTBatchNormCNN", "SimpleCNN", "ConvAutoencoder")
WAYS = ("linen", "nnx", "nnx_loop")


def run_worker(model_name: str, examples: int, rounds: int) -> dict:
    import jax
    import jax.numpy as jnp
    import flax
    import optax
    from flax import nnx

    import jaxdl
    from jaxdl import models, nnx_models
    from jaxdl.data import make_batches
    from jaxdl.run import runtime

    runtime.setup()
    batch_size, loss_name, kind = ts.SETTINGS[model_name]
    x, y, _, _ = ts.load_arrays(kind, examples)
    target = "x" if loss_name == "mse" else "y"
    loader = make_batches((x, y), batch_size, key=jax.random.key(1))
    linen_model, _ = models.COURSE_MODELS[model_name]
    tx = optax.sgd(0.01, momentum=0.9)
    linen = jaxdl.create_train_state(linen_model, jax.random.key(0), x[:1], tx, loss=loss_name, target=target)
    twin = nnx_models.from_linen(nnx_models.NNX_MODELS[model_name](rngs=nnx.Rngs(0)), linen.variables)
    states = {"linen": linen,
              "nnx": jaxdl.create_train_state(twin, jax.random.key(0), x[:1], tx, loss=loss_name, target=target)}
    loss = linen.loss
    optimizer = nnx.Optimizer(twin, tx, wrt=nnx.Param)

    @nnx.jit
    def nnx_step(model, optimizer, batch):
        def loss_fn(model):
            per_example = loss(model(batch["x"]), batch[target])
            return jnp.sum(per_example * batch["mask"]) / jnp.sum(batch["mask"])

        value, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return value

    def nnx_loop(epoch):
        twin.train()
        for batch in loader.epoch(epoch):
            value = nnx_step(twin, optimizer, batch)
        jax.block_until_ready(value)

    def fit_epoch(way, epoch):
        # fit goes on from the state's step: epochs=epoch + 1 trains epoch `epoch`. The
        # epoch's own time, as fit's history records it: not fit's checks of the data
        states[way], history = jaxdl.fit(states[way], loader, epochs=epoch + 1)
        return history["epoch_time"][-1]

    def one_epoch(way, epoch):
        if way != "nnx_loop":
            return fit_epoch(way, epoch)
        began = time.perf_counter()
        nnx_loop(epoch)
        return time.perf_counter() - began

    for way in WAYS:  # compile
        one_epoch(way, 0)
    seconds = {way: [] for way in WAYS}
    for r in range(rounds):
        for way in (WAYS if r % 2 == 0 else WAYS[::-1]):
            seconds[way].append(one_epoch(way, r + 1))
    on_cpu = jax.default_backend() == "cpu"
    return {"model": model_name, "batch": batch_size, "examples": len(x), "backend": jax.default_backend(),
            "device": ts.cpu_name() if on_cpu else jax.devices()[0].device_kind, "jax": jax.__version__,
            "flax": flax.__version__,
            "images_per_s": {way: [len(x) / s for s in seconds[way]] for way in WAYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(CONV_MODELS))
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "EXAMPLES", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, examples, rounds = args.worker
        print(json.dumps(run_worker(name, int(examples), int(rounds))))
        return

    load = ts.load_average()
    lines, rows, out = [], [], None
    for name in args.models.split(","):
        result = ts.run_fresh(__file__, [name, str(args.examples), str(args.rounds)])
        if out is None:  # the worker reads the device: this process must not take the accelerator
            out = ROOT / "benchmarks" / f"nnx_speed_{result['backend']}.md"
            lines = [
                "# Flax NNX twins against the Linen models",
                "",
                f"{result['device']}; jax {result['jax']}, flax {result['flax']}; "
                f"{datetime.date.today().isoformat()}, load average {load:.2f} at start; {args.examples} examples "
                f"an epoch (TinyVGG: at most 2400), median of {args.rounds} rounds after a compiling epoch. "
                "`python benchmarks/nnx_speed.py`.",
                "",
                "| model | batch | Linen, `fit` (img/s) | NNX twin, `fit` (img/s) | NNX / Linen "
                "| NNX twin, `nnx.jit` loop (img/s) | `nnx.jit` loop / Linen |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
        speed = result["images_per_s"]
        per_round = {way: [n / l for n, l in zip(speed[way], speed["linen"])] for way in ("nnx", "nnx_loop")}
        median = {way: statistics.median(speed[way]) for way in WAYS}
        row = (f"| {name} | {result['batch']} | {median['linen']:,.0f} | {median['nnx']:,.0f} | "
               f"**{statistics.median(per_round['nnx']):.2f}x**{ts.ratio_spread(per_round['nnx'])} | "
               f"{median['nnx_loop']:,.0f} | {statistics.median(per_round['nnx_loop']):.2f}x"
               f"{ts.ratio_spread(per_round['nnx_loop'])} |")
        rows.append(row)
        print(row, flush=True)
        out.write_text("\n".join(lines + rows) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
