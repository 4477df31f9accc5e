"""The optimizer of a run: learning rate or schedule, clipping, weight decay.

Keras 3's TensorFlow optimizers clip each replica's gradient before the
cross-replica sum; `_ClipAfterAllReduce` restores clip-after-sum so training
under `MirroredStrategy` matches one device. Keras's Adam updates each weight
with about a dozen elementwise ops, each a pass over the weight and its two
moments; `_FusedAdamStep` runs TensorFlow's one-kernel Adam instead (same
formula, one pass).
"""


def _in_multi_replica_context():
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return False
    return tf.distribute.get_replica_context().num_replicas_in_sync > 1


class _ClipAfterAllReduce:
    """Optimizer mixin: under tf.distribute, clip the *summed* gradient.

    Keras 3's TensorFlow optimizer clips each replica's partial gradient
    before the cross-replica sum, so `global_clipnorm` bounds the wrong
    vector and training under MirroredStrategy differs from one device. Here
    the sum comes first, then the clipping, then the update.
    """

    def _clip_gradients(self, grads):
        if self.global_clipnorm and _in_multi_replica_context():
            return grads  # clipped after the all-reduce, below
        return super()._clip_gradients(grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not (self.global_clipnorm and _in_multi_replica_context()):
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import keras
        import tensorflow as tf

        trainable_variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        summed = [g for g, _ in grads_and_vars]
        clipped, _ = tf.clip_by_global_norm(summed, self.global_clipnorm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            list(zip(clipped, trainable_variables)),
            learning_rate,
        )


class _FusedAdamStep:
    """Optimizer mixin for Adam / AdamW: one fused kernel per weight update.

    Keras 3's `Adam.update_step` is written in backend ops: about twelve
    elementwise ops per weight, each reading and writing the whole weight or
    a moment. On a 2-core CPU that memory traffic was about a sixth of a
    Transformer translator's training step (the embedding and output tables
    are most of its weights; benchmarks/RESULTS.md, "fused Adam step").
    `tf.raw_ops.ResourceApplyAdam` computes the same update (Kingma & Ba with
    "epsilon hat", as Keras's Adam) in one pass. AdamW's decoupled weight decay is applied by Keras before this
    step, unchanged. AMSGrad, and updates under a tf.distribute strategy
    (whose variables are not plain resources), keep Keras's own step.
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if self.amsgrad or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        # Embedding gradients arrive as IndexedSlices; Keras's step densifies them too.
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.value.handle, v=v.value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient, use_locking=False,
        )


_OPTIMIZER_CLASSES = {}


def _optimizer_class(name):
    """The Keras optimizer class for `name`, with `_ClipAfterAllReduce` mixed in.

    Adam and AdamW also get `_FusedAdamStep` under the TensorFlow backend.
    """
    if name in _OPTIMIZER_CLASSES:
        return _OPTIMIZER_CLASSES[name]
    import keras

    base = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[name]
    mixins = (_ClipAfterAllReduce,)
    if name in ("adam", "adamw") and keras.backend.backend() == "tensorflow":
        mixins += (_FusedAdamStep,)
    cls = type(base.__name__, mixins + (base,), {"__doc__": base.__doc__})
    # The module these classes have always reported (serialized configs record it).
    cls.__module__ = "keras_seq.training"
    cls = keras.saving.register_keras_serializable(package="keras_seq")(cls)
    _OPTIMIZER_CLASSES[name] = cls
    return cls


def make_optimizer(config, total_steps=None):
    """The optimizer of `config`: learning rate / schedule, clipping, decay.

    Args:
        config: a `TrainConfig`.
        total_steps: optimizer steps of the whole run; required by "cosine".

    Returns:
        A Keras optimizer. Its `global_clipnorm` is `config.clipnorm`. The
        "cosine" schedule is a `keras.optimizers.schedules.CosineDecay`
        (warmup included); the other schedules use a learning-rate variable
        driven per epoch (and per step during warmup) by `train`.

    Example:

    >>> optimizer = make_optimizer(TrainConfig(optimizer="sgd", clipnorm=5.0))
    >>> float(optimizer.global_clipnorm)                  # doctest: +SKIP
    5.0
    """
    import keras

    lr = config.peak_learning_rate
    if config.lr_schedule == "cosine":
        if not total_steps:
            raise ValueError("the cosine schedule needs the number of training steps")
        warmup = min(config.warmup_steps, max(total_steps - 1, 0))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else lr,
            decay_steps=max(total_steps - warmup, 1),
            alpha=min(config.min_learning_rate / lr, 1.0),
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    else:
        learning_rate = 0.0 if config.warmup_steps else lr
    kwargs = {"learning_rate": learning_rate}
    if config.clipnorm:
        kwargs["global_clipnorm"] = float(config.clipnorm)
    if config.weight_decay is not None:
        kwargs["weight_decay"] = float(config.weight_decay)
    return _optimizer_class(config.optimizer)(**kwargs)

