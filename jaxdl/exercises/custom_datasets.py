"""Checkers of notebook 07 (custom datasets; the course's chapter 04 exercises)."""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxdl.exercises.checking import Wrong, as_array, exercise, expect_state, parameter_count

UNDERFITTING = {
    "a": "more hidden units or more layers",
    "b": "stronger data augmentation",
    "c": "training for more epochs",
    "d": "more dropout",
    "e": "starting from a model trained on more data (transfer learning)",
    "f": "fewer training images",
}
"""The choices of exercise 07.1, by letter (the notebook lists them)."""
PREVENT_UNDERFITTING = {"a", "c", "e"}
WHY_NOT = {
    "b": "augmentation makes the training images harder to fit: it fights overfitting",
    "d": "dropout is regularisation: it fights overfitting",
    "f": "fewer images give the model less to learn from",
}


@exercise("07.1", "the letters of the three choices that prevent underfitting")
def prevent_underfitting(answer) -> str:
    if isinstance(answer, str):
        answer = answer.replace(",", " ").split() if " " in answer or "," in answer else list(answer)
    try:
        chosen = {str(letter).strip().lower() for letter in answer}
    except TypeError as err:
        raise Wrong("give the letters as a string or a set, like 'xyz' or {'x', 'y', 'z'}") from err
    if not chosen:
        raise Wrong("give the letters of your choices, like 'xyz'")
    unknown = chosen - set(UNDERFITTING)
    if unknown:
        raise Wrong(f"{', '.join(sorted(unknown))}: the choices are {', '.join(UNDERFITTING)}")
    wrong = sorted(chosen - PREVENT_UNDERFITTING)
    if wrong:
        raise Wrong(f"not {wrong[0]} ({UNDERFITTING[wrong[0]]}): {WHY_NOT[wrong[0]]}")
    missing = len(PREVENT_UNDERFITTING - chosen)
    if missing:
        raise Wrong(f"right so far, but {missing} of the three {'is' if missing == 1 else 'are'} missing: what helps a "
                    "model that cannot yet fit its training data?")
    return "a bigger model, longer training and transfer learning all help a model that underfits"


@exercise("07.2", "the history of TinyVGG trained without augmentation for more epochs (8 or more)")
def longer(answer) -> str:
    if not isinstance(answer, dict) or not {"train_loss", "test_loss"} <= set(answer):
        raise Wrong("give the history that jaxdl.fit returns (a dict with 'train_loss' and 'test_loss' lists)")
    train_loss, test_loss = (as_array(answer[k], k).reshape(-1) for k in ("train_loss", "test_loss"))
    if len(train_loss) != len(test_loss):
        raise Wrong(f"{len(train_loss)} train losses but {len(test_loss)} test losses: give one run's history")
    if len(train_loss) < 8:
        raise Wrong(f"{len(train_loss)} epochs: the chapter trained for 5; train for more (8 or more here, the "
                    "course tries 20 and 50)")
    if not np.isfinite(train_loss).all():
        raise Wrong("the training loss became NaN or infinite: lower the learning rate")
    if train_loss[-1] >= train_loss[0]:
        raise Wrong(f"the training loss did not go down ({train_loss[0]:.3f} -> {train_loss[-1]:.3f}): is it "
                    "training (an optimizer with a rate above 0)?")
    gap = test_loss[-1] - train_loss[-1]
    return (f"{len(train_loss)} epochs, train loss {train_loss[0]:.3f} -> {train_loss[-1]:.3f}; the test loss ends "
            f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} it")


@functools.cache
def tinyvgg_parameter_count(hidden_units: int, classes: int = 3) -> int:
    from jaxdl.models import TinyVGG, count_params

    return count_params(jax.eval_shape(TinyVGG(3, hidden_units, classes).init, jax.random.key(0),
                                       jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)))


@exercise("07.3", "the state of TinyVGG with 20 hidden units, trained as the notebook's")
def wider(answer) -> str:
    expect_state(answer)
    count = parameter_count(answer)
    if count == tinyvgg_parameter_count(20):
        if int(getattr(answer, "step", 1)) == 0:
            raise Wrong("the model has not been trained (step 0): fit it as the notebook does")
        return f"{count:,} parameters, TinyVGG(3, 20, 3)'s at 64x64 (10 hidden units: {tinyvgg_parameter_count(10):,})"
    if count == tinyvgg_parameter_count(10):
        raise Wrong(f"the model has {count:,} parameters, TinyVGG's with 10 hidden units: build it with "
                    "hidden_units=20")
    raise Wrong(f"the model has {count:,} parameters where TinyVGG(3, 20, 3) on 64x64 images has "
                f"{tinyvgg_parameter_count(20):,}: a model with the wrong parameter count")


@exercise("07.4", "a training set with twice the data: about 150 images a class, 64x64 RGB")
def twice_the_data(answer) -> str:
    if not hasattr(answer, "images") or not hasattr(answer, "labels"):
        raise Wrong(f"give the loaded training set (ImageFolder(...).load(), with .images and .labels); got a "
                    f"{type(answer).__name__}")
    images, labels = answer.images, np.asarray(answer.labels)
    if tuple(images.shape[1:]) != (64, 64, 3):
        raise Wrong(f"the images have shape {tuple(images.shape[1:])} where 64x64 RGB, (64, 64, 3), was asked "
                    "(size=(64, 64) when writing the folder, image_size=(64, 64) when reading it)")
    per_class = np.bincount(labels)
    if len(per_class) != 3:
        raise Wrong(f"{len(per_class)} classes where the chapter has 3")
    if per_class.min() < 140:
        raise Wrong(f"{', '.join(str(n) for n in per_class)} images a class: twice the data is about 150 a class "
                    "(the chapter's 75, doubled)")
    return f"{len(labels)} training images ({', '.join(str(n) for n in per_class)} a class), twice the chapter's"
