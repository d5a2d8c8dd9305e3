"""PyTorch weights in and out: a course model trained in PyTorch, opened in jaxdl, and back.

A learner of the PyTorch course ends chapter 01 with ``torch.save(model.state_dict(),
path)``. jaxdl's course models are the same functions as the course's PyTorch classes
(the same layers, named as the course names them in :mod:`jaxdl.nnx_models`), so such a
file loads into them -- :func:`load_state_dict` -- and jaxdl's weights go back the same way
-- :func:`save_state_dict` -- to a file that the course's class reads with
``model.load_state_dict(state_dict, strict=True)``.

What changes between the two, array by array, and why:

* ``nn.Linear.weight`` is ``(out, in)``: PyTorch computes ``x @ weight.T``. jaxdl's kernel is
  ``(in, out)`` (``x @ kernel``, no transpose in the step): transposed.
* ``nn.Conv2d.weight`` is OIHW (out channels, in channels, height, width), for NCHW images;
  jaxdl's kernel is HWIO, for NHWC images: axes reordered ``(2, 3, 1, 0)``.
* The first ``nn.Linear`` after an ``nn.Flatten`` of an image map: PyTorch flattens each
  example's (C, H, W) map channel by channel, jaxdl its (H, W, C) map pixel by pixel; the
  same numbers in another order, so that Linear's columns are reordered to match (its
  layer and map size are the twin's ``flattened``).
* ``nn.BatchNorm2d``: ``weight``, ``bias``, ``running_mean``, ``running_var`` are jaxdl's
  ``scale``, ``bias`` (parameters) and ``mean``, ``var`` (``batch_stats``). PyTorch's
  ``num_batches_tracked`` counts training batches and is not used with the default
  momentum: it is read and dropped, and written as 0.
* Names: the course's attribute names with PyTorch's dots (``block_1.0.weight``), which
  :mod:`jaxdl.nnx_models` keeps; for a Linen model they are matched through its NNX twin's
  ``linen_names``.

Files: ``.safetensors`` needs only the ``safetensors`` package (no torch, no code run when
read); ``.pth`` needs torch and is read with ``torch.load(..., weights_only=True)``, which
refuses pickled objects. A file that does not fit the model -- missing, unexpected or
mis-shaped keys, as ``load_state_dict(strict=True)`` lists them -- is refused whole.
``DataParallel``'s ``module.`` prefixes are stripped; float16 and bfloat16 tensors are cast
to float32 with a warning.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdl import models, nnx_models
from jaxdl.errors import ArgumentError, ArgumentTypeError, JaxdlError
from jaxdl.support.files import atomic_path

SUFFIXES = (".safetensors", ".pth", ".pt")
_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}


class StateDictError(JaxdlError, ValueError):
    """A PyTorch file or state_dict that does not fit the model it is loaded into, or that
    is not a state_dict."""


# --- names and layouts ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Entry:
    """Where one PyTorch tensor lives in the NNX twin, and how its layout differs."""

    collection: str  # "params" or "batch_stats"
    path: tuple  # the NNX path, as its pure dict keys it
    shape: tuple[int, ...]  # jaxdl's shape
    flattened: tuple[int, int, int] | None = None  # (H, W, C) of the map a Linear takes


def _torch_key(path: tuple) -> str:
    layer = [str(k) for k in path[:-1] if k != "layers"]  # nnx.Sequential's list: PyTorch indexes the module
    return ".".join([*layer, _TORCH_LEAF.get(str(path[-1]), str(path[-1]))])


def _entries(twin: nnx.Module) -> dict[str, _Entry]:
    """``{PyTorch key: _Entry}`` for every array of an NNX course model."""
    flattened = nnx_models.flattened_layers(twin)
    entries = {}
    for collection, kind in (("params", nnx.Param), ("batch_stats", nnx.BatchStat)):
        for keys, leaf in jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(twin, kind)))[0]:
            path = tuple(k.key for k in keys)
            layer = "/".join(str(k) for k in path[:-1])
            entries[_torch_key(path)] = _Entry(collection, path, tuple(leaf.shape),
                                               flattened.get(layer) if path[-1] == "kernel" else None)
    return entries


def _batchnorm_layers(entries: Mapping[str, _Entry]) -> list[str]:
    return sorted(key.rsplit(".", 1)[0] for key, e in entries.items() if e.path[-1] == "mean")


def _to_jaxdl(array: np.ndarray, entry: _Entry) -> np.ndarray:
    if entry.path[-1] != "kernel":
        return array
    if array.ndim == 4:  # Conv2d: OIHW -> HWIO
        return array.transpose(2, 3, 1, 0)
    if entry.flattened is not None:  # columns in (C, H, W) order -> (H, W, C)
        h, w, c = entry.flattened
        array = array.reshape(array.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(array.shape[0], -1)
    return array.T  # Linear: (out, in) -> (in, out)


def _to_torch(array: np.ndarray, entry: _Entry) -> np.ndarray:
    if entry.path[-1] != "kernel":
        return array
    if array.ndim == 4:  # HWIO -> OIHW
        return array.transpose(3, 2, 0, 1)
    weight = array.T
    if entry.flattened is not None:  # columns in (H, W, C) order -> (C, H, W)
        h, w, c = entry.flattened
        weight = weight.reshape(weight.shape[0], h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
    return weight


def torch_shape(entry: _Entry) -> tuple[int, ...]:
    """The shape PyTorch gives the array of ``entry``."""
    return tuple(_to_torch(np.empty(entry.shape, np.float32), entry).shape)


# --- the model: an NNX twin, or a Linen model through its twin ------------------------------


def nnx_twin(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> nnx.Module:
    """The NNX twin (abstract: shapes, no values) of a Linen course model, built with its
    arguments for examples of ``input_shape`` (one example, no batch axis; default: the
    course's, :data:`jaxdl.models.COURSE_MODELS`)."""
    name = type(model).__name__
    if name not in nnx_models.NNX_MODELS:
        raise ArgumentTypeError(f"{name} is not one of the course models jaxdl converts "
                                f"({', '.join(nnx_models.NNX_MODELS)})")
    shape = tuple(input_shape or models.COURSE_MODELS[name][1])
    twin_class = getattr(nnx_models, name)
    arguments = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
                 if f.init and f.name not in ("parent", "name")}
    accepted = inspect.signature(twin_class).parameters
    if "image_size" in accepted and len(shape) == 3:
        if shape[0] != shape[1]:
            raise ArgumentError(f"{name} converts square images, got examples of shape {shape}")
        arguments["image_size"] = shape[0]
    if "in_channels" in accepted and "in_channels" not in arguments and len(shape) == 3:
        arguments["in_channels"] = shape[2]
    return nnx.eval_shape(lambda: twin_class(**arguments, rngs=nnx.Rngs(0)))


