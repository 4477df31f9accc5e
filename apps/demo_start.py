"""Writes the start weights of `keras-seq demo` (keras_seq/datasets/fra-eng-demo-start.weights.h5).

Trains the demo's recipe (`keras_seq.TranslatorRecipe()`) from scratch on the
demo's own training split (the 30,000 shortest bundled pairs, seeded split:
the demo's validation and test pairs are never trained on) for a fixed
number of passes, with no time cap, and stores the weights in float16 with a
`.json` sidecar (passes, data, validation BLEU, vocabulary fingerprints).
Run it from a source checkout after a change to the recipe, the tokenizer
or the model that makes the demo refuse the bundled file:

    python apps/demo_start.py
    python apps/demo_start.py --passes 5 --out /tmp/start.weights.h5
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras_seq  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_seq  # noqa: F401

from keras_seq.pipelines import demo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=demo.START_PASSES)
    parser.add_argument("--out", default=demo.START_FILE)
    parser.add_argument("--run-dir", default=os.path.join("runs", "demo-start"))
    args = parser.parse_args(argv)
    path = demo.make_start(args.out, args.passes, args.run_dir)
    print(f"wrote {path} and {os.path.splitext(os.path.splitext(path)[0])[0]}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
