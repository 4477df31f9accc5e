"""Progress a person can read: verbosity levels, progress bars, timing text.

One verbosity scale for the whole library and the `keras-seq` command:

- `0` (quiet): nothing but errors.
- `1` (normal, the default of the command): a live progress bar when
  stdout is a terminal; when it is not (a log file, a pipe, CI), no bar at all,
  only the one line per epoch that training prints.
- `2` (verbose): adds detail: off a terminal, a one-line summary when a
  bar finishes ("fitting WordTokenizer: 120000/120000 texts in 3s"); in
  training, the learning rate, the validation time and a run header.

`"auto"` and None mean 1; True and False are refused (an argparse flag that
forgot its `const`), so a caller never gets a level it did not ask for.

Bars are Keras's own `keras.utils.Progbar`, so they look like the bar `fit`
draws. The helpers here import Keras only when a bar is really drawn, so
`keras_seq.progress` stays light for the command's argument parsing.

Wiring a command (the CLI maps `--quiet`/`--verbose` onto one `verbose`):

```python
from keras_seq import progress

progress.add_verbosity_arguments(parser)      # -q/--quiet, -v/--verbose
args = parser.parse_args()
verbose = progress.resolve_verbose(args.verbose)   # None -> 1

# translate --input FILE: the translations go to stdout, so the bar to stderr
for batch in progress.track(batches, total=n_lines, size=len, unit="line",
                            label="translating", verbose=verbose,
                            stream=sys.stderr):
    ...
# evaluate: a loop of our own, or Keras's evaluate at the matching level
with progress.progress_bar(n_batches, "evaluating", verbose=verbose,
                           unit="batch") as bar:
    for batch in batches:
        ...
        bar.add(1)
model.evaluate(ds, verbose=progress.keras_verbose(verbose))
# export: a few named steps
with progress.Steps("exporting demo", 3, verbose=verbose) as steps:
    steps.step("writing the SavedModel")
    steps.step("converting to ONNX")
    steps.step("checking parity")
progress.echo("exported to exported/demo/1", verbose)   # stderr, level 1
```

Training takes the same level through `TrainConfig(verbose=...)`; tokenizers
through `tokenizer.fit(texts, verbose=...)` (0, silent, by default).

Example:

>>> resolve_verbose("auto"), resolve_verbose(None), resolve_verbose(2)
(1, 1, 2)
>>> format_duration(5.4), format_duration(185), format_duration(3725)
('5s', '3:05', '1:02:05')
>>> with progress_bar(3, "counting", verbose=0) as bar:
...     bar.add(3)
>>> list(track([1, 2, 3], label="summing", verbose=0))
[1, 2, 3]
"""

import contextlib
import logging
import math
import sys
import time

__all__ = [
    "VERBOSITY",
    "ProgressBar",
    "Steps",
    "add_verbosity_arguments",
    "echo",
    "format_duration",
    "is_terminal",
    "keras_verbose",
    "progress_bar",
    "resolve_verbose",
    "track",
]

# The levels: quiet, normal, verbose.
VERBOSITY = (0, 1, 2)

_logger = logging.getLogger("keras_seq")


def resolve_verbose(verbose):
    """The verbosity level, 0, 1 or 2, of a user-facing `verbose` value.

    Args:
        verbose: 0, 1, 2, "auto" or None ("auto" and None mean 1).

    Returns:
        int: 0 (quiet), 1 (normal) or 2 (verbose).

    Raises:
        ValueError: anything else (True/False included).

    Example:

    >>> resolve_verbose("auto")
    1
    """
    if verbose is None or verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in VERBOSITY:
        raise ValueError(f"verbose must be 0 (quiet), 1, 2 (verbose) or 'auto', got {verbose!r}")
    return int(verbose)


