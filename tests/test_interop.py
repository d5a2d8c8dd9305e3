"""PyTorch weights in and out (jaxdl.interop): every course model loads the course's
PyTorch state_dict and gives PyTorch's outputs, writes it back exactly, and refuses what
does not fit. Without torch the checks run from the committed files of
tests/fixtures/pytorch (made by its make_fixtures.py); with torch they also run live."""

import importlib.util
import pathlib
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from jaxdl import interop, models, nnx_models
from jaxdl.errors import ArgumentError, ArgumentTypeError

FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / "fixtures" / "pytorch"
sys.path.insert(0, str(FIXTURES_DIR))
from fixture_settings import FIXTURES  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="needs PyTorch (the pytorch extra); the fixture tests run without")


def _linen(name):
    kwargs, shape = FIXTURES[name]
    return getattr(models, name)(**kwargs), shape


def _nnx(name):
    return getattr(nnx_models, name)(**FIXTURES[name][0], rngs=nnx.Rngs(0))


def _outputs(model, variables, x):
    out = model.apply(variables, x) if variables is not None else model(x)
    return np.asarray(out)


def test_the_fixtures_are_small_and_cover_every_course_model():
    assert set(FIXTURES) == set(models.COURSE_MODELS)
    assert sum(p.stat().st_size for p in FIXTURES_DIR.glob("*.safetensors")) < 5 * 2**20


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_a_pytorch_state_dict_gives_pytorchs_outputs_and_goes_back_exactly(name, tmp_path):
    check = load_file(FIXTURES_DIR / f"{name}.check.safetensors")
    saved = load_file(FIXTURES_DIR / f"{name}.safetensors")
    linen, shape = _linen(name)
    variables = interop.load_state_dict(linen, FIXTURES_DIR / f"{name}.safetensors", input_shape=shape)
    np.testing.assert_allclose(_outputs(linen, variables, check["x"]).reshape(check["logits"].shape),
                               check["logits"], rtol=0, atol=1e-5)
    twin = interop.load_state_dict(_nnx(name), saved)
    twin.eval()
    np.testing.assert_allclose(_outputs(twin, None, check["x"]).reshape(check["logits"].shape), check["logits"],
                               rtol=0, atol=1e-5)
    # back to PyTorch's layout: the same keys, the same bytes (num_batches_tracked is written as 0)
    for back in (interop.state_dict(linen, variables, input_shape=shape), interop.state_dict(twin)):
        assert set(back) == set(saved)
        for key, value in saved.items():
            if not key.endswith("num_batches_tracked"):
                assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key
    path = interop.save_state_dict(tmp_path / "out.safetensors", linen, variables, input_shape=shape)
    again = interop.load_state_dict(linen, path, input_shape=shape)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), again, variables))


@needs_torch
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_live_pytorch_models_open_in_jaxdl_and_jaxdl_weights_open_in_pytorch(name, tmp_path):
    import torch
    from course_models import MODELS
    from make_fixtures import to_torch_input

    kwargs, shape = FIXTURES[name]
    torch.manual_seed(1)
    course = MODELS[name](**kwargs).eval()
    torch.save(course.state_dict(), tmp_path / "course.pth")
    linen, _ = _linen(name)
    variables = interop.load_state_dict(linen, tmp_path / "course.pth", input_shape=shape)
    x = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
    with torch.no_grad():
        expected = course(to_torch_input(x)).numpy()
    np.testing.assert_allclose(_outputs(linen, variables, x).reshape(expected.shape), expected, rtol=0, atol=1e-5)
    # jaxdl's own weights (initialised by jaxdl) into the course's class, strictly
    mine = linen.init(jax.random.key(2), jnp.zeros((1, *shape)))
    interop.save_state_dict(tmp_path / "mine.pth", linen, mine, input_shape=shape)
    fresh = MODELS[name](**kwargs).eval()
    fresh.load_state_dict(torch.load(tmp_path / "mine.pth", weights_only=True), strict=True)
    with torch.no_grad():
        theirs = fresh(to_torch_input(x)).numpy()
    np.testing.assert_allclose(_outputs(linen, mine, x).reshape(theirs.shape), theirs, rtol=0, atol=1e-5)


def _one_line(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message


def test_a_state_dict_of_another_model_or_size_is_refused_whole():
    twin = _nnx("TinyVGG")
    before = nnx.to_pure_dict(nnx.state(twin, nnx.Param))
    with pytest.raises(interop.StateDictError) as err:
        interop.load_state_dict(twin, FIXTURES_DIR / "FashionMNISTModelV2.safetensors")
    _one_line(err, "does not fit TinyVGG", "missing: conv_block_1.0.bias", "unexpected: block_1.0.bias",
              "mis-shaped: classifier.1.bias (10,) (needs (3,))")
    wider = {k: np.concatenate([v, v]) if k.endswith("classifier.1.bias") else v
             for k, v in load_file(FIXTURES_DIR / "TinyVGG.safetensors").items()}
    with pytest.raises(interop.StateDictError) as err:
        interop.load_state_dict(twin, wider)
    _one_line(err, "mis-shaped: classifier.1.bias (6,) (needs (3,))")
    after = nnx.to_pure_dict(nnx.state(twin, nnx.Param))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), before, after))  # nothing half-loaded


