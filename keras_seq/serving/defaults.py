"""The server's default limits and options, in one light module.

`keras_seq.serving.cli.add_arguments` reads them to build its flags without
importing the server itself (Starlette, NumPy), so that `keras-seq --help`
stays fast; the modules that enforce them re-export them.
"""

DEFAULT_PORT = 8501  # as TF Serving's REST port
DEFAULT_POLL_INTERVAL = 1.0  # seconds between scans for new versions
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH = 256  # rows per model call: a request's instances, or a batch's
DEFAULT_BATCH_TIMEOUT_MS = 2.0  # the first request of a batch waits this long for others
DEFAULT_MAX_STRING_LENGTH = 8192  # UTF-8 bytes per input string
DEFAULT_MAX_QUEUE = 64  # requests waiting for a model thread, per model
DEFAULT_QUEUE_TIMEOUT_MS = 2000
DEFAULT_REQUEST_TIMEOUT_MS = 30000
DEFAULT_DRAIN_TIMEOUT_MS = 10000  # on SIGTERM/SIGINT, in-flight requests get this long
