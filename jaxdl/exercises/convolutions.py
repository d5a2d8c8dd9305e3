"""Checkers of notebook 05 (convolutions; Lesson 15's exercises)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, as_array, call, exercise


def step_edges() -> dict[str, np.ndarray]:
    """12x12 test images (NHWC) the notebook never shows: a vertical step dark -> light,
    the same step horizontal, and a flat grey."""
    vertical = np.zeros((12, 12), np.float32)
    vertical[:, 6:] = 1.0
    return {"vertical": vertical, "horizontal": vertical.T.copy(), "flat": np.full((12, 12), 0.6, np.float32)}


def response(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``kernel`` over ``image`` with jaxdl's own convolution (no padding)."""
    from jaxdl import conv

    return np.asarray(conv.conv2d(image[None, :, :, None], kernel[:, :, None, None].astype(np.float32)))[0, :, :, 0]


@exercise("05.1", "a 3x3 kernel that finds vertical edges, dark on the left and light on the right")
def vertical_edges(answer) -> str:
    kernel = as_array(answer, "the kernel")
    if kernel.shape == (3, 3, 1, 1):
        kernel = kernel[:, :, 0, 0]
    if kernel.shape != (3, 3):
        raise Wrong(f"the kernel has shape {kernel.shape} where a 3x3 kernel, (3, 3), was asked")
    images = step_edges()
    flat = float(np.abs(response(images["flat"], kernel)).max())
    vertical, horizontal = response(images["vertical"], kernel), response(images["horizontal"], kernel)
    if flat > 1e-4:
        raise Wrong(f"on a flat grey patch it gives {flat:.3g} where an edge detector gives 0: its numbers should "
                    "add up to 0")
    strongest = float(np.abs(vertical).max())
    if strongest < 1e-4:
        if float(np.abs(horizontal).max()) > 1e-4:
            raise Wrong("it finds horizontal edges (dark above, light below) and gives nothing on a vertical one: "
                        "vary it from left to right, not from top to bottom")
        raise Wrong("it gives nothing on a vertical edge: its columns should differ (negative on the left, "
                    "positive on the right)")
    if float(vertical.max()) < strongest:
        raise Wrong("on an edge from dark (left) to light (right) it gives a negative response: flip it left to "
                    "right, so it is positive where the light side is on the right")
    if float(np.abs(horizontal).max()) > 0.25 * strongest:
        raise Wrong("it also responds to horizontal edges (dark above, light below): make its rows the same, so that "
                    "only a change from left to right counts")
    return "positive on a dark-to-light vertical edge, nothing on a horizontal edge or a flat patch"


SIZES = ((32, 3, 2, 0), (28, 5, 1, 2), (17, 4, 3, 1), (64, 7, 2, 3), (9, 3, 1, 0), (28, 3, 2, 1))
"""Sizes, kernels, strides and paddings 05.2 tries; the exercise's own comes last, so a
hint never gives its answer away."""


@exercise("05.2", "output_size(n, kernel_size, stride, padding): the side of a convolution's output",
          function="def output_size(n, kernel_size, stride, padding): ...")
def output_size(answer) -> str:
    from jaxdl import conv

    for n, k, s, p in SIZES:
        got = call(answer, n, k, s, p, what=f"output_size({n}, {k}, {s}, {p})")
        want = conv.conv_output_size(n, k, s, p)
        if isinstance(got, float) and not got.is_integer():
            raise Wrong(f"output_size({n}, {k}, {s}, {p}) gave {got}, which is not a size: round the division down "
                        "(//), since a window that does not fit is not taken")
        try:
            got = int(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"output_size({n}, {k}, {s}, {p}) gave a {type(got).__name__}, not a number") from err
        if got == want:
            continue
        if got == (n + p - k) // s + 1:
            raise Wrong(f"output_size({n}, {k}, {s}, {p}) gave {got}: padding is added on both sides")
        if got == (n + 2 * p - k) // s:
            raise Wrong(f"output_size({n}, {k}, {s}, {p}) gave {got}, one short: count the first window too (+ 1)")
        raise Wrong(f"output_size({n}, {k}, {s}, {p}) gave {got}, not the size a convolution gives: how many "
                    "windows of the kernel fit along the padded side, one every stride?")
    shape = conv.conv2d(np.zeros((1, 28, 28, 1), np.float32), np.zeros((3, 3, 1, 1), np.float32), 2, 1).shape
    return f"right for {len(SIZES)} sizes, strides and paddings (28, 3x3, stride 2, padding 1: conv2d gives {shape})"


@functools.cache
def conv_parameter_count(in_channels: int, out_channels: int, kernel_size: int) -> int:
    from jaxdl.layers import Conv2D
    from jaxdl.models import count_params

    variables = jax.eval_shape(Conv2D(out_channels, kernel_size).init, jax.random.key(0),
                               jax.ShapeDtypeStruct((1, kernel_size + 2, kernel_size + 2, in_channels), np.float32))
    return count_params(variables)


@exercise("05.3", "conv_params(in_channels, out_channels, kernel_size): a Conv2D's parameter count",
          function="def conv_params(in_channels, out_channels, kernel_size): ...")
