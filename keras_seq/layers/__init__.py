"""Keras layers of keras_seq.

    SimpleRNN, LSTM, GRU           recurrent layers (Keras weights and fast path), stateful
                                   variants with per-row `reset` and an explicit `step`
    BahdanauAttention, LuongAttention
    PositionalEncoding, CachedMultiHeadAttention,
    TransformerEncoderLayer, TransformerDecoderLayer
    SampledSoftmax                 output projection trained with a sampled softmax
"""

from keras_seq.layers.attention import BahdanauAttention, LuongAttention
from keras_seq.layers.cached_attention import (
    CachedMultiHeadAttention,
    scaled_dot_product_attention,
)
from keras_seq.layers.positional_encoding import PositionalEncoding
from keras_seq.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_seq.layers.sampled_softmax import SampledSoftmax
from keras_seq.layers.transformer import (
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
