"""jaxdl.exercises: every checker passes its notebook's solution and catches two typical
wrong answers with the hint it should give; every notebook's exercises are checked."""

import re

import jax
import jax.numpy as jnp
import nbformat
import numpy as np
import optax
import pytest
from flax import nnx

from conftest import ROOT
from jaxdl import checkpoint, data, learner, train
from jaxdl.errors import ArgumentError
from jaxdl.exercises import check, evaluate, exercises
from jaxdl.exercises.checking import expect_shape, Wrong
from jaxdl.learner import CancelFitException
from jaxdl.models import BlobModel, CircleModelV2, FashionMNISTModelV2, LinearRegressionModel, TinyVGG


def passes(name, answer):
    verdict = evaluate(name, answer)
    assert verdict.passed, str(verdict)
    return verdict


def fails(name, answer, hint):
    verdict = evaluate(name, answer)
    assert not verdict.passed, f"{name} passed a wrong answer: {verdict}"
    assert re.search(hint, verdict.message), str(verdict)
    assert "\n" not in str(verdict)
    return verdict


# 01: JAX fundamentals
def test_01_random_matrix():
    passes("01.1", lambda key: jax.random.uniform(key, (7, 7)))
    fails("01.1", lambda key: jax.random.uniform(jax.random.key(0), (7, 7)), "different keys gave the same")
    fails("01.1", lambda key: jax.random.uniform(key, (7,)), r"shape \(7,\) where \(7, 7\)")
    fails("01.1", lambda key: np.random.rand(7, 7), "same key gave different arrays")
    fails("01.1", jax.random.uniform(jax.random.key(0), (7, 7)), "asks for a function")


def test_01_multiply():
    passes("01.2", lambda a, b: a @ b.T)
    fails("01.2", lambda a, b: a * b, "element by element")
    fails("01.2", lambda a, b: a @ b, "transpose the second")
    fails("01.2", lambda a, b: b @ a.T, r"\(1, 7\) where \(7, 1\)")


def test_01_two_draws():
    def solution(key):
        a, b = jax.random.split(key)
        return jax.random.uniform(a, (7, 7)), jax.random.uniform(b, (7, 7))

    passes("01.3", solution)
    fails("01.3", lambda key: (jax.random.uniform(key, (7, 7)), jax.random.uniform(key, (7, 7))), "used for both")
    fails("01.3", lambda key: (np.random.rand(7, 7), np.random.rand(7, 7)), "same key gave other arrays")


def test_01_extremes():
    passes("01.4", lambda x: (x.max(), x.min(), x.argmax(), x.argmin()))
    fails("01.4", lambda x: (x.max(axis=0), x.min(axis=0), x.argmax(axis=0), x.argmin(axis=0)), "reduce the whole")
    fails("01.4", lambda x: (x.min(), x.max(), x.argmin(), x.argmax()), "swapped")
    fails("01.4", lambda x: (x.max(), x.min(), x.max(), x.min()), "positions, not values")


def test_01_squeeze_all():
    passes("01.5", lambda x: x.squeeze())
    fails("01.5", lambda x: x.reshape(10), "raised")
    fails("01.5", lambda x: x[0, 0, 0], r"for an input of shape \(1, 4, 1, 3\)")


# 02: the workflow
@pytest.fixture(scope="module")
def line_state():
    X_tr, y_tr, X_te, y_te = data.make_linear(weight=0.3, bias=0.9, step=0.01)
    def fitted(epochs):
        state = train.create_train_state(LinearRegressionModel(), jax.random.key(42), X_tr[:1],
                                         train.make_optimizer("sgd", 0.01), loss="l1")
        return learner.fit(state, data.make_batches((X_tr, y_tr), len(X_tr)), epochs=epochs)[0] if epochs else state

    return fitted(0), fitted(10), fitted(300), X_te


def test_02_make_data():
    passes("02.1", lambda w, b: data.make_linear(weight=w, bias=b, step=0.01))
    fails("02.1", lambda w, b: data.make_linear(weight=0.3, bias=0.9, step=0.01), "use the weight and bias")
    fails("02.1", lambda w, b: data.make_linear(weight=w, bias=b, step=0.02), r"40 \+ 10 points where 100")
    fails("02.1", lambda w, b: data.make_linear(weight=w, bias=b, step=0.01, train_fraction=0.5), "50/50 split")