def test_damaged_files_and_wrong_inputs_get_one_line(tmp_path):
    whole = (FIXTURES_DIR / "SimpleCNN.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.safetensors").write_text("not tensors")
    linen, shape = _linen("SimpleCNN")
    for bad in ("cut.safetensors", "text.safetensors"):
        with pytest.raises(interop.StateDictError) as err:
            interop.load_state_dict(linen, tmp_path / bad)
        _one_line(err, bad, "not a safetensors file")
    with pytest.raises(FileNotFoundError):
        interop.load_state_dict(linen, tmp_path / "absent.safetensors")
    with pytest.raises(ArgumentError, match="expected a .safetensors or .pth file"):
        interop.load_state_dict(linen, tmp_path / "weights.npz")
    with pytest.raises(ArgumentTypeError) as err:
        interop.load_state_dict(models.SimpleCNN, FIXTURES_DIR / "SimpleCNN.safetensors")
    _one_line(err, "class SimpleCNN")
    with pytest.raises(ArgumentTypeError) as err:
        interop.load_state_dict(models.CompactVGG(), {})
    _one_line(err, "CompactVGG", "TinyVGG")


def test_dataparallel_prefixes_are_stripped_and_half_precision_is_cast_with_a_warning():
    saved = load_file(FIXTURES_DIR / "FashionMNISTModelV2.safetensors")
    check = load_file(FIXTURES_DIR / "FashionMNISTModelV2.check.safetensors")
    linen, shape = _linen("FashionMNISTModelV2")
    prefixed = {f"module.{k}": v for k, v in saved.items()}
    variables = interop.load_state_dict(linen, prefixed)
    np.testing.assert_allclose(_outputs(linen, variables, check["x"]), check["logits"], atol=1e-5)
    for narrow in (np.float16, jnp.bfloat16):
        half = {k: (v.astype(narrow) if v.dtype == np.float32 else v) for k, v in saved.items()}
        with pytest.warns(UserWarning, match="casts them to float32"):
            variables = interop.load_state_dict(linen, half)
        assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
        np.testing.assert_allclose(_outputs(linen, variables, check["x"]), check["logits"], atol=0.1)


def test_float16_safetensors_files_read_and_cast(tmp_path):
    saved = load_file(FIXTURES_DIR / "SimpleCNN.safetensors")
    save_file({k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in saved.items()},
              str(tmp_path / "half.safetensors"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        interop.load_state_dict(_nnx("SimpleCNN"), tmp_path / "half.safetensors")
    assert any("float16" in str(w.message) for w in caught)


@needs_torch
def test_pth_files_that_are_not_a_state_dict_are_refused(tmp_path):
    import torch
    from course_models import MODELS

    model = MODELS["SimpleCNN"]()
    torch.save(model, tmp_path / "whole_model.pth")  # the pickled object, not its state_dict
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "checkpoint.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "whole_model.pth").read_bytes()[:100])
    linen, _ = _linen("SimpleCNN")
    for name, words in (("whole_model.pth", ["pickled Python object", "state_dict()"]),
                        ("checkpoint.pth", ["more than tensors", "epoch"]),
                        ("cut.pth", ["cut short"])):
        with pytest.raises(interop.StateDictError) as err:
            interop.load_state_dict(linen, tmp_path / name)
        _one_line(err, name, *words)
    sd = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "bf16.pth")
    with pytest.warns(UserWarning, match="bfloat16"):
        interop.load_state_dict(linen, tmp_path / "bf16.pth")


def test_jaxdl_convert_goes_both_ways(tmp_path, capsys):
    from jaxdl.run.cli import main

    source = FIXTURES_DIR / "TinyVGG.safetensors"
    assert main(["convert", str(source), "--model", "TinyVGG", "--to", str(tmp_path / "tiny.msgpack")]) == 0
    assert main(["convert", str(tmp_path / "tiny.msgpack"), "--model", "TinyVGG",
                 "--to", str(tmp_path / "back.safetensors")]) == 0
    back, saved = load_file(tmp_path / "back.safetensors"), load_file(source)
    assert all(np.array_equal(back[k], saved[k]) for k in saved)
    capsys.readouterr()
    assert main(["convert", str(source), "--model", "TinyVGG", "--hidden-units", "20",
                 "--to", str(tmp_path / "x.msgpack")]) == 1
    assert "mis-shaped" in capsys.readouterr().err
    assert main(["convert", str(source), "--model", "TinyVGG", "--num-classes", "4",
                 "--to", str(tmp_path / "x.msgpack")]) == 1
    assert "TinyVGG takes no --num-classes" in capsys.readouterr().err
    assert main(["convert", str(source), "--model", "TinyVGG", "--to", str(tmp_path / "x.npz")]) == 1
    assert "from a PyTorch file" in capsys.readouterr().err
    assert not (tmp_path / "x.msgpack").exists()


def test_the_books_page_runs(tmp_path, monkeypatch, capsys):
    """docs/pytorch_weights.md: every Python block, top to bottom, in one namespace."""
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "pytorch_weights.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{page.name}, block {number}", "exec"), namespace)
    assert capsys.readouterr().out.startswith("Pred: ")
    assert (tmp_path / "from_jaxdl.safetensors").is_file()
