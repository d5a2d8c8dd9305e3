"""What each rule of the fast path is worth: every course conv model's train step under
the fast policy, the plain one, and the fast one with one rule switched off at a time.

    python benchmarks/kernels_speed.py                       # the conv models, this machine's policy
    python benchmarks/kernels_speed.py --models TinyVGG,SimpleCNN --rounds 9

For each model (at its course batch size, one fresh process a model) the train step is
compiled once per policy -- ``jaxdl.fastpath.use`` with the platform's policy as it is,
with ``jaxdl.fastpath.PLAIN_POLICY``, and with each rule of ``docs/performance.md`` off
(``dataclasses.replace`` on the policy) -- and the variants are then timed in turn,
``--rounds`` times, each round a few steps of each: the machine's drift falls on all of
them alike. Prints and writes (``benchmarks/kernels_speed_<backend>.md``) the median ms a
step of each variant and its ratio to the fast path: above 1.00, the rule that is off
saves that much. A variant whose program equals the fast one's (the rule does not touch
this model) is marked "same program" and not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_speed import SETTINGS, cpu_name, load_arrays  # noqa: E402

CONV_MODELS = ["FashionMNISTModelV2", "TinyVGG", "FashionCNN", "MNISTBatchNormCNN", "MNISTOneConv", "MNISTTwoConv",
               "SimpleCNN", "ConvAutoencoder"]

RULES = {  # each rule of the fast path, as the fields that switch it off
    "shifted planes": dict(planes_max_out_channels=0),
    "packed pixels": dict(pack_max_in_channels=0, pack_max_out_channels=0),
    "im2col": dict(im2col_max_patch=0, im2col_strided=False, im2col_max_matrix=0),
    "chunked kernel gradient": dict(kernel_grad_chunk_bytes=0),
    "tiled pools": dict(tiled_pools=False),
    "compiler options": dict(compiler_options=()),
}


def worker(model_name: str, rounds: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxdl import data, fastpath, models, train
    from jaxdl.run import runtime

    runtime.setup()
    platform = jax.default_backend()
    fast = fastpath.current().for_platform(platform)
    variants = {"fast": fast, "plain": fastpath.PLAIN_POLICY}
    variants.update({f"without {rule}": dataclasses.replace(fast, **fields) for rule, fields in RULES.items()})
    batch_size, loss, kind = SETTINGS[model_name]
    x, y, _, _ = load_arrays(kind, batch_size * steps)
    loader = data.make_batches((jnp.asarray(x), jnp.asarray(y)), batch_size, jax.random.key(0), drop_last=True)
    batches = list(loader.epoch(0))[:steps]
    model, _ = models.COURSE_MODELS[model_name]
    target = "x" if loss == "mse" else "y"

    states, programs = {}, {}
    for name, policy in variants.items():
        with fastpath.use(policy):
            state = train.create_train_state(model, jax.random.key(1), x[:1], train.make_optimizer("sgd", 0.01),
                                             loss=loss, target=target)
            programs[name] = (train.train_step.lower(state, batches[0]).as_text(), policy.compiler_options)
            states[name] = state
            jax.block_until_ready(train.train_step(state, batches[0]))  # compile (the state is donated: make anew)
            states[name] = train.create_train_state(model, jax.random.key(1), x[:1],
                                                    train.make_optimizer("sgd", 0.01), loss=loss, target=target)
    timed = [name for name in variants if name == "fast" or programs[name] != programs["fast"]]
    times = {name: [] for name in timed}
    for _ in range(rounds):
        for name in timed:
            with fastpath.use(variants[name]):
                state = states[name]
                began = time.perf_counter()
                for batch in batches:
                    state, metrics = train.train_step(state, batch)
                jax.block_until_ready(metrics)
                times[name].append((time.perf_counter() - began) / len(batches))
                states[name] = state
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"batch": batch_size, "ms": {name: ms * 1e3 for name, ms in medians.items()},
            "same": [name for name in variants if name not in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CONV_MODELS), help="comma-separated course model names")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of timing, every variant in each")
    parser.add_argument("--steps", type=int, default=10, help="train steps a variant runs in a round")
    parser.add_argument("--out", type=pathlib.Path, help="markdown file (default: benchmarks/kernels_speed_<backend>.md)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rounds, args.steps)))
        return
    names = args.models.split(",")
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(SETTINGS)}")
    if not os.environ.get("JAXDL_DATA_DIR"):
        parser.error("set JAXDL_DATA_DIR to the folder holding mnist/ and fashion_mnist/")
    import jax

    import jaxdl

    backend = jax.default_backend()
    device = cpu_name() if backend == "cpu" else jax.devices()[0].device_kind
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    columns = ["plain", *(f"without {rule}" for rule in RULES)]
    lines = [f"Device: {device} ({backend}); jax {jax.__version__}, jaxdl {jaxdl.__version__}; "
             f"{datetime.date.today().isoformat()}; load average {load:.2f} at start; median of {args.rounds} rounds "
             f"of {args.steps} steps each, all variants of a model alternating in one process.", "",
             "| model | batch | fast ms/step | " + " | ".join(f"{c}: ratio to fast" for c in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    print("\n".join(lines), flush=True)
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--rounds", str(args.rounds),
                              "--steps", str(args.steps)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        fast = result["ms"]["fast"]
        cells = [("same program" if c in result["same"] else f"{result['ms'][c] / fast:.2f}") for c in columns]
        lines.append(f"| {name} | {result['batch']} | {fast:.2f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    path = args.out or ROOT / "benchmarks" / f"kernels_speed_{backend}.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
