"""A small real training run, used by the resume test: killed, started again, compared.

python tests/helpers_train_script.py WORKDIR [--examples N] [--epochs E] [--every S] [--scan]
trains FashionMNISTModelV2 on the first N Fashion-MNIST examples with checkpoints in
WORKDIR/checkpoints every S steps, resuming from them, and saves the final weights
to WORKDIR/final.msgpack. ``--scan`` runs the epochs as loops on the device (cut
where the checkpoints are due), as on a GPU.
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

parser = argparse.ArgumentParser()
parser.add_argument("workdir", type=pathlib.Path)
parser.add_argument("--examples", type=int, default=2000)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--every", type=int, default=10)
parser.add_argument("--scan", action="store_true")
args = parser.parse_args()

runtime.setup()  # as a training script does
fashion = data.load_dataset("fashion_mnist")  # from $JAXDL_DATA_DIR
train_data = data.make_batches(fashion.train.take(args.examples), 32, key=jax.random.key(1))
state = train.create_train_state(FashionMNISTModelV2(1, 8, 10), jax.random.key(42), jnp.zeros((1, 28, 28, 1)),
                                 train.make_optimizer("sgd", 0.1, momentum=0.9))
cbs = [callbacks.PrintEpoch(), checkpoint.Checkpoint(args.workdir / "checkpoints", every_n_steps=args.every)]
state, history = learner.fit(state, train_data, None, args.epochs, callbacks=cbs, scan=args.scan)
checkpoint.save_model(args.workdir / "final.msgpack", state)
print("done", int(state.step), flush=True)
