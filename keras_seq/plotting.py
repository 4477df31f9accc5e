"""Attention heat maps and training curves (matplotlib, no display needed).

matplotlib comes with the `plot` extra (`pip install "keras-seq[plot]"`);
without it the functions here raise a one-line `MissingExtraError`.

Example:

>>> weights = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
>>> path = plot_attention(weights, ["i", "am", "</s>"], ["je", "suis"],
...                       "attention.png")             # doctest: +SKIP
>>> history = [{"epoch": 1, "loss": 2.1, "val_loss": 2.3, "learning_rate": 1e-3}]
>>> path = plot_training_curves(history, "training-curves.png")  # doctest: +SKIP
"""

import os
import tempfile

import numpy as np

from keras_seq import extras

__all__ = ["attention_figure", "plot_attention", "plot_training_curves",
           "training_curves_figure"]


def _check_inputs(weights, source_tokens, output_tokens):
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(
            f"`weights` must have shape [output_length, source_length], got shape {weights.shape}"
        )
    source_tokens = [str(t) for t in source_tokens]
    output_tokens = [str(t) for t in output_tokens]
    if not source_tokens or not output_tokens:
        raise ValueError(
            "an attention map needs at least one source and one output token, got "
            f"{len(source_tokens)} source and {len(output_tokens)} output tokens"
        )
    rows, cols = len(output_tokens), len(source_tokens)
    if weights.shape[0] < rows or weights.shape[1] < cols:
        raise ValueError(
            f"`weights` has shape {weights.shape} but there are {rows} output and "
            f"{cols} source tokens (need at least [{rows}, {cols}])"
        )
    if not np.all(np.isfinite(weights[:rows, :cols])):
        raise ValueError("`weights` holds NaN or infinite values")
    return weights[:rows, :cols], source_tokens, output_tokens


def attention_figure(weights, source_tokens, output_tokens, title=None):
    """Draws an attention map and returns the matplotlib Figure.

    Source tokens run along the x axis (top), output tokens down the y axis;
    cell `(i, j)` is the weight output token `i` gave source token `j`.

    Args:
        weights: float array `[output_length, source_length]` (extra rows or
            columns beyond the token lists, e.g. padding, are cut off).
        source_tokens: list of str, the x-axis labels.
        output_tokens: list of str, the y-axis labels.
        title: optional title.

    Returns:
        A `matplotlib.figure.Figure` (not attached to pyplot; nothing is shown).

    Raises:
        ValueError: bad shapes or tokens.
        MissingExtraError: matplotlib is not installed (the `plot` extra).

    Example:

    >>> fig = attention_figure(np.eye(2), ["a", "b"], ["x", "y"])
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['a', 'b']
    """
    weights, source_tokens, output_tokens = _check_inputs(weights, source_tokens, output_tokens)
    Figure = extras.require("matplotlib.figure", "plot", "attention plotting").Figure
    rows, cols = weights.shape
    width = min(2.0 + 0.45 * cols, 30.0)
    height = min(1.5 + 0.4 * rows, 30.0)
    fig = Figure(figsize=(width + 1.2, height))  # + room for the colour bar
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(weights.max())),
                      aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(source_tokens, rotation=60, ha="left", rotation_mode="anchor")
    ax.set_yticks(range(rows))
    ax.set_yticklabels(output_tokens)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, pad=30, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


def plot_attention(weights, source_tokens, output_tokens, path, *, title=None, dpi=120):
    """Saves an attention heat map as a PNG (written atomically).

    Args:
        weights: float array `[output_length, source_length]`.
        source_tokens: list of str (x axis).
        output_tokens: list of str (y axis).
        path: the PNG file to write; its directory must exist.
        title: optional title.
        dpi: resolution.

    Returns:
        str, `path`.

    Raises:
        ValueError: bad shapes or tokens; `path` in a missing directory.
        MissingExtraError: matplotlib is not installed (the `plot` extra).
    """
    fig = attention_figure(weights, source_tokens, output_tokens, title=title)
    return _save_png(fig, path, dpi)


# The panels of the training curves: (title, [(history key, label), ...], log scale).
_PANELS = (
    ("loss", [("loss", "training"), ("val_loss", "validation")], False),
    ("validation BLEU", [("val_bleu", "greedy, sample")], False),
    ("learning rate", [("learning_rate", "learning rate")], True),
)


def training_curves_figure(history, title=None):
    """Draws loss, validation loss, BLEU and learning rate per epoch; returns the Figure.

    One panel per quantity the history holds: the training and validation
    losses together, the validation BLEU (when computed) and the learning
    rate (log scale).

    Args:
        history: list of dicts, one per epoch, with "epoch" and any of "loss",
            "val_loss", "val_bleu", "learning_rate" (a run's
            `state["history"]`, or `logs/history.csv` rows).
        title: optional title.

    Returns:
        A `matplotlib.figure.Figure`.

    Raises:
        ValueError: an empty history or rows without "epoch".
        MissingExtraError: matplotlib is not installed (the `plot` extra).

    Example:

    >>> fig = training_curves_figure([{"epoch": 1, "loss": 2.0, "val_loss": 2.2},
    ...                               {"epoch": 2, "loss": 1.5, "val_loss": 1.9}])
    >>> [ax.get_title() for ax in fig.axes]
    ['loss']
    """
    rows = list(history)
    if not rows or any("epoch" not in row for row in rows):
        raise ValueError("a training history needs at least one row, each with an 'epoch'")
    panels = []
    for name, series, log in _PANELS:
        lines = []
        for key, label in series:
            points = [(row["epoch"], _finite(row.get(key))) for row in rows]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                lines.append((label, points))
        if lines:
            panels.append((name, lines, log))
    Figure = extras.require("matplotlib.figure", "plot", "training curves").Figure
    fig = Figure(figsize=(4.0 * max(1, len(panels)), 3.2))
    for i, (name, lines, log) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for label, points in lines:
            ax.plot([e for e, _ in points], [v for _, v in points], marker="o", markersize=3,
                    label=label)
        if log and all(v > 0 for _, points in lines for _, v in points):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        epochs = sorted({e for _, points in lines for e, _ in points})
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
        if len(lines) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins: tight_layout would draw the figure once more.
    fig.subplots_adjust(left=0.1 if len(panels) == 1 else 0.06, right=0.98, bottom=0.16,
                        top=0.82 if title else 0.88, wspace=0.3)
    return fig


def plot_training_curves(history, path, *, title=None, dpi=100):
    """Saves the training curves of `history` as a PNG (written atomically).

    Args:
        history: see `training_curves_figure`.
        path: the PNG file; its directory must exist.
        title: optional title.
        dpi: resolution.

    Returns:
        str, `path`.

    Raises:
        ValueError: a bad history; `path` in a missing directory.
        MissingExtraError: matplotlib is not installed (the `plot` extra).
    """
    return _save_png(training_curves_figure(history, title=title), path, dpi)


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _save_png(fig, path, dpi):
    """Writes `fig` to `path` as a PNG: a temporary file in its directory, then a rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"cannot write {path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; use the usual mode
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
