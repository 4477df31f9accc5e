"""Core-TF splitting and joining of text (no tensorflow_text).

`split_words` and `join_words` implement the word rules described in the
`keras_seq.text` docstring; `split_chars` splits into Unicode characters.
They run eagerly or inside a `tf.function`.
"""

import tensorflow as tf

# Private-use code points used as placeholders while splitting words. They are
# removed from the input first, so they can never clash with real text.
_PLACEHOLDERS = r"[\x{E000}-\x{E00F}]"
_NEWLINE_MARK = "\ue00f"
# (joiner character, placeholder, regex of the two neighbours that keep it).
_JOINERS = [
    ("'", "\ue000", r"([\pL\pN\pM])'([\pL\pN])"),
    ("-", "\ue001", r"([\pL\pN\pM])-([\pL\pN])"),
    # Possessive plural: "the boys' club".
    ("'", "\ue000", r"([sS])'([^\pL\pN\pM]|$)"),
    (".", "\ue002", r"([\pL\pN])\.([\pL\pN])"),
    (",", "\ue003", r"(\pN),(\pN)"),
    (":", "\ue004", r"(\pN):(\pN)"),
    ("/", "\ue005", r"([\pL\pN])/([\pL\pN])"),
]
# A French (or Italian, Catalan) elided article, pronoun or conjunction at the
# start of a word: "l'", "d'", "qu'", "jusqu'"... With `split_elisions` it
# becomes a token of its own ("l'homme" -> "l'", "homme"); joining re-attaches
# it. Not preceded by a letter, so "aujourd'hui" and "Tom's" stay whole.
_ELISION = r"(^|[^\pL\pN\pM])([cdjlmnstCDJLMNST]|[Qq]u|[Jj]usqu|[Ll]orsqu|[Pp]uisqu)'"
# (pattern, rewrite) of the split: the apostrophe as its joiner's placeholder,
# so that it stays on the elided word when punctuation is split off.
_ELISION_SPLIT = (_ELISION + r"(\pL)", "\\1\\2" + _JOINERS[0][1] + " \\3")
_WORD_DETOKENIZE_RULES = [
    # A split elision hugs the word after it ("l' homme" -> "l'homme").
    (_ELISION + " ", "\\1\\2'"),
    # Newlines take no spaces around them.
    (r" ?\n ?", "\n"),
    # Paired straight quotes and underscores (italics) hug their content.
    (r'" ([^"\n]*?) "', r'"\1"'),
    (r"' ([^'\n]*?) '", r"'\1'"),
    (r"_ ([^_\n]*?) _", r"_\1_"),
    # Runs of hyphens ("--" dashes) hug each other and their neighbours.
    (r"- -", "--"),
    (r"- -", "--"),
    (r" ?(--+) ?", r"\1"),
    # No space before closing punctuation, none after opening punctuation.
    (r" ([.,;:!?%)\]}»”…‽])", r"\1"),
    (r"([(\[{«“¿¡$]) ", r"\1"),
]


def split_words(strings, lowercase=True, keep_newlines=False, split_elisions=False):
    """Splits strings into word and punctuation tokens with core TF ops.

    The rules are those of the `keras_seq.text` docstring. Runs eagerly or inside a
    `tf.function`.

    Args:
        strings: tf.string tensor of shape [N].
        lowercase: bool. Lower-case with Unicode rules first.
        keep_newlines: bool. Keep each "\\n" as a token.
        split_elisions: bool. Split an elided word ("l'", "d'", "qu'"...)
            from the word it is attached to ("l'homme" -> "l'", "homme").

    Returns:
        A tf.string `tf.RaggedTensor` of shape [N, None].

    Example:

    >>> split_words(tf.constant(["Don't stop, L'homme!"])).to_list()
    [[b"don't", b'stop', b',', b"l'homme", b'!']]
    >>> split_words(tf.constant(["L'homme qu'il voit"]), lowercase=False,
    ...             split_elisions=True).to_list()
    [[b"L'", b'homme', b"qu'", b'il', b'voit']]
    """
    s = tf.strings.regex_replace(strings, _PLACEHOLDERS, "")
    if lowercase:
        s = tf.strings.lower(s, encoding="utf-8")
    s = tf.strings.regex_replace(s, "\u2019", "'")
    s = tf.strings.regex_replace(s, r"\r\n?", "\n")
    # Control characters other than whitespace become spaces; format
    # characters (zero-width space, soft hyphen, BOM) vanish.
    s = tf.strings.regex_replace(s, r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]", " ")
    s = tf.strings.regex_replace(s, r"\p{Cf}", "")
    if split_elisions:
        s = tf.strings.regex_replace(s, *_ELISION_SPLIT)
    # Protect joiners inside words; two passes cover chains of one-letter
    # parts ("c'est-à-dire"), because matches of one pass cannot overlap.
    for _, mark, pattern in _JOINERS:
        for _ in range(2):
            s = tf.strings.regex_replace(s, pattern, "\\1" + mark + "\\2")
    if keep_newlines:
        s = tf.strings.regex_replace(s, "\n", " " + _NEWLINE_MARK + " ")
    s = tf.strings.regex_replace(s, r"[\pP\pS]", " \\0 ")
    for char, mark, _ in _JOINERS:
        s = tf.strings.regex_replace(s, mark, char)
    s = tf.strings.regex_replace(s, r"[\s\p{Z}]+", " ")
    words = tf.strings.split(s)  # splits on whitespace, drops empty strings
    if keep_newlines:
        words = tf.ragged.map_flat_values(
            lambda w: tf.where(tf.equal(w, _NEWLINE_MARK), "\n", w), words
        )
    return words


def join_words(tokens):
    """Joins word tokens into text, re-attaching punctuation (core TF ops).

    Args:
        tokens: tf.string `tf.RaggedTensor` [N, None].

    Returns:
        tf.string [N].

    Example:

    >>> join_words(tf.ragged.constant([["hello", ",", "world", "."]])).numpy()
    array([b'hello, world.'], dtype=object)
    """
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    for pattern, rewrite in _WORD_DETOKENIZE_RULES:
        text = tf.strings.regex_replace(text, pattern, rewrite)
    return text


def split_chars(strings, lowercase=False):
    """Splits strings into Unicode characters (core TF ops).

    Args:
        strings: tf.string [N].
        lowercase: bool. Lower-case with Unicode rules first.

    Returns:
        A tf.string `tf.RaggedTensor` [N, None] of single characters.

    Example:

    >>> split_chars(tf.constant(["Ça"]), lowercase=True).to_list()
    [[b'\xc3\xa7', b'a']]
    """
    if lowercase:
        strings = tf.strings.lower(strings, encoding="utf-8")
    return tf.strings.unicode_split(strings, "UTF-8")
