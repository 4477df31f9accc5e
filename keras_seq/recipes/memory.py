"""Memory estimates: refuse absurd sizes before a model is built.

A training run holds, at its peak, the model's weights, their gradients and
the optimizer's slots, and the activations of one batch kept for the backward
pass. `MemoryEstimate` counts these from a recipe's sizes (the recipes'
`memory_estimate()`), and `check_fits` refuses an estimate above the
machine's memory (`total_memory()`: physical RAM, or a smaller cgroup limit)
with one line giving the estimate.

What is counted, 4 bytes a float (float32; mixed precision halves some
activations, which only makes the estimate safer):

- parameters: embeddings, recurrent / attention / feed-forward weights and
  the output layer, as the models build them (a few biases and norms left
  out: within a few percent of `model.count_params()`);
- the gradients (one copy) and the optimizer slots (Adam, AdamW: 2; SGD,
  RMSprop and Adagrad: 1);
- the activations of one training batch: per token the embedding, each
  layer's outputs and gates (recurrent) or projections, feed-forward and
  attention weights (Transformer), and the logits three times (logits,
  softmax and their gradient; the sampled softmax's `S + 1` classes instead
  of the vocabulary).

Not counted: TensorFlow's own buffers, the data pipeline and XLA scratch
space, so a run near the limit can still fail; a refused run could never
have run. Decoding (`decoding_estimate`) counts the per-row decoder state,
the logits and the sampling copies of one step, and the output buffers.

Nothing here imports TensorFlow.

Example:

>>> estimate = MemoryEstimate(parameters=10**6, optimizer_slots=2, activations=10**6)
>>> estimate.total_bytes
20000000
>>> estimate.describe()
'about 20 MB (1.0M parameters: 4.0 MB of weights + 12 MB of gradients and optimizer slots; 4.0 MB of activations per batch)'
"""

import os
from typing import NamedTuple

from keras_seq import errors

__all__ = ["MemoryEstimate", "check_decoding", "check_fits", "decoding_estimate", "format_bytes", "total_memory"]

FLOAT_BYTES = 4
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1, "rmsprop": 1, "adagrad": 1}


def format_bytes(n):
    """`n` bytes in B, kB, MB, GB, TB... (powers of 1000), e.g. `'1.5 GB'`."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if n >= 10 or unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.0f} PB"  # unreachable


def _count(n):
    n = float(n)
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


class MemoryEstimate(NamedTuple):
    """Peak memory of training one recipe (see the module docstring).

    Attributes:
        parameters: weights of the model.
        optimizer_slots: floats the optimizer keeps per weight.
        activations: floats of one batch's activations.
    """

    parameters: int
    optimizer_slots: int
    activations: int

    @property
    def weight_bytes(self):
        return FLOAT_BYTES * self.parameters

    @property
    def optimizer_bytes(self):
        """The gradients and the optimizer slots."""
        return FLOAT_BYTES * self.parameters * (1 + self.optimizer_slots)

    @property
    def activation_bytes(self):
        return FLOAT_BYTES * self.activations

    @property
    def total_bytes(self):
        return self.weight_bytes + self.optimizer_bytes + self.activation_bytes

    def describe(self):
        """One line: the total and its parts."""
        return (f"about {format_bytes(self.total_bytes)} ({_count(self.parameters)} parameters: "
                f"{format_bytes(self.weight_bytes)} of weights + "
                f"{format_bytes(self.optimizer_bytes)} of gradients and optimizer slots; "
                f"{format_bytes(self.activation_bytes)} of activations per batch)")


def total_memory():
    """The memory this process may use, in bytes: physical RAM, or a smaller
    cgroup (container) limit; None when unknown."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:
            sizes.append(int(text))
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else None


def check_fits(estimate_bytes, what, hint, *, available=None):
    """Raises a one-line `InputError` when `estimate_bytes` exceed the machine's memory.

    Args:
        estimate_bytes: the estimate, or a `MemoryEstimate`.
        what: what needs it, e.g. "TranslatorRecipe(units=100000)".
        hint: what to lower, e.g. "--units, --layers or --batch-size".
        available: bytes to compare with (default `total_memory()`; no
            check when unknown).
    """
    described = None
    if isinstance(estimate_bytes, MemoryEstimate):
        described, estimate_bytes = estimate_bytes.describe(), estimate_bytes.total_bytes
    available = total_memory() if available is None else available
    if available is None or estimate_bytes <= available:
        return
    raise errors.InputError(
        f"{what} needs {described or 'about ' + format_bytes(estimate_bytes)}, more than this "
        f"machine's {format_bytes(available)} of memory; lower {hint}")


def check_decoding(rows, length, vocab_size, state_floats_per_row, *, available=None):
    """Refuses a decoding call that cannot run: `rows` sequences of `length` tokens.

    Two limits: the memory of `decoding_estimate` against the machine's,
    and the logits of one step (`rows x vocab_size` elements) below 2**31,
    the most elements TensorFlow's int32-indexed kernels handle (beyond it
    they fail or crash the process).

    Raises:
        InputError: one line with the estimate and what to lower.
    """
    hint = "the number of samples, the beam size or the length"
    what = f"decoding {rows} sequences of {length} tokens"
    logits = int(rows) * int(vocab_size)
    if logits >= 2**31:
        raise errors.InputError(
            f"{what} needs logits of {logits} elements a step ({rows} x {vocab_size} tokens), "
            f"more than the 2**31 TensorFlow supports; lower {hint}")
    check_fits(decoding_estimate(rows, length, vocab_size, state_floats_per_row), what, hint,
               available=available)


def decoding_estimate(rows, length, vocab_size, state_floats_per_row):
    """Bytes of one decoding call: `rows` sequences of up to `length` tokens.

    Counts the decoder state (`state_floats_per_row` floats a row), the
    logits of one step with the copies sampling and beam search make (4 x
    the vocabulary a row) and the id, score and output buffers (3 x
    `length` a row).
    """
    per_row = state_floats_per_row + 4 * vocab_size + 3 * length
    return FLOAT_BYTES * int(rows) * int(per_row)


# ----------------------------------------------------------------------------
# Parameter and activation counts of the model families
# ----------------------------------------------------------------------------

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def recurrent_layer(cell, inputs, units):
    """Weights of one recurrent layer (Keras layout; GRU with reset_after)."""
    k = GATES[cell]
    return k * (inputs + units + 1) * units + (k * units if cell == "gru" else 0)


def transformer_layer(width, ff_dim, cross_attention=False):
    """Weights of one Transformer block (attention, feed-forward, layer norms)."""
    attention = 4 * width * width + 4 * width
    block = attention + 2 * width * ff_dim + ff_dim + width + 4 * width
    if cross_attention:
        block += attention + 2 * width
    return block


def transformer_activations(width, ff_dim, heads, length, cross_attention=False):
    """Floats a token keeps for the backward pass in one Transformer block."""
    per_token = 10 * width + 2 * ff_dim + 2 * heads * length
    if cross_attention:
        per_token += 5 * width + 2 * heads * length
    return per_token


def optimizer_slots(name):
    """Floats per weight the optimizer `name` keeps (2 when unknown)."""
    return OPTIMIZER_SLOTS.get(str(name).lower(), 2)
