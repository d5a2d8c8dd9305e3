"""Training and evaluation speed of every course model: jaxdl against the course's PyTorch.

    pip install -e ".[bench]"                     # adds the CPU build of torch
    python benchmarks/train_speed.py              # every model, course batch size and 256
    python benchmarks/train_speed.py --models FashionMNISTModelV2,TinyVGG --examples 12000

For each model and batch size, each framework runs in its own fresh process (so peak
memory and start-up are its own), jaxdl and PyTorch alternating, on the same data:
MNIST / Fashion-MNIST from the official files for the 28x28 models, the course's
synthetic sets for the small ones, random 64x64 RGB images for TinyVGG. Each measures
the first step (jaxdl: compilation included, then again from its compilation cache), a
whole epoch of training after it in images/s (jaxdl: the way ``fit`` runs it for that
model here, batch by batch or as one ``lax.scan``), the best of three evaluation passes
(images/s) and peak memory (the process's resident memory on CPU, the device's
allocator peak on a GPU);
for jaxdl also the FLOP/s its train step achieves (XLA's count of the lowered step's FLOPs) against
the peak of a large matmul on the same machine.
Prints a table with the ratio jaxdl / PyTorch per row and writes it as markdown, row by row.
``--repeats N`` runs each pair N times, alternating, and reports each figure's median, with
the range of the N per-pair ratios beside the ratio of the medians.
jaxdl's worker starts with ``jaxdl.run.runtime.setup()``, as an entry script does (its
compilation cache, malloc and dispatch settings); PyTorch runs with glibc's defaults, as the
course runs it (``--torch-malloc keep`` gives it jaxdl's malloc setting).
``--kernels plain`` times jaxdl's plain path (``jaxdl.fastpath.PLAIN``) instead of its fast one.

On a GPU both frameworks run there: PyTorch with the data on the device (the fastest way
to feed it; the course copies each batch over), synchronised before every clock reading,
at its default precisions (TF32 for convolutions, float32 for matmuls), jaxdl at JAX's
(TF32 allowed for both). The data is read from ``$JAXDL_DATA_DIR``: a folder holding
``mnist/`` and ``fashion_mnist/`` with the official files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MIN_TRAIN_SECONDS = 1.0  # epochs are repeated until this long (one full-batch epoch is one step)
DATA = pathlib.Path(os.environ.get("JAXDL_DATA_DIR", "")).expanduser()

# model: (course batch size, loss, data)
SETTINGS = {
    "LinearRegressionModel": (40, "l1", "linear"),
    "LinearRegressionModelV2": (40, "l1", "linear"),
    "CircleModelV0": (800, "bce_with_logits", "circles"),
    "CircleModelV1": (800, "bce_with_logits", "circles"),
    "CircleModelV2": (800, "bce_with_logits", "circles"),
    "BlobModel": (800, "cross_entropy", "blobs"),
    "FashionMNISTModelV0": (32, "cross_entropy", "fashion_mnist"),
    "FashionMNISTModelV1": (32, "cross_entropy", "fashion_mnist"),
    "FashionMNISTModelV2": (32, "cross_entropy", "fashion_mnist"),
    "TinyVGG": (32, "cross_entropy", "rgb64"),
    "FashionCNN": (128, "cross_entropy", "fashion_mnist"),
    "MNISTBatchNormCNN": (120, "cross_entropy", "mnist"),
    "MNISTMLP": (64, "cross_entropy", "mnist"),
    "MNISTOneConv": (64, "cross_entropy", "mnist"),
    "MNISTTwoConv": (64, "cross_entropy", "mnist"),
    "SimpleCNN": (256, "cross_entropy", "mnist"),
    "ConvAutoencoder": (256, "mse", "fashion_mnist"),
}


def load_arrays(kind: str, examples: int):
    """(x_train, y_train, x_test, y_test) as NumPy, NHWC float32 / int32."""
    import numpy as np

    if kind in ("mnist", "fashion_mnist"):
        from jaxdl.data import idx

        arrays = idx.load_idx_folder(DATA / kind)
        to_float = lambda a: (a.astype(np.float32) / 255.0)  # noqa: E731
        return (to_float(arrays["train_images"][:examples]), arrays["train_labels"][:examples].astype(np.int32),
                to_float(arrays["test_images"]), arrays["test_labels"].astype(np.int32))
    rng = np.random.default_rng(0)
    if kind == "rgb64":
        n = min(examples, 2400)
        return (rng.random((n, 64, 64, 3), np.float32), rng.integers(0, 3, n).astype(np.int32),
                rng.random((600, 64, 64, 3), np.float32), rng.integers(0, 3, 600).astype(np.int32))
    import jax

    from jaxdl.data import make_blobs, make_circles, make_linear

    if kind == "linear":
        x_train, y_train, x_test, y_test = (np.asarray(a) for a in make_linear())
        return x_train, y_train, x_test, y_test
    x, y = (make_circles if kind == "circles" else make_blobs)(jax.random.key(0))
    x, y = np.asarray(x), np.asarray(y)
    return x[:800], y[:800], x[800:], y[800:]


def best_of(repeats: int, fn) -> float:
    """The shortest of ``repeats`` timed calls (a short call is easily delayed by noise)."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jax_peak_mb() -> float:
    """The accelerator allocator's peak where there is one (JAX reserves most of a GPU's
    memory up front, so the process's size says nothing), else the resident memory."""
    import jax

    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    return stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else peak_rss_mb()


