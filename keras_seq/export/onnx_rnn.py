"""ONNX graphs of the attention RNN translator, built for onnxruntime.

tf2onnx turns the traced `translate_ids` function into a graph that runs op
by op: the masked bidirectional encoder becomes a generic `Loop` per
direction, and every beam-search step gathers the tiled encoder outputs
again. `build_translate_ids` writes the same computation from the Keras
weights with `onnx.helper` instead:

- the encoder as ONNX `LSTM`/`GRU` ops over a right-padded batch with
  `sequence_lens` (bidirectional where the model is): Keras's gate order
  i, f, c, o becomes ONNX's i, o, f, c, and Keras's one bias the pair
  `[Wb, Rb = 0]` (a `reset_after` GRU's two biases map as they are);
- the encoder outputs and the attention keys computed once and shared by the
  beams of a row (`[N, S, D]`, broadcast against the `[N, K, ...]` queries),
  never tiled nor gathered per step;
- the decoder step as one `LSTM`/`GRU` op per layer, and the beam bookkeeping
  of `keras_seq.decoding` (finished hypotheses, GNMT length penalty, exact
  early stop) as a few vectorized ops (`TopK`, batched `GatherND`) inside one
  ONNX `Loop`.

It is the same search as `keras_seq.decoding.decode` with a `BeamSearch`
(same candidates, same tie-breaking: `TopK` prefers the lower index as
`tf.math.top_k` does), so it gives the SavedModel's ids; the parity tests
check that. The beam width is one scalar tensor (`_Beam.width`): feeding it
as a graph input instead of a constant gives a per-request beam width with no
other change.

`supports(fns)` says whether a `ServingFunctions` is covered (an
`AttentionSeq2Seq` in float32 with beam search, any cell, attention, depth and
direction except input feeding); the writer keeps tf2onnx for the rest.

Example:

```python
reason = supports(fns)           # None: covered
proto = build_translate_ids(fns, opset=17)
```
"""

import numpy as np

from keras_seq import extras

__all__ = ["BUILDER", "build", "build_translate_ids", "supports"]

BUILDER = "keras_seq.export.onnx_rnn"
"""export.json's `onnx.<file>.builder` for the graphs built here."""

_NEG_INF = float("-inf")
_MASK_SCORE = -1e9  # as keras_seq.layers.attention
_LSTM_ORDER = (0, 3, 1, 2)  # Keras i, f, c, o -> ONNX i, o, f, c


def build(fns, signature, opset):
    """The graph of `signature` built here, or None where tf2onnx converts it.

    Args:
        fns: the export's `ServingFunctions`.
        signature: the signature's name (`"translate_ids"`, `"step"`, ...).
        opset: the ONNX opset.

    Returns:
        An `onnx.ModelProto`, or None (another signature, or a model that
        `supports` does not cover).
    """
    if signature != fns.names.ids or fns.task != "translation" or supports(fns):
        return None
    return build_translate_ids(fns, opset)


def supports(fns):
    """None if `build_translate_ids` covers `fns`, else the reason it does not."""
    from keras_seq.decoding import BeamSearch
    from keras_seq.models.seq2seq import AttentionSeq2Seq

    model = fns.model
    if type(model) is not AttentionSeq2Seq:
        return f"{type(model).__name__} is not an AttentionSeq2Seq"
    if not isinstance(fns.strategy, BeamSearch):
        return "the decoding strategy is not a BeamSearch"
    if model.input_feeding:
        return "input feeding"
    if model.compute_dtype != "float32":
        return f"compute dtype {model.compute_dtype}"
    for layer in _rnn_layers(model):
        reason = _cell_reason(layer)
        if reason:
            return f"{layer.name}: {reason}"
    return None


def _rnn_layers(model):
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
    recurrent = getattr(cell.recurrent_activation, "__name__", None)
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

    def __init__(self, helper, numpy_helper, prefix, opset, initializers=None):
        self.helper = helper
        self.opset = opset
        self.numpy_helper = numpy_helper
        self.prefix = prefix
        self.nodes = []
        # Constants live in the main graph; a Loop body reads them from there.
        self.initializers = {} if initializers is None else initializers
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def op(self, op_type, *inputs, outputs=1, hint=None, **attributes):
        """Adds a node; returns its output name (or names when `outputs` > 1)."""
        names = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(
            self.helper.make_node(op_type, list(inputs), names, **attributes)
        )
        return names[0] if outputs == 1 else names

    def const(self, value, dtype=np.float32, hint="const"):
        """An initializer holding `value` (cast to `dtype`)."""
        name = f"{hint}_{len(self.initializers)}"
        array = np.asarray(value, dtype=dtype)
        self.initializers[name] = self.numpy_helper.from_array(array, name)
        return name

    def i64(self, *values):
        """A 1-D int64 constant (shapes, axes, TopK's k)."""
        return self.const(list(values), np.int64, hint="i64")


