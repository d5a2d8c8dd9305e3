"""The explorers' controls and pictures, on ipywidgets (JupyterLab, classic Jupyter, Colab).

A control's change calls a pure function of :mod:`jaxdl.explore.convolution` or
:mod:`jaxdl.explore.features` and draws its result with matplotlib into one PNG (an
``ipywidgets.Image``), so nothing here computes a convolution of its own. A knob or input
the explorer cannot use shows a message in the explorer; it never raises into the
notebook. Shown outside a widget frontend (a rendered book, a plain console), an explorer
is a still picture of its current view.
"""

from __future__ import annotations

import abc
import base64
import concurrent.futures
import dataclasses
import io
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from jaxdl.explore import convolution as cv
from jaxdl.explore import features as fm

STILL = "a still picture: in Jupyter and Colab the explorer is interactive"


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover -- ipywidgets is one of jaxdl's dependencies
        raise ImportError("the explorers need ipywidgets: pip install ipywidgets") from err
    return ipywidgets


def png_bytes(figure: Figure) -> bytes:
    """A matplotlib figure as PNG bytes, drawn with Agg (no pyplot, no display)."""
    out = io.BytesIO()
    FigureCanvasAgg(figure).print_png(out, pil_kwargs={"compress_level": 1})  # fast to write; a redraw waits on it
    return out.getvalue()


class ConvolutionPicture:
    """The explorer's picture of a :class:`~jaxdl.explore.convolution.ConvolutionView`: the
    input with the chosen output pixel's window (cyan squares; the pale frame is the
    padding) and receptive field (orange), the kernel, and each output channel with that
    pixel marked. The figure and its artists are made once for a layout and then updated
    in place, so a redraw allocates little (and Python's full garbage collections, which
    walk every object JAX and matplotlib hold, stay rare)."""

    def __init__(self):
        self.figure, self._layout = None, None

    def draw(self, view: cv.ConvolutionView) -> Figure:
        """The figure showing ``view``."""
        image, pad = view.image.mean(axis=-1), view.geometry.padding
        kernel = view.kernels[:, :, 0, 0] * view.kernels.shape[2]
        layout = (view.output.shape, image.shape, pad, kernel.shape)
        if layout != self._layout:
            self._build(view.output.shape, image.shape, pad, kernel.shape[0])
            self._layout = layout
        self._input.set_data(np.pad(image, pad, constant_values=np.nan))
        self._field.set_data(np.ma.masked_where(~view.field, view.field))
        rows, cols = view.window[:, 0], view.window[:, 1]
        self._dots.set_offsets(np.stack([cols, rows], axis=1))
        self._frame.set_bounds(cols.min() - 0.5, rows.min() - 0.5, cols.max() - cols.min() + 1,
                               rows.max() - rows.min() + 1)
        limit = max(float(np.abs(kernel).max()), 1e-6)
        self._kernel.set_data(kernel)
        self._kernel.set_clim(-limit, limit)
        for text, value in zip(self._values, kernel.ravel()):
            text.set_text(f"{value:.2g}")
        self._kernel_title.set_text(f"kernel {kernel.shape[0]}x{kernel.shape[1]}, dilation {view.geometry.dilation}")
        for j, (shown, marker) in enumerate(zip(self._outputs, self._markers)):
            channel = view.output[:, :, j]
            shown.set_data(channel)
            shown.set_clim(float(channel.min()), float(channel.max()) if channel.max() > channel.min() else
                           float(channel.min()) + 1e-6)
            marker.set_xy((view.pixel[1] - 0.5, view.pixel[0] - 0.5))
        self._output_title.set_text(f"output channel 0, stride {view.geometry.stride}")
        return self.figure

    def _build(self, output_shape: tuple[int, int, int], shape: tuple[int, int], pad: int, size: int) -> None:
        channels = output_shape[-1]
        figure = self.figure = Figure(figsize=(3.0 * (2 + channels), 3.3), dpi=72, layout="constrained")
        axes = figure.subplots(1, 2 + channels)
        height, width = shape
        ax = axes[0]
        ax.set_facecolor("#dde6f0")
        self._input = ax.imshow(np.zeros((height + 2 * pad, width + 2 * pad)), cmap="gray", vmin=0, vmax=1,
                                extent=(-pad - 0.5, width + pad - 0.5, height + pad - 0.5, -pad - 0.5))
        self._field = ax.imshow(np.ma.masked_all((height, width)), cmap="autumn", alpha=0.45, vmin=0, vmax=1,
                                extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        self._dots = ax.scatter(np.zeros(size * size), np.zeros(size * size), s=9, c="tab:cyan", marker="s")
        self._frame = ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="tab:cyan", linewidth=1.5))
        ax.set_xlim(-pad - 0.5, width + pad - 0.5)
        ax.set_ylim(height + pad - 0.5, -pad - 0.5)
        ax.set_title(f"input {height}x{width}, padding {pad}", fontsize=10)
        self._kernel = axes[1].imshow(np.zeros((size, size)), cmap="coolwarm")
        self._values = [axes[1].text(c, r, "", ha="center", va="center", fontsize=8)
                        for r in range(size) for c in range(size)] if size <= 5 else []
        self._kernel_title = axes[1].set_title("", fontsize=10)
        self._outputs, self._markers = [], []
        for j in range(channels):
            ax = axes[2 + j]
            self._outputs.append(ax.imshow(np.zeros(output_shape[:2]), cmap="gray"))
            self._markers.append(ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="tab:cyan",
                                                         linewidth=2)))
            if j:
                ax.set_title(f"channel {j} (turned {90 * j}°)", fontsize=10)
        self._output_title = axes[2].set_title("", fontsize=10)
        for ax in axes:
            ax.set_xticks([]), ax.set_yticks([])