def kernel_policies(name: str):
    """``--kernels``: the fast path (jaxdl's default), the plain path, or the fast path with
    every convolution as im2col + matmul (to check the policy's choices on this machine)."""
    import dataclasses

    from jaxdl import fastpath

    if name == "fast":
        return fastpath.FAST
    if name == "plain":
        return fastpath.PLAIN
    every_conv_im2col = dict(planes_max_out_channels=0, pack_max_in_channels=0, kernel_grad_chunk_bytes=0,
                             im2col_strided=True, im2col_max_patch=2**62)
    return fastpath.Policies(*(dataclasses.replace(p, **every_conv_im2col) for p in
                              (fastpath.CPU, fastpath.GPU, fastpath.TPU, fastpath.PLAIN_POLICY)))


def run_jaxdl(model_name: str, batch_size: int, examples: int, epoch_path: str = "fit", kernel_path: str = "fast",
              torch_layout: str = "course", compute: str = "float32") -> dict:
    import jax
    import jax.numpy as jnp

    from jaxdl import data, fastpath, models, train
    from jaxdl.run import runtime

    runtime.setup()  # as an entry script does; the cache folder comes from $JAXDL_CACHE_DIR
    fastpath.set_default(kernel_policies(kernel_path))

    _, loss, kind = SETTINGS[model_name]
    x_train, y_train, x_test, y_test = load_arrays(kind, examples)
    model, _ = models.COURSE_MODELS[model_name]
    loader = data.make_batches((jnp.asarray(x_train), jnp.asarray(y_train)), batch_size, jax.random.key(0), drop_last=True)
    test = data.make_batches((jnp.asarray(x_test), jnp.asarray(y_test)), batch_size)
    state = train.create_train_state(model, jax.random.key(1), x_train[:1], train.make_optimizer("sgd", 0.01),
                                     loss=loss, target="x" if loss == "mse" and kind != "linear" else "y",
                                     precision=compute)
    batches = list(loader.epoch(0))
    began = time.perf_counter()
    state, metrics = train.train_step(state, batches[0])
    jax.block_until_ready(metrics)
    first_step = time.perf_counter() - began  # compiled here: the worker's cache folder starts empty
    step_flops = program_flops(train.train_step, state, batches[0])
    if epoch_path == "fit":
        scan = fastpath.scan_epochs(train.train_step, state, batches[0], len(loader))  # what fit() does here
    else:
        scan = epoch_path == "scan"

    def run_epoch(state, epoch):
        if scan:
            return train.scan_epoch(state, loader, epoch)
        for batch in loader.epoch(epoch):
            state, metrics = train.train_step(state, batch)
        return state, metrics

    if scan:
        state, metrics = run_epoch(state, 0)  # compiles the scanned epoch
    began, epoch = time.perf_counter(), 0
    while epoch == 0 or time.perf_counter() - began < MIN_TRAIN_SECONDS:  # full-batch sets: several epochs
        epoch += 1
        state, metrics = run_epoch(state, epoch)
        jax.block_until_ready(metrics)
    train_s = time.perf_counter() - began
    steps = epoch * len(loader)
    train.evaluate(state, test)  # compile
    eval_s = best_of(3, lambda: train.evaluate(state, test))
    jax.clear_caches()  # as a new process would: the step comes back from the disk cache
    began = time.perf_counter()
    jax.block_until_ready(train.train_step(state, batches[0]))
    cached_first_step = time.perf_counter() - began
    return {"first_step_s": first_step, "cached_first_step_s": cached_first_step,
            "train_ips": steps * batch_size / train_s, "eval_ips": len(x_test) / eval_s, "peak_mb": jax_peak_mb(),
            "train_gflops": step_flops * steps / train_s / 1e9, "path": "scan" if scan else "per batch",
            "params": models.count_params({"params": state.params})}


