"""The server's command line: `python -m keras_seq.serving DIR [--port P] [--onnx]`.

Also behind `keras-seq serve` (`keras_seq.cli`) and `apps/serve.py`.
`add_arguments` owns every server flag and its validation: a value out of
range is refused by argparse with one line naming the flag (exit status 2),
before anything is loaded, and no value is silently replaced. Importing this
module (and the package) does not import the server (Starlette, NumPy):
`keras_seq.cli` builds its parser with it at no cost.
"""

import argparse
import math
import sys

from keras_seq import errors
from keras_seq.serving.defaults import (
    DEFAULT_BATCH_TIMEOUT_MS,
    DEFAULT_DRAIN_TIMEOUT_MS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_STRING_LENGTH,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_QUEUE_TIMEOUT_MS,
    DEFAULT_REQUEST_TIMEOUT_MS,
)

_DAY_MS = 24 * 3600 * 1000


def _integer(low, high, unit="", what="an integer"):
    """An argparse type: an integer in [low, high] (`what` names it in errors)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be {what} in {low}..{high}{unit}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def _seconds(text):
    """An argparse type: a finite number of seconds in 0..86400."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 86400):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds in 0..86400 (0 disables), got {text!r}")
    return value


def _milliseconds(high):
    """An argparse type: a finite number of milliseconds in 0..high (fractions allowed)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number of milliseconds, got {text!r}") from None
        if not (math.isfinite(value) and 0 <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be a number of milliseconds in 0..{high}, got {text!r}")
        return value

    parse.__name__ = "milliseconds"
    return parse


def _host(text):
    """An argparse type: a host name or IP address (no whitespace)."""
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"must be a host name or IP address, got {text!r}")
    return text


def add_arguments(parser):
    """Adds the server's command-line options to an `argparse` parser.

    Every flag of `keras-seq serve`, `apps/serve.py` and `python -m
    keras_seq.serving` is defined here, with its range.

    Args:
        parser: an `argparse.ArgumentParser` (or subparser).

    Returns:
        `parser`.

    Example:

    >>> parser = add_arguments(argparse.ArgumentParser())
    >>> parser.parse_args(["exported/", "--onnx"]).port
    8501
    """
    parser.add_argument("dir", metavar="DIR",
                        help="model base directory (NAME/VERSION/saved_model.pb), or one "
                             "model's directory")
    parser.add_argument("--host", type=_host, default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=_integer(1, 65535, what="a TCP port"),
                        default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}, as TF Serving)")
    parser.add_argument("--grpc-port", type=_integer(1, 65535, what="a TCP port"), default=None,
                        metavar="PORT",
                        help="also serve TF Serving's gRPC API on this port, on the same --host "
                             "(TF Serving uses 8500; default: off)")
    parser.add_argument("--onnx", action="store_true",
                        help="serve NAME/onnx/*.onnx through onnxruntime instead of SavedModels")
    parser.add_argument("--precision", choices=["float", "int8"], default="float",
                        help="with --onnx: the float graphs or the int8 ones (NAME/onnx/int8/, "
                             "from `export --quantize int8`)")
    parser.add_argument("--poll-interval", type=_seconds, metavar="SECONDS",
                        default=DEFAULT_POLL_INTERVAL,
                        help="seconds between scans for new versions (0 disables hot swap; "
                             f"default {DEFAULT_POLL_INTERVAL})")
    parser.add_argument("--max-body-bytes", type=_integer(1, 2**31, " bytes"), metavar="N",
                        default=DEFAULT_MAX_BODY_BYTES,
                        help=f"largest request body (default {DEFAULT_MAX_BODY_BYTES})")
    parser.add_argument("--max-batch", type=_integer(1, 1_000_000), metavar="N",
                        default=DEFAULT_MAX_BATCH,
                        help="most rows in one model call: the instances of a request (more "
                             "are refused with 400), and the rows batching merges "
                             f"(default {DEFAULT_MAX_BATCH})")
    parser.add_argument("--max-string-length", type=_integer(1, 2**30, " bytes"), metavar="N",
                        default=DEFAULT_MAX_STRING_LENGTH,
                        help="longest input string in UTF-8 bytes "
                             f"(default {DEFAULT_MAX_STRING_LENGTH})")
    parser.add_argument("--max-versions", type=_integer(1, 1_000_000), metavar="N", default=None,
                        help="serve only the highest N versions of each model (default: all)")
    parser.add_argument("--workers", type=_integer(1, 1024), metavar="N", default=None,
                        help="request threads; a request waiting for its batch holds one, so "
                             "they also bound the requests one batch merges (default: 4 per "
                             "CPU, at most 32; 32 with batching)")
    parser.add_argument("--max-queue", type=_integer(1, 1_000_000), metavar="N",
                        default=DEFAULT_MAX_QUEUE,
                        help="most requests waiting for a model thread, per model; past it: "
                             f"503 with Retry-After (default {DEFAULT_MAX_QUEUE})")
    parser.add_argument("--queue-timeout-ms", type=_integer(1, _DAY_MS, " ms"), metavar="MS",
                        default=DEFAULT_QUEUE_TIMEOUT_MS,
                        help="longest wait for a model thread; then 503 "
                             f"(default {DEFAULT_QUEUE_TIMEOUT_MS})")
    parser.add_argument("--request-timeout-ms", type=_integer(1, _DAY_MS, " ms"), metavar="MS",
                        default=DEFAULT_REQUEST_TIMEOUT_MS,
                        help="longest time to answer a predict request; then 504 "
                             f"(default {DEFAULT_REQUEST_TIMEOUT_MS})")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not call each signature once while a version loads")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="call the model once per request instead of merging concurrent "
                             "requests to a signature into one call")
    parser.add_argument("--batch-timeout-ms", type=_milliseconds(60000), metavar="MS",
                        default=DEFAULT_BATCH_TIMEOUT_MS,
                        help="how long the first request of a batch waits for others "
                             f"(default {DEFAULT_BATCH_TIMEOUT_MS:g})")
    parser.add_argument("--drain-timeout-ms", type=_integer(0, _DAY_MS, " ms"), metavar="MS",
                        default=DEFAULT_DRAIN_TIMEOUT_MS,
                        help="on SIGTERM or SIGINT: stop accepting, and give the requests in "
                             "flight this long to finish (default "
                             f"{DEFAULT_DRAIN_TIMEOUT_MS})")
    return parser


def _option(args, name, default=None):
    """`args.name`, or `default` when it is missing or None."""
    value = getattr(args, name, None)
    return default if value is None else value


def run_server(base_dir, *, host="127.0.0.1", port=DEFAULT_PORT, onnx=False, precision="float",
               poll_interval=DEFAULT_POLL_INTERVAL, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
               max_batch=DEFAULT_MAX_BATCH, max_string_length=DEFAULT_MAX_STRING_LENGTH,
               max_versions=None, workers=None, max_queue=DEFAULT_MAX_QUEUE,
               queue_timeout_ms=DEFAULT_QUEUE_TIMEOUT_MS,
               request_timeout_ms=DEFAULT_REQUEST_TIMEOUT_MS, warmup=True, batching=True,
               batch_timeout_ms=DEFAULT_BATCH_TIMEOUT_MS,
               drain_timeout_ms=DEFAULT_DRAIN_TIMEOUT_MS, grpc_port=None):
    """Runs the server over `base_dir` on uvicorn until SIGTERM or SIGINT.

    On the signal it stops accepting connections, lets the requests in
    flight finish (for at most `drain_timeout_ms`), then returns.

    The keyword form behind `keras-seq serve`, `python -m keras_seq.serving`
    and `serve(args)`: each option is the value of the flag of the same name
    (see `add_arguments`), and is checked by `create_app`.

    Args:
        base_dir: the model base directory (NAME/VERSION/saved_model.pb), one
            model's directory, or with `onnx=True` a `.onnx` file.
        host: the interface to listen on.
        port: the TCP port, 1..65535.
        onnx: serve the ONNX graphs through onnxruntime.
        precision: with `onnx`, `"float"` or `"int8"`.
        poll_interval, max_body_bytes, max_batch, max_string_length,
            max_versions, workers, max_queue, queue_timeout_ms,
            request_timeout_ms, warmup, batching, batch_timeout_ms: see
            `keras_seq.serving.create_app`.
        drain_timeout_ms: on shutdown, the longest wait for the requests in
            flight; those still running then are cancelled.
        grpc_port: also serve TF Serving's gRPC API on this port of `host`
            (None: REST only).

    Raises:
        ValueError: an option out of range.
        InputError: the server did not start (e.g. the port is in use).

    Example:

    >>> run_server("exported/", port=8502, workers=8)     # doctest: +SKIP
    """
    import uvicorn

    from keras_seq.serving.app import create_app
    from keras_seq.serving.logs import configure_logging

    if not (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535):
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
    if grpc_port is not None and grpc_port == port:
        raise ValueError(f"the gRPC port must differ from the REST port ({port})")
    if not (isinstance(drain_timeout_ms, (int, float)) and not isinstance(drain_timeout_ms, bool)
            and math.isfinite(drain_timeout_ms) and drain_timeout_ms >= 0):
        raise ValueError(f"drain_timeout_ms must be a number of milliseconds >= 0, "
                         f"got {drain_timeout_ms!r}")
    configure_logging()
    app = create_app(
        base_dir, onnx=bool(onnx), precision=precision, max_body_bytes=max_body_bytes, max_batch=max_batch,
        max_string_length=max_string_length, poll_interval=poll_interval,
        max_versions=max_versions, workers=workers, max_queue=max_queue,
        queue_timeout_ms=queue_timeout_ms, request_timeout_ms=request_timeout_ms,
        warmup=warmup, batching=batching, batch_timeout_ms=batch_timeout_ms,
        grpc_port=grpc_port, grpc_host=host,
    )
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None,
                            timeout_graceful_shutdown=drain_timeout_ms / 1000.0)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        pass
    if not server.started:  # bind failed or start-up failed: uvicorn logged why
        raise errors.InputError(
            f"the server did not start on {config.host}:{port} (see the log line above)")


def serve(args):
    """Runs the server of parsed `add_arguments` flags (`run_server` with their values).

    Args:
        args: an `argparse.Namespace` with `dir` and optionally any other
            option of `add_arguments` (a missing or None one takes its
            default; a given one is used as is, and refused by `create_app`
            with a `ValueError` if out of range).

    Example:

    >>> serve(argparse.Namespace(dir="exported/", port=8502))     # doctest: +SKIP
    """
    run_server(
        args.dir,
        host=_option(args, "host", "127.0.0.1"),
        port=_option(args, "port", DEFAULT_PORT),
        onnx=bool(getattr(args, "onnx", False)),
        precision=_option(args, "precision", "float"),
        poll_interval=_option(args, "poll_interval", DEFAULT_POLL_INTERVAL),
        max_body_bytes=_option(args, "max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        max_batch=_option(args, "max_batch", DEFAULT_MAX_BATCH),
        max_string_length=_option(args, "max_string_length", DEFAULT_MAX_STRING_LENGTH),
        max_versions=_option(args, "max_versions"),
        workers=_option(args, "workers"),
        max_queue=_option(args, "max_queue", DEFAULT_MAX_QUEUE),
        queue_timeout_ms=_option(args, "queue_timeout_ms", DEFAULT_QUEUE_TIMEOUT_MS),
        request_timeout_ms=_option(args, "request_timeout_ms", DEFAULT_REQUEST_TIMEOUT_MS),
        warmup=_option(args, "warmup", True),
        batching=_option(args, "batching", True),
        batch_timeout_ms=_option(args, "batch_timeout_ms", DEFAULT_BATCH_TIMEOUT_MS),
        drain_timeout_ms=_option(args, "drain_timeout_ms", DEFAULT_DRAIN_TIMEOUT_MS),
        grpc_port=_option(args, "grpc_port"),
    )


def main(argv=None, prog=None):
    """`python -m keras_seq.serving DIR [--port P] [--onnx]`.

    Args:
        argv: the arguments (default `sys.argv[1:]`).
        prog: the program's name in the usage line (default: the script's).

    Returns:
        The exit status: 0, or 2 after a usage error or a refused value
        (printed as one line).
    """
    parser = add_arguments(argparse.ArgumentParser(
        prog=prog, description="Serve exported models over TensorFlow Serving's REST and gRPC APIs."))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or a usage error already printed
        return exit.code if isinstance(exit.code, int) else 2
    try:
        serve(args)  # the Namespace stops here: run_server takes plain values
    except (errors.KerasSeqError, ValueError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
