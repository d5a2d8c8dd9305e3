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

What makes a checkpoint trustworthy:

* Orbax writes each checkpoint to a temporary directory and renames it when complete,
  so a save killed half-way never looks like a checkpoint.
* Beside the arrays, a checkpoint stores a snapshot taken at its step -- the history of
  the epochs before it, the running sums of a partial epoch, the steps per epoch and
  batch size -- and a checksum of every array. Restoring recomputes the checksums: a
  checkpoint that fails them (a flipped bit on disk) or that does not read at all is
  reported by step and path, moved aside to ``<directory>_damaged/`` (not deleted) and
  the previous good one is used.
* One saved from another model (other arrays) or from a run with another batch size
  (its step counts would mean other epochs) is refused with
  :class:`CheckpointMismatchError`.
* A save that Orbax skips or that fails raises :class:`CheckpointSaveError` at once;
  step-numbered folders in the directory that are not jaxdl checkpoints stop the run
  with :class:`CheckpointDirectoryError` instead of being obeyed; and before training
  the directory must be writable with room for a checkpoint.
* Nothing non-finite is saved: a state whose loss or parameters became NaN raises
  :class:`~jaxdl.learner.NonFiniteLossError`, whose message names the checkpoint a resume
  would start from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import sys
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx, serialization

from jaxdl import train as T
from jaxdl.epoch import BatchEvents
from jaxdl.learner import Callback, Learner, NonFiniteLossError
from jaxdl.errors import ArgumentError, JaxdlError
from jaxdl.support.files import atomic_path
from jaxdl.support.lock import FolderLock


class CheckpointMismatchError(JaxdlError, ValueError):
    """A checkpoint that does not fit what it is restored into: other arrays (another
    model), or another number of steps per epoch (another batch size or dataset)."""


class CheckpointDirectoryError(JaxdlError, RuntimeError):
    """A checkpoint directory jaxdl cannot use: not writable, no room for a checkpoint,
    holding folders that are not jaxdl checkpoints, or checkpoints of a run that is not
    being resumed."""


class CheckpointSaveError(JaxdlError, RuntimeError):
    """A checkpoint that Orbax did not write (skipped, or failed)."""


class CheckpointDamagedError(JaxdlError, ValueError):
    """A saved model or checkpoint that does not read back as it was written: damaged,
    cut short, or not written by jaxdl."""


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint that failed its checksums or did not read; it was moved aside."""


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


def _leaf_names(tree) -> tuple[list[str], list[Any]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return ["/".join(_key_name(k) for k in path) for path, _ in flat], [leaf for _, leaf in flat]


def _as_words(x: jax.Array) -> jax.Array:
    """The bits of ``x`` as unsigned 32-bit words (narrower types widened, wider split)."""
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    size = jnp.dtype(x.dtype).itemsize
    if size in (1, 2):
        return jax.lax.bitcast_convert_type(x, {1: jnp.uint8, 2: jnp.uint16}[size]).astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(x, jnp.uint32)  # 8 bytes: a trailing axis of two words


@jax.jit
def _checksums(leaves: list[jax.Array]) -> list[jax.Array]:
    # A position-weighted sum of the words, modulo 2**32. Flipping one bit of word i
    # changes it by +-2**k * (2i + 1), never 0 mod 2**32 (the weight is odd): every single
    # flipped bit is caught, and the sum does not depend on how the array is sharded.
    def one(leaf):
        words = _as_words(leaf).ravel()
        weights = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
        return jnp.sum(words * weights, dtype=jnp.uint32)

    return [one(leaf) for leaf in leaves]


def checksums(tree) -> dict[str, int]:
    """``{"params/Dense_0/kernel": checksum}``: a 32-bit checksum of every array of
    ``tree``, computed where the arrays live (no copy to the host)."""
    names, leaves = _leaf_names(tree)
    return dict(zip(names, (int(v) for v in jax.device_get(_checksums(leaves)))))


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in leaves
                                if jnp.issubdtype(leaf.dtype, jnp.inexact)] or [True]))


def _state_bytes(state) -> int:
    return sum(int(np.prod(np.shape(leaf))) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(state))


ITEMS = ("state", "progress")
"""The items of a jaxdl checkpoint: the TrainState's arrays, and a JSON of everything else."""


def _reason(err: BaseException) -> str:
    """An exception in a line: its type and message, without TensorStore's spec dump."""
    message = str(err).split(" [tensorstore_spec=")[0].split("\n")[0]
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(err).__name__}: {message}"