def add_verbosity_arguments(parser):
    """Add `-q/--quiet` and `-v/--verbose` to an argparse parser.

    Both write one attribute, `verbose`: 0 with `--quiet`, 2 with
    `--verbose`, None (the normal level, 1, through `resolve_verbose` or
    `TrainConfig`) without either. The CLI passes
    `resolve_verbose(args.verbose)` to the library (`TrainConfig(verbose=...)`,
    `tokenizer.fit(..., verbose=...)`); no Namespace goes below it.

    Args:
        parser: an `argparse.ArgumentParser` (or subparser).

    Returns:
        The mutually exclusive group holding the two flags.

    Example:

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_verbosity_arguments(parser)
    >>> [parser.parse_args(a).verbose for a in ([], ["-q"], ["--verbose"])]
    [None, 0, 2]
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", dest="verbose", action="store_const", const=0, default=None,
        help="print nothing but errors (no progress bars, no per-epoch lines)",
    )
    group.add_argument(
        "-v", "--verbose", dest="verbose", action="store_const", const=2, default=None,
        help="print more detail (learning rate, timings, summaries off a terminal)",
    )
    return group


def is_terminal(stream=None):
    """Whether `stream` (default: `sys.stdout`) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_duration(seconds):
    """A short wall-clock duration: "42s", "3:05" (m:ss), "1:02:05" (h:mm:ss).

    Example:

    >>> format_duration(59.6), format_duration(60)
    ('1:00', '1:00')
    """
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def echo(message, verbose=1, level=1, file=None):
    """Print a "keras-seq: ..." note to stderr when `verbose >= level`.

    For what a command says besides its results (which go to stdout):
    "resuming at epoch 3", "exported to ...". Errors are not notes: raise.

    Args:
        message: the text.
        verbose: the caller's verbosity (0, 1, 2, "auto" or None).
        level: the lowest verbosity that shows it (1 normal, 2 verbose).
        file: the stream (default `sys.stderr`).

    Example:

    >>> echo("resuming at epoch 3", verbose=0)   # quiet: prints nothing
    """
    if resolve_verbose(verbose) >= level:
        print(f"keras-seq: {message}", file=sys.stderr if file is None else file, flush=True)


def keras_verbose(verbose, terminal=None):
    """Keras's `verbose` argument (of `evaluate`, `predict`, `fit`) for a level.

    0 -> 0; 1 -> Keras's bar (1) on a terminal, else 0 (silent); 2 -> the
    bar on a terminal, else Keras's one line at the end (2).

    Args:
        verbose: 0, 1, 2, "auto" or None.
        terminal: force the terminal decision; None looks at `sys.stdout`.

    Example:

    >>> keras_verbose(1, terminal=False), keras_verbose(2, terminal=False)
    (0, 2)
    >>> model.evaluate(ds, verbose=keras_verbose(verbose))  # doctest: +SKIP
    """
    level = resolve_verbose(verbose)
    terminal = is_terminal() if terminal is None else bool(terminal)
    if level == 0:
        return 0
    if terminal:
        return 1
    return 2 if level >= 2 else 0


def _write_line(text, stream=None):
    """One line to `stream` (default stdout, as Keras's progress output; absl
    log when Keras's interactive logging is off)."""
    keras = sys.modules.get("keras")
    if keras is not None and not keras.config.is_interactive_logging_enabled():
        _logger.info(text)
        return
    stream = sys.stdout if stream is None else stream
    stream.write(text + "\n")
    stream.flush()


