"""Training steps: the loop the course writes by hand five times, as pure functions.

The course's ``train_step(model, data_loader, loss_fn, optimizer)`` mutates the model
and the optimizer in place. Here the whole training state is one pytree
(:class:`TrainState`: parameters, optimizer state, BatchNorm statistics, step, PRNG
key) and a step is a pure function ``train_step(state, batch) -> (state, metrics)``,
compiled once (:func:`jaxdl.fastpath.jit`: ``jax.jit`` for the platform at hand). The same
function runs on one device or data-parallel over many: give it a batch sharded over a
``data`` mesh axis (see :mod:`jaxdl.parallel`) and XLA splits the work and averages the
gradients. ``pmap_train_step`` is the same step for code written with ``jax.pmap``.

Metrics come back as sums (``loss_sum``, ``correct``, ``count``) weighted by the batch
mask, so a padded partial batch counts each real example once and epochs are exact
weighted means -- the course's ``Metric``.

The loop that drives these steps, with its events and callbacks, is
:mod:`jaxdl.learner` (``fit``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

try:
    from jax import shard_map as _shard_map

    _PER_DEVICE = {"check_vma": False}
except ImportError:  # JAX releases before shard_map left jax.experimental
    from jax.experimental.shard_map import shard_map as _shard_map

    _PER_DEVICE = {"check_rep": False}

from jaxdl import fastpath
from jaxdl import precision as mixed
from jaxdl.data.loader import DeviceLoader, Gather, Loader, check_on_device
from jaxdl.losses import Loss, as_loss
from jaxdl.errors import ArgumentError, ArgumentTypeError, ShapeError

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree.

    ``rng`` holds the raw data of a PRNG key (``jax.random.key_data``) so the state is
    plain arrays that Orbax can save and a mesh can replicate; the step's dropout key
    is ``fold_in(key, step)``, so a resumed run draws what an uninterrupted one would.
    ``apply_fn``, ``tx``, ``loss`` (a :class:`~jaxdl.losses.Loss`), ``target`` and
    ``precision`` (a :class:`~jaxdl.precision.Precision`) are static: they choose the
    program, not its data. ``target`` names the batch entry the loss compares against:
    ``"y"`` for labels, ``"x"`` for an autoencoder's own input. ``loss_scale`` is
    float16's dynamic loss scale (``None`` in other precisions).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    batch_stats: Any
    rng: jax.Array
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    loss: Loss = struct.field(pytree_node=False, default=as_loss("cross_entropy"))
    target: str = struct.field(pytree_node=False, default="y")
    model_name: str = struct.field(pytree_node=False, default="model")
    loss_scale: Any = None
    precision: mixed.Precision = struct.field(pytree_node=False, default=mixed.FLOAT32)

    @property
    def key(self) -> jax.Array:
        return jax.random.wrap_key_data(self.rng)

    @property
    def variables(self) -> dict:
        """What ``model.apply`` takes: ``params`` and, if any, ``batch_stats``."""
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def make_optimizer(name: str = "sgd", learning_rate: float | optax.Schedule = 0.1, *,
                   momentum: float | None = None, weight_decay: float = 0.0) -> optax.GradientTransformation:
    """The course's optimizers by name: ``"sgd"`` (``torch.optim.SGD``, optional momentum),
    ``"adam"``, ``"adamw"``. ``learning_rate`` (a finite number >= 0, as PyTorch's) may be an optax
    schedule; ``momentum`` is in [0, 1), ``weight_decay`` >= 0."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"optimizer name must be a string (sgd, adam or adamw), got {name!r}")
    if not callable(learning_rate):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) \
                or not math.isfinite(learning_rate) or learning_rate < 0:
            raise ArgumentError(f"learning_rate must be a finite number >= 0 or an optax schedule, "
                                f"got {learning_rate!r}")
    if momentum is not None and not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ArgumentError(f"momentum must be a number in [0, 1) or None, got {momentum!r}")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
        raise ArgumentError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    name = name.lower()
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay or 0.01)
    if name in ("sgd", "adam"):
        tx = optax.sgd(learning_rate, momentum=momentum) if name == "sgd" else optax.adam(learning_rate)
        # PyTorch's weight_decay for SGD and Adam: L2 added to the gradient
        return optax.chain(optax.add_decayed_weights(weight_decay), tx) if weight_decay else tx
    raise ArgumentError(f"unknown optimizer {name!r}; choose sgd, adam or adamw, or pass an optax transform")


