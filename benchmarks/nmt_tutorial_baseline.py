"""The TensorFlow "NMT with attention" tutorial, ported to Keras 3: the anchor.

What the tutorial (tensorflow.org/text/tutorials/nmt_with_attention) does,
kept here as written there, in one self-contained file (no keras_seq model
code; only the data split is shared, so both systems see the same pairs):

- its own text standardization: Unicode NFKD, lower-case, keep only
  `[a-z .?!,¿]` (accents, apostrophes, digits and other letters are dropped),
  spaces around `.?!,¿`, `[START]`/`[END]` markers;
- `TextVectorization` vocabularies of at most 5,000 tokens per language;
- encoder: embedding 256 (masked) + bidirectional GRU 256 (`merge_mode="sum"`);
- decoder: embedding 256 + GRU 256 (zero initial state), additive
  (Bahdanau) attention over the encoder outputs (`W1 q + W2 k -> tanh -> v`,
  the tutorial's original `BahdanauAttention`), `LayerNorm(rnn + context)`,
  `Dense(vocab)`;
- masked cross-entropy, Adam (1e-3), batches of 64, teacher forcing, early
  stopping on validation loss (patience 3, epochs of 100 batches, 20
  validation batches, as the tutorial's `fit` call);
- greedy decoding in a Python loop (max 50 tokens), outputs joined with
  spaces.

The script trains it on the training split of keras_seq's translator recipe
(same seed, same held-out fractions) under a wall-clock budget, then scores
greedy translations of the test split with sacrebleu, both against the raw
references ("raw") and with the tutorial's standardization applied to
hypotheses and references alike ("normalized": lower-case, no accents),
which measures the model rather than its text pipeline.

Usage:

    python benchmarks/nmt_tutorial_baseline.py --max-minutes 10 --json out.json
"""

import json
import time
import unicodedata

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, write_json

import keras
import numpy as np
import tensorflow as tf

UNITS = 256
MAX_VOCAB = 5000
BATCH = 64
MAX_DECODE = 50


def standardize_py(text):
    """The tutorial's `tf_lower_and_split_punct`, in Python (without markers)."""
    import re

    text = unicodedata.normalize("NFKD", text).lower()
    text = re.sub(r"[^ a-z.?!,¿]", "", text)
    text = re.sub(r"([.?!,¿])", r" \1 ", text)
    return " ".join(text.split())


def standardize_tf(text):
    """The tutorial's `tf_lower_and_split_punct` (NFKD via tf.strings)."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8")
    try:
        import tensorflow_text as tf_text

        text = tf_text.normalize_utf8(text, "NFKD")
    except ImportError:  # pragma: no cover - tensorflow-text is a dependency
        pass
    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, "[^ a-z.?!,¿]", "")
    text = tf.strings.regex_replace(text, "[.?!,¿]", r" \0 ")
    text = tf.strings.strip(text)
    return tf.strings.join(["[START]", text, "[END]"], separator=" ")


class BahdanauAttention(keras.layers.Layer):
    """Additive attention: score = v . tanh(W1 q + W2 k), masked softmax."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.w1 = keras.layers.Dense(units, use_bias=False)
        self.w2 = keras.layers.Dense(units, use_bias=False)
        self.v = keras.layers.Dense(1, use_bias=False)

    def call(self, query, keys, mask):
        # query [B, T, U], keys [B, S, U], mask bool [B, S]
        scores = self.v(tf.tanh(self.w1(query)[:, :, None, :] + self.w2(keys)[:, None, :, :]))
        scores = scores[..., 0]  # [B, T, S]
        scores = tf.where(mask[:, None, :], scores, -1e9)
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.matmul(weights, keys), weights


class TutorialTranslator(keras.Model):
    def __init__(self, source_vocab, target_vocab, units=UNITS):
        super().__init__()
        self.src_embedding = keras.layers.Embedding(source_vocab, units, mask_zero=True)
        self.encoder_rnn = keras.layers.Bidirectional(
            keras.layers.GRU(units, return_sequences=True, recurrent_initializer="glorot_uniform"),
            merge_mode="sum")
        self.tgt_embedding = keras.layers.Embedding(target_vocab, units, mask_zero=True)
        self.decoder_rnn = keras.layers.GRU(units, return_sequences=True, return_state=True,
                                            recurrent_initializer="glorot_uniform")
        self.attention = BahdanauAttention(units)
        self.norm = keras.layers.LayerNormalization()
        self.output_layer = keras.layers.Dense(target_vocab)
        self.units = units

    def encode(self, source):
        return self.encoder_rnn(self.src_embedding(source)), tf.not_equal(source, 0)

    def decode(self, context, mask, target_in, state=None, training=False):
        x = self.tgt_embedding(target_in)
        x, state = self.decoder_rnn(x, initial_state=state, training=training)
        attended, weights = self.attention(x, context, mask)
        x = self.norm(x + attended)
        return self.output_layer(x), state

    def call(self, inputs, training=False):
        context, mask = self.encode(inputs["source"])
        logits, _ = self.decode(context, mask, inputs["target_in"], training=training)
        return logits


def masked_loss(y_true, y_pred):
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    mask = tf.cast(y_true != 0, loss.dtype)
    return tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)


def masked_acc(y_true, y_pred):
    pred = tf.cast(tf.argmax(y_pred, axis=-1), y_true.dtype)
    mask = tf.cast(y_true != 0, tf.float32)
    return tf.reduce_sum(tf.cast(pred == y_true, tf.float32) * mask) / tf.reduce_sum(mask)


