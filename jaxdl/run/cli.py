"""The ``jaxdl`` command.

``jaxdl models`` lists the course's models; ``jaxdl summary TinyVGG`` prints one
model's layer table (the course's ``torchinfo.summary``); ``jaxdl convert model.pth
--model TinyVGG --to model.msgpack`` opens a PyTorch course model's weights in jaxdl (and
back); ``jaxdl data info
fashion_mnist --data-dir DIR`` loads a dataset and describes it; ``jaxdl data prepare
mnist --from FOLDER`` prepares the tensorflow-datasets copy from the official files,
offline.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from jaxdl.run.arguments import whole_number


def _models(args: argparse.Namespace) -> int:
    from jaxdl.models import COURSE_MODELS, count_params
    import jax
    import jax.numpy as jnp

    for name, (model, shape) in COURSE_MODELS.items():
        variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
        print(f"{name:<24} input {str(shape):<14} {count_params(variables):>12,} parameters")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from jaxdl.models import COURSE_MODELS
    from jaxdl.model_summary import summary

    if args.model not in COURSE_MODELS:
        print(f"jaxdl: unknown model {args.model!r}; choose one of: {', '.join(COURSE_MODELS)}",
              file=sys.stderr)
        return 2
    model, shape = COURSE_MODELS[args.model]
    print(summary(model, (args.batch_size, *shape), depth=args.depth))
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from jaxdl.data import load_dataset

    data = load_dataset(args.name, args.data_dir, download=not args.no_download, offline=args.offline or None)
    print(f"{data.name} from {data.source}")
    for split in ("train", "test"):
        ds = getattr(data, split)
        counts = np.bincount(np.asarray(ds.labels), minlength=len(ds.class_names))
        print(f"  {split}: {len(ds):,} images of shape {ds.image_shape}, "
              f"pixel mean {float(ds.images.mean()):.3f}")
        print("    " + ", ".join(f"{name}: {c:,}" for name, c in zip(ds.class_names, counts)))
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from jaxdl.data import prepare_from_official_files

    path = prepare_from_official_files(args.name, args.source, args.data_dir)
    print(f"prepared {args.name} for tensorflow-datasets in {path}")
    return 0


MODEL_OPTIONS = ("input_shape", "hidden_units", "output_shape", "num_classes", "in_channels", "input_features",
                 "output_features")
"""The course models' constructor arguments that ``jaxdl convert`` takes as options."""


def _course_model(args: argparse.Namespace):
    """The Linen course model ``args.model`` with the arguments given, and one example's shape."""
    from jaxdl.errors import ArgumentError
    from jaxdl.models import COURSE_MODELS

    if args.model not in COURSE_MODELS:
        raise ArgumentError(f"unknown model {args.model!r}; choose one of: {', '.join(COURSE_MODELS)}")
    model, shape = COURSE_MODELS[args.model]
    given = {name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name) is not None}
    unknown = sorted(set(given) - {name for name in given if hasattr(model, name)})
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise ArgumentError(f"{args.model} takes no {flags}")
    return model.clone(**given), (tuple(args.example_shape) if args.example_shape else shape)


def _convert(args: argparse.Namespace) -> int:
    import pathlib

    import jax
    import jax.numpy as jnp

    from jaxdl import interop
    from jaxdl.checkpoint import load_model, save_model
    from jaxdl.errors import ArgumentError

    model, shape = _course_model(args)
    source, target = pathlib.Path(args.file), pathlib.Path(args.to)
    if source.suffix in interop.SUFFIXES and target.suffix == ".msgpack":
        variables = interop.load_state_dict(model, source, input_shape=shape)
        save_model(target, variables)
        print(f"wrote {target}: {args.model} with the weights of {source} (load it with "
              f"jaxdl.checkpoint.load_model)")
        return 0
    if source.suffix == ".msgpack" and target.suffix in interop.SUFFIXES:
        abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
        variables = load_model(source, abstract)
        interop.save_state_dict(target, model, variables, input_shape=shape)
        print(f"wrote {target}: {args.model}'s state_dict as the PyTorch course's class names it "
              "(model.load_state_dict(..., strict=True))")
        return 0
    raise ArgumentError(f"convert goes from a PyTorch file (.pth, .safetensors) to jaxdl's (.msgpack) or back; "
                        f"got {source.name} -> {target.name}")


