"""The server's command line: `python -m keras_seq.serving DIR [--port P] [--onnx]`.

Also behind `keras-seq serve` (`keras_seq.cli`) and `apps/serve.py`.
"""

import argparse
import sys

from keras_seq import errors
from keras_seq.serving.app import DEFAULT_POLL_INTERVAL, create_app
from keras_seq.serving.codec import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_STRING_LENGTH,
)
from keras_seq.serving.logs import configure_logging


def add_arguments(parser):
    """Adds the server's command-line options to an `argparse` parser.

    Args:
        parser: an `argparse.ArgumentParser` (or subparser).

    Returns:
        `parser`.

    Example:

    >>> parser = add_arguments(argparse.ArgumentParser())
    >>> parser.parse_args(["exported/", "--onnx"]).port
    8501
    """
    parser.add_argument("dir", help="model base directory (NAME/VERSION/saved_model.pb)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501, as TF Serving)")
    parser.add_argument("--onnx", action="store_true",
                        help="serve NAME/onnx/*.onnx through onnxruntime instead of SavedModels")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL,
                        help="seconds between scans for new versions (0 disables hot swap)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help="most instances per request")
    parser.add_argument("--max-string-length", type=int, default=DEFAULT_MAX_STRING_LENGTH,
                        help="longest input string in UTF-8 bytes")
    parser.add_argument("--max-versions", type=int, default=None,
                        help="serve only the highest N versions of each model")
    parser.add_argument("--workers", type=int, default=None, help="model-call threads")
    return parser


def serve(args):
    """Runs the server on uvicorn until interrupted.

    Args:
        args: an `argparse.Namespace` with `dir`, and optionally `host`
            (default "127.0.0.1"), `port` (8501), `onnx` (False),
            `poll_interval`, `max_body_bytes`, `max_batch`,
            `max_string_length`, `max_versions` and `workers`.

    Example:

    >>> serve(argparse.Namespace(dir="exported/", port=8502))     # doctest: +SKIP
    """
    import uvicorn

    configure_logging()
    app = create_app(
        args.dir,
        onnx=bool(getattr(args, "onnx", False)),
        max_body_bytes=getattr(args, "max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES,
        max_batch=getattr(args, "max_batch", None) or DEFAULT_MAX_BATCH,
        max_string_length=getattr(args, "max_string_length", None) or DEFAULT_MAX_STRING_LENGTH,
        poll_interval=getattr(args, "poll_interval", DEFAULT_POLL_INTERVAL),
        max_versions=getattr(args, "max_versions", None),
        workers=getattr(args, "workers", None),
    )
    uvicorn.run(
        app,
        host=getattr(args, "host", None) or "127.0.0.1",
        port=getattr(args, "port", None) or 8501,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


def main(argv=None, prog=None):
    """`python -m keras_seq.serving DIR [--port P] [--onnx]`.

    Args:
        argv: the arguments (default `sys.argv[1:]`).
        prog: the program's name in the usage line (default: the script's).

    Returns:
        The exit status: 0, or 2 after printing a `KerasSeqError`.
    """
    parser = add_arguments(argparse.ArgumentParser(
        prog=prog, description="Serve exported models over TensorFlow Serving's REST API."))
    args = parser.parse_args(argv)
    try:
        serve(args)
    except errors.KerasSeqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
