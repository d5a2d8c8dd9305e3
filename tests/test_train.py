"""The training engine: the step's arithmetic, masks, determinism, the Learner's events,
NaN handling, checkpoints and resume, and data parallelism on 8 simulated devices and
across two processes."""

import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
import pytest

from jaxdl import callbacks as C
from jaxdl import checkpoint as K
from jaxdl import losses as L
from jaxdl import metrics as M
from jaxdl import plots
from jaxdl import train as T
from jaxdl import data as D
from jaxdl.data import DeviceBatches, make_batches
from jaxdl.epoch import BatchEvents
from jaxdl.learner import (EVENTS, Callback, CancelBatchException, CancelEpochException, CancelFitException,
                           NonFiniteLossError, fit)
from jaxdl.models import BlobModel, FashionCNN, LinearRegressionModelV2, SimpleCNN

TESTS = pathlib.Path(__file__).resolve().parent


def tiny_problem(n=40, key=0):
    x = jax.random.normal(jax.random.key(key), (n, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(jnp.int32) + 2 * (x[:, 0] > 0)
    return x, y


def blob_state(lr=0.1, seed=0):
    return T.create_train_state(BlobModel(2, 4), jax.random.key(seed), jnp.zeros((1, 2)),
                                T.make_optimizer("sgd", lr))


# --- the step --------------------------------------------------------------------------------


def test_step_equals_a_hand_computed_sgd_update():
    state = T.create_train_state(LinearRegressionModelV2(), jax.random.key(0), jnp.zeros((1, 1)),
                                 optax.sgd(0.1), loss="mse")
    w, b = float(state.params["Dense_0"]["kernel"][0, 0]), float(state.params["Dense_0"]["bias"][0])
    x = jnp.array([[1.0], [2.0], [3.0]])
    t = jnp.array([[2.0], [4.0], [7.0]])
    new, metrics = T.train_step(state, {"x": x, "y": t, "mask": jnp.ones(3)})
    residual = (w * np.array([1, 2, 3]) + b) - np.array([2, 4, 7])
    grad_w, grad_b = np.mean(2 * residual * np.array([1, 2, 3])), np.mean(2 * residual)
    np.testing.assert_allclose(new.params["Dense_0"]["kernel"][0, 0], w - 0.1 * grad_w, rtol=1e-5)
    np.testing.assert_allclose(new.params["Dense_0"]["bias"][0], b - 0.1 * grad_b, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_sum"] / metrics["count"], np.mean(residual**2), rtol=1e-5)
    assert int(new.step) == 1 and "correct" not in metrics


def test_padding_is_weighted_out():
    x, y = tiny_problem(5)
    padded = {"x": jnp.concatenate([x, jnp.repeat(x[:1], 3, 0)]), "y": jnp.concatenate([y, jnp.repeat(y[:1], 3)]),
              "mask": jnp.array([1.0] * 5 + [0.0] * 3)}
    a, ma = T.train_step(blob_state(), {"x": x, "y": y, "mask": jnp.ones(5)})
    b, mb = T.train_step(blob_state(), padded)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7), a.params, b.params)
    assert float(mb["count"]) == 5 and float(mb["loss_sum"]) == pytest.approx(float(ma["loss_sum"]), rel=1e-6)


def test_partial_last_batch_counts_each_example_once():
    x, y = tiny_problem(25)
    state = blob_state()
    by_batches = T.evaluate(state, make_batches((x, y), 10))  # 10 + 10 + 5 (padded)
    whole = T.evaluate(state, make_batches((x, y), 25))
    assert by_batches["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    assert by_batches["acc"] == pytest.approx(whole["acc"])


def test_scanned_evaluation_equals_batch_by_batch():
    x, y = tiny_problem(25)
    state, loader = blob_state(), make_batches((x, y), 10)
    assert loader.on_device  # device batches: evaluate() takes the scanned path
    scanned = T.evaluate(state, loader)
    total = None
    for batch in loader.epoch(0):
        total = T.add_metrics(total, T.eval_step(state, batch))
    assert scanned == pytest.approx(T.summarize(total), rel=1e-6)


def test_progress_rate_counts_real_examples_only():
    x, y = tiny_problem(25)
    kept, dropped = make_batches((x, y), 10), make_batches((x, y), 10, drop_last=True)
    assert [C.examples_in_steps(kept, i, i + 1) for i in range(len(kept))] == [10, 10, 5]
    assert [C.examples_in_steps(dropped, i, i + 1) for i in range(len(dropped))] == [10, 10]
    assert C.examples_in_steps(kept, 1, 3) == 15 and C.examples_in_steps(dropped, 0, 2) == 20


def test_each_course_loss_knows_its_value_prediction_and_targets():
    logits = jnp.array([[2.0, -1.0], [0.5, 0.5]])
    labels = jnp.array([0, 1])
    cross_entropy = L.as_loss("cross_entropy")
    assert cross_entropy is L.LOSSES["cross_entropy"] and isinstance(cross_entropy, L.CrossEntropyLoss)
    np.testing.assert_allclose(cross_entropy(logits, labels), -jax.nn.log_softmax(logits)[jnp.arange(2), labels],
                               rtol=1e-6)
    np.testing.assert_allclose(cross_entropy.probabilities(logits), jax.nn.softmax(logits), rtol=1e-6)
    np.testing.assert_array_equal(cross_entropy.predicted_labels(logits), [0, 0])
    z = jnp.array([[3.0], [-40.0]])
    bce = L.BCEWithLogitsLoss()
    expected = optax.sigmoid_binary_cross_entropy(z[:, 0], jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(bce(z, jnp.array([1, 0])), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(bce.predicted_labels(z), [1, 0])
    np.testing.assert_allclose(bce.probabilities(z), jax.nn.sigmoid(z))
    for regression, value in ((L.L1Loss(), 1.0), (L.MSELoss(), 4.0)):
        np.testing.assert_allclose(regression(value ** 0.5 * jnp.ones((2, 3)), jnp.zeros((2, 3))), [value, value])
        assert regression.predicted_labels(z) is None and regression.probabilities(z) is z
    with pytest.raises(L.LabelError, match="label 2 at index 1"):
        cross_entropy.check_targets(jnp.array([1, 2]), (1, 2), "these labels")


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        T.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)), optax.sgd(0.1), loss="hinge")
    with pytest.raises(ValueError, match="unknown optimizer"):
        T.make_optimizer("rmsprop2")


def test_two_runs_are_bit_identical_with_dropout():
    def run():
        x = jax.random.uniform(jax.random.key(1), (64, 28, 28, 1))
        y = jax.random.randint(jax.random.key(2), (64,), 0, 10)
        state = T.create_train_state(FashionCNN(), jax.random.key(3), x[:1], T.make_optimizer("adam", 1e-3))
        state, _ = fit(state, make_batches((x, y), 16, key=jax.random.key(4)), epochs=2, scan=False)
        return state

    a, b = run(), run()
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))


