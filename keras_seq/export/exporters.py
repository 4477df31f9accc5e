"""`export_language_model` and `export_translator`: the public exporters.

Both check their arguments, build the `ServingFunctions` of the model (read
from its `GenerativeModel` contract) and hand them to `writer.write_version`.
See `keras_seq.export` for the layout and the signatures written.
"""

from keras_seq import decoding
from keras_seq.export import onnx as onnx_graphs
from keras_seq.export import quantize as quantize_lib
from keras_seq.export import writer
from keras_seq.export.signatures import ServingFunctions
from keras_seq.export.signatures import check_model

__all__ = ["export_language_model", "export_translator"]

_DEFAULT_OPSET = onnx_graphs.DEFAULT_OPSET
# A translator exported without `max_length` and without a model default.
_FALLBACK_TRANSLATION_LENGTH = 100


def _check_tokenizer(tokenizer, vocab_size, what):
    if not callable(getattr(tokenizer, "as_module", None)):
        raise TypeError(
            f"`{what}` must be a keras_seq.text tokenizer (with `as_module()`), "
            f"got {type(tokenizer).__name__}."
        )
    size = getattr(tokenizer, "vocab_size", None)
    if size != vocab_size:
        raise ValueError(
            f"vocabulary mismatch: `{what}` has {size} tokens but the model "
            f"expects {vocab_size}."
        )


def _requirements(tokenizers):
    """export.json entries for tokenizers whose in-graph ops are not core TensorFlow.

    `"requires"`: the Python packages to import before `tf.saved_model.load`
    (e.g. `["tensorflow_text"]`, which `keras-seq serve` imports itself;
    TF Serving's model server links tensorflow_text's ops). `"unsupported"`:
    what the export leaves out because of them (the string signatures have no
    ONNX graph: the ONNX files take and return token ids).
    """
    requires = sorted({name for t in tokenizers for name in getattr(t, "requires", ())})
    info = {"requires": requires}
    if requires:
        kinds = sorted({t.type_name for t in tokenizers if getattr(t, "requires", ())})
        info["unsupported"] = {
            "onnx_string_signatures": (
                f"the {' and '.join(kinds)} tokenizer runs {', '.join(requires)} ops, which "
                "have no ONNX equivalent: the ONNX graphs take and return token ids; "
                "tokenize with the run's tokenizer (keras_seq.text.load_tokenizer)")}
    return info


def _write(fns, to, modules, info, *, version, onnx, opset, verbose, tokenizers, quantize,
           quality):
    quantize_lib.check_quantize(quantize)
    if quantize and not onnx:
        raise ValueError("`quantize` quantizes the ONNX graphs: it needs `onnx=True`.")
    info = dict(info, decoding=writer.decoding_info(fns))
    return writer.write_version(
        fns, to, version=version, onnx=onnx, opset=opset, tracked=modules,
        endpoints=fns.endpoints(modules), info=info, verbose=verbose, tokenizers=tokenizers,
        quantize=quantize, quality=quality,
    )


def export_language_model(
    model,
    tokenizer,
    to,
    *,
    version=None,
    max_length=50,
    strategy="greedy",
    sampler=None,
    onnx=True,
    opset=_DEFAULT_OPSET,
    verbose=False,
    quantize=None,
    quality_texts=None,
):
    """Exports a language model: SavedModel (TF Serving layout) + ONNX.

    Writes `to/<version>/` with the signatures `generate` (=
    `serving_default`), `generate_ids`, `initial_state` and `step` (see
    `keras_seq.export` for their inputs and outputs) and, with `onnx=True`,
    `to/onnx/{generate_ids,initial_state,step,serving_default}.onnx`. The
    settings given here are the defaults; requests may choose `temperature`,
    `top_k`, `top_p`, `seed` and `max_length` (up to this one) per call (see
    `keras_seq.export.signatures`).

    Args:
        model: a `keras_seq.models.GenerativeModel` with
            `task="language_model"` (`RNNLanguageModel`,
            `TransformerLanguageModel`).
        tokenizer: the model's fitted `keras_seq.text` tokenizer (same
            vocabulary size as the model).
        to: the model's export directory (e.g. `"exported/anna"`).
        version: int >= 1, or None for the next free integer.
        max_length: int, the most tokens generated (EOS included), within
            `model.output_length_limit()`; prompts may then hold up to
            `model.input_length_limit(max_length)` tokens.
        strategy: `"greedy"`, a `keras_seq.decoding.Greedy` or a
            `keras_seq.decoding.BeamSearch` (the best hypothesis is returned).
        sampler: None (most likely token) or a `keras_seq.decoding.RandomSampler`
            (temperature, top_k, top_p, seed). With `seed=None` every call
            draws fresh randomness; with a seed every call of the same batch
            gives the same text.
        onnx: also write the ONNX graphs (tf2onnx; the `onnx` extra).
        opset: ONNX opset, >= 17.
        verbose: print Keras's listing of the endpoints.
        quantize: None, or `"int8"` to also write dynamically quantized
            graphs in `to/onnx/int8/` (needs `onnx`).
        quality_texts: texts (e.g. the validation split) on which the
            perplexity of the float and int8 graphs is measured (at most
            `keras_seq.export.quantize.QUALITY_SENTENCES`) and written into
            export.json's `"int8"`; None: not measured.

    Returns:
        The path of the version directory written (`to/<version>`).

    Raises:
        TypeError: `model` is not a language-model `GenerativeModel`.
        ValueError: bad settings, or the tokenizer's vocabulary size differs
            from the model's.
        FileExistsError: `version` already exists.

    Example:

    ```python
    path = export_language_model(lm, tokenizer, "exported/anna", max_length=40,
                                 sampler=RandomSampler(0.8, top_p=0.9, seed=1))
    generate = tf.saved_model.load(path).signatures["serving_default"]
    generate(prompts=tf.constant(["It was"]))["text"]
    ```
    """
    check_model(model, "language_model")
    fns = ServingFunctions(model, max_length, strategy, sampler)
    onnx_graphs.check_opset(opset)
    _check_tokenizer(tokenizer, model.output_vocab_size, "tokenizer")
    module = tokenizer.as_module()
    info = {"tokenizer": writer.tokenizer_json(tokenizer), **_requirements([tokenizer])}
    return _write(
        fns, to, [module], info, version=version, onnx=onnx, opset=opset, verbose=verbose,
        tokenizers=[tokenizer], quantize=quantize, quality=quality_texts,
    )


