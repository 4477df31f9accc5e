"""keras-seq serve: the HTTP server over exported models.

Every flag and its range comes from `keras_seq.serving.cli.add_arguments`
(the same as `python -m keras_seq.serving` and `apps/serve.py`); a value out
of range is refused by argparse before anything loads. The job passes the
values to `keras_seq.serving.cli.run_server` as keyword arguments.
"""

from pathlib import Path

from keras_seq import errors
from keras_seq.cli.parser import PACKAGE
from keras_seq.cli.parser import PROG
from keras_seq.cli.parser import subparser

# `run_server` keyword arguments, each the flag's `dest` (see `add_arguments`).
SERVER_OPTIONS = ("host", "port", "onnx", "precision", "poll_interval", "max_body_bytes", "max_batch",
                  "max_string_length", "max_versions", "workers", "max_queue",
                  "queue_timeout_ms", "request_timeout_ms", "warmup", "batching",
                  "batch_timeout_ms", "drain_timeout_ms", "grpc_port")


def add_parsers(subparsers):
    """Adds the serve subcommand."""
    from keras_seq.serving.cli import add_arguments

    p = subparser(
        subparsers,
        "serve",
        "serve an exported model over HTTP",
        "Serve exported models with TF Serving's REST API (and gRPC API with --grpc-port): every "
        "`NAME/VERSION/` under DIR, or one model's directory.",
        [
            "keras-seq serve exported/                  # every exported/NAME/VERSION/",
            "keras-seq serve exported/fra-eng --onnx --port 9000",
            "keras-seq serve exported/ --workers 8 --max-queue 64 --request-timeout-ms 5000",
            "keras-seq serve exported/ --max-batch 32 --batch-timeout-ms 5   # or --no-batching",
            "keras-seq serve exported/ --grpc-port 8500      # TF Serving's gRPC API too",
        ],
    )
    add_arguments(p)
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args):
    """Checks DIR and the serve (and onnx) extras; names the job."""
    from keras_seq import extras

    if not Path(args.dir).exists():
        raise errors.RunDirError(
            f"export directory {args.dir} does not exist; create one with `{PROG} export RUN --to {args.dir}`"
        )
    extras.check("serve", f"`{PROG} serve`")
    if args.precision != "float" and not args.onnx:
        raise errors.InputError(f"--precision {args.precision} serves ONNX graphs: add --onnx")
    if args.onnx:
        extras.check("onnx", f"`{PROG} serve --onnx`")
    return PACKAGE, "_run_serve"


def _run_serve(args):
    """Runs the server: `keras_seq.serving.cli.run_server(DIR, **options)`."""
    from keras_seq.serving.cli import run_server

    run_server(args.dir, **{name: getattr(args, name) for name in SERVER_OPTIONS})
