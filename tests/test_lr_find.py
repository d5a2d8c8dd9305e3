"""The learning-rate finder: a growing rate, a stop when the loss diverges, a suggestion
that trains, a plot, and the state left as it was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdl import data, learner, train
from jaxdl.lr_find import LRFinder, LRFindResult, lr_find, plot_lr_find
from jaxdl.models import BlobModel


def blobs():
    x, y = data.make_blobs(jax.random.key(42), n_samples=1000, n_features=2, centers=4)
    return data.make_batches((x, y), 32, key=jax.random.key(0))


def test_lr_find_grows_the_rate_stops_at_divergence_and_leaves_the_state(tmp_path):
    loader = blobs()
    state = train.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)),
                                     train.make_optimizer("sgd", 0.1))
    before = jax.device_get(state.params)
    result = lr_find(state, loader, "sgd", start=1e-5, end=100.0, num_steps=100)
    rates = np.asarray(result.rates)
    np.testing.assert_allclose(rates[1:] / rates[:-1], (1e7) ** (1 / 99), rtol=1e-4)  # the same factor each step
    assert rates[0] == pytest.approx(1e-5) and len(result.losses) < 100  # stopped when the loss blew up
    assert not np.isfinite(result.losses[-1]) or result.losses[-1] > 4 * min(result.losses[:-1])
    assert 1e-4 < result.suggestion < 10
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), before)
    assert int(state.step) == 0
    again = lr_find(state, loader, "adam", start=1e-5, end=100.0, num_steps=20)  # the state is still usable
    assert len(again.rates) <= 20
    # the suggested rate trains
    chosen = train.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)),
                                      train.make_optimizer("sgd", result.suggestion))
    _, history = learner.fit(chosen, loader, epochs=3)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0] or history["train_acc"][-1] > 90
    plot_lr_find(result, tmp_path / "lr_find.png")
    assert Image.open(tmp_path / "lr_find.png").size[0] > 300


def test_the_finder_callback_and_the_result_on_their_own():
    finder = LRFinder(lambda i: 10.0 ** i, num_steps=3)
    state = train.create_train_state(BlobModel(2, 4), jax.random.key(0), jnp.zeros((1, 2)),
                                     train.make_optimizer("sgd", 0.01))
    learner.fit(state, blobs(), epochs=1, callbacks=[finder], scan=False)
    assert finder.rates == [1.0, 10.0, 100.0] and len(finder.losses) == 3  # stopped after num_steps
    result = LRFindResult((1e-3, 1e-2, 1e-1, 1.0), (2.0, 1.0, 0.5, float("nan")))
    assert result.suggestion == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="0 < start < end"):
        lr_find(state, blobs(), start=1.0, end=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        lr_find(state, blobs(), num_steps=1)
