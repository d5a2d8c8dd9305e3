"""A package's names imported on first use (PEP 562), so that importing the package
itself imports nothing heavy and changes nothing.

``import jaxdl`` then takes a few milliseconds, ``jaxdl.models.TinyVGG`` imports
:mod:`jaxdl.models` when it is first read, and importing one module of a package (say
:mod:`jaxdl.data.loader`, which the training step needs) does not pull in its
siblings (the dataset download code).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A ``__getattr__`` and a ``__dir__`` for ``package``: ``names`` maps each public name
    to the submodule it comes from (a submodule maps to its own name). The value is
    kept in the package once read."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{names[name]}")
        value = module if names[name] == name else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
