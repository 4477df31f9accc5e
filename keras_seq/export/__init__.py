"""Export generative models to a SavedModel (TF Serving layout) and to ONNX.

Every generative model of keras_seq exposes `initial_state(inputs)` and
`step(tokens, state)`; the exporters below trace the serving functions from
those two methods and `keras_seq.decoding.decode`, so the SavedModel, the ONNX
graphs and the Keras model all run the very same computation.

    export_language_model(model, tokenizer, to)   # RNNLanguageModel, TransformerLanguageModel
    export_translator(model, src_tok, tgt_tok, to) # AttentionSeq2Seq, Transformer
    check_parity(model, path, inputs)             # Keras eager vs SavedModel vs onnxruntime
    decoding_settings(path, {"beam_size": 1})     # the per-request inputs, defaults filled

Both exporters take any `keras_seq.models.GenerativeModel` of their task and
read everything else from that contract: the input name, the start tokens and
state (`model.start(ids, max_length)`), the length limits, the vocabulary
sizes and `end_id`. Another model is a `TypeError` naming the contract.

Layout written (TF Serving's, as `keras_seq.serving` and TF Serving read it):

    to/
      1/  saved_model.pb  variables/  assets/     one SavedModel per version
          assets.extra/export.json               what was exported (see below)
      2/  ...                                    the next export (version = max + 1)
      onnx/step.onnx                             ONNX graphs of the latest export,
      onnx/generate_ids.onnx | translate_ids.onnx    one per id-level signature
      onnx/initial_state.onnx | encode.onnx
      onnx/generate.onnx | translate.onnx        the text signature: string in, string
                                                 out (word tokenizers; onnxruntime-
                                                 extensions string ops, see `onnx_text`)
      onnx/serving_default.onnx                  = the text graph (else the id-level one)
      onnx/int8/*.onnx                           with quantize="int8": the same graphs,
                                                 weights int8 (see `quantize`)
      onnx/export.json                           the export.json of that version

A version is written into a temporary sibling directory (`to/.tmp-export-*`)
and renamed into `to/<version>` only once complete, so a server polling `to/`
never sees a half-written version; a failed export leaves nothing behind. The
ONNX files are then moved into `to/onnx/` one by one with `os.replace`.

SavedModel signatures of a language model (`N` = batch, `T` = prompt length,
`L` = `max_length`, `V` = vocabulary size):

    serving_default
        generate with the export's decoding settings (no settings inputs)
    generate
        in:  prompts string [N] + the decoding settings (below)
        out: generated string [N] (the continuation), text string [N] (prompt +
             continuation, detokenized together), ids int32 [N, L],
             lengths int32 [N], scores float32 [N]
    generate_ids
        in:  prompt_ids int32 [N, T], right-padded with 0 + the settings
        out: ids int32 [N, L] (EOS included, 0 after it), lengths int32 [N]
             (tokens generated, EOS included), scores float32 [N]
             (summed log-probabilities)
    initial_state
        in:  prompt_ids int32 [N, T]
        out: start_ids int32 [N] (the token to feed first) + state_* tensors
    step
        in:  tokens int32 [N] + state_<key> tensors
        out: logits float32 [N, V] + next_state_<key> tensors (the new state)

and of a translator (`S` = source length, `V` = target vocabulary size):

    serving_default
        translate with the export's decoding settings (no settings inputs)
    translate
        in:  sentences string [N] + the decoding settings (below)
        out: translations string [N], ids int32 [N, L], lengths int32 [N],
             scores float32 [N] (the best hypothesis); nbest_translations
             string [N, n_best], nbest_ids int32 [N, n_best, L],
             nbest_lengths int32 [N, n_best], nbest_scores float32 [N, n_best]
    translate_ids
        in:  source_ids int32 [N, S], right-padded with 0 (source + EOS) + the
             settings
        out: ids int32 [N, L], lengths int32 [N], scores float32 [N], and the
             nbest_ids, nbest_lengths, nbest_scores
    encode
        in:  source_ids int32 [N, S]
        out: start_ids int32 [N] (BOS) + state_* tensors
    step
        in:  tokens int32 [N] + state_<key> tensors
        out: logits float32 [N, V] + next_state_<key> tensors (the new state)

Decoding settings per request (since format 3): the text and id-level
signatures take scalar inputs (shape []): a translator (beam search)
`beam_size` int32 (1 = greedy search, up to `max_beam_size` fixed at
export), `length_penalty` float32, `n_best` int32 (<= beam_size) and
`max_length` int32; a language model (greedy or sampling) `temperature`
float32 (> 0), `top_k` int32 (0 = all tokens, 1 = greedy), `top_p` float32
(in (0, 1]), `seed` int64 (-1 = fresh randomness each call) and `max_length`
int32 (<= the export's). A SavedModel signature has no optional inputs: a raw
caller sends them all (`decoding_settings(path)` gives the export's defaults;
export.json's `decoding.inputs` lists each default and range) or calls
`serving_default`. `keras_seq.serving` fills in the defaults a request
leaves out and refuses out-of-range values with a 400; in the SavedModel an
assert names the input; the ONNX graphs (no asserts) take the same inputs.

The state tensors are the leaves of the model's state nest, named
`state_<key>` after their (joined) key: `state_h_0`, `state_c_0`, ... for the
RNN language model, `state_encoder_outputs`, `state_decoder_h_0`, ... for
`AttentionSeq2Seq`, `state_index`, `state_self_key_0`, ... for the
Transformer. `step` returns the new value of `state_<key>` as
`next_state_<key>` (an ONNX graph cannot have an input and an output of the
same name), so a streaming client feeds `next_state_<key>` back as
`state_<key>`; every state tensor is returned, changed or not. Their
dtypes and shapes are listed in `assets.extra/export.json` (`"state"`), next
to the decoding settings (strategy and sampler as `keras_seq.decoding.serialize`
configs, since format 2) and every signature's inputs and outputs, and in each
ONNX file's metadata (`keras_seq.export`).

The text signatures tokenize inside the graph with the tokenizer's
`as_module()` (core TensorFlow ops for the word and character tokenizers), so
the SavedModel runs in stock TensorFlow / TF Serving without keras_seq. Empty
prompts or sources, ones made only of unknown tokens, ids outside the
vocabulary, rows that are not right-padded and sequences longer than the model
allows (`model.input_length_limit(max_length)`) fail with a
`tf.errors.InvalidArgumentError` whose message names the problem and the batch
rows at fault (`assertion failed: [generate: prompts at
batch index] [1] [are empty ...]`). The id-level ONNX graphs carry no such
checks (tf2onnx drops assertions): validate before calling them. The ONNX
text graphs output `refusals` (int32 [N]: 0, or 1 empty, 2 only unknown
tokens, 3 too long; messages in export.json), which `keras_seq.serving`
answers with a 400.

The ONNX text graphs need onnxruntime-extensions, whose RE2 must not bind
to TensorFlow's: `keras_seq.export.onnx.make_session(..., extensions=True)`
loads it first (`RTLD_DEEPBIND`) and checks one replacement.

ONNX (opset 17 by default): the id-level graph (`translate_ids` /
`generate_ids`, and its copy `serving_default.onnx`) of an `AttentionSeq2Seq`
or an `RNNLanguageModel` decoding with beam search or greedily is built for
onnxruntime from the weights by `onnx_rnn` (ONNX `LSTM`/`GRU`/`RNN` ops over
`sequence_lens`, attention keys shared by the beams, the search as a few
vectorized ops in one `Loop`; the SavedModel's ids, the default translator's
beam 5 2.4-2.7x faster than the SavedModel on one sentence). tf2onnx
converts the other graphs (and the id-level graphs of the other models, or of
random sampling): the decoding `tf.while_loop` becomes one ONNX `Loop`;
masked recurrent layers (the prompt reader in `initial_state.onnx`, the
encoder in `encode.onnx`) become `Loop`s too, not ONNX `LSTM`/`GRU` ops;
`step` has no loop. The op counts and the builder (`"tf2onnx"` or
`"keras_seq.export.onnx_rnn"`) of every graph are recorded in export.json
(`"onnx"`). A tf2onnx optimizer bug that breaks the Transformer's
head split is worked around during conversion, and a `Transpose` of a value
the decoding `Loop` passes through unchanged (a tied embedding) runs once
before the Loop instead of at every step (see `keras_seq.export.onnx`).

Modules:

    signatures   ServingFunctions: the serving functions traced from the contract
    validation   the in-graph input assertions
    writer       versions, the atomic rename, export.json, the TF Serving layout
    onnx         tf2onnx conversion; `make_session`, the one onnxruntime set-up
    onnx_rnn     the recurrent models' id-level graphs built for onnxruntime
    onnx_text    the ONNX text graphs (tokenization and detokenization in the graph)
    quantize     the int8 graphs and their BLEU / perplexity cost
    parity       check_parity, ParityError
    exporters    export_language_model, export_translator

Importing `keras_seq.export` imports none of them (nor TensorFlow); each name
loads its module on first use, so `keras_seq.export.onnx.make_session`
serves ONNX without TensorFlow.

Example:

```python
path = export_translator(model, fr_tok, en_tok, "exported/fra-eng", beam_size=4)
report = check_parity(model, path, source_ids)   # raises ParityError on mismatch
```
"""

import importlib

# Public (and test-used private) names -> the submodule that defines them.
_NAMES = {
    "EXPORT_INFO": "writer",
    "ParityError": "parity",
    "ServingFunctions": "signatures",
    "check_parity": "parity",
    "decoding_settings": "writer",
    "export_language_model": "exporters",
    "export_translator": "exporters",
    "make_session": "onnx",
    "_convert_onnx": ("onnx", "convert"),
    "_run_saved_model_subprocess": "parity",
}
_SUBMODULES = frozenset(
    {"exporters", "onnx", "onnx_rnn", "onnx_text", "parity", "quantize", "signatures",
     "validation", "writer"}
)

__all__ = [
    "EXPORT_INFO",
    "ParityError",
    "ServingFunctions",
    "check_parity",
    "decoding_settings",
    "export_language_model",
    "export_translator",
    "make_session",
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        module, attribute = _NAMES[name], name
        if isinstance(module, tuple):
            module, attribute = module
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        if not name.startswith("_"):
            globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | _SUBMODULES)
