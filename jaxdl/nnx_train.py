"""Training a Flax NNX model with jaxdl's pure steps: split it, train the state, update the model.

An NNX model is an object that holds its arrays; jaxdl's steps are pure functions of a
:class:`~jaxdl.train.TrainState`. NNX's functional API joins the two:
``nnx.split(model)`` gives a *graph definition* (the model's structure, static) and
*states* (its arrays), and ``nnx.merge(graphdef, *states)`` builds the model again from
them. :func:`split_model` turns a model into what a Linen module gives jaxdl -- its
variables (``{"params": ..., "batch_stats": ...}``, plain nested dicts) and an ``apply``
function with Linen's signature (:class:`NNXApply`), which merges the model inside the
compiled step, sets ``model.train()`` or ``model.eval()`` and calls it. The rest of jaxdl
-- ``fit``, the callbacks, ``Checkpoint`` and resume, the mesh, mixed precision,
``lr_find`` -- sees a train state like any other. After training, :func:`update_model`
writes the trained arrays back into the NNX model (``nnx.update``)::

    model = jaxdl.nnx_models.FashionMNISTModelV2(1, 10, 10, rngs=nnx.Rngs(0))
    state = jaxdl.create_train_state(model, jax.random.key(0), images[:1], optax.sgd(0.1))
    state, history = jaxdl.fit(state, train_batches, test_batches, epochs=3)
    jaxdl.nnx_train.update_model(model, state)       # model now holds the trained weights

What jaxdl places: ``nnx.Param`` (trained), ``nnx.BatchStat`` (updated in training
steps) and the random-number state of ``nnx.Rngs`` streams (``nnx.RngKey`` /
``nnx.RngCount``), which each training step sets from the run's key and the step
number, as it does for a Linen model's dropout -- so a resumed run draws what an
uninterrupted one would. A model holding any other kind of ``nnx.Variable`` is refused.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError

PLACED = "nnx.Param (trained), nnx.BatchStat (running statistics) and the RNG state of nnx.Rngs streams"


def _keys(path) -> tuple:
    return tuple(getattr(k, "key", k) for k in path)


def _name(path) -> str:
    return "/".join(str(k) for k in _keys(path))


def _rng_layout(rng_state: dict) -> tuple[tuple[tuple, bool], ...]:
    """``((path, is_key), ...)`` of the RNG state's leaves: where keys and counters sit."""
    return tuple((_keys(path), jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key))
                 for path, leaf in jax.tree_util.tree_flatten_with_path(rng_state)[0])


class NNXApply:
    """An NNX model's graph definition as a Linen ``apply`` function:
    ``apply(variables, x, train=False, rngs=None, mutable=False)``.

    ``variables`` are ``{"params": ..., "batch_stats": ...}`` as :func:`split_model` gives
    them. In training (``train=True``) the model runs in ``model.train()`` mode, each
    random stream of the model keyed by ``rngs["dropout"]`` (the step's key) and the
    stream's place in the model; with ``mutable=["batch_stats"]`` the updated
    statistics come back as Linen's do. Two ``NNXApply`` of models of the same structure
    are equal, so their train states share compiled steps.
    """

    def __init__(self, graphdef, rng_layout: tuple[tuple[tuple, bool], ...], model_name: str):
        self.graphdef = graphdef
        self.rng_layout = rng_layout
        self.model_name = model_name

    def __eq__(self, other) -> bool:
        return isinstance(other, NNXApply) and (self.graphdef, self.rng_layout) == (other.graphdef, other.rng_layout)

    def __hash__(self) -> int:
        return hash((self.graphdef, self.rng_layout))

    def __repr__(self) -> str:
        return f"NNXApply({self.model_name})"

    def rng_state(self, key: jax.Array | None) -> dict:
        """The model's RNG state for one call: stream ``i``'s key ``fold_in(key, i)``, its
        count 0 (``key`` None: any fixed key, for calls that draw nothing)."""
        key = jax.random.key(0) if key is None else key
        state: dict = {}
        for i, (path, is_key) in enumerate(self.rng_layout):
            node = state
            for name in path[:-1]:
                node = node.setdefault(name, {})
            node[path[-1]] = jax.random.fold_in(key, i) if is_key else jnp.zeros((), jnp.uint32)
        return state

    def model(self, variables, key: jax.Array | None = None) -> nnx.Module:
        """The NNX model with ``variables``' arrays (and RNG streams keyed from ``key``)."""
        return nnx.merge(self.graphdef, dict(variables["params"]), dict(variables.get("batch_stats", {})),
                         self.rng_state(key))

    def __call__(self, variables, x, train: bool = False, rngs: dict | None = None, mutable=False):
        model = self.model(variables, (rngs or {}).get("dropout") if train else None)
        if train:
            model.train()
        else:
            model.eval()
        out = model(x)
        if mutable:
            return out, {"batch_stats": nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))}
        return out


