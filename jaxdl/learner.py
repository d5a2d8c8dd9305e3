"""The Learner: the training loop of fast.ai's miniai (Lesson 15), and ``fit``.

The course's Learner does almost nothing itself: it runs the loop and announces
events -- ``before_fit``, ``before_epoch``, ``before_batch``, ``after_batch``,
``after_epoch``, ``after_fit`` -- and everything else (progress bars, logging, early
stopping, checkpoints: :mod:`jaxdl.callbacks`, :mod:`jaxdl.checkpoint`) is a callback
that listens. A callback may raise :class:`CancelBatchException`,
:class:`CancelEpochException` or :class:`CancelFitException` to skip the rest of a
batch, an epoch or the fit; the Learner then announces ``after_cancel_batch`` /
``_epoch`` / ``_fit``.

A callback sees the Learner: ``learner.state`` (the :class:`~jaxdl.train.TrainState`),
``learner.epoch``, ``learner.batch``, ``learner.step_metrics`` (this epoch's metric
sums so far, one entry per batch event), ``learner.epoch_sums`` (those sums added up on
the host), ``learner.train_metrics`` / ``eval_metrics`` (after an epoch) and
``learner.history``. ``after_fit`` runs however the fit ends; ``learner.error`` is then
the exception that ended it, or ``None``.

Scanned epochs. Where an epoch runs on the device as a loop over its steps
(``scan=True``; by default on a GPU or TPU), the batch events come between *chunks*
of steps, each one dispatch: ``before_batch`` before a chunk, ``after_batch`` after
it, with ``learner.batch_index`` its first step, then its last, ``learner.chunk`` its
``(first, stop)`` steps of the epoch, ``learner.batch`` ``None`` (the batches never leave the
device) and ``learner.step_metrics[-1]`` the sums of each of its steps (vectors). The
chunks are cut where the callbacks ask for their events
(:meth:`Callback.batch_every_steps`, :meth:`Callback.batch_every_seconds`; a
:class:`~jaxdl.checkpoint.Checkpoint` saving every N steps gets its events at steps N,
2N, ...; a progress bar every refresh), and every ``steps_per_execution`` steps if given.
A callback that must see every single batch -- one that defines ``before_batch``, since
it may change or cancel a step, or one that sets ``every_batch = True`` -- makes the
epochs run per batch, with a one-line notice. Every chunk runs the same compiled
program, so where the cuts fall changes nothing in what is computed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import kernels
from jaxdl import train as T
from jaxdl.errors import JaxdlError

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_batch", "after_epoch", "after_fit",
          "after_cancel_batch", "after_cancel_epoch", "after_cancel_fit")


class CancelBatchException(Exception):
    """Skip the rest of this batch (its step is not taken if raised in ``before_batch``)."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch."""


class CancelFitException(Exception):
    """Stop training now; ``after_fit`` still runs."""


_log = logging.getLogger(__name__)


class Callback:
    """Base class: define methods named after the events you want. Lower ``order`` runs first.

    In a scanned epoch (see the module docstring) the batch events come between
    chunks of steps; three settings say where a callback needs them:
    ``every_batch = True`` (or a ``before_batch`` method, unless ``every_batch = False``)
    makes the epochs run per batch; :meth:`batch_every_steps` and
    :meth:`batch_every_seconds` cap a chunk's length.
    """

    order = 0
    every_batch: bool | None = None
    """Whether this callback needs its batch events around every single step. ``None``:
    if it defines ``before_batch`` (which may change or cancel one step)."""

    def batch_every_steps(self, learner: Learner) -> int | None:
        """The batch events must fall on the steps that are multiples of this (``None``: anywhere)."""
        return None

    def batch_every_seconds(self, learner: Learner) -> float | None:
        """The batch events must come at least this often (``None``: once an epoch is enough)."""
        return None


def needs_every_batch(callback: Callback) -> bool:
    """Whether ``callback`` needs the batch events of every step (see :class:`Callback`)."""
    every = getattr(callback, "every_batch", None)
    return callable(getattr(callback, "before_batch", None)) if every is None else bool(every)


class NonFiniteLossError(JaxdlError, FloatingPointError):
    """The training loss (or the parameters) became NaN or infinite; the fit stops
    rather than train on, and no checkpoint is saved from that point."""


