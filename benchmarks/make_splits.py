"""Training, validation and test files drawn from the bundled pairs (issue 15, item 4).

A setting shaped like a Multi30k-sized benchmark with its own official
validation and test files: 29,000 training, 1,014 validation and 1,000 test
pairs drawn (seeded) from `keras_seq.data.load_pairs("bundled:fra-eng")`
(English -> French Tatoeba). Source sentences are grouped as in
`keras_seq.data.split_pairs`: a held-out source never appears in training,
and a held-out source keeps one reference (its first pair, as official
validation and test files have one reference a sentence); training takes
every translation of its sources. The files are `source<TAB>target`, what
`keras-seq train-translator --data / --valid-data / --test-data` read.

    python benchmarks/make_splits.py --out runs/splits
    keras-seq train-translator --data runs/splits/train.tsv --valid-data runs/splits/valid.tsv

Recipes are chosen on `valid.tsv`; `test.tsv` is for a final score only.

Multi30k's sentences are about twice as long as the bundled pairs' (12-13
words against 6); `--min-source-words 8` on the whole Tatoeba file gives
pairs of 9-10 words a side, closer to it (session 9):

    python benchmarks/make_splits.py --data ../shared/data/anki-fra-eng/fra.txt \
        --min-source-words 8 --out runs/splits-long
"""

import os

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import ROOT, argument_parser

import numpy as np


def draw_splits(pairs, sizes, seed):
    """`{"train", "valid", "test"}` lists of pairs of `sizes` (same keys), drawn by `seed`.

    Source groups are taken in a seeded random order: test, then validation
    (one pair a source), then training (every pair of a source; the last group
    is cut to fit).
    """
    groups = {}
    for pair in pairs:
        groups.setdefault(pair[0], []).append(pair)
    order = np.random.default_rng(seed).permutation(len(groups))
    group_list = list(groups.values())
    splits = {"test": [], "valid": [], "train": []}
    names = iter(("test", "valid", "train"))
    name = next(names)
    for g in order:
        while len(splits[name]) >= sizes[name]:
            name = next(names, None)
            if name is None:
                return splits
        group = group_list[g]
        splits[name].extend(group if name == "train" else group[:1])
        del splits[name][sizes[name]:]
    short = {n: len(s) for n, s in splits.items() if len(s) < sizes[n]}
    if short:
        raise ValueError(f"not enough pairs for the sizes asked: got {short}")
    return splits


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default="bundled:fra-eng")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "splits"))
    parser.add_argument("--train", type=int, default=29000)
    parser.add_argument("--valid", type=int, default=1014)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--min-source-words", type=int, default=0,
                        help="keep only pairs whose source has at least this many words")
    args = parser.parse_args(argv)

    from keras_seq import data

    pairs = [(s, t) for s, t in data.load_pairs(args.data)
             if len(s.split()) >= args.min_source_words]
    splits = draw_splits(pairs, {"train": args.train, "valid": args.valid, "test": args.test},
                         args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name, split in splits.items():
        path = os.path.join(args.out, f"{name}.tsv")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(f"{s}\t{t}\n" for s, t in split)
        os.replace(path + ".tmp", path)
        words = np.mean([len(s.split()) for s, _ in split]), np.mean([len(t.split()) for _, t in split])
        print(f"{path}: {len(split)} pairs, {words[0]:.2f} / {words[1]:.2f} words a side")


if __name__ == "__main__":
    main()
