"""Multi-worker training: two worker processes on 127.0.0.1 against one, one CPU core each.

The workload is the Penn Treebank "small" language model (vocabulary 10,002,
embedding 200, 2 x LSTM(200), 35 steps, stateful truncated BPTT, SGD lr 1.0
with global-norm clipping 5) trained through `keras_seq.training.train`, on the
PTB training stream when `../shared/data/ptb` has it (else a synthetic Zipf
stream). Every worker is its own process pinned to its own core with
`taskset -c K` and one TensorFlow intra-op thread; the workers talk over
loopback gRPC (`tf.distribute.MultiWorkerMirroredStrategy`, ring all-reduce).

Three runs, each over the same number of training examples (35-token rows):

- `1 worker`: global batch B on core 0 (the anchor);
- `2 workers, same global batch`: B split B/2 + B/2, the same optimizer steps
  as the anchor (strong scaling: the same loss curve, less work per worker);
- `2 workers, 2x global batch`: 2B (B per worker), half as many steps (weak
  scaling: the usual data-parallel set-up; the learning rate is *not* scaled).

Reported per run: examples/s (rows of 35 tokens per second, timed after
`--warmup` steps, to the end of training), scaling efficiency = examples/s /
(workers x anchor examples/s); examples per CPU-second of all workers over
the same steps (CPU efficiency: that against the anchor's; it measures the
cost of the all-reduce whatever share of a core each worker got on a shared
machine) and that share; the final training loss (mean over the last 10% of
the steps) and the validation loss after training (the same tokens, which
follow the training tokens in the stream, for every run).

Usage:

    python benchmarks/multi_worker.py                     # B=32, 200 steps
    python benchmarks/multi_worker.py --batch 20 --steps 100 --warmup 10
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import HERE, PTB_DATA, argument_parser, load_average, load_average_line, write_json

SEQ_LEN, VOCAB = 35, 10002


def _parser():
    parser = argument_parser(__doc__)
    parser.add_argument("--batch", type=int, default=32, help="global batch of the 1-worker anchor")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of the anchor")
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed (compile, warm-up)")
    parser.add_argument("--data", default=PTB_DATA)
    parser.add_argument("--inter-op", type=int, default=2,
                        help="TensorFlow inter-op threads per worker (0: TensorFlow's default)")
    parser.add_argument("--out", default=os.path.join(HERE, "multi_worker.json"))
    # Worker mode (started by the driver).
    parser.add_argument("--role", choices=("driver", "worker"), default="driver")
    parser.add_argument("--workers", default=None)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--result", default=None)
    parser.add_argument("--anchor-batch", type=int, default=None)
    return parser


# ---------------------------------------------------------------- one worker


def worker(args):
    """Train on this process (one of the cluster when --workers is given)."""
    from keras_seq import training

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    strategy = "default"
    if args.workers:
        training.multi_worker_strategy(args.workers.split(","), index=args.index)
        strategy = "multi-worker"
    import keras

    from keras_seq.data import make_lm_dataset
    from keras_seq.models import RNNLanguageModel
    from lm_throughput import token_stream

    # Exactly `steps` windows per row; the validation tokens follow the training
    # tokens and are the same for every run (20 anchor batches).
    n_train = args.batch * (SEQ_LEN * args.steps + 1)
    n_valid = 2 * args.anchor_batch * (SEQ_LEN * 10 + 1)
    ids, source = token_stream(args.data, n_train + n_valid)
    train_ids, valid_ids = ids[:n_train], ids[n_train:]
    train_ds = make_lm_dataset(train_ids, args.batch, SEQ_LEN)
    valid_ds = make_lm_dataset(valid_ids, args.batch, SEQ_LEN)

    def build():
        return RNNLanguageModel(
            VOCAB, embedding_dim=200, units=200, num_layers=2, stateful=True,
            batch_size=training.per_replica_batch_size(args.batch),
        )

    clock = _make_clock(args.warmup)

    class ResetStates(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.reset_states()

        def on_test_begin(self, logs=None):
            self.model.reset_states()

    config = training.TrainConfig(
        epochs=1, batch_size=args.batch, optimizer="sgd", learning_rate=1.0, clipnorm=5.0,
        strategy=strategy, verbose=0, seed=1,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        _, history = training.train(
            build, train_ds, valid_ds, run_dir, config,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            callbacks=[clock, ResetStates()],
        )
    timed = clock.steps
    result = {
        "index": args.index,
        "global_batch": args.batch,
        "steps": int(train_ds.cardinality()),
        "timed_steps": timed,
        "timed_seconds": clock.seconds,
        "examples_per_second": args.batch * timed / clock.seconds,
        "cpu_seconds": time.process_time(),
        "timed_cpu_seconds": clock.cpu_seconds,
        "loss": history.history["loss"][-1],
        "final_loss": clock.last_mean(),
        "val_loss": history.history["val_loss"][-1],
        "data": source,
    }
    with open(args.result, "w") as f:
        json.dump(result, f)


def _make_clock(warmup):
    import keras

    class Clock(keras.callbacks.Callback):
        """Wall time from the start of step `warmup` to the end of the last step;
        the running mean of the loss after every step."""

        def __init__(self):
            super().__init__()
            self.start, self.steps, self.seconds, self.running = None, 0, None, []
            self.cpu_start, self.cpu_seconds = None, None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == warmup:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            self.running.append(float(logs["loss"]))  # waits for the step
            if self.start is not None:
                self.steps += 1
                self.seconds = time.perf_counter() - self.start
                self.cpu_seconds = time.process_time() - self.cpu_start  # all threads: compute + gRPC

        def last_mean(self, fraction=0.1):
            """Mean loss over the last `fraction` of the steps (from the running means)."""
            n = len(self.running)
            k = max(1, int(n * fraction))
            total = n * self.running[-1] - ((n - k) * self.running[n - k - 1] if n > k else 0.0)
            return total / k

    return Clock()


# ---------------------------------------------------------------- the driver


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(args, workers, batch, steps, tmp):
    """Start `workers` pinned processes; returns their result dicts."""
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(workers)] if workers > 1 else None
    procs = []
    for i in range(workers):
        result = os.path.join(tmp, f"w{workers}-b{batch}-{i}.json")
        command = [
            "taskset", "-c", str(i), sys.executable, os.path.abspath(__file__), "--role", "worker",
            "--batch", str(batch), "--steps", str(steps), "--warmup", str(args.warmup),
            "--data", args.data, "--result", result, "--index", str(i),
            "--anchor-batch", str(args.batch), "--inter-op", str(args.inter_op),
        ]
        if addresses:
            command += ["--workers", ",".join(addresses)]
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        procs.append((subprocess.Popen(command, env=env), result))
    out = []
    for proc, result in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode})")
        with open(result) as f:
            out.append(json.load(f))
    return out


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.role == "worker":
        return worker(args)
    b, n = args.batch, args.steps
    if b % 2 or n % 2:
        raise SystemExit("--batch and --steps must be even")
    runs = [
        ("1 worker", 1, b, n),
        ("2 workers, same global batch", 2, b, n),
        ("2 workers, 2x global batch", 2, 2 * b, n // 2),
    ]
    loads, results = [load_average()], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, workers, batch, steps in runs:
            started = time.perf_counter()
            out = _run(args, workers, batch, steps, tmp)
            loads.append(load_average())
            chief = out[0]
            results.append({
                "run": name, "workers": workers, "global_batch": batch, "steps": steps,
                "examples": batch * steps,
                "examples_per_second": chief["examples_per_second"],
                "cpu_seconds": [w["cpu_seconds"] for w in out],
                "timed_steps": chief["timed_steps"],
                # Examples per CPU-second of all workers over the timed steps: the
                # work each example costs, whatever share of a core a worker got.
                "examples_per_cpu_second": batch * chief["timed_steps"]
                / sum(w["timed_cpu_seconds"] for w in out),
                "cpu_share": [w["timed_cpu_seconds"] / w["timed_seconds"] for w in out],
                "loss": chief["loss"], "final_loss": chief["final_loss"], "val_loss": chief["val_loss"],
                "wall_seconds": time.perf_counter() - started, "load_average_after": loads[-1],
            })
            print(f"{name}: {chief['examples_per_second']:.1f} examples/s, final loss "
                  f"{chief['final_loss']:.4f}, "
                  f"val_loss {chief['val_loss']:.4f}", flush=True)
    anchor = results[0]["examples_per_second"]
    anchor_cpu = results[0]["examples_per_cpu_second"]
    for r in results:
        r["speedup"] = r["examples_per_second"] / anchor
        r["scaling_efficiency"] = r["speedup"] / r["workers"]
        r["cpu_efficiency"] = r["examples_per_cpu_second"] / anchor_cpu
    _print_table(results, out[0]["data"])
    write_json(args.out, {"results": results, "data": out[0]["data"], "seq_len": SEQ_LEN,
                          "load_average": loads, "cpus": os.cpu_count(), "args": vars(args)})
    print(load_average_line())


def _print_table(results, data):
    print(f"\ndata: {data}; rows of {SEQ_LEN} tokens")
    print("| run | global batch | steps | examples/s | speedup | scaling efficiency | "
          "examples / CPU-s | CPU efficiency | share of a core per worker | "
          "final loss (last 10% of steps) | val_loss |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        share = " / ".join(f"{c:.2f}" for c in r["cpu_share"])
        print(f"| {r['run']} | {r['global_batch']} | {r['steps']} | {r['examples_per_second']:.1f} | "
              f"{r['speedup']:.2f} | {r['scaling_efficiency']:.2f} | {r['examples_per_cpu_second']:.1f} | "
              f"{r['cpu_efficiency']:.2f} | {share} | {r['final_loss']:.4f} | {r['val_loss']:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
