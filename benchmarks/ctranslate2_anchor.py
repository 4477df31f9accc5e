"""CTranslate2 as the outside anchor for keras_seq's Transformer translator (issue 12).

A benchmark tool, not library code. `convert(model, folder)` writes a
`keras_seq.models.Transformer` as a CTranslate2 model directory
(`ctranslate2.specs.TransformerSpec`); `Anchor(folder, compute_type)`
translates source id rows with it and returns ids laid out like the
SavedModel's `translate_ids` (`[N, L]`, EOS included, 0 after it). The mapping:

- pre-LN layers with a final LayerNorm on each stack (`pre_norm=True`), or
  post-LN (`pre_norm=False`); LayerNorm epsilon 1e-5 (`layer_norm_epsilon`);
- embeddings scaled by sqrt(d) (`scale_embeddings`, CTranslate2's default);
- positions: keras_seq's sinusoidal encoding interleaves sin and cos
  (`PE[p, 2i] = sin`, `PE[p, 2i+1] = cos`) where CTranslate2's built-in one
  concatenates them, so the table itself is written (`position_encodings.
  encodings`, `max_length` rows; a learned table is written the same way);
- the encoder's `keras.layers.MultiHeadAttention` (EinsumDense kernels
  `[d, heads, head_dim]`) and the decoder's `CachedMultiHeadAttention`
  (Dense kernels `[d, heads * head_dim]`) both split heads contiguously, as
  CTranslate2 does: self-attention Q, K, V fused into one linear, cross
  attention K, V fused; CTranslate2's linears are `[out, in]` (kernels transposed);
- the output projection: the head's kernel, or the target embedding when tied;
- vocabularies: token i is the string `str(i)`, with `<unk>`, `<s>`, `</s>` = 1, 2, 3.

The search differs in one setting: CTranslate2's length penalty divides the
score by `length ** alpha`, keras_seq's (GNMT) by `((5 + length) / 6) ** alpha`,
so beam search with a length penalty may pick other hypotheses; greedy search
(and beam search with `length_penalty=0`) is the same search.

    python benchmarks/ctranslate2_anchor.py RUN --sentences 100   # converts, checks greedy ids
"""

import os

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, load_average_line

import numpy as np

UNK, BOS, EOS = "1", "2", "3"


def _np(variable):
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float32)


def _linear(spec, kernel, bias):
    """A CTranslate2 linear from a Keras kernel `[in, ...]` -> `[out, in]`."""
    kernel = _np(kernel)
    spec.weight = np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T)
    spec.bias = _np(bias).reshape(-1)


def _fused(spec, pairs):
    """One linear over several (kernel, bias) pairs concatenated on the output axis."""
    kernels = [_np(k).reshape(_np(k).shape[0], -1).T for k, _ in pairs]
    spec.weight = np.ascontiguousarray(np.concatenate(kernels, axis=0))
    spec.bias = np.concatenate([_np(b).reshape(-1) for _, b in pairs])


def _norm(spec, layer):
    spec.gamma = _np(layer.gamma)
    spec.beta = _np(layer.beta)


def _ffn(spec, layer):
    _norm(spec.layer_norm, layer.ff_norm)
    _linear(spec.linear_0, layer.ff_intermediate.kernel, layer.ff_intermediate.bias)
    _linear(spec.linear_1, layer.ff_output.kernel, layer.ff_output.bias)


def _mha_parts(attention):
    """(query, key, value, output) (kernel, bias) of either attention layer."""
    if hasattr(attention, "query_dense"):  # CachedMultiHeadAttention
        dense = (attention.query_dense, attention.key_dense, attention.value_dense,
                 attention.output_dense)
    else:  # keras.layers.MultiHeadAttention
        dense = (attention._query_dense, attention._key_dense, attention._value_dense,
                 attention._output_dense)
    parts = [(d.kernel, d.bias) for d in dense]
    out_kernel = _np(parts[3][0])  # [heads, head_dim, d] or [inner, d]
    parts[3] = (out_kernel.reshape(-1, out_kernel.shape[-1]), parts[3][1])
    return parts


def _positions(layer, rows):
    return _np(layer.encoding(np.arange(rows)))


