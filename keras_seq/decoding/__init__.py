"""In-graph decoding over a model's `step` function: greedy, sampling and beam search.

Every generative model in keras_seq exposes

    state = model.initial_state(inputs)          # nest of tensors, leading dim N
    logits, state = model.step(tokens, state)    # int32 [N] -> float [N, vocab]

and `decode()` runs that step inside a single `tf.while_loop`, so the same code
runs eagerly, under `tf.function`, under `tf.function(jit_compile=True)`, inside
an exported SavedModel, and converts with tf2onnx into one ONNX `Loop`.

Strategies (how hypotheses are kept) are separate from samplers (how one token
is chosen from a distribution), as in OpenNMT-tf:

- `Greedy()` (or the string `"greedy"`): one hypothesis per row; the most
  likely token each step, or with a `RandomSampler` one random sample per row
  (ancestral, temperature, top-k, top-p).
- `BeamSearch(beam_size, length_penalty, num_return)`: beam search with the GNMT
  length penalty, finished hypotheses kept aside (never extended) and an n-best
  list.

`DecodeOptions` holds the user-facing settings (beam size, length penalty,
n-best, sampling) in one typed record and builds the strategy and sampler from
them; `serialize`/`deserialize` turn strategies and samplers into JSON configs
(used by exports and run directories). Models implement the contract in
`keras_seq.models.GenerativeModel`, whose `generate` calls `decode`.

Settings may also be chosen at run time: `BeamSearch` and `RandomSampler`
accept scalar tensors for their arguments, and `decode(max_length=tensor,
max_length_bound=L)` a tensor length limit (the ids keep `L` columns). That is
how an export takes them per request (`keras_seq.export.signatures`); the same
values give the same tokens as Python settings, and their ranges are checked
in the graph.

Random numbers come from a counter-based hash of (seed, step, row, column)
written with int64 arithmetic only, so a seeded decode gives the same tokens
eagerly, in `tf.function`, under XLA, in a reloaded SavedModel and in
onnxruntime (TensorFlow's own stateless Philox ops give different streams with
and without XLA, and tf2onnx cannot convert them).
"""

from keras_seq.decoding.loop import DecodeResult
from keras_seq.decoding.loop import decode
from keras_seq.decoding.sampling import RandomSampler
from keras_seq.decoding.strategies import BeamSearch
from keras_seq.decoding.strategies import DecodeOptions
from keras_seq.decoding.strategies import Greedy
from keras_seq.decoding.strategies import check_decoding
from keras_seq.decoding.strategies import deserialize
from keras_seq.decoding.strategies import get_strategy
from keras_seq.decoding.strategies import length_penalty
from keras_seq.decoding.strategies import serialize

__all__ = [
    "BeamSearch",
    "DecodeOptions",
    "DecodeResult",
    "Greedy",
    "RandomSampler",
    "check_decoding",
    "decode",
    "deserialize",
    "get_strategy",
    "length_penalty",
    "serialize",
]
