"""`python -m keras_seq.serving DIR [--port P] [--onnx]`: see `keras_seq.serving`."""

import sys

from keras_seq.serving.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m keras_seq.serving"))