def test_scanned_epoch_matches_per_batch_steps():
    x, y = tiny_problem(50)
    loader = DeviceBatches(x, y, 8, key=jax.random.key(0))
    stepped, h1 = fit(blob_state(), loader, epochs=2, scan=False)
    scanned, h2 = fit(blob_state(), loader, epochs=2, scan=True)
    assert int(stepped.step) == int(scanned.step) == 14
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), stepped.params, scanned.params)
    np.testing.assert_allclose(h1["train_loss"], h2["train_loss"], rtol=1e-5)


def _same_bits(a, b):
    return all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


class RecordBatchEvents(Callback):
    """Records where a fit's batch events fall: the step count after each ``after_batch``."""

    def __init__(self, every_steps=None):
        self.every_steps, self.after = every_steps, []

    def batch_events(self, learner):
        return BatchEvents(every_steps=self.every_steps)

    def after_batch(self, learner):
        self.after.append(int(learner.state.step))


def test_scanned_epochs_stop_where_checkpoints_are_due_and_compute_the_same(tmp_path):
    x, y = tiny_problem(80)
    loader = DeviceBatches(x, y, 4, key=jax.random.key(0))  # 20 steps an epoch
    whole, _ = fit(blob_state(), loader, epochs=3, scan=True)  # each epoch one dispatch
    events = RecordBatchEvents()
    ckpt = K.Checkpoint(tmp_path, every_n_steps=7, keep=100, print_fn=lambda *_: None)
    chunked, history = fit(blob_state(), loader, epochs=3, callbacks=[ckpt, events], scan=True)
    assert events.after == [7, 14, 20, 21, 28, 35, 40, 42, 49, 56, 60]
    assert _same_bits(chunked.params, whole.params)  # one compiled loop, wherever the cuts fall
    with K.CheckpointStore(tmp_path) as store:
        assert store.steps() == [7, 14, 20, 21, 28, 35, 40, 42, 49, 56, 60]
        restored, progress, _ = store.restore(blob_state())
        assert _same_bits(restored.params, whole.params) and len(progress["history"]["train_loss"]) == 3
        # resumed from step 49 (epoch 2, a mid-epoch checkpoint), the end is the same to the last bit
        for step in store.steps():
            if step > 49:
                store.manager.delete(step)
    resumed, resumed_history = fit(blob_state(), loader, epochs=3, scan=True,
                                   callbacks=[K.Checkpoint(tmp_path, every_n_steps=7, keep=100,
                                                           print_fn=lambda *_: None)])
    assert _same_bits(resumed.params, whole.params)
    assert resumed_history["train_loss"] == history["train_loss"]


