"""Transformer vs attention-RNN translator on the bundled English-French pairs.

The models are trained with the library's own code, one after the other,
under the same compute budget, then scored on the same held-out test split
(with `--reuse`, a model whose run directory already holds a finished
training is only re-scored, so the scores of all models come from one
process even when their trainings ran at different times):

- data: `keras_seq.data.load_pairs("bundled:fra-eng")` (60,000 pairs, English
  -> French), `keras_seq.data.split_pairs` (held-out sources never seen in
  training; 2,500 validation and 2,500 test pairs, the `keras-seq
  train-translator` split), word tokenizers (lower-cased, source 16,000 /
  target 8,000 types, min frequency 2), `keras_seq.data.make_pair_dataset`
  (length-bucketed batches of 64, sequences up to 50 tokens);
- training: `keras_seq.training.train` (Adam, global-norm clipping 5,
  checkpoints, validation every `--steps-per-epoch` batches, best weights
  restored), masked cross-entropy without label smoothing; validation always
  scores the full softmax;
- models: the `keras-seq train-translator` model recipes, on a lower-cased
  target vocabulary and a constant learning rate after warm-up (the CLI's
  translator keeps case and halves the rate on plateaus). `rnn`: `AttentionSeq2Seq`,
  embedding 256, 1 bidirectional LSTM(256) encoder layer, LSTM(256) decoder,
  Bahdanau attention, dropout 0.2, trained with a sampled softmax over 512
  negatives, Adam lr 2e-3 after 300 warm-up steps. `rnn-gru-full`: the same
  network with GRUs and the full softmax, no warm-up. `transformer`:
  `Transformer`, d_model 256, 4 heads, feed-forward 1024, 3 + 3 layers,
  pre-LN, dropout 0.1, full softmax, lr 5e-4 with 400 warm-up steps;
- budget: `--cpu-minutes` of *process CPU time* per model (not wall time: the
  machine is shared, and a CPU budget gives both models the same compute
  whatever the load; the wall time is reported). Training stops after the
  batch that spends it; the partial epoch is validated as usual;
- scores: sacrebleu corpus BLEU (and chrF) of greedy decoding and of beam
  search (beam 5, length penalty 0.6) on the test split (beam: the first
  `--beam-sentences` pairs), case-insensitive (the tokenizers lower-case),
  without `<unk>` replacement; decoding speed in sentences/s (batches of 64,
  `translate_ids` in a `tf.function`, tracing excluded).

Usage:

    python benchmarks/transformer_vs_rnn.py --cpu-minutes 8
    python benchmarks/transformer_vs_rnn.py --reuse      # re-score trained runs

Writes `benchmarks/transformer_vs_rnn.json`; runs go to `runs/bench-*`
(git-ignored).
"""

import json
import math
import os
import shutil
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import (HERE, ROOT, Stopwatch, argument_parser, environment, load_average,
                     write_json)

import numpy as np

MAX_LENGTH = 50
HELD_OUT = 2500


def prepare_data(args):
    from keras_seq import data, text

    pairs = data.load_pairs("bundled:fra-eng", max_pairs=args.max_pairs)
    fraction = min(0.05, HELD_OUT / len(pairs))
    train_pairs, valid_pairs, test_pairs = data.split_pairs(
        pairs, val_fraction=fraction, test_fraction=fraction, seed=1234
    )
    source_tok = text.WordTokenizer(lowercase=True, max_tokens=16000, min_frequency=2)
    target_tok = text.WordTokenizer(lowercase=True, max_tokens=8000, min_frequency=2)
    source_tok.fit([s for s, _ in train_pairs])
    target_tok.fit([t for _, t in train_pairs])

    def encode(split):
        sources = source_tok.encode([s for s, _ in split])
        targets = target_tok.encode([t for _, t in split])
        kept = [(s, t) for s, t in zip(sources, targets) if s and t]
        return [s for s, _ in kept], [t for _, t in kept]

    def dataset(split, shuffle):
        sources, targets = encode(split)
        return data.make_pair_dataset(
            sources, targets, args.batch_size, max_source_length=MAX_LENGTH,
            max_target_length=MAX_LENGTH, shuffle=shuffle, seed=0,
        )

    return {
        "train": dataset(train_pairs, True),
        "valid": dataset(valid_pairs, False),
        "test_pairs": test_pairs,
        "source_tokenizer": source_tok,
        "target_tokenizer": target_tok,
        "sizes": {"train": len(train_pairs), "valid": len(valid_pairs), "test": len(test_pairs),
                  "source_vocab": source_tok.vocab_size, "target_vocab": target_tok.vocab_size},
    }


