"""Host memory: keep the blocks XLA:CPU frees for its next step instead of giving them back.

Not a lesson of the course, but the reason a CPU epoch of the bigger course models runs
at the speed it does. XLA:CPU allocates a compiled program's temporaries -- every
activation and gradient of a train step -- with ``malloc`` at each run and frees them at
the end. glibc's ``malloc`` serves a block over its mmap threshold (at most 32 MB), or
any block of a worker thread's arena, from fresh pages that it returns to the kernel on
``free``; the next step touches them again and the kernel faults them back in one 4 KiB
page at a time, zeroed. ``MNISTBatchNormCNN``'s step at batch 120 did that for 164 MB
(40,000 page faults) every step: 221 ms a step on the 2-core CPU of
``benchmarks/README.md``, 179 ms without the faults. PyTorch, whose tensors are freed and
reallocated one by one, is mostly under the threshold (10,000 faults a step for the
same model).

:func:`keep_freed_memory` asks glibc (``mallopt``) for one arena shared by all threads,
no ``mmap`` for big blocks, and a high trim threshold, so that a freed block stays in
the heap and the next step reuses its pages. :mod:`jaxdl` calls it when imported. The
price is memory: the heap keeps up to :data:`TRIM_THRESHOLD_BYTES` of freed blocks, and
while a step is queued behind the running one both hold their own temporaries (peak
resident memory of ``MNISTBatchNormCNN``'s loop 535 -> 824 MB).

* ``JAXDL_HOST_MALLOC=system`` leaves glibc's settings alone;
* it only acts on Linux with glibc, and only on threads that have not allocated yet:
  JAX starts its CPU threads at its first computation, so import :mod:`jaxdl` before it
  (``import jax`` alone starts nothing).
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

TRIM_THRESHOLD_BYTES = 1 << 30
"""Freed memory at the top of the heap goes back to the kernel only beyond this (1 GiB)."""

_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's ``malloc`` to keep freed blocks for reuse (see the module docstring).

    Returns ``True`` once the settings are in force (also on later calls), ``False``
    where they were not applied: ``JAXDL_HOST_MALLOC=system``, or not Linux with glibc.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("JAXDL_HOST_MALLOC", "").lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # One arena: a worker thread's own arena deletes its heap when the heap empties, so
    # its blocks would come back as fresh pages whatever the other two settings say.
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    _applied = all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    return _applied
