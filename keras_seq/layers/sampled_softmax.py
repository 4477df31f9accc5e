"""Output projection trained with a sampled softmax, evaluated with the full one.

`SampledSoftmax` owns the output projection of a sequence model (kernel
`[d, V]`, bias `[V]`). Calling it gives full-softmax logits. During training its
`loss` estimates the softmax cross-entropy from the true class plus
`num_sampled` negatives shared across the batch, drawn from the log-uniform
(Zipfian) distribution with the closed-form inverse CDF, so the whole training
step compiles with XLA (`tf.nn.sampled_softmax_loss` cannot: its candidate
sampler has no XLA kernel, TF issue 32240).

How a model uses it with Keras `fit`: inherit `SampledSoftmaxModel` (before
`keras.Model`), name the head's attribute and return `model_outputs` from `call`:

    class MyLM(SampledSoftmaxModel, keras.Model):
        _output_head_attribute = "head"

        def __init__(self, vocab_size, sampled_softmax=0, **kwargs):
            super().__init__(**kwargs)
            check_sampled_softmax("MyLM", sampled_softmax, vocab_size)
            ...
            self.head = SampledSoftmax(vocab_size, num_sampled=sampled_softmax)

        def call(self, inputs, training=None):
            hidden = self.features(inputs, training=training)    # [B, T, d]
            # hidden states when training with sampling, full logits otherwise
            return self.head.model_outputs(hidden, training=training)

        def step(self, tokens, state):
            ...
            return self.head(hidden), state                      # always full logits

`fit` then trains on the sampled loss (`SampledSoftmax.model_loss`), while
`evaluate`/`predict` (training=False) see full logits, so the loss `evaluate`
reports is the full cross-entropy and `exp(loss)` the full perplexity. The
transformer models, `RNNLanguageModel` and `AttentionSeq2Seq` are all wired
this way (`sampled_softmax=N`, 0 = full softmax).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_seq.layers.cached_attention import _large_negative

_PACKAGE = "keras_seq"


def masked_mean(values, mask=None):
    """Mean of `values` over the entries where `mask` is nonzero (0 if none).

    Args:
        values: float tensor.
        mask: optional tensor of `values`' shape (bool or float weights).

    Returns:
        A float32 scalar: `sum(values * mask) / sum(mask)`.
    """
    values = ops.cast(values, "float32")
    if mask is None:
        return ops.mean(values)
    mask = ops.cast(mask, "float32")
    return ops.divide_no_nan(ops.sum(values * mask), ops.sum(mask))


def masked_sparse_cross_entropy(labels, logits, mask=None):
    """Token-level softmax cross-entropy averaged over `mask`.

    Args:
        labels: int `[...]`.
        logits: float `[..., V]`.
        mask: optional bool/float `[...]`; the mean is over its nonzero entries.

    Returns:
        A float32 scalar.
    """
    losses = ops.sparse_categorical_crossentropy(
        ops.cast(labels, "int32"), ops.cast(logits, "float32"), from_logits=True
    )
    return masked_mean(losses, mask)


def log_uniform_probabilities(ids, vocab_size):
    """Q(k) = log((k + 2) / (k + 1)) / log(V + 1), the log-uniform distribution.

    This is the distribution of `tf.random.log_uniform_candidate_sampler`:
    roughly Zipfian, for vocabularies sorted by decreasing frequency.
    """
    ids = ops.cast(ids, "float32")
    return ops.log1p(1.0 / (ids + 1.0)) / math.log(vocab_size + 1.0)


def log_uniform_sample(num_sampled, vocab_size, seed=None):
    """Draws `num_sampled` ids (with replacement) from the log-uniform distribution.

    Uses the inverse CDF: `u ~ U[0, 1)`, `id = floor(exp(u * log(V + 1))) - 1`,
    which compiles with XLA (unlike `tf.random.log_uniform_candidate_sampler`).

    Args:
        num_sampled: int, number of draws.
        vocab_size: int, V.
        seed: a `keras.random.SeedGenerator`, an int, or None.

    Returns:
        int32 `[num_sampled]` in `[0, V)`.
    """
    u = keras.random.uniform((num_sampled,), dtype="float32", seed=seed)
    ids = ops.floor(ops.exp(u * math.log(vocab_size + 1.0))) - 1.0
    return ops.clip(ops.cast(ids, "int32"), 0, vocab_size - 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogUniformPrior(keras.initializers.Initializer):
    """Initializes an output bias `[V]` to `log Q(k)`, the log-uniform prior.

    `Q(k) = log((k + 2) / (k + 1)) / log(V + 1)` sums to 1 over `k < V`, so with
    a zero kernel the softmax of this bias is exactly `Q`: a Zipfian unigram
    model for a vocabulary sorted by decreasing frequency (keras_seq's
    tokenizers sort it so). Meant for the output bias of a model trained with
    the sampled softmax (it is the sampler's own distribution): starting from
    zeros, Adam cannot bring the biases of rare words down to their log
    frequency within a few epochs (it moves each weight by about the learning
    rate per step), the frequencies then end up in the kernel, and there the
    rarely sampled words' columns, which the sampled loss corrects only when
    they are drawn, drift up and take most of the full-softmax mass
    (benchmarks/sampled_softmax.py, issue 5). It helps the full softmax too.

    Returns:
        float `[V]` (the `shape` asked for must be one-dimensional).

    Example:

    >>> bias = LogUniformPrior()((1000,))
    >>> round(float(keras.ops.sum(keras.ops.exp(bias))), 4)
    1.0
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 1 or shape[0] is None or shape[0] < 1:
            raise ValueError(
                f"LogUniformPrior initializes a bias of shape (V,); got shape {shape}."
            )
        vocab_size = int(shape[0])
        prior = log_uniform_probabilities(ops.arange(vocab_size), vocab_size)
        return ops.cast(ops.log(prior), dtype or "float32")

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SampledSoftmax(keras.layers.Layer):
    """Output projection with a sampled-softmax training loss.

    `layer(hidden)` returns full logits `hidden @ kernel + bias` (float32). With
    `num_sampled > 0`, `loss(..., training=True)` is the sampled-softmax loss:

    - one set of `num_sampled` candidates per call, shared by every token of
      the batch, drawn with replacement from the log-uniform distribution
      `Q(k) = log((k+2)/(k+1)) / log(V+1)` (sort the vocabulary by decreasing
      frequency; keras_seq's tokenizers put PAD/UNK/BOS/EOS first);
    - each sampled logit is corrected by `-log(num_sampled * Q(k))`, its
      expected count (logQ correction); the true class is always a candidate
      (expected count 1, no correction), which makes the loss a consistent
      estimate of the full cross-entropy as `num_sampled` grows;
    - a sampled candidate equal to a token's own label is removed for that
      token (accidental hit);
    - loss = `logsumexp([s_y, s_j - log(m Q(j))]) - s_y` per token.

    With `training=False` (evaluation) and with `num_sampled=0`, the loss is
    the full softmax cross-entropy, so reported perplexities are full ones.
    Only ops that XLA compiles are used (`jit_compile=True` works).

    Args:
        vocab_size: int, number of output classes V.
        num_sampled: int, number of sampled negatives (0 = always full
            softmax); must be smaller than `vocab_size`.
        use_bias: whether the projection has a bias `[V]`.
        remove_accidental_hits: whether to drop sampled candidates that equal
            the token's label.
        kernel_initializer, bias_initializer: initializers.
        seed: int or None, seed of the candidate sampler.
        tied_embedding: optional built-or-not `keras.layers.Embedding` (any layer
            with `embeddings` `[V, d]`); the kernel is then its transpose and the
            layer creates no kernel of its own. Not serialised: the model that
            owns both layers re-creates the tie.
        tied_dense: optional `keras.layers.Dense` with `vocab_size` units
            whose kernel `[d, V]` and bias (if any) are the projection; the
            layer then creates no weight of its own. Lets a model that always
            had a `Dense` softmax keep exactly its saved weights layout. Not
            serialised, like `tied_embedding`.
        tied_bias: optional zero-argument callable returning a float `[V]`
            variable that some other object (e.g. the owning model) creates
            and saves; the layer then uses it as its bias and creates none
            (`use_bias` is ignored). Not serialised, like `tied_embedding`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `[..., d]` hidden states.

    Returns:
        float32 logits `[..., V]`.

    Example:

    >>> head = SampledSoftmax(vocab_size=1000, num_sampled=64, seed=1)
    >>> hidden = np.random.rand(2, 7, 16).astype("float32")
    >>> labels = np.random.randint(1, 1000, (2, 7))
    >>> head(hidden).shape
    TensorShape([2, 7, 1000])
    >>> float(head.loss(hidden, labels, training=True)) > 0   # sampled
    True
    """

    def __init__(
        self,
        vocab_size,
        num_sampled=0,
        use_bias=True,
        remove_accidental_hits=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        tied_embedding=None,
        tied_dense=None,
        tied_bias=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("num_sampled", num_sampled)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"`{name}` must be an int, got {value!r}.")
        if vocab_size < 2:
            raise ValueError(f"`vocab_size` must be at least 2, got {vocab_size}.")
        if num_sampled < 0:
            raise ValueError(f"`num_sampled` must be >= 0, got {num_sampled}.")
        if num_sampled >= vocab_size:
            raise ValueError(
                f"`num_sampled` ({num_sampled}) must be smaller than `vocab_size` "
                f"({vocab_size}); use num_sampled=0 for the full softmax."
            )
        if tied_embedding is not None and not (
            isinstance(tied_embedding, keras.layers.Embedding)
            or hasattr(tied_embedding, "embeddings")
        ):
            raise TypeError(
                "`tied_embedding` must be a keras.layers.Embedding, got "
                f"{type(tied_embedding).__name__}."
            )
        if tied_dense is not None:
            if not isinstance(tied_dense, keras.layers.Dense):
                raise TypeError(
                    "`tied_dense` must be a keras.layers.Dense, got "
                    f"{type(tied_dense).__name__}."
                )
            if tied_dense.units != vocab_size:
                raise ValueError(
                    f"`tied_dense` has {tied_dense.units} units, expected "
                    f"vocab_size={vocab_size}."
                )
            if tied_embedding is not None or tied_bias is not None:
                raise ValueError(
                    "`tied_dense` supplies the kernel and the bias; do not pass "
                    "`tied_embedding` or `tied_bias` with it."
                )
        if tied_bias is not None and not callable(tied_bias):
            raise TypeError(
                "`tied_bias` must be a callable returning the bias variable, got "
                f"{type(tied_bias).__name__}."
            )
        self.vocab_size = int(vocab_size)
        self.num_sampled = int(num_sampled)
        self.use_bias = bool(use_bias)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # A closure, not an attribute holding the layer: Keras would track the
        # embedding twice (here and in its owner) and save its weights twice.
        self._tied_embeddings = (
            None if tied_embedding is None else (lambda: tied_embedding.embeddings)
        )
        self._tied_kernel = None
        self._tied_bias = tied_bias
        if tied_dense is not None:
            self._tied_kernel = lambda: tied_dense.kernel
            self._tied_bias = (lambda: tied_dense.bias) if tied_dense.use_bias else None
            self.use_bias = bool(tied_dense.use_bias)
        self.kernel = None
        self.bias = None

    @property
    def tied(self):
        """Whether the kernel is the transpose of a tied embedding table."""
        return self._tied_embeddings is not None

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError("The last dimension of the hidden states must be static.")
        if not self.tied and self._tied_kernel is None:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(input_dim, self.vocab_size),
                initializer=self.kernel_initializer,
            )
        if self.use_bias and self._tied_bias is None:
            self.bias = self.add_weight(
                name="bias", shape=(self.vocab_size,), initializer=self.bias_initializer
            )
        self.built = True

    # -- weights -------------------------------------------------------------

    def _check_built(self):
        if not self.built:
            raise ValueError(
                f"{self.name} is not built; call it on hidden states first."
            )

    def full_kernel(self):
        """The projection kernel `[d, V]` in the compute dtype."""
        self._check_built()
        if self.tied:
            embeddings = self._tied_embeddings()
            if tuple(embeddings.shape)[0] != self.vocab_size:
                raise ValueError(
                    f"{self.name}: tied embeddings have {embeddings.shape[0]} rows, "
                    f"expected vocab_size={self.vocab_size}."
                )
            return ops.transpose(ops.cast(embeddings, self.compute_dtype))
        return ops.cast(self._kernel_variable(), self.compute_dtype)

    def _kernel_variable(self):
        if self._tied_kernel is not None:
            kernel = self._tied_kernel()
            if kernel is None or tuple(kernel.shape)[-1] != self.vocab_size:
                raise ValueError(
                    f"{self.name}: the tied Dense layer is not built or has no "
                    f"kernel [d, {self.vocab_size}]."
                )
            return kernel
        return self.kernel

    def _rows(self, ids):
        """The output weights `[n, d]` of the classes `ids` `[n]`."""
        if self.tied:
            return ops.take(ops.cast(self._tied_embeddings(), self.compute_dtype), ids, axis=0)
        kernel = ops.cast(self._kernel_variable(), self.compute_dtype)
        return ops.transpose(ops.take(kernel, ids, axis=1))

    def _bias_variable(self):
        """The bias variable `[V]` (tied or own), or None without a bias."""
        if self._tied_bias is None:
            return self.bias
        bias = self._tied_bias()
        if tuple(bias.shape) != (self.vocab_size,):
            raise ValueError(
                f"{self.name}: the tied bias has shape {tuple(bias.shape)}, "
                f"expected ({self.vocab_size},)."
            )
        return bias

    def full_bias(self):
        """The bias `[V]` as float32, or None without a bias."""
        bias = self._bias_variable()
        return None if bias is None else ops.cast(bias, "float32")

    def set_unigram_bias(self, counts, smoothing=0.5):
        """Sets the output bias to the log unigram distribution of `counts`.

        With a sampled softmax and Adam, a zero bias makes the model store word
        frequency in the kernel, where the columns of classes that are rarely
        drawn as negatives drift up: after one epoch on Anna Karenina (13k
        words, 512 negatives) such a model gave 77% of the full-softmax mass
        to words seen 5-19 times (5% of the tokens), perplexity 8,357 against
        436 for the full softmax. Starting from the log frequencies removes
        the drift (97.6 vs 92.9) and speeds up the full softmax as well.
        `keras-seq train-lm` calls this on new runs.

        Args:
            counts: `[V]` occurrences of each class in the training labels.
            smoothing: added to every count (classes never seen keep a finite,
                small log-probability).

        Example:

        >>> head = SampledSoftmax(vocab_size=4, num_sampled=2)
        >>> head.build((None, 8))
        >>> head.set_unigram_bias([5, 3, 1, 0])
        >>> np.round(np.exp(np.asarray(head.full_bias())), 3).tolist()
        [0.5, 0.318, 0.136, 0.045]
        """
        self._check_built()
        counts = np.asarray(counts, dtype="float64")
        if counts.shape != (self.vocab_size,) or np.any(counts < 0):
            raise ValueError(
                f"{self.name}: counts must be {self.vocab_size} non-negative numbers; "
                f"got shape {counts.shape}."
            )
        bias = self._bias_variable()
        if bias is None:
            raise ValueError(f"{self.name} has no bias (use_bias=False).")
        smoothed = counts + smoothing
        bias.assign(np.log(smoothed / smoothed.sum()).astype("float32"))

    def _biases(self, ids):
        bias = self.full_bias()
        if bias is None:
            return ops.zeros(ops.shape(ids), "float32")
        return ops.take(bias, ids, axis=0)

    # -- outputs ---------------------------------------------------------------

    def call(self, inputs):
        logits = ops.matmul(ops.cast(inputs, self.compute_dtype), self.full_kernel())
        logits = ops.cast(logits, "float32")
        bias = self.full_bias()
        if bias is not None:
            logits = logits + bias
        return logits

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.vocab_size,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            tuple(inputs.shape[:-1]) + (self.vocab_size,), dtype="float32"
        )

    def sample_candidates(self):
        """One draw of `num_sampled` candidate ids int32 `[num_sampled]`."""
        return log_uniform_sample(self.num_sampled, self.vocab_size, self.seed_generator)

    def expected_counts(self, ids):
        """Expected number of times each id appears among the samples, float32."""
        return self.num_sampled * log_uniform_probabilities(ids, self.vocab_size)

    # -- losses ----------------------------------------------------------------

    def full_token_loss(self, hidden, labels):
        """Full softmax cross-entropy per token, float32 of `labels`' shape."""
        self._check_built()
        return ops.sparse_categorical_crossentropy(
            ops.cast(labels, "int32"), self.call(hidden), from_logits=True
        )

    def sampled_token_loss(self, hidden, labels, candidates=None):
        """Sampled-softmax loss per token, float32 of `labels`' shape.

        Args:
            hidden: float `[..., d]`.
            labels: int `[...]`.
            candidates: optional int `[num_sampled]`; drawn with
                `sample_candidates()` when None.
        """
        self._check_built()
        if self.num_sampled == 0:
            raise ValueError(f"{self.name} was built with num_sampled=0.")
        if candidates is None:
            candidates = self.sample_candidates()
        candidates = ops.cast(candidates, "int32")
        labels = ops.cast(labels, "int32")
        depth = hidden.shape[-1]
        flat_hidden = ops.reshape(ops.cast(hidden, self.compute_dtype), (-1, depth))
        flat_labels = ops.reshape(labels, (-1,))

        # True logits s_y: [n].
        true_logits = ops.sum(
            ops.cast(flat_hidden * self._rows(flat_labels), "float32"), axis=-1
        ) + self._biases(flat_labels)
        # Sampled logits s_j - log(m Q(j)): [n, m], negatives shared by all rows.
        sampled_logits = ops.cast(
            ops.matmul(flat_hidden, ops.transpose(self._rows(candidates))), "float32"
        )
        sampled_logits = sampled_logits + self._biases(candidates)[None, :]
        sampled_logits = sampled_logits - ops.log(self.expected_counts(candidates))[None, :]
        if self.remove_accidental_hits:
            hits = ops.equal(flat_labels[:, None], candidates[None, :])
            sampled_logits = ops.where(hits, _large_negative("float32"), sampled_logits)
        logits = ops.concatenate([true_logits[:, None], sampled_logits], axis=-1)
        losses = ops.logsumexp(logits, axis=-1) - true_logits
        return ops.reshape(losses, ops.shape(labels))

    def loss(self, hidden, labels, mask=None, training=False):
        """Masked mean loss: sampled when `training` and `num_sampled > 0`, else full.

        Args:
            hidden: float `[..., d]` hidden states.
            labels: int `[...]`.
            mask: optional bool/float `[...]` (e.g. `labels != 0`).
            training: Python bool.

        Returns:
            A float32 scalar.
        """
        if training and self.num_sampled:
            losses = self.sampled_token_loss(hidden, labels)
        else:
            losses = self.full_token_loss(hidden, labels)
        return masked_mean(losses, mask)

    # -- model wiring ----------------------------------------------------------

    def uses_hidden_outputs(self, training):
        """True when `model_outputs(..., training)` returns hidden states."""
        return bool(training) and self.num_sampled > 0

    def model_outputs(self, hidden, training=None):
        """What a model's `call` should return: hidden states when training with
        sampling (the projection is left to the loss), full logits otherwise."""
        if self.uses_hidden_outputs(training):
            return hidden
        return self(hidden)

    def model_loss(self, labels, outputs, sample_weight=None, training=False, ignore_id=0):
        """The loss for a model's `compute_loss`, over the non-`ignore_id` labels.

        Args:
            labels: int `[B, T]` (or any shape `[...]`).
            outputs: what `model_outputs(hidden, training)` returned: hidden
                states `[..., d]` when sampling in training, logits `[..., V]` otherwise.
            sample_weight: optional weights broadcastable to `labels`.
            training: Python bool, as passed to `model_outputs`.
            ignore_id: label id excluded from the mean (PAD = 0); None keeps all.

        Returns:
            A float32 scalar: the mean token loss.
        """
        labels = ops.cast(labels, "int32")
        mask = ops.ones(ops.shape(labels), "float32")
        if ignore_id is not None:
            mask = ops.cast(ops.not_equal(labels, ignore_id), "float32")
        if sample_weight is not None:
            weight = ops.cast(sample_weight, "float32")
            while len(weight.shape) < len(labels.shape):
                weight = weight[..., None]
            mask = mask * weight
        if self.uses_hidden_outputs(training):
            return self.loss(outputs, labels, mask, training=True)
        return masked_sparse_cross_entropy(labels, outputs, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_sampled": self.num_sampled,
                "use_bias": self.use_bias,
                "remove_accidental_hits": self.remove_accidental_hits,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config


def check_sampled_softmax(owner, sampled_softmax, vocab_size):
    """Validates a model's `sampled_softmax` argument at construction time.

    Args:
        owner: str, the model's name for the message.
        sampled_softmax: the argument: an int in `[0, vocab_size)`.
        vocab_size: int, the output vocabulary size.

    Returns:
        `sampled_softmax` as an int.

    Raises:
        ValueError: not an int, negative, or not smaller than `vocab_size`.
    """
    if (
        isinstance(sampled_softmax, bool)
        or not isinstance(sampled_softmax, (int, np.integer))
        or sampled_softmax < 0
    ):
        raise ValueError(
            f"{owner}: `sampled_softmax` must be an int >= 0 (0 = full softmax); "
            f"received {sampled_softmax!r}."
        )
    if sampled_softmax >= vocab_size:
        raise ValueError(
            f"{owner}: `sampled_softmax` ({sampled_softmax}) must be smaller than "
            f"the output vocabulary ({vocab_size}); 0 selects the full softmax."
        )
    return int(sampled_softmax)


class SampledSoftmaxModel:
    """Mixin wiring a `SampledSoftmax` output head into Keras `fit`/`evaluate`.

    Put it before `keras.Model` in the bases and set `_output_head_attribute`
    to the name of the attribute holding the head. The model's `call` returns
    `head.model_outputs(hidden, training)`: hidden states when training with
    `num_sampled > 0`, full logits otherwise (and always in `step`).

    - `compute_loss`: in a training pass with sampling, the head's sampled
      softmax averaged over the labels that are not PAD (0). Otherwise the
      loss given to `compile` on the full logits when there is one (e.g.
      `masked_loss()`), else the head's full cross-entropy over non-PAD labels.
      So `evaluate` always reports a full-softmax loss. Losses added with
      `add_loss` are added in both cases.
    - `compute_metrics`: compiled metrics see full logits; in a sampled
      training pass there are none, so they are only updated and reported by
      `evaluate` (and by `fit`'s validation); `fit`'s training logs then
      hold the loss only.

    Example:

    >>> class MyModel(SampledSoftmaxModel, keras.Model):  # doctest: +SKIP
    ...     _output_head_attribute = "head"
    """

    # Name of the attribute holding the SampledSoftmax layer (set by subclasses).
    _output_head_attribute = "head"
    # Label id left out of the sampled-softmax mean (PAD); None keeps every label.
    _sampled_softmax_ignore_id = 0
    # Set at trace time by `compute_loss`, read by `compute_metrics` of the
    # same train/test step: whether `y_pred` holds hidden states.
    _hidden_outputs_pass = False

    def _output_head(self):
        head = getattr(self, self._output_head_attribute)
        if not isinstance(head, SampledSoftmax):
            raise TypeError(
                f"{type(self).__name__}.{self._output_head_attribute} must be a "
                f"SampledSoftmax layer, got {type(head).__name__}."
            )
        return head

    def compile_from_config(self, config):
        """Restores the compiled state saved in a `.keras` file.

        Keras skips (with a warning) compiling models whose `compile` is
        overridden; ours only fill defaults, so restore it as Keras would and
        build the optimizer so its saved variables load and `fit` continues.
        """
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def set_unigram_bias(self, counts, smoothing=0.5):
        """Starts the output bias at the log unigram distribution of `counts`.

        See `SampledSoftmax.set_unigram_bias`; call it on a new model, before
        training.

        Args:
            counts: `[vocab_size]` occurrences of each id in the training labels.
            smoothing: added to every count.
        """
        self._output_head().set_unigram_bias(counts, smoothing)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        head = self._output_head()
        self._hidden_outputs_pass = head.uses_hidden_outputs(training)
        if not self._hidden_outputs_pass and getattr(self, "_compile_loss", None) is not None:
            # Full logits and a compiled loss: Keras's own path.
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        loss = head.model_loss(
            y,
            y_pred,
            sample_weight,
            training=training,
            ignore_id=self._sampled_softmax_ignore_id,
        )
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), "float32")
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not self._hidden_outputs_pass:
            return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        # y_pred holds hidden states (sampled-softmax training): the compiled
        # metrics, which need logits, are neither updated nor reported; the
        # loss and the other metrics are.
        return self._metrics_results(skip_compiled=True)

    def get_metrics_result(self):
        # Compiled metrics are built by their first update, which a model
        # trained with sampling only gets from `evaluate`: until then leave
        # them out (Keras would fail on them at the end of a `fit` epoch).
        compiled = getattr(self, "_compile_metrics", None)
        return self._metrics_results(
            skip_compiled=compiled is not None and not compiled.built
        )

    def _metrics_results(self, skip_compiled):
        compiled = getattr(self, "_compile_metrics", None)
        results = {}
        for metric in self.metrics:
            if skip_compiled and metric is compiled:
                continue
            result = metric.result()
            if isinstance(result, dict):
                results.update(result)
            else:
                results[metric.name] = result
        return results
