"""Checkers of notebook 04 (computer vision; the course's chapter 03 exercises)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, apply_model, as_array, call, exercise, expect_state, \
    parameter_count

UNSEEN_DIGITS = slice(5_000, 7_000)  # the notebook tests on the first 1,000 test digits
ACCURACY_ASKED = 80.0


@functools.cache
def v2_parameter_count() -> int:
    from jaxdl.models import FashionMNISTModelV2, count_params

    return count_params(jax.eval_shape(FashionMNISTModelV2(1, 10, 10).init, jax.random.key(0),
                                       jax.ShapeDtypeStruct((1, 28, 28, 1), np.float32)))


@exercise("04.1", "FashionMNISTModelV2(1, 10, 10) trained on MNIST's digits for an epoch: above 80% on new digits")
def digits(answer) -> str:
    from jaxdl import data

    expect_state(answer)
    test = data.load_dataset("mnist").test
    images, labels = np.asarray(test.images[UNSEEN_DIGITS]), np.asarray(test.labels[UNSEEN_DIGITS])
    probabilities = apply_model(answer, images)
    if parameter_count(answer) != v2_parameter_count():
        raise Wrong(f"the model has {parameter_count(answer):,} parameters where FashionMNISTModelV2(1, 10, 10) has "
                    f"{v2_parameter_count():,}: build V2 with 1 input channel, 10 hidden units and 10 classes")
    accuracy = 100 * float((probabilities.argmax(axis=1) == labels).mean())
    if accuracy < ACCURACY_ASKED:
        raise Wrong(f"{accuracy:.1f}% on 2,000 test digits it had not seen, where one epoch of V2 on 6,000 digits "
                    f"gets above {ACCURACY_ASKED:.0f}%: train it on MNIST (data.load_dataset('mnist')), "
                    "not Fashion-MNIST, with SGD at 0.1")
    return f"{accuracy:.1f}% on 2,000 test digits the notebook did not test on"


@exercise("04.2", "misclassified(predicted, labels): the indices of the examples the model got wrong",
          function="def misclassified(predicted, labels): ...")
def misclassified(answer) -> str:
    rng = np.random.default_rng(41)
    for n in (50, 137):
        labels = rng.integers(0, 10, n)
        predicted = np.where(rng.random(n) < 0.3, rng.integers(0, 10, n), labels)
        want = np.flatnonzero(predicted != labels)
        got = as_array(call(answer, predicted, labels, what="misclassified(predicted, labels)"), "the result")
        if got.dtype == bool:
            raise Wrong("that is a mask (True where wrong), one per example; the indices of the wrong ones were "
                        "asked: np.flatnonzero(mask)")
        got = got.reshape(-1)
        if np.array_equal(np.sort(got), np.flatnonzero(predicted == labels)):
            raise Wrong("those are the examples it got right")
        if not np.array_equal(np.sort(got), want):
            raise Wrong(f"for {n} predictions of which {len(want)} are wrong it gave {len(got)} indices, not the "
                        "right ones")
    return "the wrong ones' indices, for predictions you had not seen"


@exercise("04.3", "most_confused(matrix): (true class, predicted class) of the largest mistake in a confusion matrix",
          function="def most_confused(matrix): ...")
def most_confused(answer) -> str:
    rng = np.random.default_rng(43)
    for classes in (4, 10):
        matrix = rng.integers(0, 20, (classes, classes))
        np.fill_diagonal(matrix, rng.integers(200, 300, classes))
        true, predicted = rng.choice(classes, 2, replace=False)
        matrix[true, predicted] = 60  # the largest mistake, off the diagonal
        result = call(answer, matrix, what="most_confused(matrix)")
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Wrong("most_confused should return two class indices, (true class, predicted class)")
        got = tuple(int(as_array(r, "a class index").reshape(())) for r in result)
        if got[0] == got[1]:
            raise Wrong(f"({got[0]}, {got[1]}) is on the diagonal, the correct predictions: leave the diagonal out")
        if got == (predicted, true):
            raise Wrong("the two are swapped: the matrix's rows are the true classes and its columns the predicted "
                        "ones")
        if got != (true, predicted):
            raise Wrong(f"for a {classes}x{classes} matrix you had not seen, ({got[0]}, {got[1]}) is not the largest "
                        "off-diagonal count")
    return "the largest off-diagonal count, as (true, predicted), in matrices you had not seen"
