"""ONNX id-level graphs of the recurrent models, built for onnxruntime.

tf2onnx turns the traced `translate_ids` / `generate_ids` functions into
graphs that run op by op: a masked recurrent layer becomes a generic `Loop`
(per direction), and every beam-search step gathers the tiled encoder
outputs again. `build_ids_graph` writes the same computation from the Keras
weights with `onnx.helper` instead:

- recurrent layers as ONNX `LSTM`/`GRU`/`RNN` ops over a right-padded batch
  with `sequence_lens` (bidirectional where the encoder is): Keras's LSTM
  gate order i, f, c, o becomes ONNX's i, o, f, c, and Keras's one bias the
  pair `[Wb, Rb = 0]` (a `reset_after` GRU's two biases map as they are);
- the translator's encoder outputs and attention keys computed once and
  shared by the beams of a row (`[N, S, D]`, broadcast against the
  `[N, K, ...]` queries), never tiled nor gathered per step;
- the decoder step as one recurrent op per layer, and the search of
  `keras_seq.decoding` (beam search with finished hypotheses, the GNMT length
  penalty and the exact early stop) as a few vectorized ops
  (`TopK`, batched `GatherND`) inside one ONNX `Loop`, what does not change
  from step to step (shapes, length penalties, row offsets) computed once
  outside it;
- every weight product a `MatMul` (+ `Add`) or a recurrent op whose weights
  are initializers of the graph that uses it (the decoder step's are the
  `Loop` body's own), the layout `onnxruntime.quantization.quantize_dynamic`
  quantizes (`keras_seq.export.quantize`: `MatMul` -> `MatMulInteger`,
  `LSTM` -> `DynamicQuantizeLSTM`; it has no integer `Gemm`).

With `aligned=True` (a translator's text graph core) it also keeps, for every
hypothesis, the source position each output token attends to most
(`alignment`, `nbest_alignment`: what `ServingFunctions.aligned_level` gives
the `<unk>` replacement of the text graph), carried through the search like
the ids rather than as the `[N, K, L, S]` attention history.

It is the same search as `keras_seq.decoding.decode` (same candidates, same
tie-breaking: `TopK` prefers the lower index as TensorFlow does),
so it gives the SavedModel's ids; the parity tests check that. The graph takes
the per-request settings of a beam-search signature as the SavedModel does
(`ServingFunctions.settings`): `beam_size` and `n_best` become int64 `[1]`
tensors (`_Beam`) read by `TopK`, the shapes and the row offsets (beam size 1
is greedy search: no length penalty); `length_penalty` feeds `Pow`, and the
early-stop bound `max_penalty` is computed in the graph; `max_length` (at most
the export's `L`, the width of the id buffers) stops the Loop and cuts the
live hypotheses. Like tf2onnx's graph it does not check their ranges (the
server does).

`supports(fns)` says whether a `ServingFunctions` is covered: an
`AttentionSeq2Seq` (any cell, attention, depth and direction; not input
feeding) or an `RNNLanguageModel`, float32, tanh/sigmoid cells, with beam
search. A greedy export (the default of a language model) takes the
sampling inputs (`temperature`, `top_k`, `top_p`, `seed`) per request, which
this graph does not implement: tf2onnx converts it, as the rest and the
other signatures.

Example:

```python
proto = build(fns, "translate_ids", opset=17)  # None: not covered, use tf2onnx
core = build(fns, "translate_ids", opset=17, aligned=True)  # + alignment outputs
```
"""

import numpy as np

from keras_seq import extras

__all__ = ["BUILDER", "build", "build_ids_graph", "supports"]

BUILDER = "keras_seq.export.onnx_rnn"
"""export.json's `onnx.<file>.builder` for the graphs built here."""

_NEG_INF = float("-inf")
_MASK_SCORE = -1e9  # as keras_seq.layers.attention
_LSTM_ORDER = (0, 3, 1, 2)  # Keras i, f, c, o -> ONNX i, o, f, c
_FLOAT, _INT64 = 1, 7  # onnx.TensorProto's FLOAT and INT64
# The graph's per-request inputs, as `ServingFunctions.settings` of a beam search.
_SETTINGS = ("beam_size", "length_penalty", "n_best", "max_length")


def build(fns, signature, opset, aligned=False):
    """The graph of `signature` built here, or None where tf2onnx converts it.

    Args:
        fns: the export's `ServingFunctions`.
        signature: the signature's name (`"translate_ids"`, `"step"`, ...).
        opset: the ONNX opset.
        aligned: a translator's id-level graph with the `alignment` outputs
            (`ServingFunctions.aligned_level`: the core of the text graph
            when it replaces `<unk>`).

    Returns:
        An `onnx.ModelProto`, or None (another signature than the id-level
        one, or a model that `supports` does not cover).
    """
    if signature != fns.names.ids or supports(fns) or (aligned and fns.task != "translation"):
        return None
    return build_ids_graph(fns, opset, aligned=aligned)