def test_steps_per_execution_cuts_scanned_epochs():
    x, y = tiny_problem(40)
    loader = DeviceBatches(x, y, 4, key=jax.random.key(0))  # 10 steps an epoch
    events = RecordBatchEvents()
    state, _ = fit(blob_state(), loader, epochs=2, callbacks=[events], steps_per_execution=4)
    assert events.after == [4, 8, 10, 12, 16, 20]
    whole, _ = fit(blob_state(), loader, epochs=2, scan=True)
    assert _same_bits(state.params, whole.params)
    with pytest.raises(ValueError, match="cannot go with scan=False"):
        fit(blob_state(), loader, epochs=1, steps_per_execution=4, scan=False)
    with pytest.raises(ValueError, match="whole number >= 1"):
        fit(blob_state(), loader, epochs=1, steps_per_execution=0)


def test_progress_bar_moves_inside_a_scanned_epoch():
    x, y = tiny_problem(40)
    counts = []

    class WatchedBar(C.ProgressBar):
        def after_batch(self, learner):
            super().after_batch(learner)
            counts.append(self.bar.n)

    fit(blob_state(), DeviceBatches(x, y, 4), epochs=1, scan=True,
        callbacks=[WatchedBar(refresh_seconds=0, disable=False)])
    assert counts == list(range(1, 11))  # refreshed every step, as asked


def test_a_callback_that_needs_every_batch_makes_scanned_epochs_per_batch(caplog):
    x, y = tiny_problem(40)
    loader = DeviceBatches(x, y, 4, key=jax.random.key(0))

    class SkipOddBatches(Callback):
        def before_batch(self, learner):
            if learner.batch_index % 2:
                raise CancelBatchException

    with caplog.at_level("WARNING", logger="jaxdl.learner"):
        scanned, _ = fit(blob_state(), loader, epochs=2, callbacks=[SkipOddBatches()], scan=True)
    assert "run per batch" in caplog.text and "SkipOddBatches needs every batch" in caplog.text
    stepped, _ = fit(blob_state(), loader, epochs=2, callbacks=[SkipOddBatches()], scan=False)
    assert int(scanned.step) == int(stepped.step) == 10 and _same_bits(scanned.params, stepped.params)


