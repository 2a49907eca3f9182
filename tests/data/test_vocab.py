import string

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.data.vocab import UNK, CharVocab
from aicompute.errors import AicomputeError

VOCAB = CharVocab(sorted(set(string.ascii_lowercase + " \n") | {UNK}))


def test_ids_are_sorted_positions_and_unk_is_last():
    assert len(VOCAB) == 26 + 2 + 1
    assert VOCAB.chars[0] == "\n" and VOCAB.chars[1] == " " and VOCAB.chars[2] == "a"
    assert VOCAB.unk_id == len(VOCAB) - 1 and VOCAB.chars[VOCAB.unk_id] == UNK
    assert VOCAB.encode("ab\n").tolist() == [2, 3, 0]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + " \n", max_size=200))
def test_round_trip_of_text_inside_the_vocabulary(text):
    ids = VOCAB.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert VOCAB.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=100))  # any unicode, including astral-plane characters
def test_characters_outside_the_vocabulary_become_unk(text):
    expected = "".join(c if c in VOCAB.chars else UNK for c in text)
    assert VOCAB.decode(VOCAB.encode(text)) == expected
    assert VOCAB.decode(VOCAB.encode(text).tolist()) == expected  # lists decode too


def test_decode_accepts_arrays_and_empty_input():
    assert VOCAB.decode(np.array([2, 3], dtype=np.uint8)) == "ab"
    assert VOCAB.decode([]) == "" and VOCAB.decode(torch.zeros(0, dtype=torch.int64)) == ""
    assert VOCAB.encode("").shape == (0,)


def test_decode_rejects_bad_ids():
    with pytest.raises(AicomputeError, match=r"integers in 0\.\.28"):
        VOCAB.decode([0, 29])
    with pytest.raises(AicomputeError, match=r"integers in 0\.\.28"):
        VOCAB.decode([-1])
    with pytest.raises(AicomputeError, match=r"one sequence of ids \(1-D\), got shape \(2, 2\)"):
        VOCAB.decode(torch.zeros(2, 2, dtype=torch.int64))


def test_constructor_validates_and_equality_is_by_characters():
    with pytest.raises(AicomputeError, match="sorted and distinct"):
        CharVocab(["b", "a", UNK])
    with pytest.raises(AicomputeError, match="must contain the unknown symbol"):
        CharVocab(["a", "b"])
    with pytest.raises(AicomputeError, match="single characters"):
        CharVocab(["ab", UNK])
    assert CharVocab(VOCAB.chars) == VOCAB and hash(CharVocab(VOCAB.chars)) == hash(VOCAB)