def test_02_trained_state_and_its_predictions(line_state):
    untrained, few, trained, X_te = line_state
    passes("02.2", trained)
    fails("02.2", untrained, "did not go down")
    fails("02.2", few, "went down, but")
    fails("02.2", {"params": trained.params}, "trained state")
    passes("02.3", train.make_predictions(trained, X_te))
    fails("02.3", train.make_predictions(trained, data.make_linear(weight=0.3, bias=0.9, step=0.01)[0]), "X_train")
    fails("02.3", train.make_predictions(untrained, X_te), "away from the line")


def test_02_roundtrip():
    def solution(state, path):
        checkpoint.save_model(path, state)
        return checkpoint.load_model(path, LinearRegressionModel().init(jax.random.key(0), jnp.zeros((1, 1))))

    passes("02.4", solution)
    fails("02.4", lambda state, path: state.variables, "nothing was written")

    def returns_own(state, path):
        checkpoint.save_model(path, state)
        return state.variables

    fails("02.4", returns_own, "own arrays")
    fails("02.4", lambda state, path: checkpoint.save_model(path, state), "should return the loaded variables")


# 03: classification
def test_03_tanh():
    passes("03.1", lambda x: (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) + jnp.exp(-x)))
    fails("03.1", jnp.tanh, "calls tanh itself")
    fails("03.1", lambda x: 1 / (1 + jnp.exp(-x)), "sigmoid")
    fails("03.1", lambda x: (jnp.exp(x) - jnp.exp(-x)) / (jnp.exp(x) - jnp.exp(-x)), "not right")


def test_03_spirals():
    X, y = data.make_spirals(jax.random.key(0))
    X_tr, X_te, y_tr, y_te = data.train_test_split(jax.random.key(5), X, y, test_size=0.2)
    def blob_model():
        return train.create_train_state(BlobModel(2, 3, hidden_units=32), jax.random.key(42), X_tr[:1],
                                        train.make_optimizer("adam", 0.02))

    trained, _ = learner.fit(blob_model(), data.make_batches((X_tr, y_tr), len(X_tr)), epochs=500)
    passes("03.2", trained)
    fails("03.2", blob_model(), "near chance")
    circle = train.create_train_state(CircleModelV2(), jax.random.key(0), X_tr[:1], train.make_optimizer("sgd", 0.1))
    fails("03.2", circle, r"3 logits a point")


def test_03_one_linear_map():
    def solution(params):
        (W1, b1), (W2, b2), (W3, b3) = ((params[f"Dense_{i}"]["kernel"], params[f"Dense_{i}"]["bias"])
                                        for i in range(3))
        return W1 @ W2 @ W3, (b1 @ W2 + b2) @ W3 + b3

    passes("03.3", solution)
    fails("03.3", lambda p: (p["Dense_0"]["kernel"], p["Dense_0"]["bias"]), r"W has shape \(2, 10\)")
    fails("03.3", lambda p: (p["Dense_0"]["kernel"] @ p["Dense_1"]["kernel"] @ p["Dense_2"]["kernel"],
                             p["Dense_2"]["bias"]), "carry each bias")


# 04: computer vision
@pytest.mark.data
def test_04_digits():
    mnist = data.load_dataset("mnist")
    digits = mnist.train.take(6_000)
    def v2():
        return train.create_train_state(FashionMNISTModelV2(1, 10, 10), jax.random.key(42), digits.images[:1],
                                        train.make_optimizer("sgd", 0.1))

    state = v2()
    trained, _ = learner.fit(state, data.make_batches(digits, 32, key=jax.random.key(0)), epochs=1)
    passes("04.1", trained)
    fails("04.1", state, "give the state that fit returned")
    fails("04.1", v2(), "not Fashion-MNIST")
    wider = train.create_train_state(FashionMNISTModelV2(1, 20, 10), jax.random.key(42), digits.images[:1],
                                     train.make_optimizer("sgd", 0.1))
    fails("04.1", wider, "parameters where FashionMNISTModelV2")


def test_04_misclassified_and_most_confused():
    passes("04.2", lambda predicted, labels: np.flatnonzero(predicted != labels))
    fails("04.2", lambda predicted, labels: predicted != labels, "mask")
    fails("04.2", lambda predicted, labels: np.flatnonzero(predicted == labels), "got right")

    def solution(matrix):
        off = matrix - np.diag(np.diag(matrix))
        return np.unravel_index(off.argmax(), off.shape)

    passes("04.3", solution)
    fails("04.3", lambda matrix: np.unravel_index(matrix.argmax(), matrix.shape), "diagonal")
    fails("04.3", lambda matrix: solution(matrix)[::-1], "swapped")


