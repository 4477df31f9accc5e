"""`TextGenerator`: a trained language model with its tokenizer, text in and out.

    generator = TextGenerator.from_run("runs/lm")       # best checkpoint
    generator.generate("Anna said", length=50, options=DecodeOptions(top_p=0.9, seed=1))
    generator.evaluate(split="test").perplexity          # as `keras-seq evaluate` prints
    generator.export("exported/anna")                    # SavedModel + ONNX, parity-checked

Training lives in `keras_seq.pipelines.lm_training` (`train_language_model`,
re-exported here), the data handling in `keras_seq.pipelines.lm_data`.
Length limits come from the model's contract
(`keras_seq.models.GenerativeModel.output_length_limit` /
`input_length_limit`): a Transformer's positions hold the prompt and the
generated tokens; a recurrent model is capped at `MAX_RNN_GENERATE_LENGTH`
tokens per call and reads prompts of at most `MAX_RNN_PROMPT_LENGTH` tokens
(its state is O(1), but reading a prompt is one step a token: a 30,000-word
prompt took minutes). A decoding that cannot fit in memory (`num_samples`
x beam rows of state and logits) is refused before it starts.
"""

from typing import NamedTuple

import numpy as np

from keras_seq import data as data_lib
from keras_seq import decoding
from keras_seq import errors
from keras_seq import extras
from keras_seq import models
from keras_seq.models.loading import model_info
from keras_seq import runs
from keras_seq import text as text_lib
from keras_seq.pipelines import lm_data
from keras_seq.pipelines.lm_training import MAX_RNN_GENERATE_LENGTH
from keras_seq.pipelines.lm_training import MAX_RNN_PROMPT_LENGTH
from keras_seq.pipelines.lm_training import TrainedLanguageModel
from keras_seq.pipelines.lm_training import generation_limit
from keras_seq.pipelines.lm_training import train_language_model
from keras_seq.recipes.common import say
from keras_seq.recipes.language_model import GENERATE_LENGTH
from keras_seq.utils import check_positive_int
from keras_seq.utils import right_pad

__all__ = [
    "MAX_RNN_GENERATE_LENGTH",
    "MAX_RNN_PROMPT_LENGTH",
    "Perplexity",
    "TextGenerator",
    "TrainedLanguageModel",
    "train_language_model",
]


class Perplexity(NamedTuple):
    """What `TextGenerator.evaluate` returns.

    Attributes:
        perplexity: exp of the mean full-softmax cross-entropy.
        tokens: the number of tokens scored.
        source: what was scored, e.g. `"test split of bundled:anna-karenina"`.
    """

    perplexity: float
    tokens: int
    source: str


