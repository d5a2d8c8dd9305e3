"""Checkpoints with Orbax: save, keep, resume; and the course's ``save_model`` / ``load_model``.

Chapter 01 ends with ``torch.save(model.state_dict(), path)`` and
``model.load_state_dict(torch.load(path))``: :func:`save_model` / :func:`load_model`
do that for a model's inference weights (params and BatchNorm statistics).

For training, :class:`Checkpoint` is a Learner callback over an Orbax
``CheckpointManager``. It saves the whole :class:`~jaxdl.train.TrainState` every
``every_n_steps`` steps and at the end of every epoch, keeps the last ``keep`` and the
best by a metric, and -- with ``resume=True`` -- restores the latest one before
training starts. Because data order and dropout keys are derived from the step
(``fold_in``), a run killed at any point and started again with the same command
ends with bit-identical parameters to one never interrupted.

Orbax writes each checkpoint to a temporary directory and renames it when complete,
so a save killed half-way never looks like a checkpoint. A checkpoint that still fails
to restore (a damaged disk, a file removed by hand) is skipped with a warning for the
previous good one; one saved from a different model is refused with an error that
names the first array that does not fit.
"""

from __future__ import annotations

import math
import os
import pathlib
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from jaxdl import train as T
from jaxdl.callbacks import Callback, Learner
from jaxdl.files import atomic_path


class CheckpointMismatchError(ValueError):
    """A checkpoint whose arrays do not fit the state it is restored into."""


