"""`decode()`: greedy, sampled and beam-search decoding in one `tf.while_loop`."""

import collections.abc
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_seq.decoding.strategies import BeamSearch
from keras_seq.decoding.strategies import check_decoding
from keras_seq.decoding.strategies import length_penalty
from keras_seq.decoding.tensor_utils import _gather_rows
from keras_seq.decoding.tensor_utils import _keep_shape
from keras_seq.decoding.tensor_utils import _map_rows
from keras_seq.decoding.tensor_utils import _shape_list
from keras_seq.decoding.tensor_utils import _take_along
from keras_seq.decoding.tensor_utils import is_runtime
from keras_seq.decoding.tensor_utils import runtime_scalar
from keras_seq.utils import is_int as _is_int

_NEG_INF = float("-inf")


class DecodeResult(NamedTuple):
    """What `decode()` returns; every field has leading dims `[B, R]`.

    `R` is `num_return` for beam search and 1 for greedy/sampled decoding.
    Hypotheses are sorted best first.

    Attributes:
        ids: int32 `[B, R, max_length]`, the generated tokens after the start
            token, including `end_id` when it was emitted, 0 after it.
        lengths: int32 `[B, R]`, number of generated tokens including the end
            token (`max_length` for a hypothesis cut at the length limit).
        scores: float32 `[B, R]`, summed log-probabilities of the tokens (under
            the model's distribution, before temperature or filtering). Beam
            hypotheses are *ranked* by `scores / length_penalty(lengths, alpha)`.
            `-inf` marks a padding entry (fewer than `R` distinct hypotheses
            exist); its ids and length are 0.
        attention: `[B, R, max_length, S]` attention weights of each emitted
            token (0 after the end), or None unless `return_attention=True`.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: Optional[tf.Tensor] = None


def _conform_state(new_state, state):
    """Checks the state returned by step_fn against the one it was given."""
    try:
        tf.nest.assert_same_structure(state, new_state)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "`step_fn` must return `(logits, state)` with the state in the same "
            f"nested structure it was given. {e}"
        ) from None

    names = _leaf_names(state)
    new_leaves = tf.nest.flatten(new_state)
    old_leaves = tf.nest.flatten(state)
    out = []
    for name, new, old in zip(names, new_leaves, old_leaves):
        new = tf.convert_to_tensor(new)
        if new.dtype != old.dtype:
            raise TypeError(
                f"`step_fn` changed the dtype of {name} from {old.dtype.name} "
                f"to {new.dtype.name}; decoding state must keep its dtype."
            )
        if not new.shape.is_compatible_with(old.shape):
            raise ValueError(
                f"`step_fn` changed the shape of {name} from {old.shape} to "
                f"{new.shape}. Decoding state must keep a fixed shape (e.g. "
                "preallocate key/value caches to the maximum length)."
            )
        if new.shape.merge_with(old.shape) != new.shape:
            new = tf.ensure_shape(new, old.shape)
        out.append(new)
    return tf.nest.pack_sequence_as(state, out)


def _leaf_names(state, prefix="state"):
    """Readable names of the leaves of `state`, in `tf.nest.flatten` order."""
    if isinstance(state, collections.abc.Mapping):
        items = [(key, state[key]) for key in sorted(state)]
    elif tf.nest.is_nested(state):
        items = list(enumerate(state))
    else:
        return [prefix]
    names = []
    for key, value in items:
        names.extend(_leaf_names(value, f"{prefix}[{key!r}]"))
    return names


def _check_logits(logits):
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        raise TypeError(
            f"`step_fn` must return float logits, got dtype {logits.dtype.name}."
        )
    if logits.shape.rank is not None and logits.shape.rank != 2:
        raise ValueError(
            "`step_fn` must return logits of shape [N, vocab], got shape "
            f"{logits.shape}."
        )
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1), logits


def decode(
    step_fn,
    state,
    start_ids,
    *,
    end_id,
    max_length,
    strategy="greedy",
    sampler=None,
    return_attention=False,
    max_length_bound=None,
):
    """Decodes sequences from `step_fn` inside one `tf.while_loop`.

    Args:
        step_fn: `step_fn(tokens, state) -> (logits, state)`; tokens int32
            `[N]`, state a nest of tensors with leading dimension `N` (rank-0
            leaves are allowed and shared by all rows, e.g. a step counter),
            logits float `[N, vocab]`. The state must keep its structure,
            dtypes and shapes from step to step.
        state: the initial state (e.g. `model.initial_state(inputs)`), leading
            dimension `B`. For beam search every rank >= 1 leaf is repeated
            `beam_size` times along axis 0 (row `b * beam_size + k`), so encoder
            outputs are tiled too, and reordered with a gather each step.
        start_ids: int `[B]`, the first input token of each row (usually BOS).
        end_id: int, the end token; a row/hypothesis that emits it is finished
            (an id outside the vocabulary means rows only stop at
            `max_length`).
        max_length: int >= 1, the maximum number of generated tokens (static:
            it is the last dimension of `ids`), or an int32 scalar tensor in
            `[1, max_length_bound]` chosen at run time.
        strategy: `Greedy()` (or `"greedy"`) or a `BeamSearch`.
        sampler: None (take the most likely token) or a `RandomSampler`; only
            with greedy decoding.
        return_attention: if True, `state` must be a dict with an
            `"attention"` entry of shape `[N, S]` that `step_fn` sets to the
            attention weights used for the logits it returns; the loop records
            it for every emitted token of the returned hypotheses
            (`DecodeResult.attention`, `[B, R, max_length, S]`).
        max_length_bound: int >= 1, required when `max_length` is a tensor:
            the last dimension of `ids` (0 after `max_length` tokens).

    Returns:
        A `DecodeResult(ids, lengths, scores, attention)`, best first;
        `R = strategy.num_return` for beam search, 1 otherwise.

    The loop stops early once every row is finished (greedy/sampling) or once
    no live beam can still enter the n-best list (see `BeamSearch`).

    Example:
    ```python
    state = model.initial_state(source_ids)
    result = decode(model.step, state, tf.fill([batch], BOS_ID),
                    end_id=EOS_ID, max_length=40, strategy=BeamSearch(4))
    best = result.ids[:, 0]           # int32 [batch, 40]
    ```
    """
    if not callable(step_fn):
        raise TypeError(f"`step_fn` must be callable, got {step_fn!r}.")
    if not _is_int(end_id) or end_id < 0:
        raise ValueError(f"`end_id` must be an integer >= 0, got {end_id!r}.")
    max_length, width = _check_length(max_length, max_length_bound)
    strategy, sampler = check_decoding(strategy, sampler)

    end_id = int(end_id)
    start_ids = tf.convert_to_tensor(start_ids)
    if not start_ids.dtype.is_integer:
        raise TypeError(
            f"`start_ids` must be integer token ids, got {start_ids.dtype.name}."
        )
    if start_ids.shape.rank != 1:
        raise ValueError(
            f"`start_ids` must have shape [batch], got {start_ids.shape}."
        )
    start_ids = tf.cast(start_ids, tf.int32)
    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    batch = start_ids.shape[0]
    for path, leaf in zip(_leaf_names(state), tf.nest.flatten(state)):
        if leaf.shape.rank == 0 or leaf.shape.rank is None:
            continue
        if batch is not None and leaf.shape[0] is not None and leaf.shape[0] != batch:
            raise ValueError(
                f"{path} has leading dimension {leaf.shape[0]} "
                f"but `start_ids` has batch size {batch}."
            )
    if return_attention:
        if not isinstance(state, collections.abc.Mapping) or "attention" not in state:
            raise ValueError(
                "`return_attention=True` needs a dict state with an "
                "'attention' entry of shape [N, source_length] set by `step_fn`."
            )
        if state["attention"].shape.rank != 2:
            raise ValueError(
                "state['attention'] must have shape [N, source_length], got "
                f"{state['attention'].shape}."
            )

    if isinstance(strategy, BeamSearch):
        return _beam_search(
            step_fn, state, start_ids, end_id, width, max_length, strategy,
            return_attention,
        )
    return _greedy(
        step_fn, state, start_ids, end_id, width, max_length, sampler, return_attention
    )


def _check_length(max_length, bound):
    """`(max_length, width)`: the length limit (int or guarded int32 tensor)
    and the static width of `ids`."""
    if bound is not None and (not _is_int(bound) or bound < 1):
        raise ValueError(f"`max_length_bound` must be an integer >= 1, got {bound!r}.")
    if is_runtime(max_length):
        if bound is None:
            raise ValueError(
                "a tensor `max_length` needs `max_length_bound` (the static width of `ids`)."
            )
        bound = int(bound)
        return runtime_scalar(
            max_length, "max_length", tf.int32, lambda v: (v >= 1) & (v <= bound),
            f"an integer in [1, {bound}]",
        ), bound
    if not _is_int(max_length) or max_length < 1:
        raise ValueError(
            f"`max_length` must be an integer >= 1, got {max_length!r}."
        )
    if bound is not None and max_length > bound:
        raise ValueError(
            f"`max_length` ({max_length}) exceeds `max_length_bound` ({bound})."
        )
    return int(max_length), int(bound if bound is not None else max_length)


class _GreedyLoop(NamedTuple):
    """Loop variables of greedy/sampled decoding (B = batch, L = max_length)."""

    t: tf.Tensor  # int32 scalar, the step
    tokens: tf.Tensor  # int32 [B], the tokens fed next
    state: object  # the model's state nest
    ids: tf.Tensor  # int32 [B, L], tokens emitted so far (0 after the end)
    lengths: tf.Tensor  # int32 [B], tokens incl. the end token (L if cut)
    scores: tf.Tensor  # float32 [B], summed log-probabilities
    finished: tf.Tensor  # bool [B]
    history: tf.Tensor  # [B, L, S] attention per emitted token, or [0]


def _greedy(step_fn, state, start_ids, end_id, width, max_length, sampler,
            return_attention):
    batch = _shape_list(start_ids)[0]
    positions = tf.range(width)  # [L]
    key = sampler.make_key() if sampler is not None else None
    if return_attention:
        att = state["attention"]
        history = tf.zeros([batch, width, _shape_list(att)[1]], att.dtype)
    else:
        history = tf.zeros([0])
    initial = _GreedyLoop(
        t=tf.constant(0),
        tokens=start_ids,
        state=state,
        ids=tf.zeros([batch, width], tf.int32),
        lengths=tf.fill([batch], tf.cast(max_length, tf.int32)),
        scores=tf.zeros([batch], tf.float32),
        finished=tf.zeros([batch], tf.bool),
        history=history,
    )

    def cond(loop):
        return tf.logical_and(
            loop.t < max_length, tf.logical_not(tf.reduce_all(loop.finished))
        )

    def body(loop):
        t, finished = loop.t, loop.finished
        logits, new_state = step_fn(loop.tokens, loop.state)
        new_state = _conform_state(new_state, loop.state)
        logp, logits = _check_logits(logits)  # [B, V]
        if sampler is None:
            chosen = tf.argmax(logp, axis=-1, output_type=tf.int32)
        else:
            chosen = sampler.sample(logits, t, key)
        chosen_logp = _take_along(logp, chosen)
        written = tf.where(finished, 0, chosen)  # [B]
        at_t = tf.equal(positions, t)  # [L]
        ended = tf.logical_and(tf.logical_not(finished), tf.equal(chosen, end_id))
        history = loop.history
        if return_attention:
            write = tf.logical_and(
                at_t[None, :, None], tf.logical_not(finished)[:, None, None]
            )
            history = tf.where(write, new_state["attention"][:, None, :], history)
        new_finished = tf.logical_or(finished, ended)
        return (_GreedyLoop(
            t=t + 1,
            tokens=_keep_shape(tf.where(new_finished, end_id, chosen), loop.tokens),
            state=new_state,
            ids=_keep_shape(tf.where(at_t[None, :], written[:, None], loop.ids), loop.ids),
            lengths=_keep_shape(tf.where(ended, t + 1, loop.lengths), loop.lengths),
            scores=_keep_shape(
                loop.scores + tf.where(finished, 0.0, chosen_logp), loop.scores
            ),
            finished=_keep_shape(new_finished, finished),
            history=_keep_shape(history, initial.history),
        ),)

    (final,) = tf.while_loop(cond, body, (initial,))
    return DecodeResult(
        ids=final.ids[:, None, :],
        lengths=final.lengths[:, None],
        scores=final.scores[:, None],
        attention=final.history[:, None] if return_attention else None,
    )


class _BeamLoop(NamedTuple):
    """Loop variables of beam search (B = batch, K = beam, R = n-best, L = length)."""

    t: tf.Tensor  # int32 scalar, the step
    tokens: tf.Tensor  # int32 [B*K], the tokens fed next
    state: object  # the model's state nest, rows b*K + k
    alive_ids: tf.Tensor  # int32 [B, K, L], live hypotheses
    alive_logp: tf.Tensor  # float32 [B, K], their summed log-probabilities
    fin_ids: tf.Tensor  # int32 [B, R, L], finished hypotheses, best first
    fin_logp: tf.Tensor  # float32 [B, R]
    fin_norm: tf.Tensor  # float32 [B, R], ranking score logp / penalty
    fin_len: tf.Tensor  # int32 [B, R], lengths incl. the end token
    alive_att: tf.Tensor  # [B, K, L, S] attention, or [0]
    fin_att: tf.Tensor  # [B, R, L, S] attention, or [0]


def _beam_search(step_fn, state, start_ids, end_id, width, max_length, strategy,
                 return_attention):
    # k and r are ints, or int32 scalars chosen at run time (then the beam and
    # n-best dimensions are dynamic); alpha and max_length likewise.
    k, r, alpha = strategy.beam_size, strategy.num_return, strategy.length_penalty
    length = max_length
    batch = _shape_list(start_ids)[0]
    positions = tf.range(width)  # [L]
    max_penalty = length_penalty(length, alpha)

    def penalty(n):
        return length_penalty(n, alpha)

    # Tile to B*K rows: row b*K + j is beam j of batch row b.
    state = _map_rows(lambda x: tf.repeat(x, k, axis=0), state)
    if return_attention:
        att = state["attention"]
        source_len = _shape_list(att)[1]
        alive_att = tf.zeros([batch, k, width, source_len], att.dtype)
        fin_att = tf.zeros([batch, r, width, source_len], att.dtype)
    else:
        alive_att = fin_att = tf.zeros([0])
    initial = _BeamLoop(
        t=tf.constant(0),
        tokens=tf.repeat(start_ids, k),
        state=state,
        alive_ids=tf.zeros([batch, k, width], tf.int32),
        # Only beam 0 is live at first, so the K copies do not duplicate hypotheses.
        alive_logp=tf.tile(
            tf.where(tf.range(k) == 0, 0.0, _NEG_INF)[None, :], [batch, 1]
        ),
        fin_ids=tf.zeros([batch, r, width], tf.int32),
        fin_logp=tf.fill([batch, r], _NEG_INF),
        fin_norm=tf.fill([batch, r], _NEG_INF),
        fin_len=tf.zeros([batch, r], tf.int32),
        alive_att=alive_att,
        fin_att=fin_att,
    )

    def cond(loop):
        best_possible = tf.reduce_max(loop.alive_logp, axis=1) / max_penalty  # [B]
        done = tf.reduce_all(loop.fin_norm[:, r - 1] >= best_possible)
        return tf.logical_and(loop.t < length, tf.logical_not(done))

    def body(loop):
        t = loop.t
        logits, new_state = step_fn(loop.tokens, loop.state)
        new_state = _conform_state(new_state, loop.state)
        logp, _ = _check_logits(logits)  # [B*K, V]
        vocab = _shape_list(logp)[1]
        cand = tf.reshape(logp, [batch, k, vocab]) + loop.alive_logp[:, :, None]
        cand = tf.reshape(cand, [batch, k * vocab])  # [B, K*V]
        at_t = tf.equal(positions, t)  # [L]
        if return_attention:
            att_now = tf.reshape(new_state["attention"], [batch, k, -1])
            at_t4 = at_t[None, None, :, None]

        # 1) Hypotheses that end now: end tokens ranking in the top K overall.
        top_logp, top_idx = tf.math.top_k(cand, k=k)  # [B, K]
        top_beam = tf.math.floordiv(top_idx, vocab)
        is_end = tf.equal(tf.math.floormod(top_idx, vocab), end_id)
        new_logp = tf.where(is_end, top_logp, _NEG_INF)
        new_norm = new_logp / penalty(t + 1)
        new_ids = tf.where(
            at_t[None, None, :], end_id, _gather_rows(loop.alive_ids, top_beam)
        )
        merged_norm = tf.concat([loop.fin_norm, new_norm], axis=1)  # [B, R+K]
        fin_norm_next, pick = tf.math.top_k(merged_norm, k=r)  # [B, R]
        fin_ids_next = _gather_rows(tf.concat([loop.fin_ids, new_ids], 1), pick)
        fin_logp_next = _gather_rows(tf.concat([loop.fin_logp, new_logp], 1), pick)
        fin_len_next = _gather_rows(
            tf.concat([loop.fin_len, tf.fill(tf.shape(new_logp), t + 1)], 1), pick
        )
        fin_att_next = loop.fin_att
        if return_attention:
            new_att = tf.where(
                at_t4,
                _gather_rows(att_now, top_beam)[:, :, None, :],
                _gather_rows(loop.alive_att, top_beam),
            )
            fin_att_next = _gather_rows(tf.concat([loop.fin_att, new_att], 1), pick)

        # 2) Live hypotheses: the best K candidates that do not end.
        ends_flat = tf.equal(tf.math.floormod(tf.range(k * vocab), vocab), end_id)
        alive_logp_next, alive_idx = tf.math.top_k(
            tf.where(ends_flat[None, :], _NEG_INF, cand), k=k
        )  # [B, K]
        alive_beam = tf.math.floordiv(alive_idx, vocab)
        alive_tok = tf.math.floormod(alive_idx, vocab)
        alive_ids_next = tf.where(
            at_t[None, None, :], alive_tok[:, :, None],
            _gather_rows(loop.alive_ids, alive_beam),
        )
        alive_att_next = loop.alive_att
        if return_attention:
            alive_att_next = tf.where(
                at_t4,
                _gather_rows(att_now, alive_beam)[:, :, None, :],
                _gather_rows(loop.alive_att, alive_beam),
            )
        flat_beam = tf.reshape(alive_beam + tf.range(batch)[:, None] * k, [-1])
        next_loop = _BeamLoop(
            t=t + 1,
            tokens=tf.reshape(alive_tok, [-1]),
            state=_map_rows(lambda x: tf.gather(x, flat_beam), new_state),
            alive_ids=alive_ids_next,
            alive_logp=alive_logp_next,
            fin_ids=fin_ids_next,
            fin_logp=fin_logp_next,
            fin_norm=fin_norm_next,
            fin_len=fin_len_next,
            alive_att=alive_att_next,
            fin_att=fin_att_next,
        )
        # Every loop variable but the state keeps its initial static shape.
        return (next_loop._replace(**{
            name: _keep_shape(getattr(next_loop, name), getattr(loop, name))
            for name in _BeamLoop._fields if name != "state"
        }),)

    (final,) = tf.while_loop(cond, body, (initial,))

    # Hypotheses still live at max_length are cut there and compete too (when
    # the loop stopped early they cannot enter the n-best list anyway).
    alive_norm = tf.where(final.t >= length, final.alive_logp / max_penalty, _NEG_INF)
    all_norm = tf.concat([final.fin_norm, alive_norm], axis=1)  # [B, R+K]
    best_norm, pick = tf.math.top_k(all_norm, k=r)  # [B, R]
    valid = best_norm > _NEG_INF
    ids = _gather_rows(tf.concat([final.fin_ids, final.alive_ids], 1), pick)
    ids = tf.where(valid[:, :, None], ids, 0)
    lengths = _gather_rows(
        tf.concat([final.fin_len, tf.fill(tf.shape(final.alive_logp), length)], 1), pick
    )
    lengths = tf.where(valid, lengths, 0)
    scores = _gather_rows(tf.concat([final.fin_logp, final.alive_logp], 1), pick)
    attention = None
    if return_attention:
        attention = _gather_rows(tf.concat([final.fin_att, final.alive_att], 1), pick)
        attention = tf.where(
            valid[:, :, None, None], attention, tf.zeros_like(attention)
        )
    return DecodeResult(ids=ids, lengths=lengths, scores=scores, attention=attention)
