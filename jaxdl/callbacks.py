"""The course's callbacks for :class:`jaxdl.learner.Learner` (fast.ai's miniai, Lesson 15 onwards).

Each listens to some of the Learner's events: :class:`ProgressBar` and
:class:`PrintEpoch` show progress, :class:`EarlyStopping` ends a fit that stopped
improving, :class:`CSVLogger`, :class:`JSONLogger` and :class:`TensorBoard` log each
epoch, :class:`Recorder` keeps the per-batch curves. :class:`jaxdl.checkpoint.Checkpoint`
saves and resumes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import time
import warnings
from typing import Any

import jax
import numpy as np

from jaxdl import train as T
from jaxdl.data.loader import Loader
from jaxdl.epoch import BatchEvents
from jaxdl.learner import Callback, CancelFitException, Learner
from jaxdl.support.files import atomic_path
from jaxdl.errors import ArgumentError

def _epoch_line(learner: Learner) -> str:
    h = learner.history
    parts = [f"Epoch: {learner.epoch}", f"train_loss: {h['train_loss'][-1]:.4f}"]
    if not math.isnan(h["train_acc"][-1]):
        parts.append(f"train_acc: {h['train_acc'][-1]:.2f}%")
    if not math.isnan(h["test_loss"][-1]):
        parts.append(f"test_loss: {h['test_loss'][-1]:.4f}")
    if not math.isnan(h["test_acc"][-1]):
        parts.append(f"test_acc: {h['test_acc'][-1]:.2f}%")
    parts.append(f"time: {h['epoch_time'][-1]:.1f}s")
    return " | ".join(parts)


class PrintEpoch(Callback):
    """Print the course's per-epoch line:
    ``Epoch: 0 | train_loss: 0.5904 | train_acc: 78.86% | test_loss: 0.4862 | test_acc: 82.84% | time: 9.1s``."""

    order = 10

    def __init__(self, print_fn=print, every: int = 1):
        self.print_fn, self.every = print_fn, every

    def after_epoch(self, learner: Learner) -> None:
        if learner.epoch % self.every == 0 or learner.epoch == learner.epochs - 1:
            self.print_fn(_epoch_line(learner))


def examples_in_steps(loader: Loader, first: int, stop: int) -> int:
    """Real examples in batches ``first`` to ``stop - 1`` of an epoch: the padded last
    batch of a loader that keeps it holds only the remainder (its mask says so, but
    reading the mask would make the host wait for the device)."""
    batch_size = loader.batch_size
    if loader.drop_last:
        return (stop - first) * batch_size
    return max(0, min(stop * batch_size, loader.num_examples) - first * batch_size)


class ProgressBar(Callback):
    """A tqdm bar over each epoch's batches showing loss, accuracy and images/s.

    The numbers are read from the device only every ``refresh_seconds``, so the bar
    does not make the host wait for each step; in a scanned epoch the device's loop
    stops for the bar about that often.
    """

    order = 5

    def __init__(self, refresh_seconds: float = 0.5, leave: bool = False, disable: bool | None = None):
        # disable=None: tqdm shows the bar on a terminal and stays silent in a log file
        self.refresh_seconds, self.leave, self.disable = refresh_seconds, leave, disable
        self.bar = None

    def batch_events(self, learner: Learner) -> BatchEvents:
        shown = self.bar is not None and not self.bar.disable  # tqdm hides it in a log file
        return BatchEvents(every_seconds=self.refresh_seconds if shown else None)

    def before_epoch(self, learner: Learner) -> None:
        from tqdm.auto import tqdm

        done = int(learner.state.step) - learner.epoch * learner.steps_per_epoch
        self.bar = tqdm(total=learner.steps_per_epoch, initial=done, desc=f"epoch {learner.epoch}",
                        unit="batch", leave=self.leave, dynamic_ncols=True, disable=self.disable)
        self.last_refresh, self.last_count = time.perf_counter(), done

    def after_batch(self, learner: Learner) -> None:
        now = time.perf_counter()
        if now - self.last_refresh >= self.refresh_seconds:
            done = learner.batch_index + 1
            latest = T.summarize(learner.step_metrics[-1])  # this step's (or chunk's): waits for it only
            rate = examples_in_steps(learner.train_data, self.last_count, done) / (now - self.last_refresh)
            postfix = {"loss": f"{latest['loss']:.4f}", "img/s": f"{rate:,.0f}"}
            if not math.isnan(latest["acc"]):
                postfix["acc"] = f"{latest['acc']:.1f}%"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(done - self.last_count)
            self.last_refresh, self.last_count = time.perf_counter(), done

    def after_epoch(self, learner: Learner) -> None:
        if self.bar is not None:
            self.bar.update(learner.steps_per_epoch - self.last_count)
            self.bar.close()
            self.bar = None

    after_fit = after_cancel_epoch = after_epoch


class EarlyStopping(Callback):
    """Stop when ``monitor`` (a history key) has not improved by ``min_delta`` for
    ``patience`` epochs. Runs last, so the epoch is logged and checkpointed first."""

    order = 50

    def __init__(self, monitor: str = "test_loss", patience: int = 3, mode: str = "min", min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ArgumentError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best, self.waited = None, 0

    def after_epoch(self, learner: Learner) -> None:
        if self.monitor not in learner.history:
            raise ArgumentError(f"EarlyStopping monitors {self.monitor!r}, not one of {sorted(learner.history)}")
        value = learner.history[self.monitor][-1]
        sign = 1 if self.mode == "min" else -1
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            raise CancelFitException(f"{self.monitor} has not improved for {self.patience} epochs")


def epoch_record(learner: Learner) -> dict[str, Any]:
    """This epoch's row for the loggers: epoch, step and the history's last values."""
    return history_row(learner.history, learner.epoch, int(learner.state.step), -1)


def history_row(history: dict[str, list], epoch: int, step: int, index: int | None = None) -> dict[str, Any]:
    """The loggers' row of ``epoch`` (at ``step``): its values in ``history`` (the
    ``index``-th, by default the epoch's own)."""
    index = epoch if index is None else index
    return {"epoch": epoch, "step": step, **{k: v[index] for k, v in history.items()}}