class ProgressBar:
    """A progress bar for a job of known (or unknown) size; Keras's `Progbar`.

    What it draws depends on the verbosity and on whether its stream is a
    terminal:

    - on a terminal, `verbose >= 1`: the label on its own line, then Keras's
      live bar (`120/300 ━━━━━━━━━━━━━━━━━━━━ 2s 9ms/text`);
    - off a terminal, `verbose == 2`: one line when the bar closes
      ("label: 300/300 texts in 3s");
    - otherwise nothing.

    Use it as a context manager (or call `close()`): closing finishes the
    bar at the count reached, so a job that stops early shows what really
    ran ("120/300"), not a full bar.

    Args:
        total: the number of units of the whole job, or None if unknown.
        label: what is being done ("fitting WordTokenizer").
        verbose: 0, 1, 2, "auto" or None (see the module docstring).
        unit: the unit counted, singular ("text", "line", "batch").
        terminal: force terminal (True) or log (False) output; None detects
            it from the stream.
        stream: where to draw, default `sys.stdout` (like Keras). Pass
            `sys.stderr` when stdout carries the results (`translate`
            writing translations to stdout), so a redirected output file
            never holds progress text.

    Example:

    >>> with ProgressBar(10, "counting", verbose=0, unit="item") as bar:
    ...     for _ in range(10):
    ...         bar.add(1)
    >>> bar.current
    10
    """

    def __init__(self, total, label="", verbose=1, unit="item", terminal=None, stream=None):
        if total is not None and (isinstance(total, bool) or int(total) != total or total < 0):
            raise ValueError(f"total must be an integer >= 0 or None, got {total!r}")
        self.total = None if total is None else int(total)
        self.label = label
        self.verbose = resolve_verbose(verbose)
        self.unit = unit
        self.stream = stream
        self.terminal = is_terminal(stream) if terminal is None else bool(terminal)
        self.current = 0
        self._start = time.monotonic()
        self._bar = None
        self._closed = False
        if self.verbose >= 1 and self.terminal:
            self.mode = "bar"
        elif self.verbose >= 2:
            self.mode = "line"
        else:
            self.mode = "off"

    def _draw(self, current, values=None, finalize=False):
        """Update Keras's bar (created on first use), on `self.stream`."""
        redirect = self.stream is not None and self.stream is not sys.stdout
        with contextlib.redirect_stdout(self.stream) if redirect else contextlib.nullcontext():
            if self._bar is None:
                import keras

                if self.label:
                    _write_line(self.label)
                self._bar = keras.utils.Progbar(self.total, verbose=1, unit_name=self.unit)
            if finalize and self._bar.target is None:
                self._bar.target = current
            self._bar.update(current, values, finalize=finalize)

    def update(self, current, values=None):
        """Set the count reached to `current` (`values`: Keras's
        `[(name, value)]` averaged on the bar)."""
        self.current = int(current)
        if self.mode == "bar":
            self._draw(self.current, values)

    def add(self, n=1, values=None):
        """Add `n` units to the count."""
        self.update(self.current + n, values)

    def close(self):
        """Finish the bar at the count reached (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._draw(self.current, finalize=True)
        elif self.mode == "line":
            _write_line(self.summary(), self.stream)

    def summary(self):
        """One line: "label: 120/300 texts in 3s"."""
        count = f"{self.current}/{self.total}" if self.total is not None else f"{self.current}"
        unit = self.unit if self.current == 1 and self.total in (None, 1) else f"{self.unit}s"
        took = format_duration(time.monotonic() - self._start)
        prefix = f"{self.label}: " if self.label else ""
        return f"{prefix}{count} {unit} in {took}"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def progress_bar(total, label="", verbose=1, unit="item", terminal=None, stream=None):
    """A `ProgressBar` (see it for the arguments); use it in a `with` block.

    Example:

    >>> with progress_bar(100, "evaluating", verbose=0, unit="sentence") as bar:
    ...     bar.add(100)
    """
    return ProgressBar(total, label, verbose=verbose, unit=unit, terminal=terminal, stream=stream)


def track(iterable, total=None, label="", verbose=1, unit="item", size=None, terminal=None,
          stream=None):
    """Yield the items of `iterable` while a `ProgressBar` counts them.

    Args:
        iterable: the items (a list, a file, a generator, a dataset).
        total: the number of units; None takes `len(iterable)` when it has
            one, else the bar has no target.
        label, verbose, unit, terminal, stream: see `ProgressBar`.
        size: a function giving the units an item counts for (e.g. `len`
            for batches of lines counted in lines); default 1 per item.

    Yields:
        The items, unchanged. The bar closes when the loop ends, breaks or
        raises, showing the count reached.

    Example:

    >>> batches = [["a", "b"], ["c"]]
    >>> [len(b) for b in track(batches, total=3, size=len, unit="line",
    ...                         verbose=0)]
    [2, 1]
    """
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    with ProgressBar(total, label, verbose=verbose, unit=unit, terminal=terminal,
                     stream=stream) as bar:
        for item in iterable:
            yield item
            bar.add(1 if size is None else size(item))


class Steps:
    """Progress of a job made of a few named steps (an export, a demo).

    Each `step(description)` prints "label [2/4] description" when the job
    is shown (verbose >= 1 on a terminal, verbose 2 off one), and closing
    prints "label: done in 42s". A step that takes long is not animated:
    these are for jobs of seconds to a minute whose steps have names.

    Args:
        label: the job ("exporting demo").
        total: the number of steps, or None.
        verbose, terminal, stream: see `ProgressBar`.

    Example:

    >>> with Steps("exporting demo", 2, verbose=0) as steps:
    ...     steps.step("writing the SavedModel")
    ...     steps.step("converting to ONNX")
    >>> steps.done
    2
    """

    def __init__(self, label, total=None, verbose=1, terminal=None, stream=None):
        self.label = label
        self.total = total
        self.stream = stream
        bar = ProgressBar(total, label, verbose=verbose, terminal=terminal, stream=stream)
        self.shown = bar.mode != "off"
        self.done = 0
        self._start = time.monotonic()

    def step(self, description):
        """Start the next step."""
        self.done += 1
        if self.shown:
            of = f"{self.done}/{self.total}" if self.total else f"{self.done}"
            _write_line(f"{self.label} [{of}] {description}", self.stream)

    def close(self):
        if self.shown:
            took = format_duration(time.monotonic() - self._start)
            _write_line(f"{self.label}: done in {took}", self.stream)
        self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        if exc_type is not None:
            self.shown = False  # the error says what happened
        self.close()
        return False
