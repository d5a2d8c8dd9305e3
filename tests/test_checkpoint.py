"""Checkpoints that prove themselves: checksums that catch a flipped bit, a snapshot of
the history at each step, saves that never silently stop, a resume that refuses another
batch size, exact epoch sums across a resume, and a full or read-only disk found before
training starts."""

import contextlib
import json
import shutil
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import callbacks as C
from jaxdl import checkpoint as K
from jaxdl import layers as L
from jaxdl import train as T
from jaxdl.data import make_batches
from jaxdl.learner import Callback, NonFiniteLossError, fit

import flax.linen as nn


class WideModel(nn.Module):
    """Big enough (a 64x512 kernel) that Orbax stores its arrays as raw bytes on disk."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return L.Dense(4)(L.relu(L.Dense(512)(x)))


def problem(n=40, features=64, key=0):
    x = jax.random.normal(jax.random.key(key), (n, features))
    return x, (jnp.arange(n) % 4).astype(jnp.int32)


def wide_state(lr=0.05):
    return T.create_train_state(WideModel(), jax.random.key(0), jnp.zeros((1, 64)), T.make_optimizer("sgd", lr))


def quiet(directory, **kwargs):
    return K.Checkpoint(directory, print_fn=lambda *_: None, **kwargs)


def saved_steps(directory):
    with K.CheckpointStore(directory) as store:
        return store.steps()


def flip_one_bit(checkpoint_dir):
    """Flip one bit in the middle of the largest file of a checkpoint's arrays."""
    files = [f for f in (checkpoint_dir / "state").rglob("*") if f.is_file()]
    largest = max(files, key=lambda f: f.stat().st_size)
    raw = bytearray(largest.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    largest.write_bytes(bytes(raw))


def test_a_flipped_bit_is_caught_and_the_previous_checkpoint_used(tmp_path):
    x, y = problem()
    loader = make_batches((x, y), 10)
    fit(wide_state(), loader, epochs=2, callbacks=[quiet(tmp_path / "ckpt")], scan=False)
    with K.CheckpointStore(tmp_path / "ckpt") as store:
        assert store.steps() == [4, 8]
        flip_one_bit(tmp_path / "ckpt" / "8")
        with pytest.warns(K.DamagedCheckpointWarning, match=r"checkpoint 8 in .*ckpt is damaged.*moved it to"):
            restored, progress, step = store.restore(wide_state())
        assert step == 4 and len(progress["history"]["train_loss"]) == 1
        assert (tmp_path / "ckpt_damaged" / "8" / "state").is_dir()  # kept for inspection, not deleted
        assert store.steps() == [4]
    # the step can be saved again, and the run goes on from the good checkpoint
    state, history = fit(wide_state(), loader, epochs=2, callbacks=[quiet(tmp_path / "ckpt")], scan=False)
    assert saved_steps(tmp_path / "ckpt") == [4, 8] and len(history["train_loss"]) == 2


@pytest.mark.parametrize("edit", ["a value", "no digest", "no checksums", "a wrong type"])
def test_the_progress_record_is_covered_by_the_checksums(tmp_path, edit):
    """Edited history would flow into results; a removed checksum must not switch the check off."""
    x, y = problem()
    loader = make_batches((x, y), 10)
    fit(wide_state(), loader, epochs=2, callbacks=[quiet(tmp_path / "ckpt")], scan=False)
    record_path = tmp_path / "ckpt" / "8" / "progress" / "metadata"
    record = json.loads(record_path.read_text())
    if edit == "a value":
        record["history"]["train_acc"][0] = 99.0
    elif edit == "a wrong type":
        record["steps_per_epoch"] = "4"
    else:
        del record["progress_digest" if edit == "no digest" else "checksums"]
    record_path.write_text(json.dumps(record))
    with pytest.warns(K.DamagedCheckpointWarning, match=r"checkpoint 8 in .*ckpt is damaged \(its progress record"):
        _, history = fit(wide_state(), loader, epochs=2, callbacks=[quiet(tmp_path / "ckpt")], scan=False)
    assert 99.0 not in history["train_acc"] and saved_steps(tmp_path / "ckpt") == [4, 8]  # epoch 1 trained again


def test_checksums_see_every_single_bit():
    leaves = {"w": jnp.linspace(-1, 1, 1000, dtype=jnp.float32), "step": jnp.int32(7),
              "h": jnp.ones(5, jnp.bfloat16), "k": jnp.arange(4, dtype=jnp.uint32)}
    reference = K.checksums(leaves)
    bits = np.asarray(leaves["w"]).view(np.uint32).copy()
    for position in (0, 1, 500, 999):
        for bit in (0, 13, 31):
            changed = bits.copy()
            changed[position] ^= np.uint32(1 << bit)
            assert K.checksums({**leaves, "w": jnp.asarray(changed.view(np.float32))})["w"] != reference["w"]
    swapped = np.asarray(leaves["w"]).copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    assert K.checksums({**leaves, "w": jnp.asarray(swapped)})["w"] != reference["w"]


def test_each_checkpoint_holds_the_history_of_its_own_step(tmp_path):
    x, y = problem(60)
    loader = make_batches((x, y), 10, key=jax.random.key(1))  # 6 steps an epoch
    fit(wide_state(), loader, epochs=4, callbacks=[quiet(tmp_path, every_n_steps=4, keep=20)], scan=False)
    with K.CheckpointStore(tmp_path) as store:
        assert store.steps() == [4, 6, 8, 12, 16, 18, 20, 24]
        for step in store.steps():
            _, progress, _ = store.restore(wide_state(), step)
            assert len(progress["history"]["train_loss"]) == step // 6, step
            assert (progress["epoch_sums"] is None) == (step % 6 == 0)
            assert progress["steps_per_epoch"] == 6 and progress["batch_size"] == 10


class StopAt(Callback):
    """Stops the process's training at a step, as a crash would."""

    def __init__(self, step):
        self.step = step

    def after_batch(self, learner):
        if int(learner.state.step) == self.step:
            raise KeyboardInterrupt


def test_a_mid_epoch_resume_gives_the_epoch_metrics_to_the_last_digit(tmp_path):
    x, y = problem(70)
    loader = make_batches((x, y), 10, key=jax.random.key(2))  # 7 steps an epoch
    _, whole = fit(wide_state(), loader, epochs=3, scan=False)
    with pytest.raises(KeyboardInterrupt):
        fit(wide_state(), loader, epochs=3, callbacks=[quiet(tmp_path, every_n_steps=5), StopAt(12)], scan=False)
    assert max(saved_steps(tmp_path)) == 10  # mid-epoch: 3 steps of epoch 1 carried
    _, resumed = fit(wide_state(), loader, epochs=3, callbacks=[quiet(tmp_path, every_n_steps=5)], scan=False)
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert resumed[name] == whole[name] or np.isnan(whole[name]).all(), name


def test_a_stray_step_folder_is_reported_not_obeyed(tmp_path):
    (tmp_path / "99999").mkdir()
    (tmp_path / "99999" / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(K.CheckpointDirectoryError, match="holds 99999, named like checkpoints but not jaxdl"):
        quiet(tmp_path)
    assert (tmp_path / "99999" / "notes.txt").exists()


def test_a_save_that_orbax_skips_raises(tmp_path):
    x, y = problem(20)
    state, _ = fit(wide_state(), make_batches((x, y), 10), epochs=2, callbacks=[quiet(tmp_path)], scan=False)
    with K.CheckpointStore(tmp_path) as store, \
            pytest.raises(K.CheckpointSaveError, match="did not save checkpoint 3 .* holds step 4"):
        store.save(state.replace(step=jnp.int32(3)), {"history": {}})


def test_checkpoints_of_another_run_are_not_mixed_into(tmp_path):
    x, y = problem(20)
    fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path)], scan=False)
    with pytest.raises(K.CheckpointDirectoryError, match=r"already holds checkpoints \(steps 2\)"):
        fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path, resume=False)], scan=False)


