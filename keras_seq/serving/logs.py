"""Structured logging of the model server: one JSON line per event.

Every event (a request, a version loaded or failed, the server ready) is
logged on the `keras_seq.serving` logger as a single JSON line; `JsonFormatter`
and `configure_logging` send those lines, and any other library's records
(uvicorn's startup messages, say), to stderr as JSON too.
"""

import datetime
import json
import logging
import os
import re
import sys
import time

# One logger for the whole package (not one per submodule): clients filter on
# this name, and the log lines predate the package split.
LOGGER_NAME = "keras_seq.serving"
logger = logging.getLogger(LOGGER_NAME)


class JsonFormatter(logging.Formatter):
    """Formats every record as one JSON line.

    Records logged by this package already carry their fields as a JSON line
    and pass through unchanged; any other record (uvicorn's startup messages,
    say) becomes `{"ts", "level", "logger", "message"}`.

    Example:

    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JsonFormatter())
    """

    def format(self, record):
        if getattr(record, "json_line", False):
            return record.getMessage()
        line = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level=logging.INFO):
    """Sends the server's and uvicorn's logs to stderr as JSON lines.

    Args:
        level: the level of the `keras_seq.serving` and uvicorn loggers.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER_NAME, "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        # uvicorn.error propagates to uvicorn, which holds the one handler.
        log.handlers[:] = [handler] if name != "uvicorn.error" else []
        log.setLevel(level)
        log.propagate = name == "uvicorn.error"


def timestamp(seconds=None):
    """ISO 8601 UTC time with milliseconds (`2026-01-02T03:04:05.678Z`).

    Args:
        seconds: a `time.time()` value; None for now.
    """
    moment = datetime.datetime.fromtimestamp(
        time.time() if seconds is None else seconds, tz=datetime.timezone.utc
    )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_event(level, event, **fields):
    """Logs one structured event as a single JSON line.

    Args:
        level: a `logging` level (`logging.INFO`, ...).
        event: the event's name (`"request"`, `"version_loaded"`, ...).
        **fields: JSON-ready values added to the line.
    """
    if not logger.isEnabledFor(level):
        return
    line = {"ts": timestamp(), "level": logging.getLevelName(level).lower(), "event": event}
    line.update(fields)
    logger.log(level, json.dumps(line, ensure_ascii=False, default=str), extra={"json_line": True})


def _one_line(text, limit=1000):
    """`text` with its white space folded to single spaces, cut at `limit` chars."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# An absolute POSIX path: "/" then at least one component (a "/" after a word
# character, as in "a/b", is inside a relative path and left alone).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"`,;:()\[\]<>]+/?)+")


def scrub_paths(text, base_dir=None):
    """`text` without the server's absolute file paths, for what clients see.

    Paths under `base_dir` become relative to it (`fra/3/saved_model.pb`);
    any other absolute path is cut to its last component (`.../vocab.txt`).
    The log keeps the full message.

    Args:
        text: an error message.
        base_dir: the model base directory (a path), or None.

    Example:

    >>> scrub_paths("no file at /srv/models/fra/3/x.pb", "/srv/models")
    'no file at fra/3/x.pb'
    """
    text = str(text)
    if base_dir is not None:
        prefixes = {os.path.abspath(base_dir), os.path.realpath(base_dir)}
        for prefix in sorted(prefixes, key=len, reverse=True):
            text = text.replace(prefix.rstrip("/") + "/", "").replace(prefix, ".")

    def cut(match):
        last = match.group(0).rstrip("/").rsplit("/", 1)[-1]
        return f".../{last}" if last else "..."

    return _ABSOLUTE_PATH.sub(cut, text)