def _check_dropout_rngs(model: nnx.Module) -> None:
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Dropout) and node.rate > 0 and getattr(node, "rngs", None) is None:
            raise ArgumentError(f"{type(model).__name__}'s nnx.Dropout at '{_name(path)}' has no rngs: build it as "
                                f"nnx.Dropout({node.rate}, rngs=rngs), so that each training step can key it")


def split_model(model: nnx.Module) -> tuple[dict[str, Any], NNXApply]:
    """``(variables, apply)`` of an NNX model: its ``nnx.Param`` and ``nnx.BatchStat`` arrays
    as plain nested dicts, and :class:`NNXApply` over its graph definition -- what
    ``model.init`` and ``model.apply`` give for a Linen module."""
    if isinstance(model, nn.Module):
        raise ArgumentTypeError(f"expected a Flax NNX model (an nnx.Module), got the Linen module "
                                f"{type(model).__name__}; jaxdl.create_train_state takes either")
    if isinstance(model, type):
        example = "(...)" if issubclass(model, nn.Module) else "(..., rngs=nnx.Rngs(0))"
        raise ArgumentTypeError(f"expected a model, got the class {model.__name__}; build one first, "
                                f"e.g. {model.__name__}{example}")
    if not isinstance(model, nnx.Module):
        raise ArgumentTypeError(f"expected a Flax NNX model (an nnx.Module) or a Flax Linen module, "
                                f"got {type(model).__name__}")
    _check_dropout_rngs(model)
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Variable) and not isinstance(node, (nnx.Param, nnx.BatchStat, nnx.RngState)):
            raise ArgumentTypeError(f"{type(model).__name__} holds a {type(node).__name__} at '{_name(path)}'; "
                                    f"jaxdl trains models whose variables are {PLACED}")
    graphdef, _, _, rngs = nnx.split(model, nnx.Param, nnx.BatchStat, nnx.RngState)
    variables = {"batch_stats": {}, **variables_of(model)}
    return variables, NNXApply(graphdef, _rng_layout(nnx.to_pure_dict(rngs)), type(model).__name__)


def variables_of(model: nnx.Module) -> dict[str, Any]:
    """Copies of an NNX model's arrays as a Linen module's variables are laid out:
    ``{"params": ...}`` and ``"batch_stats"`` if it has any, plain nested dicts (copies:
    jaxdl's steps donate a state's buffers, and the model's own must stay usable)."""
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    batch_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    return jax.tree.map(jnp.copy, {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})})


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    return {_name(path): tuple(np.shape(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def update_model(model: nnx.Module, state) -> nnx.Module:
    """Write the parameters and BatchNorm statistics of ``state`` (a
    :class:`jaxdl.train.TrainState`) into ``model``, in place with ``nnx.update``, and return
    it. ``state`` must come from :func:`jaxdl.train.create_train_state` on a model of the same
    structure."""
    if isinstance(model, nn.Module) or not isinstance(model, nnx.Module):
        raise ArgumentTypeError(f"update_model writes into a Flax NNX model, got {type(model).__name__}"
                                + ("; a Linen module's trained variables are state.variables"
                                   if isinstance(model, nn.Module) else ""))
    if not isinstance(getattr(state, "apply_fn", None), NNXApply):
        raise ArgumentTypeError("update_model takes a train state made from an NNX model; this one was made "
                                f"from the Linen module {getattr(state, 'model_name', '?')}: its trained variables "
                                "are state.variables")
    _, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat, ...)[:3]
    want = {"params": _shapes(nnx.to_pure_dict(params)), "batch_stats": _shapes(nnx.to_pure_dict(batch_stats))}
    have = {"params": _shapes(state.params), "batch_stats": _shapes(state.batch_stats or {})}
    if want != have:
        raise ShapeError(f"this train state holds the arrays of another model than {type(model).__name__} "
                         f"(state of {state.model_name}); build the model the state was created from")
    nnx.update(model, state.params, state.batch_stats or {})
    return model
