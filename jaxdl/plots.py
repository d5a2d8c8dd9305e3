"""The course's pictures, written as PNG files.

Each function draws one figure the course draws, saves it to ``path`` when given
(PNG, parent folders created) and returns the matplotlib ``Figure`` so a notebook
can show it. jaxdl leaves matplotlib's backend alone: without a display matplotlib
picks its non-interactive one by itself, and a notebook keeps its own.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from jaxdl.support.files import atomic_path
from jaxdl.errors import ArgumentError


def save_figure(fig, path: str | os.PathLike | None):
    """Save ``fig`` as PNG at ``path`` (atomically: a temporary file then a rename)."""
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return fig


def _show_image(ax, image) -> None:
    """One HWC image in [0, 1] on ``ax``: grey for one channel, RGB for three."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image, 0, 1))
    ax.axis("off")


def display_random_images(images, labels, class_names, key, n: int = 10,
                          path: str | os.PathLike | None = None, title: str | None = None):
    """A row of ``n`` random examples titled with their class (the course's
    ``display_random_images``; it caps ``n`` at 10 to keep the picture readable).

    ``images`` is an NHWC array or a random-access source whose items are
    ``(image, label)``; ``key`` picks the examples.
    """
    import jax

    total = len(images)
    n = min(n, 10, total)
    picks = np.asarray(jax.random.choice(key, total, (n,), replace=False))
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.6), squeeze=False)
    for ax, i in zip(axes[0], picks):
        if labels is None:
            image, label = images[int(i)]
        else:
            image, label = images[int(i)], labels[int(i)]
        _show_image(ax, image)
        shape = tuple(np.shape(image))
        ax.set_title(f"{class_names[int(label)]}\nshape: {shape}", fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_transformed_images(originals, transformed, titles=None,
                            path: str | os.PathLike | None = None, title: str = "Original vs transformed"):
    """Each original image beside its transformed version (the course's
    ``plot_transformed_images``): two columns, one row per image."""
    n = len(originals)
    fig, axes = plt.subplots(n, 2, figsize=(5, 2.5 * n), squeeze=False)
    for row, (before, after) in enumerate(zip(originals, transformed)):
        _show_image(axes[row, 0], before)
        axes[row, 0].set_title(f"Original\n{tuple(np.shape(before))}", fontsize=8)
        _show_image(axes[row, 1], after)
        axes[row, 1].set_title(f"Transformed\n{tuple(np.shape(after))}", fontsize=8)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row])
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_predictions(train_data, train_labels, test_data, test_labels, predictions=None,
                     path: str | os.PathLike | None = None, title: str = "Linear regression"):
    """Chapter 01's scatter: training data (blue), test data (green), predictions (red)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(np.ravel(train_data), np.ravel(train_labels), c="b", s=8, label="Training data")
    ax.scatter(np.ravel(test_data), np.ravel(test_labels), c="g", s=8, label="Testing data")
    if predictions is not None:
        ax.scatter(np.ravel(test_data), np.ravel(predictions), c="r", s=8, label="Predictions")
    ax.set(title=title, xlabel="X", ylabel="y")
    ax.legend()
    return save_figure(fig, path)


def plot_loss_curves(history: dict, path: str | os.PathLike | None = None, title: str = ""):
    """Train (solid) and test (dashed) loss, and accuracy when there is one, per epoch, side
    by side -- the course's ``plot_loss_curves``. ``history`` is one run's history (as
    :func:`jaxdl.fit` returns it) or a dict ``{name: history}`` of runs to compare, one
    colour each."""
    runs = {"": history} if "train_loss" in history else dict(history)
    has = lambda h, key: not np.all(np.isnan(np.asarray(h.get(key, [np.nan]), float)))
    has_acc = any(has(h, "train_acc") for h in runs.values())
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(12 if has_acc else 6, 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, h) in enumerate(runs.items()):
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        for ax, key in zip(axes[0], ("loss", "acc")):
            for split, style in (("train", "-"), ("test", "--")):
                if has(h, f"{split}_{key}"):
                    ax.plot(epochs, h[f"{split}_{key}"], style, color=colours[i % len(colours)],
                            label=f"{name}, {split}" if name else split)
    for ax, what in zip(axes[0], ("Loss", "Accuracy (%)")):
        ax.set(title=what, xlabel="Epochs")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=8 if len(runs) > 1 else None)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_batch_curves(losses, accs, path: str | os.PathLike | None = None, title: str = "Per batch",
                      steps=None):
    """Training loss and accuracy of every batch (the course's per-batch curves), against
    the training step ``steps`` (default 0, 1, 2, ...)."""
    steps = np.arange(len(losses)) if steps is None else np.asarray(steps)
    if not len(losses) == len(accs) == len(steps):
        raise ArgumentError(f"one loss, accuracy and step per batch: got {len(losses)} losses, "
                         f"{len(accs)} accuracies and {len(steps)} steps")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(steps, losses, lw=0.6)
    axes[0].set(title="Loss per batch", xlabel="Batch", ylabel="loss", yscale="log")
    axes[1].plot(steps, accs, lw=0.6)
    axes[1].set(title="Accuracy per batch (%)", xlabel="Batch", ylabel="accuracy")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_batch_comparison(runs: dict, path: str | os.PathLike | None = None, title: str = "Per batch",
                          window: int = 20):
    """The per-batch training loss and accuracy of several runs, one colour each, as a
    running mean over ``window`` batches (single batches are too noisy to compare).
    ``runs`` maps a name to anything with ``losses`` and ``accs`` lists, such as a
    :class:`jaxdl.callbacks.Recorder`."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, run in runs.items():
        for ax, values in zip(axes, (run.losses, run.accs)):
            values = np.asarray(values, float)
            if not len(values):
                continue
            w = min(window, len(values))
            ax.plot(np.arange(w, len(values) + 1), np.convolve(values, np.ones(w) / w, "valid"), label=name)
    axes[0].set(title=f"Loss per batch (mean of {window})", xlabel="Batch", yscale="log")
    axes[1].set(title=f"Accuracy per batch (%, mean of {window})", xlabel="Batch")
    axes[0].legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_decision_boundary(ax, predict, x, y, title: str = "", resolution: int = 101) -> None:
    """Chapter 02's ``plot_decision_boundary`` on ``ax``: the class ``predict`` gives at
    every point of a grid around the 2-D points ``x``, with ``x`` coloured by ``y``.
    ``predict(points) -> labels`` keeps this free of any model code."""
    x, y = np.asarray(x), np.asarray(y)
    x_min, x_max = x[:, 0].min() - 0.1, x[:, 0].max() + 0.1
    y_min, y_max = x[:, 1].min() - 0.1, x[:, 1].max() + 0.1
    xx, yy = np.meshgrid(np.linspace(x_min, x_max, resolution), np.linspace(y_min, y_max, resolution))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    zz = np.asarray(predict(grid)).reshape(xx.shape)
    ax.contourf(xx, yy, zz, cmap=plt.cm.RdYlBu, alpha=0.7)
    ax.scatter(x[:, 0], x[:, 1], c=y, s=8, cmap=plt.cm.RdYlBu, edgecolors="k", linewidths=0.2)
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), title=title)