def _weights(variable):
    return np.asarray(variable.numpy(), np.float32)


def _rnn_weights(layers):
    """ONNX `(W, R, B)` stacking the directions of Keras LSTM/GRU `layers`."""
    ws, rs, bs = [], [], []
    for layer in layers:
        cell = layer.cell
        kernel, recurrent = _weights(cell.kernel), _weights(cell.recurrent_kernel)
        bias = _weights(cell.bias)
        units = cell.units
        if type(layer).__name__ == "LSTM":  # [F, 4U], gates i f c o
            def reorder(m):
                blocks = np.split(m, 4, axis=-1)
                return np.concatenate([blocks[i] for i in _LSTM_ORDER], axis=-1)

            kernel, recurrent, bias = reorder(kernel), reorder(recurrent), reorder(bias)
            bias = np.concatenate([bias, np.zeros(4 * units, np.float32)])
        else:  # GRU reset_after: gates z r h, bias [2, 3U] = input, recurrent
            bias = bias.reshape(-1)
        ws.append(kernel.T)
        rs.append(recurrent.T)
        bs.append(bias)
    return np.stack(ws), np.stack(rs), np.stack(bs)


def _rnn(g, layers, x, lengths=None, initial=()):
    """One ONNX LSTM/GRU op over `x [T, N, F]`; returns `(Y, Y_h, Y_c or None)`."""
    w, r, b = _rnn_weights(layers)
    lstm = type(layers[0]).__name__ == "LSTM"
    attributes = {
        "hidden_size": layers[0].cell.units,
        "direction": "bidirectional" if len(layers) == 2 else "forward",
    }
    if not lstm:
        attributes["linear_before_reset"] = 1
    inputs = [x, g.const(w), g.const(r), g.const(b), lengths or "", *initial]
    outputs = g.op("LSTM" if lstm else "GRU", *inputs, outputs=3 if lstm else 2, **attributes)
    return (outputs[0], outputs[1], outputs[2] if lstm else None)


def _dense(g, x, layer, activation=None):
    y = g.op("MatMul", x, g.const(_weights(layer.kernel)))
    if layer.use_bias:
        y = g.op("Add", y, g.const(_weights(layer.bias)))
    return g.op(activation, y) if activation else y


# --------------------------------------------------------------------------
# Encoder, attention and decoder step.


def _encode(g, model, source):
    """source int32 [N, S] -> (memory [N,S,Dm], keys, mask bool [N,1,S], states)."""
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
    return memory, keys, mask, states


def _attend(g, model, query, memory, keys, mask, beam):
    """query [N*K, U] -> context [N*K, Dm]; memory/keys per batch row, shared by beams."""
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
    return g.op("Reshape", context, g.i64(-1, _dim(memory, model)))


def _dim(memory, model):
    if model.memory_projection is not None or not model.bidirectional:
        return model.units
    return 2 * model.units


def _decoder_step(g, model, tokens, states, memory, keys, mask, beam):
    """tokens int32 [N*K] -> (log-probabilities [N*K, V], new states)."""
    h = g.op("Gather", g.const(_weights(model.target_embedding.embeddings)), tokens)
    new_states = []
    for layer, layer_states in zip(model.decoder_layers, states):
        initial = [g.op("Unsqueeze", s, g.i64(0)) for s in layer_states]
        _, y_h, y_c = _rnn(g, [layer], g.op("Unsqueeze", h, g.i64(0)), initial=initial)
        finals = [y_h] + ([y_c] if y_c else [])
        finals = [g.op("Squeeze", f, g.i64(0)) for f in finals]
        h = finals[0]
        new_states.append(finals)
    context = _attend(g, model, h, memory, keys, mask, beam)
    attentional = g.op(
        "Tanh",
        g.op(
            "MatMul", g.op("Concat", context, h, axis=1),
            g.const(_weights(model.attention_combine.kernel)),
        ),
    )
    logits = _dense(g, attentional, model.output_projection)
    return g.op("LogSoftmax", logits, axis=-1), new_states


