"""How jaxdl compiles its steps: ``jax.jit``, for the policy in force.

:func:`jit` is ``jax.jit`` with two things added, both chosen when the function is
called (not at import, which would start JAX's backends before a user could configure
them): the XLA options of the platform's :class:`~jaxdl.fastpath.Policy` (on a CPU,
convolutions on XLA's own kernels rather than YNNPACK's; ``docs/performance.md``), and
that policy in force while the function is traced, so the layers inside pick their
kernels for the platform the program is compiled for. Another policy
(:func:`jaxdl.fastpath.use`) compiles anew. ``jaxdl.train``'s steps use it; wrap your own
jitted functions with it to get the same kernels and options.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import jax

from jaxdl.fastpath.policy import Policy, compiling_for, current, default_platform


@functools.cache
def compiler_options(platform: str, options: tuple[tuple[str, str], ...]) -> dict[str, str] | None:
    """``options`` as the dict ``jax.jit`` takes, or ``None``: when there are none, and
    when this XLA rejects them (they are experimental; a newer jaxlib may rename them),
    in which case a warning says so and programs compile with XLA's defaults, which are
    correct, only slower."""
    if not options:
        return None
    as_dict = dict(options)
    try:
        jax.jit(lambda x: x + 1, compiler_options=as_dict).lower(1.0).compile()
    except Exception as error:  # noqa: BLE001  (any rejection means: compile without them)
        warnings.warn(f"jaxdl compiles without its {platform} options {as_dict}: this XLA rejected them "
                      f"({type(error).__name__}: {str(error)[:200]})", RuntimeWarning, stacklevel=4)
        return None
    return as_dict


class _PolicyJit:
    """``jax.jit(fun, **jit_kwargs)`` compiled for the platform of JAX's default device under
    the policy in force for it, chosen at each call. Calls, ``.lower``, ``.trace`` and every
    other attribute go to the jitted function of that policy.

    A call is a train step's dispatch, so the choice costs two identity checks when nothing
    changed since the last call, and a dictionary lookup when something did; the policy is
    put in force by the traced function itself, so a call that JAX finds compiled runs no
    Python of jaxdl's beyond that choice."""

    def __init__(self, fun: Callable, jit_kwargs: dict[str, Any]):
        functools.update_wrapper(self, fun)
        self._fun, self._jit_kwargs = fun, jit_kwargs
        self._jitted: dict[tuple[str, int], tuple[Policy, Callable]] = {}
        self._last: tuple | None = None  # (default device, policies, jitted)

    def _for_now(self) -> Callable:
        device, policies = jax.config.jax_default_device, current()
        last = self._last
        if last is not None and last[0] is device and last[1] is policies:
            return last[2]
        platform = default_platform()
        policy = policies.for_platform(platform)
        entry = self._jitted.get((platform, id(policy)))
        if entry is None or entry[0] is not policy:  # the policy object is kept, so its id is not reused
            entry = (policy, jax.jit(self._traced_under(platform, policy),
                                     compiler_options=compiler_options(platform, policy.compiler_options),
                                     **self._jit_kwargs))
            self._jitted[(platform, id(policy))] = entry
        self._last = (device, policies, entry[1])
        return entry[1]

    def _traced_under(self, platform: str, policy: Policy) -> Callable:
        """``fun`` with ``policy`` in force while JAX traces it. A function object of its
        own for each policy: JAX caches traces by function, and a trace made under one
        policy holds that policy's kernels."""

        @functools.wraps(self._fun)
        def traced(*args, **kwargs):
            with compiling_for(platform, policy):
                return self._fun(*args, **kwargs)

        return traced

    def __call__(self, *args, **kwargs):
        return self._for_now()(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):  # private and dunder names are this wrapper's own
            raise AttributeError(name)
        return getattr(self._for_now(), name)


def jit(fun: Callable | None = None, /, **jit_kwargs):
    """``jax.jit`` for the policy in force (see the module docstring); use it as
    ``jit(f, donate_argnums=0)``, ``@jit`` or ``@jit(static_argnames="n")``."""
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _PolicyJit(fun, jit_kwargs)