def supports(fns):
    """None if `build_ids_graph` covers `fns`, else the reason it does not."""
    from keras_seq.models.language_model import RNNLanguageModel
    from keras_seq.models.seq2seq import AttentionSeq2Seq

    model = fns.model
    if type(model) not in (AttentionSeq2Seq, RNNLanguageModel):
        return f"{type(model).__name__} is not an AttentionSeq2Seq or RNNLanguageModel"
    if set(fns.settings()) != set(_SETTINGS):  # greedy exports take sampling inputs
        return f"per-request inputs {', '.join(fns.settings())} (beam search's only)"
    if getattr(model, "input_feeding", False):
        return "input feeding"
    if model.compute_dtype != "float32":
        return f"compute dtype {model.compute_dtype}"
    for layer in _rnn_layers(model):
        reason = _cell_reason(layer)
        if reason:
            return f"{layer.name}: {reason}"
    return None


def _rnn_layers(model):
    if not hasattr(model, "encoder_layers"):  # a language model
        yield from model.rnn_layers
        return
    for layer in model.encoder_layers:
        if model.bidirectional:
            yield layer.forward_layer
            yield layer.backward_layer
        else:
            yield layer
    yield from model.decoder_layers


def _cell_reason(layer):
    cell = layer.cell
    activation = getattr(cell.activation, "__name__", None)
    recurrent = getattr(getattr(cell, "recurrent_activation", None), "__name__", "sigmoid")
    if activation != "tanh" or recurrent != "sigmoid":
        return f"activations {activation}/{recurrent} (tanh/sigmoid only)"
    if not cell.use_bias:
        return "no bias"
    if type(layer).__name__ == "GRU" and not cell.reset_after:
        return "GRU with reset_after=False"
    return None


# --------------------------------------------------------------------------
# A small graph builder.


class _Graph:
    """Nodes and initializers of one (sub)graph, with generated names."""

    def __init__(self, helper, numpy_helper, prefix, opset):
        self.helper = helper
        self.opset = opset
        self.numpy_helper = numpy_helper
        self.prefix = prefix
        self.nodes = []
        # Each graph holds the constants its nodes make: the decoder step's
        # weights are the Loop body's own initializers (onnxruntime's dynamic
        # quantization quantizes an LSTM only where its weights are in its
        # graph; a MatMul either way). What the body reads from the main graph
        # (encoder outputs, settings, shapes) stays there.
        self.initializers = {}
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def op(self, op_type, *inputs, outputs=1, hint=None, **attributes):
        """Adds a node; returns its output name (or names when `outputs` > 1)."""
        names = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(  # named as its first output (profiles, quantization)
            self.helper.make_node(op_type, list(inputs), names, name=names[0], **attributes)
        )
        return names[0] if outputs == 1 else names

    def const(self, value, dtype=np.float32, hint="const"):
        """An initializer holding `value` (cast to `dtype`)."""
        name = f"{self.prefix}{hint}_{len(self.initializers)}"
        array = np.asarray(value, dtype=dtype)
        self.initializers[name] = self.numpy_helper.from_array(array, name)
        return name

    def i64(self, *values):
        """A 1-D int64 constant (shapes, axes, TopK's k)."""
        return self.const(list(values), np.int64, hint="i64")


def _weights(variable):
    return np.asarray(variable.numpy(), np.float32)


def _kind(layer):
    """`"LSTM"`, `"GRU"` or `"RNN"` (SimpleRNN): the ONNX op of a Keras layer."""
    name = type(layer).__name__
    return "RNN" if name == "SimpleRNN" else name


def _rnn_weights(layers):
    """ONNX `(W, R, B)` stacking the directions of Keras recurrent `layers`."""
    ws, rs, bs = [], [], []
    for layer in layers:
        cell = layer.cell
        kernel, recurrent = _weights(cell.kernel), _weights(cell.recurrent_kernel)
        bias = _weights(cell.bias)
        units = cell.units
        if _kind(layer) == "LSTM":  # [F, 4U], gates i f c o
            def reorder(m):
                blocks = np.split(m, 4, axis=-1)
                return np.concatenate([blocks[i] for i in _LSTM_ORDER], axis=-1)

            kernel, recurrent, bias = reorder(kernel), reorder(recurrent), reorder(bias)
            bias = np.concatenate([bias, np.zeros(4 * units, np.float32)])
        elif _kind(layer) == "GRU":  # reset_after: gates z r h, bias [2, 3U] = input, recurrent
            bias = bias.reshape(-1)
        else:  # SimpleRNN: one bias [U]
            bias = np.concatenate([bias, np.zeros(units, np.float32)])
        ws.append(kernel.T)
        rs.append(recurrent.T)
        bs.append(bias)
    return np.stack(ws), np.stack(rs), np.stack(bs)


