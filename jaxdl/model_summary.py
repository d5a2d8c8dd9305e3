"""``summary(model, input_shape)``: the course's ``torchinfo.summary`` for Linen models.

The course calls ``torchinfo.summary(model, input_size=[1, 3, 64, 64])`` to see each
layer's output shape and parameter count before training. This traces the model
with :func:`jax.eval_shape` (no real computation, no memory for activations) and
records every submodule call through :func:`flax.linen.intercept_methods`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx, traverse_util

from jaxdl.errors import ArgumentTypeError


def _shape(value) -> str:
    leaves = jax.tree.leaves(value)
    shapes = [tuple(leaf.shape) for leaf in leaves if hasattr(leaf, "shape")]
    return ", ".join(str(s) for s in shapes) if len(shapes) != 1 else str(shapes[0])


def summary(model: nn.Module, input_shape: Sequence[int], dtype=jnp.float32,
            depth: int = 3, **call_kwargs) -> str:
    """A table of the layers of ``model`` run on an input of ``input_shape``.

    One row per module call, nested up to ``depth`` levels, with the output shape
    and the number of parameters the module (with its children) owns, then the
    total. Returns the table as a string, e.g.
    ``print(summary(TinyVGG(3, 10, 3), (1, 64, 64, 3)))``.
    """
    if not isinstance(model, nn.Module):
        hint = "; it is a Flax NNX model: nnx.tabulate(model, x) draws its table" if isinstance(model, nnx.Module) else ""
        raise ArgumentTypeError(f"summary takes a Flax Linen module, got {type(model).__name__}{hint}")
    rows: list[list] = []  # [depth, "name (type)", output shape, path], in call order

    def record(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        module = context.module
        kind = type(module).__name__
        row = [len(module.path), f"{module.name} ({kind})" if module.path else kind, "",
               tuple(module.path)]
        rows.append(row)  # before the call, so that a parent precedes its children
        out = next_fun(*args, **kwargs)
        row[2] = _shape(out)
        return out

    key = jax.random.key(0)
    rngs = {"params": key, "dropout": key}

    def init(x):
        with nn.intercept_methods(record):
            return model.init(rngs, x, **call_kwargs)

    variables = jax.eval_shape(init, jax.ShapeDtypeStruct(tuple(input_shape), dtype))

    sizes = {path: leaf.size for path, leaf in
             traverse_util.flatten_dict(dict(variables.get("params", {}))).items()}

    def owned(path: tuple[str, ...]) -> int:
        return sum(n for p, n in sizes.items() if p[: len(path)] == path)

    table = [("Layer (type)", "Output shape", "Param #")]
    table += [("  " * level + name, shape, f"{owned(path):,}")
              for level, name, shape, path in rows if level <= depth]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    rule = "=" * (sum(widths) + 4)
    lines = [rule, f"{table[0][0]:<{widths[0]}}  {table[0][1]:<{widths[1]}}  {table[0][2]:>{widths[2]}}", rule]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in table[1:]]
    total = sum(sizes.values())
    state = sum(leaf.size for name, col in variables.items() if name != "params"
                for leaf in jax.tree.leaves(col))
    lines += [rule, f"Input shape: {tuple(input_shape)} {jnp.dtype(dtype).name}",
              f"Total params: {total:,} ({total * 4 / 1e6:.2f} MB as float32)"]
    if state:
        lines.append(f"Non-trainable state (e.g. BatchNorm statistics): {state:,}")
    lines.append(rule)
    return "\n".join(lines)