def model_builders(source_vocab, target_vocab):
    from keras_seq.models import AttentionSeq2Seq, Transformer

    def rnn(cell, sampled_softmax):
        return lambda: AttentionSeq2Seq(
            source_vocab, target_vocab, embedding_dim=256, units=256, num_layers=1,
            cell=cell, bidirectional=True, attention="bahdanau", dropout=0.2,
            max_length=MAX_LENGTH + 1, sampled_softmax=sampled_softmax,
        )

    return {
        # The `keras-seq train-translator` recipe: LSTM, sampled softmax (512).
        "rnn": (rnn("lstm", 512), dict(learning_rate=2e-3, warmup_steps=300)),
        # The same network with GRUs and the full softmax, no warmup.
        "rnn-gru-full": (rnn("gru", 0), dict(learning_rate=2e-3, warmup_steps=0)),
        "transformer": (
            lambda: Transformer(
                source_vocab, target_vocab, d_model=256, num_heads=4, ff_dim=1024,
                num_layers=3, dropout=0.1, max_length=MAX_LENGTH + 1,
            ),
            dict(learning_rate=5e-4, warmup_steps=400),
        ),
    }


def cpu_budget_callback(seconds):
    import keras

    class CpuBudget(keras.callbacks.Callback):
        """Stops training after the batch that spends `seconds` of process CPU time."""

        def on_train_begin(self, logs=None):
            self.start = time.process_time()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if time.process_time() - self.start >= seconds:
                self.model.stop_training = True

    return CpuBudget()


def translate(model, source_tok, target_tok, sentences, beam, batch_size):
    """Translations (text) of `sentences` and the decoding wall/CPU seconds."""
    import tensorflow as tf

    from keras_seq import decoding

    strategy = "greedy" if beam is None else decoding.BeamSearch(beam, length_penalty=0.6)

    # autograph=False: the decoding loop is an explicit tf.while_loop (and
    # autograph once mixed up this method with a converted `step`).
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], autograph=False)
    def run(source_ids):
        return model.generate(source_ids, strategy=strategy, max_length=MAX_LENGTH).ids[:, 0]

    encoded = source_tok.encode(sentences)
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = [ids[: MAX_LENGTH] + [3] for ids in encoded[start : start + batch_size]]
        width = max(len(ids) for ids in chunk)
        batches.append(np.array([ids + [0] * (width - len(ids)) for ids in chunk], "int32"))
    run(tf.constant(batches[0][:2]))  # trace (excluded from the timing)
    outputs = []
    watch = Stopwatch()
    for batch in batches:
        outputs.append(run(tf.constant(batch)).numpy())
    wall, cpu = watch.elapsed()
    texts = []
    for ids in outputs:
        texts.extend(target_tok.decode(ids))
    return texts, wall, cpu