def _rnn(g, layers, x, lengths=None, initial=()):
    """One ONNX LSTM/GRU/RNN op over `x [T, N, F]`; returns `(Y, Y_h, Y_c or None)`."""
    w, r, b = _rnn_weights(layers)
    kind = _kind(layers[0])
    attributes = {
        "hidden_size": layers[0].cell.units,
        "direction": "bidirectional" if len(layers) == 2 else "forward",
    }
    if kind == "GRU":
        attributes["linear_before_reset"] = 1
    inputs = [x, g.const(w), g.const(r), g.const(b), lengths or "", *initial]
    outputs = g.op(kind, *inputs, outputs=3 if kind == "LSTM" else 2, **attributes)
    return (outputs[0], outputs[1], outputs[2] if kind == "LSTM" else None)


def _rnn_step(g, layers, x, states):
    """Feeds `x [N, F]` through stacked `layers`; returns (output, new states)."""
    new_states = []
    for layer, layer_states in zip(layers, states):
        initial = [g.op("Unsqueeze", s, g.i64(0)) for s in layer_states]
        _, y_h, y_c = _rnn(g, [layer], g.op("Unsqueeze", x, g.i64(0)), initial=initial)
        finals = [y_h] + ([y_c] if y_c else [])
        finals = [g.op("Squeeze", f, g.i64(0)) for f in finals]
        x = finals[0]
        new_states.append(finals)
    return x, new_states


def _log_softmax(g, x, head):
    """Log-probabilities of the full softmax of a `SampledSoftmax` head."""
    logits = g.op("MatMul", x, g.const(_weights(head.full_kernel())))
    bias = head.full_bias()
    if bias is not None:
        logits = g.op("Add", logits, g.const(_weights(bias)))
    return g.op("LogSoftmax", logits, axis=-1)


def _dense(g, x, layer, activation=None):
    y = g.op("MatMul", x, g.const(_weights(layer.kernel)))
    if layer.use_bias:
        y = g.op("Add", y, g.const(_weights(layer.bias)))
    return g.op(activation, y) if activation else y


# --------------------------------------------------------------------------
# Encoder, attention and decoder step.


def _encode(g, model, source):
    """source int32 [N, S] -> (memory [N,S,Dm], keys, mask bool [N,1,S], states,
    words bool [N,1,S]: the positions before the last real token, EOS)."""
    mask = g.op("Not", g.op("Equal", source, g.const(0, np.int32)))  # [N, S]
    lengths = g.op(
        "ReduceSum", g.op("Cast", mask, to=6), g.i64(1), keepdims=0
    )  # int32 [N]
    x = g.op("Gather", g.const(_weights(model.source_embedding.embeddings)), source)
    x = g.op("Transpose", x, perm=[1, 0, 2])  # [S, N, E]
    states = []
    for layer in model.encoder_layers:
        if model.bidirectional:
            y, y_h, y_c = _rnn(g, [layer.forward_layer, layer.backward_layer], x, lengths)
        else:
            y, y_h, y_c = _rnn(g, [layer], x, lengths)
        # Y [S, D, N, U] -> [S, N, D*U] (forward then backward, as Keras concatenates).
        x = g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]), g.i64(0, 0, -1))
        finals = [y_h] + ([y_c] if y_c else [])
        if model.bidirectional:
            # [2, N, U] -> [N, 2U], bridged to U.
            finals = [
                g.op("Reshape", g.op("Transpose", f, perm=[1, 0, 2]), g.i64(0, -1))
                for f in finals
            ]
            k = len(finals)
            i = len(states)
            finals = [
                _dense(g, f, model.bridges[i * k + j], "Tanh" if j == 0 else None)
                for j, f in enumerate(finals)
            ]
        else:
            finals = [g.op("Squeeze", f, g.i64(0)) for f in finals]
        states.append(finals)
    memory = g.op("Transpose", x, perm=[1, 0, 2])  # [N, S, De]
    if model.memory_projection is not None:
        memory = _dense(g, memory, model.memory_projection)
    attention = model.attention
    if model.attention_type in ("bahdanau", "luong-concat"):
        keys = g.op("MatMul", memory, g.const(_weights(attention.key_kernel)))
    elif model.attention_type == "luong-general":
        keys = g.op("MatMul", memory, g.const(_weights(attention.kernel)))
    else:  # luong-dot
        keys = memory
    if model.attention_type in ("luong-dot", "luong-general"):
        keys = g.op("Transpose", keys, perm=[0, 2, 1])  # [N, D, S] for the score MatMul
    mask = g.op("Unsqueeze", mask, g.i64(1))  # [N, 1, S]
    width = g.op("Cast", g.op("Shape", source, start=1, end=2), to=6)
    positions = g.op("Range", g.const(0, np.int32), g.op("Squeeze", width, g.i64(0)),
                     g.const(1, np.int32))
    words = g.op("Less", g.op("Unsqueeze", positions, g.i64(0, 1)), g.op(
        "Unsqueeze", g.op("Sub", lengths, g.const(1, np.int32)), g.i64(1, 2)))  # [N, 1, S]
    return memory, keys, mask, states, words


