"""What every experiment script shares: its flags, its work directory, its results.json.

An experiment file in ``experiments/`` holds only the choices of its experiment and
reads like the course notebook's cells; the rest is here::

    cfg = experiment.parse_args("fashion_mnist", epochs=3, batch_size=32, lr=0.1)
    exp = experiment.Experiment(cfg)
    data = exp.load("fashion_mnist")
    state, history = exp.fit("model_0", FashionMNISTModelV0(784, 10, 10), exp.batches(data.train), exp.batches(data.test, shuffle=False))
    exp.save()

Every script takes ``--epochs --batch-size --lr --optimizer --momentum --seed --workdir
--resume --overwrite --data-dir --offline --devices --examples --checkpoint-every
--debug`` and writes into its work directory (``runs/<experiment>`` by default, a
:class:`~jaxdl.run.workdir.WorkDirectory`: marked, locked, resumed only with the same
settings): ``results.json`` (settings, per-epoch history, final metrics, time, device
kind and count, versions), its plots as PNG, a ``log.jsonl`` and Orbax checkpoints per
model trained.

Flags are checked when they are parsed (a count must be a positive integer, a
learning rate finite and positive), and an error of jaxdl's own -- a bad flag, a
directory in use, a resume with other settings, a non-finite loss, a full disk -- ends
the script with one line on stderr and exit status 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import platform
import sys
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from jaxdl import callbacks as cb
from jaxdl import checkpoint, data, learner, parallel, precision, train
from jaxdl.data.fingerprint import fingerprint
from jaxdl.run import arguments, runtime
from jaxdl.run.arguments import positive_int
from jaxdl.errors import JaxdlError
from jaxdl.support.files import atomic_path
from jaxdl.models import count_params
from jaxdl.run.workdir import WorkDirectory


@dataclasses.dataclass
class Config:
    """The flags of an experiment run (``parse_args`` fills it from the command line)."""

    name: str
    epochs: int | None
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float | None = None
    seed: int = 42
    workdir: str = ""
    resume: bool = False
    overwrite: bool = False
    data_dir: str | None = None
    offline: bool = False
    devices: int | None = None
    examples: int | None = None
    checkpoint_every: int = 500
    precision: str = "float32"
    debug: bool = False
    extra: dict = dataclasses.field(default_factory=dict)
    may_change: tuple[str, ...] = ()
    """Keys of ``extra`` that may differ when the run is resumed (epochs of one model, ...)."""

    INVOCATION = ("name", "workdir", "resume", "overwrite", "extra", "may_change")
    """What says how a run was started, not what it is."""
    MAY_CHANGE = ("epochs", "data_dir", "offline", "devices", "checkpoint_every", "debug")
    """The shared flags a resumed run may change: they decide how long it goes on and
    where it reads and writes, not what a step computes."""

    def defaults(self) -> dict[str, Any]:
        """The shared flags' own defaults: what a run started before a flag existed used."""
        return {f.name: f.default for f in dataclasses.fields(self)
                if f.name not in self.INVOCATION and f.default is not dataclasses.MISSING}

    def split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(defines, may_change)``: the settings a resume must keep, and those it may change."""
        flags = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name not in self.INVOCATION}
        flags.update(self.extra)
        changeable = set(self.MAY_CHANGE) | set(self.may_change)
        return ({k: v for k, v in flags.items() if k not in changeable},
                {k: v for k, v in flags.items() if k in changeable})


def parse_args(name: str, argv: list[str] | None = None, description: str = "",
               extra_args=(), may_change=(), **defaults) -> Config:
    """The shared flags, with this experiment's course settings as defaults.

    ``extra_args`` are ``(flag, kwargs)`` pairs for flags of one experiment only;
    their values land in ``Config.extra``. ``may_change`` names those of them (by
    their ``Config.extra`` key) that a resumed run may change, like a second model's
    epochs; the others must stay as the run started.

    Unless ``--debug`` is given, errors of jaxdl's own and file-system errors end the
    script with their message on one line (see :func:`report_errors`). Parsing also
    makes the process-wide settings of an entry script (:func:`jaxdl.run.runtime.setup`),
    before JAX's first computation.
    """
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--epochs", type=positive_int, default=defaults.get("epochs", 3),
                        help="epochs to train" + ("" if defaults.get("epochs", 3) else " (default: the dataset's own)"))
    parser.add_argument("--batch-size", type=positive_int, default=defaults.get("batch_size", 32),
                        help="examples per batch")
    parser.add_argument("--lr", type=arguments.learning_rate, default=defaults.get("lr", 0.1), help="learning rate")
    parser.add_argument("--optimizer", default=defaults.get("optimizer", "sgd"), choices=["sgd", "adam", "adamw"],
                        help="the optax optimizer")
    parser.add_argument("--momentum", type=arguments.momentum, default=defaults.get("momentum"),
                        help="SGD momentum" + ("" if defaults.get("momentum") else " (default: none)"))
    parser.add_argument("--seed", type=arguments.seed, default=defaults.get("seed", 42), help="the seed every random key comes from")
    parser.add_argument("--workdir", default=f"runs/{name}", help="where results, plots and checkpoints go")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --workdir (it must have the same settings)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the earlier jaxdl run in --workdir first (nothing else is ever deleted)")
    parser.add_argument("--data-dir", default=defaults.get("data_dir"),
                        help="folder of the official dataset files or a tfds data dir" + (
                            "" if defaults.get("data_dir") else
                            " (default: $JAXDL_DATA_DIR; else jaxdl's download folder)"))
    parser.add_argument("--offline", action="store_true",
                        help="never download; fail at once if the data is not on disk (or set JAXDL_OFFLINE=1)")
    parser.add_argument("--devices", type=positive_int, default=None, help="devices to train on (default: all)")
    parser.add_argument("--examples", type=positive_int, default=None,
                        help="use only this many training examples (and a fifth as many test ones): a smoke run "
                             "(default: all)")
    parser.add_argument("--checkpoint-every", type=arguments.whole_number(0), default=500,
                        help="save a checkpoint every this many steps inside an epoch (0: at epoch ends only)")
    parser.add_argument("--precision", default="float32", choices=sorted(precision.PRECISIONS),
                        help="how the steps compute: bfloat16 or float16 for mixed precision on a GPU or TPU "
                             "(the weights stay float32)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for flag, kwargs in extra_args:
        parser.add_argument(flag, **kwargs)
    args = vars(parser.parse_args(argv))
    known = {f.name for f in dataclasses.fields(Config)}
    extra = {k: v for k, v in args.items() if k not in known}
    unknown = set(may_change) - set(extra)
    if unknown:
        raise ValueError(f"may_change names {sorted(unknown)}, which are not flags of this experiment")
    if not args["debug"]:
        sys.excepthook = report_errors
        warnings.showwarning = report_warning
    runtime.setup()
    return Config(name=name, extra=extra, may_change=tuple(may_change),
                  **{k: v for k, v in args.items() if k in known})


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default, once: not where the help already names
    it, nor for a switch or a flag whose default is "not given"."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default in (None, False)
                or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


USER_ERRORS = (JaxdlError, OSError)
"""Errors that are about what the user asked for or the machine they asked it on (a
file, a disk, a directory), as opposed to bugs: their message is what to read."""


def report_errors(kind, error, traceback) -> None:
    """A ``sys.excepthook`` for experiment scripts: print a user error as one line (plus
    any notes the error carries) instead of a traceback; anything else as Python does."""
    if isinstance(error, KeyboardInterrupt):
        print("interrupted: run the same command with --resume to continue from the last checkpoint",
              file=sys.stderr)
    elif isinstance(error, USER_ERRORS):
        notes = [note for note in getattr(error, "__notes__", ()) if not note.startswith("-----")]  # JAX's own
        message = " ".join(" ".join([str(error), *notes]).split())  # one line, whatever the message holds
        print(f"error: {message} (--debug shows the traceback)", file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, traceback)


def report_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``warnings.showwarning`` for experiment scripts: one line, without the source
    line it was raised from (``--debug`` shows Python's usual two)."""
    print(f"warning: {message}", file=file or sys.stderr, flush=True)