class DamagedLogWarning(UserWarning):
    """A log row that did not read back (a line torn by a crash or a full disk); it was
    dropped and the log rewritten."""


class _EpochLog(Callback):
    """A file with one row per epoch. On a fit's first epoch the rows of that epoch and
    later ones -- written by an earlier fit that stopped after them but before its next
    checkpoint, and now being trained again -- are dropped, so a resumed run's log holds
    each epoch once, as an uninterrupted run's does. The rows kept are rebuilt from the
    history a checkpoint restored, where it holds them: a line torn by a crash is dropped
    with a :class:`DamagedLogWarning` and written again whole."""

    order = 30

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._first_epoch = True

    def before_fit(self, learner: Learner) -> None:
        self._first_epoch = True

    def before_epoch(self, learner: Learner) -> None:
        if self._first_epoch and self.path.exists():
            rows, damaged = self.read_rows()
            restored = learner.history if learner.epoch and learner.history and all(
                len(values) >= learner.epoch for values in learner.history.values()) else None
            if damaged:
                warnings.warn(f"{self.path}: {damaged} did not read back (torn by a crash?); dropped, and the log "
                              + ("rewritten from the restored history" if restored else "rewritten without it"),
                              DamagedLogWarning, stacklevel=2)
            if restored is not None:
                rows = [history_row(restored, epoch, (epoch + 1) * learner.steps_per_epoch)
                        for epoch in range(learner.epoch)]
            else:
                rows = [row for row in rows if (epoch := _epoch_of(row)) is not None and epoch < learner.epoch]
            with atomic_path(self.path) as tmp:
                self.write_rows(tmp, rows, "w")
        self._first_epoch = False

    def after_epoch(self, learner: Learner) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write_rows(self.path, [epoch_record(learner)], "a")

    def read_rows(self) -> tuple[list[dict], str | None]:
        """The rows that read back, and which did not (``None``: all did)."""
        raise NotImplementedError

    def write_rows(self, path: pathlib.Path, rows: list[dict], mode: str) -> None:
        raise NotImplementedError


