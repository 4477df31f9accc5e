"""Evaluation metrics: BLEU and chrF (sacrebleu) and perplexity.

BLEU and chrF are computed by sacrebleu on *detokenized* text, the way
translation results are usually reported, so the figures are comparable with
other systems scored on the same references: the hypotheses are the strings
`keras-seq translate` prints and the references are the raw target sentences
of the data file. sacrebleu's default BLEU tokenizer (`13a`) splits
punctuation off words, so "Salut !" and "Salut!" score the same; scoring is
case-sensitive unless `lowercase=True`.

Example:

>>> round(corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 6)
100.0
>>> round(corpus_chrf(["the cat"], ["the cat"]), 1)
100.0
>>> round(perplexity(2.0), 3)
7.389
"""

import math

__all__ = [
    "TranslationScores",
    "corpus_bleu",
    "corpus_chrf",
    "perplexity",
    "translation_scores",
]


def _check_corpus(hypotheses, references):
    """Validates two parallel lists of strings; returns them as lists."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, (str, bytes)):
            raise TypeError(
                f"`{name}` must be a list of strings (one per sentence), got a "
                f"single {type(value).__name__}; wrap it in a list"
            )
    hypotheses = list(hypotheses)
    references = list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: "
            "they must be parallel (one reference per hypothesis)"
        )
    if not hypotheses:
        raise ValueError("cannot score an empty corpus (no sentences)")
    for name, items in (("hypotheses", hypotheses), ("references", references)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(
                    f"`{name}[{i}]` must be a str, got {type(item).__name__}: {item!r:.40}"
                )
    return hypotheses, references


def corpus_bleu(hypotheses, references, *, lowercase=False, tokenize="13a"):
    """Corpus BLEU (0-100) of detokenized hypotheses against one reference each.

    Args:
        hypotheses: list of str, the system's translations.
        references: list of str, one reference per hypothesis.
        lowercase: case-insensitive BLEU.
        tokenize: sacrebleu tokenizer (`"13a"`, the WMT default; `"intl"`,
            `"char"`, `"none"`, ...).

    Returns:
        float, sacrebleu's corpus BLEU score.

    Example:

    >>> round(corpus_bleu(["a b c d e"], ["a b c d f"]), 1)
    66.9
    """
    import sacrebleu

    hypotheses, references = _check_corpus(hypotheses, references)
    return float(
        sacrebleu.corpus_bleu(
            hypotheses, [references], lowercase=lowercase, tokenize=tokenize
        ).score
    )


def corpus_chrf(hypotheses, references, *, word_order=0):
    """Corpus chrF (0-100) (chrF++ with `word_order=2`), via sacrebleu.

    Args:
        hypotheses: list of str.
        references: list of str, one per hypothesis.
        word_order: 0 for chrF, 2 for chrF++.

    Returns:
        float.
    """
    import sacrebleu

    hypotheses, references = _check_corpus(hypotheses, references)
    return float(
        sacrebleu.corpus_chrf(hypotheses, [references], word_order=word_order).score
    )


class TranslationScores(dict):
    """`{"bleu": float, "chrf": float, "sentences": int}` with attribute access."""

    __getattr__ = dict.__getitem__

    def __repr__(self):
        return (
            f"TranslationScores(bleu={self['bleu']:.2f}, chrf={self['chrf']:.2f}, "
            f"sentences={self['sentences']})"
        )


def translation_scores(hypotheses, references, *, lowercase=False):
    """BLEU and chrF of a corpus at once.

    Args:
        hypotheses: list of str.
        references: list of str, one per hypothesis.
        lowercase: case-insensitive BLEU (chrF is always case-sensitive).

    Returns:
        `TranslationScores` with `bleu`, `chrf` and `sentences`.

    Example:

    >>> translation_scores(["the cat"], ["the cat"])
    TranslationScores(bleu=0.00, chrf=100.00, sentences=1)
    """
    hypotheses, references = _check_corpus(hypotheses, references)
    return TranslationScores(
        bleu=corpus_bleu(hypotheses, references, lowercase=lowercase),
        chrf=corpus_chrf(hypotheses, references),
        sentences=len(hypotheses),
    )


def perplexity(mean_cross_entropy):
    """Perplexity from a mean per-token cross-entropy in nats.

    `exp(mean_cross_entropy)`, capped to avoid overflow (a loss above 700
    nats gives `exp(700)`).

    Args:
        mean_cross_entropy: float >= 0 (the masked loss of a model).

    Returns:
        float.
    """
    value = float(mean_cross_entropy)
    if math.isnan(value):
        raise ValueError("perplexity of a NaN loss (training diverged?)")
    if value < 0:
        raise ValueError(f"a cross-entropy is >= 0, got {value}")
    return math.exp(min(value, 700.0))