def _check_model(model) -> None:
    if isinstance(model, type):
        raise ArgumentTypeError(f"expected a model, got the class {model.__name__}; build one first")
    if isinstance(model, nnx.Module):
        if type(model).__name__ not in nnx_models.NNX_MODELS or not hasattr(model, "linen_names"):
            raise ArgumentTypeError(f"expected one of jaxdl.nnx_models' course models, got {type(model).__name__}")
    elif not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"expected a course model (jaxdl.models or jaxdl.nnx_models), "
                                f"got {type(model).__name__}")


# --- reading ---------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` or ``.pth`` file as NumPy arrays, by name (a
    ``.pth`` read with ``weights_only=True``: no pickled object is run)."""
    path = pathlib.Path(path)
    if path.suffix not in SUFFIXES:
        raise ArgumentError(f"{path}: expected a .safetensors or .pth file, got {path.suffix or 'no suffix'}")
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    return _read_safetensors(path) if path.suffix == ".safetensors" else _read_pth(path)


def _read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    import safetensors

    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except (safetensors.SafetensorError, OSError, ValueError, TypeError) as err:
        raise StateDictError(f"{path} is not a safetensors file, or it is cut short or damaged "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def _read_pth(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise StateDictError(f"reading {path} needs PyTorch (pip install torch); a .safetensors file needs "
                             "only the safetensors package") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's UnpicklingError and friends, for files it will not read safely
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ("it holds a pickled Python object (a whole model saved with torch.save(model)?), which is not "
                "read: save model.state_dict() instead" if "weights_only" in str(err).lower() or "unpickl"
                in str(err).lower() else "it is not a PyTorch file, or it is cut short or damaged")
        raise StateDictError(f"{path}: {hint} ({type(err).__name__}: {first[:200]})") from None
    if not isinstance(loaded, Mapping):
        raise StateDictError(f"{path} holds a {type(loaded).__name__}, not a state_dict; save "
                             "model.state_dict() instead")
    others = sorted(str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor))
    if others:
        raise StateDictError(f"{path} holds more than tensors ({', '.join(others[:5])}): a training checkpoint? "
                             "Save its model's state_dict alone")
    return {str(key): _numpy(tensor) for key, tensor in loaded.items()}


def _numpy(value) -> np.ndarray:
    """A NumPy array of a torch tensor (bfloat16 as JAX's NumPy bfloat16) or of any array."""
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16 of its own: ml_dtypes' (JAX's)
            return value.float().numpy().astype(jnp.bfloat16)
        return value.numpy()
    return np.asarray(value)


# --- loading into a model -------------------------------------------------------------