@pytest.mark.parametrize("scan", [False, True])
def test_cancel_exceptions_fall_on_the_same_steps_in_both_modes(scan):
    x, y = tiny_problem(40)
    loader = DeviceBatches(x, y, 4, key=jax.random.key(0))  # 10 steps an epoch

    class EndEpochAtStep(RecordBatchEvents):
        def after_batch(self, learner):
            super().after_batch(learner)
            if learner.batch_index == 3:  # after the epoch's 4th step
                raise CancelEpochException

    class SkipChunk(Callback):
        def batch_events(self, learner):
            return BatchEvents(every_steps=2)  # not every step: skips a whole chunk in a scanned epoch, as declared

        def before_batch(self, learner):
            if learner.epoch == 1 and learner.batch_index in (0, 1):  # the first step, or chunk, of epoch 1
                raise CancelBatchException

    events = EndEpochAtStep(every_steps=2)
    state, history = fit(blob_state(), loader, epochs=2, callbacks=[events], scan=scan)
    assert int(state.step) == 8 and len(history["train_loss"]) == 0  # both epochs ended at their step 4
    assert events.after[-1] == 8
    if scan:
        skipped, _ = fit(blob_state(), loader, epochs=2, callbacks=[SkipChunk()], scan=True)
        assert int(skipped.step) == 18  # the chunk of steps 0-1 of epoch 1 not taken


# --- fit and callbacks ---------------------------------------------------------------------------


class EventRecorder(Callback):
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        if name in EVENTS:
            return lambda learner: self.events.append(name)
        raise AttributeError(name)


def test_fit_history_and_events_in_order():
    x, y = tiny_problem(20)
    recorder = EventRecorder()
    state, history = fit(blob_state(), make_batches((x, y), 10, key=jax.random.key(0)),
                           make_batches((x, y), 20), epochs=2, callbacks=[recorder], scan=False)
    epoch = ["before_epoch"] + ["before_batch", "after_batch"] * 2 + ["after_epoch"]
    assert recorder.events == ["before_fit"] + epoch * 2 + ["after_fit"]
    assert set(history) == {"train_loss", "train_acc", "test_loss", "test_acc", "epoch_time"}
    assert all(len(v) == 2 for v in history.values())
    assert history["train_loss"][1] < history["train_loss"][0]


def test_cancel_exceptions():
    x, y = tiny_problem(40)

    class SkipOddBatches(Callback):
        def before_batch(self, learner):
            if learner.batch_index % 2:
                raise CancelBatchException

    class StopAfterFirstEpoch(Callback):
        def after_epoch(self, learner):
            raise CancelFitException

    recorder = EventRecorder()
    state, history = fit(blob_state(), make_batches((x, y), 10), epochs=5,
                           callbacks=[SkipOddBatches(), StopAfterFirstEpoch(), recorder], scan=False)
    assert int(state.step) == 2  # 2 of 4 batches taken, then the fit stopped
    assert recorder.events.count("after_cancel_batch") == 2
    assert recorder.events[-2:] == ["after_cancel_fit", "after_fit"]
    assert len(history["train_loss"]) == 1


