"""Train the course's FashionMNISTModelV2 (TinyVGG) on Fashion-MNIST: chapter 03 in ten lines.
Run it again after stopping it (Ctrl-C, a crash) and it resumes from its checkpoints."""
import sys, jax, jax.numpy as jnp, jaxdl
from jaxdl import callbacks as cb, checkpoint, data, learner, models, train

jaxdl.run.runtime.setup()  # compilation cache, CPU memory settings: before JAX computes anything
fashion = data.load_dataset("fashion_mnist", sys.argv[1] if len(sys.argv) > 1 else None)  # or $JAXDL_DATA_DIR
train_data = data.make_batches(fashion.train, 32, key=jax.random.key(0))
test_data = data.make_batches(fashion.test, 32)
state = train.create_train_state(models.FashionMNISTModelV2(1, 10, 10), jax.random.key(42),
                                 jnp.zeros((1, 28, 28, 1)), train.make_optimizer("sgd", 0.1))
state, history = learner.fit(state, train_data, test_data, epochs=3, callbacks=[
    cb.ProgressBar(), cb.PrintEpoch(), checkpoint.Checkpoint("runs/quickstart", every_n_steps=500)])
print(train.eval_model(state, test_data))