class Learner:
    """Runs the loop of :func:`fit` and calls the callbacks' events in order."""

    def __init__(self, state: T.TrainState, train_data, eval_data=None,
                 callbacks: Sequence[Callback] = (), scan: bool = False, steps_per_execution: int | None = None):
        if steps_per_execution is not None and (isinstance(steps_per_execution, bool)
                                                or not isinstance(steps_per_execution, int) or steps_per_execution < 1):
            raise ValueError(f"steps_per_execution must be a whole number >= 1, got {steps_per_execution!r}")
        self.state, self.train_data, self.eval_data = state, train_data, eval_data
        self.callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "order", 0))
        self.scan = scan and hasattr(train_data, "gather")
        per_batch = [type(cb).__name__ for cb in self.callbacks if needs_every_batch(cb)]
        if self.scan and per_batch:
            _log.warning("jaxdl: epochs run per batch, not scanned on the device, because %s %s every batch",
                         " and ".join(per_batch), "needs" if len(per_batch) == 1 else "need")
            self.scan = False
        self.steps_per_execution = steps_per_execution
        self.chunk: tuple[int, int] | None = None  # a scanned epoch's (first, stop) steps of this batch event
        self._seconds_per_step: float | None = None  # of the latest chunk, to size the next
        self.history: dict[str, list[float]] = {k: [] for k in
                                                ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")}
        self.epoch = 0
        self.epochs = 0
        self.batch: dict | None = None
        self.batch_index = 0
        self.step_metrics: list[T.Metrics] = []
        self.carried_sums: dict[str, float] | None = None  # this epoch's sums from before a resume
        self._sums: dict[str, float] | None = None  # carried_sums plus step_metrics[:_summed]
        self._summed = self._steps_summed = 0
        self._epoch_begin = 0  # the step this epoch's step_metrics start after
        self.first_nonfinite_step: int | None = None  # this epoch's first step with a non-finite loss
        self.train_metrics: dict[str, float] = {}
        self.eval_metrics: dict[str, float] = {}
        self.error: BaseException | None = None

    def __call__(self, event: str) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is not None:
                method(self)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_data)

    @property
    def epoch_sums(self) -> dict[str, float] | None:
        """This epoch's metric sums so far, on the host.

        The batches' sums come from the device in one transfer and are added one at a
        time, in step order, in float64, onto the sums carried over a resume: a run
        resumed mid-epoch adds exactly the numbers an uninterrupted one adds, in the
        same order, so its epoch metrics agree to the last digit.
        """
        new = self.step_metrics[self._summed:]
        if new:
            # entries are one batch's sums (scalars) or a scanned epoch's per-step sums (vectors)
            stacked = jax.device_get(jax.tree.map(
                lambda *xs: jnp.concatenate([jnp.atleast_1d(x) for x in xs]), *new))
            sums = dict(self._sums or {})
            for name, values in stacked.items():
                running = np.cumsum(np.concatenate([[sums.get(name, 0.0)], np.asarray(values, np.float64)]))
                sums[name] = float(running[-1])
                if name == "loss_sum" and self.first_nonfinite_step is None and not np.isfinite(running[-1]):
                    first = int(np.flatnonzero(~np.isfinite(running))[0])  # running[0] is finite
                    self.first_nonfinite_step = self._epoch_begin + self._steps_summed + first
            self._steps_summed += len(next(iter(stacked.values())))
            self._sums, self._summed = sums, len(self.step_metrics)
        return self._sums

    def fit(self, epochs: int) -> None:
        self.epochs = epochs
        self.error = None
        try:
            self("before_fit")  # may restore a checkpoint: the fit goes on from its step
            first_epoch, start = divmod(int(self.state.step), self.steps_per_epoch)
            for self.epoch in range(first_epoch, epochs):
                # a resumed epoch goes on from its step; any other starts at its first batch
                self._run_epoch(start if self.epoch == first_epoch else 0)
        except CancelFitException:
            self("after_cancel_fit")
        except BaseException as err:
            self.error = err
            raise
        finally:
            self("after_fit")

    def _run_epoch(self, start: int) -> None:
        try:
            self.step_metrics = []
            if start == 0:
                self.carried_sums = None
            self._sums, self._summed, self._steps_summed = self.carried_sums, 0, 0
            self._epoch_begin, self.first_nonfinite_step = int(self.state.step), None
            self("before_epoch")
            began = time.perf_counter()
            if self.scan:
                self._run_scanned(start)
            else:
                for self.batch_index, self.batch in enumerate(self.train_data.epoch(self.epoch, start=start), start):
                    self._run_batch()
            self.train_metrics = T.summarize(self.epoch_sums)
            if not math.isfinite(self.train_metrics["loss"]):
                first = self.first_nonfinite_step
                raise NonFiniteLossError(
                    f"training loss became {self.train_metrics['loss']} in epoch {self.epoch}"
                    + (f", first at step {first}" if first is not None else "")
                    + "; lower the learning rate or check the data")
            elapsed = time.perf_counter() - began
            self.eval_metrics = T.evaluate(self.state, self.eval_data) if self.eval_data is not None else {}
            for name, value in (("train_loss", self.train_metrics["loss"]), ("train_acc", self.train_metrics["acc"]),
                                ("test_loss", self.eval_metrics.get("loss", math.nan)),
                                ("test_acc", self.eval_metrics.get("acc", math.nan)), ("epoch_time", elapsed)):
                self.history[name].append(value)
            self("after_epoch")
        except CancelEpochException:
            self("after_cancel_epoch")

    def _chunk_stop(self, first: int, begin: int) -> int:
        """Where the chunk of a scanned epoch that begins at step ``first`` of the epoch
        ends: at the epoch's end, at the next step a callback (or ``steps_per_execution``)
        needs its events on, and soon enough for the callbacks that need them every so
        many seconds. ``begin``: the state's step at the epoch's batch 0, as callbacks count."""
        stop = self.steps_per_epoch
        periods = [cb.batch_every_steps(self) for cb in self.callbacks if hasattr(cb, "batch_every_steps")]
        for period in [*periods, self.steps_per_execution]:
            if period:
                stop = min(stop, ((begin + first) // period + 1) * period - begin)
        seconds = [s for cb in self.callbacks if hasattr(cb, "batch_every_seconds")
                   if (s := cb.batch_every_seconds(self)) is not None]
        if seconds and self._seconds_per_step is not None:
            stop = min(stop, first + max(1, int(min(seconds) / self._seconds_per_step)))
        elif seconds:
            stop = min(stop, first + 1)  # the first chunk measures how long a step takes
        return stop

    def _run_scanned(self, start: int) -> None:
        """This epoch from step ``start`` on, in chunks run on the device, the batch
        events between them (see the module docstring)."""
        order = self.train_data.epoch_indices(self.epoch)
        begin, first = self._epoch_begin - start, start
        try:
            while first < self.steps_per_epoch:
                stop = self._chunk_stop(first, begin)
                self.chunk, self.batch_index, self.batch = (first, stop), first, None
                try:
                    self("before_batch")
                    began = time.perf_counter()
                    self.state, sums = T.scan_steps(self.state, self.train_data, self.epoch, first, stop, order)
                    if first == 0 and stop == self.steps_per_epoch:
                        self.step_metrics.append(sums)  # the whole epoch: no need to wait for it here
                    else:
                        self.step_metrics.append({k: v[first:stop] for k, v in jax.device_get(sums).items()})
                        self._seconds_per_step = (time.perf_counter() - began) / (stop - first)
                    self.batch_index = stop - 1
                    self("after_batch")
                except CancelBatchException:
                    self("after_cancel_batch")
                first = stop
        finally:
            self.chunk = None

    def _run_batch(self) -> None:
        try:
            self("before_batch")
            self.state, metrics = T.train_step(self.state, self.batch)
            self.step_metrics.append(metrics)
            self("after_batch")
        except CancelBatchException:
            self("after_cancel_batch")


def fit(state: T.TrainState, train_data, eval_data=None, epochs: int = 1,
        callbacks: Sequence[Callback] = (), scan: bool | None = None, steps_per_execution: int | None = None,
        precision: str | None = None):
    """Train ``state`` for ``epochs`` over ``train_data`` (a loader from
    :func:`jaxdl.data.make_batches`), evaluating on ``eval_data`` after each epoch.

    Returns ``(state, history)`` with the course's per-epoch lists ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` and ``epoch_time`` (seconds). Targets the
    loss cannot take are refused before the first step. ``scan`` runs each epoch as a
    loop on the device (default: :func:`jaxdl.kernels.scan_epochs`, per platform and
    model), cut into chunks of at most ``steps_per_execution`` steps (Keras's name;
    giving it asks for scanned epochs) and wherever the callbacks need their batch
    events. ``precision`` (``"float32"``, ``"bfloat16"``, ``"float16"``;
    :mod:`jaxdl.precision`) changes how the steps compute; by default the state's own
    (:func:`jaxdl.train.create_train_state`). See :class:`Learner` and the module
    docstring for the events.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    if precision is not None:
        state = T.with_precision(state, precision)
    T.check_targets(state, train_data, "the training data")
    if eval_data is not None:
        T.check_targets(state, eval_data, "the evaluation data")
    if steps_per_execution is not None and scan is False:
        raise ValueError("steps_per_execution sets the steps of a scanned epoch's chunks; it cannot go "
                         "with scan=False")
    if steps_per_execution is not None and not hasattr(train_data, "gather"):
        raise ValueError(f"steps_per_execution needs batches that live on the device (DeviceBatches); "
                         f"{type(train_data).__name__} reads them on the host, one step at a time")
    if scan is None:
        scan = steps_per_execution is not None or (hasattr(train_data, "gather") and kernels.scan_epochs(
            T.train_step, state, next(iter(train_data.epoch(0))), len(train_data)))
    learner = Learner(state, train_data, eval_data, callbacks, scan=scan, steps_per_execution=steps_per_execution)
    learner.fit(epochs)
    return learner.state, learner.history