def make_dataset(pairs, src_vec, tgt_vec, shuffle):
    src = tf.constant([s for s, _ in pairs])
    tgt = tf.constant([t for _, t in pairs])
    ds = tf.data.Dataset.from_tensor_slices((src, tgt))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=0)
    ds = ds.batch(BATCH)

    def process(s, t):
        s = src_vec(s).to_tensor()
        t = tgt_vec(t)
        t_in = t[:, :-1].to_tensor()
        t_out = t[:, 1:].to_tensor()
        return {"source": s, "target_in": t_in}, t_out

    return ds.map(process, tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class TimeBudget(keras.callbacks.Callback):
    """Stops after `seconds` of wall-clock time, or of process CPU time with `cpu=True`."""

    def __init__(self, seconds, cpu=False):
        super().__init__()
        self.seconds = seconds
        self.clock = time.process_time if cpu else time.monotonic
        self.start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self.start > self.seconds:
            self.model.stop_training = True


def greedy_translate(model, src_vec, tgt_vocab, sentences, batch=BATCH):
    """The tutorial's decoding: a Python loop over steps, eager calls."""
    start_id = tgt_vocab.index("[START]")
    end_id = tgt_vocab.index("[END]")
    outputs = []
    for i in range(0, len(sentences), batch):
        chunk = sentences[i:i + batch]
        source = src_vec(tf.constant(chunk)).to_tensor()
        context, mask = model.encode(source)
        n = len(chunk)
        tokens = tf.fill([n, 1], tf.cast(start_id, tf.int64))
        state = None
        done = np.zeros(n, bool)
        result = [[] for _ in range(n)]
        for _ in range(MAX_DECODE):
            logits, state = model.decode(context, mask, tokens, state=state)
            next_ids = tf.argmax(logits[:, -1, :], axis=-1).numpy()
            for r in range(n):
                if not done[r]:
                    if next_ids[r] == end_id:
                        done[r] = True
                    else:
                        result[r].append(tgt_vocab[next_ids[r]])
            if done.all():
                break
            tokens = tf.constant(next_ids[:, None], tf.int64)
            state = state if not isinstance(state, (list, tuple)) else state[0]
        outputs.extend(" ".join(words) for words in result)
    return outputs


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default="bundled:fra-eng")
    parser.add_argument("--reverse", action="store_true")
    parser.add_argument("--max-pairs", type=int)
    parser.add_argument("--max-minutes", type=float, default=10.0, help="wall-clock budget")
    parser.add_argument("--max-cpu-minutes", type=float,
                        help="budget in process CPU time instead (a fair share on a busy machine)")
    parser.add_argument("--seed", type=int, default=None, help="split seed (default: the recipe's)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    from keras_seq import metrics
    from keras_seq.pipelines import translation_training as translation
    from keras_seq.recipes import TranslatorRecipe

    keras.utils.set_random_seed(0)
    recipe = TranslatorRecipe()
    pairs = translation.load_corpus(args.data, reverse=args.reverse, max_pairs=args.max_pairs)
    seed = recipe.split_seed if args.seed is None else args.seed
    val_fraction, test_fraction = recipe.held_out_fractions(len(pairs))
    splits = translation.split_corpus(pairs, seed, val_fraction, test_fraction)
    start = time.monotonic()
    src_vec = keras.layers.TextVectorization(standardize=standardize_tf, max_tokens=MAX_VOCAB,
                                             ragged=True)
    tgt_vec = keras.layers.TextVectorization(standardize=standardize_tf, max_tokens=MAX_VOCAB,
                                             ragged=True)
    src_vec.adapt([s for s, _ in splits["train"]])
    tgt_vec.adapt([t for _, t in splits["train"]])
    train_ds = make_dataset(splits["train"], src_vec, tgt_vec, shuffle=True)
    valid_ds = make_dataset(splits["valid"], src_vec, tgt_vec, shuffle=False)
    model = TutorialTranslator(src_vec.vocabulary_size(), tgt_vec.vocabulary_size())
    model.compile(optimizer="adam", loss=masked_loss, metrics=[masked_acc])
    if args.max_cpu_minutes:
        budget = TimeBudget(args.max_cpu_minutes * 60 - time.process_time(), cpu=True)
    else:
        budget = TimeBudget(args.max_minutes * 60 - (time.monotonic() - start))
    history = model.fit(
        train_ds.repeat(), epochs=1000, steps_per_epoch=100, validation_data=valid_ds,
        validation_steps=20, verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(patience=3), budget],
    )
    train_seconds = time.monotonic() - start
    steps = 100 * len(history.history["loss"])
    test = splits["test"]
    decode_start = time.monotonic()
    hypotheses = greedy_translate(model, src_vec, list(tgt_vec.get_vocabulary()),
                                  [s for s, _ in test])
    decode_seconds = time.monotonic() - decode_start
    references = [t for _, t in test]
    raw = metrics.translation_scores(hypotheses, references)
    normalized_refs = [standardize_py(t) for t in references]
    normalized = metrics.translation_scores([standardize_py(h) for h in hypotheses],
                                            normalized_refs)
    result = {
        "system": "tf-tutorial-port",
        "data": args.data, "train_pairs": len(splits["train"]), "test_pairs": len(test),
        "train_seconds": round(train_seconds, 1), "train_steps": steps,
        "process_cpu_seconds_after_training": round(time.process_time(), 1),
        "epochs": len(history.history["loss"]),
        "best_val_loss": float(min(history.history["val_loss"])),
        "greedy_raw": dict(raw), "greedy_normalized": dict(normalized),
        "decode_seconds": round(decode_seconds, 1),
        "examples": [(s, h, r) for (s, r), h in list(zip(test, hypotheses))[:5]],
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        write_json(args.json, result, indent=2, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
