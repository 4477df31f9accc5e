"""Data shipped with keras_seq (sources and licences in README.md beside this file).

`BUNDLED_DATA` maps each name usable as `bundled:NAME` on the command line and in
`keras_seq.data` to its file here. This module imports nothing heavy, so the
command line can check names before TensorFlow loads.
"""

import os

DATASETS_DIR = os.path.dirname(os.path.abspath(__file__))
# Name -> file in this directory. (sunspots.csv is read by apps/forecast.py only.)
BUNDLED_DATA = {
    "fra-eng": "fra-eng.tsv.gz",
    "anna-karenina": "anna-karenina.txt.gz",
}