def draw_convolution(view: cv.ConvolutionView) -> Figure:
    """A figure of ``view`` (see :class:`ConvolutionPicture`), made for it alone."""
    return ConvolutionPicture().draw(view)


def draw_feature_maps(image: np.ndarray, maps: np.ndarray, kernels: np.ndarray | None, title: str,
                      most: int = 8) -> Figure:
    """One layer's picture: the input image, up to ``most`` of its feature maps and, below
    them, the kernel making each (its first input channel)."""
    shown = min(maps.shape[-1], most)
    figure = Figure(figsize=(1.9 * (shown + 1), 4.0 if kernels is not None else 2.2), dpi=72, layout="constrained")
    axes = np.atleast_2d(figure.subplots(2 if kernels is not None else 1, shown + 1, squeeze=False))
    axes[0, 0].imshow(image.mean(axis=-1), cmap="gray")
    axes[0, 0].set_title("input", fontsize=9)
    for j in range(shown):
        axes[0, j + 1].imshow(maps[:, :, j], cmap="gray")
        axes[0, j + 1].set_title(f"map {j}", fontsize=9)
        if kernels is not None:
            k = kernels[:, :, 0, j]
            limit = max(float(np.abs(k).max()), 1e-6)
            axes[1, j + 1].imshow(k, cmap="coolwarm", vmin=-limit, vmax=limit)
            axes[1, j + 1].set_title(f"kernel {j}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
        if not ax.images:
            ax.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return figure


class _Explorer(abc.ABC):
    """What both explorers share: a box of controls over a picture and a message line,
    redrawn on every change, shown as a still picture outside a widget frontend."""

    def __init__(self):
        self.last_redraw_seconds = 0.0
        self.message = ""
        self._busy = False

    widget: object   # the box of controls and the picture (an ipywidgets.VBox)
    picture: object  # the ipywidgets.Image the picture is drawn into
    status: object   # the ipywidgets.HTML line under the controls

    @abc.abstractmethod
    def _picture_bytes(self) -> bytes:
        """The current picture as PNG bytes (an ExplorerError says why there is none)."""

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget where a frontend shows widgets; elsewhere (a rendered book) the
        current picture, saying it is interactive in Jupyter and Colab."""
        return {
            "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                         "model_id": self.widget.model_id},
            "image/png": base64.b64encode(bytes(self.picture.value)).decode(),
            "text/plain": f"{type(self).__name__}: {STILL}",
        }

    def redraw(self, *_):
        """Recompute and redraw; what cannot be shown becomes the message line. A control
        that a redraw itself moves (a slider's range) does not start another."""
        if self._busy:
            return
        self._busy, began = True, time.perf_counter()
        try:
            self.picture.value = self._picture_bytes()
            self.message = ""
        except cv.ExplorerError as err:
            self.message = str(err)
        except Exception as err:  # noqa: BLE001 -- the explorer shows a message, never a traceback
            self.message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        finally:
            self._busy = False
        self.status.value = (f"<span style='color:#b00020'>{_escape(self.message)}</span>" if self.message
                             else self._status_line())
        self.last_redraw_seconds = time.perf_counter() - began

    def _status_line(self) -> str:
        """The line shown under the controls when nothing is wrong."""
        return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ConvolutionExplorer(_Explorer):
    """Turn a convolution's knobs and watch what it does to an image.

    ``ConvolutionExplorer({"digit": mnist.test, "garment": fashion.test})``: pick the input
    (an example of one of the datasets, an uploaded image file, or a 28x28 grid you draw),
    a kernel (the lesson's edge kernels, blur, sharpen, identity, random, or typed-in
    values), its size, the stride, padding and dilation, and the channels in and out. It
    shows the input with the chosen output pixel's window and receptive field, the kernel,
    every output channel, and the output size by the course's formula beside the shape JAX
    computed. ``datasets`` maps a name to anything with ``.images`` (``(N, H, W, C)`` in
    [0, 1]), or to such an array.
    """

    def __init__(self, datasets: dict, kernel: str = "top edge", seed: int = 0):
        super().__init__()
        widgets = _widgets()
        if not datasets:
            raise cv.ExplorerError("give the explorer at least one dataset to take images from, like "
                                   "{'digit': mnist.test}")
        self.images = {name: np.asarray(getattr(source, "images", source)) for name, source in datasets.items()}
        self.seed = seed
        wide = {"description_width": "90px"}
        slider = dict(continuous_update=False, style=wide, layout=widgets.Layout(width="260px"))
        self.source = widgets.Dropdown(options=[*self.images, "upload", "draw"], description="input", style=wide)
        first = next(iter(self.images.values()))
        self.index = widgets.IntSlider(0, 0, len(first) - 1, description="example", **slider)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        self.kernel = widgets.Dropdown(options=cv.KERNEL_NAMES, value=kernel, description="kernel", style=wide)
        self.typed = widgets.Textarea(value="-1 0 1\n-1 0 1\n-1 0 1", description="values", style=wide,
                                      layout=widgets.Layout(width="260px", height="90px"))
        self.size = widgets.IntSlider(3, 1, 7, description="kernel size", **slider)
        self.stride = widgets.IntSlider(1, 1, 4, description="stride", **slider)
        self.padding = widgets.IntSlider(0, 0, 4, description="padding", **slider)
        self.dilation = widgets.IntSlider(1, 1, 3, description="dilation", **slider)
        self.in_channels = widgets.Dropdown(options=[1, 3], value=1, description="channels in", style=wide)
        self.out_channels = widgets.IntSlider(1, 1, 4, description="channels out", **slider)
        self.row = widgets.IntSlider(0, 0, 27, description="output row", **slider)
        self.col = widgets.IntSlider(0, 0, 27, description="output col", **slider)
        self.picture = widgets.Image(format="png")
        self.status = widgets.HTML()
        self._grid, self._painter = None, ConvolutionPicture()
        self._preparer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxdl-explorer")
        self._prepared: list[concurrent.futures.Future] = []
        self.drawing = np.zeros(cv.SIDE * cv.SIDE, np.float32)
        self.input_box = widgets.VBox([self.source, self.index])
        self.kernel_box = widgets.VBox([self.kernel])
        controls = widgets.HBox([
            widgets.VBox([self.input_box, self.in_channels, self.out_channels]),
            widgets.VBox([self.kernel_box, self.size, self.dilation]),
            widgets.VBox([self.stride, self.padding, self.row, self.col]),
        ])
        self.widget = widgets.VBox([controls, self.status, self.picture])
        for control in (self.index, self.kernel, self.typed, self.size, self.stride, self.padding, self.dilation,
                        self.in_channels, self.out_channels, self.row, self.col, self.upload):
            control.observe(self.redraw, names="value")
        self.source.observe(self._source_changed, names="value")
        self.kernel.observe(self._kernel_changed, names="value")
        self.redraw()

    def _source_changed(self, change):
        extra = {"upload": [self.upload], "draw": [self._drawing_grid()]}.get(change["new"], [self.index])
        if change["new"] in self.images:
            self.index.max = len(self.images[change["new"]]) - 1
        self.input_box.children = [self.source, *extra]
        self.redraw()

    def _kernel_changed(self, change):
        self.kernel_box.children = [self.kernel, self.typed] if change["new"] == "typed" else [self.kernel]

    def _drawing_grid(self):
        """A 28x28 grid of toggles, built the first time it is asked for."""
        if self._grid is None:
            widgets = _widgets()
            cells = []
            for i in range(cv.SIDE * cv.SIDE):
                cell = widgets.ToggleButton(value=False, layout=widgets.Layout(width="11px", height="11px",
                                                                              padding="0", margin="0"))
                cell.observe(lambda change, i=i: self._draw_cell(i, change["new"]), names="value")
                cells.append(cell)
            clear = widgets.Button(description="clear")
            clear.on_click(lambda _: [setattr(cell, "value", False) for cell in cells])
            grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns=f"repeat({cv.SIDE}, 11px)",
                                                                grid_gap="0"))
            self._grid = widgets.VBox([grid, clear])
        return self._grid

    def _draw_cell(self, i, on):
        self.drawing[i] = float(on)
        self.redraw()

    def input_image(self) -> np.ndarray:
        """The chosen input, ``(28, 28, C)`` (a dataset's own size for its examples)."""
        source = self.source.value
        if source == "draw":
            return cv.drawn_image(self.drawing)
        if source == "upload":
            files = self.upload.value
            files = list(files.values()) if isinstance(files, dict) else list(files)  # ipywidgets 7 and 8
            if not files:
                raise cv.ExplorerError("choose an image file with the upload button")
            return cv.read_upload(files[-1]["content"], self.in_channels.value)
        return self.images[source][self.index.value]

    def chosen_kernel(self) -> np.ndarray:
        """The chosen kernel at the chosen size (typed values are parsed)."""
        if self.kernel.value == "typed":
            return cv.parse_kernel(self.typed.value, self.size.value)
        return cv.named_kernel(self.kernel.value, self.size.value, self.seed)

    def view(self) -> cv.ConvolutionView:
        """What the knobs show now (the pure function the picture is drawn from)."""
        geometry = cv.Geometry(self.size.value, self.stride.value, self.padding.value, self.dilation.value)
        return cv.convolution_view(self.input_image(), self.chosen_kernel(), geometry, self.in_channels.value,
                                   self.out_channels.value, (self.row.value, self.col.value))

    def _picture_bytes(self) -> bytes:
        view = self._view = self.view()
        out_h, out_w = view.output.shape[:2]
        self.row.max, self.col.max = out_h - 1, out_w - 1  # a smaller output clips the chosen pixel, as view did
        picture = png_bytes(self._painter.draw(view))
        self._prepare_neighbours(view)
        return picture

    def _prepare_neighbours(self, view: cv.ConvolutionView) -> None:
        """Compile, in a background thread, the settings one step of a control away, so
        that the next change does not wait for XLA (what is still queued is dropped)."""
        for future in self._prepared:
            future.cancel()
        g, shape, out = view.geometry, view.image.shape, view.output.shape[-1]
        steps = [dataclasses.replace(g, **{name: getattr(g, name) + step})
                 for name, low, high in (("kernel_size", 1, 7), ("stride", 1, 4), ("padding", 0, 4), ("dilation", 1, 3))
                 for step in (1, -1) if low <= getattr(g, name) + step <= high]
        settings = [(shape, geometry, out) for geometry in steps] + [
            (shape, g, o) for o in (out - 1, out + 1) if 1 <= o <= 4] + [
            ((*shape[:2], 4 - shape[-1]), g, out)]  # the other number of input channels, 1 or 3
        self._prepared = [self._preparer.submit(cv.prepare, *setting) for setting in settings]

    def _status_line(self) -> str:
        view = self._view
        return (f"output size by the course's formula: {view.formula} &nbsp;|&nbsp; conv2d returned "
                f"{view.jax_shape} &nbsp;|&nbsp; output pixel {view.pixel}: {view.value:.3f} "
                f"&nbsp;|&nbsp; kernel bank {view.kernels.shape} (HWIO)")


