"""How long notebook 05's convolution explorer takes to redraw after a change of a control.

    python benchmarks/explorer_redraw.py               # 28x28 MNIST digits, kernels 3x3 to 7x7
    python benchmarks/explorer_redraw.py --rounds 2

Drives a :class:`jaxdl.explore.ConvolutionExplorer` headless, as a learner would turn
its knobs: for each kernel size (3, 5, 7), every kernel, stride 1-3, padding 0-3,
dilation 1-2, channels out 1-4, channels in 1 and 3 and a walk of the chosen output
pixel. A redraw is what a change triggers: the convolution (``jaxdl.conv.conv2d``), the
receptive field (``jax.grad``), the matplotlib picture and the status line, timed by the
explorer itself (``last_redraw_seconds``). A geometry (kernel size, stride, padding,
dilation, channels) met for the first time needs its convolution and gradient compiled,
which the explorer does in the background for the settings one step from the current
one; so the tour runs at a learner's pace (``--pauses``: seconds between changes, 0.5)
and as fast as the explorer takes changes (0), each in a fresh process, and reports
first-time geometries apart. ``--rounds`` repeats the tour. Data: MNIST from
``$JAXDL_DATA_DIR`` (random images without it). Writes ``explorer_redraw_<backend>.md``
beside this file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

import train_speed as ts

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tour(explorer, kernel_names) -> list[tuple[str, object]]:
    """The changes a learner makes, in order: (control name, value)."""
    changes = []
    for size in (3, 5, 7):
        changes.append(("size", size))
        for name in kernel_names:
            changes.append(("kernel", name))
        for stride in (2, 3, 1):
            changes.append(("stride", stride))
        for padding in (1, 2, 3, 0):
            changes.append(("padding", padding))
        changes += [("dilation", 2), ("dilation", 1), ("out_channels", 4), ("in_channels", 3), ("in_channels", 1),
                    ("out_channels", 1)]
        for step in range(6):
            changes += [("row", 2 * step), ("col", 3 * step)]
    return changes


def run_worker(rounds: int, pause: float) -> list:
    """The tour ``rounds`` times in this (fresh) process, ``pause`` seconds after each
    change: ``[round, control, first time for its geometry, seconds]`` per redraw."""
    import time

    from jaxdl.explore import ConvolutionExplorer
    from jaxdl.explore import convolution as cv

    try:
        from jaxdl import data

        images = np.asarray(data.load_dataset("mnist").test.images[:100])
    except Exception:  # noqa: BLE001 -- the benchmark runs without the dataset files too
        images = np.random.default_rng(0).random((100, 28, 28, 1), np.float32)
    explorer = ConvolutionExplorer({"digit": images})
    controls = {"size": explorer.size, "kernel": explorer.kernel, "stride": explorer.stride,
                "padding": explorer.padding, "dilation": explorer.dilation, "out_channels": explorer.out_channels,
                "in_channels": explorer.in_channels, "row": explorer.row, "col": explorer.col}
    seen, rows = set(), []
    time.sleep(pause)
    for round_ in range(rounds):
        for name, value in tour(explorer, [k for k in cv.KERNEL_NAMES if k != "typed"]):
            control = controls[name]
            if name in ("row", "col"):
                value = min(value, control.max)
            if control.value == value:
                continue
            control.value = value
            geometry = (explorer.size.value, explorer.stride.value, explorer.padding.value, explorer.dilation.value,
                        explorer.in_channels.value, explorer.out_channels.value)
            first = geometry not in seen
            seen.add(geometry)
            assert not explorer.message, explorer.message
            rows.append([round_, name, first, explorer.last_redraw_seconds])
            time.sleep(pause)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times to take the tour (the first compiles)")
    parser.add_argument("--pauses", type=float, nargs="+", default=[0.5, 0.0],
                        help="seconds between changes, one fresh process each (0.5: a learner's pace)")
    parser.add_argument("--worker", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args.rounds, args.worker)))
        return
    import jax

    load = os.getloadavg()[0]
    results = {}
    for pause in args.pauses:
        out = subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds), "--worker", str(pause)],
                             capture_output=True, text=True, check=True)
        results[pause] = json.loads(out.stdout.strip().splitlines()[-1])

    def stats(times):
        times = np.asarray(times) * 1e3
        return (f"{len(times)} | {np.median(times):.0f} | {np.percentile(times, 95):.0f} | {times.max():.0f} | "
                f"{100 * (times < 200).mean():.0f}%")

    device = jax.devices()[0]
    lines = [
        "# The convolution explorer's redraw time",
        "",
        f"{ts.cpu_name() if device.platform == 'cpu' else device.device_kind}; jax "
        f"{jax.__version__}; {datetime.date.today()}, load average {load:.2f} at start; MNIST test digits, 28x28. "
        f"`python benchmarks/explorer_redraw.py --rounds {args.rounds}`.",
    ]
    for pause, rows in results.items():
        lines += [
            "",
            f"**{pause:g} s between changes** ({'a learner' + chr(39) + 's pace: the explorer compiles the settings one step away meanwhile' if pause else 'changes as fast as the explorer takes them'}):",
            "",
            "| redraws | count | median (ms) | 95th percentile (ms) | slowest (ms) | under 200 ms |",
            "|---|---:|---:|---:|---:|---:|",
            f"| every change | {stats([t for *_, t in rows])} |",
            f"| a geometry seen before | {stats([t for _, _, first, t in rows if not first])} |",
            f"| a geometry met for the first time | {stats([t for _, _, first, t in rows if first])} |",
        ]
        for name in dict.fromkeys(n for _, n, _, _ in rows):
            lines.append(f"| {name} | {stats([t for _, n, _, t in rows if n == name])} |")
    out = pathlib.Path(__file__).with_name(f"explorer_redraw_{device.platform}.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
