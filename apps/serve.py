"""Serve exported models over TensorFlow Serving's REST API.

Serves every model under DIR (TF Serving layout, `DIR/NAME/VERSION/saved_model.pb`),
hot-swapping new versions as they appear; with `--onnx`, serves the
`DIR/NAME/onnx/<signature>.onnx` files through onnxruntime instead.

Usage:

    python apps/serve.py exported/ --port 8501
    python apps/serve.py exported/ --port 8502 --onnx

    curl -s localhost:8501/v1/models/lm
    curl -s localhost:8501/v1/models/lm/metadata
    curl -s -d '{"signature_name": "generate", "instances": ["the meaning of"]}' \\
        localhost:8501/v1/models/lm:predict

See `keras_seq.serving` for the API, the limits and how versions are swapped.
"""

import sys

from keras_seq import serving

if __name__ == "__main__":
    sys.exit(serving.main(prog="apps/serve.py"))
