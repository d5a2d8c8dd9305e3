"""``import jaxdl`` changes nothing outside jaxdl; ``jaxdl.run.runtime.setup()`` makes each of
its process-wide settings, and each can be left out. Every check runs in a fresh
process, where the settings are made before JAX's first computation."""

import json
import os
import platform
import subprocess
import sys

import pytest

from jaxdl.run import runtime

glibc_only = pytest.mark.skipif(not runtime.on_glibc(), reason="the malloc settings are glibc's")

# What a process looks like from outside jaxdl: JAX's settings, and whether glibc serves a
# 64 MB block from mmap (the chunk header's IS_MMAPPED bit), before and after jaxdl.
PROBE = """
import ctypes, json, platform, sys
import jax, jax.numpy as jnp, matplotlib

def outside():
    mmapped = None
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        block = libc.malloc(64 * 2**20)
        mmapped = bool(ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value & 2)
        libc.free(ctypes.c_void_p(block))
    return {"async": jax.config.values["jax_cpu_enable_async_dispatch"],
            "cache": jax.config.jax_compilation_cache_dir, "cache_max": jax.config.jax_compilation_cache_max_size, "mmapped": mmapped,
            "backend": matplotlib.rcParams._get_backend_or_none()}

before = outside()
import jaxdl
from jaxdl import models, plots, train
SETUP
model, shape = models.COURSE_MODELS["{MODEL_NAME}"]
x = jnp.zeros((4, *shape))
state = train.create_train_state(model, jax.random.key(0), x[:1], train.make_optimizer("sgd", 0.1))
state, metrics = train.train_step(state, {"x": x, "y": jnp.zeros(4, jnp.int32), "mask": jnp.ones(4)})
jax.block_until_ready(metrics)
print(json.dumps({"before": before, "after": outside(), "setup": SETTINGS}))
"""


def probe(setup: str = "", env=None, model: str = "BlobModel") -> dict:
    script = PROBE.replace("{MODEL_NAME}", model).replace("SETUP", f"settings = jaxdl.run.runtime.setup({setup})" if setup is not None else "")
    script = script.replace("SETTINGS", "None" if setup is None else "[str(settings.compilation_cache), "
                            "settings.keep_freed_memory, settings.sync_cpu_dispatch]")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("JAXDL_HOST_MALLOC", "JAX_CPU_ENABLE_ASYNC_DISPATCH", "JAX_COMPILATION_CACHE_DIR",
                          "JAXDL_CACHE_DIR", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", script], env={**clean, **(env or {})}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_and_using_jaxdl_changes_nothing_outside_it():
    seen = probe(setup=None)
    assert seen["after"] == seen["before"]
    assert seen["before"]["async"] is True and seen["before"]["cache"] is None
    if runtime.on_glibc():
        assert seen["after"]["mmapped"] is True  # glibc's defaults: a 64 MB block comes from mmap


@glibc_only
def test_setup_makes_each_setting(tmp_path):
    seen = probe("cache_dir=%r, cache_max_bytes=10**8" % str(tmp_path / "xla"), model="FashionMNISTModelV2")
    assert seen["setup"] == [str(tmp_path / "xla"), True, True]
    assert seen["after"] == {**seen["before"], "async": False, "cache": str(tmp_path / "xla"),
                             "cache_max": 10**8, "mmapped": False}
    assert any(p.name.startswith("jit__train_step") for p in (tmp_path / "xla").iterdir())


@glibc_only
def test_each_setting_can_be_left_out(tmp_path):
    seen = probe("compilation_cache=False, keep_freed_memory=False")
    assert seen["setup"] == ["None", False, True]
    assert seen["after"] == {**seen["before"], "async": False}
    seen = probe("sync_cpu_dispatch=False", env={"JAXDL_CACHE_DIR": "off"})
    assert seen["setup"] == ["None", True, False]
    assert seen["after"] == {**seen["before"], "mmapped": False}
    seen = probe("", env={"JAXDL_HOST_MALLOC": "system", "JAX_CPU_ENABLE_ASYNC_DISPATCH": "true",
                          "JAXDL_CACHE_DIR": str(tmp_path / "env_cache")})
    assert seen["setup"] == [str(tmp_path / "env_cache"), False, False]
    assert seen["after"]["mmapped"] is True and seen["after"]["async"] is True


# A program with a 64 MB temporary of XLA's (the product, which the running sum reads
# whole), run six times; prints the fewest page faults of the last four runs (the heap
# takes a run or two to settle).
FAULTS = """
import resource, sys
import jax, jax.numpy as jnp, jaxdl
if sys.argv[1] == "setup":
    jaxdl.run.runtime.setup(compilation_cache=False)

@jax.jit
def f(a, b):
    return jnp.cumsum(jnp.tanh(a @ b), axis=0)[-1]

a, b = jnp.ones((8192, 8)), jnp.ones((8, 2048))
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(a, b).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults[2:]))
"""


@glibc_only
def test_with_setup_later_steps_reuse_the_pages_of_earlier_ones():
    pages = 64 * 2**20 // 4096  # 16,384 pages of 4 KiB

    def faults(mode):
        env = {k: v for k, v in os.environ.items() if k not in ("JAXDL_HOST_MALLOC", "JAX_CPU_ENABLE_ASYNC_DISPATCH")}
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    assert faults("setup") < pages // 20
    assert faults("none") > pages // 2  # glibc's and JAX's defaults: the block is faulted in again every run


def test_off_other_platforms_and_a_users_cache_are_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXDL_HOST_MALLOC", "system")
    monkeypatch.setattr(runtime, "_malloc_set", False)
    assert runtime.keep_freed_host_memory() is False
    monkeypatch.delenv("JAXDL_HOST_MALLOC")
    monkeypatch.setattr(platform, "libc_ver", lambda *args, **kwargs: ("musl", "1.2"))
    assert runtime.keep_freed_host_memory() is False
    monkeypatch.setenv("JAXDL_CACHE_DIR", "off")
    assert runtime.enable_compilation_cache() is None
    (tmp_path / "file").write_text("")
    assert runtime.enable_compilation_cache(tmp_path / "file" / "cache") is None  # cannot be made: no cache


def test_a_capped_cache_takes_entries_written_without_a_cap(tmp_path, monkeypatch):
    # an entry without its access-time file (another process, no cap; a kill between the two
    # writes) is given the oldest time, so that JAX's eviction can read every entry
    (tmp_path / "jit_f-1234-cache").write_bytes(b"compiled")
    (tmp_path / "jit_g-5678-cache").write_bytes(b"compiled")
    (tmp_path / "jit_g-5678-atime").write_bytes((123).to_bytes(8, "little"))
    monkeypatch.setattr(runtime.jax.config, "update", lambda *args: None)  # leave this process's JAX alone
    assert runtime.enable_compilation_cache(tmp_path, 10**6) == tmp_path
    assert int.from_bytes((tmp_path / "jit_f-1234-atime").read_bytes(), "little") == 0
    assert int.from_bytes((tmp_path / "jit_g-5678-atime").read_bytes(), "little") == 123
