"""The persistent compilation cache that ``import jaxdl`` switches on."""

import os
import subprocess
import sys

SCRIPT = """
import jax, jax.numpy as jnp, jaxdl
from jaxdl import models, train
print("cache:", jax.config.jax_compilation_cache_dir)
model, shape = models.COURSE_MODELS["FashionMNISTModelV2"]
x = jnp.zeros((4, *shape))
state = train.create_train_state(model, jax.random.key(0), x[:1], train.make_optimizer("sgd", 0.1))
state, metrics = train.train_step(state, {"x": x, "y": jnp.zeros(4, jnp.int32), "mask": jnp.ones(4)})
jax.block_until_ready(metrics)
"""


def run(env_cache: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAXDL_CACHE_DIR"] = env_cache
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def test_compiled_train_step_is_written_to_the_cache_folder(tmp_path):
    folder = tmp_path / "xla"

    def train_step_entries():
        return sorted(path.name for path in folder.iterdir() if path.name.startswith("jit__train_step"))

    assert f"cache: {folder}" in run(str(folder))
    entries = train_step_entries()
    assert len(entries) == 1, f"expected the train step in {sorted(p.name for p in folder.iterdir())}"
    # A second process finds it: same program, same key, no second entry. (Small programs
    # may or may not be written, by how long they took to compile: not compared.)
    run(str(folder))
    assert train_step_entries() == entries


def test_off_leaves_jax_alone():
    assert "cache: None" in run("off")
