"""Tiny trained run directories, made once per test session, for the refusal tables.

`translator_run(factory)` and `lm_run(factory)` train a recurrent translator and
a recurrent language model of a few thousand weights on a few lines (a couple
of seconds each) and return their run directories; both test modules of bad
inputs (`test_cli_refusals.py`, `test_api_refusals.py`) share them. Nothing here
is faked: they are real runs of the training pipelines.
"""

import contextlib
import io

_CACHE = {}

PAIRS = [
    ("I am cold.", "J'ai froid."), ("I am hot.", "J'ai chaud."), ("I am tired.", "Je suis fatigué."),
    ("You are cold.", "Tu as froid."), ("You are tired.", "Tu es fatigué."), ("He is cold.", "Il a froid."),
    ("She is tired.", "Elle est fatiguée."), ("We are cold.", "Nous avons froid."),
    ("Where is the station?", "Où est la gare ?"), ("Where is the cat?", "Où est le chat ?"),
    ("The cat is here.", "Le chat est ici."), ("The dog is here.", "Le chien est ici."),
] * 6

TEXT = ("Happy families are all alike; every unhappy family is unhappy in its own way.\n\n"
        "Everything was in confusion in the Oblonskys' house. The wife had discovered that "
        "the husband was carrying on an intrigue with a French girl.\n\n") * 20


def _quietly(function, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return function(*args, **kwargs)


def translator_run(factory):
    """A trained recurrent translator's run directory (str)."""
    if "translator" not in _CACHE:
        import keras_seq as ks

        root = factory.mktemp("tiny-translator")
        data = root / "pairs.tsv"
        data.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
        # A few steps of a few thousand weights: with the recipe's unigram output bias its
        # first token would be EOS (empty translations), and the refusal tests need words
        # to tell a translated line from a skipped one.
        recipe = ks.TranslatorRecipe(units=8, embedding_dim=8, max_length=12, min_frequency=1,
                                     unigram_bias=False)
        recipe = recipe.with_training(epochs=1, batch_size=16, verbose=0)
        _quietly(ks.train_translator, recipe, str(root / "run"), data=str(data))
        _CACHE["translator"] = str(root / "run")
    return _CACHE["translator"]


def lm_run(factory):
    """A trained recurrent (LSTM) language model's run directory (str)."""
    if "lm" not in _CACHE:
        import keras_seq as ks

        root = factory.mktemp("tiny-lm")
        data = root / "text.txt"
        data.write_text(TEXT, encoding="utf-8")
        recipe = ks.LanguageModelRecipe.for_model(
            "lstm", epochs=1, batch_size=4, seq_len=8, units=8, embedding_dim=8, layers=1,
            seed=7, verbose=0)
        _quietly(ks.train_language_model, recipe, str(root / "run"), data=str(data))
        _CACHE["lm"] = str(root / "run")
    return _CACHE["lm"]
