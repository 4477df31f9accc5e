"""Keras models of keras_seq; every one implements `GenerativeModel`.

    RNNLanguageModel            recurrent language model (stateful TBPTT training)
    TransformerLanguageModel    decoder-only Transformer language model
    AttentionSeq2Seq            recurrent encoder-decoder with attention
    Transformer                 encoder-decoder Transformer
    GenerativeModel             the `initial_state` / `step` / `generate` contract
    Ensemble                    several models decoded as one (mean probabilities)
    load_run(run_dir)           the model of a run directory, with its weights
"""

from keras_seq.models.ensemble import Ensemble
from keras_seq.models.generative import GenerativeModel
from keras_seq.models.language_model import RNNLanguageModel
from keras_seq.models.loading import build_model, load_run
from keras_seq.models.seq2seq import (
    AttentionSeq2Seq,
    MaskedTokenAccuracy,
    masked_loss,
    masked_sparse_categorical_crossentropy,
)
from keras_seq.models.transformer import Transformer, TransformerLanguageModel
