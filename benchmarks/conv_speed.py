"""The convolutions of ``jaxdl.conv`` and ``jaxdl.fastpath``: the lesson's timing, then every course conv layer.

    python benchmarks/conv_speed.py                 # both parts, markdown to benchmarks/conv_speed_<backend>.md
    python benchmarks/conv_speed.py --part layers   # only the course layers

Part 1, the lesson (fast.ai Lesson 15 / notebook 05): one 28x28 image and one 3x3 kernel,
then 16 images and the 4 edge kernels, by Python loops (NumPy), im2col + matmul (jit)
and ``lax.conv_general_dilated`` (jit).

Part 2, the course's models: every ``Conv2D`` call of every course model at its course
batch size (found by intercepting the layers, so the list follows the models), its
forward and backward pass timed by ``lax``, by im2col + matmul and, stride 1, with rows
packed into channels (``fastpath.conv2d_packed``, by the policy's pixels or 2), alternating,
best of several (and by ``fastpath.conv2d_planes`` where the policy takes it). The backward
pass computes what training needs: the kernel gradient, and the input gradient for every
layer but a model's first, whose input is the data. Everything is compiled as the library
compiles it (``jaxdl.fastpath.jit``); one more column times ``lax`` with XLA's default
options, the evidence for the CPU policy's ``compiler_options``. This is the evidence
behind the policy's choice (``jaxdl.fastpath.Policy.conv``), which the last columns show
with its own time, as ``Conv2D`` runs it. A layer alone reads its input from memory, where
in a model it comes out of a fusion: whole train steps (``train_speed.py``) have the last word.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import conv, fastpath, models
from jaxdl.run import runtime
from jaxdl.layers import Conv2D

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_speed import SETTINGS, cpu_name  # noqa: E402  (course batch sizes; the processor's name)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def best_time(fn, *args, repeats: int = 5, min_seconds: float = 0.05) -> float:
    """Seconds per call: the best of ``repeats`` runs of enough calls to take ``min_seconds``."""
    jax.block_until_ready(fn(*args))
    began, calls = time.perf_counter(), 0
    while time.perf_counter() - began < min_seconds:
        jax.block_until_ready(fn(*args))
        calls += 1
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - began) / calls)
    return best


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def lesson_table() -> list[str]:
    digits = np.asarray(jax.random.uniform(jax.random.key(0), (16, 28, 28, 1)))
    lines = ["| input | kernels | loops (NumPy) | im2col + matmul (jit) | lax (jit) |", "|---|---|---|---|---|"]
    for n, bank in ((1, conv.edge_kernels()[..., :1]), (16, conv.edge_kernels())):
        images = digits[:n]
        times = [best_time(lambda x, k: conv.conv2d_loops(x, k), images, bank, repeats=3),
                 best_time(fastpath.jit(conv.conv2d_im2col), images, bank),
                 best_time(fastpath.jit(conv.conv2d), images, bank)]
        lines.append(f"| {n} x 28x28x1 | {bank.shape[-1]} x 3x3 | " + " | ".join(fmt(t) for t in times) + " |")
    return lines


def course_conv_layers() -> list[tuple[str, tuple, dict]]:
    """(model, input shape, Conv2D fields) for every conv call of every course model, deduplicated."""
    found: dict[tuple, tuple] = {}

    for name, (model, example) in models.COURSE_MODELS.items():
        batch = SETTINGS[name][0]
        convs_seen = []

        def record(next_fun, args, kwargs, context, name=name, batch=batch, convs_seen=convs_seen):
            module = context.module
            if isinstance(module, Conv2D) and context.method_name == "__call__":
                x = args[0]
                key = ((batch, *x.shape[1:]), module.features, conv.pair(module.kernel_size, "k"),
                       conv.pair(module.strides, "s"), repr(module.padding))
                found.setdefault(key, (name, module.padding, not convs_seen))  # the first one's input is the data
                convs_seen.append(key)
            return next_fun(*args, **kwargs)

        def init(x, model=model, record=record):
            with nn.intercept_methods(record):
                return model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, x)

        jax.eval_shape(init, jax.ShapeDtypeStruct((1, *example), jnp.float32))
    return [(name, key[0], {"features": key[1], "kernel": key[2], "strides": key[3], "padding": padding, "first": first})
            for key, (name, padding, first) in found.items()]


def layer_table() -> list[str]:
    lines = ["| model | input (NHWC) | kernel | stride, padding | gradients | lax fwd+bwd | lax, XLA's default options "
             "| im2col fwd+bwd | im2col/lax | packed fwd+bwd (pixels) | packed/lax | planes fwd+bwd | policy's choice | "
             "choice fwd+bwd | choice/lax |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, shape, layer in course_conv_layers():
        kh, kw = layer["kernel"]
        padding, stride = layer["padding"], layer["strides"]
        x = jax.random.normal(jax.random.key(0), shape)
        w = jax.random.normal(jax.random.key(1), (kh, kw, shape[-1], layer["features"])) * 0.1
        wrt = (1,) if layer["first"] else (0, 1)  # a model's first layer needs no gradient for its input

        def fwd_bwd(impl, jit=fastpath.jit, wrt=wrt):
            def step(x, w):
                y, vjp = jax.vjp(lambda x, w: impl(x, w, stride, padding), x, w)
                return tuple(vjp(y)[i] for i in wrt)
            return jit(step)

        strides = conv.pair(stride, "stride")
        choice = fastpath.active()[1].conv(shape, w.shape, strides)
        pack = max(2, choice.pack)  # stride 1: timed by 2 where the policy does not pack
        steps = [fwd_bwd(conv.conv2d), fwd_bwd(conv.conv2d, jax.jit), fwd_bwd(fastpath.conv2d_im2col)]
        if strides == (1, 1):
            steps.append(fwd_bwd(lambda x, w, stride, padding: fastpath.conv2d_packed(x, w, padding, pack)))
        planes = choice.kernel is fastpath.ConvKernel.PLANES
        if planes:  # timed only where the policy takes it
            steps.append(fwd_bwd(lambda x, w, stride, padding: fastpath.conv2d_planes(x, w, padding)))

        def as_conv2d_runs_it(x, w, stride, padding):
            fast = fastpath.faster_conv2d(x.shape, w.shape, stride, 1, x.dtype)
            return (fast or (lambda x, w, s, p, d: conv.conv2d(x, w, s, p, d)))(x, w, stride, padding, 1)

        steps.append(fwd_bwd(as_conv2d_runs_it))
        times = [[] for _ in steps]
        for _ in range(3):  # alternate, so that noise falls on all
            for step, t in zip(steps, times):
                t.append(best_time(step, x, w, repeats=2))
        best = [min(t) for t in times]
        auto_best = best.pop()
        lax_best, default_best, im2col_best = best[:3]
        packed = f"{fmt(best[3])} (x{pack}) | {best[3] / lax_best:.2f}" if len(best) > 3 else "— | —"
        planes_time = fmt(best[-1]) if planes else "—"
        chosen = choice.kernel.value + (f" ({choice.pack})" if choice.pack > 1 else "") + (
            f" ({choice.chunks} chunks)" if choice.chunks > 1 else "")
        lines.append(f"| {name} | {shape} | {kh}x{kw}, {shape[-1]}->{layer['features']} | {stride}, {padding} | "
                     f"{'kernel' if layer['first'] else 'input, kernel'} | {fmt(lax_best)} | {fmt(default_best)} | "
                     f"{fmt(im2col_best)} | {im2col_best / lax_best:.2f} | {packed} | {planes_time} | {chosen} | "
                     f"{fmt(auto_best)} | {auto_best / lax_best:.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "lesson", "layers"), default="all")
    parser.add_argument("--out", type=pathlib.Path, help="markdown file (default: benchmarks/conv_speed_<backend>.md)")
    args = parser.parse_args()
    runtime.setup()
    device = cpu_name() if jax.default_backend() == "cpu" else jax.devices()[0].device_kind
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"Device: {device} ({jax.default_backend()}), jax {jax.__version__}; "
             f"{datetime.date.today().isoformat()}, load average {load:.2f} at start", ""]
    print(lines[0], flush=True)
    if args.part in ("all", "lesson"):
        lines += ["The lesson's convolution, forward only:", "", *lesson_table(), ""]
        print("\n".join(lines[2:]), flush=True)
    if args.part in ("all", "layers"):
        lines += ["Every course conv layer at its course batch size, forward + backward:", "", *layer_table()]
    out = args.out or ROOT / "benchmarks" / f"conv_speed_{jax.default_backend()}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