def create_train_state(model, key: jax.Array, example_input, tx: optax.GradientTransformation,
                       loss: str | Loss = "cross_entropy", target: str = "y",
                       precision: str | mixed.Precision = "float32") -> TrainState:
    """Initialise ``model`` on ``example_input`` (any batch size) and wrap it with ``tx``.

    ``model`` is a Flax Linen module (:mod:`jaxdl.models`) or a Flax NNX model
    (:mod:`jaxdl.nnx_models`, or your own ``nnx.Module``). An NNX model was initialised
    when it was built: its arrays are the state's (:func:`jaxdl.nnx_train.split_model`),
    and :func:`jaxdl.nnx_train.update_model` writes the trained ones back into it.

    ``loss`` is a :class:`~jaxdl.losses.Loss` or one of its names (``"cross_entropy"``,
    ``"bce_with_logits"``, ``"mse"``, ``"l1"``). ``key`` is split: one part initialises
    a Linen module's parameters, the other seeds every later random draw (dropout) of
    this run. ``precision`` is how the steps compute (:mod:`jaxdl.precision`:
    ``"float32"``, ``"bfloat16"``, ``"float16"``); the parameters are float32 in every case.
    """
    loss = as_loss(loss)
    if target not in ("x", "y"):
        raise ArgumentError(f"target must be 'y' (labels) or 'x' (reconstruct the input), got {target!r}")
    precision = mixed.as_precision(precision)
    example_shape = tuple(np.shape(example_input))
    if len(example_shape) < 1 or example_shape[0] < 1:
        raise ShapeError(f"example_input must be a batch of at least one example (any batch size, e.g. "
                         f"images[:1]), got shape {example_shape}")
    init_key, run_key = jax.random.split(key)
    if isinstance(model, nn.Module):
        variables = model.init({"params": init_key, "dropout": init_key}, jnp.asarray(example_input))
        apply_fn = model.apply
    else:  # a Flax NNX model, or a wrong argument that split_model names
        from jaxdl import nnx_train

        variables, apply_fn = nnx_train.split_model(model)
        # what Linen's init does on the example: the model must take it
        jax.eval_shape(functools.partial(apply_fn, train=False), variables, jnp.asarray(example_input))
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
        batch_stats=variables.get("batch_stats", {}), rng=jax.random.key_data(run_key),
        apply_fn=apply_fn, tx=tx, loss=loss, target=target, model_name=type(model).__name__,
        loss_scale=precision.initial_loss_scale(), precision=precision,
    )


def with_precision(state: TrainState, precision: str | mixed.Precision) -> TrainState:
    """``state`` computing in ``precision`` from its next step on (the parameters stay
    as they are: float32). A loss scale is added for float16, kept if it was there."""
    precision = mixed.as_precision(precision)
    if precision == state.precision:
        return state
    loss_scale = state.loss_scale if precision.loss_scaling and state.loss_scale is not None \
        else precision.initial_loss_scale()
    return state.replace(precision=precision, loss_scale=loss_scale)


