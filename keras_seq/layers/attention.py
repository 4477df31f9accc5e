"""Additive (Bahdanau) and multiplicative (Luong) attention over a padded source.

Both layers share one contract, built for encoder-decoders that decode one token
at a time:

    keys_proj = layer.project_keys(keys)                       # once per source
    context, weights = layer(query, keys, mask=mask,           # once per step
                             projected_keys=keys_proj)

`query` is `[B, Dq]` (one decoding step) or `[B, Tq, Dq]` (all steps of a
teacher-forced target at once); `keys` (also the values unless `values` is given)
are `[B, S, D]`; `mask` is a boolean `[B, S]` that is True on real source tokens.
Masked positions get a weight of exactly zero, the weights of a row sum to one
over its real positions, and a row with no real position at all gets all-zero
weights and a zero context (never NaN).
"""

import keras
from keras import ops

# Added to the scores of padded positions before the softmax. The scores are
# always handled in float32, so this is safe under mixed precision too.
_MASK_SCORE = -1e9


class _SourceAttention(keras.layers.Layer):
    """Shared call logic: scoring is left to subclasses."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # `mask` is the key mask, not a mask of the outputs: accept it (no
        # "destroys the mask" warning) but never attach it to the outputs
        # (`compute_mask` returns None).
        self.supports_masking = True

    # Subclasses implement these two.
    def project_keys(self, keys):  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, query, projected_keys):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_mask(self, *args, **kwargs):
        return None

    def _check_built(self):
        if not self.built:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' is not built yet: call it "
                "once or call `build(query_shape, keys_shape)` before `project_keys`."
            )

    def call(self, query, keys, values=None, mask=None, projected_keys=None):
        """Attends from `query` over `keys`.

        Args:
            query: float `[B, Dq]` or `[B, Tq, Dq]`.
            keys: float `[B, S, Dk]`.
            values: optional float `[B, S, Dv]`; defaults to `keys`.
            mask: optional bool `[B, S]`, True on real (non-padded) positions.
            projected_keys: optional output of `project_keys(keys)`, to avoid
                projecting the keys again at every decoding step.

        Returns:
            `(context, weights)`: context `[B, Dv]` or `[B, Tq, Dv]` (compute
            dtype) and float32 weights `[B, S]` or `[B, Tq, S]`.
        """
        query_rank = len(query.shape)
        if query_rank not in (2, 3):
            raise ValueError(
                f"{self.__class__.__name__}: `query` must have rank 2 [B, Dq] or "
                f"rank 3 [B, Tq, Dq]; received shape {tuple(query.shape)}."
            )
        if len(keys.shape) != 3:
            raise ValueError(
                f"{self.__class__.__name__}: `keys` must have rank 3 [B, S, D]; "
                f"received shape {tuple(keys.shape)}."
            )
        if values is None:
            values = keys
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        single_step = query_rank == 2
        if single_step:
            query = ops.expand_dims(query, 1)  # [B, 1, Dq]

        # [B, Tq, S], in float32 for a stable, exactly-masked softmax.
        scores = ops.cast(self._score(query, projected_keys), "float32")
        if mask is not None:
            if len(mask.shape) != 2:
                raise ValueError(
                    f"{self.__class__.__name__}: `mask` must be a [B, S] boolean "
                    f"key mask; received shape {tuple(mask.shape)}."
                )
            mask = ops.expand_dims(ops.cast(mask, "bool"), 1)  # [B, 1, S]
            scores = ops.where(mask, scores, ops.cast(_MASK_SCORE, "float32"))
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            # Exact zeros on padding, and zeros (not a uniform row) when a row is
            # fully masked.
            weights = ops.where(mask, weights, ops.zeros_like(weights))
        context = ops.matmul(ops.cast(weights, values.dtype), values)  # [B,Tq,Dv]
        if single_step:
            context = ops.squeeze(context, 1)
            weights = ops.squeeze(weights, 1)
        return context, weights


def _check_last_dim(shape, name, layer):
    if shape is None or shape[-1] is None:
        raise ValueError(
            f"{layer}: the last dimension of `{name}` must be known to build the "
            f"layer; received shape {shape}."
        )
    return int(shape[-1])


@keras.saving.register_keras_serializable(package="keras_seq")
class BahdanauAttention(_SourceAttention):
    """Additive attention (Bahdanau et al., 2015).

    `score(q, k_s) = v^T tanh(W1 q + W2 k_s)`, softmax over the real source
    positions, `context = sum_s weights_s * values_s`.

    Args:
        units: int, size of the hidden layer of the scoring MLP.
        kernel_initializer: initializer of `W1`, `W2` and `v`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        query: float `[B, Dq]` (one step) or `[B, Tq, Dq]`.
        keys: float `[B, S, Dk]` (encoder outputs).
        values: optional float `[B, S, Dv]`; defaults to `keys`.
        mask: optional bool `[B, S]`, True on real source positions.
        projected_keys: optional `project_keys(keys)`, precomputed once per
            source (`[B, S, units]`).

    Returns:
        `(context, weights)`: `[B, (Tq,) Dv]` and float32 `[B, (Tq,) S]`.

    Example:

    ```python
    attention = keras_seq.layers.BahdanauAttention(64)
    keys = np.random.rand(2, 7, 32).astype("float32")
    mask = np.arange(7)[None, :] < np.array([[7], [4]])
    query = np.random.rand(2, 48).astype("float32")
    attention.build(query.shape, keys.shape)
    projected = attention.project_keys(keys)        # once per source
    context, weights = attention(query, keys, mask=mask, projected_keys=projected)
    # context [2, 32], weights [2, 7] with weights[1, 4:] == 0
    ```
    """

    def __init__(self, units, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                f"BahdanauAttention: `units` must be a positive int; received {units!r}."
            )
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, keys_shape):
        query_dim = _check_last_dim(query_shape, "query", "BahdanauAttention")
        key_dim = _check_last_dim(keys_shape, "keys", "BahdanauAttention")
        self.query_kernel = self.add_weight(
            name="query_kernel",  # W1
            shape=(query_dim, self.units),
            initializer=self.kernel_initializer,
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",  # W2
            shape=(key_dim, self.units),
            initializer=self.kernel_initializer,
        )
        self.score_vector = self.add_weight(
            name="score_vector",  # v
            shape=(self.units,),
            initializer=self.kernel_initializer,
        )
        self.built = True

    def project_keys(self, keys):
        """`W2 k` for every source position: `[B, S, Dk]` -> `[B, S, units]`."""
        self._check_built()
        return ops.matmul(keys, ops.cast(self.key_kernel, keys.dtype))

    def _score(self, query, projected_keys):
        # query [B, Tq, Dq] -> [B, Tq, 1, U]; keys [B, S, U] -> [B, 1, S, U].
        q = ops.matmul(query, ops.cast(self.query_kernel, query.dtype))
        hidden = ops.tanh(ops.expand_dims(q, 2) + ops.expand_dims(projected_keys, 1))
        return ops.einsum("btsu,u->bts", hidden, ops.cast(self.score_vector, hidden.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


_LUONG_SCORES = ("dot", "general", "concat")


@keras.saving.register_keras_serializable(package="keras_seq")
class LuongAttention(_SourceAttention):
    """Multiplicative / global attention (Luong et al., 2015).

    Scores between a query `q` and a key `k_s`:

    - `"dot"`: `q . k_s` (needs `Dq == Dk`);
    - `"general"`: `q . (W_a k_s)`;
    - `"concat"`: `v^T tanh(W_a [q; k_s])`, computed as
      `v^T tanh(W_q q + W_k k_s)` (the same function, split in two).

    Args:
        score: one of `"dot"`, `"general"`, `"concat"`.
        units: int, hidden size of the `"concat"` scoring MLP; defaults to the
            query size. Ignored by the other scores.
        kernel_initializer: initializer of the scoring weights.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments / returns: as `BahdanauAttention`. `project_keys(keys)` gives
    the keys themselves for `"dot"`, `W_a k` (`[B, S, Dq]`) for `"general"` and
    `W_k k` (`[B, S, units]`) for `"concat"`.

    Example:

    ```python
    attention = keras_seq.layers.LuongAttention("general")
    keys = np.random.rand(2, 7, 32).astype("float32")
    query = np.random.rand(2, 5, 16).astype("float32")  # 5 target steps at once
    context, weights = attention(query, keys)            # [2, 5, 32], [2, 5, 7]
    ```
    """

    def __init__(
        self, score="dot", units=None, kernel_initializer="glorot_uniform", **kwargs
    ):
        super().__init__(**kwargs)
        if score not in _LUONG_SCORES:
            raise ValueError(
                f"LuongAttention: `score` must be one of {_LUONG_SCORES}; "
                f"received {score!r}."
            )
        if units is not None and (
            not isinstance(units, int) or isinstance(units, bool) or units <= 0
        ):
            raise ValueError(
                f"LuongAttention: `units` must be a positive int or None; received {units!r}."
            )
        self.score = score
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, keys_shape):
        query_dim = _check_last_dim(query_shape, "query", "LuongAttention")
        key_dim = _check_last_dim(keys_shape, "keys", "LuongAttention")
        if self.score == "dot" and query_dim != key_dim:
            raise ValueError(
                "LuongAttention(score='dot') needs queries and keys of the same "
                f"size; received query size {query_dim} and key size {key_dim}. "
                "Use score='general' or project the keys first."
            )
        if self.score == "general":
            self.kernel = self.add_weight(
                name="kernel",  # W_a, applied to the keys
                shape=(key_dim, query_dim),
                initializer=self.kernel_initializer,
            )
        elif self.score == "concat":
            units = self.units or query_dim
            self.query_kernel = self.add_weight(
                name="query_kernel",
                shape=(query_dim, units),
                initializer=self.kernel_initializer,
            )
            self.key_kernel = self.add_weight(
                name="key_kernel",
                shape=(key_dim, units),
                initializer=self.kernel_initializer,
            )
            self.score_vector = self.add_weight(
                name="score_vector",
                shape=(units,),
                initializer=self.kernel_initializer,
            )
        self.built = True

    def project_keys(self, keys):
        """The per-source part of the score, computed once per source."""
        self._check_built()
        if self.score == "dot":
            return keys
        if self.score == "general":
            return ops.matmul(keys, ops.cast(self.kernel, keys.dtype))
        return ops.matmul(keys, ops.cast(self.key_kernel, keys.dtype))

    def _score(self, query, projected_keys):
        if self.score in ("dot", "general"):
            # [B, Tq, D] x [B, S, D] -> [B, Tq, S]
            return ops.einsum("btd,bsd->bts", query, projected_keys)
        q = ops.matmul(query, ops.cast(self.query_kernel, query.dtype))
        hidden = ops.tanh(ops.expand_dims(q, 2) + ops.expand_dims(projected_keys, 1))
        return ops.einsum("btsu,u->bts", hidden, ops.cast(self.score_vector, hidden.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score": self.score,
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
