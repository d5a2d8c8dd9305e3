"""A trained model's feature maps and kernels, layer by layer, for the explorer's second view.

Notebook 05 ends by training Lesson 15's ``SimpleCNN`` and looking at its first layer.
These functions give every convolution's output for one image (Flax's
``capture_intermediates``: what each layer's ``__call__`` returned) and every
convolution's kernel bank, for any Linen course model.
"""

from __future__ import annotations

import numpy as np

from jaxdl.explore.convolution import ExplorerError


def _model_and_variables(state):
    """``(apply_fn, variables)`` of a train state."""
    if not hasattr(state, "apply_fn") or not hasattr(state, "params"):
        raise ExplorerError(f"the feature maps come from a train state (what jaxdl.fit returns), got a "
                            f"{type(state).__name__}")
    return state.apply_fn, state.variables


def feature_maps(state, image: np.ndarray) -> dict[str, np.ndarray]:
    """Each layer's spatial output ``(H, W, C)`` for one image ``(H, W, C)``, by layer
    path (``"Conv2D_0"``, ``"VGGBlock_0/Conv2D_1"``), in the order the model runs them;
    what a layer returns before any ReLU the model applies after it."""
    apply_fn, variables = _model_and_variables(state)
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ExplorerError(f"one image (height, width, channels) is wanted, got shape {image.shape}")
    _, captured = apply_fn(variables, image[None], capture_intermediates=True, mutable=["intermediates"])
    maps: dict[str, np.ndarray] = {}

    def walk(tree, path):
        for name, value in tree.items():
            if name == "__call__":
                out = value[0]
                if getattr(out, "ndim", 0) == 4 and path:
                    maps["/".join(path)] = np.asarray(out[0])
            elif isinstance(value, dict):
                walk(value, (*path, name))

    walk(captured["intermediates"], ())
    if not maps:
        raise ExplorerError("the model has no layer with a spatial output (height, width, channels) to show")
    return maps


def layer_kernels(state) -> dict[str, np.ndarray]:
    """Every convolution's kernel bank (HWIO), by layer path."""
    _, variables = _model_and_variables(state)
    kernels: dict[str, np.ndarray] = {}

    def walk(tree, path):
        for name, value in tree.items():
            if isinstance(value, dict):
                walk(value, (*path, name))
            elif name == "kernel" and getattr(value, "ndim", 0) == 4:
                kernels["/".join(path)] = np.asarray(value)

    walk(variables["params"], ())
    return kernels