def _attend(g, model, query, memory, keys, mask, beam):
    """query [N*K, U] -> (context [N*K, Dm], weights [N, K, S]); memory/keys per
    batch row, shared by beams."""
    attention = model.attention
    q = g.op("Reshape", query, beam.shape(-1, "K", model.units))  # [N, K, U]
    if model.attention_type in ("bahdanau", "luong-concat"):
        q = g.op("MatMul", q, g.const(_weights(attention.query_kernel)))  # [N, K, A]
        hidden = g.op(
            "Tanh",
            g.op("Add", g.op("Unsqueeze", q, g.i64(2)), g.op("Unsqueeze", keys, g.i64(1))),
        )  # [N, K, S, A]
        vector = _weights(attention.score_vector)[:, None]
        scores = g.op("Squeeze", g.op("MatMul", hidden, g.const(vector)), g.i64(3))
    else:
        scores = g.op("MatMul", q, keys)  # [N, K, S]
    scores = g.op("Where", mask, scores, g.const(_MASK_SCORE))
    weights = g.op("Where", mask, g.op("Softmax", scores, axis=-1), g.const(0.0))
    context = g.op("MatMul", weights, memory)  # [N, K, Dm]
    return g.op("Reshape", context, g.i64(-1, _memory_dim(model))), weights


def _memory_dim(model):
    if model.memory_projection is not None or not model.bidirectional:
        return model.units
    return 2 * model.units


def _decoder_step(g, model, tokens, states, memory, keys, mask, beam):
    """tokens int32 [N*K] -> (log-probabilities [N*K, V], new states, attention
    weights [N, K, S])."""
    x = g.op("Gather", g.const(_weights(model.target_embedding.embeddings)), tokens)
    h, new_states = _rnn_step(g, model.decoder_layers, x, states)
    context, weights = _attend(g, model, h, memory, keys, mask, beam)
    attentional = g.op(
        "Tanh",
        g.op(
            "MatMul", g.op("Concat", context, h, axis=1),
            g.const(_weights(model.attention_combine.kernel)),
        ),
    )
    return _log_softmax(g, attentional, model.output_head), new_states, weights


def _lm_prompt(g, model, prompt):
    """prompt int32 [N, T] -> (start tokens int32 [N], per-layer states).

    As `RNNLanguageModel.initial_state` / `start_tokens`: reads every real
    prompt token but the last, which is fed first (BOS for an empty prompt).
    """
    lengths = g.op("ReduceSum", g.op("Cast", g.op("Not", g.op(
        "Equal", prompt, g.const(0, np.int32))), to=6), g.i64(1), keepdims=0)  # [N]
    read = g.op("Max", g.op("Sub", lengths, g.const(1, np.int32)), g.const(0, np.int32))
    last = g.op("GatherElements", prompt, g.op("Unsqueeze", read, g.i64(1)), axis=1)
    start = g.op("Where", g.op("Greater", lengths, g.const(0, np.int32)),
                 g.op("Squeeze", last, g.i64(1)), g.const(model.start_id, np.int32))
    x = g.op("Gather", g.const(_weights(model.embedding.embeddings)), prompt)
    x = g.op("Transpose", x, perm=[1, 0, 2])  # [T, N, E]
    states = []
    for layer in model.rnn_layers:
        x, y_h, y_c = _rnn(g, [layer], x, read)
        x = g.op("Squeeze", x, g.i64(1))  # [T, 1, N, U] -> [T, N, U]
        finals = [y_h] + ([y_c] if y_c else [])
        states.append([g.op("Squeeze", f, g.i64(0)) for f in finals])
    return start, states


def _lm_step(g, model, tokens, states):
    """tokens int32 [N] -> (log-probabilities [N, V], new states)."""
    x = g.op("Gather", g.const(_weights(model.embedding.embeddings)), tokens)
    h, new_states = _rnn_step(g, model.rnn_layers, x, states)
    if model.projection is not None:
        h = _dense(g, h, model.projection)
    return _log_softmax(g, h, model.output_head), new_states


# --------------------------------------------------------------------------
# The searches: one ONNX Loop each.


