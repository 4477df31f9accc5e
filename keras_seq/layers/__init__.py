"""Keras layers of keras_seq (recurrent, attention, Transformer blocks, sampled softmax)."""
