"""The ``jaxdl`` command.

``jaxdl models`` lists the course's models; ``jaxdl summary TinyVGG`` prints one
model's layer table (the course's ``torchinfo.summary``).
"""

from __future__ import annotations

import argparse
import sys


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
    from jaxdl.summary import summary

    if args.model not in COURSE_MODELS:
        print(f"jaxdl: unknown model {args.model!r}; choose one of: {', '.join(COURSE_MODELS)}",
              file=sys.stderr)
        return 2
    model, shape = COURSE_MODELS[args.model]
    print(summary(model, (args.batch_size, *shape), depth=args.depth))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the course's models and their sizes").set_defaults(run=_models)
    p = commands.add_parser("summary", help="print one model's layers, shapes and parameters")
    p.add_argument("model", help="a course model name, e.g. TinyVGG")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--depth", type=int, default=3, help="how many levels of nesting to show")
    p.set_defaults(run=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
