"""Reserved ids and tokens, vocabulary checks and the vocabulary file.

`vocab.txt` has one token per line in id order; backslash, newline, carriage
return, tab and other non-printable characters are escaped (`\\\\`, `\\n`,
`\\r`, `\\t`, `\\uXXXXXX`).
"""

import os
import tempfile

from keras_seq.errors import RunDirError

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer.json"
_FORMAT_VERSION = 1


def _escape_token(token):
    out = []
    for ch in token:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() or (ch.isspace() and ch != " "):
            out.append(f"\\u{ord(ch):06x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape_token(line, where):
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = line[i + 1 : i + 2]
        if nxt in ("\\", "n", "r", "t"):
            out.append({"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[nxt])
            i += 2
        elif nxt == "u" and len(line) >= i + 8:
            try:
                out.append(chr(int(line[i + 2 : i + 8], 16)))
            except ValueError:
                raise RunDirError(f"{where}: bad escape {line[i:i + 8]!r}") from None
            i += 8
        else:
            raise RunDirError(f"{where}: bad escape {line[i:i + 2]!r}")
    return "".join(out)


def _write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        from keras_seq.runs import follow_umask

        follow_umask(fd)  # mkstemp's 0600 -> what the umask gives
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _check_vocabulary(vocabulary):
    vocabulary = list(vocabulary)
    for i, token in enumerate(vocabulary):
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"vocabulary[{i}] must be a non-empty str, got {token!r}"
            )
    if vocabulary[: len(RESERVED_TOKENS)] != RESERVED_TOKENS:
        raise ValueError(
            f"the vocabulary must start with the reserved tokens "
            f"{RESERVED_TOKENS}, got {vocabulary[:len(RESERVED_TOKENS)]}"
        )
    seen = set()
    for token in vocabulary:
        if token in seen:
            raise ValueError(f"duplicate token in the vocabulary: {token!r}")
        seen.add(token)
    return vocabulary


def _write_vocabulary_file(path, vocabulary):
    """Write `vocabulary` to `path` atomically, one escaped token per line."""
    _write_atomic(path, "".join(_escape_token(t) + "\n" for t in vocabulary))


def _read_vocabulary_file(path):
    """The tokens of a vocabulary file, in id order.

    Raises:
        RunDirError: the file is not UTF-8 or holds a bad escape.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            raw = f.read()
    except UnicodeDecodeError as e:
        raise RunDirError(f"{path}: not UTF-8 ({e.reason})") from None
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # A "\r" in a token is escaped, so a raw one is a CRLF line end.
    return [
        _unescape_token(line[:-1] if line.endswith("\r") else line, f"{path}:{i + 1}")
        for i, line in enumerate(lines)
    ]
