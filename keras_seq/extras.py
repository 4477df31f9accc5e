"""Optional dependencies ("extras") and the one-line error when one is missing.

`pip install keras-seq` installs what training, evaluation, translation and
SavedModel export need. The rest comes with an extra:

    extra        modules                        for
    onnx         tf2onnx, onnx, onnxruntime,    ONNX export and parity, `serve --onnx`
                 onnxruntime-extensions
    serve        starlette, uvicorn, grpcio,    the model server (`keras-seq serve`,
                 tensorflow-serving-api         REST and gRPC)
    plot         matplotlib                     attention maps (`translate --plot`)
    tensorboard  tensorboard                    the TensorBoard viewer for `RUN/logs`
    all          every extra above              (`test` adds pytest and httpx)

Code that needs an optional module imports it with `require`, which raises a
`MissingExtraError` whose message is one line with the command to run; `check`
raises the same before any work starts, and `missing_message` lets an
optional step be skipped with a note.
Nothing here imports TensorFlow.

Example:

>>> from keras_seq import extras
>>> extras.message("matplotlib", "plot", "attention plotting")
'attention plotting needs matplotlib: pip install "keras-seq[plot]"'
>>> pyplot = extras.require("matplotlib.pyplot", "plot", "attention plotting")  # doctest: +SKIP
"""

import importlib
import importlib.util

from keras_seq import errors

__all__ = ["EXTRAS", "check", "hint", "install_command", "message", "missing_message", "require"]

# extra -> the top-level modules it provides (kept equal to pyproject.toml's
# [project.optional-dependencies] by tests/test_extras.py).
EXTRAS = {
    "onnx": ("tf2onnx", "onnx", "onnxruntime", "onnxruntime_extensions"),
    "serve": ("starlette", "uvicorn", "grpc", "tensorflow_serving"),
    "plot": ("matplotlib",),
    "tensorboard": ("tensorboard",),
}


def install_command(extra):
    """The shell command that installs `extra`: `pip install "keras-seq[extra]"`."""
    return f'pip install "keras-seq[{extra}]"'


def message(module, extra, feature):
    """The one-line message `<feature> needs <module>: pip install "keras-seq[<extra>]"`."""
    return f"{feature} needs {module}: {install_command(extra)}"


def require(module, extra, feature):
    """Imports and returns `module`, or explains in one line how to install it.

    Args:
        module: str, the module to import (e.g. `"matplotlib.figure"`).
        extra: str, the extra that provides it (a key of `EXTRAS`).
        feature: str, what needs it, as the subject of the message (e.g.
            `"attention plotting"`).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the package of `module` is not installed. Other
            import failures (a broken installation) propagate unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = module.partition(".")[0]
        if _find_spec(package) is None:
            raise errors.MissingExtraError(message(package, extra, feature)) from error
        raise  # the package is there but broken (e.g. one of its dependencies is missing)


def missing_message(extra, feature):
    """The one-line message for the first module of `extra` not installed, else None.

    Looks the modules up without importing them, so callers can skip an
    optional step (and say why) before doing any work.

    Args:
        extra: str, a key of `EXTRAS`.
        feature: str, what needs the extra (the subject of the message).

    Returns:
        str or None.

    Example:

    >>> note = missing_message("onnx", "ONNX export")   # doctest: +SKIP
    >>> export_translator(..., onnx=note is None)        # doctest: +SKIP
    """
    for module in EXTRAS[extra]:
        if _find_spec(module) is None:
            return message(module, extra, feature)
    return None


def check(extra, feature):
    """Raises `MissingExtraError` unless every module of `extra` is installed.

    For a check before any work is done (e.g. `serve --onnx` before loading
    models); nothing is imported.

    Args:
        extra: str, a key of `EXTRAS`.
        feature: str, what needs the extra (the subject of the message).

    Raises:
        MissingExtraError: with `missing_message(extra, feature)`.
    """
    note = missing_message(extra, feature)
    if note is not None:
        raise errors.MissingExtraError(note)


def hint(error, feature="this command"):
    """One-line message for a `ModuleNotFoundError` of an extra's module, else None.

    A fallback for import sites that do not use `require`: the `keras-seq`
    command turns such an error into the install command.

    Args:
        error: an exception.
        feature: str, the subject of the message.

    Returns:
        str or None (not a missing module of an extra).
    """
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    root = error.name.partition(".")[0]
    for extra, modules in EXTRAS.items():
        if root in modules:
            return message(root, extra, feature)
    return None


def _find_spec(module):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a broken or import-blocked package
        return None
