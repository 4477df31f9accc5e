"""`Translator`: a trained translator, text in and text out.

    translator = Translator.from_run("runs/translator")
    translator.translate(["I am cold."])             # beam 5, length penalty 1.2
    translator.evaluate()                            # BLEU/chrF on the test split
    translator.export("exported/fra-eng")            # SavedModel + ONNX, parity-checked

Bad input in `translate` (reported in the returned `Translation`; the other
lines are still translated, one result per input line):

- an empty or blank line: `error="empty line"`, empty text;
- a line that is not valid UTF-8 (given as bytes): an error, empty text;
- a line made only of words outside the vocabulary: translated, with a
  warning (the result is a guess; unknown words are copied by the `<unk>`
  replacement);
- a line longer than the model's maximum source length: its first tokens are
  translated, with a warning;
- a beam size < 1 or an n-best above the beam: `InputError` before anything runs.
"""

import dataclasses
import math
import sys
import time

from keras_seq import errors
from keras_seq import extras
from keras_seq import progress
from keras_seq import runs
from keras_seq.pipelines.translation_training import load_corpus
from keras_seq.pipelines.translation_training import load_split
from keras_seq.pipelines.translation_training import train_translator
from keras_seq.recipes import TranslatorRecipe
from keras_seq.recipes.common import say
from keras_seq.utils import is_int
from keras_seq.utils import is_number
from keras_seq.utils import right_pad

__all__ = ["Translation", "Translator", "format_scores", "train_translator"]

DECODE_BATCH = 64
# Calls translating at most this many sentences decode eagerly (decode_mode="auto").
EAGER_MAX_SENTENCES = 256
# A recurrent translator's outputs are capped at this many times its longest
# source (`Translator.max_output_length`).
RNN_OUTPUT_FACTOR = 2
# Validation sentences an export is parity-checked on.
PARITY_SENTENCES = 4
_RECIPE = TranslatorRecipe()


@dataclasses.dataclass
class Translation:
    """The translation of one input line.

    Attributes:
        text: the best translation ("" when the line could not be translated).
        hypotheses: `[(text, score), ...]` best first (n-best), score = summed
            log-probability.
        warnings: problems that did not stop the translation (truncated,
            unknown words).
        error: why the line was not translated, or None.
        source_tokens: the source tokens read (EOS included).
        output_tokens: the best hypothesis' tokens (EOS included).
        attention: float `[len(output_tokens), len(source_tokens)]` of the
            best hypothesis, when requested.
    """

    text: str = ""
    hypotheses: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    error: str = None
    source_tokens: list = None
    output_tokens: list = None
    attention: object = None


def _round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


