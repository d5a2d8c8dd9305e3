"""The `jaxdl` command: models, summary, data info, and the errors a user sees."""

import pytest

from conftest import SHARED_DATA
from jaxdl.run.cli import main


def test_models_and_summary(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "SimpleCNN" in out and "5,274 parameters" in out
    assert main(["summary", "TinyVGG", "--depth", "1"]) == 0
    assert "Total params: 8,083" in capsys.readouterr().out
    assert main(["summary", "TinyVG"]) == 2
    assert "unknown model 'TinyVG'" in capsys.readouterr().err


@pytest.mark.data
def test_data_info(capsys, tmp_path):
    assert main(["data", "info", "fashion_mnist", "--data-dir", str(SHARED_DATA)]) == 0
    out = capsys.readouterr().out
    assert "train: 60,000 images" in out and "Ankle boot: 6,000" in out and "pixel mean 0.286" in out
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 1
    assert "put the four official *-ubyte.gz files in a folder" in capsys.readouterr().err


def test_version_and_help(capsys):
    from jaxdl import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"jaxdl {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "jaxdl: the beginner deep-learning course in JAX" in out
    with pytest.raises(SystemExit):
        main(["summary", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 1)" in out and "(default: 3)" in out


def test_bad_arguments_are_refused_with_their_name(capsys, tmp_path):
    for argv, message in (
            (["summary", "TinyVGG", "--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got 0"),
            (["summary", "TinyVGG", "--depth", "-1"], "argument --depth: must be a whole number >= 0, got -1")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "prepare", "mnist", "--from", str(tmp_path / "nope")]) == 1
    assert "--from folder" in capsys.readouterr().err and not (tmp_path / "nope").exists()
