"""Work directories that a careless or unlucky user cannot break, tried as a user would:
by running the experiment scripts. ``--overwrite`` deletes only jaxdl's runs, a second
process is locked out, a resume with other settings is refused, a run killed with
SIGKILL and resumed writes what an uninterrupted one writes, and bad flags, bad data
folders and jaxdl's own errors end the script with one clear line."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SHARED_DATA
from jaxdl.run import workdir as W


def script(name, *args, cwd=ROOT, env=None, timeout=600):
    env = {**os.environ, **({"JAXDL_DATA_DIR": str(SHARED_DATA)} if SHARED_DATA else {}), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def snapshot(folder):
    """Every path under ``folder`` with its bytes (files) or None (folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def one_line_error(out, *fragments):
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "--debug shows the traceback" in line, out.stderr
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# --- what --overwrite may delete -------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_jaxdl_run(tmp_path):
    mine = tmp_path / "my_thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("months of work")
    before = snapshot(tmp_path)
    out = script("blobs", "--workdir", mine, "--overwrite", "--epochs", "2")
    one_line_error(out, str(mine), "not a jaxdl run")
    assert snapshot(tmp_path) == before  # not even a lock file


@pytest.mark.parametrize("marker", ["junk", "{}", '{"jaxdl_run": 1, "experiment": "blobs"}',
                                    '{"jaxdl_run": 1, "experiment": 3, "defines": {}, "may_change": {}, '
                                    '"data": {}, "starts": []}', "link"])
def test_a_marker_is_proof_not_a_name(tmp_path, marker):
    # garbage, an empty object, missing or mistyped fields, or a link to another run's marker
    other = tmp_path / "other"
    assert script("blobs", "--workdir", other, "--epochs", "1").returncode == 0
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "important.txt").write_text("x")
    if marker == "link":
        (folder / W.MARKER).symlink_to(other / W.MARKER)
    else:
        (folder / W.MARKER).write_text(marker)
    before = snapshot(tmp_path)
    for how in ("--overwrite", "--resume"):
        line = one_line_error(script("blobs", "--workdir", folder, how, "--epochs", "1"), str(folder),
                              "not a jaxdl run")
        assert ("symbolic link" in line) if marker == "link" else (W.MARKER in line)
    assert snapshot(tmp_path) == before  # important.txt kept, no lock file, the other run untouched


def test_the_lock_file_is_never_followed_and_alone_makes_no_run(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / W.LOCK).symlink_to(victim)
    one_line_error(script("blobs", "--workdir", folder, "--epochs", "1"), "symbolic link")
    assert victim.read_text() == "precious"
    (folder / W.LOCK).unlink()
    (folder / W.LOCK).write_text("12345\n")  # a lock file left alone: the folder is still empty
    assert script("blobs", "--workdir", folder, "--epochs", "1").returncode == 0