class Translator:
    """A trained translator ready to decode: model, tokenizers and settings.

    Runs `model.generate` (the in-graph `keras_seq.decoding` loop) in a
    `tf.function` per decoding setting, batches sentences of similar length,
    and turns ids back into text, replacing `<unk>` outputs by the most
    attended source word when `unk_replace` is on.

    Args:
        model: an `AttentionSeq2Seq` or `Transformer` (with weights).
        source_tokenizer, target_tokenizer: fitted `keras_seq.text` tokenizers.
        options: the default `keras_seq.decoding.DecodeOptions` of `translate`
            (None: the recipe's, beam 5 with length penalty 1.2).
        unk_replace: replace `<unk>` in outputs by source words (word-level
            target tokenizers only).
        jit_compile: XLA-compile the decoding loop (slower to start; see
            benchmarks/RESULTS.md for when it pays).
        decode_mode: "graph" (a `tf.function` per setting, traced once),
            "eager" (the same loop run op by op), or "auto": eager for at
            most `EAGER_MAX_SENTENCES` sentences per call, where tracing
            would take longer than decoding.
        run_dir, run_config: the run the model comes from (set by `from_run`;
            `evaluate` and `export` read its data split from them).

    Example:

    ```python
    import keras_seq as ks

    translator = ks.Translator.from_run("runs/translator")
    [t.text for t in translator.translate(["I am cold."])]
    translator.translate(["I am cold."], ks.decoding.DecodeOptions(beam_size=8, num_return=3))
    ```
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, *, options=None,
                 unk_replace=True, jit_compile=False, decode_mode="auto", run_dir=None,
                 run_config=None):
        for name, tok, size in (("source", source_tokenizer, model.source_vocab_size),
                                ("target", target_tokenizer, model.target_vocab_size)):
            if tok.vocab_size != size:
                raise errors.RunDirError(
                    f"vocabulary mismatch: the {name} tokenizer has {tok.vocab_size} tokens but "
                    f"the model expects {size}"
                )
        if decode_mode not in ("auto", "graph", "eager"):
            raise ValueError(f"decode_mode must be 'auto', 'graph' or 'eager', got {decode_mode!r}")
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.options = _RECIPE.decode_options() if options is None else options
        self.unk_replace = bool(unk_replace) and target_tokenizer.type_name == "word"
        self.jit_compile = bool(jit_compile)
        self.decode_mode = decode_mode
        self.run_dir = run_dir
        self.run_config = run_config
        self.max_source_length = int(model.input_length_limit() or 128)
        self._functions = {}
        self._target_vocab = list(target_tokenizer.vocabulary)
        self._source_vocab = list(source_tokenizer.vocabulary)

    @classmethod
    def from_run(cls, run_dir, *, which="auto", **kwargs):
        """Loads a trained translator run, or several as an ensemble.

        Args:
            run_dir: a directory written by `train_translator` /
                `keras-seq train-translator`, or a list of them: their models
                decode as one `keras_seq.models.Ensemble` (the log of the mean
                of their probabilities, greedy and beam search alike). Members
                must share their vocabularies (the same tokenizers); the
                decoding settings and the data splits (`evaluate`) are the
                first run's.
            which: the checkpoint (`keras_seq.runs.RunDir.checkpoint`): "auto"
                (the averaged weights of `average_last` when the run has them,
                else "best"), "averaged", "best" or "last".
            **kwargs: `Translator` arguments; `options` and `unk_replace`
                default to the run's decoding settings.

        Raises:
            RunDirError: not a translator run directory, no checkpoint, or
                files that do not fit together.
            InputError: ensemble members with different vocabularies.

        Example:

        ```python
        ensemble = Translator.from_run(["runs/a", "runs/b"])
        ensemble.translate(["I am cold."])
        ```
        """
        from keras_seq import models

        run_dirs = list(run_dir) if isinstance(run_dir, (list, tuple)) else [run_dir]
        if not run_dirs:
            raise errors.InputError("no run directory given")
        members = [runs.RunDir.open(d, require_checkpoint=True) for d in run_dirs]
        tokenizers = [_run_tokenizers(run) for run in members]  # configs checked first
        for run, pair in zip(members[1:], tokenizers[1:]):
            for side, mine, theirs in zip(("source", "target"), tokenizers[0], pair):
                _check_same_vocabulary(side, members[0].path, mine, run.path, theirs)
        loaded = [models.load_run(run.path, which=which, task="translator") for run in members]
        model = loaded[0] if len(loaded) == 1 else models.Ensemble(loaded)
        config = members[0].config
        decoding = config.get("decoding", {})
        kwargs.setdefault("unk_replace", decoding.get("unk_replace", _RECIPE.unk_replace))
        if kwargs.get("options") is None:
            kwargs["options"] = options_from_run(config)
        return cls(model, *tokenizers[0], run_dir=str(members[0].path), run_config=config,
                   **kwargs)

    # -- decoding function -------------------------------------------------

    def _decoder(self, options, max_length, with_attention, eager=False):
        import tensorflow as tf

        key = (options, max_length, with_attention, eager)
        fn = self._functions.get(key)
        if fn is not None:
            return fn
        strategy, sampler = options.strategy(), options.sampler()
        model = self.model

        def run(source_ids):
            result = model.generate(source_ids, strategy=strategy, sampler=sampler,
                                    max_length=max_length, return_attention=with_attention)
            attention = result.attention if with_attention else tf.zeros([0], tf.float32)
            return result.ids, result.lengths, result.scores, attention

        if eager:
            fn = lambda source_ids: run(tf.constant(source_ids))  # noqa: E731
        else:
            fn = tf.function(run, input_signature=[tf.TensorSpec([None, None], tf.int32)],
                             jit_compile=self.jit_compile, reduce_retracing=True)
        self._functions[key] = fn
        return fn

    @property
    def max_output_length(self):
        """The most output tokens a translation may have (EOS included).

        The model's own `output_length_limit()` (a Transformer's positions)
        or, for a recurrent model (no limit of its own),
        `RNN_OUTPUT_FACTOR` x its longest source: a longer output is no
        translation of a source the model reads, and the decoder's buffers
        grow with it (`max_length=10**9` asked for gigabytes). A larger
        `max_length` is capped at this, with a warning on stderr.
        """
        limit = self.model.output_length_limit()
        return int(limit) if limit is not None else RNN_OUTPUT_FACTOR * self.max_source_length

    def _check_decoding_memory(self, rows, length):
        """Refuses a batch of `rows` beams that cannot fit (`memory.check_decoding`):
        each row holds the encoder outputs over the longest source and the
        decoder state (or, for a Transformer, its key/value caches)."""
        from keras_seq.recipes import memory

        from keras_seq import models

        # An ensemble holds every member's state (and one set of logits each).
        members = self.model.members if isinstance(self.model, models.Ensemble) else [self.model]
        state = 0
        for member in members:
            config = member.get_config()
            layers = int(config.get("num_layers", 1))
            width = int(config.get("d_model") or 2 * int(config.get("units", 0)))
            if "d_model" in config:
                state += 2 * layers * (self.max_source_length + length) * width
            else:
                state += self.max_source_length * width + 2 * layers * width
            state += self.model.target_vocab_size  # the member's logits
        memory.check_decoding(rows, length, self.model.target_vocab_size, state)

    def output_limit(self, source_length):
        """Most output tokens for a source of `source_length` tokens (EOS incl.)."""
        limit = _round_up(int(1.5 * source_length) + 10, 16)
        return max(1, min(limit, self.max_source_length))

    # -- text in, text out -------------------------------------------------

    def prepare(self, sentences):
        """Tokenizes lines; returns per-line `(ids or None, Translation)` lists."""
        results = [Translation() for _ in sentences]
        texts, where = [], []
        for i, line in enumerate(sentences):
            if isinstance(line, (bytes, bytearray)):
                try:
                    line = bytes(line).decode("utf-8")
                except UnicodeDecodeError as e:
                    results[i].error = f"not valid UTF-8 text ({e.reason} at byte {e.start})"
                    continue
            if not isinstance(line, str):
                raise TypeError(f"sentences[{i}] must be a str, got {type(line).__name__}")
            if not line.strip():
                results[i].error = "empty line"
                continue
            texts.append(line)
            where.append(i)
        ids = self.source_tokenizer.encode(texts) if texts else []
        surface = self._surface_words(texts)
        encoded = [None] * len(sentences)
        for k, (i, row) in enumerate(zip(where, ids)):
            encoded[i] = self._encode_line(row, surface[k] if surface else None, results[i])
        return encoded, results

    def _surface_words(self, texts):
        """The source words as written (for copying them into outputs), or None."""
        if not (self.unk_replace and texts and self.source_tokenizer.type_name == "word"):
            return None
        import tensorflow as tf

        return [[w.decode("utf-8") for w in row]
                for row in self.source_tokenizer.split_surface(tf.constant(texts)).to_list()]

    def _encode_line(self, row, surface, result):
        from keras_seq import text as text_lib

        if not row:
            result.error = "no token the source tokenizer can read"
            return None
        limit = self.max_source_length - 1  # room for EOS
        tokens = [self._source_vocab[t] for t in row]
        if surface is not None and len(surface) == len(row):
            tokens = [s if t == text_lib.UNK_ID else tok for s, t, tok in zip(surface, row, tokens)]
        if all(t == text_lib.UNK_ID for t in row):
            result.warnings.append(
                "every word is unknown to the model's vocabulary; the translation is a guess")
        if len(row) > limit:
            result.warnings.append(
                f"{len(row)} tokens, longer than the model's maximum of {limit}: only the "
                f"first {limit} are translated")
            row, tokens = row[:limit], tokens[:limit]
        result.source_tokens = tokens + [text_lib.EOS_TOKEN]
        return list(row) + [text_lib.EOS_ID]

    def translate(self, sentences, options=None, *, beam=None, length_penalty=None,
                  n_best=None, greedy=False, max_length=None, batch_size=DECODE_BATCH,
                  return_attention=False, verbose=0, label="translating"):
        """Translates lines of text.

        Args:
            sentences: list of str (or bytes, decoded as UTF-8 per line).
            options: a `keras_seq.decoding.DecodeOptions` (None: this
                translator's `options`, the run's decoding settings). Its
                `max_length` None means 1.5 x the source + 10 tokens, within
                the model's maximum; a larger one is capped at
                `max_output_length` (a warning on stderr says so).
            beam, length_penalty, n_best, greedy, max_length: shortcuts that
                replace those settings of `options` (`beam_size`,
                `length_penalty`, `num_return`; `greedy=True` is beam 1).
            batch_size: sentences decoded together.
            return_attention: fill `Translation.attention`.
            verbose: a progress bar counting the lines, on stderr (so stdout
                stays for the results), at this `keras_seq.progress` level
                (0, silent, by default).
            label: the progress bar's label.

        Returns:
            list of `Translation`, one per input line, in order.

        Raises:
            InputError: bad decoding settings (beam < 1, n_best > beam).
        """
        if isinstance(sentences, (str, bytes)):
            raise TypeError("`sentences` must be a list of strings; wrap a single one in a list")
        options = _resolve_options(options or self.options, beam, length_penalty, n_best,
                                   greedy, max_length)
        if options.max_length is not None and options.max_length > self.max_output_length:
            say(f"max_length {options.max_length} is above this model's limit of "
                f"{self.max_output_length} output tokens; capped at {self.max_output_length}")
            options = dataclasses.replace(options, max_length=self.max_output_length)
        sentences = list(sentences)
        self._check_decoding_memory(min(batch_size, max(len(sentences), 1)) * options.beam_size,
                                    options.max_length or self.max_output_length)
        encoded, results = self.prepare(sentences)
        with_attention = bool(return_attention) or self.unk_replace
        order = sorted((i for i, ids in enumerate(encoded) if ids is not None),
                       key=lambda i: len(encoded[i]))
        # A few sentences decode faster eagerly than the decoding loop takes
        # to trace (seconds); many sentences amortize the tracing.
        eager = (self.decode_mode == "eager" or (
            self.decode_mode == "auto" and not self.jit_compile
            and len(order) <= EAGER_MAX_SENTENCES))
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        for rows in progress.track(batches, total=len(order), size=len, unit="line",
                                   label=label, verbose=verbose, stream=sys.stderr):
            batch = right_pad([encoded[i] for i in rows])
            limit = options.max_length or self.output_limit(batch.shape[1])
            fn = self._decoder(dataclasses.replace(options, max_length=None), limit,
                               with_attention, eager)
            ids, lengths, scores, attention = (x.numpy() for x in fn(batch))
            for r, i in enumerate(rows):
                self._fill(results[i], ids[r], lengths[r], scores[r],
                           attention[r] if with_attention else None,
                           len(encoded[i]), return_attention)
        return results

    def _fill(self, result, ids, lengths, scores, attention, source_length, keep_attention):
        import numpy as np

        from keras_seq import text as text_lib

        hypotheses = []
        for k in range(ids.shape[0]):
            if not np.isfinite(scores[k]):
                continue  # fewer distinct hypotheses than asked
            n = int(lengths[k])
            row = [int(t) for t in ids[k, :n]]
            words = [t for t in row if t != text_lib.EOS_ID]
            tokens = [self._target_vocab[t] if 0 <= t < len(self._target_vocab)
                      else text_lib.UNK_TOKEN for t in words]
            if self.unk_replace and text_lib.UNK_ID in words and attention is not None:
                tokens = self._replace_unknown(tokens, words, attention[k], result.source_tokens,
                                               source_length)
            hypotheses.append((self._detokenize(tokens, words), float(scores[k])))
            if k == 0:
                result.output_tokens = tokens + ([text_lib.EOS_TOKEN] if text_lib.EOS_ID in row else [])
                if keep_attention and attention is not None:
                    result.attention = np.asarray(attention[0, :n, :source_length])
        result.hypotheses = hypotheses
        result.text = hypotheses[0][0] if hypotheses else ""

    def _replace_unknown(self, tokens, words, attention, source_tokens, source_length):
        from keras_seq import text as text_lib

        out = []
        for position, (token, word) in enumerate(zip(tokens, words)):
            if word != text_lib.UNK_ID:
                out.append(token)
                continue
            # Attention of this output position over the real source tokens
            # (the final EOS excluded: it is no word to copy).
            weights = attention[position, : max(source_length - 1, 0)]
            if weights.size == 0 or source_tokens is None:
                continue
            out.append(source_tokens[int(weights.argmax())])
        return out

    def _detokenize(self, tokens, words):
        import tensorflow as tf

        from keras_seq import text as text_lib

        if self.target_tokenizer.type_name == "word":
            if not tokens:
                return ""
            joined = text_lib.join_words(tf.ragged.constant([tokens], dtype=tf.string))
            return joined.numpy()[0].decode("utf-8")
        return self.target_tokenizer.decode([words])[0]

    # -- the run's data ------------------------------------------------------

    def _config(self, what):
        if self.run_config is None:
            raise errors.InputError(
                f"{what} needs the run's data: open the translator with Translator.from_run")
        return self.run_config

    def split(self, name="test"):
        """The `(source, target)` pairs of a split of the run's data ("train" | "valid" | "test").

        A run trained with `valid_data` / `test_data` reads those files
        (recorded in its config.json); other runs rebuild the seeded split of
        their data file.

        Raises:
            InputError: an unknown split, or "test" of a run trained with a
                validation file and no test file.
            DataError: the data or split file can no longer be read.
        """
        return load_split(self._config(f"the {name} split"), name)

    def split_source(self, name="test"):
        """Where a split comes from: "test file news.tsv" or "test split of bundled:fra-eng"."""
        info = self._config(f"the {name} split").get("data", {})
        if info.get(f"{name}_spec"):
            return f"{'validation' if name == 'valid' else name} file {info[name + '_spec']}"
        return f"{name} split of {info.get('spec')}"

    def load_pairs(self, data):
        """Pairs of a file or "bundled:NAME", columns swapped as in the run's training data."""
        reverse = (self.run_config or {}).get("data", {}).get("reverse", False)
        return load_corpus(data, reverse=reverse)

    # -- evaluate --------------------------------------------------------------

    def evaluate(self, pairs=None, options=None, *, split="test", verbose=0):
        """BLEU and chrF (sacrebleu, detokenized, cased) of greedy decoding and beam search.

        Args:
            pairs: list of `(source, reference)`; a str is a pairs file or
                "bundled:NAME" read like the run's training data (`load_pairs`);
                None: the run's `split`.
            options: the beam search's `DecodeOptions` (None: this
                translator's `options`).
            split: the run's split when `pairs` is None ("test" by default,
                the split held out from training and model selection, or
                the run's test file; see `split`).
            verbose: a progress bar per decoding, on stderr, at this
                `keras_seq.progress` level (0, silent, by default).

        Returns:
            dict: "greedy" and "beam" (`keras_seq.metrics.TranslationScores`),
            "seconds" and "outputs" (per decoding), "options" (the beam
            search's), "sentences".

        Example:

        ```python
        scores = translator.evaluate()
        print(format_scores(scores))
        ```
        """
        from keras_seq import metrics

        if pairs is None:
            pairs = self.split(split)
        elif isinstance(pairs, str):
            pairs = self.load_pairs(pairs)
        options = options or self.options
        sources = [s for s, _ in pairs]
        references = [t for _, t in pairs]
        out = {"seconds": {}, "outputs": {}, "options": options, "sentences": len(pairs)}
        for name, kwargs in (("greedy", dict(greedy=True)), ("beam", dict(options=options))):
            start = time.perf_counter()
            results = self.translate(sources, **kwargs, verbose=verbose,
                                     label=f"translating ({name})")
            out["seconds"][name] = time.perf_counter() - start
            out["outputs"][name] = [r.text for r in results]
            out[name] = metrics.translation_scores(out["outputs"][name], references)
        return out

    # -- export ------------------------------------------------------------------

    def export(self, to, *, version=None, onnx=True, max_length=64, parity_sentences=None,
               quantize=None):
        """SavedModel (TF Serving layout) and ONNX, checked against this model.

        Writes `to/<version>/` (the string signature `translate`, and
        `translate_ids`, `encode`, `step` on token ids) with this translator's
        beam size and length penalty fixed in the graph and, with `onnx`, the
        ONNX graphs in `to/onnx/*.onnx` (`translate.onnx` too: string in,
        string out, `<unk>` replaced as here); then checks that the Keras
        model, the reloaded SavedModel and onnxruntime agree
        (`keras_seq.export.check_parity`).

        Args:
            to: the export directory.
            version: int >= 1, or None for the next free version.
            onnx: also write the ONNX graphs (needs the `onnx` extra).
            max_length: most output tokens of the exported decoder (within the
                model's maximum).
            parity_sentences: sentences to check parity on (None: the first
                validation sentences of the run; [] skips the check).
            quantize: None, or `"int8"`: also `to/onnx/int8/*.onnx`, with the
                BLEU of the float and int8 graphs on the run's validation
                pairs (the first `keras_seq.export.quantize.QUALITY_SENTENCES`)
                in export.json.

        Returns:
            `(path, report)`: the version directory and the parity report
            (`{backend: {output: difference}}`, empty when not checked).

        Raises:
            InputError: an ensemble (export one run at a time).
            MissingExtraError: `onnx=True` without the `onnx` extra.
            KerasSeqError: the export disagrees with the model.
        """
        from keras_seq import export as export_lib
        from keras_seq.models import Ensemble

        if isinstance(self.model, Ensemble):
            raise errors.InputError("an ensemble cannot be exported; export one run at a time "
                                    "(or average checkpoints of one run: --average-last)")

        if onnx:
            extras.check("onnx", "ONNX export")
        quality = None
        if quantize and self.run_config is not None:
            pairs = self.split("valid")
            quality = ([s for s, _ in pairs], [t for _, t in pairs])
        path = export_lib.export_translator(
            self.model, self.source_tokenizer, self.target_tokenizer, to, version=version,
            beam_size=int(self.options.beam_size), length_penalty=float(self.options.length_penalty),
            max_length=min(int(self.max_source_length), int(max_length)),
            unk_replace=self.unk_replace, onnx=bool(onnx), quantize=quantize,
            quality_pairs=quality,
        )
        if parity_sentences is None:
            try:
                parity_sentences = [s for s, _ in self.split("valid")[:PARITY_SENTENCES]]
            except errors.KerasSeqError:
                parity_sentences = []
        plain = Translator(self.model, self.source_tokenizer, self.target_tokenizer,
                           unk_replace=False)
        encoded, _ = plain.prepare(list(parity_sentences))
        # Lines of unknown words only are refused by the export's string signature.
        rows = [r for r in encoded if r is not None and any(t != 1 for t in r[:-1])]
        if not rows:
            return path, {}
        return path, export_lib.check_parity(self.model, path, right_pad(rows))


