"""Keras models of keras_seq; each implements `initial_state` / `step`."""

from keras_seq.models.language_model import RNNLanguageModel
from keras_seq.models.transformer import Transformer, TransformerLanguageModel

from keras_seq.models.seq2seq import (
    AttentionSeq2Seq,
    MaskedTokenAccuracy,
    masked_loss,
    masked_sparse_categorical_crossentropy,
)
