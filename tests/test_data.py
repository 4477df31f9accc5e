"""Tests for keras_seq.data: loaders, splits and tf.data pipelines."""

import collections
import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_seq import data
from keras_seq import text
from keras_seq.errors import DataError
from keras_seq.errors import KerasSeqError
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID


@pytest.fixture(scope="module")
def all_pairs():
    return data.load_pairs("bundled:fra-eng")


@pytest.fixture(scope="module")
def encoded_pairs(all_pairs):
    # Every 15th pair: 4000 pairs of all lengths (the file is length-sorted).
    pairs = all_pairs[::15]
    src_tok = text.WordTokenizer().fit([p[0] for p in pairs])
    tgt_tok = text.WordTokenizer().fit([p[1] for p in pairs])
    return src_tok.encode([p[0] for p in pairs]), tgt_tok.encode([p[1] for p in pairs])


def _message(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message  # shown to CLI users as one line
    assert isinstance(excinfo.value, KerasSeqError)
    return message


# ----------------------------------------------------------------------------
# Loading.


def test_resolve_bundled_and_errors(tmp_path):
    for name, filename in data.BUNDLED_DATA.items():
        path = data.resolve_data(f"bundled:{name}")
        assert os.path.isfile(path) and os.path.basename(path) == filename
        assert os.path.dirname(path) == os.path.join(
            os.path.dirname(os.path.dirname(data.__file__)), "datasets"
        )
    with pytest.raises(DataError) as e:
        data.resolve_data("bundled:fra-deu")
    assert _message(e) == (
        "unknown bundled data set 'fra-deu'; known: bundled:anna-karenina, "
        "bundled:fra-eng"
    )
    missing = str(tmp_path / "nope.tsv")
    with pytest.raises(DataError) as e:
        data.load_pairs(missing)
    assert _message(e) == f"cannot read data: no such file: {missing}"
    with pytest.raises(DataError) as e:
        data.load_text(str(tmp_path))
    assert "is a directory" in _message(e)


def test_load_bundled_pairs_and_text(all_pairs):
    assert len(all_pairs) == 60000
    assert all_pairs[0] == ("Hi.", "Salut !")
    assert all(s and t and "\t" not in s + t for s, t in all_pairs)
    assert data.load_pairs("bundled:fra-eng", max_pairs=3) == all_pairs[:3]
    anna = data.load_text("bundled:anna-karenina")
    assert len(anna) == 1985223  # see keras_seq/datasets/README.md
    assert anna.startswith("Chapter 1\n\n\nHappy families are all alike;")
    assert "\r" not in anna


def test_load_pairs_formats(tmp_path):
    content = "Hello\tBonjour\textra column\r\n\r\n  \nGo.\t Va ! \r\nLast\tDernier"
    plain = tmp_path / "pairs.tsv"
    plain.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))  # with a BOM
    packed = tmp_path / "pairs.tsv.gz"
    packed.write_bytes(gzip.compress(content.encode("utf-8")))
    expected = [("Hello", "Bonjour"), ("Go.", "Va !"), ("Last", "Dernier")]
    assert data.load_pairs(str(plain)) == expected
    assert data.load_pairs(str(packed)) == expected
    assert data.load_pairs(str(plain), max_pairs=2) == expected[:2]
    text_file = tmp_path / "story.txt"
    text_file.write_bytes("One\r\ntwo\rthree\n".encode("utf-8"))
    assert data.load_text(str(text_file)) == "One\ntwo\nthree\n"