@contextlib.contextmanager
def _quiet_library_logs():
    """Silence what Orbax, TensorStore's asyncio tasks and absl log while a damaged
    checkpoint fails to read: the warning jaxdl gives says it once, in one line."""
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio", "orbax", "jax._src.distributed")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _closed_event_loop(error: BaseException | None) -> bool:
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _ignore_closed_event_loops() -> None:
    """After a read of a damaged checkpoint fails, Orbax closes its event loop while
    TensorStore still has callbacks for it; each then reports "Event loop is closed" --
    as an unraisable exception, or printed from TensorStore's own thread through
    ``sys.excepthook`` -- a traceback for nothing. Drop those (once installed, the filters
    stay: the callbacks may come after the restore has returned, even at exit)."""
    import threading

    previous = sys.unraisablehook
    if getattr(previous, "jaxdl_filter", False):
        return

    def unraisable_hook(unraisable):
        if not _closed_event_loop(unraisable.exc_value):
            previous(unraisable)

    previous_excepthook, previous_thread_hook = sys.excepthook, threading.excepthook

    def excepthook(kind, value, traceback):
        if not _closed_event_loop(value):
            previous_excepthook(kind, value, traceback)

    def thread_hook(args):
        if not _closed_event_loop(args.exc_value):
            previous_thread_hook(args)

    unraisable_hook.jaxdl_filter = True
    sys.unraisablehook, sys.excepthook, threading.excepthook = unraisable_hook, excepthook, thread_hook


def _check_keep(keep: int, best_mode: str) -> None:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ArgumentError(f"keep must be a positive int (checkpoints to keep), got {keep!r}")
    if best_mode not in ("max", "min"):
        raise ArgumentError(f"best_mode must be 'max' or 'min', got {best_mode!r}")


