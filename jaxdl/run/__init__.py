"""Running an experiment: what the experiment scripts and the ``jaxdl`` command share,
above the course and apart from it (nothing in the course imports it).

* :mod:`~jaxdl.run.experiment` -- an experiment script's flags, work directory,
  ``results.json`` and plots;
* :mod:`~jaxdl.run.workdir` -- a run's marked, locked work directory and the checks a
  resume makes;
* :mod:`~jaxdl.run.arguments` -- the argparse types the flags are checked with;
* :mod:`~jaxdl.run.cli` -- the ``jaxdl`` command;
* :mod:`~jaxdl.run.runtime` -- :func:`~jaxdl.run.runtime.setup`, the process-wide settings
  an entry script opts into (never made on import).
"""

from jaxdl.support.lazy import lazy_names

__all__ = ["arguments", "cli", "experiment", "runtime", "workdir"]
__getattr__, __dir__ = lazy_names(__name__, {name: name for name in __all__})
