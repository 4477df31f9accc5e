"""The language-model jobs of `keras-seq` as functions of plain values.

`keras_seq.cli` maps the flags of `train-lm`, `generate`, and `evaluate` /
`export` of a language-model run onto these keyword arguments; each prints
what the command prints (results on stdout, progress and warnings on stderr).
Use `train_language_model` and `TextGenerator` directly for results as
Python objects.
"""

from pathlib import Path

from keras_seq import errors
from keras_seq import extras
from keras_seq.pipelines.lm_training import train_language_model
from keras_seq.pipelines.text_generator import TextGenerator
from keras_seq.pipelines.translation_commands import export_steps
from keras_seq.pipelines.translation_commands import print_parity
from keras_seq.recipes.common import say

__all__ = ["evaluate_run", "export_run", "generate_text", "train_run"]


def train_run(recipe, run_dir, *, data=None, resume=False, overwrite=False,
              sampled_softmax=None, valid_data=None, test_data=None, workers=None,
              worker_index=None):
    """`keras-seq train-lm`: trains, then prints the perplexities and the run directory.

    Args:
        recipe: a `LanguageModelRecipe` (when resuming, the run's own with the
            training changes applied).
        run_dir: the run directory.
        workers, worker_index: a multi-worker run's "host:port" addresses and
            this worker's index (see `train_language_model`); only the chief
            prints the results.
        data: the text (None: the recipe's default, or the run's own when
            resuming).
        resume, overwrite: see `train_language_model`.
        valid_data, test_data: separate validation / test files (see
            `train_language_model`).
        sampled_softmax: the `--sampled-softmax` asked for; when resuming a
            run trained with another value, a warning says it is ignored.
    """
    if resume and sampled_softmax is not None and sampled_softmax != recipe.sampled_softmax:
        say(f"--resume: training goes on with the run's own --sampled-softmax "
            f"{recipe.sampled_softmax} (ignoring --sampled-softmax {sampled_softmax})")
    result = train_language_model(recipe, run_dir, data=data, valid_data=valid_data,
                                  test_data=test_data, resume=resume, overwrite=overwrite,
                                  workers=workers, worker_index=worker_index)
    if not result.chief:
        return
    print(f"validation perplexity: {result.valid_perplexity:.2f}")
    if result.test_perplexity is None:
        print("test perplexity: none (no test data)")
    else:
        print(f"test perplexity: {result.test_perplexity:.2f} ({result.test_tokens} tokens)")
    print(f"run directory: {result.run_dir}")


def generate_text(run, prompt, *, length, options, num_samples=1):
    """`keras-seq generate`: prints the prompt and its continuation(s).

    Args:
        run: a language-model run directory.
        prompt: the text to continue.
        length: tokens to generate (checked against the model's limit for
            this prompt).
        options: a `keras_seq.decoding.DecodeOptions`.
        num_samples: samples to draw (the n-best with beam search).

    Output (stdout): prompt and continuation detokenized together, one block
    per text, blocks separated by a line `----`.
    """
    generator = TextGenerator.from_run(run)
    ids = generator.tokenizer.encode([prompt])[0] if prompt.strip() else []
    if ids:
        limit = generator.length_limit(len(ids))
        if length > limit:
            shared = generator.model.input_length_limit(limit) is not None
            raise errors.InputError(
                f"--length {length} is above this model's limit of {limit} tokens"
                + (" (its max_length minus the prompt)" if shared else "")
            )
    texts = generator.generate([prompt], length=length, options=options,
                               num_samples=num_samples)[0]
    print("\n----\n".join(texts))


def evaluate_run(run, *, data=None, split="test", verbose=0):
    """`keras-seq evaluate` of a language model: prints `<split> perplexity: X (N tokens of ...)`.

    Args:
        run: a language-model run directory.
        data: a text file or `"bundled:NAME"` to score instead of the run's
            own split.
        split: "train" | "valid" | "test" of the run's own text.
        verbose: Keras's evaluation bar at this `keras_seq.progress` level
            (0, silent, by default).
    """
    result = TextGenerator.from_run(run).evaluate(data=data, split=split, verbose=verbose)
    label = "perplexity" if data else f"{split} perplexity"
    print(f"{label}: {result.perplexity:.2f} ({result.tokens} tokens of the {result.source})")


def export_run(run, to, *, version=None, onnx=True, verbose=0, quantize=None):
    """`keras-seq export` of a language model: exports, then prints the parity report.

    Args:
        run: a language-model run directory.
        to: the export directory.
        version: int >= 1, or None for the next free version.
        onnx: also write the ONNX graphs (the onnx extra is checked first).
        verbose: name the steps as they start (`keras_seq.progress.Steps`)
            at this level (0, silent, by default).
    """
    if onnx:
        extras.check("onnx", "ONNX export")
    _, (path, report) = export_steps(TextGenerator.from_run, run, to, version=version,
                                     onnx=onnx, verbose=verbose, quantize=quantize)
    print(f"exported {Path(run)} to {path}")
    print_parity(report)