# --------------------------------------------------------------------------
# Beam search.


class _Beam:
    """The search's sizes as tensors: `width` (K), `n_best` (R), `length` (L)."""

    def __init__(self, g, strategy, max_length, width=None, n_best=None):
        self.g = g
        # [1] int64; a graph input instead of the constant would do as well.
        self.width = width or g.i64(strategy.beam_size)
        self.n_best = n_best or g.i64(strategy.num_return)
        self.length = max_length
        self.alpha = strategy.length_penalty
        self.max_penalty = ((5.0 + max_length) / 6.0) ** self.alpha if self.alpha else 1.0

    def shape(self, *dims):
        """A 1-D int64 shape of ints and "K" (the beam width)."""
        g = self.g
        parts = [self.width if d == "K" else g.i64(d) for d in dims]
        return g.op("Concat", *parts, axis=0)

    def penalty(self, g, lengths_f):
        """GNMT `((5 + n) / 6) ** alpha` of float lengths (1 when alpha = 0)."""
        if not self.alpha:
            return g.const(1.0)
        base = g.op("Div", g.op("Add", lengths_f, g.const(5.0)), g.const(6.0))
        return g.op("Pow", base, g.const(self.alpha))


def _gather_rows(g, x, idx):
    """x [N, M, ...], idx int64 [N, M'] -> x[n, idx[n, m']] [N, M', ...]."""
    return g.op("GatherND", x, g.op("Unsqueeze", idx, g.i64(2)), batch_dims=1)


