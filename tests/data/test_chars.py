import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from aicompute.data import chars
from aicompute.data.vocab import UNK
from aicompute.errors import AicomputeError


@pytest.fixture(scope="module")
def splits():
    return chars.load("train"), chars.load("test")


@pytest.fixture(scope="module")
def whole():
    return chars.corpus()  # (1_000_000,) token ids and the vocabulary


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AICOMPUTE_CACHE", str(tmp_path))
    chars._corpus.cache_clear()
    yield tmp_path / "chars"
    chars._corpus.cache_clear()


def test_corpus_is_the_stdlib_public_modules_in_sorted_order(whole):
    tokens, vocab = whole
    assert tokens.shape == (1_000_000,) and tokens.dtype == torch.int64
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = [p.name for p in chars.source_files()]
    assert names == sorted(names) and all(not n.startswith(("_", "test")) for n in names)
    assert all(p.parent == stdlib for p in chars.source_files())
    first = (stdlib / names[0]).read_text(encoding="utf-8")  # read here, independently of the library
    assert first.isascii()
    assert vocab.decode(tokens[: len(first)]) == first


def test_vocabulary_is_the_sorted_character_set_plus_unk(whole, splits):
    tokens, vocab = whole
    used = set(vocab.decode(tokens))
    assert vocab.chars == tuple(sorted(used | {UNK}))
    assert 80 <= len(vocab) <= 98  # at most 95 printable + tab + newline + UNK
    assert all(c in "\t\n" or " " <= c <= "~" for c in vocab.chars if c != UNK)
    train, test = splits
    assert train.info.num_classes == test.info.num_classes == len(vocab) == len(train.vocab)
    assert chars.info().num_classes == len(vocab)


def test_windows_tile_the_first_90_percent_and_the_last_10_percent(whole, splits):
    tokens, _ = whole
    train, test = splits
    cut = 900_000
    n_train, n_test = (cut - 1) // 64, (1_000_000 - cut - 1) // 64
    assert train.inputs.shape == (n_train, 64) and test.inputs.shape == (n_test, 64)
    assert torch.equal(train.inputs.reshape(-1), tokens[: n_train * 64])
    assert torch.equal(train.targets.reshape(-1), tokens[1 : n_train * 64 + 1])
    assert torch.equal(test.inputs.reshape(-1), tokens[cut : cut + n_test * 64])
    assert torch.equal(test.targets.reshape(-1), tokens[cut + 1 : cut + n_test * 64 + 1])
    assert n_train * 64 + 1 <= cut  # the last training target comes before the first test input


def test_target_is_input_shifted_by_one(splits):
    for ds in splits:
        assert ds.inputs.dtype == ds.targets.dtype == torch.int64
        assert torch.equal(ds.inputs[:, 1:], ds.targets[:, :-1])
        assert torch.equal(ds.targets[:-1, -1], ds.inputs[1:, 0])  # non-overlapping windows meet end to end
        assert (ds.info.task, ds.info.kind, ds.info.input_dtype) == ("language-modeling", "tokens", "int64")


def test_block_size_and_stride_options():
    ds = chars.load("test", block_size=8, max_chars=1000, stride=3)
    assert ds.inputs.shape == ((100 - 1 - 8) // 3 + 1, 8) and ds.info.input_shape == (8,)
    assert torch.equal(ds.inputs[1, :5], ds.inputs[0, 3:])  # windows start 3 characters apart
    tokens, _ = chars.corpus(1000)
    assert torch.equal(ds.inputs[-1], tokens[900 + 3 * (len(ds) - 1) : 900 + 3 * (len(ds) - 1) + 8])


def test_encode_decode_round_trip_on_the_corpus(whole):
    tokens, vocab = whole
    text = vocab.decode(tokens[:5000])
    assert torch.equal(vocab.encode(text), tokens[:5000])


def test_each_data_set_owns_its_tokens(splits):
    train, _ = splits
    original = train.inputs[0].clone()
    mine = chars.load("train")
    mine.inputs[0, 0] = (original[0] + 1) % len(mine.vocab)  # writing into one data set ...
    assert torch.equal(train.inputs[0], original)  # ... leaves the others alone
    assert torch.equal(chars.load("train").inputs[0], original)  # ... and the cache


def test_cache_files_are_written_and_reused(fresh_cache, monkeypatch):
    built = []
    real = chars._build
    monkeypatch.setattr(chars, "_build", lambda n: built.append(n) or real(n))
    first = chars.load("train", max_chars=20_000)
    record = json.loads(next(fresh_cache.glob("*.json")).read_text())
    assert record["num_tokens"] == 20_000 and "".join(record["chars"]) == "".join(first.vocab.chars)
    assert sorted(p.suffix for p in fresh_cache.iterdir()) == [".json", ".npz"]  # no temporary files left
    chars._corpus.cache_clear()
    again = chars.load("train", max_chars=20_000)
    assert built == [20_000] and torch.equal(again.inputs, first.inputs)


@pytest.mark.parametrize("damage", ["flip-token", "no-json", "bad-json", "garbage-npz"])
def test_corrupt_cache_is_rebuilt(fresh_cache, monkeypatch, damage):
    reference = chars.load("test", max_chars=20_000)
    npz, js = next(fresh_cache.glob("*.npz")), next(fresh_cache.glob("*.json"))
    if damage == "flip-token":
        with np.load(npz) as f:
            tokens = f["tokens"].copy()
        tokens[7] = (tokens[7] + 1) % len(reference.vocab)
        np.savez(npz, tokens=tokens)  # readable, but no longer matches the recorded SHA-256
    elif damage == "no-json":
        js.unlink()
    elif damage == "bad-json":
        js.write_text("{not json")
    else:
        npz.write_bytes(b"garbage")
    built = []
    real = chars._build
    monkeypatch.setattr(chars, "_build", lambda n: built.append(n) or real(n))
    chars._corpus.cache_clear()
    rebuilt = chars.load("test", max_chars=20_000)
    assert built == [20_000]
    assert torch.equal(rebuilt.inputs, reference.inputs) and rebuilt.vocab == reference.vocab
    chars._corpus.cache_clear()
    assert torch.equal(chars.load("test", max_chars=20_000).inputs, reference.inputs)  # repaired on disk


def test_bad_options_are_user_errors():
    with pytest.raises(AicomputeError, match="block_size must be a positive integer, got 0"):
        chars.load(block_size=0)
    with pytest.raises(AicomputeError, match="stride must be a positive integer"):
        chars.load(stride=-2)
    with pytest.raises(AicomputeError, match="max_chars must be a positive integer"):
        chars.corpus(0)
    with pytest.raises(AicomputeError, match=r"max_chars=100 leaves 10 test characters.*block_size \+ 1 = 65"):
        chars.load(max_chars=100)
    with pytest.raises(AicomputeError, match="unknown split 'dev' for 'chars'"):
        chars.load("dev")
