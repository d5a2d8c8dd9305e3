"""``jaxdl.host_memory``: malloc keeps freed blocks, so a second step faults no pages in."""

import os
import platform
import subprocess
import sys

import pytest

from jaxdl import host_memory

# Allocate, touch and free a 64 MB block in a worker thread (as XLA:CPU's threads do with a
# step's temporaries), twice; print the page faults of the second round.
# Allocate, touch and free a 64 MB block in a worker thread with malloc (as XLA:CPU's
# threads do with a step's temporaries; NumPy would not do: it asks for huge pages), twice;
# print the page faults of the second round.
SCRIPT = """
import ctypes, resource, threading
import jaxdl

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 * 2**20

def round_trip():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)

def faults_of(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of(round_trip)
print(faults_of(round_trip))
"""

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the settings are glibc's")


def second_round_faults(setting: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "JAXDL_HOST_MALLOC"}
    if setting is not None:
        env["JAXDL_HOST_MALLOC"] = setting
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@glibc_only
def test_a_freed_block_is_reused_without_page_faults():
    pages = 64 * 2**20 // 4096  # 16,384 pages of 4 KiB
    assert second_round_faults(None) < pages // 20
    # glibc's defaults give the block back and fault every page in again.
    assert second_round_faults("system") > pages // 2


def test_opt_out_and_other_platforms_leave_malloc_alone(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", False)
    monkeypatch.setenv("JAXDL_HOST_MALLOC", "system")
    assert host_memory.keep_freed_memory() is False
    monkeypatch.delenv("JAXDL_HOST_MALLOC")
    monkeypatch.setattr(platform, "libc_ver", lambda *args, **kwargs: ("musl", "1.2"))
    assert host_memory.keep_freed_memory() is False


@glibc_only
def test_the_settings_are_in_force_after_import():
    import jaxdl  # noqa: F401  (imported by the module above already; named for the reader)

    if os.environ.get("JAXDL_HOST_MALLOC", "").lower() == "system":
        pytest.skip("JAXDL_HOST_MALLOC=system in this environment")
    assert host_memory.keep_freed_memory() is True