def test_early_stopping_and_loggers(tmp_path, capsys):
    x, y = tiny_problem(40)
    flat = C.EarlyStopping(monitor="test_loss", patience=2)
    logs = [C.CSVLogger(tmp_path / "log.csv"), C.JSONLogger(tmp_path / "log.jsonl"), C.TensorBoard(tmp_path / "tb"),
            C.PrintEpoch(), C.ProgressBar(refresh_seconds=0)]
    state, history = fit(blob_state(lr=0.0), make_batches((x, y), 10), make_batches((x, y), 40),
                           epochs=10, callbacks=[flat, *logs], scan=False)
    assert len(history["train_loss"]) == 3  # lr 0: no improvement after the first epoch
    assert "Epoch: 2 | train_loss:" in capsys.readouterr().out
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,train_loss") and len(rows) == 4
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["epoch"] == 2
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_nan_loss_stops_the_fit_and_keeps_the_last_good_checkpoint(tmp_path):
    x, y = tiny_problem(40)

    class PoisonAfterEpoch(Callback):
        order = 60  # after the checkpoint of epoch 0

        def after_epoch(self, learner):
            learner.state = learner.state.replace(
                params=jax.tree.map(lambda p: p * jnp.nan, learner.state.params))

    ckpt = K.Checkpoint(tmp_path, print_fn=lambda *_: None)
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        fit(blob_state(), make_batches((x, y), 10), epochs=3, callbacks=[ckpt, PoisonAfterEpoch()], scan=False)
    with K.CheckpointStore(tmp_path) as store:
        assert store.steps() == [4]
        restored, _, _ = store.restore(blob_state())
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(restored.params))


def test_eval_model_predictions_and_metrics():
    x, y = tiny_problem(30)
    state, _ = fit(blob_state(), make_batches((x, y), 10, key=jax.random.key(0)), epochs=20, scan=False)
    result = T.eval_model(state, make_batches((x, y), 16))
    assert result["model_name"] == "BlobModel" and result["model_acc"] > 60
    probs = T.make_predictions(state, x)
    assert probs.shape == (30, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert M.accuracy_fn(y, probs.argmax(1)) == pytest.approx(result["model_acc"])
    assert T.make_predictions(state, make_batches((x, y), 16)).shape == (30, 4)
    cm = M.confusion_matrix(y, probs.argmax(1), 4)
    assert cm.sum() == 30 and np.trace(cm) == round(result["model_acc"] * 30 / 100)
    metric = M.Metric()
    metric.add(1.0, n=32)
    metric.add(4.0, n=16)
    assert metric.value == pytest.approx(2.0) and metric.last == 4.0
    accuracy = M.Accuracy()  # Lesson 15: a subclass that overrides calc
    accuracy.add(jnp.array([1, 2, 3, 4]), jnp.array([1, 2, 0, 0]), n=4)
    accuracy.add(jnp.array([1, 1]), jnp.array([1, 1]), n=2)
    assert accuracy.value == pytest.approx((0.5 * 4 + 1.0 * 2) / 6) and float(accuracy.last) == 1.0
    accuracy.reset()
    assert np.isnan(accuracy.value)
    with pytest.raises(ValueError, match="predictions have shape"):
        accuracy.add(jnp.array([1, 2]), jnp.array([1]))
    with pytest.raises(ValueError, match="class indices"):
        M.confusion_matrix([0, 5], [0, 1], 4)


# --- checkpoints ----------------------------------------------------------------------------------


def test_save_and_load_model(tmp_path):
    state = blob_state()
    path = K.save_model(tmp_path / "models" / "blob.msgpack", state)
    target = jax.eval_shape(BlobModel(2, 4).init, jax.random.key(9), jnp.zeros((1, 2)))
    loaded = K.load_model(path, target)
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(loaded), jax.tree.leaves(state.variables)))
    with pytest.raises(K.CheckpointMismatchError, match="another model"):
        K.load_model(path, BlobModel(2, 3).init(jax.random.key(0), jnp.zeros((1, 2))))
    whole = path.read_bytes()
    flipped = bytearray(whole)
    flipped[-40] ^= 0x04  # one bit of the weights
    for damaged, message in ((whole[:50], "damaged or cut short"), (bytes(flipped), "do not match their checksum"),
                             (serialization.to_bytes(state.variables), "not a model saved by jaxdl's save_model")):
        path.write_bytes(damaged)
        with pytest.raises(K.CheckpointDamagedError, match=message):
            K.load_model(path, target)
    as_int64 = jax.tree.map(lambda leaf: np.asarray(leaf).astype(np.int64), state.variables)
    with_nan = jax.tree.map(lambda leaf: np.full_like(leaf, np.nan), state.variables)
    for variables, message in ((as_int64, r"params/Dense_0/bias is int64 but this model needs float32"),
                               (with_nan, r"params/Dense_0/bias holds NaN or infinite values")):
        K.save_model(path, variables)
        with pytest.raises(K.CheckpointMismatchError, match=message):
            K.load_model(path, target)


