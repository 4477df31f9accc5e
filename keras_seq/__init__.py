"""keras_seq: recurrent and attention sequence models for Keras 3.

Train recurrent language models and attention/Transformer translators with Keras
`fit`, decode them with greedy, sampled or beam search inside one compiled loop,
export them to SavedModel (TF Serving layout) and ONNX, and serve them over HTTP.

The public API is what this module and its subpackages re-export:

    keras_seq.layers     SimpleRNN / LSTM / GRU (stateful), attention, Transformer blocks
    keras_seq.models     RNNLanguageModel, AttentionSeq2Seq, Transformer
    keras_seq.decoding   decode(), BeamSearch, RandomSampler
    keras_seq.text       tokenizers and vocabularies
    keras_seq.data       loaders and tf.data pipelines
    keras_seq.training   compiled training with checkpoints and resume
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