class _Beam:
    """The search's settings as tensors of the main graph (a Loop body reads
    them too): `width` (K) and `n_best` (R) int64 `[1]`, `alpha` float32 `[]`,
    `length` (the per-call max_length) int64 `[]`, `max_penalty` float32 `[]`."""

    def __init__(self, g, width, n_best, alpha, length):
        self.width, self.n_best, self.alpha, self.length = width, n_best, alpha, length
        self.max_penalty = self.penalty(g, g.op("Cast", length, to=_FLOAT))
        self.graph, self.shapes = g, {}

    def shape(self, *dims):
        """A 1-D int64 shape of ints and "K" (the beam width), built once in the
        main graph (a Loop body reads it there instead of rebuilding it per step)."""
        if dims not in self.shapes:
            g = self.graph
            parts = [self.width if d == "K" else g.i64(d) for d in dims]
            self.shapes[dims] = g.op("Concat", *parts, axis=0)
        return self.shapes[dims]

    def penalty(self, g, lengths_f):
        """GNMT `((5 + n) / 6) ** alpha` of float lengths (1 when alpha = 0)."""
        base = g.op("Div", g.op("Add", lengths_f, g.const(5.0)), g.const(6.0))
        return g.op("Pow", base, self.alpha)


def _settings(g):
    """The `_Beam` of one call, from the graph's per-request scalar inputs
    `beam_size`, `n_best`, `max_length` (int32 `[]`) and `length_penalty`
    (float32 `[]`), as `ServingFunctions.decoding` reads them: beam size 1 is
    greedy search (no length penalty)."""
    width = g.op("Cast", "beam_size", to=_INT64)
    alpha = g.op("Where", g.op("Equal", width, g.const(1, np.int64)), g.const(0.0),
                 "length_penalty")
    return _Beam(g, g.op("Reshape", width, g.i64(1)),
                 g.op("Reshape", g.op("Cast", "n_best", to=_INT64), g.i64(1)),
                 alpha, g.op("Cast", "max_length", to=_INT64))


def _gather_rows(g, x, idx):
    """x [N, M, ...], idx int64 [N, M'] -> x[n, idx[n, m']] [N, M', ...]."""
    return g.op("GatherND", x, g.op("Unsqueeze", idx, g.i64(2)), batch_dims=1)


def _rows(g, x):
    """The leading dimension of `x` as an int64 [1]."""
    return g.op("Slice", g.op("Shape", x), g.i64(0), g.i64(1))


def _loop(g, names, types, initial, body_fn, length):
    """Runs `body_fn(body, values) -> (go_on, new values)` in an ONNX Loop of
    at most `length` iterations; returns the final values (one per name)."""
    helper = g.helper
    body = _Graph(helper, g.numpy_helper, "rnn/body/", g.opset)
    p = body.prefix
    inputs = [helper.make_tensor_value_info(p + "iteration", helper.TensorProto.INT64, []),
              helper.make_tensor_value_info(p + "condition", helper.TensorProto.BOOL, [])]
    inputs += [helper.make_tensor_value_info(p + "in_" + n, t, None)
               for n, t in zip(names, types)]
    go_on, values = body_fn(body, {n: p + "in_" + n for n in names})
    out_names = [p + "condition_out"] + [p + "out_" + n for n in names]
    for value, name in zip([go_on] + [values[n] for n in names], out_names):
        body.op("Identity", value)
        body.nodes[-1].output[0] = name
    outputs = [helper.make_tensor_value_info(n, t, None)
               for n, t in zip(out_names, [helper.TensorProto.BOOL] + types)]
    graph = helper.make_graph(body.nodes, "search_step", inputs, outputs,
                              initializer=list(body.initializers.values()))
    final = g.op("Loop", g.const(length, np.int64), g.const(True, np.bool_),
                 *[initial[n] for n in names], outputs=len(names), body=graph)
    return dict(zip(names, final))


def _reduce_max(g, x, axis):
    if g.opset >= 18:
        return g.op("ReduceMax", x, g.i64(axis), keepdims=0)
    return g.op("ReduceMax", x, axes=[axis], keepdims=0)