class FeatureMapExplorer(_Explorer):
    """A trained model's feature maps and kernels, layer by layer, for any image.

    ``FeatureMapExplorer(state, mnist.test.images[:64])``: pick an image and a layer; it
    shows what each of that layer's channels makes of the image and the kernel that makes
    it. ``state`` is a train state of a Linen course model (``SimpleCNN``, ``TinyVGG``, ...).
    """

    def __init__(self, state, images, labels=None, class_names=None):
        super().__init__()
        widgets = _widgets()
        self.state, self.images = state, np.asarray(getattr(images, "images", images))
        self.labels = None if labels is None else np.asarray(labels)
        self.class_names = class_names
        self.kernels = fm.layer_kernels(state)
        layers = list(fm.feature_maps(state, self.images[0]))
        wide = {"description_width": "60px"}
        self.index = widgets.IntSlider(0, 0, len(self.images) - 1, description="image", continuous_update=False,
                                       style=wide)
        self.layer = widgets.Dropdown(options=layers, description="layer", style=wide)
        self.picture = widgets.Image(format="png")
        self.status = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.index, self.layer]), self.status, self.picture])
        self.index.observe(self.redraw, names="value")
        self.layer.observe(self.redraw, names="value")
        self.redraw()

    def _picture_bytes(self) -> bytes:
        image = self.images[self.index.value]
        maps = fm.feature_maps(self.state, image)[self.layer.value]
        label = ""
        if self.labels is not None:
            label = int(self.labels[self.index.value])
            label = f" (label {self.class_names[label] if self.class_names else label})"
        title = f"{self.layer.value}: {maps.shape[-1]} channels of {maps.shape[0]}x{maps.shape[1]}{label}"
        return png_bytes(draw_feature_maps(image, maps, self.kernels.get(self.layer.value), title))