def test_load_errors_name_the_file_and_line(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as e:
        data.load_pairs(str(empty))
    assert _message(e) == f"{empty} is empty"
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"  \n\r\n")
    with pytest.raises(DataError) as e:
        data.load_text(str(blank))
    assert _message(e) == f"{blank} is empty"

    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes("Hi\tSalut\nSummer\tÉté\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        data.load_pairs(str(latin1))
    assert _message(e) == (
        f"{latin1} is not UTF-8: invalid byte 0xc9 at line 2, column 8 "
        f"(byte offset 16); re-save the file as UTF-8"
    )
    with pytest.raises(DataError, match="invalid byte 0xc9 at line 2"):
        data.load_text(str(latin1))
    packed = tmp_path / "latin1.tsv.gz"
    packed.write_bytes(gzip.compress(latin1.read_bytes()))
    with pytest.raises(DataError) as e:
        data.load_pairs(str(packed))
    assert "at line 2, column 8 (decompressed byte offset 16)" in _message(e)

    no_tab = tmp_path / "no_tab.tsv"
    no_tab.write_text("a\tb\n\nc d\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        data.load_pairs(str(no_tab))
    assert _message(e) == (
        f"{no_tab}: line 3 has no tab (expected source<TAB>target): 'c d'"
    )
    no_target = tmp_path / "no_target.tsv"
    no_target.write_text("a\tb\nc\t \n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        data.load_pairs(str(no_target))
    assert _message(e) == f"{no_target}: line 2 has an empty target"

    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"a\tb\n" * 100)[:-12])
    with pytest.raises(DataError) as e:
        data.load_pairs(str(broken))
    assert _message(e).startswith(f"{broken}: not a valid gzip file")


# ----------------------------------------------------------------------------
# Splits.


def test_train_val_test_split_is_disjoint_and_deterministic():
    items = list(range(1000))
    train, val, test = data.train_val_test_split(items, 0.1, 0.05, seed=3)
    assert (len(train), len(val), len(test)) == (850, 100, 50)
    assert sorted(train + val + test) == items
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert train == sorted(train)  # input order kept
    assert data.train_val_test_split(items, 0.1, 0.05, seed=3) == (train, val, test)
    assert data.train_val_test_split(items, 0.1, 0.05, seed=4)[2] != test
    with pytest.raises(ValueError, match="must be < 1"):
        data.train_val_test_split(items, 0.5, 0.5)


def test_split_pairs_keeps_sources_together(all_pairs):
    pairs = all_pairs[:6000]
    train, val, test = data.split_pairs(pairs, 0.05, 0.05, seed=0)
    assert len(train) + len(val) + len(test) == len(pairs)
    assert len(val) >= 300 and len(test) >= 300
    assert collections.Counter(train + val + test) == collections.Counter(pairs)
    sources = [{s for s, _ in split} for split in (train, val, test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    # Some sources have several translations in this sample: kept together.
    counts = collections.Counter(s for s, _ in pairs)
    assert any(counts[s] > 1 for s in sources[2])
    assert data.split_pairs(pairs, 0.05, 0.05, seed=0) == (train, val, test)


# ----------------------------------------------------------------------------
# Translation pipeline.


def _rows(batch_array):
    """Rows of a right-padded batch without the padding; checks it is right-padded."""
    rows = []
    for row in batch_array.tolist():
        n = sum(1 for v in row if v != 0)
        assert all(v != 0 for v in row[:n]) and all(v == 0 for v in row[n:])
        rows.append(row[:n])
    return rows


def _epoch(ds):
    out = []
    for features, target_out in ds:
        out.append(
            (features["source"].numpy(), features["target_in"].numpy(), target_out.numpy())
        )
    return out


def test_pair_batches_layout_bos_eos_padding():
    src = [[5, 6, 7], [8], [9, 10]]
    tgt = [[11], [12, 13, 14], [15, 16]]
    ds = data.make_pair_dataset(src, tgt, batch_size=2, shuffle=False, bucket=False)
    spec = ds.element_spec
    assert spec[0]["source"].dtype == tf.int32 and spec[1].dtype == tf.int32
    batches = _epoch(ds)
    assert [b[0].tolist() for b in batches] == [[[5, 6, 7, 3], [8, 3, 0, 0]], [[9, 10, 3]]]
    assert [b[1].tolist() for b in batches] == [[[2, 11, 0, 0], [2, 12, 13, 14]], [[2, 15, 16]]]
    assert [b[2].tolist() for b in batches] == [[[11, 3, 0, 0], [12, 13, 14, 3]], [[15, 16, 3]]]
    # Brute-force padding fraction: 2 + 2 + 2 zeros over 3 * 8 + 3 * 3 slots.
    assert data.padding_fraction(ds) == pytest.approx(6 / 33)


def test_bucketed_batches_hold_every_pair_once_with_small_padding(encoded_pairs):
    src, tgt = encoded_pairs
    ds = data.make_pair_dataset(src, tgt, batch_size=32, seed=7)
    batches = _epoch(ds)
    assert len(batches) == ds.cardinality().numpy() == -(-len(src) // 32)
    seen = collections.Counter()
    for source, target_in, target_out in batches:
        # Each batch is trimmed to its longest row.
        assert (source[:, -1] != 0).any() and (target_out[:, -1] != 0).any()
        for s, ti, to in zip(_rows(source), _rows(target_in), _rows(target_out)):
            assert s[-1] == EOS_ID and EOS_ID not in s[:-1]
            assert ti[0] == BOS_ID and to[-1] == EOS_ID
            assert ti[1:] == to[:-1]
            seen[(tuple(s[:-1]), tuple(to[:-1]))] += 1
    assert seen == collections.Counter(zip(map(tuple, src), map(tuple, tgt)))

    plain = data.make_pair_dataset(src, tgt, batch_size=32, seed=7, bucket=False)
    bucketed_waste = data.padding_fraction(ds)
    plain_waste = data.padding_fraction(plain)
    assert bucketed_waste < plain_waste / 3


def test_pair_dataset_is_deterministic_given_the_seed(encoded_pairs):
    src, tgt = encoded_pairs

    def first_epoch(seed, bucket=True):
        return _epoch(data.make_pair_dataset(src, tgt, 64, seed=seed, bucket=bucket))

    def same(a, b):
        return len(a) == len(b) and all(
            x.shape == y.shape and (x == y).all() for p, q in zip(a, b) for x, y in zip(p, q)
        )

    a = first_epoch(1)
    assert same(a, first_epoch(1))
    assert not same(a, first_epoch(2))
    assert same(first_epoch(1, bucket=False), first_epoch(1, bucket=False))
    ds = data.make_pair_dataset(src, tgt, 64, seed=1)
    epoch1, epoch2 = _epoch(ds), _epoch(ds)
    assert same(epoch1, a) and not same(epoch1, epoch2)  # reshuffled per epoch


def test_length_filtering_and_drop_remainder(encoded_pairs):
    src, tgt = encoded_pairs
    kept = [(s, t) for s, t in zip(src, tgt) if len(s) + 1 <= 8 and len(t) + 1 <= 10]
    ds = data.make_pair_dataset(
        src, tgt, 16, max_source_length=8, max_target_length=10, drop_remainder=True
    )
    assert ds.num_filtered == len(src) - len(kept) > 0
    assert ds.num_examples == len(kept)
    assert ds.element_spec[1].shape.as_list() == [16, None]
    batches = _epoch(ds)
    assert len(batches) == ds.cardinality().numpy() == len(kept) // 16
    for source, target_in, target_out in batches:
        assert source.shape[0] == 16
        assert source.shape[1] <= 8 and target_in.shape[1] <= 10
        assert target_in.shape == target_out.shape
    with pytest.raises(DataError, match="no translation pair to batch"):
        data.make_pair_dataset(src, tgt, 16, max_source_length=2, max_target_length=2)


def test_token_batches_hold_every_pair_once_within_the_token_budget(encoded_pairs):
    src, tgt = encoded_pairs
    budget = 96
    ds = data.make_pair_dataset(src, tgt, batch_tokens=budget, seed=7)
    batches = _epoch(ds)
    # The count of batches is known before the epoch: per length L, ceil(pairs / (budget // L)).
    lengths = collections.Counter(max(len(s), len(t)) + 1 for s, t in zip(src, tgt))
    expected = sum(-(-n // max(1, budget // L)) for L, n in lengths.items())
    assert len(batches) == ds.cardinality().numpy() == expected
    seen = collections.Counter()
    rows_by_width = collections.defaultdict(set)
    for source, target_in, target_out in batches:
        width = max(source.shape[1], target_out.shape[1])
        assert source.shape[0] * width <= budget  # padding included
        rows_by_width[width].add(source.shape[0])
        for s, to in zip(_rows(source), _rows(target_out)):
            seen[(tuple(s[:-1]), tuple(to[:-1]))] += 1
    assert seen == collections.Counter(zip(map(tuple, src), map(tuple, tgt)))
    # Short pairs come in larger batches than long ones.
    largest = max(rows_by_width, key=lambda w: max(rows_by_width[w]))
    assert largest < max(rows_by_width)
    assert max(rows_by_width[largest]) > max(rows_by_width[max(rows_by_width)])
    # Each length's batches are full but its last.
    for width, rows in rows_by_width.items():
        assert max(rows) == min(lengths[width], budget // width)
    # Shuffled: the widths do not come in order, and another epoch comes in another order.
    order = [max(b[0].shape[1], b[2].shape[1]) for b in batches]
    assert order != sorted(order) and order != sorted(order, reverse=True)
    assert order != [max(b[0].shape[1], b[2].shape[1]) for b in _epoch(ds)]


def test_token_batches_refuse_conflicting_settings(encoded_pairs):
    src, tgt = encoded_pairs
    with pytest.raises(ValueError, match="batch_size or batch_tokens"):
        data.make_pair_dataset(src, tgt, 32, batch_tokens=100)
    with pytest.raises(ValueError, match="batch_size or batch_tokens"):
        data.make_pair_dataset(src, tgt)
    with pytest.raises(ValueError, match="batch_tokens must be an int >= 1"):
        data.make_pair_dataset(src, tgt, batch_tokens=0)
    with pytest.raises(ValueError, match="neither drop_remainder nor bucket=False"):
        data.make_pair_dataset(src, tgt, batch_tokens=100, drop_remainder=True)
    # A pair longer than the budget makes a batch alone.
    ds = data.make_pair_dataset([[4] * 9, [5]], [[6], [7]], batch_tokens=4, shuffle=False)
    assert sorted(b[0].shape[0] for b in _epoch(ds)) == [1, 1]


def test_pair_dataset_rejects_bad_ids():
    with pytest.raises(ValueError, match="differ in length"):
        data.make_pair_dataset([[4]], [[5], [6]], 2)
    with pytest.raises(ValueError, match=r"source_ids\[1\]` holds id 0"):
        data.make_pair_dataset([[4], [5, 0]], [[5], [6]], 2)
    with pytest.raises(TypeError, match="integer token ids"):
        data.make_pair_dataset([["a"]], [[5]], 2)


# ----------------------------------------------------------------------------
# Language-model pipeline.


@pytest.fixture(scope="module")
def anna_stream():
    anna = data.load_text("bundled:anna-karenina")[:60000]
    paragraphs = [p for p in anna.split("\n\n") if p.strip()]
    tok = text.CharTokenizer().fit(paragraphs)
    ids, starts = data.concat_documents(tok.encode(paragraphs, add_eos=True))
    return tok, paragraphs, ids, starts


def test_concat_documents(anna_stream):
    tok, paragraphs, ids, starts = anna_stream
    assert len(starts) == len(paragraphs) and starts[0] == 0
    assert ids.dtype == np.int32
    for k in (0, 1, len(paragraphs) - 1):
        end = starts[k + 1] if k + 1 < len(starts) else len(ids)
        assert tok.decode([ids[starts[k]:end].tolist()]) == [paragraphs[k]]
        assert ids[end - 1] == EOS_ID
    flat, st = data.concat_documents([[4, 5], [], [6]])
    assert flat.tolist() == [4, 5, 6] and st.tolist() == [0, 2]


def test_lm_batches_continue_row_by_row(anna_stream):
    _, _, ids, starts = anna_stream
    batch_size, seq_len = 8, 50
    ds = data.make_lm_dataset(ids, batch_size, seq_len, doc_starts=starts)
    assert ds.element_spec[0]["tokens"].shape.as_list() == [batch_size, seq_len]
    assert ds.element_spec[0]["reset"].dtype == tf.bool
    batches = [(f["tokens"].numpy(), f["reset"].numpy(), y.numpy()) for f, y in ds]
    n = data.lm_batches_per_epoch(len(ids), batch_size, seq_len)
    assert len(batches) == n == ds.cardinality().numpy() == ds.num_batches
    assert n == (len(ids) // batch_size - 1) // seq_len
    row_len = len(ids) // batch_size
    start_set = set(starts.tolist())
    for i, (tokens, reset, labels) in enumerate(batches):
        for r in range(batch_size):
            begin = r * row_len + i * seq_len
            # Brute force: the window is the stream slice, labels the next tokens.
            assert tokens[r].tolist() == ids[begin:begin + seq_len].tolist()
            assert labels[r].tolist() == ids[begin + 1:begin + seq_len + 1].tolist()
            assert labels[r, :-1].tolist() == tokens[r, 1:].tolist()
            if i + 1 < n:  # row r of batch i+1 continues row r of batch i
                assert batches[i + 1][0][r, 0] == labels[r, -1]
            assert reset[r] == (i == 0 or begin in start_set)


def test_lm_reset_flags_and_errors():
    # Rows of 8 tokens: row 0 is positions 0-7, row 1 positions 8-15. A
    # document starting at position 3 (the second window of row 0) resets
    # row 0 in batch 1; position 8 is row 1's first window (reset anyway).
    ds = data.make_lm_dataset(np.arange(1, 17), batch_size=2, seq_len=3,
                              doc_starts=[0, 3, 8])
    got = [(f["tokens"].numpy().tolist(), f["reset"].numpy().tolist()) for f, _ in ds]
    assert got == [
        ([[1, 2, 3], [9, 10, 11]], [True, True]),
        ([[4, 5, 6], [12, 13, 14]], [True, False]),
    ]
    with pytest.raises(DataError, match="too short.*need at least 8 tokens"):
        data.make_lm_dataset([4] * 7, batch_size=2, seq_len=3)
    with pytest.raises(ValueError, match="must be 1-D"):
        data.make_lm_dataset([[4, 5]], batch_size=1, seq_len=1)
    with pytest.raises(ValueError, match=r"doc_starts must lie in \[0, 16\)"):
        data.make_lm_dataset(np.arange(1, 17), 2, 3, doc_starts=[16])
