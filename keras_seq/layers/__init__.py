"""Keras layers of keras_seq (recurrent, attention, Transformer blocks, sampled softmax)."""

from keras_seq.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_seq.layers.attention import BahdanauAttention, LuongAttention
from keras_seq.layers.transformer import (
    CachedMultiHeadAttention,
    PositionalEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    scaled_dot_product_attention,
)
from keras_seq.layers.sampled_softmax import SampledSoftmax