def _beam_search(g, step, start, states, beam, length, vocab_size, end_id, aligned=False):
    """`keras_seq.decoding`'s beam search (see `_beam_search` there).

    Args:
        step: `step(g, beam, tokens [N*K], states) -> (logp [N*K, V], states,
            alignment)`, the alignment int32 [N, K] (the source position each
            row attends to most) when `aligned`, else None.
        start: int32 [N], the first tokens; states: float [N, U] tensors.
        beam: the call's `_Beam` settings.
        length: int, the export's max_length (the width of the id buffers).
        aligned: also keep each hypothesis's alignment, token by token, as
            its ids (the attention history `keras_seq.decoding` keeps with
            `return_attention`, reduced to its argmax at every step).

    Returns:
        The n-best lists: `(ids int32 [N, R, L], lengths int32 [N, R],
        scores [N, R])`, best first, and with `aligned` the alignment int32
        [N, R, L] (0 after the end).
    """
    tp = g.helper.TensorProto
    vocab = g.const(vocab_size, np.int64)
    rows = _rows(g, start)
    state_names = [f"s{i}" for i in range(len(states))]
    # Tile to N*K rows: row n*K + j is beam j of row n.
    initial = {
        name: g.op("Flatten", g.op("Expand", g.op("Unsqueeze", s, g.i64(1)),
                                   beam.shape(1, "K", 1)), axis=2)
        for name, s in zip(state_names, states)
    }
    initial["t"] = g.const(0, np.int64)
    initial["tokens"] = g.op("Reshape", g.op("Expand", g.op("Unsqueeze", start, g.i64(1)),
                                             beam.shape(1, "K")), g.i64(-1))
    # Only beam 0 is live at first, so the K copies do not duplicate hypotheses.
    first = g.op("Equal", g.op("Range", g.const(0, np.int64),
                               g.op("Squeeze", beam.width, g.i64(0)), g.const(1, np.int64)),
                 g.const(0, np.int64))
    nk, nr = g.op("Concat", rows, beam.width, axis=0), g.op("Concat", rows, beam.n_best, axis=0)
    initial["alive_logp"] = g.op(
        "Expand", g.op("Where", first, g.const(0.0), g.const(_NEG_INF)), nk
    )
    initial["alive_ids"] = g.op("Expand", g.const(0, np.int32),
                                g.op("Concat", nk, g.i64(length), axis=0))
    initial["fin_ids"] = g.op("Expand", g.const(0, np.int32),
                              g.op("Concat", nr, g.i64(length), axis=0))
    if aligned:
        initial["alive_align"], initial["fin_align"] = initial["alive_ids"], initial["fin_ids"]
    initial["fin_logp"] = initial["fin_norm"] = g.op("Expand", g.const(_NEG_INF), nr)
    initial["fin_len"] = g.op("Expand", g.const(0, np.int32), nr)
    k_v = g.op("Squeeze", g.op("Mul", beam.width, vocab), g.i64(0))
    end_cols = g.op("Equal", g.op("Mod", g.op("Range", g.const(0, np.int64), k_v,
                                              g.const(1, np.int64)), vocab),
                    g.const(end_id, np.int64))  # [K*V]: the candidates ending now
    # Loop invariants, computed once: the penalty of each length 1..L, the
    # first flat row of each batch row.
    penalties = beam.penalty(g, g.const(np.arange(1, length + 1), np.float32))  # [L]
    offsets = g.op("Unsqueeze", g.op("Mul", g.op("Range", g.const(0, np.int64), g.op(
        "Squeeze", rows, g.i64(0)), g.const(1, np.int64)), beam.width), g.i64(1))  # [N, 1]
    names = ["t", "tokens", *state_names, "alive_ids", "alive_logp", "fin_ids", "fin_logp",
             "fin_norm", "fin_len"]
    types = [tp.INT64, tp.INT32] + [tp.FLOAT] * len(states) + [
        tp.INT32, tp.FLOAT, tp.INT32, tp.FLOAT, tp.FLOAT, tp.INT32]
    if aligned:
        names += ["alive_align", "fin_align"]
        types += [tp.INT32, tp.INT32]

    def body(g, v):
        b = beam  # the settings: main-graph tensors, read from the body
        logp, new_states, align = step(g, b, v["tokens"], [v[n] for n in state_names])
        cand = g.op("Add", g.op("Reshape", logp, b.shape(-1, "K", vocab_size)),
                    g.op("Unsqueeze", v["alive_logp"], g.i64(2)))
        cand = g.op("Reshape", cand, g.op("Concat", g.i64(-1),
                                          g.op("Mul", b.width, vocab), axis=0))  # [N, K*V]
        t1 = g.op("Add", v["t"], g.const(1, np.int64))
        at_t = g.op("Equal", g.const(np.arange(length), np.int64), v["t"])  # [L]

        # 1) Hypotheses that end now: end tokens ranking in the top K overall.
        top_logp, top_idx = g.op("TopK", cand, b.width, outputs=2)
        top_beam = g.op("Div", top_idx, vocab)
        is_end = g.op("Equal", g.op("Mod", top_idx, vocab), g.const(end_id, np.int64))
        new_logp = g.op("Where", is_end, top_logp, g.const(_NEG_INF))
        new_norm = g.op("Div", new_logp, g.op("Gather", penalties, v["t"]))
        new_ids = g.op("Where", at_t, g.const(end_id, np.int32),
                       _gather_rows(g, v["alive_ids"], top_beam))
        out = {}
        out["fin_norm"], pick = g.op(
            "TopK", g.op("Concat", v["fin_norm"], new_norm, axis=1), b.n_best, outputs=2
        )
        out["fin_ids"] = _gather_rows(g, g.op("Concat", v["fin_ids"], new_ids, axis=1), pick)
        if aligned:  # as the ids: position t from the row's step, the rest from its beam
            now = g.op("Unsqueeze", g.op("GatherElements", align, top_beam, axis=1), g.i64(2))
            new_align = g.op("Where", at_t, now, _gather_rows(g, v["alive_align"], top_beam))
            out["fin_align"] = _gather_rows(
                g, g.op("Concat", v["fin_align"], new_align, axis=1), pick)
        out["fin_logp"] = g.op("GatherElements", g.op("Concat", v["fin_logp"], new_logp,
                                                      axis=1), pick, axis=1)
        new_len = g.op("Expand", g.op("Cast", t1, to=tp.INT32), g.op("Shape", new_logp))
        out["fin_len"] = g.op("GatherElements", g.op("Concat", v["fin_len"], new_len, axis=1),
                              pick, axis=1)

        # 2) Live hypotheses: the best K candidates that do not end.
        out["alive_logp"], alive_idx = g.op(
            "TopK", g.op("Where", end_cols, g.const(_NEG_INF), cand), b.width, outputs=2
        )
        alive_beam = g.op("Div", alive_idx, vocab)
        alive_tok = g.op("Cast", g.op("Mod", alive_idx, vocab), to=tp.INT32)  # [N, K]
        out["alive_ids"] = g.op("Where", at_t, g.op("Unsqueeze", alive_tok, g.i64(2)),
                                _gather_rows(g, v["alive_ids"], alive_beam))
        if aligned:
            now = g.op("Unsqueeze", g.op("GatherElements", align, alive_beam, axis=1), g.i64(2))
            out["alive_align"] = g.op("Where", at_t, now,
                                      _gather_rows(g, v["alive_align"], alive_beam))
        flat_beam = g.op("Reshape", g.op("Add", alive_beam, offsets), g.i64(-1))
        for name, value in zip(state_names, new_states):
            out[name] = g.op("Gather", value, flat_beam)
        out["tokens"] = g.op("Reshape", alive_tok, g.i64(-1))
        out["t"] = t1

        # Go on while t < L and some row's live beams can still enter the n-best list.
        best = g.op("Div", _reduce_max(g, out["alive_logp"], 1), b.max_penalty)
        last = g.op("Squeeze", g.op("Gather", out["fin_norm"],
                                    g.op("Sub", b.n_best, g.i64(1)), axis=1), g.i64(1))
        open_rows = g.op("ReduceSum", g.op("Cast", g.op("Less", last, best), to=tp.INT32),
                         g.i64(0), keepdims=0)
        go_on = g.op("And", g.op("Less", t1, b.length),
                     g.op("Greater", open_rows, g.const(0, np.int32)))
        return go_on, out

    v = _loop(g, names, types, initial, body, length)

    # Hypotheses still live at max_length are cut there and compete too.
    at_end = g.op("GreaterOrEqual", v["t"], beam.length)
    alive_norm = g.op("Where", at_end, g.op("Div", v["alive_logp"], beam.max_penalty),
                      g.const(_NEG_INF))
    best_norm, pick = g.op("TopK", g.op("Concat", v["fin_norm"], alive_norm, axis=1),
                           beam.n_best, outputs=2)
    valid = g.op("Greater", best_norm, g.const(_NEG_INF))
    ids = _gather_rows(g, g.op("Concat", v["fin_ids"], v["alive_ids"], axis=1), pick)
    ids = g.op("Where", g.op("Unsqueeze", valid, g.i64(2)), ids, g.const(0, np.int32))
    alive_len = g.op("Expand", g.op("Cast", beam.length, to=tp.INT32),
                     g.op("Shape", v["alive_logp"]))
    lengths = g.op("GatherElements", g.op("Concat", v["fin_len"], alive_len, axis=1), pick,
                   axis=1)
    lengths = g.op("Where", valid, lengths, g.const(0, np.int32))
    scores = g.op("GatherElements", g.op("Concat", v["fin_logp"], v["alive_logp"], axis=1),
                  pick, axis=1)
    if not aligned:
        return ids, lengths, scores
    alignment = _gather_rows(g, g.op("Concat", v["fin_align"], v["alive_align"], axis=1), pick)
    alignment = g.op("Where", g.op("Unsqueeze", valid, g.i64(2)), alignment,
                     g.const(0, np.int32))
    return ids, lengths, scores, alignment


