"""The Python API's refusals (issue 13): a table of bad calls.

Each row is one distinct bad call of the public API (`import keras_seq as ks`):
the pipelines (`ks.Translator`, `ks.TextGenerator`, `ks.load_run`, the
training functions) and the recipes. Each must raise one exception of the
listed type whose one-line message names the problem, before any model is
built where it can be. The rows run against two tiny real runs
(`tests/tiny_runs.py`) and copies of them with a damaged config.json.

Also here: the memory estimate against Keras's own parameter count (an
independent oracle), the schema accepting what the training commands write,
and a SavedModel version directory still being copied.
"""

import json
import shutil
from pathlib import Path

import pytest

import keras_seq as ks
from keras_seq import runs
from keras_seq.errors import InputError, RunDirError

import tiny_runs


def _damaged(root, run, name, change):
    path = root / name
    shutil.copytree(run, path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    change(config)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-refusals")
    tr, lm = tiny_runs.translator_run(tmp_path_factory), tiny_runs.lm_run(tmp_path_factory)

    def model_config(key, value):
        return lambda c: c["model"]["config"].__setitem__(key, value)

    damaged = {
        "tr_model_list": (tr, lambda c: c.__setitem__("model", ["rnn"])),
        "tr_no_tokenizer": (tr, lambda c: c.pop("tokenizer")),
        "tr_no_training": (tr, lambda c: c.pop("training")),
        "tr_heads_zero": (tr, model_config("num_layers", 0)),
        "tr_reverse_str": (tr, lambda c: c["data"].__setitem__("reverse", "yes")),
        "lm_no_data": (lm, lambda c: c.pop("data")),
        "lm_vocab_float": (lm, model_config("vocab_size", 22.5)),
        "lm_no_training": (lm, lambda c: c.pop("training")),
        "lm_training_str": (lm, lambda c: c.__setitem__("training", "adam")),
        "lm_generation_bad": (lm, lambda c: c.__setitem__("generation", {"max_length": -1})),
    }
    out = {name: _damaged(root, run, name, change) for name, (run, change) in damaged.items()}
    out.update(tmp=root, tr=tr, lm=lm)
    return out


@pytest.fixture(scope="module")
def translator(paths):
    return ks.Translator.from_run(paths["tr"])


@pytest.fixture(scope="module")
def generator(paths):
    return ks.TextGenerator.from_run(paths["lm"])


# (id, call(paths, translator, generator), exception type, text the message holds)
REFUSED = [
    # -- run directories whose config.json has the wrong shape ------------------------
    ("Translator.from_run model list", lambda p, t, g: ks.Translator.from_run(p["tr_model_list"]),
     RunDirError, "config.json: 'model' must be an object {\"type\": \"rnn\" | \"transformer\", \"config\": {...}}, got a list"),
    ("Translator.from_run no tokenizer", lambda p, t, g: ks.Translator.from_run(p["tr_no_tokenizer"]),
     RunDirError, "config.json has no 'tokenizer' entry"),
    ("load_run num_layers 0", lambda p, t, g: ks.models.load_run(p["tr_heads_zero"]),
     RunDirError, "'model.config.num_layers' must be an integer >= 1, got an integer (0)"),
    ("Translator.from_run reverse str", lambda p, t, g: ks.Translator.from_run(p["tr_reverse_str"]),
     RunDirError, "'data.reverse' must be true or false, got a string ('yes')"),
    ("train_translator resume no training",
     lambda p, t, g: ks.train_translator(None, p["tr_no_training"], resume=True),
     RunDirError, "config.json has no 'training' entry"),
    ("TextGenerator.from_run no data", lambda p, t, g: ks.TextGenerator.from_run(p["lm_no_data"]),
     RunDirError, "config.json has no 'data' entry"),
    ("load_run vocab float", lambda p, t, g: ks.models.load_run(p["lm_vocab_float"]),
     RunDirError, "'model.config.vocab_size' must be an integer >= 1, got a number (22.5)"),
    ("LanguageModelRecipe.from_run training str",
     lambda p, t, g: ks.LanguageModelRecipe.from_run(p["lm_training_str"]),
     RunDirError, "'training' must be an object, got a string ('adam')"),
    ("train_language_model resume no training",
     lambda p, t, g: ks.train_language_model(None, p["lm_no_training"], resume=True),
     RunDirError, "config.json has no 'training' entry"),
    ("TextGenerator.from_run generation -1", lambda p, t, g: ks.TextGenerator.from_run(p["lm_generation_bad"]),
     RunDirError, "'generation.max_length' must be an integer >= 1"),
    ("load_run missing", lambda p, t, g: ks.models.load_run(p["tmp"] / "nowhere"),
     RunDirError, "does not exist; train one with"),
    ("load_run which", lambda p, t, g: ks.models.load_run(p["tr"], which="worst"),
     ValueError, "which must be one of auto, averaged, best, last; got 'worst'"),
    ("Translator.from_run of an lm", lambda p, t, g: ks.Translator.from_run(p["lm"]),
     RunDirError, "is a language-model run, not a translator run"),
    ("TextGenerator.from_run of a translator", lambda p, t, g: ks.TextGenerator.from_run(p["tr"]),
     RunDirError, "is a translator run, not a language-model run"),
    # -- recipes ---------------------------------------------------------------------
    ("TranslatorRecipe units 0", lambda p, t, g: ks.TranslatorRecipe(units=0),
     InputError, "TranslatorRecipe: units must be an integer >= 1; got 0"),
    ("TranslatorRecipe layers 1000", lambda p, t, g: ks.TranslatorRecipe(layers=1000),
     InputError, "TranslatorRecipe: layers must be an integer in 1..64; got 1000"),
    ("TranslatorRecipe attention", lambda p, t, g: ks.TranslatorRecipe(attention="dot"),
     InputError, "attention must be one of bahdanau, luong-dot, luong-general, luong-concat; got 'dot'"),
    ("TranslatorRecipe transformer cell", lambda p, t, g: ks.TranslatorRecipe.transformer(cell="gru"),
     InputError, "cell applies to the rnn model, not to the Transformer"),
    ("LanguageModelRecipe model", lambda p, t, g: ks.LanguageModelRecipe(model="lstmm"),
     InputError, "model must be one of lstm, gru, rnn, transformer; got 'lstmm'"),
    ("LanguageModelRecipe unknown field", lambda p, t, g: ks.LanguageModelRecipe.for_model("lstm", bogus=1),
     InputError, "LanguageModelRecipe: unknown field(s) bogus"),
    ("LanguageModelRecipe layers 65", lambda p, t, g: ks.LanguageModelRecipe(layers=65),
     InputError, "layers must be an integer in 1..64; got 65"),
    ("with_training epochs 0", lambda p, t, g: ks.TranslatorRecipe().with_training(epochs=0),
     ValueError, "TrainConfig: epochs must be an integer >= 1, got 0"),
    ("check_memory units", lambda p, t, g: ks.LanguageModelRecipe(units=100000).check_memory(),
     InputError, "more than this machine's"),
    ("train_translator units 100000",
     lambda p, t, g: ks.train_translator(ks.TranslatorRecipe(units=100000), str(p["tmp"] / "big")),
     InputError, "TranslatorRecipe(rnn, units=100000"),
    ("train_language_model batch 1e8",
     lambda p, t, g: ks.train_language_model(ks.LanguageModelRecipe().with_training(batch_size=10**8),
                                             str(p["tmp"] / "big-lm")),
     InputError, "TB of activations per batch"),
    ("train_language_model recipe str", lambda p, t, g: ks.train_language_model("lstm", str(p["tmp"] / "s")),
     TypeError, "recipe must be a LanguageModelRecipe, got str"),
    ("train_translator recipe str", lambda p, t, g: ks.train_translator("rnn", str(p["tmp"] / "s")),
     TypeError, "recipe must be a TranslatorRecipe, got str"),
    ("RunDir.create bad task", lambda p, t, g: runs.RunDir.create(p["tmp"] / "x", {"task": "nope"}),
     ValueError, "a run config needs 'task' in ('lm', 'translator'); got 'nope'"),
    # -- Translator.translate ----------------------------------------------------------
    ("translate a str", lambda p, t, g: t.translate("I am cold."),
     TypeError, "`sentences` must be a list of strings"),
    ("translate beam 0", lambda p, t, g: t.translate(["I am cold."], beam=0),
     InputError, "the beam size must be an integer >= 1, got 0"),
    ("translate n_best > beam", lambda p, t, g: t.translate(["I am cold."], beam=2, n_best=3),
     InputError, "n_best must be in [1, beam=2], got 3"),
    ("translate max_length 0", lambda p, t, g: t.translate(["I am cold."], max_length=0),
     InputError, "max_length must be an integer >= 1, got 0"),
    ("translate length_penalty -1", lambda p, t, g: t.translate(["I am cold."], length_penalty=-1),
     InputError, "the length penalty must be >= 0, got -1"),
    ("translate an int line", lambda p, t, g: t.translate([3]),
     TypeError, "sentences[0] must be a str, got int"),
    ("translate beam 1e8", lambda p, t, g: t.translate(["I am cold."], beam=10**8),
     InputError, "needs logits of 2900000000 elements a step (100000000 x 29 tokens)"),
    ("translate greedy n_best", lambda p, t, g: t.translate(["I am cold."], greedy=True, n_best=2),
     InputError, "greedy decoding gives one translation; n_best must be 1"),
    # -- TextGenerator.generate ---------------------------------------------------------
    ("generate no prompt", lambda p, t, g: g.generate([]),
     InputError, "no prompt given; pass a str or a list of str"),
    ("generate blank prompt", lambda p, t, g: g.generate("   "),
     InputError, "the prompt is empty"),
    ("generate length 1e6", lambda p, t, g: g.generate("happy", length=10**6),
     InputError, "length 1000000 is above this model's limit of 5000 tokens"),
    ("generate 1e9 samples",
     lambda p, t, g: g.generate("happy", num_samples=10**9, options=ks.DecodeOptions(sample=True)),
     InputError, "decoding 1000000000 sequences of 200 tokens needs logits of 39000000000"),
    ("generate 3.0 TB", lambda p, t, g: g.generate("happy", length=5000, num_samples=5 * 10**7,
                                                   options=ks.DecodeOptions(sample=True)),
     InputError, "decoding 50000000 sequences of 5000 tokens needs about 3.0 TB"),
    ("generate 30000-word prompt", lambda p, t, g: g.generate("happy " * 30000, length=5),
     InputError, "the prompt has 30000 tokens; a recurrent language model reads prompts of at most 5000"),
    ("generate num_samples 0", lambda p, t, g: g.generate("happy", num_samples=0),
     ValueError, "num_samples"),
    ("DecodeOptions beam 0", lambda p, t, g: ks.DecodeOptions(beam_size=0),
     ValueError, "`beam_size` must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("call, kind, message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_with_one_clear_exception(paths, translator, generator, call, kind, message):
    with pytest.raises(kind) as caught:
        call(paths, translator, generator)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text.strip()


def test_the_table_is_long_and_distinct():
    assert len(REFUSED) >= 25
    assert len({r[0] for r in REFUSED}) == len(REFUSED)


# ----------------------------------------------------------------------------
# The memory estimate and the schema, against independent references
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("recipe, vocab", [
    (ks.LanguageModelRecipe.for_model("lstm", units=32, embedding_dim=16, layers=2), 500),
    (ks.LanguageModelRecipe.for_model("gru", units=24, embedding_dim=24, layers=1, tie_embeddings=False), 300),
    (ks.LanguageModelRecipe.transformer(units=32, layers=2, num_heads=2), 400),
])
def test_lm_parameter_estimate_matches_keras(recipe, vocab):
    model = ks.models.build_model("lm", recipe.model_info(vocab))
    model(ks.utils.right_pad([[5, 6, 7]]))  # builds the weights
    estimate = recipe.memory_estimate(vocab)
    assert abs(estimate.parameters - model.count_params()) <= 0.05 * model.count_params()
    assert estimate.total_bytes > 4 * model.count_params() * (2 + estimate.optimizer_slots)


def test_translator_parameter_estimate_matches_keras(paths):
    config = json.loads((Path(paths["tr"]) / "config.json").read_text(encoding="utf-8"))
    model = ks.models.load_run(paths["tr"])
    m = config["model"]["config"]
    recipe = ks.TranslatorRecipe(units=m["units"], embedding_dim=m["embedding_dim"],
                                 max_length=config["data"]["max_length"])
    estimate = recipe.memory_estimate(m["source_vocab_size"], m["target_vocab_size"])
    assert abs(estimate.parameters - model.count_params()) <= 0.15 * model.count_params()


@pytest.mark.parametrize("recipe", [
    ks.TranslatorRecipe.transformer(units=32, layers=2, num_heads=2),
    ks.TranslatorRecipe.transformer(units=32, layers=2, num_heads=2, tokenizer="sentencepiece",
                                    shared_vocab=True),  # one tied table
    ks.TranslatorRecipe.transformer(units=32, layers=2, num_heads=2, tie_embeddings=True,
                                    ff_dim=48),
    ks.TranslatorRecipe(units=16, embedding_dim=8, cell="gru", attention="luong-general", layers=2),
])
def test_translator_family_parameter_estimates_match_keras(recipe):
    import numpy as np

    from keras_seq.pipelines.translation_training import model_info_for

    sizes = (300, 300) if recipe.shared_vocab else (300, 200)
    info = model_info_for(recipe, *sizes, recipe.source_max_length)
    model = ks.models.build_model("translator", info)
    ids = np.array([[5, 6, 3]], "int32")
    model({"source": ids, "target_in": ids})  # builds the weights
    estimate = recipe.memory_estimate(*sizes)
    assert abs(estimate.parameters - model.count_params()) <= 0.15 * model.count_params()


def test_default_recipes_fit_and_absurd_ones_do_not():
    from keras_seq.recipes import memory

    for recipe in (ks.TranslatorRecipe(), ks.TranslatorRecipe.transformer(), ks.LanguageModelRecipe(),
                   ks.LanguageModelRecipe.rnn("lstm", "char"), ks.LanguageModelRecipe.transformer()):
        assert recipe.check_memory().total_bytes < 2 * 10**9  # well under any machine's memory
    with pytest.raises(InputError, match="more than this machine's 1.0 GB of memory"):
        memory.check_fits(ks.LanguageModelRecipe().memory_estimate(10**6), "it", "units",
                          available=10**9)


def test_schema_accepts_what_the_training_commands_write(paths):
    from keras_seq import run_schema

    for run in (paths["tr"], paths["lm"]):
        config = runs.load_run_config(run)
        assert run_schema.validate(config, run) is config


def test_savedmodel_version_waits_for_its_variables(tmp_path):
    from keras_seq.serving.backends import SavedModelBackend

    notes = []
    version = tmp_path / "model" / "1"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights")
    backend = SavedModelBackend()
    assert backend.scan(tmp_path / "model", lambda key, event, **f: notes.append(f["error"])) == {}
    assert notes == ["no variables/variables.index yet; waiting"]
    (version / "variables" / "variables.index").write_bytes(b"index")
    assert backend.scan(tmp_path / "model", lambda *a, **k: None) == {1: version}