def _run_tokenizers(run):
    """The `(source, target)` tokenizers of a translator `RunDir`."""
    from keras_seq import text as text_lib

    config = run.config
    if config.get("task") != "translator":
        task = {"lm": "language-model"}.get(config.get("task"), config.get("task"))
        raise errors.RunDirError(f"{run.path} is a {task} run, not a translator run")
    run.checked_config  # the full schema (one line naming the field), before any file is read
    return (text_lib.load_tokenizer(str(run.vocab_dir / "source")),
            text_lib.load_tokenizer(str(run.vocab_dir / "target")))


def _check_same_vocabulary(side, first_run, first, other_run, other):
    """Ensemble members must read and write the same ids: one-line `InputError` otherwise."""
    where = f"ensemble members {first_run} and {other_run} have different {side} vocabularies"
    if first.type_name != other.type_name:
        raise errors.InputError(f"{where} ({first.type_name} and {other.type_name} tokenizers)")
    mine, theirs = list(first.vocabulary), list(other.vocabulary)
    if len(mine) != len(theirs):
        raise errors.InputError(f"{where} ({len(mine)} and {len(theirs)} tokens)")
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            raise errors.InputError(f"{where} (token {i} is {a!r} in one, {b!r} in the other)")
    if first.get_config() != other.get_config():
        raise errors.InputError(f"{where} (tokenizer settings {first.get_config()} and "
                                f"{other.get_config()})")