# --------------------------------------------------------------------------
# The graphs.


def _translator(g, fns, source, aligned=False):
    """(start tokens, states, step) of an AttentionSeq2Seq; with `aligned`, the
    step also gives the alignment as `ServingFunctions.decode` defines it: the
    most attended source position among the words (EOS and padding
    excluded; the first on ties, as `tf.argmax`)."""
    model = fns.model
    memory, keys, mask, layer_states, words = _encode(g, model, source)
    per_layer = len(model._state_names)

    def step(g, beam, tokens, flat):
        states = [flat[i * per_layer:(i + 1) * per_layer] for i in range(model.num_layers)]
        logp, new_states, weights = _decoder_step(g, model, tokens, states, memory, keys,
                                                  mask, beam)
        align = None
        if aligned:  # [N, K, S] -> int32 [N, K]
            align = g.op("Cast", g.op("ArgMax", g.op("Where", words, weights, g.const(-1.0)),
                                      axis=-1, keepdims=0), to=6)
        return logp, [s for layer in new_states for s in layer], align

    start = g.op("Expand", g.const(model.start_id, np.int32), _rows(g, source))
    return start, [s for layer in layer_states for s in layer], step


def _language_model(g, fns, prompt, aligned=False):
    """(start tokens, states, step) of an RNNLanguageModel (no alignment)."""
    model = fns.model
    per_layer = len(model._state_names(0))
    start, layer_states = _lm_prompt(g, model, prompt)

    def step(g, beam, tokens, flat):
        states = [flat[i * per_layer:(i + 1) * per_layer] for i in range(model.num_layers)]
        logp, new_states = _lm_step(g, model, tokens, states)
        return logp, [s for layer in new_states for s in layer], None

    return start, [s for layer in layer_states for s in layer], step


