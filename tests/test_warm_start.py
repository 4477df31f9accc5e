"""A new translator run from saved weights (`train_translator(warm_start=)`), and the unigram bias.

`write_start` stores float16 weights with a sidecar of vocabulary
fingerprints; `train_translator` checks the file before reading data and the
fingerprints against the run's tokenizers, records the start in config.json,
and trains from those weights. `unigram_bias` starts a new model's output
bias at the log frequencies of the training targets.
"""

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import keras_seq as ks
from keras_seq import runs
from keras_seq.errors import InputError
from keras_seq.pipelines import translation_training
from keras_seq.pipelines import warm_start

PAIRS = [("I am cold.", "J'ai froid."), ("I am hot.", "J'ai chaud."),
         ("You are cold.", "Tu as froid."), ("He is tired.", "Il est fatigué."),
         ("Where is the cat?", "Où est le chat ?"), ("The dog is here.", "Le chien est ici.")] * 8


def _quiet(fn, *args, **kwargs):
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def _recipe(**train):
    recipe = ks.TranslatorRecipe(units=8, embedding_dim=8, max_length=10, min_frequency=1,
                                 val_fraction=0.2, test_fraction=0.1)
    return recipe.with_training(**dict(dict(epochs=1, batch_size=16, verbose=0), **train))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    data = root / "pairs.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    result = _quiet(ks.train_translator, _recipe(), str(root / "first"), data=str(data))
    translator = result["translator"]
    start = warm_start.write_start(translator.model, str(root / "start.weights.h5"),
                                   translator.source_tokenizer, translator.target_tokenizer,
                                   passes=1)
    return {"root": root, "data": str(data), "translator": translator, "start": start}


def test_write_start_stores_float16_weights_and_vocabulary_fingerprints(first_run):
    import h5py

    translator, start = first_run["translator"], first_run["start"]
    about = json.loads(open(warm_start.sidecar_path(start), encoding="utf-8").read())
    assert about["passes"] == 1 and about["dtype"] == "float16"
    assert about["source_vocabulary"] == warm_start.vocabulary_fingerprint(
        translator.source_tokenizer)
    dtypes = set()
    with h5py.File(start, "r") as f:
        f.visititems(lambda name, item: dtypes.add(str(item.dtype))
                     if isinstance(item, h5py.Dataset) else None)
    assert "float16" in dtypes and "float32" not in dtypes  # (int64: the dropout seeds)
    with h5py.File(start, "r") as f:
        assert "optimizer" not in f  # weights only
    assert not [p for p in first_run["root"].iterdir() if "tmp" in p.name]


def test_a_warm_started_run_starts_from_the_file(first_run, tmp_path):
    # A learning rate of ~0 keeps the weights where they started: the file's, to float16.
    run = str(tmp_path / "second")
    result = _quiet(ks.train_translator, _recipe(learning_rate=1e-12, warmup_steps=0), run,
                    data=first_run["data"], warm_start=first_run["start"])
    trained = {w.path: w.numpy() for w in first_run["translator"].model.weights}
    for weight in result["translator"].model.weights:
        np.testing.assert_allclose(weight.numpy(), trained[weight.path], rtol=2e-3, atol=2e-3)
    recorded = runs.load_run_config(run)["warm_start"]
    assert recorded["path"].endswith("start.weights.h5") and recorded["passes"] == 1


@pytest.mark.parametrize("name, message", [
    ("missing.weights.h5", "no such file"),
    ("start.h5", "is not a Keras weights file"),
])
def test_a_bad_start_file_is_refused_before_the_data_is_read(tmp_path, name, message):
    with pytest.raises(InputError, match=message):
        ks.train_translator(_recipe(), str(tmp_path / "run"), data=str(tmp_path / "no.tsv"),
                            warm_start=str(tmp_path / name))
    assert not (tmp_path / "run").exists()


def test_a_start_of_another_vocabulary_is_refused(first_run, tmp_path):
    other = tmp_path / "other.tsv"
    other.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS[::-1] + [("A b.", "C d.")] * 3),
                     encoding="utf-8")
    with pytest.raises(InputError, match="another source vocabulary"):
        _quiet(ks.train_translator, _recipe(), str(tmp_path / "run"), data=str(other),
               warm_start=first_run["start"])


def test_a_start_of_another_recipe_is_refused(first_run, tmp_path):
    recipe = _recipe()
    import dataclasses

    wider = dataclasses.replace(recipe, units=12)
    with pytest.raises(InputError, match="does not fit this model"):
        _quiet(ks.train_translator, wider, str(tmp_path / "run"), data=first_run["data"],
               warm_start=first_run["start"])


def test_warm_start_and_resume_are_exclusive(first_run, tmp_path):
    with pytest.raises(InputError, match="warm_start starts a new run"):
        ks.train_translator(None, str(tmp_path / "run"), resume=True,
                            warm_start=first_run["start"])


def test_target_counts_count_every_label_and_one_eos_a_pair(first_run):
    translator = first_run["translator"]
    setup = translation_training._Setup(
        source_tokenizer=translator.source_tokenizer, target_tokenizer=translator.target_tokenizer,
        splits={"train": PAIRS[:6]}, run_config={}, config=None)
    vocab = translator.target_tokenizer.vocab_size
    counts = translation_training.target_counts(setup, vocab)
    ids = translator.target_tokenizer.encode([t for _, t in PAIRS[:6]])
    assert counts.shape == (vocab,)
    assert counts.sum() == sum(len(t) for t in ids) + 6
    assert counts[ks.text.EOS_ID] == 6


def test_unigram_bias_starts_the_output_bias_at_the_log_frequencies(first_run, tmp_path,
                                                                     monkeypatch):
    import dataclasses

    from keras_seq import training

    built = []
    real_train = training.train

    def capture(build, *args, **kwargs):
        built.append(build())
        return real_train(build, *args, **kwargs)

    monkeypatch.setattr(training, "train", capture)
    recipe = dataclasses.replace(_recipe(), unigram_bias=True)
    _quiet(ks.train_translator, recipe, str(tmp_path / "run"), data=first_run["data"])
    bias = np.exp(np.asarray(built[0]._output_head().full_bias()))
    assert bias.sum() == pytest.approx(1.0, abs=1e-4)
    eos = bias[ks.text.EOS_ID]
    assert eos == bias.max()  # every training target ends with EOS
    assert runs.load_run_config(str(tmp_path / "run"))["recipe"]["unigram_bias"] is True
