"""Exercises that check themselves: ``check("03.2", answer)`` at the end of an exercise.

Every notebook ends with its chapter's exercises. Each exercise asks for something a
checker can run -- a function, an array, a trained state, a model -- and ``check``
runs it on inputs the notebook never showed and prints one line: passed, or what is
wrong and a hint (the two shapes, the dtype, a key used twice, NCHW where NHWC was
meant, probabilities where logits were meant, a parameter count, a loss that did not
go down). It never prints the solution; the notebooks keep theirs in hidden cells::

    from jaxdl.exercises import check

    def random_matrix(key):
        return jax.random.uniform(key, (7, 7))

    check("01.1", random_matrix)
    # 01.1 passed: a (7, 7) float array from the key: the same for the same key, new for a new one

Names are ``"NN.k"``: notebook ``NN``, exercise ``k`` of its list. :func:`evaluate`
returns the :class:`Verdict` instead of printing it; :func:`exercises` lists them all.
"""

from __future__ import annotations

import importlib

from jaxdl.errors import ArgumentError
from jaxdl.exercises import checking
from jaxdl.exercises.checking import EXERCISES, Exercise, Verdict, Wrong

CHAPTERS = ("jax_fundamentals", "workflow", "classification", "computer_vision", "convolutions", "autoencoder",
            "custom_datasets", "learner", "nnx")
"""The modules holding each notebook's checkers, in notebook order (01 to 09)."""

__all__ = ["Exercise", "Verdict", "check", "evaluate", "exercises"]


def exercises() -> dict[str, Exercise]:
    """Every exercise by name, in notebook order."""
    for chapter in CHAPTERS:
        importlib.import_module(f"{__name__}.{chapter}")
    return dict(sorted(EXERCISES.items()))


def evaluate(name: str, answer) -> Verdict:
    """Check ``answer`` to exercise ``name`` and return the verdict (see :func:`check`)."""
    known = exercises()
    if name not in known:
        chapter = [n for n in known if n.split(".")[0] == str(name).split(".")[0]]
        raise ArgumentError(f"there is no exercise {name!r}; "
                            + (f"notebook {name.split('.')[0]} has {', '.join(chapter)}" if chapter
                               else f"exercises are named like '03.2' (notebook 03, exercise 2): {', '.join(known)}"))
    try:
        return Verdict(name, True, known[name].check(answer))
    except Wrong as wrong:
        return Verdict(name, False, str(wrong))
    except RuntimeError as err:
        if not checking.donated(err):
            raise
        return Verdict(name, False, checking.DONATED)


def check(name: str, answer) -> None:
    """Check ``answer`` to exercise ``name`` (``"07.3"``: notebook 07, exercise 3) and print
    one line: passed, or what is not right yet with a hint."""
    print(evaluate(name, answer))
