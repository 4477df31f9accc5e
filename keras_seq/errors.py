"""Exceptions raised by keras_seq for problems a user can fix.

Every error that is the user's to fix (a bad data file, a broken run directory,
an empty prompt) is a `KerasSeqError`. Its message is complete on its own and
fits on one line: the `keras-seq` command prints `error: <message>` and exits
with a non-zero status instead of showing a stack trace. Programming errors
(wrong argument types, bad shapes passed by calling code) stay ordinary
`TypeError`/`ValueError`.

The subclasses that describe bad values also derive from `ValueError`, so code
that already catches `ValueError` keeps working.

Example:

>>> from keras_seq import errors
>>> try:
...     raise errors.DataError("data.tsv: line 3 has no tab")
... except errors.KerasSeqError as e:
...     print(f"error: {e}")
error: data.tsv: line 3 has no tab
"""


class KerasSeqError(Exception):
    """Base class of the errors a keras_seq user can act on.

    The message is shown to command-line users as a single line, so it must
    name the problem and, where there is one, the file or value at fault.
    """


class DataError(KerasSeqError, ValueError):
    """A data file or data specification is unusable.

    Raised for a missing file, an unknown `bundled:` name, an empty file, a
    file that is not UTF-8, a malformed line (e.g. a translation pair with no
    tab), or a corpus too small for the requested batches.
    """


class RunDirError(KerasSeqError):
    """A run directory or saved artifact is missing, incomplete or inconsistent.

    Raised when a run directory, checkpoint, saved tokenizer directory or
    export cannot be read back (missing `config.json`, a vocabulary file that
    does not match its config, an unknown tokenizer type, ...).
    """


class InputError(KerasSeqError, ValueError):
    """Bad user input to a model or tokenizer, such as an empty prompt.

    Also raised when a tokenizer is used before it has a vocabulary.
    """


class MissingExtraError(KerasSeqError, ImportError):
    """A feature needs an optional dependency that is not installed.

    The message names the feature, the missing module and the exact command
    that installs it, on one line, e.g. `attention plotting needs matplotlib:
    pip install "keras-seq[plot]"`. Raised by `keras_seq.extras.require`. It is also an
    `ImportError`, so code that treats a missing optional import as "feature
    off" keeps working.
    """
