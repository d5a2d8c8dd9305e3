"""Finding a learning rate: one short run with an exponentially growing rate.

One step beyond Lesson 15's Learner (fast.ai's ``lr_find``, from Leslie Smith's
"Cyclical Learning Rates"): train from the current parameters while the learning rate
grows from ``start`` to ``end`` by the same factor every step, record each step's
loss, and stop once the loss diverges. The loss first barely moves (the rate is too
small), then falls, then shoots up; a good rate lies where it falls fastest, about a
tenth of the rate at the lowest loss. :class:`LRFinder` is the callback that does the
recording and the stopping; :func:`lr_find` runs it on a copy of a training state and
leaves the state itself as it was.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import train as T
from jaxdl.epoch import BatchEvents
from jaxdl.learner import Callback, CancelFitException, Learner, NonFiniteLossError, fit
from jaxdl.errors import ArgumentError


class LRFinder(Callback):
    """Record ``(rate, loss)`` after every step and stop the fit when the loss is not
    finite, exceeds ``divergence`` times the lowest loss so far, or after ``num_steps``
    steps. ``rate(i)`` is the learning rate of the fit's ``i``-th step."""


    def __init__(self, rate, num_steps: int, divergence: float = 4.0):
        self.rate, self.num_steps, self.divergence = rate, num_steps, divergence
        self.rates: list[float] = []
        self.losses: list[float] = []

    def batch_events(self, learner: Learner) -> BatchEvents:
        return BatchEvents(every_steps=1)  # it reads each step's loss to stop at the first one that diverges

    def before_fit(self, learner: Learner) -> None:
        self.rates, self.losses, self.lowest = [], [], math.inf

    def after_batch(self, learner: Learner) -> None:
        sums = jax.device_get(learner.step_metrics[-1])
        loss = float(sums["loss_sum"]) / float(sums["count"])
        self.rates.append(float(self.rate(len(self.rates))))
        self.losses.append(loss)
        if not math.isfinite(loss) or loss > self.divergence * self.lowest or len(self.losses) >= self.num_steps:
            raise CancelFitException
        self.lowest = min(self.lowest, loss)


@dataclasses.dataclass(frozen=True)
class LRFindResult:
    """The rates tried and each one's training loss, in step order."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]

    def smoothed(self, beta: float = 0.9) -> np.ndarray:
        """The losses as a debiased exponential moving average (one step's loss is noisy)."""
        average, out = 0.0, []
        for i, loss in enumerate(self.losses, 1):
            average = beta * average + (1 - beta) * loss
            out.append(average / (1 - beta**i))
        return np.asarray(out)

    @property
    def suggestion(self) -> float:
        """A tenth of the rate at the lowest smoothed loss: on the falling part of the
        curve, safely before it turns up."""
        smoothed = self.smoothed()
        if not np.isfinite(smoothed).any():
            raise NonFiniteLossError(
                f"every one of the {len(self.losses)} losses of the learning-rate finder was NaN or infinite, so "
                "there is no rate to suggest; check the data for NaN or infinite values, or start lower")
        finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
        return float(self.rates[int(np.argmin(finite))]) / 10


def lr_find(state: T.TrainState, train_data, optimizer: str = "sgd", *, start: float = 1e-7,
            end: float = 10.0, num_steps: int = 100, divergence: float = 4.0,
            **optimizer_kwargs) -> LRFindResult:
    """Train a copy of ``state`` for at most ``num_steps`` steps of ``train_data`` with
    ``optimizer`` (a :func:`jaxdl.train.make_optimizer` name, with ``optimizer_kwargs``
    such as ``momentum``) at a rate growing from ``start`` to ``end``; returns the rates
    and losses. ``state`` is not changed: train it afterwards with the rate you pick
    (:attr:`LRFindResult.suggestion`, or a look at :func:`plot_lr_find`)."""
    if not 0 < start < end:
        raise ArgumentError(f"lr_find needs 0 < start < end, got start={start!r}, end={end!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ArgumentError(f"num_steps must be a whole number >= 2, got {num_steps!r}")
    growth = (end / start) ** (1 / (num_steps - 1))

    def rate(step):  # optax calls it with the count of updates so far: 0 for the first step
        return start * growth ** step

    tx = T.make_optimizer(optimizer, rate, **optimizer_kwargs)
    # copies: the training step donates its state's buffers, and these must stay the caller's
    params, batch_stats = jax.tree.map(jnp.copy, (state.params, state.batch_stats))
    trial = state.replace(tx=tx, params=params, batch_stats=batch_stats, opt_state=tx.init(params),
                          step=jnp.zeros_like(state.step), rng=jnp.copy(state.rng))
    finder = LRFinder(rate, num_steps, divergence)
    fit(trial, train_data, epochs=-(-num_steps // len(train_data)), callbacks=[finder], scan=False)
    result = LRFindResult(tuple(finder.rates), tuple(finder.losses))
    result.suggestion  # noqa: B018 -- raises now, not in a later plot, when no loss was finite
    return result


def plot_lr_find(result: LRFindResult, path: str | os.PathLike | None = None, title: str = "Learning-rate finder"):
    """Loss against learning rate on a log scale, smoothed, with the suggestion marked."""
    import matplotlib.pyplot as plt

    from jaxdl.plots import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result.rates, result.losses, alpha=0.3, label="loss of each step")
    ax.plot(result.rates, result.smoothed(), label="smoothed")
    ax.axvline(result.suggestion, color="tab:red", linestyle="--", label=f"suggestion {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    smooth = [loss for loss in result.smoothed() if math.isfinite(loss)]
    lowest = min([loss for loss in result.losses if math.isfinite(loss)] + smooth, default=None)
    if smooth:  # the divergent tail would squash the interesting part
        ax.set_ylim(lowest * 0.9, min(max(smooth), 4 * smooth[0]) * 1.1)
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
