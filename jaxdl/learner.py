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
``learner.epoch``, ``learner.batch``, ``learner.sums`` (this epoch's metric sums, a
:class:`~jaxdl.epoch.EpochSums`: ``step_metrics`` one entry per batch event,
``epoch_sums`` those sums added up on the host), ``learner.train_metrics`` /
``eval_metrics`` (after an epoch) and ``learner.history``. ``after_fit`` runs however the fit ends; ``learner.error`` is then
the exception that ended it, or ``None``.

Scanned epochs. Where an epoch runs on the device as a loop over its steps
(``scan=True``; by default on a GPU or TPU), the batch events come between *chunks*
of steps, each one dispatch: ``before_batch`` before a chunk, ``after_batch`` after
it, with ``learner.batch_index`` its first step, then its last, ``learner.chunk`` its
``(first, stop)`` steps of the epoch, ``learner.batch`` ``None`` (the batches never leave the
device) and ``learner.step_metrics[-1]`` the sums of each of its steps (vectors). The
chunks are cut where the callbacks ask for their events (:meth:`Callback.batch_events`;
a :class:`~jaxdl.checkpoint.Checkpoint` saving every N steps gets its events at steps N,
2N, ...; a progress bar every refresh), and every ``steps_per_execution`` steps if given
(:class:`~jaxdl.epoch.ChunkPlan`). A callback that must see every single batch -- by
default one that defines ``before_batch``, since it may change or cancel a step --
makes the epochs run per batch, with a one-line notice. Every chunk runs the same
compiled program, so where the cuts fall changes nothing in what is computed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from jaxdl import fastpath
from jaxdl import train as T
from jaxdl.data.loader import Loader, check_loader, check_on_device
from jaxdl.epoch import BatchEvents, ChunkPlan, EpochSums
from jaxdl.errors import ArgumentError, ArgumentTypeError, JaxdlError

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_batch", "after_epoch", "after_fit",
          "after_cancel_batch", "after_cancel_epoch", "after_cancel_fit")
HISTORY = ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")


class CancelBatchException(Exception):
    """Skip the rest of this batch (its step is not taken if raised in ``before_batch``)."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch."""


class CancelFitException(Exception):
    """Stop training now; ``after_fit`` still runs."""


class NonFiniteLossError(JaxdlError, FloatingPointError):
    """The training loss (or the parameters) became NaN or infinite; the fit stops
    rather than train on, and no checkpoint is saved from that point."""


_log = logging.getLogger(__name__)


class Callback:
    """Base class: define methods named after the events you want. Lower ``order`` runs first."""

    order = 0

    def batch_events(self, learner: Learner) -> BatchEvents:
        """Where this callback needs its batch events in a scanned epoch (see the module
        docstring). By default around every step if it defines ``before_batch``, which
        may change or cancel a step, and anywhere otherwise."""
        return BatchEvents(every_steps=1) if hasattr(self, "before_batch") else BatchEvents()


class Learner:
    """Runs the loop of :func:`fit` and calls the callbacks' events in order."""

    def __init__(self, state: T.TrainState, train_data: Loader, eval_data: Loader | None = None,
                 callbacks: Sequence[Callback] = (), scan: bool = False, steps_per_execution: int | None = None):
        self.state, self.train_data, self.eval_data = state, train_data, eval_data
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.history: dict[str, list[float]] = {name: [] for name in HISTORY}
        self.epoch = self.epochs = self.batch_index = 0
        self.batch: dict | None = None
        self.chunk: tuple[int, int] | None = None  # a scanned epoch's (first, stop) steps of this batch event
        self.sums, self.carried_sums = EpochSums(), None  # carried: this epoch's sums from before a resume
        self.train_metrics: dict[str, float] = {}
        self.eval_metrics: dict[str, float] = {}
        self.error: BaseException | None = None
        self.plan = _chunk_plan(self, steps_per_execution) if scan else None  # None: epochs run per batch

    def __call__(self, event: str) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is not None:
                method(self)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_data)

    step_metrics = property(lambda self: self.sums.steps, doc="This epoch's sums so far, one entry a batch event.")
    epoch_sums = property(lambda self: self.sums.total, doc="This epoch's sums so far, added up on the host.")

    def fit(self, epochs: int) -> None:
        self.epochs, self.error = epochs, None
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
            self.sums = EpochSums(self.carried_sums if start else None, int(self.state.step))
            self("before_epoch")
            began = time.perf_counter()
            if self.plan is None:
                for self.batch_index, self.batch in enumerate(self.train_data.epoch(self.epoch, start=start), start):
                    self._run_batch(lambda state: T.train_step(state, self.batch), self.batch_index)
            else:
                self._run_chunks(start)
            self.train_metrics = T.summarize(self.epoch_sums)
            _check_finite(self.train_metrics["loss"], self.epoch, self.sums.first_nonfinite_step)
            elapsed = time.perf_counter() - began
            self.eval_metrics = T.evaluate(self.state, self.eval_data) if self.eval_data is not None else {}
            for name, value in zip(HISTORY, (self.train_metrics["loss"], self.train_metrics["acc"],
                                             self.eval_metrics.get("loss", math.nan),
                                             self.eval_metrics.get("acc", math.nan), elapsed)):
                self.history[name].append(value)
            self("after_epoch")
        except CancelEpochException:
            self("after_cancel_epoch")

    def _run_chunks(self, start: int) -> None:
        """This epoch from step ``start`` on, in chunks run on the device, the batch
        events between them (see the module docstring)."""
        order = self.train_data.epoch_indices(self.epoch)
        begin, first = self.sums.first_step - start, start
        try:
            while first < self.steps_per_epoch:
                stop = self.plan.stop(first, begin, [cb.batch_events(self) for cb in self.callbacks])
                self.chunk, self.batch_index, self.batch = (first, stop), first, None
                self._run_batch(lambda state: self.plan.run(state, self.train_data, self.epoch, first, stop, order),
                                stop - 1)
                first = stop
        finally:
            self.chunk = None

    def _run_batch(self, step, last_index: int) -> None:
        """One batch event: ``step`` (a batch's step, or a chunk's) between ``before_batch``
        and ``after_batch``; ``batch_index`` is then ``last_index``, the last step taken."""
        try:
            self("before_batch")
            self.state, sums = step(self.state)
            self.sums.add(sums)
            self.batch_index = last_index
            self("after_batch")
        except CancelBatchException:
            self("after_cancel_batch")


