"""A work directory is a jaxdl run, and only jaxdl touches it.

An experiment writes everything of one run -- results, plots, logs, checkpoints -- into
its work directory (``runs/<experiment>`` by default). :class:`WorkDirectory` makes that
directory safe to point at, whatever a user types:

* **A marker.** When a run starts it writes ``jaxdl_run.json``: the experiment, the
  flags that define the run, the data it read, the library versions and a line for
  every start. jaxdl writes only into an empty directory or one that carries the marker,
  and ``--overwrite`` empties only a directory with the marker -- never ``.``, ``~``,
  ``/``, a directory that holds the current one, or the target of a symbolic link. The
  marker is proof, not a name: it must be a regular file (not a link) that parses as a
  jaxdl run's marker with fields of the right types, or the directory is refused. What
  a write killed before its rename leaves behind (``.jaxdl_run.json.<pid>-<id>.tmp``) is
  recognised as jaxdl's and removed on the next start.
* **A lock.** While a run lives it holds an operating-system lock on ``.jaxdl.lock``
  in the directory, so a second process that asks for the same directory is refused
  with a message instead of mixing its checkpoints into the first one's. The system
  drops the lock when the process ends, however it ends, so a killed run leaves no
  stale lock behind. The lock file is never opened through a symbolic link, and on its
  own it does not make a directory a run.
* **Resume checks.** ``--resume`` continues a run only with the flags that define it
  (batch size, learning rate, seed, examples, the experiment's own choices, the data it
  read); it names every difference and refuses. Flags that may change -- the number of
  epochs, to extend a run, or where the data lives -- are recorded in the start's line.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
import stat
import sys
from typing import Any

from jaxdl.errors import JaxdlError
from jaxdl.support.files import atomic_path, is_temporary
from jaxdl.support.lock import LOCK, FolderLock

MARKER = "jaxdl_run.json"
"""The file that makes a directory a jaxdl run."""

MARKER_FIELDS = {"experiment": str, "defines": dict, "may_change": dict, "data": dict, "starts": list}
"""The fields of a marker, with their types."""


class WorkDirectoryError(JaxdlError, RuntimeError):
    """A work directory that jaxdl will not use as asked: not a run of jaxdl's, unsafe
    to empty, not writable, or in use by another process."""


class ResumeMismatchError(JaxdlError, ValueError):
    """A run resumed with flags or data that change what its steps compute."""


def flag_name(key: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``: how a config key is typed on the command line."""
    return "--" + key.replace("_", "-")


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from the marker, so saved and current values compare
    equal exactly when they would print the same."""
    return json.loads(json.dumps(value, default=str))


def _unsafe_to_empty(path: pathlib.Path) -> str | None:
    """Why ``path`` must never be emptied, or ``None``."""
    if path.is_symlink():
        return f"it is a symbolic link to {path.resolve()}; name the directory itself"
    resolved = path.resolve()
    home, cwd = pathlib.Path.home().resolve(), pathlib.Path.cwd().resolve()
    if resolved == pathlib.Path(resolved.anchor):
        return "it is the root of the file system"
    if resolved == home or resolved in home.parents:
        return "it is or holds your home directory"
    if resolved == cwd or resolved in cwd.parents:
        return "it is or holds the current directory"
    return None


class WorkDirectory:
    """The work directory of one run, opened for this process.

    ``defines`` are the settings that decide what the run computes (they must be the
    same to resume it); ``may_change`` are recorded but may differ on resume.
    ``defaults`` give the value a setting had before it existed: a run started by an
    older jaxdl, whose marker lacks the setting, resumes when the setting is at its
    default. ``resume=True`` continues the run found there (or starts one in an empty
    directory); ``overwrite=True`` empties a directory that holds an earlier jaxdl run
    and starts afresh. Without either, a directory that holds a run is refused.
    The directory stays locked until :meth:`close` or the end of the process.
    """

    def __init__(self, path: str | os.PathLike | None, experiment: str, defines: dict[str, Any],
                 may_change: dict[str, Any] | None = None, *, defaults: dict[str, Any] | None = None,
                 resume: bool = False, overwrite: bool = False):
        if path is None or not str(path).strip():
            raise WorkDirectoryError("the work directory is an empty path; give a folder such as runs/my_run")
        self.path = pathlib.Path(str(path)).expanduser()
        self.experiment = experiment
        self.defines, self.may_change = _as_json(defines), _as_json(may_change or {})
        self.defaults = _as_json(defaults or {})
        if self.path.exists() and not self.path.is_dir():
            raise WorkDirectoryError(f"work directory {self.path} is a file, not a directory")
        reason = _unsafe_to_empty(self.path) if overwrite and self.path.exists() else None
        if reason is not None:
            raise WorkDirectoryError(f"--overwrite will not empty {self.path}: {reason}")
        if self._entries():
            self._read_marker()  # refuses a directory that is not a jaxdl run, before anything is written
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(self.path, WorkDirectoryError, "give this run another --workdir")
        except OSError as err:
            raise WorkDirectoryError(f"cannot use {self.path} as a work directory: {err}") from err
        try:
            how = self._start(resume, overwrite)
        except BaseException:
            self.close()
            raise
        self.resumed = how == "resume"

    @property
    def marker_path(self) -> pathlib.Path:
        return self.path / MARKER

    def _entries(self) -> list[pathlib.Path]:
        """What the directory holds, less the lock file and jaxdl's own temporary files."""
        if not self.path.is_dir():
            return []
        return [entry for entry in self.path.iterdir() if entry.name != LOCK and not self._leftover(entry)]

    @staticmethod
    def _leftover(entry: pathlib.Path) -> bool:
        """Whether ``entry`` is a temporary file of a write killed before its rename."""
        return is_temporary(entry) and entry.is_file() and not entry.is_symlink()

    def _remove_leftovers(self) -> None:
        for entry in self.path.iterdir():
            if self._leftover(entry):
                entry.unlink(missing_ok=True)

    def _start(self, resume: bool, overwrite: bool) -> str:
        """Decide, under the lock, how this run starts, and write the marker."""
        self._remove_leftovers()
        entries = self._entries()
        if not entries:
            self.marker = self._new_marker()
            how = "new"
        elif overwrite:
            self._read_marker()  # again, under the lock: only a jaxdl run is emptied
            for entry in entries:  # symbolic links are removed, never followed
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            self.marker = self._new_marker()
            how = "overwrite"
        elif resume:
            self.marker = self._read_marker()
            self._check_resume()
            how = "resume"
        else:
            raise WorkDirectoryError(
                f"{self.path} holds an earlier run: pass --resume to continue it, --overwrite to "
                "delete it and start again, or give this run another --workdir")
        changed = {flag_name(k): {"was": self.marker["may_change"].get(k), "now": v}
                   for k, v in self.may_change.items() if self.marker["may_change"].get(k) != v}
        self.marker["may_change"] = self.may_change
        self.marker["starts"].append({"time": _now(), "how": how, "pid": os.getpid(),
                                      "command": " ".join(sys.argv),
                                      **({"changed": changed} if changed else {})})
        self._write_marker()
        return how

    def _new_marker(self) -> dict[str, Any]:
        return {"jaxdl_run": 1, "experiment": self.experiment, "defines": self.defines,
                "may_change": self.may_change, "data": {}, "versions": _versions(), "starts": []}

    def _read_marker(self) -> dict[str, Any]:
        """The marker, if it proves that the directory is a jaxdl run; otherwise a
        :class:`WorkDirectoryError` that says why jaxdl will neither write into the
        directory nor empty it."""
        problem, marker = self._marker_problem()
        if problem is not None:
            raise WorkDirectoryError(
                f"{self.path} is not a jaxdl run that jaxdl can use: {problem}. jaxdl neither writes into it "
                "nor deletes it (not even with --overwrite): give this run another --workdir")
        return marker

    def _marker_problem(self) -> tuple[str | None, dict[str, Any]]:
        try:
            info = os.lstat(self.marker_path)
        except FileNotFoundError:
            return f"it holds files but no {MARKER}", {}
        if stat.S_ISLNK(info.st_mode):
            return f"its {MARKER} is a symbolic link", {}
        if not stat.S_ISREG(info.st_mode):
            return f"its {MARKER} is not a regular file", {}
        try:
            marker = json.loads(self.marker_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            return f"its {MARKER} cannot be read as JSON ({err})", {}
        if not isinstance(marker, dict) or marker.get("jaxdl_run") != 1:
            return f"its {MARKER} is not a jaxdl run marker", {}
        for field, kind in MARKER_FIELDS.items():
            if not isinstance(marker.get(field), kind):
                return (f"its {MARKER} has no field {field!r} of type {kind.__name__} "
                        f"(it has {type(marker.get(field)).__name__})"), {}
        return None, marker

    def _write_marker(self) -> None:
        try:
            with atomic_path(self.marker_path) as tmp:
                tmp.write_text(json.dumps(self.marker, indent=2) + "\n")
        except OSError as err:
            raise WorkDirectoryError(f"cannot write to work directory {self.path}: {err}") from err

    def _check_resume(self) -> None:
        if self.marker["experiment"] != self.experiment:
            raise ResumeMismatchError(f"{self.path} holds a run of experiment {self.marker['experiment']!r}, "
                                      f"not {self.experiment!r}; give this run another --workdir")
        saved = {**{k: v for k, v in self.defaults.items() if k in self.defines}, **self.marker["defines"]}
        differences = [f"{flag_name(k)} was {saved.get(k)!r}, now {self.defines.get(k)!r}"
                       for k in sorted(set(saved) | set(self.defines)) if saved.get(k) != self.defines.get(k)]
        if differences:
            raise ResumeMismatchError(
                f"cannot resume {self.path} with other settings than it was started with: "
                + "; ".join(differences)
                + ". Resume with the run's own settings, or start a new run (--overwrite or another --workdir)")

    def check_data(self, name: str, description: dict[str, Any]) -> None:
        """Record what dataset ``name`` was (its source, its sizes, its fingerprint) on the
        run's first start; on a resume, refuse data that differs from it, naming each
        difference. A part the marker lacks (recorded by an older jaxdl) is added."""
        description = _as_json(description)
        saved = self.marker["data"].get(name)
        if saved is None:
            self.marker["data"][name] = description
            self._write_marker()
            return
        found = _differences(saved, description)
        if found:
            raise ResumeMismatchError(f"cannot resume {self.path}: dataset {name!r} differs from the one "
                                      f"the run started with ({'; '.join(found)}). Resume with the run's own "
                                      "data, or start a new run (--overwrite or another --workdir)")
        if description != saved:
            self.marker["data"][name] = description
            self._write_marker()

    def close(self) -> None:
        """Release the lock (the directory and its marker stay)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> WorkDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """``["train.labels was 'a1..', now 'b2..'", ...]``: the values that differ, by their
    dotted paths; a part that ``saved`` lacks is not a difference."""
    found = []
    for key in sorted(set(saved) | set(now), key=str):
        was, is_ = saved.get(key), now.get(key)
        if isinstance(was, dict) and isinstance(is_, dict):
            found += _differences(was, is_, f"{prefix}{key}.")
        elif key in saved and was != is_:
            found.append(f"{prefix}{key} was {was!r}, now {is_!r}")
    return found


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for dist in ("jaxdl", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    versions["python"] = ".".join(map(str, sys.version_info[:3]))
    return versions
