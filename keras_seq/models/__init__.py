"""Keras models of keras_seq; each implements `initial_state` / `step`."""
