"""Running a `keras-seq` job: quiet TensorFlow import, lazy job import, one-line errors.

    import_tensorflow_quietly()   TensorFlow's C++ start-up chatter hidden
    call_task(module, function, args)
                                  import the job's module lazily and call it
    describe(error)               the one line `keras-seq: error: ...` shows
"""

import importlib
import os
import sys

from keras_seq import errors
from keras_seq.cli.parser import PROG

__all__ = ["call_task", "describe", "import_tensorflow_quietly", "one_line"]


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up chatter hidden.

    TensorFlow's native code prints lines before its logging is configured
    (oneDNN notices, CUDA probing on machines without a GPU) that
    `TF_CPP_MIN_LOG_LEVEL` does not silence. They go to a temporary file while
    TensorFlow loads and probes its devices, and are replayed if that fails.
    """
    if "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe logs here
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def call_task(module_name, function_name, args):
    """Import `module_name` lazily and call `function_name(args)`."""
    if not getattr(args, "debug", False):
        import_tensorflow_quietly()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_name or module_name.startswith(e.name + ".")):
            raise errors.KerasSeqError(
                f"`{PROG} {args.command}` is not available in this build ({module_name} is missing)"
            ) from e
        raise
    function = getattr(module, function_name, None)
    if function is None:
        raise errors.KerasSeqError(
            f"`{PROG} {args.command}` is not available in this build "
            f"({module_name}.{function_name} is missing)"
        )
    return function(args)


def one_line(error):
    """The first line of an error's message, with a hint to `--debug` when it had more."""
    from keras_seq import utils

    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return utils.one_line(error) + (" [...] (run with --debug for details)" if len(lines) > 1 else "")


def describe(error):
    """The text after `keras-seq: error: ` for a user error (a missing extra: how to install it)."""
    from keras_seq import extras

    hint = extras.hint(error)  # a module of an optional extra: how to install it
    if hint is not None:
        return hint
    if isinstance(error, ModuleNotFoundError):
        return f"missing dependency: {error} (install it, or reinstall keras-seq)"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return one_line(error)