def _apply(state: TrainState, params, x, train: bool):
    """Run the model; in training, with this step's dropout key and BatchNorm updates.
    Under mixed precision the parameters and inputs are cast to the compute type and
    the outputs come back as float32, for the loss and the metrics."""
    precision = state.precision
    variables = {**state.variables, "params": precision.cast(params)}
    x = precision.cast(x)
    if not train:
        out, batch_stats = state.apply_fn(variables, x, train=False), state.batch_stats
    else:
        rngs = {"dropout": jax.random.fold_in(state.key, state.step)}
        if state.batch_stats:
            out, updates = state.apply_fn(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
            batch_stats = updates["batch_stats"]
        else:
            out, batch_stats = state.apply_fn(variables, x, train=True, rngs=rngs), state.batch_stats
    if precision.mixed:
        out = jax.tree.map(lambda o: o.astype(jnp.float32), out)
    return out, batch_stats


def _metric_sums(state: TrainState, outputs, batch: Batch, per_example) -> Metrics:
    mask = batch["mask"]
    sums = {"loss_sum": jnp.sum(per_example * mask), "count": jnp.sum(mask)}
    predicted = state.loss.predicted_labels(outputs)
    if predicted is not None:
        sums["correct"] = jnp.sum((predicted == batch["y"]) * mask)
    return sums


def _train_step(state: TrainState, batch: Batch, axis_name: str | None = None):
    """One optimisation step. With ``axis_name`` (under ``pmap``/``shard_map``) each
    device holds part of the batch; the loss is divided by the *global* example count
    and gradients are summed, so the update equals one device on the whole batch."""
    mask = batch["mask"]
    count = jnp.sum(mask)
    if axis_name is not None:
        count = lax.psum(count, axis_name)

    scale = state.loss_scale["scale"] if state.loss_scale is not None else None

    def loss_fn(params):
        outputs, batch_stats = _apply(state, params, batch["x"], train=True)
        per_example = state.loss(outputs, batch[state.target])
        loss = jnp.sum(per_example * mask) / jnp.maximum(count, 1.0)
        # float16: the loss scaled up, so that small gradients do not round to 0
        return (loss if scale is None else loss * scale), (outputs, per_example, batch_stats)

    grads, (outputs, per_example, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    metrics = _metric_sums(state, outputs, batch, per_example)
    if axis_name is not None:
        grads = lax.psum(grads, axis_name)
        metrics = lax.psum(metrics, axis_name)
        batch_stats = lax.pmean(batch_stats, axis_name)
    updates, opt_state = state.tx.update(grads if scale is None else jax.tree.map(lambda g: g / scale, grads),
                                         state.opt_state, state.params)
    new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                        opt_state=opt_state, batch_stats=batch_stats)
    if scale is None:
        return new, metrics
    # an overflow in the scaled backward pass: skip this update, halve the scale
    finite = mixed.all_finite(grads)
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), (new.params, new.opt_state, new.batch_stats),
                        (state.params, state.opt_state, state.batch_stats))
    return new.replace(params=kept[0], opt_state=kept[1], batch_stats=kept[2],
                       loss_scale=mixed.next_loss_scale(state.precision, state.loss_scale, finite)), metrics


def _eval_step(state: TrainState, batch: Batch, axis_name: str | None = None) -> Metrics:
    outputs, _ = _apply(state, state.params, batch["x"], train=False)
    metrics = _metric_sums(state, outputs, batch, state.loss(outputs, batch[state.target]))
    return lax.psum(metrics, axis_name) if axis_name is not None else metrics


train_step = fastpath.jit(_train_step, donate_argnums=0)
"""``train_step(state, batch) -> (state, metrics)``: pure and compiled; the old state's
buffers are donated (reused for the new one), so do not use ``state`` after the call."""

eval_step = fastpath.jit(_eval_step)
"""``eval_step(state, batch) -> metrics``: the model in evaluation mode (no dropout,
BatchNorm running statistics)."""

def _train_step_over_devices(state: TrainState, batch: Batch):
    """The same step for ``jax.pmap`` code: a replicated state and a batch with a leading
    device axis (:func:`jaxdl.parallel.replicate`, :func:`jaxdl.parallel.split_for_pmap`);
    the gradients are summed over the ``"data"`` axis, so the update is one device's on
    the whole batch."""
    return _train_step(state, batch, axis_name="data")


pmap_train_step = jax.pmap(_train_step_over_devices, axis_name="data", donate_argnums=0)


def shard_map_train_step(mesh: jax.sharding.Mesh, axis_name: str = "data"):
    """The step written per device, as ``pmap`` code is, on today's JAX: ``jax.shard_map``
    over ``mesh``'s ``axis_name`` axis, each device given its part of the batch and the
    whole (replicated) state, the loss normalised by the global example count and the
    gradients summed with ``psum``. Takes what :func:`train_step` takes on a mesh (a
    replicated state, a batch split over ``axis_name``) and computes the same update,
    except that BatchNorm normalises by each device's statistics, as PyTorch's DDP does.
    Compiled with :func:`jaxdl.fastpath.jit`, the old state donated."""
    spec = jax.sharding.PartitionSpec
    # Unchecked, as pmap is: with the check on, JAX would sum the gradients of the
    # replicated parameters over the devices itself, and the step's own psum would
    # count them again.
    per_device = _shard_map(functools.partial(_train_step, axis_name=axis_name), mesh=mesh,
                            in_specs=(spec(), spec(axis_name)), out_specs=(spec(), spec()), **_PER_DEVICE)
    return fastpath.jit(per_device, donate_argnums=0)