def plot_decision_boundaries(panels, path: str | os.PathLike | None = None, title: str = ""):
    """Several decision boundaries side by side; ``panels`` is a list of
    ``(title, predict, x, y)``, e.g. train and test for each model."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (panel_title, predict, x, y) in zip(axes[0], panels):
        plot_decision_boundary(ax, predict, x, y, panel_title)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_comparison(results: list[dict], path: str | os.PathLike | None = None,
                    metric: str = "model_acc", title: str = "Model comparison"):
    """The course's ``compare_results`` bar chart: one horizontal bar per model."""
    names = [r["model_name"] for r in results]
    values = [r[metric] for r in results]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5))
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3)
    ax.set(xlabel="accuracy (%)" if metric.endswith("acc") else metric, title=title)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.15 if values else 1)
    return save_figure(fig, path)


def plot_random_predictions(images, labels, predicted, class_names, key, n: int = 9,
                            path: str | os.PathLike | None = None, title: str = "Predictions"):
    """A 3x3 grid of random test images titled "Pred: X | Truth: Y", green when right
    and red when wrong (chapter 03); fewer when there are fewer than ``n`` images."""
    import jax

    n = min(n, len(images))
    if n < 1:
        raise ArgumentError("plot_random_predictions needs at least one image, got none")
    picks = np.asarray(jax.random.choice(key, len(images), (n,), replace=False))
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), picks):
        _show_image(ax, images[int(i)])
        truth, pred = class_names[int(labels[i])], class_names[int(predicted[i])]
        ax.set_title(f"Pred: {pred} | Truth: {truth}", fontsize=9, c="g" if truth == pred else "r")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_misclassified(images, labels, predicted, class_names, n: int = 16,
                       path: str | os.PathLike | None = None, title: str = "Misclassified"):
    """The first ``n`` test images the model got wrong, with prediction and truth."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    wrong = np.flatnonzero(labels != predicted)[:n]
    cols = 4
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        _show_image(ax, images[int(i)])
        ax.set_title(f"Pred: {class_names[predicted[i]]}\nTruth: {class_names[labels[i]]}", fontsize=9, c="r")
    fig.suptitle(f"{title} ({int((labels != predicted).sum())} of {len(labels)} wrong)")
    return save_figure(fig, path)


def plot_confusion_matrix(matrix, class_names, path: str | os.PathLike | None = None,
                          title: str = "Confusion matrix"):
    """Counts of (true, predicted) classes, true on the rows (torchmetrics + mlxtend in
    the course)."""
    matrix = np.asarray(matrix)
    size = max(5, 0.7 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, f"{count}", ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="Predicted label", ylabel="True label", title=title)
    return save_figure(fig, path)


def plot_reconstructions(originals, reconstructions, n: int = 8, path: str | os.PathLike | None = None,
                         title: str = "Inputs (top) and reconstructions (bottom)"):
    """The autoencoder's picture: inputs on the top row, their reconstructions below."""
    n = min(n, len(originals))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for i in range(n):
        _show_image(axes[0, i], originals[i])
        _show_image(axes[1, i], reconstructions[i])
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_image_prediction(image, title: str, path: str | os.PathLike | None = None):
    """One image with its prediction as the title (the course's custom-image cell)."""
    fig, ax = plt.subplots(figsize=(4, 4.4))
    _show_image(ax, image)
    ax.set_title(title)
    return save_figure(fig, path)
