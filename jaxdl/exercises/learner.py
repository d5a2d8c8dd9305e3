"""Checkers of notebook 08 (the Learner and its callbacks, lessons 16-17)."""

from __future__ import annotations

import contextlib
import io
import types

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, call, exercise, first_line


@exercise("08.1", "ProgressCB: a callback printing the training loss every 10 batches")
def progress_callback(answer) -> str:
    callback = call(answer, what="ProgressCB()") if isinstance(answer, type) else answer
    if not callable(getattr(callback, "after_batch", None)):
        raise Wrong("the callback has no after_batch(self, learn) method: that is where a batch's loss is known")
    printed = io.StringIO()
    learn = types.SimpleNamespace(epoch=0, training=True, iter=0, loss=0.0)
    with contextlib.redirect_stdout(printed):
        for training, batches in ((True, 35), (False, 12)):
            learn.training = training
            for learn.iter in range(batches):
                learn.loss = np.float32(1000 + learn.iter + (0 if training else 500))
                call(callback.after_batch, learn, what="after_batch(learn)")
    lines = [line for line in printed.getvalue().splitlines() if line.strip()]
    if any(any(str(1500 + i) in line for i in range(12)) for line in lines):
        raise Wrong("it printed during evaluation too: print only while learn.training")
    if len(lines) != 4:
        raise Wrong(f"over 35 training batches it printed {len(lines)} lines where every 10th batch (learn.iter 0, "
                    "10, 20, 30) makes 4")
    if not all(str(1000 + i) in line for i, line in zip((0, 10, 20, 30), lines)):
        raise Wrong("the lines do not show each batch's loss (learn.loss) at learn.iter 0, 10, 20 and 30")
    return "4 lines over 35 training batches, each with its loss, and none while evaluating"


class StopAfterOneBatch:
    """Ends a fit after its first batch, as the notebook's SingleBatchCB does."""

    order = 10_000

    def after_batch(self, learn):
        from jaxdl.learner import CancelFitException

        raise CancelFitException()


@exercise("08.2", "a Learner whose fit(epochs, lr=None, keep_params=False) takes a rate and can go on from its params")
def rate_learner(answer) -> str:
    for attribute in ("fit", "opt_func", "cbs", "lr"):
        if not hasattr(answer, attribute):
            raise Wrong(f"give the learner itself (an instance of your Learner subclass); it has no {attribute!r}")
    rates, own_opt, own_cbs = [], answer.opt_func, answer.cbs

    def recording(rate):
        rates.append(rate)
        return own_opt(rate)

    answer.opt_func, answer.cbs = recording, [StopAfterOneBatch()]
    try:
        try:
            answer.fit(1, lr=0.0123)
        except TypeError as err:
            raise Wrong(f"fit(1, lr=0.0123) raised {first_line(err)}: give fit an lr argument") from err
        if rates != [0.0123]:
            raise Wrong(f"fit(1, lr=0.0123) built its optimizer with rate {rates[-1] if rates else 'none'}: pass lr "
                        "to self.opt_func")
        moved = jax.tree.map(lambda p: p + 0.5, answer.params)  # parameters no initialisation gives
        answer.params = moved
        try:
            answer.fit(1, lr=0.0, keep_params=True)
        except TypeError as err:
            raise Wrong(f"fit(1, lr=0.0, keep_params=True) raised {first_line(err)}: give fit a keep_params "
                        "argument") from err
        same = all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(answer.params), jax.tree.leaves(moved)))
        if not same:
            raise Wrong("fit(..., keep_params=True) started again from fresh parameters: initialise only when "
                        "keep_params is False")
        rates.clear()
        answer.fit(1)
        if rates != [answer.lr]:
            raise Wrong(f"fit(1) without lr used rate {rates[-1] if rates else 'none'} where the learner's own "
                        f"{answer.lr} was meant")
    finally:
        answer.opt_func, answer.cbs = own_opt, own_cbs
    return "fit uses the rate it is given (else the learner's), and keep_params=True goes on from the current weights"


@exercise("08.3", "steepest(result): the rate where the lr_find's smoothed loss falls fastest",
          function="def steepest(result): ...")
def steepest(answer) -> str:
    from jaxdl.lr_find import LRFindResult

    rng = np.random.default_rng(47)
    for centre in (3e-3, 0.2):
        rates = np.geomspace(1e-6, 10, 160)
        position = np.log10(rates / centre)
        losses = 2.3 - 2.0 / (1 + np.exp(-3 * position)) + 0.03 * rng.normal(size=rates.size)
        losses[position > 1.2] += np.exp(4 * (position[position > 1.2] - 1.2)) - 1  # divergence after the valley
        losses[20] -= 0.6  # one noisy step, far from the real descent
        result = LRFindResult(tuple(rates.tolist()), tuple(losses.tolist()))
        smoothed = result.smoothed()
        slope = np.gradient(smoothed, np.log(rates))
        want = rates[int(np.argmin(slope[5:])) + 5]
        got = call(answer, result, what="steepest(result)")
        try:
            got = float(got)
        except (TypeError, ValueError) as err:
            raise Wrong(f"steepest(result) gave a {type(got).__name__} where a rate (a number) was asked") from err
        if np.isclose(got, result.suggestion, rtol=1e-6):
            raise Wrong("that is lr_find's own suggestion (a tenth of the rate at the lowest loss); the rate where "
                        "the loss falls fastest was asked")
        if np.isclose(got, rates[int(np.argmin(smoothed))], rtol=1e-6):
            raise Wrong("that is the rate at the lowest loss (the valley), not where the loss falls fastest")
        if rates[18] <= got <= rates[22]:
            raise Wrong("a single step's loss is noisy: find the steepest fall of the smoothed losses "
                        "(result.smoothed())")
        if not want / 2 <= got <= want * 2:
            raise Wrong(f"{got:.3g} is not where the smoothed loss falls fastest on a curve you had not seen: "
                        "compare each loss with the one before, against the log of the rate")
    return "within a factor of 2 of the steepest fall of the smoothed loss, on two curves you had not seen"