@fastpath.jit(static_argnames=("gather", "sharding"), donate_argnums=0)
def train_steps_scanned(state: TrainState, arrays, indices, mask, epoch, start, stop, gather: Gather,
                        sharding=None):
    """Steps ``start`` to ``stop - 1`` of an epoch in one loop on the device, batches
    gathered inside.

    ``gather(arrays, indices, mask, step, epoch) -> batch`` is the loader's
    (:class:`jaxdl.data.loader.Gather`), so batches and augmentation are exactly those
    of the per-batch loop. ``start`` and ``stop`` are arrays, not constants of the
    program: every chunk of every epoch runs the same compiled loop, so an epoch cut
    into chunks (for the Learner's batch events) computes what one whole-epoch call
    computes, to the last bit, and the last, shorter chunk costs no compilation.
    Each batch is placed by ``sharding`` when given (the loader's: split over a mesh).
    Returns the state and the metric sums of every step of the epoch (one entry per
    step; zero outside ``[start, stop)``).
    """

    def batch(step):
        b = gather(arrays, indices, mask, step, epoch)
        return b if sharding is None else lax.with_sharding_constraint(b, sharding)

    zeros = jax.tree.map(lambda s: jnp.zeros((indices.shape[0], *s.shape), s.dtype),
                         jax.eval_shape(lambda step: _train_step(state, batch(step))[1], 0))

    def body(step, carry):
        state, sums = carry
        state, metrics = _train_step(state, batch(step))
        return state, jax.tree.map(lambda all_steps, m: all_steps.at[step].set(m), sums, metrics)

    return lax.fori_loop(start, stop, body, (state, zeros))


def scan_steps(state: TrainState, loader: DeviceLoader, epoch: int, start: int, stop: int,
               order=None) -> tuple[TrainState, Metrics]:
    """Steps ``start`` to ``stop - 1`` of epoch ``epoch`` of a loader whose data lives on
    the device (a :class:`~jaxdl.data.loader.DeviceLoader`, such as
    :class:`jaxdl.data.DeviceBatches`) as one :func:`train_steps_scanned` dispatch.
    ``order`` is the epoch's ``(indices, mask)`` when the caller has it already. Returns
    the state and the sums of every step of the epoch (zero outside the steps run)."""
    check_on_device(loader, "a scanned epoch")
    indices, mask = loader.epoch_indices(epoch) if order is None else order
    return train_steps_scanned(state, loader.arrays, indices, mask, epoch, start, stop, loader.gather,
                               loader.sharding)


def scan_epoch(state: TrainState, loader: DeviceLoader, epoch: int) -> tuple[TrainState, Metrics]:
    """Epoch ``epoch`` of a device loader as one :func:`train_steps_scanned` dispatch.
    Returns the state and each step's metric sums."""
    return scan_steps(state, loader, epoch, 0, len(loader))


def summarize(sums: Metrics) -> dict[str, float]:
    """Metric sums -> ``{"loss": mean loss, "acc": accuracy in %}`` (acc NaN for
    regression). Sums of several steps (vectors, one entry a step) are added up first."""
    sums = {name: np.sum(value, dtype=np.float64) for name, value in jax.device_get(sums).items()}
    count = float(sums["count"])
    loss = float(sums["loss_sum"]) / count if count else math.nan
    acc = float(sums["correct"]) / count * 100 if "correct" in sums and count else math.nan
    return {"loss": loss, "acc": acc}


def add_metrics(total: Metrics | None, new: Metrics) -> Metrics:
    return new if total is None else jax.tree.map(jnp.add, total, new)


