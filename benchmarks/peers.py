"""jaxdl against what a user would pick instead, model by model: the course's PyTorch loop
(eager), PyTorch with ``torch.compile``, the Flax training loop an expert writes without jaxdl,
and Keras 3's ``fit`` on the JAX backend, without and with ``steps_per_execution``.

    pip install -e ".[bench]"                     # torch (CPU build) and Keras 3
    python benchmarks/peers.py                      # every model and peer, course batch and 256: about 90 min on 2 cores
    python benchmarks/peers.py --models SimpleCNN,TinyVGG --peers torch_compile,flax --rounds 5

Each peer is written the way its own community writes it (``torch_models.py``,
``flax_models.py``, ``keras_models.py``), with the parameter count of jaxdl's model
(checked: a row whose counts differ is refused). All train with SGD at lr 0.01 on the same
data and batch size, with the course's loss. Every (model, peer) runs in a fresh process;
a round runs jaxdl and then each peer, in an order that rotates from round to round, and
the table gives each figure's median over the rounds with the min-max of the per-round
ratio jaxdl / peer: this machine's speed drifts between processes, so only ratios taken
side by side mean anything. The command refuses to start while the machine is busy (its
1-minute load average above a quarter of its cores) unless ``--allow-busy``, which marks
the table.

Figures, per model, batch size and peer: training images/s over whole epochs after the
first step; evaluation images/s (best of three passes over the test set); the time to the
first finished training step, compilation included (jaxdl: with its compilation cache
empty and then filled; the peers as a user runs them, with none); peak memory (resident
memory on a CPU, the allocator's peak on a GPU). Per model and batch size, jaxdl's train
step FLOP/s against a large matmul's on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import statistics
import sys
import time

import train_speed as ts

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = {
    "torch": "PyTorch, the course's loop",
    "torch_compile": "PyTorch + torch.compile",
    "flax": "Flax, expert loop",
    "keras": "Keras 3 fit (JAX)",
    "keras_spe": "Keras 3 fit, steps_per_execution=32",
}
KERAS_STEPS_PER_EXECUTION = 32
MODELS = ["FashionMNISTModelV0", "FashionMNISTModelV1", "MNISTMLP", "FashionMNISTModelV2", "TinyVGG",
          "FashionCNN", "MNISTBatchNormCNN", "MNISTOneConv", "MNISTTwoConv", "SimpleCNN", "ConvAutoencoder"]


def run_flax(model_name: str, batch_size: int, examples: int) -> dict:
    """A Flax training loop as an expert writes it: a ``TrainState``; the data on the device
    once; each batch gathered inside the one jitted step from the epoch's permutation (no
    eager indexing between steps); the state donated; dropout keys folded from the step.
    The whole epoch as one ``lax.scan`` over that step (and the test set as one ``lax.map``
    over its batches) where that is faster: both are timed on two steps first, and the
    faster one trains."""
    from functools import partial
    from typing import Any

    import jax
    import jax.numpy as jnp
    import optax
    from flax.training import train_state

    import flax_models

    _, loss_name, kind = ts.SETTINGS[model_name]
    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in ts.load_arrays(kind, examples))
    module = flax_models.MODELS[model_name]()
    key, init_key = jax.random.split(jax.random.key(0))
    variables = module.init({"params": init_key, "dropout": init_key}, x_train[:1])
    has_stats = "batch_stats" in variables

    class TrainState(train_state.TrainState):
        batch_stats: Any = None
        key: jax.Array = None

    state = TrainState.create(apply_fn=module.apply, params=variables["params"], tx=optax.sgd(0.01),
                              batch_stats=variables.get("batch_stats"), key=key)

    def loss_and_metrics(outputs, x, y):
        if loss_name == "mse":
            return jnp.mean((outputs - x) ** 2), {}
        loss = optax.softmax_cross_entropy_with_integer_labels(outputs, y).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(outputs, -1) == y)}

    def step(state, indices):
        x, y = x_train[indices], y_train[indices]
        dropout_key = jax.random.fold_in(state.key, state.step)

        def loss_fn(params):
            if has_stats:
                outputs, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, x,
                                                  train=True, mutable=["batch_stats"])
            else:
                outputs, updates = state.apply_fn({"params": params}, x, train=True,
                                                  rngs={"dropout": dropout_key}), None
            loss, metrics = loss_and_metrics(outputs, x, y)
            return loss, (metrics, updates)

        (loss, (metrics, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(grads=grads)
        if has_stats:
            state = state.replace(batch_stats=updates["batch_stats"])
        return state, {"loss": loss, **metrics}

    steps = len(x_train) // batch_size
    rng = jax.random.key(1)

    @jax.jit
    def epoch_order(number):
        perm = jax.random.permutation(jax.random.fold_in(rng, number), len(x_train))
        return perm[:steps * batch_size].reshape((steps, batch_size))

    def eval_batch(state, x, y):
        variables = {"params": state.params, **({"batch_stats": state.batch_stats} if has_stats else {})}
        return loss_and_metrics(state.apply_fn(variables, x, train=False), x, y)

    full = len(x_test) // batch_size * batch_size

    @partial(jax.jit, donate_argnums=0)
    def train_epoch(state, order):
        return jax.lax.scan(step, state, order)

    @jax.jit
    def eval_all(state):
        batches = (x_test[:full].reshape((-1, batch_size, *x_test.shape[1:])),
                   y_test[:full].reshape((-1, batch_size)))
        head = jax.lax.map(lambda b: eval_batch(state, *b), batches)
        return head, eval_batch(state, x_test[full:], y_test[full:]) if full < len(x_test) else None

    train_step = jax.jit(step, donate_argnums=0)
    eval_step = jax.jit(lambda state, start, size: eval_batch(
        state, jax.lax.dynamic_slice_in_dim(x_test, start, size), jax.lax.dynamic_slice_in_dim(y_test, start, size)),
        static_argnums=2)

    def stepped_epoch(state, order):
        for indices in order:
            state, metrics = train_step(state, indices)
        return state, metrics

    began = time.perf_counter()
    state, metrics = train_step(state, epoch_order(0)[0])
    jax.block_until_ready(metrics)
    first_step = time.perf_counter() - began

    def probe_seconds(run, state):  # a few steps, after compiling them
        order = epoch_order(0)[:min(steps, 2)]
        state, metrics = run(state, order)
        jax.block_until_ready(metrics)
        began = time.perf_counter()
        state, metrics = run(state, order)
        jax.block_until_ready(metrics)
        return time.perf_counter() - began, state

    stepped_s, state = probe_seconds(stepped_epoch, state)
    scanned_s, state = probe_seconds(train_epoch, state)
    scan_epoch = scanned_s < stepped_s
    run_epoch = train_epoch if scan_epoch else stepped_epoch
    epoch = lambda state, number: run_epoch(state, epoch_order(number))  # noqa: E731
    if scan_epoch:
        evaluate = lambda: jax.block_until_ready(eval_all(state))  # noqa: E731
    else:
        def evaluate():
            jax.block_until_ready([eval_step(state, i, min(batch_size, len(x_test) - i))
                                   for i in range(0, len(x_test), batch_size)])

    state, metrics = epoch(state, 0)  # compiles the whole epoch where it is one program
    jax.block_until_ready(metrics)
    began, done = time.perf_counter(), 0
    while done == 0 or time.perf_counter() - began < ts.MIN_TRAIN_SECONDS:
        state, metrics = epoch(state, done + 1)
        jax.block_until_ready(metrics)
        done += 1
    train_s = time.perf_counter() - began
    evaluate()  # compiles for the full and the last batch
    return {"first_step_s": first_step, "train_ips": done * steps * batch_size / train_s,
            "eval_ips": len(x_test) / ts.best_of(3, evaluate), "peak_mb": ts.jax_peak_mb(),
            "params": sum(p.size for p in jax.tree.leaves(state.params)),
            "path": "scan" if scan_epoch else "per batch"}


def run_keras(model_name: str, batch_size: int, examples: int, steps_per_execution: int = 1) -> dict:
    """Keras 3's ``compile`` and ``fit`` as its guides write them, on the JAX backend (set
    in the worker's environment before Keras is imported), accuracy among the metrics."""
    import keras
    import numpy as np

    import keras_models

    _, loss_name, kind = ts.SETTINGS[model_name]
    x_train, y_train, x_test, y_test = ts.load_arrays(kind, examples)
    keras.utils.set_random_seed(0)
    model = keras_models.MODELS[model_name]()
    classify = loss_name == "cross_entropy"
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classify else "mse",
                  metrics=["accuracy"] if classify else None, steps_per_execution=steps_per_execution)
    steps = len(x_train) // batch_size
    x_train, y_train = x_train[:steps * batch_size], y_train[:steps * batch_size]  # full batches, as the others
    target, test_target = (y_train, y_test) if classify else (x_train, x_test)
    first = batch_size * min(steps, steps_per_execution)  # one execution: one step, or k steps at once

    began = time.perf_counter()
    model.fit(x_train[:first], target[:first], batch_size=batch_size, epochs=1, verbose=0)
    first_step = time.perf_counter() - began
    probe = batch_size * min(steps, 4 * steps_per_execution)  # a few executions: how long is an epoch?
    began = time.perf_counter()
    model.fit(x_train[:probe], target[:probe], batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    epoch_s = (time.perf_counter() - began) * len(x_train) / probe
    epochs = max(1, math.ceil(ts.MIN_TRAIN_SECONDS / epoch_s))
    began = time.perf_counter()
    model.fit(x_train, target, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    train_s = time.perf_counter() - began
    evaluate = lambda: model.evaluate(x_test, test_target, batch_size=batch_size, verbose=0)  # noqa: E731
    evaluate()
    return {"first_step_s": first_step, "train_ips": epochs * steps * batch_size / train_s,
            "eval_ips": len(x_test) / ts.best_of(3, evaluate), "peak_mb": ts.jax_peak_mb(),
            "params": int(sum(np.prod(w.shape) for w in model.trainable_weights))}


def run_worker(peer: str, model_name: str, batch_size: int, examples: int) -> dict:
    if peer == "jaxdl":
        return ts.run_jaxdl(model_name, batch_size, examples)
    if peer in ("torch", "torch_compile"):
        return ts.run_torch(model_name, batch_size, examples, compile_mode="default" if peer == "torch_compile" else None)
    if peer == "flax":
        return run_flax(model_name, batch_size, examples)
    return run_keras(model_name, batch_size, examples, KERAS_STEPS_PER_EXECUTION if peer == "keras_spe" else 1)


def machine_info() -> dict:
    import flax
    import keras
    import optax

    info = ts.machine_info()
    return {**info, "flax": flax.__version__, "optax": optax.__version__, "keras": keras.__version__}


def measure(peer: str, model: str = "-", batch_size: int = 0, examples: int = 0) -> dict:
    """One worker in a fresh process, jaxdl's compilation cache empty: its figures."""
    return ts.run_fresh(__file__, [peer, model, str(batch_size), str(examples)], {"KERAS_BACKEND": "jax"})


def busy(threshold: float) -> tuple[bool, float]:
    load = ts.load_average()
    return load > threshold * (os.cpu_count() or 1), load


def ratios(rounds: list[dict], peer: str, key: str) -> list[float]:
    return [r["jaxdl"][key] / r[peer][key] for r in rounds]


def ratio_cell(values: list[float]) -> str:
    return f"**{statistics.median(values):.2f}x**{ts.ratio_spread(values)}"


def median_of(rounds: list[dict], who: str, key: str) -> float:
    return statistics.median(r[who][key] for r in rounds)


def table_rows(model: str, batch: int, rounds: list[dict], peers: list[str], peak: float) -> tuple[list[str], str]:
    """The peer table's rows for one model and batch size, and its line of the FLOP/s table."""
    rows = []
    for peer in peers:
        path = f" ({rounds[0][peer]['path']})" if "path" in rounds[0][peer] else ""
        rows.append(f"| {model} | {batch} | {PEERS[peer]}{path} | {median_of(rounds, 'jaxdl', 'train_ips'):,.0f} | "
                    f"{median_of(rounds, peer, 'train_ips'):,.0f} | {ratio_cell(ratios(rounds, peer, 'train_ips'))} | "
                    f"{median_of(rounds, 'jaxdl', 'eval_ips'):,.0f} | {median_of(rounds, peer, 'eval_ips'):,.0f} | "
                    f"{ratio_cell(ratios(rounds, peer, 'eval_ips'))} | "
                    f"{median_of(rounds, 'jaxdl', 'first_step_s'):.2f} / "
                    f"{median_of(rounds, 'jaxdl', 'cached_first_step_s'):.2f} | "
                    f"{median_of(rounds, peer, 'first_step_s'):.2f} | "
                    f"{median_of(rounds, 'jaxdl', 'peak_mb'):,.0f} | {median_of(rounds, peer, 'peak_mb'):,.0f} |")
    gflops = median_of(rounds, "jaxdl", "train_gflops")
    flops_line = f"| {model} | {batch} | {gflops:.1f} | {gflops / peak:.1%} | {rounds[0]['jaxdl']['path']} |"
    return rows, flops_line


def copy_into_readme(table: pathlib.Path, readme: pathlib.Path = ROOT / "benchmarks" / "README.md") -> bool:
    """Put ``table``'s text into ``readme`` between the lines ``<!-- begin NAME -->`` and
    ``<!-- end NAME -->`` (NAME: the table's file name), where the README has them, so that
    the README's copy is always the latest run's. Whether it did."""
    begin, end = f"<!-- begin {table.name} -->", f"<!-- end {table.name} -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{table.read_text().rstrip()}\n{end}{rest.split(end, 1)[1]}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--peers", default="all", help=f"comma-separated, from {', '.join(PEERS)}")
    parser.add_argument("--batch-sizes", default="course,256", help="'course' and/or numbers")
    parser.add_argument("--examples", type=int, default=6_000, help="training examples an epoch (28x28 data)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of jaxdl and every peer, alternating")
    parser.add_argument("--out", type=pathlib.Path, help="markdown file (default: benchmarks/peers_<backend>.md)")
    parser.add_argument("--allow-busy", action="store_true",
                        help="run even while the machine is busy, and say so in the table")
    parser.add_argument("--worker", nargs=4, metavar=("PEER", "MODEL", "BATCH", "EXAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        peer, model, batch, examples = args.worker
        result = machine_info() if peer == "info" else run_worker(peer, model, int(batch), int(examples))
        print(json.dumps(result))
        return

    names = MODELS if args.models == "all" else args.models.split(",")
    peers = list(PEERS) if args.peers == "all" else args.peers.split(",")
    for kind, chosen, known in (("models", names, MODELS), ("peers", peers, PEERS)):
        if set(chosen) - set(known):
            parser.error(f"unknown {kind} {sorted(set(chosen) - set(known))}; choose from {', '.join(known)}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if not (ts.DATA / "mnist").is_dir():
        parser.error(f"no MNIST files in {ts.DATA}: set JAXDL_DATA_DIR to the folder holding mnist/ and fashion_mnist/")
    is_busy, load = busy(0.25)
    if is_busy and not args.allow_busy:
        sys.exit(f"the machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} cores): ratios taken "
                 "now are worthless. Wait until it is quiet, or pass --allow-busy to run anyway and mark the table.")

    info = measure("info")
    peak = info["peak_gflops"]
    memory = "resident memory" if info["backend"] == "cpu" else "the device allocator's peak"
    header = [
        f"{info['device']} ({info['backend']}); jax {info['jax']}, jaxdl {info['jaxdl']}, flax {info['flax']}, "
        f"optax {info['optax']}, keras {info['keras']}, torch {info['torch']} ({info['torch_where']}); "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; load average {load:.2f} at start"
        + (" -- BUSY: the machine was busy when this table was made, its ratios are not to be trusted"
           if is_busy else "") + ".",
        f"{args.examples:,} training examples an epoch for the 28x28 models; SGD lr 0.01; median of {args.rounds} "
        f"rounds, each (model, peer) in a fresh process, the per-round ratio's min-max in brackets; peak MB: "
        f"{memory}; jaxdl's first step with its compilation cache empty / filled.", "",
        "| model | batch | peer | jaxdl train img/s | peer train img/s | train ratio | jaxdl eval img/s | "
        "peer eval img/s | eval ratio | jaxdl first step (s) | peer first step (s) | jaxdl peak MB | peer peak MB |",
        "|" + "---|" * 13]
    out = args.out or ROOT / "benchmarks" / f"peers_{info['backend']}.md"
    out.write_text("\n".join(header) + "\n")  # then a row at a time: a cut-off run keeps what it measured
    print("\n".join(header), flush=True)
    flops_lines = []
    for name in names:
        course_batch = ts.SETTINGS[name][0]
        for batch in dict.fromkeys(course_batch if b == "course" else int(b) for b in args.batch_sizes.split(",")):
            rounds = []
            for r in range(args.rounds):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                rounds.append({who: measure(who, name, batch, args.examples) for who in ["jaxdl", *order]})
            ts.check_same_model(name, rounds[0])
            rows, flops_line = table_rows(name, batch, rounds, peers, peak)
            flops_lines.append(flops_line)
            with out.open("a") as f:
                f.write("\n".join(rows) + "\n")
            print("\n".join(rows), flush=True)
    flops = ["", f"jaxdl's train step against this machine's float32 matmul peak ({peak:,.0f} GFLOP/s, "
             "a 2048x2048 jnp.dot on a CPU), XLA's FLOP count of the step:", "",
             "| model | batch | jaxdl train GFLOP/s | of the matmul peak | jaxdl epoch |", "|---|---|---|---|---|",
             *flops_lines]
    with out.open("a") as f:
        f.write("\n".join(flops) + "\n")
    print("\n".join(flops), f"\nwrote {out}", sep="\n")
    if args.out is None and copy_into_readme(out):
        print(f"and copied it into {ROOT / 'benchmarks' / 'README.md'}")


if __name__ == "__main__":
    main()