def build_parser() -> argparse.ArgumentParser:
    from jaxdl import __version__

    parser = argparse.ArgumentParser(
        prog="jaxdl",
        description="jaxdl: the beginner deep-learning course in JAX. List its models, print a "
                    "model's layers, convert PyTorch weights, load or prepare a dataset.")
    parser.add_argument("--version", action="version", version=f"jaxdl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the course's models and their sizes").set_defaults(run=_models)
    p = commands.add_parser("summary", help="print one model's layers, shapes and parameters")
    p.add_argument("model", help="a course model name, e.g. TinyVGG")
    p.add_argument("--batch-size", type=whole_number(1), default=1,
                   help="batch size of the input shape (default: %(default)s)")
    p.add_argument("--depth", type=whole_number(0), default=3,
                   help="how many levels of nesting to show (default: %(default)s)")
    p.set_defaults(run=_summary)

    p = commands.add_parser("convert", help="a PyTorch state_dict (.pth, .safetensors) to jaxdl's weights "
                            "(.msgpack), or back",
                            description="Convert a course model's weights between the PyTorch course's state_dict "
                                        "(.pth needs torch; .safetensors does not) and jaxdl's save_model file "
                                        "(.msgpack). The direction follows the files' suffixes.")
    p.add_argument("file", help="the weights to read: .pth or .safetensors (PyTorch), or .msgpack (jaxdl)")
    p.add_argument("--model", required=True, help="the course model, e.g. TinyVGG (see `jaxdl models`)")
    p.add_argument("--to", required=True, help="the file to write: .msgpack, or .safetensors / .pth")
    for name in MODEL_OPTIONS:
        p.add_argument("--" + name.replace("_", "-"), type=whole_number(1),
                       help=f"the model's {name} when not the course's")
    p.add_argument("--example-shape", type=whole_number(1), nargs="+", metavar="N",
                   help="one input example's shape, e.g. 64 64 3 (default: the course's for the model)")
    p.set_defaults(run=_convert)

    data = commands.add_parser("data", help="load or prepare a dataset").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser("info", help="load a dataset and print its sizes and classes")
    p.add_argument("name", help="mnist, fashion_mnist, or another tfds image dataset")
    p.add_argument("--data-dir", help="folder of the official files, or a tfds data directory (default: "
                   "$JAXDL_DATA_DIR; else jaxdl's download folder for mnist and fashion_mnist, "
                   "tensorflow-datasets' directory for others)")
    p.add_argument("--no-download", action="store_true", help="fail rather than download")
    p.add_argument("--offline", action="store_true", help="never download (or set JAXDL_OFFLINE=1)")
    p.set_defaults(run=_data_info)
    p = data.add_parser("prepare", help="prepare the tfds copy from the official files, offline "
                        "(needs TensorFlow: the prepare extra)")
    p.add_argument("name", help="mnist or fashion_mnist")
    p.add_argument("--from", dest="source", required=True,
                   help="folder holding the four official files (train-images-idx3-ubyte.gz and the others)")
    p.add_argument("--data-dir", help="tfds data directory to prepare into "
                   "(default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    p.set_defaults(run=_data_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    from jaxdl.errors import JaxdlError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        raise
    except (JaxdlError, OSError, ValueError) as err:
        # errors a user can act on: print the message, not a traceback
        print(f"jaxdl: {err}", file=sys.stderr)
        return 1


def command() -> int:
    """The ``jaxdl`` command: the entry script's process-wide settings, then :func:`main`."""
    from jaxdl.run import runtime

    runtime.setup()
    try:
        return main()
    except BrokenPipeError:  # `jaxdl models | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(command())
