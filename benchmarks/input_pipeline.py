"""Host input throughput: images a second that reach the device from a folder of JPEGs.

    pip install -e ".[bench]"                     # adds the CPU builds of torch and torchvision
    python benchmarks/input_pipeline.py           # 20,000 JPEGs at 64x64 and at 224x224
    python benchmarks/input_pipeline.py --images 4000 --sizes 64 --repeats 3

Writes a folder of generated JPEGs (three classes, smooth colours and noise, as photos
compress) for each size, once, under ``--cache`` (default ``~/.cache/jaxdl/bench_images``),
then reads one epoch of it, batch 32, shuffled, resized to the size the model sees,
placed on the device, with:

* jaxdl's Grain loader (``make_batches(ImageFolder(...))``) with 0, 1 and 2 worker
  processes;
* the thread loader it replaced (four threads in the training process, kept here as
  the baseline);
* the course's PyTorch: ``DataLoader(ImageFolder(root, Compose([Resize, ToTensor()])),
  batch_size=32, shuffle=True, num_workers=N)`` with the same worker counts (where
  torchvision's build does not load against the installed torch, the same steps in
  PIL: :class:`PilImageFolder`; the table says which ran).

Each reader runs in a fresh process, the readers alternating within each repeat. The
table gives images/s over the epoch (the start of the workers included, as a user waits
for it), the ratio of each jaxdl row to the PyTorch row with as many workers, the rate
after the first batch (steady state) and the time to the first batch. Beside
it, the training step of TinyVGG (the course's model for image folders) on batches
already on the device, in images/s: where it is lower than the input rate, compute
bounds the run; where higher, input does.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from train_speed import cpu_name, load_average, ratio_spread, run_fresh  # noqa: E402

BATCH = 32
CLASSES = ("pizza", "steak", "sushi")
READERS = ("jaxdl-0", "jaxdl-1", "jaxdl-2", "threads-4", "torch-0", "torch-1", "torch-2")


def write_folder(root: pathlib.Path, count: int, size: int) -> pathlib.Path:
    """``count`` JPEGs of ``size`` x ``size`` in three class folders (written once)."""
    import numpy as np
    from PIL import Image

    done = root / f"done-{count}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for i in range(count):
        folder = root / CLASSES[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.uniform(0, 255, 3)
        shade = (ramp[:, None, None] * ramp[None, :, None] * colour + rng.normal(0, 12, (size, size, 3)))
        Image.fromarray(np.clip(shade, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root


class ThreadBatches:
    """The thread loader jaxdl had before Grain: four threads in the training process read
    batches (in jaxdl's order) two ahead and put them on the device."""

    def __init__(self, source, batch_size, key, workers=4, prefetch=2):
        self.source, self.batch_size, self.key = source, batch_size, key
        self.workers, self.prefetch = workers, prefetch

    def epoch(self, epoch=0):
        import jax
        import numpy as np

        from jaxdl.data.order import epoch_order

        indices, mask = jax.device_get(epoch_order(len(self.source), self.batch_size, self.key, epoch, False))

        def read(step):
            pairs = [self.source[int(i)] for i in indices[step]]
            return jax.device_put({"x": np.stack([p[0] for p in pairs]), "y": np.asarray([p[1] for p in pairs]),
                                   "mask": mask[step]})

        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            pending = [pool.submit(read, s) for s in range(min(self.prefetch, len(indices)))]
            for step in range(len(indices)):
                batch = pending.pop(0).result()
                if step + len(pending) + 1 < len(indices):
                    pending.append(pool.submit(read, step + len(pending) + 1))
                yield batch


def read_jaxdl(root: str, size: int, reader: str) -> dict:
    import jax

    from jaxdl import data
    from jaxdl.run import runtime

    runtime.setup()
    began = time.perf_counter()
    folder = data.ImageFolder(root, (size, size))
    kind, count = reader.split("-")
    if kind == "threads":
        loader = ThreadBatches(folder, BATCH, jax.random.key(0), workers=int(count))
    else:
        loader = data.make_batches(folder, BATCH, jax.random.key(0), worker_count=int(count))
    images, first = 0, None
    for batch in loader.epoch(0):
        batch["x"].block_until_ready()
        images += int(batch["x"].shape[0])
        first = first or time.perf_counter()
    ended = time.perf_counter()
    if isinstance(loader, data.HostBatches):
        loader.close()
    return {"images": images, "seconds": ended - began, "first": first - began, "rest": ended - first}


class PilImageFolder:
    """torchvision's ``ImageFolder(root, Compose([Resize((s, s)), ToTensor()]))`` in the
    same steps (sorted class folders, PIL open and convert to RGB, PIL's antialiased
    bilinear resize, HWC uint8 to CHW float / 255), for machines where torchvision's
    build does not load against the installed torch (its CPU and CUDA builds differ)."""

    def __init__(self, root: str, size: int):
        root_path = pathlib.Path(root)
        self.classes = sorted(p.name for p in root_path.iterdir() if p.is_dir())
        self.samples = [(path, label) for label, name in enumerate(self.classes)
                        for path in sorted((root_path / name).iterdir())
                        if path.suffix.lower() in (".jpg", ".jpeg", ".png")]
        self.size = size

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        import numpy as np
        import torch
        from PIL import Image

        path, label = self.samples[index]
        with open(path, "rb") as f:
            image = Image.open(f).convert("RGB")
        image = image.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255), label