def conv_params(answer) -> str:
    for c_in, c_out, k in ((3, 8, 5), (16, 32, 1), (2, 7, 4), (4, 16, 3)):  # the exercise's own last
        got = call(answer, c_in, c_out, k, what=f"conv_params({c_in}, {c_out}, {k})")
        want = conv_parameter_count(c_in, c_out, k)
        if got == want:
            continue
        if got == want - c_out:
            raise Wrong(f"conv_params({c_in}, {c_out}, {k}) gave {got}, short by exactly out_channels: each output "
                        "channel has a bias")
        if got == k * k * c_out + c_out:
            raise Wrong(f"conv_params({c_in}, {c_out}, {k}) gave {got}: each output channel's kernel spans every "
                        "input channel")
        if got == k * c_in * c_out + c_out:
            raise Wrong(f"conv_params({c_in}, {c_out}, {k}) gave {got}: a kernel of size {k} is {k}x{k}")
        raise Wrong(f"conv_params({c_in}, {c_out}, {k}) gave {got}, not what Conv2D has: one kernel for each pair of "
                    "input and output channel, and a bias for each output channel")
    return "right for four layers, as jaxdl's Conv2D counts them (a Conv2D(16, 3) on 4 channels: 592)"


@exercise("05.4", "same_size(kernel_size): a (stride, padding) that keeps a 28x28 input 28x28, for an odd kernel",
          function="def same_size(kernel_size): ...")
def same_size(answer) -> str:
    from jaxdl import conv

    for k in (5, 3, 7, 1):
        got = call(answer, k, what=f"same_size({k})")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"same_size({k}) should return two numbers, (stride, padding)")
        stride, padding = got
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (stride, padding)):
            raise Wrong(f"same_size({k}) gave {tuple(got)}: a stride and a padding are whole numbers")
        if stride < 1 or padding < 0:
            raise Wrong(f"same_size({k}) gave stride {stride}, padding {padding}: a stride is at least 1 and a padding "
                        "at least 0")
        sides = [conv.conv_output_size(n, k, int(stride), int(padding)) if n + 2 * padding >= k else 0
                 for n in (28, 13)]
        if sides[0] != 28:
            advice = ("a stride above 1 skips positions and shrinks the output" if stride > 1 else
                      "padding adds that many pixels on each side; the kernel takes away kernel_size - 1")
            raise Wrong(f"with a {k}x{k} kernel, stride {stride} and padding {padding} a 28x28 input comes out "
                        f"{sides[0]}x{sides[0]}: {advice}")
        if sides[1] != 13:
            raise Wrong(f"same_size({k}) keeps 28x28 but not other sizes (13 comes out {sides[1]}): it works for "
                        "any input when stride and padding are right")
    return "stride 1 and padding (k - 1) / 2 keep the size, for 1x1 to 7x7 kernels and any input"


SEEING_CASES = ((3, 2, 1), (3, 1, 1), (5, 2, 2), (4, 2, 1), (7, 3, 3), (3, 1, 0))


def _as_pixels(value, out_side: int, what: str) -> set[tuple[int, int]]:
    """A learner's set of output pixels: pairs, or a boolean mask of the output's shape."""
    array = np.asarray(value) if not isinstance(value, (set, frozenset)) else None
    if array is not None and array.dtype == bool:
        if array.shape != (out_side, out_side):
            raise Wrong(f"{what} is a mask of shape {array.shape} where the output is {out_side}x{out_side}")
        return {(int(r), int(c)) for r, c in zip(*np.nonzero(array))}
    try:
        return {(int(r), int(c)) for r, c in value}
    except (TypeError, ValueError) as err:
        raise Wrong(f"{what} should be the output pixels as (row, col) pairs, or a boolean mask of the output") from err


@exercise("05.5", "seeing_top_left(kernel_size, stride, padding): the output pixels whose window covers input "
          "pixel (0, 0) of a 28x28 input", function="def seeing_top_left(kernel_size, stride, padding): ...")
def seeing_top_left(answer) -> str:
    from jaxdl.explore import convolution as cv

    for k, s, p in SEEING_CASES:
        geometry = cv.Geometry(k, s, p)
        want_mask = cv.outputs_seeing((28, 28), geometry, (0, 0))
        want = {(int(r), int(c)) for r, c in zip(*np.nonzero(want_mask))}
        got = _as_pixels(call(answer, k, s, p, what=f"seeing_top_left({k}, {s}, {p})"), want_mask.shape[0],
                         f"seeing_top_left({k}, {s}, {p})")
        if got == want:
            continue
        if got == {(0, 0)} and len(want) > 1:
            raise Wrong(f"with a {k}x{k} kernel, stride {s} and padding {p}, more windows than the first cover the "
                        "corner: with padding the next windows still reach it")
        if got - want:
            raise Wrong(f"seeing_top_left({k}, {s}, {p}) includes {sorted(got - want)[0]}, whose window does not "
                        f"reach pixel (0, 0): output pixel (r, c)'s window starts at input row r*stride - padding")
        raise Wrong(f"seeing_top_left({k}, {s}, {p}) leaves out {sorted(want - got)[0]}, whose window covers pixel "
                    "(0, 0)")
    return f"right for {len(SEEING_CASES)} kernels, strides and paddings, as the explorer's receptive fields show"
