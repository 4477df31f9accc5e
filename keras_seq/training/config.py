"""`TrainConfig`: the hyper-parameters of a training run and their checks."""

import dataclasses
import math
from typing import Union

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "plateau", "step")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
# Learning rate used when `TrainConfig.learning_rate` is None. SGD's 1.0 is the
# classic recurrent-LM recipe (Zaremba et al. 2014), which relies on clipping.
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 1.0}


@dataclasses.dataclass
class TrainConfig:
    """Training hyper-parameters (stored in a run's config.json as "training").

    Args:
        epochs: number of epochs (the last epoch index when resuming).
        batch_size: global batch size; `train` takes batched datasets, so this
            is for the pipelines the caller builds (and the record).
        max_minutes: wall-clock budget in minutes over the whole run, resumes
            included, measured from each `train` call (data loading before it
            is not counted); training stops after the batch that spends it,
            then the (partial) epoch is validated and checkpointed as usual.
            None: no budget.
        seed: seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).
        optimizer: "adam" | "adamw" | "sgd" | "rmsprop".
        learning_rate: peak learning rate; None uses the optimizer's default
            here (`DEFAULT_LEARNING_RATES`: 1e-3, SGD 1.0).
        lr_schedule: "constant"; "cosine" (to `min_learning_rate` over all
            steps); "plateau" (multiply by `decay_rate` when the monitored loss
            has not improved for `plateau_patience` epochs); "step" (multiply
            by `decay_rate` every epoch from `decay_start_epoch` on, 1-based:
            Zaremba's recipe is sgd, lr 1.0, decay_start_epoch=5, rate 0.5).
        decay_start_epoch: first (1-based) epoch with a decayed rate ("step").
        decay_rate: multiplier of the "step" and "plateau" schedules.
        plateau_patience: epochs without improvement before a "plateau" decay.
        min_learning_rate: floor of the "cosine" and "plateau" schedules.
        warmup_steps: linear warmup from 0 over this many optimizer steps.
        anneal_to_budget: with `max_minutes`, also scale the learning rate by
            a cosine over the time budget, from 1 at the start to 0 when it is
            spent (floored at `min_learning_rate`), on top of `lr_schedule`.
            A run on a fixed budget then ends annealed, whenever that is;
            without `max_minutes` it does nothing. A number f in (0, 1]
            anneals over the last f of the budget only (the rate is
            untouched until 1 - f of it is spent); True is 1.
        clipnorm: clip the global norm of the gradient (after the cross-replica
            sum under a distribution strategy); None or 0 disables clipping.
        weight_decay: for "adamw" (and decoupled decay on the others); None
            keeps the Keras default.
        mixed_precision: False (float32), True (compute in float16 on GPU /
            bfloat16 on CPU with float32 variables, and dynamic loss scaling
            for float16) or "auto" (mixed where the hardware computes it
            natively: a GPU, or a CPU with AMX-BF16 / AVX512-BF16; float32
            elsewhere; see `keras_seq.training.devices.precision_policy`).
            Models should keep their logits in float32 (`dtype="float32"` on
            the last layer); Keras losses compute in float32. Checkpoints
            hold float32 variables either way, so a run is decoded and
            exported in float32.
        strategy: "auto" (mirrored over all GPUs when there are several, else
            default), "default" (one device), "mirrored" (all GPUs, or all
            logical CPU devices when there is no GPU; see `use_logical_cpus`)
            or "multi-worker" (`MultiWorkerMirroredStrategy` over the workers
            of `TF_CONFIG`; `batch_size` stays the global batch, the learning
            rate is not scaled; see `keras_seq.training.multi_worker`).
        jit_compile: "auto" (XLA on GPU when every layer supports it, off on
            CPU), True or False.
        patience: early stopping after this many epochs without improvement of
            the validation loss; None: no early stopping.
        restore_best: the returned model holds the best weights (lowest
            validation loss) rather than those of the last epoch.
        average_last: None, or N >= 2 (at most `epochs`): keep the model
            weights of the last N epochs (`checkpoints/epoch-NNNN.weights.h5`,
            older ones deleted). When training ends, the means of the last
            2, 3, ..., N of them are scored on the validation data and the
            lowest-loss one is written to `checkpoints/averaged.weights.h5`
            if its loss is no higher than the best epoch's (the last
            epoch's without `restore_best`); the returned model then holds
            it, and decoding, evaluation and export pick it. Otherwise the
            run keeps its best weights and has no averaged file. Without
            validation data (or with the "multi-worker" strategy) the mean
            of all N is kept. A run cut short with fewer epochs averages the
            ones it has (at least 2).
        steps_per_execution: batches per compiled call (Keras); > 1 cuts the
            per-step Python overhead of small models.
        resume: continue the run in `run_dir` from its `last` checkpoint.
        verbose: 0 (quiet: nothing but errors), 1 (normal: Keras's bar and a
            whole-run line each epoch on a terminal, exactly one line per
            epoch otherwise) or 2 (adds a header, the learning rate and the
            validation time); "auto" means 1. See
            `keras_seq.training.progress.RunProgress`.

    Raises:
        ValueError: a field is out of range (the message names it).

    Example:

    >>> config = TrainConfig(epochs=13, optimizer="sgd", lr_schedule="step")
    >>> config.peak_learning_rate
    1.0
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    """

    epochs: int = 10
    batch_size: int = 64
    max_minutes: float = None
    seed: int = 1337
    optimizer: str = "adam"
    learning_rate: float = None
    lr_schedule: str = "constant"
    decay_start_epoch: int = 5
    decay_rate: float = 0.5
    plateau_patience: int = 1
    min_learning_rate: float = 0.0
    warmup_steps: int = 0
    anneal_to_budget: Union[bool, float] = False
    clipnorm: float = 5.0
    weight_decay: float = None
    mixed_precision: object = False
    strategy: str = "auto"
    jit_compile: object = "auto"
    patience: int = None
    restore_best: bool = True
    average_last: int = None
    steps_per_execution: int = 1
    resume: bool = False
    verbose: object = 1

    def __post_init__(self):
        # Three groups, checked in field order: the first bad field is reported.
        _check_run(self)
        _check_optimization(self)
        _check_execution(self)

    @property
    def peak_learning_rate(self):
        """`learning_rate`, or the optimizer's default when it is None."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES[self.optimizer]

    def to_dict(self):
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        """Build from `to_dict` output; unknown keys are an error."""
        if not isinstance(config, dict):
            raise ValueError(f"TrainConfig.from_dict expects a dict, got {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**config)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok, message):
    if not ok:
        raise ValueError(f"TrainConfig: {message}")


def _check_run(c):
    """Length, batch size, time budget and seed of the run."""
    _check(_is_int(c.epochs) and c.epochs >= 1, f"epochs must be an integer >= 1, got {c.epochs!r}")
    _check(
        _is_int(c.batch_size) and c.batch_size >= 1,
        f"batch_size must be an integer >= 1, got {c.batch_size!r}",
    )
    _check(
        c.max_minutes is None or (_is_number(c.max_minutes) and c.max_minutes > 0),
        f"max_minutes must be > 0 or None, got {c.max_minutes!r}",
    )
    _check(_is_int(c.seed), f"seed must be an integer, got {c.seed!r}")
    if c.average_last is not None:
        _check(
            _is_int(c.average_last) and c.average_last >= 2,
            f"average_last must be an integer >= 2 or None, got {c.average_last!r}",
        )
        _check(
            c.average_last <= c.epochs,
            f"average_last ({c.average_last}) is larger than the epoch checkpoints a run of "
            f"{c.epochs} epochs keeps; use at most {c.epochs}",
        )


def _check_optimization(c):
    """Optimizer, learning rate and its schedule, clipping, weight decay."""
    _check(c.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {c.optimizer!r}")
    _check(
        c.learning_rate is None or (_is_number(c.learning_rate) and c.learning_rate > 0),
        f"learning_rate must be > 0, got {c.learning_rate!r}",
    )
    _check(
        c.lr_schedule in LR_SCHEDULES,
        f"lr_schedule must be one of {LR_SCHEDULES}, got {c.lr_schedule!r}",
    )
    _check(
        _is_int(c.decay_start_epoch) and c.decay_start_epoch >= 1,
        f"decay_start_epoch must be an integer >= 1, got {c.decay_start_epoch!r}",
    )
    _check(
        _is_number(c.decay_rate) and 0 < c.decay_rate <= 1,
        f"decay_rate must be in (0, 1], got {c.decay_rate!r}",
    )
    _check(
        _is_int(c.plateau_patience) and c.plateau_patience >= 1,
        f"plateau_patience must be an integer >= 1, got {c.plateau_patience!r}",
    )
    _check(
        _is_number(c.min_learning_rate) and c.min_learning_rate >= 0,
        f"min_learning_rate must be >= 0, got {c.min_learning_rate!r}",
    )
    _check(
        _is_int(c.warmup_steps) and c.warmup_steps >= 0,
        f"warmup_steps must be an integer >= 0, got {c.warmup_steps!r}",
    )
    _check(
        isinstance(c.anneal_to_budget, bool)
        or (isinstance(c.anneal_to_budget, (int, float)) and 0 < c.anneal_to_budget <= 1),
        f"anneal_to_budget must be True, False or a fraction in (0, 1], "
        f"got {c.anneal_to_budget!r}",
    )
    _check(
        not (c.anneal_to_budget and c.lr_schedule == "cosine"),
        "anneal_to_budget already anneals over the time budget; use it with the "
        "constant, plateau or step schedule, not cosine",
    )
    _check(
        c.clipnorm is None or (_is_number(c.clipnorm) and c.clipnorm >= 0),
        f"clipnorm must be >= 0 or None, got {c.clipnorm!r}",
    )
    _check(
        c.weight_decay is None or (_is_number(c.weight_decay) and c.weight_decay >= 0),
        f"weight_decay must be >= 0 or None, got {c.weight_decay!r}",
    )


def _check_execution(c):
    """Strategy, XLA, stopping, steps per execution and verbosity."""
    _check(
        c.mixed_precision in (False, True, "auto") and (
            isinstance(c.mixed_precision, (bool, str))),
        f"mixed_precision must be True, False or 'auto', got {c.mixed_precision!r}",
    )
    _check(c.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {c.strategy!r}")
    _check(
        c.jit_compile in ("auto", True, False),
        f"jit_compile must be 'auto', True or False, got {c.jit_compile!r}",
    )
    _check(
        c.patience is None or (_is_int(c.patience) and c.patience >= 1),
        f"patience must be an integer >= 1 or None, got {c.patience!r}",
    )
    _check(
        _is_int(c.steps_per_execution) and c.steps_per_execution >= 1,
        f"steps_per_execution must be an integer >= 1, got {c.steps_per_execution!r}",
    )
    _check(
        (c.verbose in ("auto", 0, 1, 2)) and not isinstance(c.verbose, bool),
        f"verbose must be 0 (quiet), 1, 2 (verbose) or 'auto', got {c.verbose!r}",
    )