def _beam_body(g, model, beam, memory, keys, mask, n_states, end_cols, vocab):
    """The Loop body; returns (inputs, outputs) value infos of the body graph."""
    helper, tp = g.helper, g.helper.TensorProto
    f32, i32, i64, b = tp.FLOAT, tp.INT32, tp.INT64, tp.BOOL
    length, end_id = beam.length, model.end_id
    names = ["t", "tokens"] + [f"s{i}" for i in range(n_states)] + [
        "alive_ids", "alive_logp", "fin_ids", "fin_logp", "fin_norm", "fin_len"
    ]
    types = [i64, i32] + [f32] * n_states + [i32, f32, i32, f32, f32, i32]
    inputs = [helper.make_tensor_value_info("iteration", i64, []),
              helper.make_tensor_value_info("condition", b, [])]
    inputs += [helper.make_tensor_value_info("in_" + n, t, None) for n, t in zip(names, types)]
    v = {n: "in_" + n for n in names}
    t = v["t"]

    per_layer = len(model._state_names)
    flat = [v[f"s{i}"] for i in range(n_states)]
    states = [flat[i * per_layer:(i + 1) * per_layer] for i in range(model.num_layers)]
    logp, new_states = _decoder_step(g, model, v["tokens"], states, memory, keys, mask, beam)

    k_v = g.op("Mul", beam.width, vocab)  # [1] K*V
    cand = g.op(
        "Add", g.op("Reshape", logp, beam.shape(-1, "K", model.target_vocab_size)),
        g.op("Unsqueeze", v["alive_logp"], g.i64(2)),
    )
    cand = g.op("Reshape", cand, g.op("Concat", g.i64(-1), k_v, axis=0))  # [N, K*V]
    t1 = g.op("Add", t, g.const(1, np.int64))
    at_t = g.op("Equal", g.const(np.arange(length), np.int64), t)  # [L]

    # 1) Hypotheses that end now: end tokens ranking in the top K overall.
    top_logp, top_idx = g.op("TopK", cand, beam.width, outputs=2)
    top_beam = g.op("Div", top_idx, vocab)
    is_end = g.op("Equal", g.op("Mod", top_idx, vocab), g.const(end_id, np.int64))
    new_logp = g.op("Where", is_end, top_logp, g.const(_NEG_INF))
    new_norm = g.op("Div", new_logp, beam.penalty(g, g.op("Cast", t1, to=tp.FLOAT)))
    new_ids = g.op(
        "Where", at_t, g.const(end_id, np.int32), _gather_rows(g, v["alive_ids"], top_beam)
    )
    fin_norm, pick = g.op(
        "TopK", g.op("Concat", v["fin_norm"], new_norm, axis=1), beam.n_best, outputs=2
    )
    fin_ids = _gather_rows(g, g.op("Concat", v["fin_ids"], new_ids, axis=1), pick)
    fin_logp = g.op(
        "GatherElements", g.op("Concat", v["fin_logp"], new_logp, axis=1), pick, axis=1
    )
    new_len = g.op("Expand", g.op("Cast", t1, to=i32), g.op("Shape", new_logp))
    fin_len = g.op(
        "GatherElements", g.op("Concat", v["fin_len"], new_len, axis=1), pick, axis=1
    )

    # 2) Live hypotheses: the best K candidates that do not end.
    alive_logp, alive_idx = g.op(
        "TopK", g.op("Where", end_cols, g.const(_NEG_INF), cand), beam.width, outputs=2
    )
    alive_beam = g.op("Div", alive_idx, vocab)
    alive_tok = g.op("Cast", g.op("Mod", alive_idx, vocab), to=i32)  # [N, K]
    alive_ids = g.op(
        "Where", at_t, g.op("Unsqueeze", alive_tok, g.i64(2)),
        _gather_rows(g, v["alive_ids"], alive_beam),
    )
    rows = g.op("Range", g.const(0, np.int64),
                g.op("Gather", g.op("Shape", alive_beam), g.const(0, np.int64)),
                g.const(1, np.int64))
    offsets = g.op("Unsqueeze", g.op("Mul", rows, beam.width), g.i64(1))  # [N, 1]
    flat_beam = g.op("Reshape", g.op("Add", alive_beam, offsets), g.i64(-1))
    new_flat = [g.op("Gather", s, flat_beam) for layer in new_states for s in layer]
    tokens = g.op("Reshape", alive_tok, g.i64(-1))

    # Go on while t < L and some row's live beams can still enter the n-best list.
    if g.opset >= 18:
        best = g.op("ReduceMax", alive_logp, g.i64(1), keepdims=0)
    else:
        best = g.op("ReduceMax", alive_logp, axes=[1], keepdims=0)
    best = g.op("Div", best, g.const(np.float32(beam.max_penalty)))
    last = g.op("Gather", fin_norm, g.op("Sub", beam.n_best, g.i64(1)), axis=1)  # [N, 1]
    open_rows = g.op("ReduceSum", g.op("Cast", g.op("Less", g.op("Squeeze", last, g.i64(1)),
                                                     best), to=i32), g.i64(0), keepdims=0)
    go_on = g.op("And", g.op("Less", t1, g.const(length, np.int64)),
                 g.op("Greater", open_rows, g.const(0, np.int32)))

    results = [t1, tokens, *new_flat, alive_ids, alive_logp, fin_ids, fin_logp, fin_norm,
               fin_len]
    outputs = [go_on] + results
    out_names = ["condition_out"] + ["out_" + n for n in names]
    for value, name in zip(outputs, out_names):
        g.op("Identity", value, hint=name)
        g.nodes[-1].output[0] = name
    out_types = [b] + types
    outputs = [helper.make_tensor_value_info(n, t, None) for n, t in zip(out_names, out_types)]
    return inputs, outputs


