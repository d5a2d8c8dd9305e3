"""Whether ``fit`` runs an epoch as one ``lax.scan`` over its steps, or step by step.

A scanned epoch is one dispatch from the host instead of one per step; on a GPU or TPU,
where a course model's step takes microseconds, that dispatch is most of an epoch's
time. XLA:CPU runs the same step slower inside the loop a scan becomes, so there only a
step whose compute is about as short as its dispatch gains, and never one with a ``lax``
convolution, whose weight gradient inside a loop body misses XLA's fast kernel. The rule
is the policy's ``scan_epochs`` (``docs/performance.md``, "Scanned epochs").
"""

from __future__ import annotations

import math

from jaxdl.fastpath.policy import active


def scan_epochs(step, state=None, batch=None, steps_per_epoch: int | None = None) -> bool:
    """Whether an epoch of ``step(state, batch)`` (a :func:`jaxdl.fastpath.jit` function, such
    as :func:`jaxdl.train.train_step`) should run as one ``lax.scan`` on the platform at hand.
    ``"small steps"`` needs ``state`` and ``batch`` to trace the step (without them: no)."""
    _, policy = active()
    if policy.scan_epochs != "small steps":
        return policy.scan_epochs == "always"
    if state is None or batch is None or steps_per_epoch == 1:
        return False  # an epoch of one step has no dispatch to save
    traced = step.trace(state, batch)
    if has_primitive(traced.jaxpr.jaxpr, "conv_general_dilated"):
        return False
    cost = traced.lower().cost_analysis() or {}
    return cost.get("flops", math.inf) <= policy.scan_max_step_flops


def has_primitive(jaxpr, name: str) -> bool:
    """Whether ``name`` is used anywhere in ``jaxpr``, sub-programs (jit, scan, cond) included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            return True
        if any(has_primitive(sub, name) for sub in _sub_jaxprs(eqn.params)):
            return True
    return False


def _sub_jaxprs(params: dict):
    """The programs an equation's parameters hold (a jit's body, a scan's, a cond's branches)."""
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(item, "jaxpr", item)  # a ClosedJaxpr holds its Jaxpr
            if hasattr(inner, "eqns"):
                yield inner
