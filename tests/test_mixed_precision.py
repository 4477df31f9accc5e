"""Mixed-precision (bfloat16 on CPU) training of both translator families.

A run trained with `TrainConfig(mixed_precision=True)` computes in bfloat16
with float32 variables, so its checkpoints are float32: `--resume` trains on
in the same policy, and `Translator.from_run`, `translate` and `export` build
the model in float32 and must load those checkpoints. Oracles: the policy the
run recorded, the dtypes of the reloaded model and its checkpoint, and the
export's own parity check (Keras model vs the SavedModel in a fresh process
vs onnxruntime).
"""

import json

import h5py
import pytest
from tiny_runs import PAIRS, _quietly

import keras_seq as ks
from keras_seq.training import TrainConfig, cpu_has_bf16, precision_policy

NO_BF16 = ("this CPU has no AMX-BF16 / AVX512-BF16 (bfloat16 would be emulated, and "
           "--mixed-precision auto stays float32 here)")

SIZES = {
    "rnn": dict(units=8, embedding_dim=8, sampled_softmax=8),  # the sampled softmax in bf16
    "transformer": dict(units=8, num_heads=2, layers=1),
}


def _float_datasets(path):
    """dtype names of every float dataset of an HDF5 weights file."""
    found = set()

    def visit(_, item):
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
            found.add(item.dtype.name)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mixed") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    return str(path)


def test_auto_follows_the_cpu_flags(tmp_path):
    flags = tmp_path / "cpuinfo"
    flags.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert not cpu_has_bf16(str(flags))
    flags.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert cpu_has_bf16(str(flags))
    assert not cpu_has_bf16(str(tmp_path / "missing"))
    assert precision_policy(False) == "float32"
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):  # a GPU gets float16 whatever the CPU
        assert precision_policy("auto") == ("mixed_bfloat16" if cpu_has_bf16() else "float32")


def test_config_and_flag_refuse_other_values():
    from keras_seq import cli

    with pytest.raises(ValueError, match="mixed_precision must be True, False or 'auto'"):
        TrainConfig(mixed_precision="bf16")
    for flag, value in ((["--mixed-precision"], True), (["--mixed-precision", "auto"], "auto"),
                        (["--mixed-precision", "off"], False)):
        args, _ = cli.prepare(["train-translator", *flag])
        assert cli._translator_recipe(args).train.mixed_precision == value


@pytest.fixture(scope="module", params=["rnn", "transformer"])
def bf16_run(request, pairs_file, tmp_path_factory):
    """`(run_dir, family)`: a tiny run trained one epoch in mixed precision (the RNN's then
    resumed for a second). Skips its tests on a CPU without native bfloat16, where "auto"
    trains in float32 and there is no mixed-precision run to check."""
    if not cpu_has_bf16():
        pytest.skip(NO_BF16)
    family = request.param
    recipe = ks.TranslatorRecipe.for_model(family, max_length=12, min_frequency=1,
                                           **SIZES[family])
    recipe = recipe.with_training(epochs=1, batch_size=16, verbose=0, mixed_precision="auto")
    run = tmp_path_factory.mktemp(f"bf16-{family}") / "run"
    _quietly(ks.train_translator, recipe, str(run), data=pairs_file)
    if family == "rnn":  # resuming is the same code for both families: one is enough here
        _quietly(ks.train_translator, run_dir=str(run), resume=True, train_overrides={"epochs": 2})
    return run, family


def test_bf16_run_resumes_and_translates_in_float32(bf16_run):
    bf16_run, family = bf16_run
    config = json.loads((bf16_run / "config.json").read_text())
    assert config["training"]["mixed_precision"] == "auto"
    state = json.loads((bf16_run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == (2 if family == "rnn" else 1)
    assert state["precision"] == precision_policy("auto") != "float32"
    assert _float_datasets(bf16_run / "checkpoints" / "best.weights.h5") == {"float32"}

    translator = ks.Translator.from_run(str(bf16_run))
    assert translator.model.compute_dtype == "float32"
    assert isinstance(translator.translate(["I am cold."])[0].text, str)


@pytest.mark.slow  # SavedModel + ONNX export and the parity check: 20-40 s a family
def test_bf16_run_exports_with_parity(bf16_run, tmp_path):
    bf16_run, _ = bf16_run
    translator = ks.Translator.from_run(str(bf16_run))
    path, report = translator.export(str(tmp_path / "export"), max_length=8,
                                     parity_sentences=["I am cold.", "Where is the cat?"])
    assert {"saved_model", "onnx"} <= set(report), report  # export raises on a mismatch