def _epoch_of(row: dict) -> int | None:
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return None


class CSVLogger(_EpochLog):
    """One row per epoch in a CSV file (header written once)."""

    def read_rows(self) -> tuple[list[dict], str | None]:
        with open(self.path, newline="", errors="replace") as f:
            rows = list(csv.DictReader(f))
        whole = [row for row in rows if None not in row and None not in row.values()]  # no field too many or few
        torn = len(rows) - len(whole)
        return whole, (f"{torn} row{'s' if torn > 1 else ''}" if torn else None)

    def write_rows(self, path: pathlib.Path, rows: list[dict], mode: str) -> None:
        if not rows:
            path.touch()
            return
        new = mode == "w" or not path.exists() or path.stat().st_size == 0
        with open(path, mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)


class JSONLogger(_EpochLog):
    """One JSON object per epoch in a JSON-lines file (big_vision style)."""

    def read_rows(self) -> tuple[list[dict], str | None]:
        rows, torn = [], []
        for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = "torn"
            if isinstance(row, dict):
                rows.append(row)
            elif row is not None:
                torn.append(str(number))
        return rows, (f"line{'s' if len(torn) > 1 else ''} {', '.join(torn)}" if torn else None)

    def write_rows(self, path: pathlib.Path, rows: list[dict], mode: str) -> None:
        with open(path, mode) as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


class TensorBoard(Callback):
    """Write the per-epoch history to TensorBoard event files (tensorboardX)."""

    order = 30

    def __init__(self, logdir: str | os.PathLike):
        self.logdir = str(logdir)
        self.writer = None

    def before_fit(self, learner: Learner) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(self.logdir)

    def after_epoch(self, learner: Learner) -> None:
        step = int(learner.state.step)
        for name, values in learner.history.items():
            if not math.isnan(values[-1]):
                self.writer.add_scalar(name.replace("_", "/", 1), values[-1], step)
        self.writer.flush()

    def after_fit(self, learner: Learner) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Recorder(Callback):
    """Keep the course's per-batch curves on the host: ``losses`` and ``accs`` of each
    training step ``steps`` (read from the device once per epoch, not per batch).

    With ``path``, each epoch's values are also appended to that JSON-lines file, and a
    resumed run (``Checkpoint(resume=True)``) reads back the steps it does not redo, so
    its curves cover the whole training, not only what ran after the resume.
    """

    order = 25

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path is None else pathlib.Path(path)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.accs: list[float] = []

    def after_epoch(self, learner: Learner) -> None:
        new = []
        for sums in jax.device_get(learner.step_metrics):
            # one batch's sums, or a scanned epoch's sums for every step
            for i in range(np.size(sums["count"])):
                summary = T.summarize({k: np.ravel(v)[i] for k, v in sums.items()})
                new.append((summary["loss"], summary["acc"]))
        first = int(learner.state.step) - len(new)
        rewrite = not self.steps and self.path is not None
        if rewrite:  # this fit's first epoch: keep what an earlier fit recorded before it
            self._read_earlier(first)
        for step, (loss, acc) in enumerate(new, first):
            self.steps.append(step)
            self.losses.append(loss)
            self.accs.append(acc)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            rows = range(len(self.steps)) if rewrite else range(len(self.steps) - len(new), len(self.steps))
            with open(self.path, "w" if rewrite else "a") as f:
                f.writelines(json.dumps({"step": self.steps[i], "loss": self.losses[i], "acc": self.accs[i]}) + "\n"
                             for i in rows)

    def _read_earlier(self, before_step: int) -> None:
        if not self.path.exists():
            return
        for line in self.path.read_text().splitlines():
            row = json.loads(line)
            if row["step"] < before_step:  # the steps from before_step on are being redone
                self.steps.append(row["step"])
                self.losses.append(row["loss"])
                self.accs.append(row["acc"])