class TextGenerator:
    """Continues prompts with a trained language model, and scores text.

    Args:
        model: a `keras_seq.models.RNNLanguageModel` or
            `TransformerLanguageModel` with trained weights.
        tokenizer: its fitted `keras_seq.text` tokenizer.
        seq_len: tokens per window when measuring perplexity.
        batch_size: most rows when measuring perplexity.
        data: the training text (`"bundled:NAME"` or a file), for
            `evaluate(split=...)`.
        val_fraction, test_fraction: how that text was split.
        valid_data, test_data: the run's separate validation / test files
            (None: those splits are cut off `data`; see
            `keras_seq.pipelines.lm_data.load_parts`).

    Example:

    ```python
    import keras_seq as ks

    generator = ks.TextGenerator.from_run("runs/lm")
    generator.generate(["Happy families are"], length=30,
                       options=ks.DecodeOptions(temperature=0.7, top_k=40, seed=1))
    generator.evaluate(split="test").perplexity
    ```
    """

    def __init__(self, model, tokenizer, *, seq_len=35, batch_size=32, data=None,
                 val_fraction=0.05, test_fraction=0.05, valid_data=None, test_data=None):
        if getattr(model, "task", None) != "language_model":
            raise ValueError(
                f"TextGenerator needs a language model; got {type(model).__name__}")
        if model.output_vocab_size != tokenizer.vocab_size:
            raise errors.RunDirError(
                f"the model's vocabulary ({model.output_vocab_size}) and the tokenizer's "
                f"({tokenizer.vocab_size} tokens) do not match"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.data = data
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.valid_data = valid_data
        self.test_data = test_data

    @classmethod
    def from_run(cls, run_dir, which="auto"):
        """Opens a language-model run directory (model, tokenizer, data settings).

        Args:
            run_dir: a directory written by `train_language_model` /
                `keras-seq train-lm`.
            which: the checkpoint (`keras_seq.runs.RunDir.checkpoint`): "auto"
                (averaged weights when the run has them, else "best"),
                "averaged", "best" or "last".

        Returns:
            A `TextGenerator`.

        Raises:
            RunDirError: not a run directory, not a language-model run, no
                checkpoint, or files that do not fit together.
        """
        run = runs.RunDir.open(run_dir, require_checkpoint=True)
        config = run.config
        if config["task"] != "lm":
            raise errors.RunDirError(
                f"{run.path} is a {config['task']} run, not a language-model run")
        config = run.checked_config  # every section of the schema (keras_seq.run_schema)
        info = model_info(config, str(run.config_path))
        tokenizer = text_lib.load_tokenizer(str(run.vocab_dir))
        if info["config"].get("vocab_size") != tokenizer.vocab_size:
            raise errors.RunDirError(
                f"{run.path}: the model's vocabulary ({info['config'].get('vocab_size')}) and "
                f"{run.vocab_dir} ({tokenizer.vocab_size} tokens) do not match"
            )
        model = models.load_run(run.path, which=which, task="lm")
        data = config["data"]
        return cls(
            model, tokenizer, seq_len=int(data["seq_len"]),
            batch_size=int(config.get("training", {}).get("batch_size", 32)),
            data=data.get("spec"), val_fraction=data.get("val_fraction", 0.05),
            test_fraction=data.get("test_fraction", 0.05),
            valid_data=data.get("valid_spec"), test_data=data.get("test_spec"),
        )

    # ------------------------------------------------------------ generation
    def encode_prompt(self, prompt):
        """Prompt text -> list of ids, with clear errors for unusable prompts.

        Raises:
            InputError: the prompt is empty/blank, has no token, or only
                unknown words.
        """
        if prompt is None or not prompt.strip():
            raise errors.InputError(
                "the prompt is empty; give some text to continue, e.g. \"Anna said\"")
        ids = self.tokenizer.encode([prompt])[0]
        if not ids:
            raise errors.InputError(f"the prompt {prompt!r} has no token the tokenizer can read")
        unknown = [i for i in ids if i == text_lib.UNK_ID]
        if len(unknown) == len(ids):
            raise errors.InputError(
                f"every word of the prompt {prompt!r} is unknown to the model's vocabulary "
                f"({self.tokenizer.vocab_size} tokens learned from its training text); use "
                "words from that text"
            )
        if unknown:
            say(f"{len(unknown)} of the {len(ids)} prompt tokens are unknown to the vocabulary "
                "and read as <unk>")
        return ids

    def length_limit(self, prompt_length):
        """The most tokens one call may generate after a prompt of `prompt_length` tokens.

        From the model's contract: the largest `L <= output_length_limit()`
        with `input_length_limit(L) >= prompt_length` (a Transformer's
        positions hold both); `MAX_RNN_GENERATE_LENGTH` for a recurrent model.

        Raises:
            InputError: the prompt alone fills the model's positions, or a
                recurrent model's prompt is longer than `MAX_RNN_PROMPT_LENGTH`.
        """
        limit = generation_limit(self.model)
        if self.model.input_length_limit(1) is None and prompt_length > MAX_RNN_PROMPT_LENGTH:
            raise errors.InputError(
                f"the prompt has {prompt_length} tokens; a recurrent language model reads "
                f"prompts of at most {MAX_RNN_PROMPT_LENGTH} tokens (keep the end of the text)")
        fits = lambda n: (self.model.input_length_limit(n) or prompt_length) >= prompt_length  # noqa: E731
        if not fits(1):
            raise errors.InputError(
                f"the prompt has {prompt_length} tokens; this {type(self.model).__name__} "
                f"reads at most {self.model.input_length_limit(1)} positions"
            )
        low, high = 1, limit  # input_length_limit shrinks as L grows: bisect.
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        return low

    def generate(self, prompts, length=None, options=None, num_samples=None):
        """Continues each prompt; returns prompt + continuation as text.

        Args:
            prompts: a str or a list of str.
            length: tokens to generate (EOS included; fewer when EOS comes
                first). Default: `options.max_length`, else 200.
            options: a `keras_seq.decoding.DecodeOptions` (default: greedy).
                Sampling settings draw random continuations; `beam_size > 1`
                runs beam search and returns its n-best.
            num_samples: texts per prompt: random samples when sampling, the
                n-best (<= `beam_size`) with beam search, 1 with greedy
                decoding. None: one text (`options.num_return` with beam).

        Returns:
            One entry per prompt (a single entry, unwrapped, for a str): a str,
            or a list of str when `num_samples` is given or
            `options.num_return > 1` (beam hypotheses with no distinct
            continuation are left out).

        Raises:
            InputError: an unusable prompt or a length above the model's limit.
            ValueError: settings that do not fit together.
        """
        single = isinstance(prompts, str)
        prompts = [prompts] if single else list(prompts)
        if not prompts:
            raise errors.InputError("no prompt given; pass a str or a list of str")
        ids = [self.encode_prompt(p) for p in prompts]
        options = options or decoding.DecodeOptions()
        length = check_positive_int("length", length or options.max_length or GENERATE_LENGTH,
                                    owner="TextGenerator.generate")
        if num_samples is not None:
            check_positive_int("num_samples", num_samples, owner="TextGenerator.generate")
        limit = self.length_limit(max(len(row) for row in ids))
        if length > limit:
            raise errors.InputError(
                f"length {length} is above this model's limit of {limit} tokens"
                " for these prompts")
        many = num_samples is not None or options.num_return > 1
        count = options.num_return if num_samples is None else num_samples
        strategy, sampler, repeat = self._decoding(options, count)
        self._check_decoding_memory(len(ids) * repeat * getattr(strategy, "beam_size", 1),
                                   length, max(len(row) for row in ids))
        rows = [row for row in ids for _ in range(repeat)]
        result = self.model.generate(right_pad(rows), max_length=length, strategy=strategy,
                                     sampler=sampler)
        out, lengths, scores = (t.numpy() for t in (result.ids, result.lengths, result.scores))
        texts = [[] for _ in ids]
        for row in range(out.shape[0]):
            prompt = rows[row]
            for r in range(out.shape[1]):
                if isinstance(strategy, decoding.BeamSearch) and not np.isfinite(scores[row, r]):
                    continue  # padding entry: fewer distinct hypotheses than asked
                continuation = out[row, r, : lengths[row, r]].tolist()
                texts[row // repeat].append(self.tokenizer.decode([prompt + continuation])[0])
        texts = texts if many else [t[0] for t in texts]
        return texts[0] if single else texts

    def _check_decoding_memory(self, rows, length, prompt_length):
        """Refuses a decoding of `rows` sequences that cannot fit in memory.

        The estimate (`keras_seq.recipes.memory.check_decoding`) counts
        each row's state (a recurrent model's `(h, c)` per layer, a
        Transformer's key/value cache over the prompt and the output), the
        logits of one step with their sampling copies, and the buffers.

        Raises:
            InputError: the estimate exceeds the machine's memory; the
                message gives it.
        """
        from keras_seq.recipes import memory

        config = self.model.get_config()
        layers = int(config.get("num_layers", 1))
        if "d_model" in config:
            state = 2 * layers * (prompt_length + length) * int(config["d_model"])
        else:
            state = 2 * layers * int(config.get("units", 0))
        memory.check_decoding(rows, length, self.tokenizer.vocab_size, state)

    @staticmethod
    def _decoding(options, count):
        """`(strategy, sampler, rows per prompt)` for `count` texts per prompt."""
        sampler = options.sampler()
        if options.beam_size > 1:
            return decoding.BeamSearch(options.beam_size, options.length_penalty, count), None, 1
        if sampler is not None:
            return decoding.Greedy(), sampler, count
        if count != 1:
            raise ValueError(
                f"greedy decoding gives one text per prompt; got num_samples={count} "
                "(sample, or use beam search for an n-best)")
        return decoding.Greedy(), None, 1

    # ------------------------------------------------------------ evaluation
    def evaluate(self, text=None, *, data=None, split="test", verbose=0):
        """Perplexity of a text, a data file, or a split of the run's own text.

        Args:
            text: a str to score (preprocessed like the training text).
            data: a UTF-8 file or `"bundled:NAME"` to score instead.
            split: "train" | "valid" | "test" of the run's own text, when
                neither `text` nor `data` is given (a run trained with
                separate validation / test files reads them).
            verbose: Keras's evaluation bar at this `keras_seq.progress`
                level (0, silent, by default).

        Returns:
            A `Perplexity` (perplexity, tokens scored, source).

        Raises:
            DataError: too little text, or a file that can no longer be read.
            ValueError: an unknown split, or the run's data is unknown.
            InputError: `split="test"` of a run trained with a validation
                file and no test file.
        """
        tokenizer_type = self.tokenizer.type_name
        if text is not None or data is not None:
            where = "given text" if text is not None else data
            raw = text if text is not None else data_lib.load_text(data)
            ids = lm_data.encode_stream(self.tokenizer, lm_data.preprocess_text(raw, tokenizer_type))
        else:
            if split not in ("train", "valid", "test"):
                raise ValueError(f"split must be train, valid or test; got {split!r}")
            if self.data is None:
                raise ValueError("this TextGenerator has no data of its own; pass text or data")
            parts = lm_data.load_parts(self.data, tokenizer_type, val_fraction=self.val_fraction,
                                       test_fraction=self.test_fraction,
                                       valid_data=self.valid_data, test_data=self.test_data,
                                       only=split)
            ids = lm_data.encode_stream(self.tokenizer, parts[split])
            where = self.split_source(split)
        ppl, scored = lm_data.perplexity(self.model, ids, self.seq_len, self.batch_size,
                                         verbose=verbose)
        return Perplexity(ppl, scored, where)

    def split_source(self, split="test"):
        """Where a split of the run's text comes from, e.g. "test file news.txt"."""
        spec = {"valid": self.valid_data, "test": self.test_data}.get(split)
        if spec:
            return f"{'validation' if split == 'valid' else split} file {spec}"
        return f"{split} split of {self.data}"

    # ------------------------------------------------------------ export
    def _validation_lines(self):
        """The non-blank lines of the run's validation text (None without data)."""
        if self.data is None:
            return None
        tokenizer_type = self.tokenizer.type_name
        parts = lm_data.load_parts(self.data, tokenizer_type, val_fraction=self.val_fraction,
                                   test_fraction=self.test_fraction, valid_data=self.valid_data,
                                   test_data=self.test_data, only="valid")
        return [line for line in parts["valid"].splitlines() if line.strip()]

    def export(self, to, *, version=None, onnx=True, max_length=None, check=True, quantize=None):
        """Exports to a SavedModel (TF Serving layout) and ONNX, parity-checked.

        Writes `to/<version>/` (signatures `generate`, `generate_ids`,
        `initial_state`, `step`) over `keras_seq.export.export_language_model`
        and, with `onnx`, `to/onnx/*.onnx`; then runs two prompts through the
        Keras model, the reloaded SavedModel and onnxruntime
        (`keras_seq.export.check_parity`).

        Args:
            to: the model's export directory (e.g. `"exported/anna"`).
            version: int >= 1, or None for the next free version.
            onnx: also write the ONNX graphs (needs the `onnx` extra).
            max_length: tokens the `generate` signatures produce (default:
                100, or the model's limit when lower).
            check: run the parity check.
            quantize: None, or `"int8"`: also `to/onnx/int8/*.onnx`, with
                the perplexity of the float and int8 graphs on the run's
                validation text (its first lines) in export.json.

        Returns:
            `(path, report)`: the version directory, and the parity report
            (`{backend: {output: max difference or True}}`, None without
            `check`).

        Raises:
            MissingExtraError: `onnx` without the `onnx` extra installed.
        """
        from keras_seq import export as export_lib

        if onnx:
            extras.check("onnx", "ONNX export")
        max_length = max_length or min(100, generation_limit(self.model))
        path = export_lib.export_language_model(
            self.model, self.tokenizer, to, version=version, max_length=max_length,
            onnx=bool(onnx), quantize=quantize,
            quality_texts=self._validation_lines() if quantize else None,
        )
        if not check:
            return path, None
        # Parity prompts: two openings of the vocabulary (the first
        # non-reserved tokens), of different lengths, so padding is exercised.
        first = list(range(4, min(self.tokenizer.vocab_size, 9)))
        batch = right_pad([first[:1], first] if first else [[1]])
        return path, export_lib.check_parity(self.model, path, batch)