@pytest.mark.parametrize("scan", [False, True])
def test_recorder_curves_survive_a_resume(tmp_path, scan):
    x, y = tiny_problem(40)
    loader = make_batches((x, y), 10, key=jax.random.key(0))
    whole = C.Recorder()
    fit(blob_state(), loader, epochs=3, callbacks=[whole], scan=scan)
    assert whole.steps == list(range(12)) and len(whole.losses) == len(whole.accs) == 12

    def run(epochs):
        recorder = C.Recorder(tmp_path / "batches.jsonl")
        fit(blob_state(), loader, epochs=epochs, scan=scan,
              callbacks=[recorder, K.Checkpoint(tmp_path / "ckpt", print_fn=lambda *_: None)])
        return recorder

    run(2)
    resumed = run(3)  # restores step 8, runs the third epoch, reads steps 0-7 back from the file
    assert resumed.steps == whole.steps
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-6)
    assert len((tmp_path / "batches.jsonl").read_text().splitlines()) == 12
    plots.plot_batch_curves(resumed.losses, resumed.accs, tmp_path / "batches.png", steps=resumed.steps)
    assert (tmp_path / "batches.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="got 12 losses, 12 accuracies and 4 steps"):
        plots.plot_batch_curves(resumed.losses, resumed.accs, steps=resumed.steps[8:])


def test_loss_curves_draw_train_solid_and_test_dashed_for_one_run_or_several():
    one = {"train_loss": [1.0, 0.5], "test_loss": [1.1, 0.7], "train_acc": [50, 70], "test_acc": [45, 60]}
    regression = {"train_loss": [1.0, 0.5], "test_loss": [1.1, 0.7], "train_acc": [np.nan] * 2}
    fig = plots.plot_loss_curves(one)
    loss, acc = fig.axes
    assert [(l.get_label(), l.get_linestyle()) for l in loss.lines] == [("train", "-"), ("test", "--")]
    assert list(acc.lines[1].get_xdata()) == [1, 2] and list(acc.lines[1].get_ydata()) == [45, 60]
    fig = plots.plot_loss_curves({"a": one, "b": one})
    assert [l.get_label() for l in fig.axes[1].lines] == ["a, train", "a, test", "b, train", "b, test"]
    assert fig.axes[0].lines[0].get_color() != fig.axes[0].lines[2].get_color()
    assert len(plots.plot_loss_curves(regression).axes) == 1  # no accuracy: the loss alone


def test_batch_comparison_draws_a_running_mean_per_run():
    run = types.SimpleNamespace(losses=[4.0, 2.0, 2.0, 0.0], accs=[0, 50, 50, 100])
    fig = plots.plot_batch_comparison({"a": run, "b": types.SimpleNamespace(losses=[], accs=[])}, window=2)
    [line] = fig.axes[0].lines  # the empty run draws nothing
    assert list(line.get_xdata()) == [2, 3, 4] and list(line.get_ydata()) == [3.0, 2.0, 1.0]
    assert list(fig.axes[1].lines[0].get_ydata()) == [25, 50, 75] and line.get_label() == "a"


def test_restore_into_an_abstract_state_and_refuse_another_model(tmp_path):
    x, y = tiny_problem(20)
    state, _ = fit(blob_state(), make_batches((x, y), 10), epochs=1,
                     callbacks=[K.Checkpoint(tmp_path, print_fn=lambda *_: None)], scan=False)
    abstract = jax.eval_shape(blob_state)  # no live model state needed
    with K.CheckpointStore(tmp_path) as store:
        restored, progress, step = store.restore(abstract)
    assert step == 2 and len(progress["history"]["train_loss"]) == 1
    assert np.array_equal(restored.params["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"])
    other = T.create_train_state(BlobModel(2, 4, hidden_units=16), jax.random.key(0), jnp.zeros((1, 2)),
                                 optax.sgd(0.1))
    with pytest.raises(K.CheckpointMismatchError, match=r"params/Dense_0/bias has shape \(8,\) but this model needs \(16,\)"):
        with K.CheckpointStore(tmp_path) as store:
            store.restore(other)


def test_keeps_the_last_k_and_the_best(tmp_path):
    x, y = tiny_problem(20)
    # "best" = highest test loss here, i.e. the first epoch, so it is not among the latest
    ckpt = K.Checkpoint(tmp_path, keep=1, best_metric="test_loss", best_mode="max", print_fn=lambda *_: None)
    fit(blob_state(), make_batches((x, y), 10), make_batches((x, y), 20), epochs=4, callbacks=[ckpt], scan=False)
    with K.CheckpointStore(tmp_path) as store:
        assert store.steps() == [2, 8]


def test_learning_rate_schedule():
    x, y = tiny_problem(20)
    batches = make_batches((x, y), 10)
    constant, _ = fit(blob_state(), batches, epochs=2, scan=False)
    decayed_state = T.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)),
                                         T.make_optimizer("sgd", optax.exponential_decay(0.1, 1, 0.5)))
    decayed, _ = fit(decayed_state, batches, epochs=2, scan=False)
    first = jax.tree.leaves(blob_state().params)[0]
    moved = lambda s: float(jnp.abs(jax.tree.leaves(s.params)[0] - first).sum())  # noqa: E731
    assert 0 < moved(decayed) < moved(constant)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    x, y = tiny_problem(20)
    fit(blob_state(), make_batches((x, y), 10), epochs=2,
          callbacks=[K.Checkpoint(tmp_path, print_fn=lambda *_: None)], scan=False)
    store = K.CheckpointStore(tmp_path)
    assert store.steps() == [2, 4]
    for f in (tmp_path / "4" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="trying the previous one"):
        restored, _, step = store.restore(blob_state())
    assert step == 2