# 05: convolutions
def test_05_vertical_edges():
    vertical = np.array([[-1.0, 0.0, 1.0]] * 3)
    passes("05.1", vertical)
    fails("05.1", vertical.T, "horizontal edges")
    fails("05.1", vertical + vertical.T, "also responds to horizontal edges")
    fails("05.1", -vertical, "flip it")
    fails("05.1", np.full((3, 3), 1 / 9), "add up to 0")
    fails("05.1", np.ones((5, 5)), r"shape \(5, 5\)")


def test_05_output_size_and_parameters():
    passes("05.2", lambda n, k, s, p: (n + 2 * p - k) // s + 1)
    fails("05.2", lambda n, k, s, p: (n + 2 * p - k) / s + 1, "round the division down")
    fails("05.2", lambda n, k, s, p: (n + p - k) // s + 1, "both sides")
    fails("05.2", lambda n, k, s, p: (n + 2 * p - k) // s, r"\+ 1")
    passes("05.3", lambda c_in, c_out, k: k * k * c_in * c_out + c_out)
    fails("05.3", lambda c_in, c_out, k: k * k * c_in * c_out, "bias")
    fails("05.3", lambda c_in, c_out, k: k * k * c_out + c_out, "every input channel")


def test_05_same_size_and_seeing_top_left():
    passes("05.4", lambda k: (1, (k - 1) // 2))
    fails("05.4", lambda k: (1, 1), r"5x5 kernel, stride 1 and padding 1 .* 26x26")
    fails("05.4", lambda k: (2, (k - 1) // 2), "stride above 1")

    def solution(k, s, p):  # window r covers rows r*s - p .. r*s - p + k - 1
        reach = [r for r in range(28) if r * s - p <= 0 <= r * s - p + k - 1]
        return {(r, c) for r in reach for c in reach}

    passes("05.5", solution)
    fails("05.5", lambda k, s, p: {(0, 0)}, "more windows than the first")
    fails("05.5", lambda k, s, p: {(r, c) for r in range(2) for c in range(2)}, "includes|leaves out")


# 06: the autoencoder
def test_06_code_size_and_noise():
    from jaxdl.models import ConvAutoencoder

    def solution(channels):  # the notebook's, with shapes only (faster)
        model, image = ConvAutoencoder(channels=channels), jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
        variables = jax.eval_shape(model.init, jax.random.key(0), image)
        code = jax.eval_shape(lambda v, x: model.apply(v, x, method=ConvAutoencoder.encode), variables, image)
        return code.size // code.shape[0]

    passes("06.1", solution)
    fails("06.1", lambda channels: (4, 4, channels[-1]), "a shape")
    fails("06.1", lambda channels: 4 * 4 * channels[0], "count of the encoder.s output")
    passes("06.2", lambda key, images: jnp.clip(images + 0.2 * jax.random.normal(key, images.shape), 0, 1))
    fails("06.2", lambda key, images: images + 0.2 * jax.random.normal(key, images.shape), "clip")
    fails("06.2", lambda key, images: jnp.clip(images + 0.2 * jax.random.normal(jax.random.key(3), images.shape),
                                               0, 1), "two different keys")
    fails("06.2", lambda key, images: jnp.clip(images + jax.random.normal(key, images.shape), 0, 1), "where 0.2")


# 07: custom datasets
def test_07_underfitting_choices():
    listed = next(cell.source for cell in nbformat.read(ROOT / "notebooks" / "07_custom_datasets.ipynb", as_version=4).cells
                  if cell.source.startswith("## Exercises"))
    from jaxdl.exercises.custom_datasets import UNDERFITTING
    assert all(f"{letter}) {choice}" in " ".join(listed.split()) for letter, choice in UNDERFITTING.items())
    passes("07.1", "ace")
    passes("07.1", {"A", "c", "e"})
    fails("07.1", "abc", "not b")
    fails("07.1", "ac", "1 of the three is missing")
    fails("07.1", "acz", "the choices are")


def test_07_history_and_wider_model():
    history = {"train_loss": [1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "test_loss": [1.1, 1.0, 1.0, 1.0] * 2}
    passes("07.2", history)
    fails("07.2", {k: v[:5] for k, v in history.items()}, "5 epochs")
    fails("07.2", {"train_loss": history["train_loss"][::-1], "test_loss": history["test_loss"]}, "did not go down")
    images = jax.random.uniform(jax.random.key(0), (8, 64, 64, 3))
    labels = jnp.arange(8) % 3

    def trained(hidden_units):
        state = train.create_train_state(TinyVGG(3, hidden_units, 3), jax.random.key(42), images[:1],
                                         train.make_optimizer("adam", 1e-3))
        return state, learner.fit(state, data.make_batches((images, labels), 8), epochs=1)[0]  # state is donated

    fresh, wider = trained(20)
    passes("07.3", wider)
    fails("07.3", fresh, "give the state that fit returned")
    fails("07.3", train.create_train_state(TinyVGG(3, 20, 3), jax.random.key(0), images[:1],
                                           train.make_optimizer("adam", 1e-3)), "not been trained")
    fails("07.3", trained(10)[0], "hidden_units=20")


def test_07_twice_the_data():
    def dataset(per_class, shape=(64, 64, 3)):
        labels = np.repeat(np.arange(3), per_class).astype(np.int32)
        return data.ArrayDataset.from_uint8(np.zeros((len(labels), *shape), np.uint8), labels,
                                            ("Sandal", "Sneaker", "Ankle boot"))

    passes("07.4", dataset(150))
    fails("07.4", dataset(75), "twice the data")
    fails("07.4", dataset(150, (28, 28, 1)), r"\(64, 64, 3\)")


# 08: the learner
class SmallLearner:
    """The notebook's Learner reduced to what exercise 08.2 changes: fit, its optimizer,
    its callbacks and its parameters."""

    def __init__(self, lr, opt_func=optax.sgd, keeps=True, uses_lr=True):
        self.lr, self.opt_func, self.cbs, self.keeps, self.uses_lr = lr, opt_func, [], keeps, uses_lr

    def fit(self, epochs, lr=None, keep_params=False):
        tx = self.opt_func(self.lr if lr is None or not self.uses_lr else lr)
        if not (keep_params and self.keeps):
            self.params = {"w": jnp.arange(3.0)}
        opt_state = tx.init(self.params)
        try:
            for _ in range(epochs * 3):
                updates, opt_state = tx.update({"w": jnp.ones(3)}, opt_state, self.params)
                self.params = optax.apply_updates(self.params, updates)
                for cb in self.cbs:
                    cb.after_batch(self)
        except CancelFitException:
            pass


def test_08_callback_and_learner():
    class ProgressCB:
        def after_batch(self, learn):
            if learn.training and learn.iter % 10 == 0:
                print(f"  batch {learn.iter}: loss {float(learn.loss):.4f}")

    class EveryBatch:
        def after_batch(self, learn):
            print(f"loss {float(learn.loss):.4f}")

    class AlsoEvaluating:
        def after_batch(self, learn):
            if learn.iter % 10 == 0:
                print(f"loss {float(learn.loss):.4f}")

    passes("08.1", ProgressCB)
    passes("08.1", ProgressCB())
    fails("08.1", EveryBatch, "during evaluation")
    fails("08.1", AlsoEvaluating, "during evaluation")
    fails("08.1", type("NoLoss", (), {"after_batch": lambda self, learn: print("x") if learn.training and
                                      learn.iter % 10 == 0 else None}), "do not show")
    passes("08.2", SmallLearner(0.2))
    fails("08.2", SmallLearner(0.2, uses_lr=False), "pass lr")
    fails("08.2", SmallLearner(0.2, keeps=False), "fresh parameters")
    learn = SmallLearner(0.2)
    own_cbs = learn.cbs
    evaluate("08.2", learn)
    assert learn.cbs is own_cbs and learn.opt_func is optax.sgd  # the check puts back what it changed


def test_08_steepest():
    def solution(result):
        slope = np.gradient(result.smoothed(), np.log(result.rates))
        return result.rates[int(np.argmin(slope))]

    passes("08.3", solution)
    fails("08.3", lambda r: r.rates[int(np.argmin(r.smoothed()))], "valley")
    fails("08.3", lambda r: r.suggestion, "own suggestion")
    fails("08.3", lambda r: r.rates[int(np.argmin(np.diff(r.losses)))], "noisy")


# 09: NNX
def test_09_circle_model_and_dropout():
    class MyCircleModelV2(nnx.Module):
        def __init__(self, *, rngs):
            self.layer_1 = nnx.Linear(2, 10, rngs=rngs)
            self.layer_2 = nnx.Linear(10, 10, rngs=rngs)
            self.layer_3 = nnx.Linear(10, 1, rngs=rngs)

        def __call__(self, x):
            return self.layer_3(nnx.relu(self.layer_2(nnx.relu(self.layer_1(x)))))

    class NoReLU(MyCircleModelV2):
        def __call__(self, x):
            return self.layer_3(self.layer_2(self.layer_1(x)))

    class OtherNames(nnx.Module):
        def __init__(self, *, rngs):
            self.first, self.second, self.third = (nnx.Linear(i, o, rngs=rngs) for i, o in ((2, 10), (10, 10), (10, 1)))

        def __call__(self, x):
            return self.third(nnx.relu(self.second(nnx.relu(self.first(x)))))

    class Smaller(nnx.Module):
        def __init__(self, *, rngs):
            self.layer_1, self.layer_3 = nnx.Linear(2, 10, rngs=rngs), nnx.Linear(10, 1, rngs=rngs)

    passes("09.1", MyCircleModelV2)
    fails("09.1", NoReLU, "ReLU between")
    fails("09.1", OtherNames, "name the layers")
    fails("09.1", Smaller, "41 parameters")
    fails("09.1", MyCircleModelV2(rngs=nnx.Rngs(0)), "the class itself")

    from jaxdl.nnx_models import FashionMNISTModelV2 as V2

    def with_dropout(rate, deterministic=None):
        class WithDropout(V2):
            def __init__(self, *args, rngs, **kwargs):
                super().__init__(*args, rngs=rngs, **kwargs)
                self.classifier = nnx.Sequential(lambda x: x.reshape(x.shape[0], -1),
                                                 nnx.Dropout(rate, deterministic=deterministic, rngs=rngs),
                                                 nnx.Linear(10 * 7 * 7, 10, rngs=rngs))
        return WithDropout(1, 10, 10, rngs=nnx.Rngs(0))

    passes("09.2", with_dropout(0.25))
    fails("09.2", with_dropout(0.5), "where 0.25")
    fails("09.2", V2(1, 10, 10, rngs=nnx.Rngs(0)), "no nnx.Dropout")


def test_09_seconds():
    import time

    def solution(run):
        began = time.perf_counter()
        jax.block_until_ready(run())
        return time.perf_counter() - began

    def no_wait(run):
        began = time.perf_counter()
        run()
        return time.perf_counter() - began

    passes("09.3", solution)
    fails("09.3", no_wait, "block_until_ready")
    fails("09.3", lambda run: f"{solution(run):.2f} s", "a number of seconds")


# the module itself
def test_check_prints_one_line_and_names_are_checked(capsys):
    check("01.5", lambda x: x.squeeze())
    out = capsys.readouterr().out
    assert out.startswith("01.5 passed: ") and out.count("\n") == 1
    with pytest.raises(ArgumentError, match="notebook 01 has 01.1, 01.2"):
        check("01.9", None)
    with pytest.raises(ArgumentError, match="named like '03.2'"):
        check("exercise one", None)


def test_nchw_images_are_named_as_such():
    with pytest.raises(Wrong, match="NCHW"):
        expect_shape(np.zeros((2, 1, 28, 28)), (2, 28, 28, 1), "the images")


@pytest.mark.parametrize("name", list(exercises()))
@pytest.mark.parametrize("empty", [None, 0, ""], ids=["None", "zero", "empty string"])
def test_an_answer_not_written_yet_gets_a_hint(name, empty):
    verdict = evaluate(name, empty)
    assert not verdict.passed and verdict.message and "\n" not in verdict.message


def test_a_checker_never_shows_a_traceback():
    def broken(x):
        raise KeyError("oops")

    verdict = fails("01.5", broken, "raised KeyError")
    assert "Traceback" not in str(verdict)


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_of_every_notebook_is_checked(path):
    notebook = nbformat.read(path, as_version=4)
    number = path.stem[:2]
    start = next(i for i, cell in enumerate(notebook.cells)
                 if cell.cell_type == "markdown" and cell.source.startswith("## Exercises"))
    listed = re.findall(r"^(\d+)\. ", notebook.cells[start].source, flags=re.M)
    names = [f"{number}.{k}" for k in listed]
    assert names == [n for n in exercises() if n.startswith(f"{number}.")]
    answers, *solutions = notebook.cells[start + 1:]
    assert answers.cell_type == "code" and "hide-cell" not in answers.metadata.get("tags", [])  # where one writes
    assert re.findall(r'check\("(\d\d\.\d)"', answers.source) == names
    assert solutions and all(cell.cell_type == "code" and "hide-cell" in cell.metadata.get("tags", [])
                             for cell in solutions)
    assert re.findall(r'check\("(\d\d\.\d)"', "\n".join(cell.source for cell in solutions)) == names
    assert solutions[-1].source.rstrip().splitlines()[-1].startswith("check(")  # the exercise cells end with it