def export_translator(
    model,
    source_tokenizer,
    target_tokenizer,
    to,
    *,
    version=None,
    beam_size=5,
    length_penalty=1.2,  # TranslatorRecipe's
    max_length=None,
    max_beam_size=None,
    unk_replace=True,
    onnx=True,
    opset=_DEFAULT_OPSET,
    verbose=False,
    quantize=None,
    quality_pairs=None,
):
    """Exports a translator: SavedModel (TF Serving layout) + ONNX.

    Writes `to/<version>/` with the signatures `translate` (=
    `serving_default`), `translate_ids`, `encode` and `step` (see
    `keras_seq.export`) and, with `onnx=True`,
    `to/onnx/{translate_ids,encode,step,serving_default}.onnx`, the beam
    search running inside one ONNX `Loop`. Written only against the
    `GenerativeModel` contract, so any encoder-decoder exports:
    `AttentionSeq2Seq` (recurrent state, encoder outputs) as well as
    `Transformer` (per-layer key/value caches, allocated for `max_length`
    positions by `model.start(source_ids, max_length)`). The settings given
    here are the defaults; requests may choose `beam_size` (up to
    `max_beam_size`), `length_penalty`, `n_best` and `max_length` (up to
    this one) per call (see `keras_seq.export.signatures`).

    Args:
        model: a `keras_seq.models.GenerativeModel` with `task="translation"`.
        source_tokenizer: the fitted source tokenizer.
        target_tokenizer: the fitted target tokenizer.
        to: the model's export directory (e.g. `"exported/fra-eng"`).
        version: int >= 1, or None for the next free integer.
        beam_size: int >= 1; 1 is greedy search.
        length_penalty: float >= 0, the GNMT alpha.
        max_length: int, the most target tokens (EOS included), within
            `model.output_length_limit()`; defaults to the model's
            `default_output_length` (or 100). Sources may hold up to
            `model.input_length_limit(max_length)` tokens (EOS included).
        max_beam_size: int >= `beam_size`, the largest `beam_size` a request
            may ask for; defaults to `max(16, beam_size)`.
        unk_replace: with a word-level target tokenizer, `translate` replaces
            each `<unk>` output by the source token the model attends to most
            (the word as written where it is unknown) and joins the tokens by
            the word rules, as `keras_seq.Translator` and `keras-seq translate`
            do; `translations` then reads like their text.
        onnx: also write the ONNX graphs (tf2onnx; the `onnx` extra).
        opset: ONNX opset, >= 17.
        verbose: print Keras's listing of the endpoints.
        quantize: None, or `"int8"` to also write dynamically quantized
            graphs in `to/onnx/int8/` (needs `onnx`).
        quality_pairs: `(sources, references)` (e.g. the validation split)
            on which the BLEU of the float and int8 graphs is measured (at
            most `keras_seq.export.quantize.QUALITY_SENTENCES`) and written
            into export.json's `"int8"`; None: not measured.

    Returns:
        The path of the version directory written (`to/<version>`).

    Raises:
        TypeError: `model` is not a translation `GenerativeModel`.
        ValueError: bad settings, or a tokenizer's vocabulary size differs
            from the model's.
        FileExistsError: `version` already exists.

    Example:

    ```python
    path = export_translator(model, fr_tok, en_tok, "exported/fra-eng", beam_size=4)
    translate = tf.saved_model.load(path).signatures["serving_default"]
    translate(sentences=tf.constant(["Je t'aime."]))["translations"]
    ```
    """
    check_model(model, "translation")
    if max_length is None:
        max_length = model.default_output_length or _FALLBACK_TRANSLATION_LENGTH
    strategy = decoding.BeamSearch(beam_size, length_penalty=length_penalty)
    fns = ServingFunctions(
        model, max_length, strategy, max_beam_size=max_beam_size,
        unk_replace=unk_replace and target_tokenizer.type_name == "word",
    )
    onnx_graphs.check_opset(opset)
    _check_tokenizer(source_tokenizer, model.input_vocab_size, "source_tokenizer")
    _check_tokenizer(target_tokenizer, model.output_vocab_size, "target_tokenizer")
    modules = [source_tokenizer.as_module(), target_tokenizer.as_module()]
    info = {
        "source_tokenizer": writer.tokenizer_json(source_tokenizer),
        "target_tokenizer": writer.tokenizer_json(target_tokenizer),
        **_requirements([source_tokenizer, target_tokenizer]),
    }
    return _write(
        fns, to, modules, info, version=version, onnx=onnx, opset=opset, verbose=verbose,
        tokenizers=[source_tokenizer, target_tokenizer], quantize=quantize, quality=quality_pairs,
    )