def program_flops(jitted, *args) -> float:
    """XLA's FLOP count of ``jitted(*args)`` as written (NaN if XLA offers none), counted by
    the CPU backend's analysis whatever device runs it: the GPU plugin has no count before
    compilation, and the compiled GPU program hides cuDNN's convolutions in custom calls.
    The program is still traced for the default backend, so its convolution paths are that
    device's."""
    import jax

    on_cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on_cpu), args)
    cost = jitted.lower(*shapes).cost_analysis() or {}
    return cost.get("flops", math.nan)


def peak_gflops() -> float:
    """What this machine reaches on a large float32 ``jnp.dot`` (best of five, at JAX's
    default precision): the roof against which the train step's achieved FLOP/s is read."""
    import jax
    import jax.numpy as jnp

    n = 2048 if jax.default_backend() == "cpu" else 8192  # an accelerator needs a larger one to fill

    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul = jax.jit(jnp.dot)
    jax.block_until_ready(matmul(a, a))
    return 2 * n**3 / best_of(5, lambda: jax.block_until_ready(matmul(a, a))) / 1e9


def cpu_name() -> str:
    """The processor as /proc/cpuinfo names it, with its family and model numbers and the
    widest vector instructions: the same name has covered machines a factor of two apart
    in matmul peak (AMD EPYC family 25 at ~205 GFLOP/s, family 26 at ~440, two cores)."""
    fields = {}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "cpu"
    if "model name" not in fields:
        return "cpu"
    flags = fields.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return (f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"
            + (f", {vector}" if vector else "") + f", {os.cpu_count()} cores)")


def machine_info() -> dict:
    """The device, versions and matmul peak, read in a worker: the parent process must not
    touch the accelerator, since JAX would reserve most of its memory for the whole run."""
    import jax
    import torch

    import jaxdl

    on_cpu = jax.default_backend() == "cpu"
    return {"device": cpu_name() if on_cpu else jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "jax": jax.__version__, "jaxdl": jaxdl.__version__,
            "torch": torch.__version__, "peak_gflops": peak_gflops(),
            "torch_where": f"{torch.get_num_threads()} torch threads" if on_cpu
            else f"torch on {torch.cuda.get_device_name()}"}