def test_what_a_killed_write_leaves_is_cleaned_up_on_the_next_start(tmp_path):
    # a kill during a new run's first marker write leaves only jaxdl's temporary file
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / f".{W.MARKER}.4242-0123456789ab.tmp").write_text('{"jaxdl_run": 1, "exp')
    assert script("blobs", "--workdir", folder, "--epochs", "1").returncode == 0
    (folder / ".results.json.4243-0123456789ab.tmp").write_text("{")
    assert script("blobs", "--workdir", folder, "--resume", "--epochs", "2").returncode == 0
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_never_empties_the_current_or_home_directory(tmp_path, monkeypatch):
    # a jaxdl run that is the current directory, or home: refused by the path, marker or not
    run = tmp_path / "run"
    assert script("blobs", "--workdir", run, "--epochs", "2").returncode == 0
    (run / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    one_line_error(script("blobs", "--workdir", ".", "--overwrite", "--epochs", "2", cwd=run),
                   "will not empty", "current directory")
    one_line_error(script("blobs", "--workdir", "", "--overwrite", "--epochs", "2"), "empty path")
    with monkeypatch.context() as patch:
        patch.chdir(run / "model_4")
        with pytest.raises(W.WorkDirectoryError, match="it is or holds the current directory"):
            W.WorkDirectory("..", "blobs", {}, overwrite=True)
    monkeypatch.setenv("HOME", str(run))
    with pytest.raises(W.WorkDirectoryError, match="will not empty .*: it is or holds your home directory"):
        W.WorkDirectory("~", "blobs", {}, overwrite=True)
    with pytest.raises(W.WorkDirectoryError, match="it is the root of the file system"):
        W.WorkDirectory("/", "blobs", {}, overwrite=True)
    assert snapshot(tmp_path) == before


def test_overwrite_removes_links_without_following_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not jaxdl's")
    run = tmp_path / "run"
    with W.WorkDirectory(run, "blobs", {"seed": 1}):
        pass
    (run / "link").symlink_to(outside)
    (run / "file_link").symlink_to(outside / "keep.txt")
    with W.WorkDirectory(run, "blobs", {"seed": 1}, overwrite=True):
        assert sorted(p.name for p in run.iterdir()) == [W.LOCK, W.MARKER]
    assert (outside / "keep.txt").read_text() == "not jaxdl's"
    (tmp_path / "alias").symlink_to(run)
    with pytest.raises(W.WorkDirectoryError, match="symbolic link"):
        W.WorkDirectory(tmp_path / "alias", "blobs", {"seed": 1}, overwrite=True)


# --- one run, one directory -------------------------------------------------------------------


def test_a_second_process_is_locked_out(tmp_path):
    run = tmp_path / "run"
    with W.WorkDirectory(run, "blobs", {"seed": 1}):  # this test process holds the run
        out = script("blobs", "--workdir", run, "--resume", "--epochs", "2")
        one_line_error(out, "in use by another jaxdl run", f"process {os.getpid()}")
        out = script("blobs", "--workdir", run, "--overwrite", "--epochs", "2")
        one_line_error(out, "in use by another jaxdl run")
        assert (run / W.MARKER).exists()
    # released when the holder ends, however it ends: a killed holder leaves no stale lock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from jaxdl.run import workdir as W; "
                               f"run = W.WorkDirectory({str(tmp_path / 'killed')!r}, 'blobs', {{}}); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(W.WorkDirectoryError, match="in use"):
        W.WorkDirectory(tmp_path / "killed", "blobs", {}, resume=True)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    W.WorkDirectory(tmp_path / "killed", "blobs", {}, resume=True).close()


def test_resume_refuses_other_settings_and_records_allowed_changes(tmp_path):
    run = tmp_path / "run"
    assert script("blobs", "--workdir", run, "--epochs", "2").returncode == 0
    results = (run / "results.json").read_bytes()
    out = script("blobs", "--workdir", run, "--resume", "--epochs", "2", "--batch-size", "64", "--seed", "1")
    one_line_error(out, "--batch-size was 32, now 64", "--seed was 42, now 1")
    assert (run / "results.json").read_bytes() == results
    debug = script("blobs", "--workdir", run, "--resume", "--seed", "1", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ResumeMismatchError" in debug.stderr
    longer = script("blobs", "--workdir", run, "--resume", "--epochs", "3")
    assert longer.returncode == 0, longer.stderr[-2000:]
    marker = json.loads((run / W.MARKER).read_text())
    assert [s["how"] for s in marker["starts"]] == ["new", "resume"]
    assert marker["starts"][-1]["changed"] == {"--epochs": {"was": 2, "now": 3}}
    history = json.loads((run / "results.json").read_text())["runs"]["model_4"]["history"]
    assert len(history["train_loss"]) == 3


def test_resume_refuses_other_data(tmp_path):
    with W.WorkDirectory(tmp_path, "fashion_cnn", {"seed": 1}) as run:
        run.check_data("fashion_mnist", {"reader": "official files", "train": 60000})
    with W.WorkDirectory(tmp_path, "fashion_cnn", {"seed": 1}, resume=True) as run:
        run.check_data("fashion_mnist", {"reader": "official files", "train": 60000})
        with pytest.raises(W.ResumeMismatchError, match="reader was 'official files', now 'tensorflow-datasets'"):
            run.check_data("fashion_mnist", {"reader": "tensorflow-datasets", "train": 60000})
    with pytest.raises(W.ResumeMismatchError, match="holds a run of experiment 'fashion_cnn', not 'blobs'"):
        W.WorkDirectory(tmp_path, "blobs", {"seed": 1}, resume=True)



@pytest.mark.data
def test_resume_refuses_a_dataset_changed_in_place(tmp_path):
    """One label changed keeps every size; the fingerprint of the examples still shows it."""
    import gzip
    import shutil

    data = tmp_path / "data"
    shutil.copytree(SHARED_DATA / "mnist", data / "mnist")
    args = ["--workdir", tmp_path / "run", "--data-dir", data, "--examples", "64", "--epochs", "1"]
    assert script("mnist_batchnorm", *args).returncode == 0
    labels = data / "mnist" / "train-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[8] = (content[8] + 1) % 10  # the first training label
    labels.write_bytes(gzip.compress(bytes(content)))
    out = script("mnist_batchnorm", *args, "--resume")
    one_line_error(out, "dataset 'mnist' differs from the one the run started with", "fingerprint.train.labels was")
    assert "fingerprint.train.images" not in out.stderr


def test_resume_refuses_an_image_folder_whose_files_changed(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    for split in ("train", "test"):
        for name in ("pizza", "steak"):
            (images / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(images / split / name / f"{i}.png")
    args = ["--workdir", tmp_path / "run", "--images", images, "--image-size", "16", "--epochs", "1",
            "--image", images / "test" / "pizza" / "0.png"]
    assert script("custom_images", *args).returncode == 0
    Image.new("RGB", (16, 16)).save(images / "train" / "steak" / "2.png")
    out = script("custom_images", *args, "--resume")
    one_line_error(out, "dataset 'images' differs", "fingerprint.train.classes.steak.files was 2, now 3")
    assert "pizza" not in out.stderr.splitlines()[-1]


def test_resume_with_fewer_epochs_than_trained_is_refused(tmp_path):
    run = tmp_path / "run"
    assert script("blobs", "--workdir", run, "--epochs", "2").returncode == 0
    results = (run / "results.json").read_bytes()
    out = script("blobs", "--workdir", run, "--resume", "--epochs", "1")
    one_line_error(out, "has trained 2 epochs (step 2), more than the 1 this fit asks for; ask for at least 2")
    assert (run / "results.json").read_bytes() == results  # still true to the model


def test_resume_takes_a_missing_setting_as_its_default(tmp_path):
    """A run started before a setting existed resumes at the setting's default, not at another value."""
    with W.WorkDirectory(tmp_path, "blobs", {"seed": 1}):
        pass
    with W.WorkDirectory(tmp_path, "blobs", {"seed": 1, "precision": "float32"},
                         defaults={"precision": "float32"}, resume=True):
        pass
    with pytest.raises(W.ResumeMismatchError, match="--precision was 'float32', now 'bfloat16'"):
        W.WorkDirectory(tmp_path, "blobs", {"seed": 1, "precision": "bfloat16"},
                        defaults={"precision": "float32"}, resume=True)

# --- killed and resumed: the same files as an uninterrupted run -------------------------------

TIMINGS = {"train_time_s", "total_time_s", "epoch_time"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.mark.data
def test_killed_and_resumed_run_writes_what_an_uninterrupted_run_writes(tmp_path):
    args = ["--epochs", "2", "--examples", "6400", "--checkpoint-every", "7"]  # 200 steps an epoch
    whole = script("fashion_mnist", "--workdir", tmp_path / "whole", *args)
    assert whole.returncode == 0, whole.stderr[-2000:]

    # killed (SIGKILL) inside model_2's second epoch, just after one of its mid-epoch checkpoints
    killed = tmp_path / "killed"
    env = {**os.environ, "JAXDL_DATA_DIR": str(SHARED_DATA)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "experiments" / "fashion_mnist.py"), "--workdir",
                             str(killed), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p.name) for p in (killed / "model_2" / "checkpoints").glob("[0-9]*") if p.name.isdigit()]
        if any(200 < step < 400 for step in steps):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists(), "the run ended before it could be killed"
    resumed = script("fashion_mnist", "--workdir", killed, "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_at = int(resumed.stdout.split("[model_2] resumed from")[1].split("step ")[1].split(")")[0])
    assert 200 < resumed_at < 400  # mid-epoch: the epoch's first sums were carried in the checkpoint

    def results(run):
        return without_timings(json.loads((run / "results.json").read_text()))

    assert results(killed) == results(tmp_path / "whole")
    for model in ("model_0", "model_1", "model_2"):
        log = [without_timings(json.loads(line)) for line in (killed / model / "log.jsonl").read_text().splitlines()]
        assert log == [without_timings(json.loads(line))
                       for line in (tmp_path / "whole" / model / "log.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in log] == [0, 1]


# --- flags and data checked at the edge ---------------------------------------------------------


@pytest.mark.parametrize("flag, value, message", [
    ("--examples", "0", "argument --examples: must be a whole number >= 1, got 0"),
    ("--examples", "-1", "argument --examples: must be a whole number >= 1, got -1"),
    ("--epochs", "-3", "argument --epochs: must be a whole number >= 1, got -3"),
    ("--epochs", "two", "argument --epochs: must be a whole number >= 1, got 'two'"),
    ("--lr", "-0.1", "argument --lr: must be a finite number > 0, got -0.1"),
    ("--lr", "nan", "argument --lr: must be a finite number > 0, got nan"),
    ("--batch-size", "0", "argument --batch-size: must be a whole number >= 1, got 0"),
    ("--momentum", "1.5", "argument --momentum: must be a finite number in [0, 1), got 1.5"),
    ("--checkpoint-every", "-1", "argument --checkpoint-every: must be a whole number >= 0, got -1"),
])
def test_bad_flags_are_refused_with_their_name(flag, value, message, capsys):
    from jaxdl.run import experiment

    with pytest.raises(SystemExit) as exit_:
        experiment.parse_args("blobs", [flag, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_help_shows_every_default_once(capsys):
    import re

    from jaxdl.run import experiment

    with pytest.raises(SystemExit):
        experiment.parse_args("blobs", ["--help"], epochs=100, batch_size=800, lr=0.1)
    out = " ".join(capsys.readouterr().out.split())
    for shown in ("epochs to train (default: 100)", "examples per batch (default: 800)",
                  "(default: runs/blobs)", "SGD momentum (default: none)", "(default: all)",
                  "(default: $JAXDL_DATA_DIR; else jaxdl's download folder)", "(default: float32)"):
        assert shown in out, shown
    for flag in re.findall(r"(--[a-z-]+) [A-Z{]", out):
        help_text = out.split(flag, 2)[-1].split(" --", 1)[0]
        assert help_text.count("default") <= 1, (flag, help_text)


def test_a_script_refuses_a_bad_flag_before_it_starts(tmp_path):
    out = script("blobs", "--examples", "0", "--workdir", tmp_path / "run")
    assert out.returncode == 2 and "argument --examples: must be a whole number >= 1, got 0" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


def test_a_misspelt_or_offline_data_folder_fails_at_once(tmp_path):
    began = time.time()
    out = script("fashion_cnn", "--workdir", tmp_path / "run", "--data-dir", tmp_path / "dataa")
    one_line_error(out, f"the data folder {tmp_path / 'dataa'} (data_dir) does not exist")
    (tmp_path / "empty").mkdir()
    out = script("fashion_cnn", "--workdir", tmp_path / "run2", "--data-dir", tmp_path / "empty")
    one_line_error(out, "does not hold dataset 'fashion_mnist'", str(tmp_path / "empty" / "fashion_mnist"))
    out = script("fashion_cnn", "--workdir", tmp_path / "run3", "--offline",
                 env={"JAXDL_DATA_DIR": "", "JAXDL_DOWNLOAD_DIR": str(tmp_path / "downloads")})
    one_line_error(out, "downloads are off", "put the four official *-ubyte.gz files in a folder")
    assert time.time() - began < 120
    assert not (tmp_path / "downloads").exists() and list((tmp_path / "empty").iterdir()) == []


def test_mismatched_image_folders_are_refused_by_the_script(tmp_path):
    from PIL import Image

    for split, classes in (("train", ("pizza", "steak", "sushi")), ("test", ("pizza", "sushi"))):
        for name in classes:
            (tmp_path / "images" / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "images" / split / name / "0.png")
    out = script("custom_images", "--workdir", tmp_path / "run", "--images", tmp_path / "images")
    one_line_error(out, "must have the same class folders", "only in train: steak")