def _chunk_plan(learner: Learner, steps_per_execution: int | None) -> ChunkPlan | None:
    """How ``learner`` cuts its scanned epochs; ``None`` (per batch, with a notice) where
    a callback needs every batch."""
    per_batch = [type(cb).__name__ for cb in learner.callbacks if cb.batch_events(learner).every_batch]
    if per_batch:
        _log.warning("jaxdl: epochs run per batch, not scanned on the device, because %s %s every batch",
                     " and ".join(per_batch), "needs" if len(per_batch) == 1 else "need")
        return None
    return ChunkPlan(learner.steps_per_epoch, steps_per_execution)


def _check_finite(loss: float, epoch: int, first_nonfinite_step: int | None) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"training loss became {loss} in epoch {epoch}"
                                 + (f", first at step {first_nonfinite_step}" if first_nonfinite_step is not None
                                    else "") + "; lower the learning rate or check the data")


def fit(state: T.TrainState, train_data: Loader, eval_data: Loader | None = None, epochs: int = 1,
        callbacks: Sequence[Callback] = (), scan: bool | None = None, steps_per_execution: int | None = None,
        precision: str | None = None):
    """Train ``state`` for ``epochs`` over ``train_data`` (a loader from
    :func:`jaxdl.data.make_batches`), evaluating on ``eval_data`` after each epoch.

    Returns ``(state, history)`` with the course's per-epoch lists ``train_loss``,
    ``train_acc``, ``test_loss``, ``test_acc`` and ``epoch_time`` (seconds). Targets the
    loss cannot take are refused before the first step. ``scan`` runs each epoch as a
    loop on the device (default: :func:`jaxdl.fastpath.scan_epochs`, per platform and
    model; it needs a loader whose data lives there), cut into chunks of at most
    ``steps_per_execution`` steps (Keras's name; giving it asks for scanned epochs) and
    wherever the callbacks need their batch events. ``precision`` (``"float32"``,
    ``"bfloat16"``, ``"float16"``; :mod:`jaxdl.precision`) changes how the steps
    compute; by default the state's own (:func:`jaxdl.train.create_train_state`). See
    :class:`Learner` and the module docstring for the events.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ArgumentError(f"epochs must be a whole number >= 0, got {epochs!r}")
    if steps_per_execution is not None and (isinstance(steps_per_execution, bool)
                                            or not isinstance(steps_per_execution, int) or steps_per_execution < 1):
        raise ArgumentError(f"steps_per_execution must be a whole number >= 1, got {steps_per_execution!r}")
    check_loader(train_data, "train_data")
    if eval_data is not None:
        check_loader(eval_data, "eval_data")
    bad = [type(cb).__name__ for cb in callbacks if not isinstance(cb, Callback)]
    if bad:
        raise ArgumentTypeError(f"callbacks must be jaxdl.learner.Callback objects; got {', '.join(bad)}")
    if precision is not None:
        state = T.with_precision(state, precision)
    T.check_targets(state, train_data, "the training data")
    if eval_data is not None:
        T.check_targets(state, eval_data, "the evaluation data")
    if steps_per_execution is not None and scan is False:
        raise ArgumentError("steps_per_execution sets the steps of a scanned epoch's chunks; it cannot go "
                         "with scan=False")
    if scan or steps_per_execution is not None:
        check_on_device(train_data, "steps_per_execution" if scan is None else "scan=True")
    if scan is None:
        scan = steps_per_execution is not None or (train_data.on_device and fastpath.scan_epochs(
            T.train_step, state, next(iter(train_data.epoch(0))), len(train_data)))
    learner = Learner(state, train_data, eval_data, callbacks, scan=scan, steps_per_execution=steps_per_execution)
    learner.fit(epochs)
    return learner.state, learner.history
