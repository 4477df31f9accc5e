"""Warm-up: every signature called once on a tiny input before a version serves.

The first call of a loaded SavedModel function (or onnxruntime session) pays
for graph instantiation and optimization, seconds for a decoding loop; made
by the first requests, it would hold every request behind it in the queue.
`warm_up` makes that call while the version loads, before it is swapped in.

The inputs are synthesized from each signature's `TensorInfo`s, so this works
for any model: every unknown dimension is 1, strings are `"a"`, floats 0.0,
booleans False and integers 1, else 2, else 3 (token ids: 0 is usually
padding and 1 the unknown token, which a model may refuse to condition on).
A signature that refuses all of these is simply left cold: warm-up never
fails a load. TF Serving's own way, recorded
requests in `assets.extra/tf_serving_warmup_requests`, is not read.
"""

import logging
import time

import numpy as np

from keras_seq.serving.logs import _one_line, log_event

_FILL = {"string": b"a", "float": 0.0, "bool": False}
_INT_FILLS = (1, 2, 3)  # tried in turn


def _tiny(info, int_fill):
    """A tiny array for one input (None if its dtype cannot be synthesized)."""
    if info.kind not in _FILL and info.kind != "int":
        return None
    shape = [1] if info.shape is None else [1 if d is None else d for d in info.shape]
    if info.kind == "string":
        array = np.empty(shape, dtype=object)
        array.fill(_FILL["string"])
        return array
    dtype = "float32" if info.dtype == "bfloat16" else info.dtype
    return np.full(shape, int_fill if info.kind == "int" else _FILL[info.kind], dtype=dtype)


def _call_once(signature):
    """Calls `signature` on the tiny inputs; returns None or the last error."""
    error = None
    takes_ints = any(info.kind == "int" for info in signature.inputs.values())
    for fill in _INT_FILLS if takes_ints else _INT_FILLS[:1]:
        arrays = {key: _tiny(info, fill) for key, info in signature.inputs.items()
                  if key not in getattr(signature, "optional", {})}  # filled in by the call
        if any(array is None for array in arrays.values()):
            return ValueError("an input dtype that cannot be synthesized")
        try:
            signature(arrays)
            return None
        except Exception as caught:  # a cold signature still serves
            error = caught
    return error


def warm_up(version):
    """Calls each signature of `version` once on a tiny synthesized input.

    Args:
        version: a loaded `signatures.Version`.

    Returns:
        The sorted names of the signatures that answered (the others are
        logged at debug level and left cold).

    Example:

    >>> warm_up(ModelRegistry("exported/").backend.load(1, path, None))  # doctest: +SKIP
    ['generate', 'serving_default']
    """
    warmed = []
    for name, signature in sorted(version.signatures.items()):
        start = time.perf_counter()
        error = _call_once(signature)
        if error is not None:
            log_event(logging.DEBUG, "warmup_skipped", version=version.version, signature=name,
                      error=_one_line(f"{type(error).__name__}: {error}", 200))
            continue
        warmed.append(name)
        log_event(logging.DEBUG, "warmup", version=version.version, signature=name,
                  seconds=round(time.perf_counter() - start, 3))
    return warmed