class CheckpointStore:
    """An Orbax ``CheckpointManager`` for :class:`TrainState` plus a JSON of loop progress
    and the arrays' checksums.

    Keeps the latest ``keep`` checkpoints, and (if ``best_metric`` is given) the best
    one by that metric too. While open it holds the directory's lock
    (:class:`~jaxdl.support.lock.FolderLock`): another store on the same directory, in
    this process or another, is refused with :class:`CheckpointDirectoryError` until
    :meth:`close` (or ``with CheckpointStore(...) as store:``).
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "max"):
        _check_keep(keep, best_mode)
        policies = [ocp.checkpoint_managers.LatestN(keep)]
        if best_metric is not None:
            policies.append(ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == "min", n=1,
                keep_checkpoints_without_metrics=False))
        self.directory = pathlib.Path(directory).absolute()
        self.damaged_directory = self.directory.with_name(self.directory.name + "_damaged")
        open_directory(self.directory)
        try:
            # Held before Orbax starts: a new manager deletes the temporary folders it finds,
            # which would be another process's save in flight.
            self._lock = FolderLock(self.directory, CheckpointDirectoryError,
                                    "give this run another checkpoint directory")
        except OSError as err:
            raise CheckpointDirectoryError(f"cannot keep checkpoints in {self.directory}: {err}") from err
        try:
            self.manager = ocp.CheckpointManager(
                self.directory,
                # named handlers, so a fresh manager can read what an earlier run wrote
                item_handlers={"state": ocp.StandardCheckpointHandler(), "progress": ocp.JsonCheckpointHandler()},
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
                    create=True, enable_async_checkpointing=True, cleanup_tmp_directories=True))
        except BaseException as err:
            self._lock.release()
            if isinstance(err, OSError):
                raise CheckpointDirectoryError(f"cannot keep checkpoints in {self.directory}: {err}") from err
            raise

    def save(self, state: T.TrainState, progress: dict, metrics: dict | None = None) -> None:
        """Save ``state`` at its step with ``progress`` (a snapshot: copy what changes later)
        and the arrays' checksums; raise :class:`CheckpointSaveError` if Orbax does not."""
        step = int(state.step)
        names, leaves = _leaf_names(state)
        if not bool(_all_finite(leaves)):
            raise NonFiniteLossError(f"the training state became non-finite (NaN or infinite) by step "
                                       f"{step}; not saving it to {self.directory}")
        progress = {**progress, "checksums": checksums(state)}
        progress["progress_digest"] = _progress_digest(progress)
        try:
            saved = self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)), metrics=metrics)
        except Exception as err:
            raise CheckpointSaveError(f"could not save checkpoint {step} to {self.directory}: "
                                      f"{_reason(err)}") from err
        if not saved:
            latest = self.manager.latest_step()
            raise CheckpointSaveError(
                f"Orbax did not save checkpoint {step} in {self.directory}: it holds step {latest}, "
                "and Orbax saves no step at or below its newest: save steps in increasing order")

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def path(self, step: int) -> pathlib.Path:
        return self.directory / str(step)

    def restore(self, target: T.TrainState, step: int | None = None) -> tuple[T.TrainState, dict, int]:
        """Restore into ``target`` (a live or abstract state) from ``step``, or from the
        newest checkpoint that reads and passes its checksums; returns ``(state,
        progress, step)``. A damaged checkpoint is moved aside with a
        :class:`DamagedCheckpointWarning`; with an explicit ``step``, it is an error."""
        candidates = [step] if step is not None else self.steps()[::-1]
        if not candidates:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = abstract_state(target)
        errors = []
        _ignore_closed_event_loops()  # a damaged checkpoint's failed read may report it at once
        with _quiet_library_logs():  # a damaged file is reported once, by the warning below
            return self._restore_first_good(candidates, abstract, step, errors)

    def _restore_first_good(self, candidates, abstract, step, errors):
        for candidate in candidates:
            where = f"checkpoint {self.path(candidate)}"
            try:
                saved = self.manager.item_metadata(candidate)["state"]
                if saved is None:
                    raise ValueError("it holds no metadata for the state")
            except Exception as err:  # unreadable metadata: a damaged checkpoint
                errors.append(self._set_aside(candidate, _reason(err)))
                continue
            check_compatible(saved, abstract, where)  # another model: an error, not a fallback
            try:
                restored = self.manager.restore(candidate, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
            except Exception as err:
                errors.append(self._set_aside(candidate, _reason(err)))
                continue
            damage = _failed_checksums(restored["state"], restored["progress"])
            if damage:
                errors.append(self._set_aside(candidate, damage))
                continue
            return restored["state"], restored["progress"], candidate
        if step is not None:
            raise CheckpointDamagedError(f"checkpoint {step} in {self.directory} is damaged: {errors[0]}")
        raise CheckpointDamagedError(f"no checkpoint in {self.directory} could be restored ({'; '.join(errors)}); "
                                     "start the run afresh in an empty directory")

    def _set_aside(self, step: int, reason: str) -> str:
        """Move a damaged checkpoint out of the manager's sight (so the step can be saved
        again), keep it for inspection, and say so."""
        source = self.path(step)
        target = self.damaged_directory / str(step)
        n = 1
        while target.exists():
            target, n = self.damaged_directory / f"{step}-{n}", n + 1
        try:
            self.damaged_directory.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(target))
        except OSError as err:  # left in place, Orbax would refuse to save this step again
            raise CheckpointDirectoryError(
                f"checkpoint {step} in {self.directory} is damaged ({reason}) and could not be moved aside to "
                f"{target} ({err}); move or delete {source} yourself, then resume") from None
        self.manager.reload()
        message = f"checkpoint {step} in {self.directory} is damaged ({reason}); moved it to {target}"
        warnings.warn(message + "; trying the previous one", DamagedCheckpointWarning, stacklevel=3)
        return message

    def check_room(self, state: T.TrainState) -> None:
        """Raise :class:`CheckpointDirectoryError` unless the directory takes a file and
        has room for about two checkpoints of ``state`` (a new one is written before the
        oldest is deleted): found now, not at the first save many steps later."""
        probe = self.directory / f".jaxdl-write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"0")
            probe.unlink()
        except OSError as err:
            raise CheckpointDirectoryError(f"cannot write checkpoints to {self.directory}: {err}") from err
        needed = 2 * _state_bytes(state) + 2**20
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise CheckpointDirectoryError(
                f"{self.directory} has {free / 2**20:.1f} MiB free; checkpoints of this training state "
                f"need about {needed / 2**20:.1f} MiB. Free some space or choose another directory")

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            raise CheckpointSaveError(f"a checkpoint save to {self.directory} failed: "
                                      f"{_reason(err)}") from err

    def close(self) -> None:
        """Stop Orbax's threads and give the directory back to other processes."""
        try:
            self.manager.close()
        finally:
            self._lock.release()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_directory(directory: pathlib.Path) -> None:
    """Create a checkpoint directory, or refuse one holding step-numbered folders that are
    not jaxdl's: Orbax takes every one for a checkpoint, and will not save a step below
    the newest, so a stray ``99999/`` would make every later save a no-op."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointDirectoryError(f"cannot keep checkpoints in {directory}: {err}") from err
    foreign = [entry.name for entry in sorted(directory.iterdir())
               if entry.name.isdigit() and not _written_by_jaxdl(entry)]
    if foreign:
        raise CheckpointDirectoryError(
            f"{directory} holds {', '.join(foreign)}, named like checkpoints but not jaxdl "
            f"checkpoints (neither Orbax's metadata nor {' or '.join(f'{item}/' for item in ITEMS)} inside); "
            "move them out of the checkpoint directory: jaxdl does not guess what they are")


def _written_by_jaxdl(folder: pathlib.Path) -> bool:
    """Whether a step folder is a checkpoint of jaxdl's, whole or cut short by a kill (then
    it is damaged, and restore sets it aside): it holds Orbax's step metadata or one of
    jaxdl's items, finished or still under Orbax's temporary name."""
    if not folder.is_dir():
        return False
    names = {entry.name.split(".orbax-checkpoint-tmp")[0] for entry in folder.iterdir()}
    return "_CHECKPOINT_METADATA" in names or bool(names & set(ITEMS))


def _progress_digest(progress: dict) -> str:
    """A SHA-256 of the progress record (less this digest), as JSON with sorted keys."""
    record = {k: v for k, v in progress.items() if k != "progress_digest"}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


PROGRESS_FIELDS = {"history": dict, "epoch_sums": (dict, type(None)), "steps_per_epoch": int, "batch_size": int,
                   "checksums": dict, "progress_digest": str}
"""The fields of the progress record the :class:`Checkpoint` callback saves beside the
arrays, with their types (the last two are added to every record a store saves)."""


def _failed_checksums(state, progress: Any) -> str | None:
    """Why ``state`` and the progress record saved with it do not match their checksums
    (or are no record of jaxdl's), or ``None``."""
    if not isinstance(progress, dict):
        return "its progress record is not a JSON object"
    for field in ("checksums", "progress_digest"):
        if field not in progress:
            return f"its progress record has no {field!r}"
    for field, kind in PROGRESS_FIELDS.items():
        if field in progress and (not isinstance(progress[field], kind) or isinstance(progress[field], bool)):
            return f"its progress record's {field!r} is a {type(progress[field]).__name__}"
    if progress["progress_digest"] != _progress_digest(progress):
        return "its progress record (history, epoch sums) does not match its checksum"
    saved, now = progress["checksums"], checksums(state)
    bad = [name for name in sorted(set(saved) | set(now)) if saved.get(name) != now.get(name)]
    if bad:
        return f"{', '.join(bad[:3])}{' and others' if len(bad) > 3 else ''} do not match their checksums"
    return None


def _progress(learner: Learner, epoch_sums: dict | None) -> dict[str, Any]:
    """What a checkpoint stores beside the arrays: a snapshot taken now (the save is
    written later, in the background, while the live history goes on growing)."""
    return {
        "history": {k: list(v) for k, v in learner.history.items()},
        "epoch_sums": None if epoch_sums is None else dict(epoch_sums),
        "steps_per_epoch": learner.steps_per_epoch,
        "batch_size": learner.train_data.batch_size,
    }


class Checkpoint(Callback):
    """Save the training state every ``every_n_steps`` steps (0: only at epoch ends) and
    at the end of every ``every_n_epochs``-th epoch (and the last) into ``directory``;
    keep the last ``keep`` and the best by ``best_metric`` (a history key such as
    ``"test_acc"``); with ``resume``, continue from the latest good checkpoint found
    there. Without ``resume``, a directory that already holds checkpoints is refused:
    two runs never mix in one. During a fit the directory is locked: a second process
    (or a second fit in this one) that asks for it is refused at once.

    A resume continues training towards the ``epochs`` the fit asks for; a checkpoint
    already past them is refused (its model would not be the one asked for)."""

    order = 40  # after the loggers: a checkpoint marks an epoch as done

    def __init__(self, directory: str | os.PathLike, every_n_steps: int = 0, keep: int = 3,
                 best_metric: str | None = None, best_mode: str = "max", resume: bool = True,
                 every_n_epochs: int = 1, print_fn=print):
        for name, value, least in (("every_n_steps", every_n_steps, 0), ("every_n_epochs", every_n_epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ArgumentError(f"{name} must be an int >= {least}, got {value!r}")
        _check_keep(keep, best_mode)
        self.directory = pathlib.Path(directory).absolute()
        open_directory(self.directory)  # what is wrong with it is found now, not when training starts
        self._options = (keep, best_metric, best_mode)
        self.store: CheckpointStore | None = None  # open, and the directory locked, only during a fit
        self.every_n_steps, self.every_n_epochs = every_n_steps, every_n_epochs
        self.resume, self.best_metric = resume, best_metric
        self.print_fn = print_fn
        self.latest: int | None = None  # the newest step saved or restored by this fit

    def before_fit(self, learner: Learner) -> None:
        self.latest = None
        self.store = CheckpointStore(self.directory, *self._options)
        steps = self.store.steps()
        if steps and not self.resume:
            raise CheckpointDirectoryError(
                f"{self.store.directory} already holds checkpoints (steps {', '.join(map(str, steps))}) of "
                "an earlier run; resume it (resume=True) or give this run an empty directory")
        self.store.check_room(learner.state)
        if not self.resume or not steps:
            return
        state, progress, step = self.store.restore(learner.state)
        self._check_same_epochs(learner, progress, step)
        learner.state = state
        learner.history = {k: list(v) for k, v in progress["history"].items()}
        learner.carried_sums = progress.get("epoch_sums")
        self.latest = step
        self.print_fn(f"resumed from {self.store.path(step)} (epoch {step // learner.steps_per_epoch}, "
                      f"step {step})")

    def _check_same_epochs(self, learner: Learner, progress: dict, step: int) -> None:
        missing = [field for field in ("history", "steps_per_epoch", "batch_size") if field not in progress]
        if missing:
            raise CheckpointMismatchError(
                f"checkpoint {self.store.path(step)} was not saved by a Checkpoint callback (its progress "
                f"record has no {', '.join(missing)}); resume it with CheckpointStore.restore, or start in an "
                "empty directory")
        saved = (progress.get("steps_per_epoch"), progress.get("batch_size"))
        now = (learner.steps_per_epoch, learner.train_data.batch_size)
        if saved != now:
            raise CheckpointMismatchError(
                f"checkpoint {self.store.path(step)} was saved by a run of {saved[0]} steps an epoch "
                f"(batch size {saved[1]}); this one has {now[0]} (batch size {now[1]}), so its step "
                f"{step} would mean another point of training. Resume with the same data and batch "
                "size, or start in an empty directory")
        trained = step / learner.steps_per_epoch
        if step > learner.epochs * learner.steps_per_epoch:
            raise CheckpointMismatchError(
                f"checkpoint {self.store.path(step)} has trained {trained:g} epochs (step {step}), more than "
                f"the {learner.epochs} this fit asks for; ask for at least {math.ceil(trained)} epochs to "
                "resume it, or start in an empty directory")

    def batch_events(self, learner: Learner) -> BatchEvents:
        return BatchEvents(every_steps=self.every_n_steps or None)  # a scanned epoch stops for the saves at N, 2N, ...

    def _save(self, learner: Learner, epoch_sums, metrics=None) -> None:
        self.store.save(learner.state, _progress(learner, epoch_sums), metrics=metrics)
        self.latest = int(learner.state.step)

    def after_batch(self, learner: Learner) -> None:
        step = int(learner.state.step)
        if self.every_n_steps and step % self.every_n_steps == 0 and step % learner.steps_per_epoch:
            sums = learner.epoch_sums
            if not math.isfinite(sums["loss_sum"]):
                first = learner.sums.first_nonfinite_step
                raise NonFiniteLossError(
                    f"training loss became non-finite by step {step}"
                    + (f" (first at step {first})" if first is not None else "")
                    + "; lower the learning rate or check the data")
            self._save(learner, sums)

    def after_epoch(self, learner: Learner) -> None:
        if (learner.epoch + 1) % self.every_n_epochs and learner.epoch != learner.epochs - 1:
            return
        metrics = {k: v[-1] for k, v in learner.history.items() if not math.isnan(v[-1])}
        if self.best_metric is not None and self.best_metric not in metrics:
            raise ArgumentError(f"best_metric {self.best_metric!r} is not among this run's metrics {sorted(metrics)}")
        self._save(learner, None, metrics=metrics)

    def after_fit(self, learner: Learner) -> None:
        if isinstance(learner.error, NonFiniteLossError):
            if self.latest is None:
                learner.error.add_note(f"No checkpoint of this run in {self.directory} precedes it.")
            else:
                learner.error.add_note(
                    f"The latest checkpoint, step {self.latest} ({self.directory / str(self.latest)}), was saved "
                    "before it; a resume starts there, but with the same settings the loss will diverge "
                    "again: start afresh with a lower learning rate, or fix the data.")
        if self.store is None:  # an earlier callback's before_fit failed
            return
        try:
            self.store.wait()
        except CheckpointSaveError:
            if learner.error is None:
                raise  # else the error that ended the fit is the one to see
        finally:
            self.store.close()
            self.store = None


MODEL_FORMAT = "jaxdl.save_model/1"
"""The first field of a file :func:`save_model` writes."""


def _variables(holder):
    """The variables of a train state, of a Flax NNX model, or ``holder`` itself (a dict)."""
    if isinstance(holder, T.TrainState):
        return holder.variables
    if isinstance(holder, nnx.Module):
        from jaxdl import nnx_train

        return nnx_train.variables_of(holder)
    return holder


def save_model(path: str | os.PathLike, state_or_variables) -> pathlib.Path:
    """Save a model's inference weights (``params`` and any ``batch_stats``) to one file,
    like ``torch.save(model.state_dict(), path)``. Written to a temporary file and
    renamed, so a crash never leaves half a file under ``path``.

    ``state_or_variables`` is a train state, a variables dict, or a Flax NNX model (its
    ``nnx.Param`` and ``nnx.BatchStat`` arrays). The file is msgpack: the variables (Flax's
    ``serialization.to_bytes``) and their SHA-256, which :func:`load_model` checks."""
    variables = _variables(state_or_variables)
    payload = serialization.to_bytes(jax.device_get(variables))
    record = {"format": MODEL_FORMAT, "variables": payload, "sha256": hashlib.sha256(payload).hexdigest()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.msgpack_serialize(record))
    return pathlib.Path(path)


def load_model(path: str | os.PathLike, target):
    """Load weights saved by :func:`save_model` into the structure of ``target`` (the
    variables of a freshly initialised model, or ``jax.eval_shape`` of its ``init``) and
    return them. A Flax NNX model as ``target`` gets them in place (``nnx.update``) and is
    returned.

    What is loaded is checked before it is used: a file that is damaged (its checksum
    fails), not written by :func:`save_model`, or cut short raises
    :class:`CheckpointDamagedError`; weights of another model (other arrays or shapes),
    of another dtype than ``target``'s, or holding NaN or infinite values raise
    :class:`CheckpointMismatchError`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        record = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:
        raise CheckpointDamagedError(f"{path} is not a model saved by jaxdl's save_model, or it is damaged or "
                                     f"cut short ({type(err).__name__}: {err})") from None
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise CheckpointDamagedError(f"{path} is not a model saved by jaxdl's save_model (it has no "
                                     f"{MODEL_FORMAT!r} header); save the model again with save_model")
    payload = record.get("variables")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != record.get("sha256"):
        raise CheckpointDamagedError(f"{path} is damaged: its weights do not match their checksum; "
                                     "load an intact copy, or save the model again")
    saved = serialization.msgpack_restore(payload)
    if isinstance(target, nnx.Module):
        loaded = load_model(path, _variables(target))
        nnx.update(target, loaded["params"], loaded.get("batch_stats", {}))
        return target
    target = _variables(target)
    check_compatible(saved, target, str(path))
    names, wanted = _leaf_names(target)
    have = dict(zip(*_leaf_names(saved)))
    for name, want in zip(names, wanted):
        leaf = np.asarray(have[name])
        if leaf.dtype != np.dtype(want.dtype):
            raise CheckpointMismatchError(f"{path}: {name} is {leaf.dtype} but this model needs {want.dtype}; "
                                          "was it saved from another model, or converted?")
        if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
            raise CheckpointMismatchError(f"{path}: {name} holds NaN or infinite values; a model trained "
                                          "until it diverged cannot predict. Load an earlier checkpoint")
    return jax.tree.map(jnp.asarray, serialization.from_state_dict(target, saved))
