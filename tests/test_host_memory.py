"""``jaxdl.host_memory``: a program's freed temporaries are reused, so once the heap has
settled a run faults no pages in."""

import os
import platform
import subprocess
import sys

import pytest

from jaxdl import host_memory

# A program with a 64 MB temporary of XLA's (the product, which the running sum reads
# whole), run six times; prints the fewest page faults of the last four runs (the heap
# takes a run or two to settle) and the dispatch setting.
SCRIPT = """
import resource
import jax, jax.numpy as jnp
import jaxdl

@jax.jit
def f(a, b):
    return jnp.cumsum(jnp.tanh(a @ b), axis=0)[-1]

a, b = jnp.ones((8192, 8)), jnp.ones((8, 2048))
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(a, b).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults[2:]), jax.config.values["jax_cpu_enable_async_dispatch"])
"""

glibc_only = pytest.mark.skipif(not host_memory.on_glibc(), reason="the settings are glibc's")


def later_runs(**env_settings: str) -> tuple[int, bool]:
    env = {k: v for k, v in os.environ.items() if k not in ("JAXDL_HOST_MALLOC", "JAX_CPU_ENABLE_ASYNC_DISPATCH")}
    env.update(env_settings)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    faults, async_dispatch = out.stdout.split()[-2:]
    return int(faults), async_dispatch == "True"


@glibc_only
def test_later_runs_reuse_the_pages_of_earlier_ones():
    pages = 64 * 2**20 // 4096  # 16,384 pages of 4 KiB
    faults, async_dispatch = later_runs()
    assert faults < pages // 20 and not async_dispatch
    # glibc's and JAX's defaults: the block goes back to the kernel and every page faults in again.
    faults, async_dispatch = later_runs(JAXDL_HOST_MALLOC="system")
    assert faults > pages // 2 and async_dispatch


@glibc_only
def test_a_dispatch_setting_in_the_environment_is_the_users():
    _, async_dispatch = later_runs(JAX_CPU_ENABLE_ASYNC_DISPATCH="true")
    assert async_dispatch


def test_opt_out_and_other_platforms_leave_malloc_alone(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.setenv("JAXDL_HOST_MALLOC", "system")
    assert host_memory.keep_freed_memory() is False
    monkeypatch.delenv("JAXDL_HOST_MALLOC")
    monkeypatch.setattr(platform, "libc_ver", lambda *args, **kwargs: ("musl", "1.2"))
    assert host_memory.keep_freed_memory() is False
