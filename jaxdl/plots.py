"""The course's pictures, written as PNG files.

Each function draws one figure the course draws, saves it to ``path`` when given
(PNG, parent folders created) and returns the matplotlib ``Figure`` so a notebook
can show it. Matplotlib runs on the non-interactive Agg backend unless a notebook
chose another.
"""

from __future__ import annotations

import os
import pathlib

import matplotlib

if "MPLBACKEND" not in os.environ and "ipykernel" not in str(matplotlib.get_backend()).lower():
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: str | os.PathLike | None):
    """Save ``fig`` as PNG at ``path`` (atomically: a temporary file then a rename)."""
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
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