def run_torch(model_name: str, batch_size: int, examples: int, epoch_path: str = "fit", kernel_path: str = "fast",
              torch_layout: str = "course", compute: str = "float32", compile_mode: str | None = None) -> dict:
    """The course's PyTorch loop; ``compile_mode`` ("default", "reduce-overhead", ...) runs
    the model through ``torch.compile`` first, its compilation counted in the first step."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from torch_models import MODELS

    _, loss, kind = SETTINGS[model_name]
    x_train, y_train, x_test, y_test = load_arrays(kind, examples)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def to_nchw(a):
        # The strides matter, not just the shape: NumPy gives a transposed 1-channel array
        # strides (784, 1, 28, 1), which PyTorch's convolutions take for channels_last (its
        # faster NHWC path on CPU: FashionMNISTModelV2 b32 3.9 ms a step against 5.9). The
        # course's DataLoader stacks ToTensor's images into a fresh NCHW tensor, strides
        # (784, 784, 28, 1); clone() to that, or to channels_last when asked for.
        if a.ndim != 4:
            return torch.from_numpy(a)
        nchw = torch.from_numpy(a.transpose(0, 3, 1, 2))
        return nchw.clone(memory_format=torch.channels_last if torch_layout == "channels_last" else torch.contiguous_format)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # CUDA runs asynchronously
    x_train, x_test = to_nchw(x_train).to(device), to_nchw(x_test).to(device)
    y_train, y_test = torch.from_numpy(y_train).long().to(device), torch.from_numpy(y_test).long().to(device)
    torch.manual_seed(42)
    model = MODELS[model_name]().to(device)
    if torch_layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    if compile_mode is not None:
        model = torch.compile(model, mode=compile_mode)

    def loss_fn(out, x, y):
        if loss == "cross_entropy":
            return F.cross_entropy(out, y)
        if loss == "bce_with_logits":
            return F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())
        target = y if kind == "linear" else x
        return (F.l1_loss if loss == "l1" else F.mse_loss)(out, target)

    def step(idx):
        x, y = x_train[idx], y_train[idx]
        model.train()
        loss_value = loss_fn(model(x), x, y)
        optimizer.zero_grad()
        loss_value.backward()
        optimizer.step()
        return loss_value

    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x_train), generator=generator).to(device)
    steps = len(x_train) // batch_size
    began = time.perf_counter()
    step(order[:batch_size])
    sync()
    first_step = time.perf_counter() - began
    began, done = time.perf_counter(), 0
    while done == 0 or time.perf_counter() - began < MIN_TRAIN_SECONDS:
        for i in range(steps):
            step(order[i * batch_size:(i + 1) * batch_size])
        done += steps
        sync()
    train_s = time.perf_counter() - began
    model.eval()

    @torch.inference_mode()
    def evaluate():
        for i in range(0, len(x_test), batch_size):
            loss_fn(model(x_test[i:i + batch_size]), x_test[i:i + batch_size], y_test[i:i + batch_size]).item()

    eval_s = best_of(3, evaluate)  # .item() on every batch's loss: synchronised
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()
    return {"first_step_s": first_step, "train_ips": done * batch_size / train_s,
            "eval_ips": len(x_test) / eval_s, "peak_mb": peak_mb,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def run_fresh(script: str, worker_args: list[str], env: dict[str, str] | None = None) -> dict:
    """``script --worker *worker_args`` in a fresh process with jaxdl's compilation cache
    empty (a cold start) and ``env`` added to the environment: the figures it prints as
    JSON on its last line. The first three arguments (who, model, batch) name a failure."""
    cmd = [sys.executable, script, "--worker", *worker_args]
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, **(env or {}), "JAXDL_CACHE_DIR": cache})
    if out.returncode:
        raise RuntimeError(f"{' '.join(worker_args[:3])} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def measure(framework: str, model: str = "-", batch_size: int = 0, examples: int = 0, env: dict[str, str] | None = None,
            epoch_path: str = "fit", kernel_path: str = "fast", torch_layout: str = "course",
            torch_malloc: str = "system", compute: str = "float32") -> dict:
    """Runs one worker (``framework``: jaxdl, torch or info) in a fresh process and returns its figures."""
    if framework == "torch" and torch_malloc == "keep":
        framework = "torch-keep-malloc"
    return run_fresh(__file__, [framework, model, str(batch_size), str(examples), epoch_path, kernel_path,
                                torch_layout, compute], env)


def check_same_model(name: str, runs: dict[str, dict]) -> None:
    """Refuse to compare frameworks whose models differ: ``runs`` maps a framework to its
    worker's figures, each with the trainable parameter count of the model it trained."""
    counts = {who: run["params"] for who, run in runs.items()}
    if len(set(counts.values())) > 1:
        raise RuntimeError(f"{name}: the parameter counts differ, {counts}: not the same model")


