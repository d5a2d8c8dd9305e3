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
``learner.epoch``, ``learner.batch``, ``learner.step_metrics`` (this epoch's per-batch
metric sums, still on the device), ``learner.epoch_sums`` (those sums added up on the
host), ``learner.train_metrics`` / ``eval_metrics`` (after an epoch) and
``learner.history``. ``after_fit`` runs however the fit ends; ``learner.error`` is then
the exception that ended it, or ``None``.
"""

from __future__ import annotations

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


class Callback:
    """Base class: define methods named after the events you want. Lower ``order`` runs first."""

    order = 0


class NonFiniteLossError(JaxdlError, FloatingPointError):
    """The training loss (or the parameters) became NaN or infinite; the fit stops
    rather than train on, and no checkpoint is saved from that point."""


class Learner:
    """Runs the loop of :func:`fit` and calls the callbacks' events in order."""

    def __init__(self, state: T.TrainState, train_data, eval_data=None,
                 callbacks: Sequence[Callback] = (), scan: bool = False):
        self.state, self.train_data, self.eval_data = state, train_data, eval_data
        self.callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "order", 0))
        self.scan = scan and hasattr(train_data, "gather")
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
            self("before_fit")
            for self.epoch in range(int(self.state.step) // self.steps_per_epoch, epochs):
                self._run_epoch()
        except CancelFitException:
            self("after_cancel_fit")
        except BaseException as err:
            self.error = err
            raise
        finally:
            self("after_fit")

    def _run_epoch(self) -> None:
        try:
            self.step_metrics = []
            start = int(self.state.step) - self.epoch * self.steps_per_epoch
            if start == 0:
                self.carried_sums = None
            self._sums, self._summed, self._steps_summed = self.carried_sums, 0, 0
            self._epoch_begin, self.first_nonfinite_step = int(self.state.step), None
            self("before_epoch")
            began = time.perf_counter()
            if self.scan and start == 0:
                self.state, per_step = T.scan_epoch(self.state, self.train_data, self.epoch)
                self.step_metrics = [per_step]
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

    def _run_batch(self) -> None:
        try:
            self("before_batch")
            self.state, metrics = T.train_step(self.state, self.batch)
            self.step_metrics.append(metrics)
            self("after_batch")
        except CancelBatchException:
            self("after_cancel_batch")


def fit(state: T.TrainState, train_data, eval_data=None, epochs: int = 1,
        callbacks: Sequence[Callback] = (), scan: bool | None = None):
    """Train ``state`` for ``epochs`` over ``train_data`` (a loader from
    :func:`jaxdl.data.make_batches`), evaluating on ``eval_data`` after each epoch.

    Returns ``(state, history)`` with the course's per-epoch lists ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` and ``epoch_time`` (seconds). Targets the
    loss cannot take are refused before the first step. ``scan`` runs each epoch as one
    ``lax.scan`` on the device (default: :func:`jaxdl.kernels.scan_epochs`, per platform
    and model). See :class:`Learner` for the events.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a whole number >= 0, got {epochs!r}")
    T.check_targets(state, train_data, "the training data")
    if eval_data is not None:
        T.check_targets(state, eval_data, "the evaluation data")
    if scan is None:
        scan = hasattr(train_data, "gather") and kernels.scan_epochs(
            T.train_step, state, next(iter(train_data.epoch(0))), len(train_data))
    learner = Learner(state, train_data, eval_data, callbacks, scan=scan)
    learner.fit(epochs)
    return learner.state, learner.history