def convert(model, folder):
    """Writes `model` (a keras_seq `Transformer`) as a CTranslate2 model in `folder`.

    Raises:
        ValueError: a configuration CTranslate2's TransformerSpec cannot hold
            (another feed-forward activation than relu or gelu).
    """
    import ctranslate2
    from ctranslate2.specs import common_spec, transformer_spec

    activation = model.decoder_layers[0].activation.__name__
    activations = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU}
    if activation not in activations:
        raise ValueError(f"feed-forward activation {activation!r} (CTranslate2: relu, gelu)")
    spec = transformer_spec.TransformerSpec.from_config(
        model.num_layers, model.num_heads, pre_norm=model.norm_first,
        activation=activations[activation])
    encoder, decoder = spec.encoder, spec.decoder
    encoder.embeddings[0].weight = _np(model.source_embedding.embeddings)
    encoder.position_encodings.encodings = _positions(model.source_positions, model.max_length)
    for layer_spec, layer in zip(encoder.layer, model.encoder_layers):
        q, k, v, o = _mha_parts(layer.self_attention)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attention_norm)
        _fused(layer_spec.self_attention.linear[0], [q, k, v])
        _linear(layer_spec.self_attention.linear[1], *o)
        _ffn(layer_spec.ffn, layer)
    if model.norm_first:
        _norm(encoder.layer_norm, model.encoder_norm)
    decoder.embeddings.weight = _np(model.target_embedding.embeddings)
    decoder.position_encodings.encodings = _positions(model.target_positions, model.max_length)
    for layer_spec, layer in zip(decoder.layer, model.decoder_layers):
        q, k, v, o = _mha_parts(layer.self_attention)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attention_norm)
        _fused(layer_spec.self_attention.linear[0], [q, k, v])
        _linear(layer_spec.self_attention.linear[1], *o)
        q, k, v, o = _mha_parts(layer.cross_attention_layer)
        _norm(layer_spec.attention.layer_norm, layer.cross_attention_norm)
        _linear(layer_spec.attention.linear[0], *q)
        _fused(layer_spec.attention.linear[1], [k, v])
        _linear(layer_spec.attention.linear[2], *o)
        _ffn(layer_spec.ffn, layer)
    if model.norm_first:
        _norm(decoder.layer_norm, model.decoder_norm)
    head = model.head
    if head.kernel is not None:
        decoder.projection.weight = np.ascontiguousarray(_np(head.kernel).T)
    else:  # tied to the target embedding
        decoder.projection.weight = _np(model.target_embedding.embeddings)
    if head.bias is not None:
        decoder.projection.bias = _np(head.bias)
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = UNK, BOS, EOS
    spec.config.decoder_start_token = BOS
    spec.config.layer_norm_epsilon = model.decoder_layers[0].layer_norm_epsilon
    spec.register_source_vocabulary([str(i) for i in range(model.input_vocab_size)])
    spec.register_target_vocabulary([str(i) for i in range(model.output_vocab_size)])
    spec.validate()
    spec.optimize(quantization=None)
    os.makedirs(folder, exist_ok=True)
    spec.save(folder)
    return folder, ctranslate2.__version__


class Anchor:
    """A CTranslate2 translator of a converted model, called like `translate_ids`.

    Args:
        folder: the directory `convert` wrote.
        compute_type: "float32" or "int8" (weights quantized when loaded).
        threads: intra-op threads.
        max_length: the most target tokens, EOS included (the export's `L`).
        length_penalty: CTranslate2's (see the module docstring).
    """

    def __init__(self, folder, compute_type="float32", threads=1, max_length=64,
                 length_penalty=0.6):
        import ctranslate2

        self.translator = ctranslate2.Translator(
            folder, device="cpu", compute_type=compute_type, inter_threads=1,
            intra_threads=threads)
        self.max_length = int(max_length)
        self.length_penalty = float(length_penalty)

    def translate_ids(self, feeds):
        """`{"source_ids": [N, S], "beam_size": k}` -> `{"ids": [N, L]}`."""
        rows = np.asarray(feeds["source_ids"])
        beam = int(feeds.get("beam_size", 1))
        tokens = [[str(t) for t in row if t] for row in rows]
        results = self.translator.translate_batch(
            tokens, beam_size=beam, length_penalty=self.length_penalty if beam > 1 else 0.0,
            max_decoding_length=self.max_length, max_batch_size=0, return_scores=False)
        ids = np.zeros([len(rows), self.max_length], np.int32)
        for i, result in enumerate(results):
            out = [int(t) for t in result.hypotheses[0]]
            if len(out) < self.max_length:
                out.append(int(EOS))  # CTranslate2 leaves out the end token
            ids[i, : len(out)] = out[: self.max_length]
        return {"ids": ids}


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("run", help="a trained Transformer translator run directory")
    parser.add_argument("--to", default=None, help="where to write the CTranslate2 model")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()

    import tempfile

    from keras_seq import decoding, pipelines

    translator = pipelines.Translator.from_run(args.run)
    model = translator.model
    folder = args.to or os.path.join(tempfile.mkdtemp(), "ct2")
    convert(model, folder)
    pairs = translator.split("test")[: args.sentences]
    encoded, _ = translator.prepare([s for s, _ in pairs])
    rows = [np.array([e], np.int32) for e in encoded if e is not None]
    same = {"float32": 0, "int8": 0}
    anchors = {c: Anchor(folder, c, 1, args.max_length) for c in same}
    for row in rows:
        ours = model.generate(row, strategy=decoding.Greedy(),
                              max_length=args.max_length).ids[:, 0].numpy()
        ours = np.pad(ours, [(0, 0), (0, args.max_length - ours.shape[1])])
        for compute_type, anchor in anchors.items():
            same[compute_type] += int(np.array_equal(anchor.translate_ids(
                {"source_ids": row, "beam_size": 1})["ids"], ours))
    print(f"greedy ids equal to keras_seq's: float32 {same['float32']}/{len(rows)}, "
          f"int8 {same['int8']}/{len(rows)} ({folder})")
    print(load_average_line())


if __name__ == "__main__":
    main()