def build_translate_ids(fns, opset):
    """The `translate_ids` graph of `fns` (see the module docstring).

    Args:
        fns: a `ServingFunctions` that `supports` covers.
        opset: the ONNX opset (>= 17).

    Returns:
        An `onnx.ModelProto`: `source_ids` int32 [N, S] -> `ids` int32 [N, L],
        `lengths` int32 [N], `scores` float32 [N], the names of tf2onnx's graph.
    """
    onnx = extras.require("onnx", "onnx", "ONNX export")
    from onnx import helper, numpy_helper

    model, strategy, length = fns.model, fns.strategy, fns.max_length
    tp = helper.TensorProto
    g = _Graph(helper, numpy_helper, "", opset)
    beam = _Beam(g, strategy, length)
    source = "source_ids"

    memory, keys, mask, states = _encode(g, model, source)
    vocab = g.const(model.target_vocab_size, np.int64)
    rows = g.op("Gather", g.op("Shape", source), g.const(0, np.int64))  # N, scalar
    rows1 = g.op("Unsqueeze", rows, g.i64(0))
    # Tile the decoder states to N*K rows (row n*K + j is beam j of row n).
    flat_states = []
    for layer_states in states:
        for s in layer_states:
            tiled = g.op("Expand", g.op("Unsqueeze", s, g.i64(1)),
                         beam.shape(1, "K", 1))  # [N, K, U]
            flat_states.append(g.op("Reshape", tiled, g.i64(-1, model.units)))
    nk = g.op("Mul", rows1, beam.width)
    tokens = g.op("Expand", g.const(model.start_id, np.int32), nk)
    # Only beam 0 is live at first, so the K copies do not duplicate hypotheses.
    first = g.op("Equal", g.op("Range", g.const(0, np.int64),
                               g.op("Squeeze", beam.width, g.i64(0)), g.const(1, np.int64)),
                 g.const(0, np.int64))
    alive_logp = g.op("Expand", g.op("Where", first, g.const(0.0), g.const(_NEG_INF)),
                      g.op("Concat", rows1, beam.width, axis=0))
    nr = g.op("Concat", rows1, beam.n_best, axis=0)
    alive_ids = g.op("Expand", g.const(0, np.int32),
                     g.op("Concat", rows1, beam.width, g.i64(length), axis=0))
    fin_ids = g.op("Expand", g.const(0, np.int32),
                   g.op("Concat", rows1, beam.n_best, g.i64(length), axis=0))
    fin_logp = g.op("Expand", g.const(_NEG_INF), nr)
    fin_len = g.op("Expand", g.const(0, np.int32), nr)
    end_cols = g.op("Equal", g.op("Mod", g.op("Range", g.const(0, np.int64),
                                              g.op("Squeeze", g.op("Mul", beam.width, vocab),
                                                   g.i64(0)),
                                              g.const(1, np.int64)), vocab),
                    g.const(model.end_id, np.int64))  # [K*V]

    body = _Graph(helper, numpy_helper, "body/", opset, g.initializers)
    body_beam = _Beam(body, strategy, length, beam.width, beam.n_best)
    body_inputs, body_outputs = _beam_body(
        body, model, body_beam, memory, keys, mask, len(flat_states), end_cols, vocab
    )
    body_graph = helper.make_graph(body.nodes, "beam_step", body_inputs, body_outputs)
    carried = [g.const(0, np.int64), tokens, *flat_states, alive_ids, alive_logp, fin_ids,
               fin_logp, fin_logp, fin_len]
    final = g.op("Loop", g.const(length, np.int64), g.const(True, np.bool_), *carried,
                 outputs=len(carried), body=body_graph)
    t, _, *rest = final
    alive_ids, alive_logp, fin_ids, fin_logp, fin_norm, fin_len = rest[len(flat_states):]

    # Hypotheses still live at max_length are cut there and compete too.
    at_end = g.op("GreaterOrEqual", t, g.const(length, np.int64))
    alive_norm = g.op("Where", at_end,
                      g.op("Div", alive_logp, g.const(np.float32(beam.max_penalty))),
                      g.const(_NEG_INF))
    best_norm, pick = g.op("TopK", g.op("Concat", fin_norm, alive_norm, axis=1), beam.n_best,
                           outputs=2)
    valid = g.op("Greater", best_norm, g.const(_NEG_INF))
    ids = _gather_rows(g, g.op("Concat", fin_ids, alive_ids, axis=1), pick)
    ids = g.op("Where", g.op("Unsqueeze", valid, g.i64(2)), ids, g.const(0, np.int32))
    alive_len = g.op("Expand", g.const(length, np.int32), g.op("Shape", alive_logp))
    lengths = g.op("GatherElements", g.op("Concat", fin_len, alive_len, axis=1), pick, axis=1)
    lengths = g.op("Where", valid, lengths, g.const(0, np.int32))
    scores = g.op("GatherElements", g.op("Concat", fin_logp, alive_logp, axis=1), pick, axis=1)
    zero = g.const(0, np.int64)
    for value, name in ((ids, "ids"), (lengths, "lengths"), (scores, "scores")):
        g.op("Gather", value, zero, axis=1)
        g.nodes[-1].output[0] = name  # the best hypothesis, under tf2onnx's names

    graph = helper.make_graph(
        g.nodes, "translate_ids",
        [helper.make_tensor_value_info(source, tp.INT32, ["N", "S"])],
        [helper.make_tensor_value_info("ids", tp.INT32, ["N", length]),
         helper.make_tensor_value_info("lengths", tp.INT32, ["N"]),
         helper.make_tensor_value_info("scores", tp.FLOAT, ["N"])],
        initializer=list(g.initializers.values()),
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=BUILDER
    )
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    return proto