class Experiment:
    """One run of one experiment script: its work directory, devices, keys and results."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        defines, may_change = cfg.split()
        self.run_dir = WorkDirectory(cfg.workdir, cfg.name, defines, may_change, defaults=cfg.defaults(),
                                     resume=cfg.resume, overwrite=cfg.overwrite)
        self.workdir = self.run_dir.path
        self.mesh = parallel.make_mesh(cfg.devices)
        self.key = jax.random.key(cfg.seed)
        self.initial_params: dict[str, Any] = {}  # run -> its parameters before training, on the host
        self.started = time.perf_counter()
        # what the run is and what it ran on; where it ran (paths, the command) is in the
        # work directory's marker, so two runs of the same settings write the same file
        self.results: dict[str, Any] = {
            "experiment": cfg.name, "config": {**defines, **may_change}, "runs": {},
            "device_kind": jax.devices()[0].device_kind, "platform": jax.default_backend(),
            "device_count": int(self.mesh.devices.size), "jax_version": jax.__version__,
            "python": platform.python_version(),
        }
        print(f"{cfg.name}: {self.mesh.devices.size} x {self.results['device_kind']} "
              f"({self.results['platform']}), work directory {self.workdir}"
              + (" (resumed)" if self.run_dir.resumed else ""), flush=True)

    # --- data ------------------------------------------------------------------------

    def load(self, name: str) -> data.ImageClassificationData:
        """A named dataset, cut to ``--examples`` for smoke runs; what it is (its reader
        and sizes) is recorded in the work directory, and a resume refuses other data."""
        loaded = data.load_dataset(name, self.cfg.data_dir, offline=self.cfg.offline or None)
        if self.cfg.examples is not None:
            loaded = dataclasses.replace(loaded, train=loaded.train.take(self.cfg.examples),
                                         test=loaded.test.take(max(self.cfg.examples // 5, 1)))
        self.check_data(name, loaded.train, loaded.test, reader=loaded.reader)
        return loaded

    def check_data(self, name: str, train_set, test_set, **about) -> None:
        """Record what dataset ``name`` is (sizes, classes, a fingerprint of every
        example; ``about``: anything else that identifies it) in the work directory on
        the run's first start; a resume with other data stops with what changed."""
        self.run_dir.check_data(name, {
            **about, "train": len(train_set), "test": len(test_set), "classes": list(train_set.class_names),
            "fingerprint": {"train": fingerprint(train_set), "test": fingerprint(test_set)}})

    def batches(self, dataset, batch_size: int | None = None, shuffle: bool = True, **kwargs):
        """Batches sharded over the devices; shuffled with this run's key (per epoch)."""
        batch_size = batch_size or self.cfg.batch_size
        sharding = None
        if self.mesh.devices.size > 1:
            parallel.check_batch_size(batch_size, self.mesh)
            sharding = parallel.batch_sharding(self.mesh)
        key = jax.random.fold_in(self.key, 1) if shuffle else None
        return data.make_batches(dataset, batch_size, key, sharding=sharding, **kwargs)

    def optimizer(self, lr: float | None = None):
        return train.make_optimizer(self.cfg.optimizer, self.cfg.lr if lr is None else lr,
                                    momentum=self.cfg.momentum)

    # --- training --------------------------------------------------------------------

    def fit(self, run: str, model, train_data, test_data=None, *, loss: str = "cross_entropy",
            target: str = "y", tx=None, epochs: int | None = None, example_input=None,
            callbacks=(), print_every: int = 1, start_from: train.TrainState | None = None):
        """Train ``model`` as run ``run`` (its own checkpoints and log under the work
        directory), record its history and final test metrics, return ``(state, history)``.

        ``start_from``: go on from that state's parameters (and BatchNorm statistics)
        with a new optimizer, as the course does when it makes a second Learner for the
        same model at another learning rate."""
        epochs = self.cfg.epochs if epochs is None else epochs
        if example_input is None:
            example_input = next(iter(train_data.epoch(0)))["x"][:1]
        state = train.create_train_state(model, self.key, jax.device_get(example_input),
                                         tx if tx is not None else self.optimizer(), loss, target,
                                         precision=self.cfg.precision)
        if start_from is not None:
            params = jax.device_get(start_from.params)
            state = state.replace(params=params, batch_stats=jax.device_get(start_from.batch_stats),
                                  opt_state=state.tx.init(params))
        self.initial_params[run] = jax.device_get(state.params)  # a copy: train_step donates the state
        if self.mesh.devices.size > 1:
            state = parallel.replicate_state(state, self.mesh)
        rundir = self.workdir / run
        # small full-batch runs have hundreds of epochs: log, print and save less often
        all_callbacks = [
            cb.JSONLogger(rundir / "log.jsonl"), cb.ProgressBar(),
            cb.PrintEpoch(print_fn=lambda line: print(f"[{run}] {line}", flush=True), every=print_every),
            checkpoint.Checkpoint(rundir / "checkpoints", every_n_steps=self.cfg.checkpoint_every,
                                  every_n_epochs=print_every, resume=self.run_dir.resumed,
                                  print_fn=lambda line: print(f"[{run}] {line}")),
            *callbacks]
        began = time.perf_counter()
        state, history = learner.fit(state, train_data, test_data, epochs, callbacks=all_callbacks)
        record = {"model": state.model_name, "params": count_params({"params": state.params}),
                  "epochs": epochs, "train_time_s": round(time.perf_counter() - began, 2), "history": history}
        if test_data is not None:
            record.update(train.eval_model(state, test_data))
        self.results["runs"][run] = record
        return state, history

    # --- output ----------------------------------------------------------------------

    def path(self, filename: str) -> pathlib.Path:
        return self.workdir / filename

    def save(self, **summary) -> pathlib.Path:
        """Write ``results.json`` (atomically) with ``summary`` as its final metrics."""
        self.results["summary"] = summary
        self.results["total_time_s"] = round(time.perf_counter() - self.started, 2)
        path = self.path("results.json")
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.results, indent=2, default=_to_json))
        print(f"wrote {path}", flush=True)
        return path


def _to_json(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def full_batch(x, y):
    """The whole dataset as one batch, as the course trains its small synthetic sets."""
    return data.make_batches((jnp.asarray(x), jnp.asarray(y)), len(x))