def _prepared(state_dict: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    arrays = {str(k): _numpy(v) for k, v in state_dict.items()}
    if arrays and all(k.startswith("module.") for k in arrays):  # saved from nn.DataParallel
        arrays = {k[len("module."):]: v for k, v in arrays.items()}
    narrow = sorted({str(v.dtype) for v in arrays.values() if str(v.dtype) in ("float16", "bfloat16")})
    if narrow:
        warnings.warn(f"{where} holds {' and '.join(narrow)} tensors; jaxdl casts them to float32", stacklevel=3)
    return arrays


def _fit_state_dict(arrays: dict[str, np.ndarray], entries: dict[str, _Entry], model_name: str,
                    where: str) -> dict[str, dict]:
    """The NNX twin's pure dicts (``{"params": ..., "batch_stats": ...}``) from PyTorch
    ``arrays``, or a :class:`StateDictError` listing every key that does not fit."""
    optional = {f"{layer}.num_batches_tracked" for layer in _batchnorm_layers(entries)}
    missing = sorted(set(entries) - set(arrays))
    unexpected = sorted(set(arrays) - set(entries) - optional)
    misshaped = [f"{key} {tuple(arrays[key].shape)} (needs {torch_shape(entry)})" for key, entry in entries.items()
                 if key in arrays and tuple(arrays[key].shape) != torch_shape(entry)]
    if missing or unexpected or misshaped:
        parts = [f"{label}: {', '.join(keys)}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys]
        raise StateDictError(f"{where} does not fit {model_name} (another model, or other hidden_units?); "
                             + "; ".join(parts))
    bad = [key for key in entries if not jnp.issubdtype(arrays[key].dtype, jnp.floating)]
    if bad:
        raise StateDictError(f"{where}: {', '.join(bad)} are not floating-point tensors")
    pure: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for key, entry in entries.items():
        node = pure[entry.collection]
        for name in entry.path[:-1]:
            node = node.setdefault(name, {})
        node[entry.path[-1]] = jnp.asarray(_to_jaxdl(arrays[key].astype(np.float32), entry))
    return pure


def load_state_dict(model, source, input_shape: tuple[int, ...] | None = None):
    """Load a PyTorch ``state_dict`` into a course model.

    ``source`` is a ``.safetensors`` or ``.pth`` file, or a mapping of names to arrays (or
    torch tensors). ``model`` is a Linen course model (:mod:`jaxdl.models`; ``input_shape``
    is one example's shape when it is not the course's) -- the variables are returned,
    ``{"params": ..., "batch_stats": ...}`` as ``model.init`` makes them -- or an NNX one
    (:mod:`jaxdl.nnx_models`), which gets the weights in place and is returned. Nothing is
    loaded unless every tensor fits."""
    _check_model(model)
    where = str(source) if isinstance(source, (str, os.PathLike)) else "the state_dict"
    if isinstance(source, (str, os.PathLike)):
        source = read_state_dict(source)
    elif not isinstance(source, Mapping):
        raise ArgumentTypeError(f"expected a file path or a state_dict (a mapping of names to tensors), "
                                f"got {type(source).__name__}")
    arrays = _prepared(source, where)
    twin = model if isinstance(model, nnx.Module) else nnx_twin(model, input_shape)
    pure = _fit_state_dict(arrays, _entries(twin), type(model).__name__, where)
    if isinstance(model, nnx.Module):
        nnx.update(model, pure["params"], pure["batch_stats"])
        return model
    nnx.update(twin, pure["params"], pure["batch_stats"])
    variables = nnx_models.to_linen(twin)
    return {"params": variables["params"], **({"batch_stats": variables["batch_stats"]}
                                               if variables.get("batch_stats") else {})}


# --- writing ---------------------------------------------------------------------------


def state_dict(model, variables=None, input_shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """The weights of a course model as the course's PyTorch class names and lays them out:
    ``{name: NumPy array}``. For a Linen ``model``, ``variables`` are its variables (or a
    train state); an NNX model gives its own."""
    _check_model(model)
    if isinstance(model, nnx.Module):
        twin = model
    else:
        if variables is None:
            raise ArgumentError("a Linen model's state_dict needs its variables (or its train state)")
        variables = getattr(variables, "variables", variables)
        twin = nnx_models.from_linen(nnx_twin(model, input_shape), variables)
    pure = {"params": nnx.to_pure_dict(nnx.state(twin, nnx.Param)),
            "batch_stats": nnx.to_pure_dict(nnx.state(twin, nnx.BatchStat))}
    entries = _entries(twin)
    out = {}
    for key, entry in entries.items():
        node = pure[entry.collection]
        for name in entry.path:
            node = node[name]
        out[key] = np.ascontiguousarray(_to_torch(np.asarray(node, np.float32), entry))
    for layer in _batchnorm_layers(entries):
        out[f"{layer}.num_batches_tracked"] = np.zeros((), np.int64)
    return dict(sorted(out.items()))


def save_state_dict(path: str | os.PathLike, model, variables=None,
                    input_shape: tuple[int, ...] | None = None) -> pathlib.Path:
    """Write :func:`state_dict` to ``path``: ``.safetensors`` (the ``safetensors`` package)
    or ``.pth`` (``torch.save``; needs torch), whole or not at all."""
    path = pathlib.Path(path)
    if path.suffix not in SUFFIXES:
        raise ArgumentError(f"{path}: write a .safetensors or .pth file, got {path.suffix or 'no suffix'}")
    tensors = state_dict(model, variables, input_shape)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))
        return path
    try:
        import torch
    except ImportError:
        raise StateDictError(f"writing {path} needs PyTorch (pip install torch); write a .safetensors file "
                             "instead, which PyTorch reads with safetensors.torch.load_file") from None
    with atomic_path(path) as tmp:
        torch.save({key: torch.from_numpy(np.array(value)) for key, value in tensors.items()}, tmp)
    return path
