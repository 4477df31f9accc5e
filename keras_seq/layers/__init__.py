"""Keras layers of keras_seq (recurrent, attention, Transformer blocks, sampled softmax)."""

from keras_seq.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_seq.layers.attention import BahdanauAttention, LuongAttention
