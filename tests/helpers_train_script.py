"""A small real training run, used by the resume test: killed, started again, compared.

python tests/helpers_train_script.py WORKDIR [--examples N] [--epochs E] [--every S] [--scan] [--nnx]
                                             [--folder DIR --workers W]
trains FashionMNISTModelV2 on the first N Fashion-MNIST examples with checkpoints in
WORKDIR/checkpoints every S steps, resuming from them, and saves the final weights
to WORKDIR/final.msgpack. ``--scan`` runs the epochs as loops on the device (cut
where the checkpoints are due), as on a GPU. ``--folder`` streams an image folder
instead (written there from the same examples if it does not exist) through the Grain
loader with ``W`` worker processes. ``--nnx`` trains the model's Flax NNX twin.
"""

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxdl import callbacks, checkpoint, data, learner, train
from jaxdl.run import runtime  # noqa: E402
from jaxdl.models import FashionMNISTModelV2  # noqa: E402



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=pathlib.Path)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--scan", action="store_true")
    parser.add_argument("--folder", type=pathlib.Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nnx", action="store_true")
    args = parser.parse_args()

    runtime.setup()  # as a training script does
    if args.folder is None:
        fashion = data.load_dataset("fashion_mnist")  # from $JAXDL_DATA_DIR
        source, channels = fashion.train.take(args.examples), 1
    else:
        if not args.folder.exists():
            fashion = data.load_dataset("fashion_mnist")
            data.write_image_folder(fashion.train.images[:args.examples], fashion.train.labels[:args.examples],
                                    fashion.train.class_names, args.folder)
        source, channels = data.ImageFolder(args.folder, (28, 28)), 3
    extra = {} if args.folder is None else {"worker_count": args.workers}
    train_data = data.make_batches(source, 32, key=jax.random.key(1), **extra)
    if args.nnx:
        from flax import nnx

        from jaxdl import nnx_models

        model = nnx_models.FashionMNISTModelV2(channels, 8, 10, rngs=nnx.Rngs(42))
    else:
        model = FashionMNISTModelV2(channels, 8, 10)
    state = train.create_train_state(model, jax.random.key(42),
                                     jnp.zeros((1, 28, 28, channels)), train.make_optimizer("sgd", 0.1, momentum=0.9))
    cbs = [callbacks.PrintEpoch(), checkpoint.Checkpoint(args.workdir / "checkpoints", every_n_steps=args.every)]
    state, history = learner.fit(state, train_data, None, args.epochs, callbacks=cbs, scan=args.scan)
    checkpoint.save_model(args.workdir / "final.msgpack", state)
    print("done", int(state.step), flush=True)


if __name__ == "__main__":  # worker processes of the Grain loader import this file again
    main()
