"""Int4 packing: round trips, exact size, ONNX's own reader agrees with our layout, and bad input is refused."""

import math

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper

from aicompute.compress.quant.packing import pack_int4, unpack_int4
from aicompute.errors import AicomputeError


@pytest.mark.parametrize("signed", [True, False])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_pack_unpack_int4_round_trip_and_size(signed, data):
    lo, hi = (-8, 7) if signed else (0, 15)
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    values = data.draw(st.lists(st.integers(lo, hi), min_size=math.prod(shape), max_size=math.prod(shape)))
    q = torch.tensor(values, dtype=torch.int8).reshape(shape)
    packed = pack_int4(q, signed=signed)
    assert len(packed) == math.ceil(q.numel() / 2)
    assert torch.equal(unpack_int4(packed, shape, signed=signed), q)
    # the layout is ONNX's: ONNX's own reader gets the same codes back from our bytes
    tensor = onnx.helper.make_tensor("t", TensorProto.INT4 if signed else TensorProto.UINT4, shape, packed, raw=True)
    assert np.array_equal(numpy_helper.to_array(tensor).astype(np.int8), q.numpy())


def test_pack_int4_by_hand():
    # [1, -1, 7] → bytes 0xF1 (low nibble 1, high nibble −1 = 0xF), 0x07 (7, padding 0)
    assert pack_int4(torch.tensor([1, -1, 7])) == bytes([0xF1, 0x07])
    assert pack_int4(torch.tensor([15, 0]), signed=False) == bytes([0x0F])
    assert unpack_int4(bytes([0xF1, 0x07]), (3,)).tolist() == [1, -1, 7]
    assert unpack_int4(bytes([0xF1]), (2,), signed=False).tolist() == [1, 15]  # the same nibble, unsigned
    assert pack_int4(torch.empty(0, dtype=torch.int8)) == b"" and unpack_int4(b"", (0,)).numel() == 0


def test_bad_codes_and_sizes_are_refused():
    with pytest.raises(AicomputeError, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([8]))
    with pytest.raises(AicomputeError, match=r"\[0, 15\]"):
        pack_int4(torch.tensor([-1]), signed=False)
    with pytest.raises(AicomputeError, match="integer tensor"):
        pack_int4(torch.tensor([0.5]))
    with pytest.raises(AicomputeError, match="integer tensor"):
        pack_int4([1, 2])
    with pytest.raises(AicomputeError, match="ceil"):
        unpack_int4(b"\x00\x00", (5,))
