"""The package's shape: what `import jaxdl` offers and costs, which module may import
which, the loaders' declared interface, and the Learner's epoch bookkeeping."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import train as T
from jaxdl.data import DeviceBatches, DeviceLoader, Gather, HostBatches, Loader, make_batches
from jaxdl.epoch import BatchEvents, ChunkPlan, EpochSums
from jaxdl.learner import Callback, fit
from jaxdl.models import BlobModel


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_jaxdl_imports_nothing_heavy_and_offers_the_course():
    assert not {"jax", "flax", "optax", "jaxdl.models"} & _modules_after("import jaxdl")
    code = ("import jaxdl\n"
            "assert jaxdl.models.TinyVGG.__name__ == 'TinyVGG'\n"
            "assert callable(jaxdl.fit) and callable(jaxdl.create_train_state) and callable(jaxdl.summary)\n"
            "assert callable(jaxdl.load_dataset) and callable(jaxdl.make_batches)\n"
            "assert jaxdl.layers.Conv2D and jaxdl.data.ImageFolder and jaxdl.run.runtime.setup\n"
            "assert 'models' in dir(jaxdl) and 'make_batches' in dir(jaxdl.data)")
    subprocess.run([sys.executable, "-c", code], check=True)
    import jaxdl
    with pytest.raises(AttributeError, match="no attribute 'kernels'"):
        jaxdl.kernels  # noqa: B018


def test_the_training_code_imports_neither_the_run_machinery_nor_the_download_code():
    loaded = _modules_after("import jaxdl.train, jaxdl.learner, jaxdl.callbacks, jaxdl.checkpoint, jaxdl.losses, "
                            "jaxdl.metrics, jaxdl.lr_find, jaxdl.epoch")
    assert not {m for m in loaded if m.startswith("jaxdl.run")}
    assert not {"jaxdl.data.download", "jaxdl.data.datasets", "tensorflow_datasets"} & loaded


def test_loaders_declare_what_they_are():
    x, y = jnp.ones((10, 2)), jnp.zeros(10, jnp.int32)
    device = make_batches((x, y), 4, jax.random.key(0))
    host = make_batches([(np.ones(2, np.float32), 0)] * 10, 4)
    assert isinstance(device, DeviceLoader) and device.on_device
    assert isinstance(host, Loader) and not isinstance(host, DeviceLoader) and not host.on_device
    assert not isinstance([(x, y)], Loader)
    # what a scanned epoch hands jax.jit as static is a hashable value, not a loader's bound method
    flip = DeviceBatches(x, y, 4, transform=lambda k, b: b[:, ::-1], transform_key=jax.random.key(1))
    assert isinstance(device.gather, Gather) and hash(device.gather) == hash(Gather())
    assert device.gather == Gather() != flip.gather
    assert set(flip.arrays) == {"x", "y", "transform_key"}


def _state():
    return T.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)), T.make_optimizer("sgd", 0.1))


def test_fit_says_what_it_needs_of_its_arguments():
    x = jax.random.normal(jax.random.key(0), (12, 2))
    y = jnp.arange(12, dtype=jnp.int32) % 4
    host = HostBatches([(np.asarray(x[i]), int(y[i])) for i in range(12)], 4)
    with pytest.raises(ValueError, match="scan=True needs batches that live on the device.*HostBatches"):
        fit(_state(), host, epochs=1, scan=True)
    with pytest.raises(ValueError, match="steps_per_execution needs batches that live on the device"):
        fit(_state(), host, epochs=1, steps_per_execution=2)
    with pytest.raises(TypeError, match="train_data must be a loader.*got tuple"):
        fit(_state(), (x, y), epochs=1)
    with pytest.raises(TypeError, match="callbacks must be jaxdl.learner.Callback objects; got object"):
        fit(_state(), make_batches((x, y), 4), epochs=1, callbacks=[object()])
    state, history = fit(_state(), host, epochs=1)  # per batch: the host loader's own way
    assert int(state.step) == 3 and len(history["train_loss"]) == 1


def test_epoch_sums_add_in_step_order_onto_carried_sums_and_find_the_first_nonfinite_step():
    sums = EpochSums(carried={"loss_sum": 1.0, "count": 2.0}, first_step=10)
    assert sums.total == {"loss_sum": 1.0, "count": 2.0}  # nothing new yet
    sums.add({"loss_sum": jnp.float32(0.5), "count": jnp.float32(4.0)})  # one batch: scalars
    sums.add({"loss_sum": jnp.array([0.25, 0.25]), "count": jnp.array([4.0, 4.0])})  # a chunk: one entry a step
    assert sums.total == {"loss_sum": 2.0, "count": 14.0}
    sums.add({"loss_sum": jnp.array([1.0, math.inf, 1.0]), "count": jnp.ones(3)})
    # steps 11 to 13 were finite, then 14; step 15 (as the state counts it after the step) was not
    assert sums.total["loss_sum"] == math.inf and sums.first_nonfinite_step == 15
    assert len(sums.steps) == 3


def test_a_chunk_plan_cuts_where_the_callbacks_want_their_events():
    plan = ChunkPlan(steps_per_epoch=20, steps_per_execution=None)
    assert plan.stop(0, 0, [BatchEvents()]) == 20
    assert plan.stop(0, 0, [BatchEvents(every_steps=7)]) == 7
    assert plan.stop(7, 0, [BatchEvents(every_steps=7)]) == 14
    assert plan.stop(0, 20, [BatchEvents(every_steps=7)]) == 1  # epoch 1 begins at step 20: 21 is due
    assert ChunkPlan(20, steps_per_execution=4).stop(5, 0, []) == 8
    assert plan.stop(3, 0, [BatchEvents(every_seconds=0.5)]) == 4  # the first chunk measures a step
    plan.seconds_per_step = 0.1
    assert plan.stop(3, 0, [BatchEvents(every_seconds=0.5), BatchEvents(every_steps=6)]) == 6
    assert plan.stop(0, 0, [BatchEvents(every_seconds=0.5)]) == 5
    assert BatchEvents(every_steps=1).every_batch and not BatchEvents(every_steps=2).every_batch


def test_a_callback_asks_for_batch_events_one_way():
    class Watches(Callback):
        def after_batch(self, learner):
            pass

    class Steers(Callback):
        def before_batch(self, learner):
            pass

    assert Watches().batch_events(None) == BatchEvents()
    assert Steers().batch_events(None).every_batch  # it may change or cancel a step


def test_the_readme_is_a_front_page_whose_links_lead_into_the_book():
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    links = [target for target in re.findall(r"\]\(([^)]+)\)", readme) if "://" not in target]
    assert links
    for target in links:
        path = target.split("#")[0]
        assert not path or (ROOT / path).exists(), f"README links to {target}, which is not in the repository"
    # the set-up command CI runs is the README's, word for word
    setup = re.search(r"^(python3 -m pip install -e \S+)", readme, re.M).group(1)
    assert setup in (ROOT / ".ci" / "run").read_text()