def options_from_run(run_config):
    """The `DecodeOptions` of a run's config.json "decoding" entry (recipe defaults if absent)."""
    decoding = run_config.get("decoding", {})
    return _RECIPE.decode_options(
        beam_size=int(decoding.get("beam", _RECIPE.beam_size)),
        length_penalty=float(decoding.get("length_penalty", _RECIPE.length_penalty)))


def format_scores(result, where=None):
    """The BLEU/chrF table `keras-seq evaluate` prints, from `Translator.evaluate`.

    Args:
        result: the dict `Translator.evaluate` returns.
        where: what was translated (e.g. "test split of bundled:fra-eng").

    Returns:
        str, several lines.
    """
    options = result["options"]
    head = f"{where}: " if where else ""
    lines = [f"{head}{result['sentences']} sentence pairs (BLEU and chrF by sacrebleu, "
             "detokenized, cased)",
             f"{'decoding':<28}{'BLEU':>7}{'chrF':>8}{'seconds':>9}"]
    for name, label in (("greedy", "greedy"),
                        ("beam", f"beam {options.beam_size}, length penalty "
                                 f"{options.length_penalty:g}")):
        s = result[name]
        lines.append(f"{label:<28}{s['bleu']:>7.2f}{s['chrf']:>8.2f}{result['seconds'][name]:>9.1f}")
    return "\n".join(lines)


