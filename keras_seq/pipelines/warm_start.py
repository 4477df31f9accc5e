"""Starting a new translator run from saved weights (`train_translator(warm_start=...)`).

A start file is a Keras `.weights.h5` of a model with the new run's recipe
and vocabularies: another run's checkpoint, or a compact float16 copy written
by `write_start` (what `keras-seq demo` ships). `write_start` also writes a
sidecar `NAME.json` with fingerprints of the vocabularies the weights were
trained with; when it is present, `check_start` compares them with the new
run's tokenizers, so weights never meet a vocabulary they were not trained on.
Nothing here imports TensorFlow at module load.

Example:

```python
import keras_seq as ks

first = ks.train_translator(ks.TranslatorRecipe().with_training(epochs=2), "runs/a")
ks.train_translator(ks.TranslatorRecipe(), "runs/b",
                    warm_start="runs/a/checkpoints/best.weights.h5")
```
"""

import hashlib
import json
import os

from keras_seq import errors
from keras_seq.utils import one_line

__all__ = ["check_start", "load_start", "read_about", "vocabulary_fingerprint", "write_start"]

SUFFIX = ".weights.h5"


def vocabulary_fingerprint(tokenizer):
    """A short hex digest of a tokenizer's vocabulary (its tokens, in order)."""
    return hashlib.sha256("\n".join(tokenizer.vocabulary).encode("utf-8")).hexdigest()[:16]


def sidecar_path(path):
    """`NAME.json` beside `NAME.weights.h5`."""
    path = os.fspath(path)
    stem = path[: -len(SUFFIX)] if path.endswith(SUFFIX) else os.path.splitext(path)[0]
    return stem + ".json"


def read_about(path):
    """The sidecar dict of a start file, or None when it has none."""
    sidecar = sidecar_path(path)
    if not os.path.exists(sidecar):
        return None
    try:
        with open(sidecar, encoding="utf-8") as f:
            about = json.load(f)
    except (OSError, ValueError) as e:
        raise errors.InputError(f"warm start: cannot read {sidecar}: {one_line(e)}") from None
    if not isinstance(about, dict):
        raise errors.InputError(f"warm start: {sidecar} is not a JSON object")
    return about


def check_start(path, source_tokenizer=None, target_tokenizer=None):
    """Checks a start file before anything is trained; returns its sidecar dict (or {}).

    Args:
        path: the `.weights.h5` file.
        source_tokenizer, target_tokenizer: the new run's fitted tokenizers;
            None: only the file's presence is checked.

    Raises:
        InputError: the file is missing or not a `.weights.h5`, or its
            sidecar records other vocabularies.
    """
    path = os.fspath(path)
    if not path.endswith(SUFFIX):
        raise errors.InputError(f"warm start: {path} is not a Keras weights file (*{SUFFIX})")
    if not os.path.isfile(path):
        raise errors.InputError(f"warm start: no such file: {path}")
    about = read_about(path) or {}
    if source_tokenizer is None:
        return about
    for side, tokenizer in (("source", source_tokenizer), ("target", target_tokenizer)):
        expected = about.get(f"{side}_vocabulary")
        if expected is not None and expected != vocabulary_fingerprint(tokenizer):
            raise errors.InputError(
                f"warm start: {path} was trained with another {side} vocabulary than this "
                f"run's ({expected} vs {vocabulary_fingerprint(tokenizer)}); train from scratch "
                "or use the same data and tokenizer settings")
    return about


def load_start(model, path):
    """Loads a start file into a built model (float16 files are cast to the variables).

    Raises:
        InputError: the file does not fit the model (another recipe) or is corrupt.
    """
    try:
        model.load_weights(os.fspath(path))
    except (ValueError, OSError, KeyError) as e:
        raise errors.InputError(
            f"warm start: {path} does not fit this model (another recipe or vocabulary "
            f"size?): {one_line(e)}") from None


def write_start(model, path, source_tokenizer, target_tokenizer, **about):
    """Writes a compact float16 start file and its sidecar, atomically.

    The model's weights only (no optimizer state), each float32 array stored
    as float16: about 2 bytes a weight.

    Args:
        model: the trained translator.
        path: the `.weights.h5` file to write.
        source_tokenizer, target_tokenizer: the vocabularies it was trained with.
        **about: more JSON-serializable facts for the sidecar (e.g. passes,
            data, the command that made it).

    Returns:
        `path`.
    """
    import h5py
    import numpy as np

    path = os.fspath(path)
    if not path.endswith(SUFFIX):
        raise errors.InputError(f"warm start: {path} must end with {SUFFIX}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stem = path[: -len(SUFFIX)]
    full, compact = stem + ".full-tmp" + SUFFIX, path + ".tmp"  # Keras wants the suffix
    model.save_weights(full)
    try:
        with h5py.File(full, "r") as src, h5py.File(compact, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value

            def copy(name, item):
                if name.split("/")[0] == "optimizer":  # a start has no optimizer state
                    return
                if isinstance(item, h5py.Group):
                    group = dst.require_group(name)
                    for key, value in item.attrs.items():
                        group.attrs[key] = value
                    return
                data = item[()]
                if getattr(data, "dtype", None) == np.float32:
                    data = data.astype(np.float16)
                dst.create_dataset(name, data=data)

            src.visititems(copy)
        about = dict(about, source_vocabulary=vocabulary_fingerprint(source_tokenizer),
                     target_vocabulary=vocabulary_fingerprint(target_tokenizer),
                     dtype="float16")
        sidecar = sidecar_path(path)
        with open(sidecar + ".tmp", "w", encoding="utf-8") as f:
            json.dump(about, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(compact, path)
        os.replace(sidecar + ".tmp", sidecar)
    finally:
        for leftover in (full, compact):
            if os.path.exists(leftover):
                os.remove(leftover)
    return path