@fastpath.jit(static_argnames=("gather", "sharding"))
def evaluate_scanned(state: TrainState, arrays, indices, mask, gather: Gather, sharding=None) -> Metrics:
    """The metric sums of every batch of an evaluation set, in one compiled program:
    a ``lax.scan`` whose body gathers batch ``step`` (the loader's ``gather``, placed
    by ``sharding`` when given) and adds its sums.

    One dispatch for the whole set instead of a gather, a step and an addition per
    batch, which is what a small model's evaluation time is made of on any device; a
    forward pass keeps its speed inside a loop body, where a CPU's backward pass of a
    convolution does not (``docs/performance.md``, "Scanned epochs").
    """

    def batch_sums(step):
        batch = gather(arrays, indices, mask, step, 0)
        if sharding is not None:
            batch = lax.with_sharding_constraint(batch, sharding)
        return _eval_step(state, batch)

    def body(total, step):
        return add_metrics(total, batch_sums(step)), None

    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(batch_sums, 0))
    return lax.scan(body, zeros, jnp.arange(indices.shape[0]))[0]


def evaluate(state: TrainState, loader: Loader) -> dict[str, float]:
    """Loss and accuracy of ``state`` over every batch of ``loader`` (epoch 0's order).

    Batches that live on the device (:class:`jaxdl.data.DeviceBatches`) are evaluated
    in one program (:func:`evaluate_scanned`); others batch by batch."""
    if loader.on_device:
        indices, mask = loader.epoch_indices(0)
        return summarize(evaluate_scanned(state, loader.arrays, indices, mask, loader.gather, loader.sharding))
    total = None
    for batch in loader.epoch(0):
        total = add_metrics(total, eval_step(state, batch))
    return summarize(total)


def eval_model(state: TrainState, loader: Loader) -> dict[str, Any]:
    """The course's ``eval_model``: ``{"model_name", "model_loss", "model_acc"}``."""
    check_targets(state, loader, "the evaluation data")
    result = evaluate(state, loader)
    return {"model_name": state.model_name, "model_loss": result["loss"], "model_acc": result["acc"]}


@fastpath.jit
def _predict_batch(state: TrainState, x):
    return _apply(state, state.params, x, train=False)[0]


def make_predictions(state: TrainState, data, batch_size: int = 256) -> np.ndarray:
    """Model outputs turned into probabilities for ``data`` (an NHWC array or a loader):
    softmax for cross-entropy, sigmoid for BCE, the raw outputs for regression. The
    course's ``make_predictions``; ``argmax(axis=1)`` gives the labels."""
    if isinstance(data, Loader):
        chunks = [(b["x"], b["mask"]) for b in data.epoch(0)]
    else:
        x = jnp.asarray(data)
        if x.ndim < 1 or len(x) == 0:
            raise ShapeError(f"make_predictions needs a batch of at least one example, got shape {tuple(x.shape)}")
        chunks = [(x[i:i + batch_size], jnp.ones(len(x[i:i + batch_size]))) for i in range(0, len(x), batch_size)]
    outputs = []
    for x, mask in chunks:
        out = state.loss.probabilities(_predict_batch(state, x))
        outputs.append(np.asarray(out)[np.asarray(mask) > 0])
    return np.concatenate(outputs)


def check_targets(state: TrainState, loader: Loader, where: str) -> None:
    """Refuse, before a step runs, examples the model of ``state`` cannot take (images of
    another size than it was initialised on) and targets its loss cannot take
    (:meth:`jaxdl.losses.Loss.check_targets`: labels of the wrong shape, cross-entropy
    labels outside the model's classes, BCE labels other than 0 and 1), with a
    :class:`~jaxdl.errors.ShapeError` or :class:`~jaxdl.support.labels.LabelError` that
    says ``where`` they are. Checks a loader whose examples live on the device; others
    are read batch by batch and not checked here."""
    if not loader.on_device:
        return
    x = loader.arrays["x"]
    example = jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype)
    try:
        outputs = jax.eval_shape(lambda x: _apply(state, state.params, x, train=False)[0], example)
    except flax.errors.ScopeParamShapeError as err:  # Flax's words for "parameters made for other inputs"
        detail = str(err).split(" (https://")[0]
        raise ShapeError(f"{state.model_name} does not take the examples of {where}, of shape "
                         f"{tuple(x.shape[1:])}: its parameters were made for examples of another shape ({detail}). "
                         "Create the train state on an example of this data, or resize the data") from None
    if state.target == "y":
        state.loss.check_targets(loader.arrays["y"], outputs.shape, where)