def _resolve_options(options, beam, length_penalty, n_best, greedy, max_length):
    """`options` with the shortcut arguments of `translate` applied and checked."""
    values = {}
    if greedy:
        if n_best not in (None, 1):
            raise errors.InputError("greedy decoding gives one translation; n_best must be 1")
        values.update(beam_size=1, num_return=1)
    else:
        beam = options.beam_size if beam is None else beam
        if not is_int(beam) or beam < 1:
            raise errors.InputError(f"the beam size must be an integer >= 1, got {beam!r}")
        n_best = min(options.num_return, beam) if n_best is None else n_best
        if not is_int(n_best) or not 1 <= n_best <= beam:
            raise errors.InputError(f"n_best must be in [1, beam={beam}], got {n_best!r}")
        values.update(beam_size=int(beam), num_return=int(n_best))
    if length_penalty is not None:
        if not (is_number(length_penalty) and 0 <= length_penalty < float("inf")):
            raise errors.InputError(f"the length penalty must be >= 0, got {length_penalty!r}")
        values["length_penalty"] = float(length_penalty)
    if max_length is not None:
        if not is_int(max_length) or max_length < 1:
            raise errors.InputError(f"max_length must be an integer >= 1, got {max_length!r}")
        values["max_length"] = int(max_length)
    return dataclasses.replace(options, **values)