def torch_folder(root: str, size: int):
    """The course's dataset: torchvision's ImageFolder with Resize and ToTensor, or the same
    steps (:class:`PilImageFolder`) where torchvision does not load."""
    try:
        from torchvision import datasets, transforms
    except (ImportError, RuntimeError):
        return PilImageFolder(root, size), "PIL steps of torchvision's ImageFolder"
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    return datasets.ImageFolder(root, transform), "torchvision ImageFolder"


def read_torch(root: str, size: int, reader: str) -> dict:
    import torch

    torch.manual_seed(0)
    began = time.perf_counter()
    folder, how = torch_folder(root, size)
    loader = torch.utils.data.DataLoader(folder, batch_size=BATCH, shuffle=True, num_workers=int(reader.split("-")[1]))
    images, first = 0, None
    for x, y in loader:
        images += int(x.shape[0])
        first = first or time.perf_counter()
    ended = time.perf_counter()
    return {"images": images, "seconds": ended - began, "first": first - began, "rest": ended - first, "how": how}


def train_rate(size: int) -> dict:
    """TinyVGG's training step on a batch already on the device, images/s (best of 3 x 20 steps)."""
    import jax
    import jax.numpy as jnp

    from jaxdl import train
    from jaxdl.models import TinyVGG
    from jaxdl.run import runtime

    runtime.setup()
    x = jax.random.uniform(jax.random.key(0), (BATCH, size, size, 3))
    batch = {"x": x, "y": jnp.arange(BATCH, dtype=jnp.int32) % 3, "mask": jnp.ones(BATCH)}
    state = train.create_train_state(TinyVGG(3, 10, 3), jax.random.key(1), x[:1], train.make_optimizer("adam", 1e-3))
    state, metrics = train.train_step(state, batch)
    jax.block_until_ready(metrics)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(20):
            state, metrics = train.train_step(state, batch)
        jax.block_until_ready(metrics)
        best = min(best, time.perf_counter() - began)
    return {"images": 20 * BATCH, "seconds": best}


def worker(args: list[str]) -> None:
    what, root, size = args[0], args[1], int(args[2])
    if what == "train":
        result = train_rate(size)
    elif what.startswith("torch"):
        result = read_torch(root, size, what)
    else:
        result = read_jaxdl(root, size, what)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="JPEGs in each folder")
    parser.add_argument("--sizes", default="64,224", help="comma-separated image sides")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all readers, alternating")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma-separated, of {', '.join(READERS)}")
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache/jaxdl/bench_images")
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parent / "input_pipeline_cpu.md")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    readers = args.readers.split(",")
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    header = (f"{cpu_name()}, {started}, load average {load_average():.2f} at the start; {args.images} JPEGs, "
              f"batch {BATCH}, one epoch, best of {args.repeats}")
    print(header, flush=True)
    lines = [f"# Host input throughput\n\n{header}\n",
             "| size | reader | images/s, epoch | vs PyTorch, same workers | images/s after the first batch "
             "| first batch, s | TinyVGG train step, images/s |",
             "|---|---|---|---|---|---|---|"]
    torch_how = set()
    for size in (int(s) for s in args.sizes.split(",")):
        root = str(write_folder(args.cache / f"{args.images}-{size}", args.images, size))
        rates: dict[str, list[float]] = {reader: [] for reader in readers}
        steady: dict[str, list[float]] = {reader: [] for reader in readers}
        firsts: dict[str, list[float]] = {reader: [] for reader in readers}
        for _ in range(args.repeats):
            for reader in readers:
                result = run_fresh(__file__, [reader, root, str(size)])
                rates[reader].append(result["images"] / result["seconds"])
                steady[reader].append((result["images"] - BATCH) / result["rest"])
                firsts[reader].append(result["first"])
                torch_how.add(result.get("how"))
                print(f"{size} {reader}: {rates[reader][-1]:.0f} images/s, {steady[reader][-1]:.0f} after the "
                      f"first batch ({firsts[reader][-1]:.2f} s)", flush=True)
        step = run_fresh(__file__, ["train", root, str(size)])
        step_rate = step["images"] / step["seconds"]
        for reader in readers:
            best = max(rates[reader])
            peer = f"torch-{reader.split('-')[1]}" if reader.startswith("jaxdl") else None
            if peer in rates:
                ratios = [a / b for a, b in zip(rates[reader], rates[peer])]
                versus = f"{best / max(rates[peer]):.2f}x{ratio_spread(ratios)}"
            else:
                versus = "-"
            lines.append(f"| {size}x{size} | {reader} | {best:,.0f} | {versus} | {max(steady[reader]):,.0f} | "
                         f"{min(firsts[reader]):.2f} | {step_rate:,.0f} |")
    if torch_how - {None}:
        lines.append(f"\nPyTorch's dataset: {', '.join(sorted(torch_how - {None}))}.")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
