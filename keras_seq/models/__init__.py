"""Keras models of keras_seq; each implements `initial_state` / `step`."""

from keras_seq.models.language_model import RNNLanguageModel
