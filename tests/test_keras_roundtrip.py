"""Every model family: `save("x.keras")` -> `keras.models.load_model` in a fresh
process -> same outputs -> `fit` continues; and `load_run` opens a run."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_seq as ks

VOCAB = 23
BATCH = 4


def _lm_data(rng, length=6):
    tokens = rng.integers(4, VOCAB, size=(BATCH, length)).astype("int32")
    return tokens, np.roll(tokens, -1, axis=1)


def _pair_data(rng):
    source = rng.integers(4, VOCAB, size=(BATCH, 5)).astype("int32")
    target = rng.integers(4, VOCAB, size=(BATCH, 6)).astype("int32")
    return {"source": source, "target_in": target}, np.roll(target, -1, axis=1)


FAMILIES = {
    "rnn_lm": (
        lambda: ks.models.RNNLanguageModel(
            VOCAB, embedding_dim=8, units=8, num_layers=1, stateful=False
        ),
        _lm_data,
    ),
    "rnn_lm_stateful": (
        lambda: ks.models.RNNLanguageModel(
            VOCAB, embedding_dim=8, units=8, num_layers=1, batch_size=BATCH
        ),
        _lm_data,
    ),
    "transformer_lm": (
        lambda: ks.models.TransformerLanguageModel(
            VOCAB, d_model=8, num_heads=2, ff_dim=16, num_layers=1, max_length=16
        ),
        _lm_data,
    ),
    "attention_seq2seq": (
        lambda: ks.models.AttentionSeq2Seq(
            VOCAB, VOCAB, embedding_dim=8, units=8, max_length=16
        ),
        _pair_data,
    ),
    "transformer": (
        lambda: ks.models.Transformer(
            VOCAB, VOCAB, d_model=8, num_heads=2, ff_dim=16, num_layers=1, max_length=16
        ),
        _pair_data,
    ),
}

# Run in one fresh interpreter for every family (one TensorFlow start): load,
# compare outputs, train one more batch.
_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_seq  # registers the serializable classes

    reports = {}
    for family, path, data_path in json.loads(sys.argv[1]):
        data = np.load(data_path, allow_pickle=True).item()
        model = keras.models.load_model(path)
        if hasattr(model, "reset_states"):
            model.reset_states()  # a stateful model: compare from a zero state
        outputs = np.asarray(model(data["x"], training=False))
        history = model.fit(data["x"], data["y"], batch_size=len(data["y"]), epochs=1,
                            verbose=0)
        generated = model.generate(data["prompt"], max_length=3)
        reports[family] = {
            "max_abs_diff": float(np.max(np.abs(outputs - data["outputs"]))),
            "loss": float(history.history["loss"][-1]),
            "optimizer_iterations": int(model.optimizer.iterations.numpy()),
            "generated_shape": list(generated.ids.shape),
        }
    print(json.dumps(reports))
    """
)


def _save_trained(family, directory):
    """Trains `family` one batch, saves it; returns (model path, data path)."""
    build, make_data = FAMILIES[family]
    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    if hasattr(model, "reset_states"):
        model.reset_states()
    outputs = np.asarray(model(x, training=False))
    prompt = x["source"] if isinstance(x, dict) else x
    path = str(directory / f"{family}.keras")
    model.save(path)
    data_path = str(directory / f"{family}.npy")
    np.save(data_path, {"x": x, "y": y, "outputs": outputs, "prompt": prompt[:2]})
    return path, data_path


@pytest.fixture(scope="module")
def fresh_process_reports(tmp_path_factory):
    """{family: report} of one fresh process loading every family's file."""
    directory = tmp_path_factory.mktemp("keras-files")
    jobs = [(family, *_save_trained(family, directory)) for family in sorted(FAMILIES)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(jobs)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_keras_file_round_trip_in_fresh_process(family, fresh_process_reports):
    report = fresh_process_reports[family]
    assert report["max_abs_diff"] < 1e-5
    assert np.isfinite(report["loss"])
    # The optimizer state came back with the file: one step before, one after.
    assert report["optimizer_iterations"] == 2
    assert report["generated_shape"] == [2, 1, 3]


def test_every_model_implements_the_generative_contract():
    for build, _ in FAMILIES.values():
        model = build()
        assert isinstance(model, ks.models.GenerativeModel)
        assert model.task in ("language_model", "translation")
        assert model.output_vocab_size == VOCAB