def test_a_resume_with_another_batch_size_is_refused(tmp_path):
    x, y = problem(40)
    fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path)], scan=False)
    message = r"4 steps an epoch \(batch size 10\); this one has 2 \(batch size 20\)"
    with pytest.raises(K.CheckpointMismatchError, match=message):
        fit(wide_state(), make_batches((x, y), 20), epochs=2, callbacks=[quiet(tmp_path)], scan=False)


def test_non_finite_training_names_the_checkpoint_a_resume_starts_from(tmp_path):
    x, y = problem(40)

    class PoisonAt(Callback):
        def after_batch(self, learner):
            if int(learner.state.step) == 6:  # epoch 1, after its mid-epoch checkpoint at 5
                learner.state = learner.state.replace(params=jax.tree.map(lambda p: p * jnp.nan, learner.state.params))

    with pytest.raises(NonFiniteLossError) as raised:
        fit(wide_state(), make_batches((x, y), 10), epochs=3,
              callbacks=[quiet(tmp_path, every_n_steps=5), PoisonAt()], scan=False)
    assert "first at step 7" in str(raised.value)
    assert any("latest checkpoint, step 5" in note for note in raised.value.__notes__)
    assert saved_steps(tmp_path) == [4, 5]  # nothing saved after the damage


def test_no_room_or_no_write_access_is_found_before_training(tmp_path, monkeypatch):
    x, y = problem(20)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(K.shutil, "disk_usage", lambda path: usage._replace(free=100_000))
    with pytest.raises(K.CheckpointDirectoryError, match=r"0\.1 MiB free; checkpoints of this training state need"):
        fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path / "a")], scan=False)
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(K.CheckpointDirectoryError, match="cannot keep checkpoints in .*file/ckpt"):
        quiet(tmp_path / "file" / "ckpt")


