"""One worker of the multi-worker tests and benchmark (run as a script, not collected).

    python tests/multi_worker_worker.py --workers 127.0.0.1:P0,127.0.0.1:P1 --index N \
        --run-dir DIR --out OUT.json [--epochs E] [--resume] [--batch-sleep S]

Without --workers it trains on one process with the default strategy (the
reference). Writes OUT.json: the final weights, the history, the paths this
process replaced atomically (every keras_seq file write ends in `os.replace`)
and what its scratch directory held during training.
"""

import argparse
import json
import os
import sys
import time


def _args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default=None)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--batch-sleep", type=float, default=0.0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--anneal", action="store_true", help="anneal_to_budget")
    parser.add_argument("--sleep-index", type=int, default=None, help="only this worker sleeps")
    parser.add_argument("--model", choices=("dense", "lm", "translator", "transformer"), default="dense")
    return parser.parse_args()


def main():
    args = _args()
    written = []
    real_replace = os.replace

    def recording_replace(src, dst, *a, **k):
        written.append(os.path.abspath(dst))
        return real_replace(src, dst, *a, **k)

    os.replace = recording_replace  # noqa: the tests read which files each worker wrote

    from keras_seq import training

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategy_name = "default"
    if args.workers:
        training.multi_worker_strategy(args.workers.split(","), index=args.index)
        strategy_name = "multi-worker"

    import keras
    import numpy as np

    build, data, loss = _problem(args.model)

    class Watch(keras.callbacks.Callback):
        scratch = []

        def on_train_batch_end(self, batch, logs=None):
            if args.batch_sleep and args.sleep_index in (None, args.index):
                time.sleep(args.batch_sleep)

        def on_epoch_end(self, epoch, logs=None):
            tmp = os.environ.get("TMPDIR")
            if tmp and os.path.isdir(tmp):
                for root, _, files in os.walk(tmp):
                    self.scratch += [os.path.join(root, f) for f in files]

    config = training.TrainConfig(
        epochs=args.epochs, verbose=0, strategy=strategy_name, optimizer="sgd",
        learning_rate=0.1, clipnorm=1.0, resume=args.resume,
        max_minutes=args.max_minutes, anneal_to_budget=args.anneal,
    )
    started = time.monotonic()
    callbacks = [Watch()]
    if args.model == "lm":
        class ResetStates(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.model.reset_states()

        callbacks.append(ResetStates())
    model, history = training.train(build, data, None, args.run_dir, config, loss=loss, callbacks=callbacks)
    out = {
        "index": args.index,
        "pid": os.getpid(),
        "chief": training.is_chief(),
        "seconds": time.monotonic() - started,
        "initial_epoch": history.initial_epoch,
        "epochs": [e + 1 for e in history.epoch],
        "stop_reason": history.stop_reason,
        "loss": history.history["loss"],
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
        "replicas": model.distribute_strategy.num_replicas_in_sync,
        "written": written,
        "scratch_seen": sorted(set(Watch.scratch)),
    }
    with open(args.out, "w") as f:
        json.dump(out, f)


def _problem(kind):
    """(build_model, dataset, loss): a tiny regression, or a tiny translator."""
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    if kind == "dense":
        x = rng.normal(size=(64, 4)).astype("float32")
        y = (x @ rng.normal(size=(4, 3))).astype("float32")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

        def build():
            return keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
            )

        return build, ds, "mse"
    from keras_seq import models

    if kind == "lm":  # the stateful truncated-BPTT language model
        from keras_seq.data import make_lm_dataset
        from keras_seq.training import per_replica_batch_size

        stream = rng.integers(3, 20, size=(8 * 5 * 4 + 1,)).astype("int32")
        ds = make_lm_dataset(stream, 8, 5)

        def build():
            return models.RNNLanguageModel(
                20, embedding_dim=8, units=8, num_layers=1, stateful=True,
                batch_size=per_replica_batch_size(8),  # rows of state per replica
            )

        return build, ds, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    source = rng.integers(3, 20, size=(32, 6)).astype("int32")
    target_in = rng.integers(3, 20, size=(32, 5)).astype("int32")
    target_out = np.roll(target_in, -1, axis=1)
    inputs = {"source": source, "target_in": target_in}
    ds = tf.data.Dataset.from_tensor_slices((inputs, target_out)).batch(8)

    def build():
        if kind == "transformer":
            return models.Transformer(20, 20, num_layers=1, d_model=8, num_heads=2, ff_dim=16)
        return models.AttentionSeq2Seq(20, 20, embedding_dim=8, units=8)

    return build, ds, None  # the translators compute their own masked loss


if __name__ == "__main__":
    sys.exit(main())