def medians(runs: list[dict]) -> dict:
    """Each numeric figure's median over ``runs`` of one framework (the path, a word, from the first)."""
    return {key: (statistics.median(run[key] for run in runs) if isinstance(value, (int, float)) else value)
            for key, value in runs[0].items()}


def ratio_spread(ratios: list[float]) -> str:
    """`` (lo-hi)``: the range of ``ratios``, or nothing for a single one."""
    return f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""


def ratio_range(pairs: list[tuple[dict, dict]], key: str) -> str:
    """:func:`ratio_spread` of the jaxdl/PyTorch ratios of ``key`` over alternating pairs of runs."""
    return ratio_spread([j[key] / t[key] for j, t in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated course model names")
    parser.add_argument("--batch-sizes", default="course,256", help="'course' and/or numbers")
    parser.add_argument("--examples", type=int, default=60_000, help="training examples an epoch (28x28 data)")
    parser.add_argument("--out", type=pathlib.Path, help="markdown file (default: benchmarks/train_speed_<device>.md)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in both frameworks' worker processes, e.g. "
                             "JAXDL_HOST_MALLOC=system to time jaxdl with glibc's malloc defaults (repeatable)")
    parser.add_argument("--epoch-path", choices=("fit", "scan", "per-batch"), default="fit",
                        help="how jaxdl runs an epoch: as fit() would here (default), or forced, "
                             "to check jaxdl.fastpath.scan_epochs's choice on this machine")
    parser.add_argument("--kernels", choices=("fast", "plain", "im2col"), default="fast",
                        help="jaxdl's fast path (default), its plain path (jaxdl.fastpath.PLAIN), or the fast path "
                             "with every convolution as im2col, to check the policy's choices on this machine")
    parser.add_argument("--torch-layout", choices=("course", "channels_last"), default="course",
                        help="PyTorch's image layout: the course's NCHW batches, as its DataLoader makes them "
                             "(default), or channels_last for data and model (PyTorch's faster NHWC path on CPU)")
    parser.add_argument("--torch-malloc", choices=("system", "keep"), default="system",
                        help="PyTorch's malloc: glibc's defaults, as the course runs (default), or the settings "
                             "jaxdl.run.runtime.setup() makes, for a like-for-like comparison")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each framework this many times per row, alternating, and print the medians "
                             "with the range of the per-pair ratios (this machine's speed drifts between processes)")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="how jaxdl's steps compute (jaxdl.precision; PyTorch stays float32)")
    parser.add_argument("--worker", nargs=8,
                        metavar=("FRAMEWORK", "MODEL", "BATCH", "EXAMPLES", "PATH", "KERNELS", "LAYOUT", "PRECISION"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.worker:
        framework, model, batch, examples, epoch_path, kernel_path, torch_layout, compute = args.worker
        if framework == "info":
            print(json.dumps(machine_info()))
            return
        if framework == "torch-keep-malloc":
            from jaxdl.run import runtime

            runtime.keep_freed_host_memory()
        run = run_jaxdl if framework == "jaxdl" else run_torch
        print(json.dumps(run(model, int(batch), int(examples), epoch_path, kernel_path, torch_layout, compute)))
        return

    names = list(SETTINGS) if args.models == "all" else args.models.split(",")
    if any("=" not in item for item in args.env):
        parser.error(f"--env takes NAME=VALUE, got {args.env}")
    env = dict(item.split("=", 1) for item in args.env)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(SETTINGS)}")
    header = ("| model | batch | jaxdl train img/s | PyTorch train img/s | ratio | jaxdl eval img/s | "
              "PyTorch eval img/s | ratio | jaxdl first step (s): cold / cached | PyTorch first step (s) | "
              "jaxdl peak MB | PyTorch peak MB | jaxdl train GFLOP/s (of peak) | jaxdl epoch |")
    if not str(DATA) or not (DATA / "mnist").is_dir():
        parser.error(f"no MNIST files in {DATA}: set JAXDL_DATA_DIR to the folder holding mnist/ and fashion_mnist/")
    info = measure("info")
    peak, on_cpu = info["peak_gflops"], info["backend"] == "cpu"
    memory = "peak MB: the process's resident memory" if on_cpu else "peak MB: the device allocator's peak"
    load = load_average()
    lines = [f"Device: {info['device']} ({info['backend']}), jax {info['jax']}, jaxdl {info['jaxdl']}, "
             f"torch {info['torch']}, {info['torch_where']}; {datetime.date.today().isoformat()}, load average "
             f"{load:.2f} at start; {args.examples:,} training examples an epoch for the "
             f"28x28 models; peak float32 matmul {peak:,.0f} GFLOP/s; {memory}"
             + (f"; workers' environment {env}" if env else "")
             + (f"; jaxdl epochs forced {args.epoch_path}" if args.epoch_path != "fit" else "")
             + (f"; jaxdl kernels: {args.kernels}" if args.kernels != "fast" else "")
             + (f"; jaxdl computes in {args.precision} (mixed precision)" if args.precision != "float32" else "")
             + ("; PyTorch in channels_last" if args.torch_layout == "channels_last" else
                "; PyTorch's batches NCHW as the course's DataLoader makes them")
             + ("; PyTorch with jaxdl's malloc settings" if args.torch_malloc == "keep" else "")
             + (f"; medians of {args.repeats} alternating runs each, the per-pair ratios' range in brackets"
                if args.repeats > 1 else "") + ".",
             "", header, "|" + "---|" * 14]
    out = args.out or ROOT / "benchmarks" / f"train_speed_{info['backend']}.md"
    out.write_text("\n".join(lines) + "\n")  # and a row at a time, so that a cut-off run keeps what it measured
    print("\n".join(lines), flush=True)
    for name in names:
        course_batch = SETTINGS[name][0]
        sizes = [course_batch if b == "course" else int(b) for b in args.batch_sizes.split(",")]
        for batch in dict.fromkeys(sizes):
            if SETTINGS[name][2] in ("linear", "circles", "blobs") and batch != course_batch:
                continue  # full-batch sets: the course's one batch only
            pairs = [tuple(measure(framework, name, batch, args.examples, env, args.epoch_path, args.kernels,
                                   args.torch_layout, args.torch_malloc, args.precision)
                           for framework in ("jaxdl", "torch"))
                     for _ in range(args.repeats)]
            check_same_model(name, {"jaxdl": pairs[0][0], "PyTorch": pairs[0][1]})
            j, t = (medians([pair[i] for pair in pairs]) for i in (0, 1))
            line = (f"| {name} | {batch} | {j['train_ips']:,.0f} | {t['train_ips']:,.0f} | "
                    f"**{j['train_ips'] / t['train_ips']:.2f}x**{ratio_range(pairs, 'train_ips')} | "
                    f"{j['eval_ips']:,.0f} | {t['eval_ips']:,.0f} | "
                    f"{j['eval_ips'] / t['eval_ips']:.2f}x{ratio_range(pairs, 'eval_ips')} | "
                    f"{j['first_step_s']:.2f} / {j['cached_first_step_s']:.2f} | "
                    f"{t['first_step_s']:.3f} | "
                    f"{j['peak_mb']:,.0f} | {t['peak_mb']:,.0f} | "
                    f"{j['train_gflops']:.1f} ({j['train_gflops'] / peak:.0%}) | {j['path']} |")
            with out.open("a") as f:
                f.write(line + "\n")
            print(line, flush=True)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