def score(name, model, entry, data, sources, references, args):
    """BLEU/chrF and decoding speed of greedy and beam-5 decoding on the test split."""
    import sacrebleu

    entry = dict(entry)
    for label, beam, count in (("greedy", None, len(sources)),
                               ("beam5", 5, min(args.beam_sentences, len(sources)))):
        texts, wall, cpu = translate(model, data["source_tokenizer"], data["target_tokenizer"],
                                     sources[:count], beam, args.batch_size)
        bleu = sacrebleu.corpus_bleu(texts, [references[:count]], lowercase=True)
        chrf = sacrebleu.corpus_chrf(texts, [references[:count]])
        entry[label] = {"sentences": count, "bleu": bleu.score, "chrf": chrf.score,
                        "sentences_per_s": count / wall, "sentences_per_cpu_s": count / cpu,
                        "load": load_average(), "examples": list(zip(sources[:3], texts[:3]))}
        print(f"{name} {label}: BLEU {bleu.score:.2f} chrF {chrf.score:.2f} on {count} "
              f"sentences, {count / wall:.1f} sentences/s ({count / cpu:.1f} per CPU-s)",
              flush=True)
    return entry


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--cpu-minutes", type=float, default=8.0)
    parser.add_argument("--max-wall-minutes", type=float, default=45.0)
    parser.add_argument("--models", nargs="+", default=["rnn", "rnn-gru-full", "transformer"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps-per-epoch", type=int, default=300)
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--beam-sentences", type=int, default=2500,
                        help="test sentences decoded with beam search (greedy: all)")
    parser.add_argument("--reuse", action="store_true",
                        help="skip training where runs/bench-<model> holds a finished run "
                             "(best checkpoint + bench_train.json); only score it")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", default=os.path.join(HERE, "transformer_vs_rnn.json"))
    args = parser.parse_args(argv)

    import sacrebleu

    from keras_seq.training import TrainConfig, train

    data = prepare_data(args)
    print(f"data: {data['sizes']}", flush=True)
    builders = model_builders(data["sizes"]["source_vocab"], data["sizes"]["target_vocab"])
    test_pairs = data["test_pairs"]
    sources = [s for s, _ in test_pairs]
    references = [t.lower() for _, t in test_pairs]
    result = {"sizes": data["sizes"], "models": {}}
    for name in args.models:
        build, recipe = builders[name]
        run_dir = os.path.join(ROOT, "runs", f"bench-{name}")
        info_file = os.path.join(run_dir, "bench_train.json")
        if args.reuse and os.path.isfile(info_file):
            model = build()
            model.load_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
            with open(info_file) as f:
                entry = json.load(f)
            entry["reused_checkpoint"] = True
            entry["parameters"] = int(model.count_params())
            print(f"{name}: reusing {run_dir} ({entry})", flush=True)
            result["models"][name] = score(name, model, entry, data, sources, references, args)
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        config = TrainConfig(
            epochs=1000, batch_size=args.batch_size, max_minutes=args.max_wall_minutes,
            seed=args.seed, optimizer="adam", clipnorm=5.0, lr_schedule="constant",
            restore_best=True, verbose=0, **recipe,
        )
        budget = cpu_budget_callback(args.cpu_minutes * 60)
        watch = Stopwatch()
        model, history = train(
            build, data["train"].repeat(), data["valid"], run_dir, config,
            callbacks=[budget], steps_per_epoch=args.steps_per_epoch,
        )
        train_wall, train_cpu = watch.elapsed()
        val_losses = history.history.get("val_loss", [])
        entry = {
            "parameters": int(model.count_params()),
            "train_wall_s": train_wall,
            "train_cpu_s": train_cpu,
            "train_steps": budget.steps,
            "epochs_of_data": budget.steps * args.batch_size / data["sizes"]["train"],
            "best_val_loss": float(min(val_losses)) if val_losses else None,
            "best_val_perplexity": math.exp(min(val_losses)) if val_losses else None,
            "stop_reason": history.stop_reason,
            "load_after_training": load_average(),
        }
        print(f"{name}: trained {budget.steps} steps ({entry['epochs_of_data']:.2f} epochs), "
              f"wall {train_wall:.0f} s, CPU {train_cpu:.0f} s, best val perplexity "
              f"{entry['best_val_perplexity']:.2f}, load {load_average()}", flush=True)
        write_json(info_file, entry)
        result["models"][name] = score(name, model, entry, data, sources, references, args)
    result["settings"] = vars(args)
    result["environment"] = environment(sacrebleu=sacrebleu.__version__)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