def _key_name(entry) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _describe(tree) -> dict[str, tuple[int, ...]]:
    """``{"params/Dense_0/kernel": shape}``: the same names whether the tree is a
    TrainState, a dict, or the metadata Orbax saved for either."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): tuple(np.shape(leaf)) for path, leaf in flat}


def check_compatible(saved, target, where: str) -> None:
    """Raise :class:`CheckpointMismatchError` naming the first difference between the
    arrays of ``saved`` and ``target`` (names and shapes)."""
    have, want = _describe(saved), _describe(target)
    for name in sorted(set(have) | set(want)):
        if name not in have:
            raise CheckpointMismatchError(f"{where} has no array {name} that this model needs "
                                          f"(shape {want[name]}); was it saved from another model?")
        if name not in want:
            raise CheckpointMismatchError(f"{where} holds {name} (shape {have[name]}) that this "
                                          "model does not have; was it saved from another model?")
        if have[name] != want[name]:
            raise CheckpointMismatchError(f"{where}: {name} has shape {have[name]} but this model "
                                          f"needs {want[name]}; was it saved from another model?")


def abstract_state(state: T.TrainState) -> T.TrainState:
    """Shapes, dtypes and shardings of ``state`` without its values: what to restore into.

    Works on a live state or on ``jax.eval_shape(create_train_state, ...)``, so no
    model needs to be built to restore one; the shardings decide where the arrays land,
    whatever the number of devices the checkpoint was saved from.
    """
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class CheckpointStore:
    """An Orbax ``CheckpointManager`` for :class:`TrainState` plus a JSON of loop progress.

    Keeps the latest ``keep`` checkpoints, and (if ``best_metric`` is given) the best
    one by that metric too.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "max"):
        policies = [ocp.checkpoint_managers.LatestN(keep)]
        if best_metric is not None:
            policies.append(ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == "min", n=1,
                keep_checkpoints_without_metrics=False))
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            # named handlers, so a fresh manager can read what an earlier run wrote
            item_handlers={"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()},
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
                create=True, enable_async_checkpointing=True, cleanup_tmp_directories=True))

    def save(self, state: T.TrainState, progress: dict, metrics: dict | None = None) -> None:
        step = int(state.step)
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)), metrics=metrics)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, target: T.TrainState, step: int | None = None) -> tuple[T.TrainState, dict, int]:
        """Restore into ``target`` (a live or abstract state) from ``step``, or from the
        newest checkpoint that reads; returns ``(state, progress, step)``."""
        candidates = [step] if step is not None else self.steps()[::-1]
        if not candidates:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = abstract_state(target)
        errors = []
        for candidate in candidates:
            where = f"checkpoint {self.directory}/{candidate}"
            try:
                saved = self.manager.item_metadata(candidate)["state"]
                if saved is None:
                    raise ValueError("it holds no metadata for the state")
            except Exception as err:  # unreadable metadata: a damaged checkpoint
                errors.append(f"{candidate}: {type(err).__name__}: {err}")
                warnings.warn(f"{where} could not be read ({err}); trying the previous one", stacklevel=2)
                continue
            check_compatible(saved, abstract, where)  # another model: an error, not a fallback
            try:
                restored = self.manager.restore(candidate, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
                return restored["state"], restored["progress"], candidate
            except Exception as err:
                errors.append(f"{candidate}: {type(err).__name__}: {err}")
                warnings.warn(f"{where} could not be restored ({err}); trying the previous one", stacklevel=2)
        raise RuntimeError(f"no checkpoint in {self.directory} could be restored:\n  " + "\n  ".join(errors))

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _progress(learner: Learner) -> dict[str, Any]:
    sums = learner.epoch_sums
    return {
        "history": learner.history,
        "epoch_sums": None if sums is None else {k: float(v) for k, v in jax.device_get(sums).items()},
    }


class Checkpoint(Callback):
    """Save the training state every ``every_n_steps`` steps (0: only at epoch ends) and
    at the end of every ``every_n_epochs``-th epoch (and the last) into ``directory``;
    keep the last ``keep`` and the best by ``best_metric`` (a history key such as
    ``"test_acc"``); with ``resume``, continue from the latest checkpoint found there."""

    order = 40  # after the loggers: a checkpoint marks an epoch as done

    def __init__(self, directory: str | os.PathLike, every_n_steps: int = 0, keep: int = 3,
                 best_metric: str | None = None, best_mode: str = "max", resume: bool = True,
                 every_n_epochs: int = 1, print_fn=print):
        self.store = CheckpointStore(directory, keep, best_metric, best_mode)
        self.every_n_steps, self.every_n_epochs = every_n_steps, every_n_epochs
        self.resume, self.best_metric = resume, best_metric
        self.print_fn = print_fn

    def before_fit(self, learner: Learner) -> None:
        if not self.resume or not self.store.steps():
            return
        state, progress, step = self.store.restore(learner.state)
        learner.state = state
        learner.history = {k: list(v) for k, v in progress["history"].items()}
        sums = progress.get("epoch_sums")
        learner.carried_sums = None if sums is None else {k: jnp.asarray(v, jnp.float32) for k, v in sums.items()}
        self.print_fn(f"resumed from {self.store.directory}/{step} (epoch {step // learner.steps_per_epoch}, "
                      f"step {step})")

    def after_batch(self, learner: Learner) -> None:
        step = int(learner.state.step)
        if self.every_n_steps and step % self.every_n_steps == 0 and step % learner.steps_per_epoch:
            if not math.isfinite(T.summarize(learner.step_metrics[-1])["loss"]):
                raise T.NonFiniteLossError(
                    f"training loss became non-finite at step {step}; not saving it. The last good "
                    f"checkpoint is in {self.store.directory}")
            self.store.save(learner.state, _progress(learner))

    def after_epoch(self, learner: Learner) -> None:
        if (learner.epoch + 1) % self.every_n_epochs and learner.epoch != learner.epochs - 1:
            return
        metrics = {k: v[-1] for k, v in learner.history.items() if not math.isnan(v[-1])}
        if self.best_metric is not None and self.best_metric not in metrics:
            raise KeyError(f"best_metric {self.best_metric!r} is not among this run's metrics {sorted(metrics)}")
        self.store.save(learner.state, {"history": learner.history, "epoch_sums": None}, metrics=metrics)

    def after_fit(self, learner: Learner) -> None:
        self.store.wait()


def save_model(path: str | os.PathLike, state_or_variables) -> pathlib.Path:
    """Save a model's inference weights (``params`` and any ``batch_stats``) to one file,
    like ``torch.save(model.state_dict(), path)``. Written to a temporary file and
    renamed, so a crash never leaves half a file under ``path``."""
    variables = getattr(state_or_variables, "variables", state_or_variables)
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.to_bytes(jax.device_get(variables)))
    return pathlib.Path(path)


def load_model(path: str | os.PathLike, target) -> dict:
    """Load weights saved by :func:`save_model` into the structure of ``target`` (the
    variables of a freshly initialised model, or ``jax.eval_shape`` of its ``init``);
    refuses weights of another model with :class:`CheckpointMismatchError`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        saved = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:
        raise ValueError(f"{path} is not a model saved by jaxdl.save_model ({err}); is it truncated?") from err
    target = getattr(target, "variables", target)
    check_compatible(saved, target, str(path))
    return jax.tree.map(jnp.asarray, serialization.from_state_dict(target, saved))
