"""Data loading and tf.data pipelines for translation and language modelling.

Three modules, one concern each; everything is importable from here:

- `keras_seq.data.files`: bundled data sets, `source<TAB>target` pairs and
  text files (plain or gzip), separate validation / test files, seeded
  splits. Every problem with a data file raises `keras_seq.errors.DataError`
  with a one-line message naming the file (and the line or byte at fault).
- `keras_seq.data.pairs`: `make_pair_dataset(source_ids, target_ids,
  batch_size | batch_tokens=...)` yields `({"source": [B, S], "target_in":
  [B, T]}, target_out [B, T])` (`source = src + EOS`, `target_in = BOS +
  tgt`, `target_out = tgt + EOS`), batched by similar length (bucketing) to
  keep padding small; `padding_fraction(dataset)` measures the PAD share.
- `keras_seq.data.lm`: `make_lm_dataset(token_ids, batch_size, seq_len,
  doc_starts=None)` yields `({"tokens": [B, T], "reset": bool [B]}, labels
  [B, T])` for truncated backpropagation through time, in stream order.

All ids are int32 and 0 is PAD.

Example:

>>> from keras_seq import data
>>> pairs = data.load_pairs("bundled:fra-eng", max_pairs=100)   # doctest: +SKIP
>>> train, valid, test = data.split_pairs(pairs)                 # doctest: +SKIP
"""

from keras_seq.data.files import BUNDLED_DATA
from keras_seq.data.files import BUNDLED_PREFIX
from keras_seq.data.files import SPLIT_FILE_ROLES
from keras_seq.data.files import load_pairs
from keras_seq.data.files import load_split_file
from keras_seq.data.files import load_text
from keras_seq.data.files import resolve_data
from keras_seq.data.files import split_file_spec
from keras_seq.data.files import split_pairs
from keras_seq.data.files import train_val_test_split
from keras_seq.data.lm import concat_documents
from keras_seq.data.lm import lm_batches_per_epoch
from keras_seq.data.lm import make_lm_dataset
from keras_seq.data.pairs import filter_by_length
from keras_seq.data.pairs import make_pair_dataset
from keras_seq.data.pairs import padding_fraction

__all__ = [
    "BUNDLED_DATA",
    "BUNDLED_PREFIX",
    "SPLIT_FILE_ROLES",
    "concat_documents",
    "filter_by_length",
    "lm_batches_per_epoch",
    "load_pairs",
    "load_split_file",
    "load_text",
    "make_lm_dataset",
    "make_pair_dataset",
    "padding_fraction",
    "resolve_data",
    "split_file_spec",
    "split_pairs",
    "train_val_test_split",
]