@contextlib.contextmanager
def small_filesystem(path, size="300k"):
    """A real tmpfs of ``size`` mounted at ``path``, where the machine allows it."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a tmpfs needs privileges this machine does not give")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_real_full_and_read_only_disk(tmp_path):
    x, y = problem(20)
    with small_filesystem(tmp_path / "small") as small:
        with pytest.raises(K.CheckpointDirectoryError, match="MiB free"):
            fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(small / "ckpt")], scan=False)
        (small / "ckpt2").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        with pytest.raises(K.CheckpointDirectoryError, match="Read-only file system"):
            fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(small / "ckpt2")], scan=False)


def test_concurrent_save_model_calls_each_write_a_whole_file(tmp_path):
    x, y = problem(20)
    state, _ = fit(wide_state(), make_batches((x, y), 10), epochs=1, scan=False)
    errors = []

    def save():
        try:
            for _ in range(5):
                K.save_model(tmp_path / "model.msgpack", state)
        except Exception as err:  # noqa: BLE001 -- collected and asserted on below
            errors.append(err)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    loaded = K.load_model(tmp_path / "model.msgpack", state.variables)
    assert np.array_equal(loaded["params"]["Dense_0"]["kernel"], state.params["Dense_0"]["kernel"])
    assert [p.name for p in tmp_path.iterdir()] == ["model.msgpack"]  # no temporary file left


def test_loggers_hold_each_epoch_once_after_a_resume(tmp_path):
    x, y = problem(40)
    loader = make_batches((x, y), 10)

    class CrashAfterLogging(Callback):
        order = 35  # after the loggers (30), before the checkpoint (40) of epoch 1

        def after_epoch(self, learner):
            if learner.epoch == 1:
                raise KeyboardInterrupt

    logs = lambda: [C.JSONLogger(tmp_path / "log.jsonl"), C.CSVLogger(tmp_path / "log.csv")]  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        fit(wide_state(), loader, epochs=3, callbacks=[*logs(), quiet(tmp_path / "ckpt"), CrashAfterLogging()],
              scan=False)
    fit(wide_state(), loader, epochs=3, callbacks=[*logs(), quiet(tmp_path / "ckpt")], scan=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert (tmp_path / "log.csv").read_text().splitlines()[1:][1].startswith("1,8,")
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 4


def test_a_log_line_torn_by_a_crash_is_dropped_and_written_again(tmp_path):
    x, y = problem(20)
    loader = make_batches((x, y), 10)
    logs = lambda: [C.JSONLogger(tmp_path / "log.jsonl"), C.CSVLogger(tmp_path / "log.csv")]  # noqa: E731
    fit(wide_state(), loader, epochs=3, callbacks=logs(), scan=False)
    whole = {name: (tmp_path / name).read_text() for name in ("log.jsonl", "log.csv")}
    fit(wide_state(), loader, epochs=2, callbacks=[*logs(), quiet(tmp_path / "ckpt")], scan=False)
    for name, torn in (("log.jsonl", '{"epoch": 2, "step": 6, "train_lo'), ("log.csv", "2,6,0.3")):
        with open(tmp_path / name, "a") as f:
            f.write(torn)  # the power went off in the middle of epoch 2's row
    with pytest.warns(C.DamagedLogWarning) as caught:
        fit(wide_state(), loader, epochs=3, callbacks=[*logs(), quiet(tmp_path / "ckpt")], scan=False)
    messages = sorted(str(w.message) for w in caught)
    assert "log.csv: 1 row did not read back" in messages[0] and "rewritten from the restored history" in messages[0]
    assert "log.jsonl: line 3 did not read back" in messages[1]
    for name in ("log.jsonl", "log.csv"):  # every row whole, each epoch once, as an unbroken run wrote them
        assert _without_times((tmp_path / name).read_text()) == _without_times(whole[name]), name


def _without_times(text):
    return [line.split(",")[:3] if "{" not in line else {k: v for k, v in json.loads(line).items() if "time" not in k}
            for line in text.splitlines()]


def test_a_checkpoint_directory_is_one_process_at_a_time(tmp_path):
    """A second process is refused at once (and its Orbax never starts, so it neither
    deletes the first one's save in flight nor waits at exit); so is a second store in
    this process while the first is open; the lock ends with the fit or the store."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from jaxdl import checkpoint as K\n"
         f"store = K.CheckpointStore({str(tmp_path)!r}); print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        x, y = problem(20)
        with pytest.raises(K.CheckpointDirectoryError,
                           match=rf"in use by another jaxdl run \(process {holder.pid}\); wait for it"):
            fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path)], scan=False)
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0 and saved_steps(tmp_path) == []
    with K.CheckpointStore(tmp_path):
        with pytest.raises(K.CheckpointDirectoryError, match=r"in use by another jaxdl run \(in this process\)"):
            fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[quiet(tmp_path)], scan=False)
    callback = quiet(tmp_path)
    fit(wide_state(), make_batches((x, y), 10), epochs=1, callbacks=[callback], scan=False)
    assert callback.store is None and saved_steps(tmp_path) == [2]  # given back when the fit ended


def test_a_resume_asking_for_fewer_epochs_than_trained_is_refused(tmp_path):
    x, y = problem(20)
    fit(wide_state(), make_batches((x, y), 10), epochs=3, callbacks=[quiet(tmp_path)], scan=False)
    with pytest.raises(K.CheckpointMismatchError, match=r"has trained 3 epochs \(step 6\), more than the 2 this "
                                                        r"fit asks for; ask for at least 3 epochs"):
        fit(wide_state(), make_batches((x, y), 10), epochs=2, callbacks=[quiet(tmp_path)], scan=False)
    state, history = fit(wide_state(), make_batches((x, y), 10), epochs=3, callbacks=[quiet(tmp_path)], scan=False)
    assert int(state.step) == 6 and len(history["train_loss"]) == 3
