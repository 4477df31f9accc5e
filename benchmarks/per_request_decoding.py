"""Cost of per-request decoding settings: runtime (tensor) settings vs settings fixed at export.

An export's text and id-level signatures take the decoding settings as scalar
inputs (`keras_seq.export.signatures`), so the beam width, the n-best size,
the length limit and the sampling settings are tensors in the graph, not
Python constants. This measures what that costs, in one process, against the
anchor: the same `ServingFunctions.id_level` traced without the inputs (the
export's settings as Python values, which is what exports did before).

- translator: `AttentionSeq2Seq` (embedding 64, 128 units, vocabularies of
  2,000), `--batch` sources of 12 tokens, beam 5 with length penalty 0.6,
  up to 30 tokens: static `BeamSearch(5, 0.6)` vs `beam_size=5`,
  `length_penalty=0.6`, `n_best=1`, `max_length=30` fed as tensors;
- language model: `RNNLanguageModel` (embedding 64, 256 units, vocabulary
  5,000), `--batch` prompts of 8 tokens, 30 greedy tokens: static argmax vs
  the runtime sampler with `top_k=1` (a greedy export's defaults).

EOS is pushed down so every row decodes all 30 tokens; both variants must
give the same ids (checked). Both are traced before timing, then alternate;
the median over `--repeats` of wall and process-CPU seconds is reported.

Usage:

    python benchmarks/per_request_decoding.py --repeats 15

Writes `benchmarks/per_request_decoding.json`.
"""

import os

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import HERE, argument_parser, environment, load_average, time_call, write_json

import numpy as np

LENGTH = 30


def _push_down_eos(model, layer, seed):
    import keras

    from keras_seq.text import EOS_ID

    keras.utils.set_random_seed(seed)
    kernel, bias = layer.get_weights()
    bias[EOS_ID] -= 20.0
    layer.set_weights([kernel, bias])
    return model


def _pair(fns, ids, settings):
    """(static, runtime) tf.functions of the id-level signature on `ids`."""
    import tensorflow as tf

    name = fns.model.input_name
    spec = tf.TensorSpec([None, None], tf.int32)
    static = tf.function(lambda x: fns.id_level({name: x})["ids"], input_signature=[spec])
    tensors = {k: tf.constant(v) for k, v in settings.items()}
    runtime = tf.function(
        lambda x: fns.id_level(dict(tensors, **{name: x}))["ids"], input_signature=[spec]
    )
    return static, runtime


def measure(label, static, runtime, ids, repeats):
    a, b = static(ids).numpy(), runtime(ids).numpy()  # traced, and checked
    assert np.array_equal(a, b), f"{label}: runtime settings changed the answer"
    times = {"static": [], "runtime": []}
    for _ in range(repeats):
        for name, fn in (("static", static), ("runtime", runtime)):
            times[name].append(time_call(fn, ids))
    out = {}
    for name, values in times.items():
        wall, cpu = np.median(np.asarray(values), axis=0)
        out[name] = {"wall_s": round(float(wall), 4), "cpu_s": round(float(cpu), 4)}
    out["ratio_wall"] = round(out["runtime"]["wall_s"] / out["static"]["wall_s"], 3)
    out["ratio_cpu"] = round(out["runtime"]["cpu_s"] / out["static"]["cpu_s"], 3)
    print(f"{label}: static {out['static']}  runtime {out['runtime']}  "
          f"ratio wall {out['ratio_wall']}  cpu {out['ratio_cpu']}")
    return out


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    from keras_seq import decoding
    from keras_seq.export.signatures import ServingFunctions
    from keras_seq.models import AttentionSeq2Seq, RNNLanguageModel

    rng = np.random.default_rng(0)
    translator = AttentionSeq2Seq(2000, 2000, embedding_dim=64, units=128, max_length=40)
    sources = rng.integers(4, 2000, size=(args.batch, 12)).astype(np.int32)
    sources[:, -1] = 3  # EOS
    translator.generate(sources[:1], max_length=2)  # builds the weights
    _push_down_eos(translator, translator.output_projection, 1)
    fns = ServingFunctions(translator, LENGTH, decoding.BeamSearch(5, 0.6))
    settings = {"beam_size": np.int32(5), "length_penalty": np.float32(0.6),
                "n_best": np.int32(1), "max_length": np.int32(LENGTH)}
    results = {"translator_beam5": measure(
        "translator beam 5", *_pair(fns, sources, settings), sources, args.repeats)}

    lm = RNNLanguageModel(5000, embedding_dim=64, units=256, num_layers=1, stateful=False)
    prompts = rng.integers(4, 5000, size=(args.batch, 8)).astype(np.int32)
    lm.generate(prompts[:1], max_length=2)
    _push_down_eos(lm, lm.output_layer, 2)
    fns = ServingFunctions(lm, LENGTH)
    settings = {"temperature": np.float32(1.0), "top_k": np.int32(1), "top_p": np.float32(1.0),
                "seed": np.int64(-1), "max_length": np.int32(LENGTH)}
    results["lm_greedy"] = measure(
        "language model greedy", *_pair(fns, prompts, settings), prompts, args.repeats)

    result = {"batch": args.batch, "max_length": LENGTH, "repeats": args.repeats,
              "results": results, "load_average": load_average(), "environment": environment()}
    write_json(os.path.join(HERE, "per_request_decoding.json"), result)
    print("load average:", result["load_average"])


if __name__ == "__main__":
    main()
