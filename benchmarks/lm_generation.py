"""Generation speed: carried-state decoding against re-running the prefix (KerasHub).

The network is the PTB "small" LSTM language model (vocabulary 10,002,
2 x LSTM(200)), stateless for decoding. Two decoders drive it, greedily, in
the same process, each compiled once with `tf.function` (tracing and a first
call are excluded from the timings):

- ours: `RNNLanguageModel.generate` = `initial_state(prompt)` (the prompt is
  read once) + `keras_seq.decoding.decode` over `model.step`: one step per new
  token, the recurrent state carried in the loop;
- KerasHub: `keras_hub.samplers.GreedySampler` with a `next(prompt, cache,
  index)` that has no cache and re-runs the whole prefix `prompt[:, :index]`
  through the network for every new token (what a sampler built for a
  stateless model does with an RNN that exposes no state).

By default both generate exactly `--new-tokens` tokens per row (ours:
`end_id` = the vocabulary size, an id no model emits; KerasHub: no stop
token); with `--stop-at-eos` both stop at EOS (ours: `end_id=EOS`; KerasHub:
`stop_token_ids=[EOS]` and a mask over the prompt). The benchmark checks that
both produce the same tokens. Workloads: 16 prompts x 128 new tokens
(tokens/s), and one prompt x 128 new tokens (latency per token).

Weights: random (seeded) by default, or `--weights` a `.weights.h5` file of
an `RNNLanguageModel` of this shape (e.g. the PTB benchmark's best
checkpoint). Prompts: 16 windows of `--prompt-length` tokens of the PTB
validation text when `--data` has it, else random ids.

Usage:

    python benchmarks/lm_generation.py
    python benchmarks/lm_generation.py --weights runs/ptb-zaremba-small/checkpoints/best.weights.h5
"""

import os
import statistics
import sys

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import PTB_DATA, argument_parser, load_average_line, time_call

import numpy as np

VOCAB, UNITS, LAYERS = 10002, 200, 2


def prompts(data_dir, n, length):
    path = os.path.join(data_dir, "ptb.valid.txt")
    if os.path.isfile(path):
        import ptb

        _, ids = ptb.load_ptb(data_dir)
        stream = ids["valid"]
        starts = np.linspace(0, len(stream) - length - 1, n).astype(int)
        return np.stack([stream[s : s + length] for s in starts]).astype(np.int32), "PTB valid"
    rng = np.random.default_rng(0)
    return rng.integers(4, VOCAB, (n, length)).astype(np.int32), "random ids"


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default=PTB_DATA)
    parser.add_argument("--weights", help="RNNLanguageModel weights (.weights.h5) of this shape")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-length", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stop-at-eos", action="store_true",
                        help="stop rows at EOS (default: always generate --new-tokens tokens)")
    args = parser.parse_args(argv)

    import keras
    import keras_hub
    import tensorflow as tf

    from keras_seq.models import RNNLanguageModel
    from keras_seq.text import EOS_ID

    keras.utils.set_random_seed(0)
    model = RNNLanguageModel(VOCAB, UNITS, UNITS, num_layers=LAYERS, stateful=False)
    if args.weights:
        model.load_weights(args.weights)
    prompt_ids, source = prompts(args.data, args.batch, args.prompt_length)
    T, L = args.prompt_length, args.new_tokens
    end_id = EOS_ID if args.stop_at_eos else VOCAB  # VOCAB: an id no model emits
    stop_ids = [EOS_ID] if args.stop_at_eos else None

    @tf.function
    def ours(prompt):
        result = model.generate(prompt, max_length=L, end_id=end_id)
        return result.ids[:, 0, :]  # [N, L]

    sampler = keras_hub.samplers.GreedySampler()

    def next_fn(prompt, cache, index):
        # No cache: re-run the network over the whole prefix for every token.
        logits = model(prompt[:, :index], training=False)  # [N, index, V]
        return logits[:, -1, :], None, cache

    @tf.function
    def hub(prompt):
        n = tf.shape(prompt)[0]
        buffer = tf.concat([prompt, tf.zeros([n, L], tf.int32)], axis=1)
        # mask: the prompt positions (never overwritten, and an EOS inside the
        # prompt does not count as a finished row), as KerasHub's CausalLM passes it.
        mask = tf.concat([tf.ones([n, T], tf.bool), tf.zeros([n, L], tf.bool)], axis=1)
        out = sampler(next_fn, buffer, index=T, mask=mask, stop_token_ids=stop_ids)
        return out[:, T:]  # [N, L]

    results = {}
    for label, batch in (("16 prompts", prompt_ids), ("1 prompt", prompt_ids[:1])):
        batch = tf.constant(batch)
        ours_ids = ours(batch).numpy()  # trace + first call
        hub_ids = hub(batch).numpy()
        # Same tokens up to each row's EOS (after it ours writes 0, KerasHub keeps going).
        same, ties, generated = True, 0, 0
        for row, (a, b) in enumerate(zip(ours_ids, hub_ids)):
            end = np.nonzero(a == end_id)[0]
            n = int(end[0]) + 1 if len(end) else L
            generated += n
            if np.array_equal(a[:n], b[:n]):
                continue
            # A difference is only acceptable at a near-tie of the two best
            # logits (float rounding differs between the two computations).
            j = int(np.nonzero(a[:n] != b[:n])[0][0])
            prefix = np.concatenate([batch.numpy()[row], a[:j]])[None]
            logits = np.sort(model(prefix).numpy()[0, -1])
            if logits[-1] - logits[-2] < 1e-4:
                ties += 1
            else:
                same = False
        t_ours, t_hub = [], []
        for rep in range(args.repeats):  # alternate, so load changes hit both
            t_ours.append(time_call(ours, batch)[0])  # wall seconds
            t_hub.append(time_call(hub, batch)[0])
        results[label] = dict(same=same, ties=ties, generated=generated, ours=statistics.median(t_ours),
                              hub=statistics.median(t_hub), n=int(batch.shape[0]))

    print(f"network: {LAYERS}x LSTM({UNITS}), vocab {VOCAB}, "
          f"{'weights ' + args.weights if args.weights else 'random weights'}; prompts: {source}, "
          f"{T} tokens; {L} new tokens{' (or up to EOS)' if args.stop_at_eos else ''}, greedy; median of {args.repeats} timed calls after a "
          f"warm-up call; TensorFlow {tf.__version__}, KerasHub {keras_hub.__version__}")
    for label, r in results.items():
        tokens = r["generated"]
        print(f"{label}: same tokens: {r['same']}"
              + (f" ({r['ties']} row(s) part at a near-tie of the top two logits, gap < 1e-4)"
                 if r["ties"] else "") + f"; {tokens} tokens generated")
        print(f"  ours (carried state):     {r['ours']:.3f} s  {tokens / r['ours']:9.0f} tokens/s  "
              f"{1000 * r['ours'] / (tokens / r['n']):.2f} ms per decoding step")
        print(f"  KerasHub GreedySampler:   {r['hub']:.3f} s  {tokens / r['hub']:9.0f} tokens/s  "
              f"{1000 * r['hub'] / (tokens / r['n']):.2f} ms per decoding step")
        print(f"  speed-up: {r['hub'] / r['ours']:.1f}x")
    print(load_average_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