def _run_script(workdir, *extra):
    return subprocess.run([sys.executable, str(TESTS / "helpers_train_script.py"), str(workdir), *extra],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.data
@pytest.mark.parametrize("how", ["per-batch", "scanned", "streamed", "nnx"])
def test_resume_after_kill_is_bit_identical(tmp_path, how):
    """Killed at a random step and run again, the run ends with the bytes of one never
    killed: per batch, as scanned epochs, streamed from an image folder by two Grain
    worker processes, and for the model's Flax NNX twin."""
    flags = {"per-batch": [], "scanned": ["--scan"], "nnx": ["--nnx"],
             "streamed": ["--folder", str(tmp_path / "images"), "--examples", "640", "--workers", "2"]}[how]
    whole = _run_script(tmp_path / "whole", *flags)
    assert whole.returncode == 0, whole.stderr[-2000:]
    # the same command, killed (SIGKILL) once a checkpoint at or past a random step exists
    # (63 steps an epoch, 20 streamed; a checkpoint every 10), then run again
    kill_at = random.Random().randrange(10, 50 if how == "streamed" else 170)
    workdir = tmp_path / "killed"
    cmd = [sys.executable, str(TESTS / "helpers_train_script.py"), str(workdir), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [int(p.name) for p in (workdir / "checkpoints").glob("[0-9]*") if p.name.isdigit()]
        if any(d >= kill_at for d in done):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "final.msgpack").exists(), f"the run ended before it could be killed at step {kill_at}"
    resumed = _run_script(workdir, *flags)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout, f"killed at step {kill_at}"
    assert (workdir / "final.msgpack").read_bytes() == (tmp_path / "whole" / "final.msgpack").read_bytes(), \
        f"killed at step {kill_at}"


# --- data parallel --------------------------------------------------------------------------------


def test_one_device_eight_devices_shard_map_and_pmap_agree():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, str(TESTS / "helpers_parallel_check.py")], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["SimpleCNN_sharded"] == 8 and result["MNISTBatchNormCNN_sharded"] == 8
    assert result["SimpleCNN_jit8_params"] < 1e-6 and result["SimpleCNN_jit8_loss"] < 1e-3
    assert result["SimpleCNN_pmap_params"] < 1e-6 and result["SimpleCNN_pmap_loss"] < 1e-3
    assert result["SimpleCNN_shard_map_params"] < 1e-6 and result["SimpleCNN_shard_map_loss"] < 1e-3
    assert result["SimpleCNN_shard_map_vs_pmap"] < 1e-6
    # scanned epochs in chunks, in bfloat16: 8 devices reduce in another order than one,
    # in a type with 8 bits of mantissa
    assert result["bf16_scan_steps"] == [14, 14]
    assert result["bf16_scan_params"] < 2e-2 and result["bf16_scan_loss"] < 2e-2
    # BatchNorm's statistics are reduced in another order over 8 devices; after 4 steps
    # the parameters agree to ~1e-4 (the loss sums, of ~75, to ~1e-3)
    assert result["MNISTBatchNormCNN_jit8_params"] < 1e-3 and result["MNISTBatchNormCNN_jit8_loss"] < 1e-2
    assert result["restored_devices"] == 1 and result["restored_diff"] == 0.0
    # an NNX model trains on the mesh as its Linen twin does
    assert result["nnx_sharded"] == 8
    assert result["nnx_jit8_vs_linen_one_params"] < 1e-3 and result["nnx_jit8_vs_linen_one_stats"] < 1e-3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path, *folder):
    port, out = str(_free_port()), tmp_path / "params.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    script = str(TESTS / "helpers_distributed_check.py")
    procs = [subprocess.Popen([sys.executable, script, port, str(i), str(out), *map(str, folder)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    return out


@pytest.mark.parametrize("how", ["sliced by hand", "streamed"])
def test_two_processes_train_like_one(tmp_path, how):
    """Two processes, each feeding half of every batch -- sliced by hand, or read from an
    image folder by the Grain loader, each process opening only its share of the files --
    end with the parameters of one process on the whole batches."""
    x = jax.random.uniform(jax.random.key(0), (64, 28, 28, 1))
    y = jax.random.randint(jax.random.key(1), (64,), 0, 10)
    if how == "streamed":
        folder = tmp_path / "images"
        D.write_image_folder(x, y, [str(c) for c in range(10)], folder)
        loaded = D.ImageFolder(folder, (28, 28)).load()
        x, y = loaded.images[..., :1], loaded.labels  # as each process reads them
        out = _two_processes(tmp_path, folder)
        # one worker with one reading thread reads in order: the first 32 files each process
        # opened are its half of epoch 0 (the worker reads on into epoch 1 while epoch 0 trains)
        opened = [pathlib.Path(f"{out}.opened.{i}").read_text().split()[:32] for i in (0, 1)]
        assert len(set(opened[0])) == len(set(opened[1])) == 32 and not set(opened[0]) & set(opened[1])
    else:
        out = _two_processes(tmp_path)
    # one process, the whole batches
    state = T.create_train_state(SimpleCNN(), jax.random.key(2), x[:1], T.make_optimizer("sgd", 0.01, momentum=0.5))
    for batch in DeviceBatches(x, y, 16, key=jax.random.key(3)).epoch(0):
        state, _ = T.train_step(state, batch)
    two = np.load(out)
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        np.testing.assert_allclose(two[jax.tree_util.keystr(path)], leaf, rtol=1e-5, atol=1e-6)