def build_ids_graph(fns, opset, aligned=False):
    """The id-level graph of `fns` (`translate_ids` / `generate_ids`).

    Args:
        fns: a `ServingFunctions` that `supports` covers.
        opset: the ONNX opset (>= 17).
        aligned: (translators) also output `alignment` int32 [N, L] and
            `nbest_alignment` [N, n_best, L], as `ServingFunctions.aligned_level`:
            for each output token, the source position it attends to most.

    Returns:
        An `onnx.ModelProto` with the inputs and outputs of tf2onnx's graph:
        `source_ids` / `prompt_ids` int32 [N, T] and the scalars `beam_size`,
        `n_best`, `max_length` (int32) and `length_penalty` (float32) ->
        `ids` int32 [N, L], `lengths` int32 [N], `scores` float32 [N] (the
        best hypothesis) and `nbest_ids` [N, n_best, L], `nbest_lengths`,
        `nbest_scores` [N, n_best] (`-inf` scores mark padding entries).

    Example:

    ```python
    proto = build_ids_graph(fns, 17)
    onnx.save(proto, "translate_ids.onnx")
    ```
    """
    onnx = extras.require("onnx", "onnx", "ONNX export")
    from onnx import helper, numpy_helper

    model, length = fns.model, fns.max_length
    tp = helper.TensorProto
    g = _Graph(helper, numpy_helper, "rnn/", opset)
    name = model.input_name
    # onnxruntime's recurrent ops crash the process on an empty batch: N = 0
    # runs one dummy row (of end tokens), dropped from the outputs. (An `If`
    # around the search would do too, but halves the speed of the Loop inside.)
    rows = _rows(g, name)
    extra = g.op("Cast", g.op("Equal", rows, g.const(0, np.int64)), to=tp.INT64)  # [1]
    width = g.op("Slice", g.op("Shape", name), g.i64(1), g.i64(2))
    dummy = g.op("Expand", g.const(model.end_id, np.int32), g.op("Concat", extra, width, axis=0))
    inputs = g.op("Concat", name, dummy, axis=0)
    prepare = _translator if fns.task == "translation" else _language_model
    start, states, step = prepare(g, fns, inputs, aligned)
    nbest = _beam_search(g, step, start, states, _settings(g), length,
                         model.output_vocab_size, model.end_id, aligned)
    zero = g.const(0, np.int64)  # the best hypothesis
    outputs = [g.op("Gather", x, zero, axis=1) for x in nbest] + list(nbest)
    names = ["ids", "lengths", "scores"] + (["alignment"] if aligned else [])
    names += ["nbest_" + n for n in names]
    for value, n in zip(outputs, names):
        g.op("Slice", value, g.i64(0), rows, g.i64(0))
        g.nodes[-1].output[0] = n
    dtypes = {"length_penalty": tp.FLOAT}
    shapes = [["N", length], ["N"], ["N"]] + ([["N", length]] if aligned else [])
    shapes += [s[:1] + ["R"] + s[1:] for s in shapes]
    graph = helper.make_graph(
        g.nodes, fns.names.ids,
        [helper.make_tensor_value_info(name, tp.INT32, ["N", "T"])]
        + [helper.make_tensor_value_info(s, dtypes.get(s, tp.INT32), []) for s in _SETTINGS],
        [helper.make_tensor_value_info(n, tp.FLOAT if n.endswith("scores") else tp.INT32, s)
         for n, s in zip(names, shapes)],
        initializer=list(g.initializers.values()),
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=BUILDER
    )
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    return proto
