"""What jaxdl's own exceptions share, so that an entry point can tell them from bugs.

Every exception jaxdl raises for something a user can act on -- a work directory in
use, a checkpoint that does not fit, a dataset that is not there, a loss that became
NaN -- derives from :class:`JaxdlError` as well as from the built-in exception it is a
kind of (``ValueError``, ``RuntimeError``, ...), so ``except ValueError`` keeps working.
The experiment scripts print such an error as one line and exit with status 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class JaxdlError(Exception):
    """Base class of the errors whose message says what went wrong and what to do."""


class ArgumentError(JaxdlError, ValueError):
    """An argument outside what it may be; the message names the argument and what it may be."""


class ArgumentTypeError(JaxdlError, TypeError):
    """An argument of a type jaxdl does not take; the message names the argument and the types it takes."""


class ShapeError(JaxdlError, ValueError):
    """Arrays whose shapes do not fit together: a model given images of another size,
    labels shaped ``(N, 1)`` where ``(N,)`` is meant, a kernel larger than its input.
    The message gives both shapes."""
