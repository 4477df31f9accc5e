"""Devices, `tf.distribute` strategies, precision and the XLA switch of a training run."""

import os

from keras_seq.errors import KerasSeqError
from keras_seq.utils import has_gpu as _has_gpu
from keras_seq.training.config import STRATEGIES


def use_logical_cpus(n):
    """Split the physical CPU into `n` logical devices (for MirroredStrategy).

    Must run before TensorFlow initialises its devices, i.e. before the first
    tensor or model is created in the process. Calling it again with the same
    `n` is a no-op.

    Args:
        n: number of logical CPU devices (>= 1).

    Returns:
        The names of the logical CPU devices.

    Raises:
        KerasSeqError: TensorFlow's devices are already initialised with a
            different split.

    Example:

    >>> use_logical_cpus(2)                     # doctest: +SKIP
    ['/device:CPU:0', '/device:CPU:1']
    >>> strategy = get_strategy("mirrored")     # doctest: +SKIP
    """
    import tensorflow as tf

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"use_logical_cpus: n must be an integer >= 1, got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if (len(current) if current else 1) == n:  # already split this way (or n == 1 unsplit)
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        raise KerasSeqError(
            f"use_logical_cpus({n}) must run before TensorFlow initialises its devices "
            f"(it already has {have} logical CPU device(s)); call it at program start, "
            "before creating any tensor or model"
        ) from e
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(name="auto"):
    """The `tf.distribute` strategy named by `TrainConfig.strategy`.

    Args:
        name: "default": the default strategy (one local device); "mirrored":
            `MirroredStrategy` over all GPUs, or over all logical CPU devices
            when there is no GPU; "multi-worker": the process's
            `MultiWorkerMirroredStrategy` over the workers of `TF_CONFIG` (see
            `multi_worker_strategy`); "auto": mirrored when there is more than
            one GPU, else default.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> strategy = get_strategy("default")                 # doctest: +SKIP
    >>> strategy.num_replicas_in_sync                      # doctest: +SKIP
    1
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "multi-worker":
        from keras_seq.training.multi_worker import multi_worker_strategy

        return multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)




# /proc/cpuinfo flags of native bfloat16 matmuls (oneDNN uses them in TensorFlow).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU multiplies bfloat16 natively (AMX-BF16 or AVX512-BF16).

    Reads the flags of Linux's `/proc/cpuinfo` (elsewhere: False). With
    oneDNN turned off (`TF_ENABLE_ONEDNN_OPTS=0`) TensorFlow's CPU kernels do
    not use these instructions, so the answer is False too.

    Args:
        cpuinfo: the file to read (for tests).

    Returns:
        bool.

    Example:

    >>> cpu_has_bf16()                                     # doctest: +SKIP
    True
    """
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def precision_policy(mixed_precision):
    """The Keras dtype policy of `TrainConfig.mixed_precision`.

    Args:
        mixed_precision: False (float32), True (mixed: float16 on a GPU,
            with dynamic loss scaling; bfloat16 on a CPU) or "auto" (mixed
            where the hardware computes it natively: on a GPU, or on a CPU
            with AMX-BF16 / AVX512-BF16 (`cpu_has_bf16`); else float32).

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".

    Example:

    >>> precision_policy(False)
    'float32'
    """
    if not mixed_precision:
        return "float32"
    if _has_gpu():
        return "mixed_float16"
    if mixed_precision == "auto" and not cpu_has_bf16():
        return "float32"
    return "mixed_bfloat16"


def resolve_jit_compile(jit_compile, strategy=None):
    """What `jit_compile` means here: a bool, or "auto" for Keras to decide.

    "auto" is XLA on GPU when every layer supports it (Keras checks
    `supports_jit`; e.g. the cuDNN LSTM path does not) and off on CPU, where
    XLA rarely pays for its compile time on recurrent models. Under a
    multi-replica strategy XLA is off: Keras 3 compiles the whole cross-device
    step (`strategy.run` included) with XLA, which fails on variables that
    live on other devices, so `jit_compile=True` there is an error.

    Args:
        jit_compile: "auto", True or False.
        strategy: the `tf.distribute.Strategy` in use, or None.

    Returns:
        "auto", True or False, for `Model.compile(jit_compile=...)`.

    Raises:
        ValueError: `jit_compile=True` with more than one replica.

    Example:

    >>> resolve_jit_compile(True)
    True
    """
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if jit_compile == "auto":
        return "auto" if _has_gpu() and replicas == 1 else False
    if jit_compile and replicas > 1:
        raise ValueError(
            f"jit_compile=True does not work with {replicas} replicas (Keras XLA-compiles the "
            "cross-device step); use --no-jit or --strategy default"
        )
    return bool(jit_compile)
