"""What the Learner keeps of an epoch: its metric sums, and where a scanned epoch's
chunks end.

:class:`EpochSums` -- each batch event's metric sums as the device gave them, and their
running total on the host, added in step order in float64 onto the sums carried over a
resume, so a resumed epoch's metrics agree to the last digit with an uninterrupted one's.

:class:`ChunkPlan` -- a scanned epoch runs on the device as a loop over its steps, cut
into *chunks* (one dispatch each) wherever a callback asks for its batch events
(:class:`BatchEvents`) or ``steps_per_execution`` steps have run. Every chunk runs the
same compiled program, so where the cuts fall changes nothing in what is computed.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import train as T
from jaxdl.data.loader import DeviceLoader


@dataclasses.dataclass(frozen=True)
class BatchEvents:
    """Where a callback needs its batch events in a scanned epoch
    (:meth:`jaxdl.learner.Callback.batch_events`).

    ``every_steps``: on the steps that are multiples of it (a checkpoint every N steps);
    ``1`` means around every single step, and the epochs then run per batch, each batch
    in ``learner.batch``. ``every_seconds``: at least this often (a progress bar).
    Neither: once an epoch is enough.
    """

    every_steps: int | None = None
    every_seconds: float | None = None

    @property
    def every_batch(self) -> bool:
        return self.every_steps == 1


class EpochSums:
    """One epoch's metric sums: ``steps`` holds each batch event's sums (one batch's
    scalars, or a chunk's per-step vectors), ``total`` their running total on the host.

    ``carried`` are the sums of the epoch's steps before a resume; ``first_step`` the
    training step the entries of ``steps`` start after.
    """

    def __init__(self, carried: dict[str, float] | None = None, first_step: int = 0):
        self.steps: list[T.Metrics] = []
        self.first_step = first_step
        self.first_nonfinite_step: int | None = None  # the epoch's first step with a non-finite loss
        self._total, self._added, self._steps_added = carried, 0, 0

    def add(self, sums: T.Metrics) -> None:
        self.steps.append(sums)

    @property
    def total(self) -> dict[str, float] | None:
        """The sums so far. The entries not yet added come from the device in one
        transfer and are added one step at a time, in order, in float64."""
        new = self.steps[self._added:]
        if not new:
            return self._total
        stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.concatenate([jnp.atleast_1d(x) for x in xs]), *new))
        total = dict(self._total or {})
        for name, values in stacked.items():
            running = np.cumsum(np.concatenate([[total.get(name, 0.0)], np.asarray(values, np.float64)]))
            total[name] = float(running[-1])
            if name == "loss_sum" and self.first_nonfinite_step is None and not np.isfinite(running[-1]):
                first = int(np.flatnonzero(~np.isfinite(running))[0])  # running[0] is finite
                self.first_nonfinite_step = self.first_step + self._steps_added + first
        self._steps_added += len(next(iter(stacked.values())))
        self._total, self._added = total, len(self.steps)
        return self._total


class ChunkPlan:
    """Cuts a scanned epoch of ``steps_per_epoch`` steps into chunks and runs them."""

    def __init__(self, steps_per_epoch: int, steps_per_execution: int | None = None):
        self.steps_per_epoch, self.steps_per_execution = steps_per_epoch, steps_per_execution
        self.seconds_per_step: float | None = None  # of the latest chunk, to size the next

    def stop(self, first: int, begin: int, wanted: list[BatchEvents]) -> int:
        """Where the chunk that begins at step ``first`` of the epoch ends: at the epoch's
        end, at the next step that is a multiple of a callback's ``every_steps`` (or of
        ``steps_per_execution``), and soon enough for those that want their events every
        so many seconds. ``begin``: the training step of the epoch's batch 0, as
        callbacks count steps."""
        stop = self.steps_per_epoch
        for period in [events.every_steps for events in wanted] + [self.steps_per_execution]:
            if period:
                stop = min(stop, ((begin + first) // period + 1) * period - begin)
        seconds = [events.every_seconds for events in wanted if events.every_seconds is not None]
        if seconds and self.seconds_per_step is not None:
            stop = min(stop, first + max(1, int(min(seconds) / self.seconds_per_step)))
        elif seconds:
            stop = min(stop, first + 1)  # the first chunk measures how long a step takes
        return stop

    def run(self, state: T.TrainState, loader: DeviceLoader, epoch: int, first: int, stop: int,
            order) -> tuple[T.TrainState, T.Metrics]:
        """Steps ``first`` to ``stop - 1`` of the epoch as one dispatch; returns the state
        and each of those steps' sums."""
        began = time.perf_counter()
        state, sums = T.scan_steps(state, loader, epoch, first, stop, order)
        if first == 0 and stop == self.steps_per_epoch:
            return state, sums  # the whole epoch: no need to wait for it here
        sums = {name: value[first:stop] for name, value in jax.device_get(sums).items()}
        self.seconds_per_step = (time.perf_counter() - began) / (stop - first)
        return state, sums
