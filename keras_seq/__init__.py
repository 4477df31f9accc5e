"""keras_seq: recurrent and attention sequence models for Keras 3.

Train recurrent language models and attention/Transformer translators with Keras
`fit`, decode them with greedy, sampled or beam search inside one compiled loop,
export them to SavedModel (TF Serving layout) and ONNX, and serve them over HTTP.

`import keras_seq as ks` reaches the whole public API; submodules are imported
on first use, so `import keras_seq` alone does not import TensorFlow (the
`keras-seq` command's `--help` and argument errors stay instant). When Keras is
already imported, `import keras_seq` also imports `ks.layers` and `ks.models`,
registering their classes, so `keras.models.load_model("x.keras")` finds them
(`import keras` before `import keras_seq`, as sorted imports do, or touch
`ks.models` first):

    ks.layers      SimpleRNN / LSTM / GRU (stateful), attention, Transformer blocks,
                   SampledSoftmax
    ks.models      RNNLanguageModel, TransformerLanguageModel, AttentionSeq2Seq,
                   Transformer, GenerativeModel (the contract), load_run
    ks.decoding    decode(), Greedy, BeamSearch, RandomSampler, DecodeOptions
    ks.text        tokenizers and vocabularies (in-graph encode/decode)
    ks.data        loaders and tf.data pipelines (bucketed pairs, TBPTT streams)
    ks.training    compiled training with checkpoints, resume and strategies
    ks.progress    verbosity levels (0 quiet, 1, 2 verbose) and progress bars
    ks.metrics     perplexity, BLEU and chrF (sacrebleu)
    ks.export      SavedModel (TF Serving layout) and ONNX, with parity checks
    ks.serving     TF Serving-compatible HTTP server for exported models
    ks.recipes     typed training recipes (TranslatorRecipe, LanguageModelRecipe)
    ks.pipelines   Translator, TextGenerator and the training pipelines

Example:

```python
import keras_seq as ks

translator = ks.Translator.from_run("runs/translator")
translator.translate(["How are you?"])
```
"""

import importlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Submodules reachable as attributes (imported on first access).
_SUBMODULES = frozenset(
    {
        "data", "datasets", "decoding", "errors", "export", "layers", "metrics",
        "models", "pipelines", "plotting", "progress", "recipes", "runs", "serving", "text",
        "training", "utils",
    }
)
# Top-level names -> the module that defines them.
_NAMES = {
    "DecodeOptions": "keras_seq.decoding",
    "KerasSeqError": "keras_seq.errors",
    "LanguageModelRecipe": "keras_seq.recipes",
    "TextGenerator": "keras_seq.pipelines",
    "Translator": "keras_seq.pipelines",
    "TranslatorRecipe": "keras_seq.recipes",
    "load_run": "keras_seq.models",
    "train_language_model": "keras_seq.pipelines",
    "train_translator": "keras_seq.pipelines",
}

__all__ = sorted(_SUBMODULES | set(_NAMES) | {"__version__"})


if sys.modules.get("keras") is not None:
    # Registers the serializable layers and models with Keras.
    from keras_seq import layers  # noqa: E402,F401
    from keras_seq import models  # noqa: E402,F401


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_seq.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'keras_seq' has no attribute {name!r}")


def __dir__():
    return __all__
