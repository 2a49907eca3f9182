"""Shape helpers: ``as_hw`` parsing, ``conv_output_size`` against torch's own layers, dropping pools that
do not fit, and the image-batch input check."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aicompute.errors import AicomputeError
from aicompute.nn.shapes import (
    as_hw,
    check_classifier_args,
    check_image_batch,
    conv_output_size,
    pair,
    pool_or_identity,
    same_padding,
)


def test_as_hw_accepts_int_and_pair_and_rejects_the_rest():
    assert as_hw(32) == (32, 32)
    assert as_hw((28, 40)) == (28, 40)
    assert as_hw([5, 7]) == (5, 7)
    for bad in (0, -3, (3,), (3, 0), (3.0, 4), True, "32"):
        with pytest.raises(AicomputeError, match="image_size"):
            as_hw(bad)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 20),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    pad_frac=st.integers(0, 2),
    dilation=st.integers(1, 2),
    ceil_mode=st.booleans(),
)
def test_conv_output_size_matches_torch_pooling_and_conv(size, kernel, stride, pad_frac, dilation, ceil_mode):
    padding = min(pad_frac, kernel // 2)  # torch requires padding ≤ kernel / 2 for pooling
    x = torch.zeros(1, 1, size)
    expected = conv_output_size(size, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    if expected >= 1:
        assert F.max_pool1d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode).shape[-1] == expected
    else:
        with pytest.raises(RuntimeError):
            F.max_pool1d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    if not ceil_mode and expected >= 1:
        conv = F.conv1d(x, torch.zeros(1, 1, kernel), stride=stride, padding=padding, dilation=dilation)
        assert conv.shape[-1] == expected


def test_pair_reads_an_int_as_a_square():
    assert pair(3) == (3, 3)
    assert pair((1, 5)) == (1, 5)
    assert pair([2, 4]) == (2, 4)


@settings(max_examples=40, deadline=None)
@given(kh=st.integers(1, 4), kw=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9), stride=st.integers(1, 2))
def test_same_padding_keeps_the_size_for_odd_kernels_and_halves_it_at_stride_2(kh, kw, h, w, stride):
    kernel = (2 * kh - 1, 2 * kw - 1)  # odd: 1, 3, 5, 7
    padding = same_padding(kernel)
    assert padding == ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    out = F.conv2d(torch.zeros(1, 1, h, w), torch.zeros(1, 1, *kernel), stride=stride, padding=padding)
    assert out.shape[-2:] == (-(-h // stride), -(-w // stride))  # ceil(H / stride), ceil(W / stride)
    assert same_padding(kernel[0]) == (padding[0], padding[0])


def test_same_padding_of_an_even_kernel_loses_one_pixel():
    out = F.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 2), padding=same_padding((4, 2)))
    assert same_padding((4, 2)) == (1, 0) and out.shape[-2:] == (7, 7)


def test_pool_or_identity_drops_only_a_pool_that_would_not_fit():
    pool = nn.MaxPool2d(3, stride=2)
    kept, size = pool_or_identity(pool, (7, 9))
    assert kept is pool and size == (3, 4)
    dropped, size = pool_or_identity(pool, (2, 9))  # 2 rows cannot hold a 3×3 window
    assert isinstance(dropped, nn.Identity) and size == (2, 9)
    ceil_pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
    assert pool_or_identity(ceil_pool, (1, 1))[1] == (1, 1)  # ceil mode still fits a 1×1 map
    assert pool_or_identity(ceil_pool, (1, 1))[0] is ceil_pool


def test_check_image_batch_accepts_nchw_with_the_right_channels_only():
    check_image_batch(torch.zeros(2, 3, 5, 7), 3, "net")  # returns without raising
    check_image_batch(torch.zeros(0, 1, 1, 1), 1, "net")  # an empty batch is still a batch
    with pytest.raises(AicomputeError, match=r"net expects .*\(N, 3, H, W\), got \(2, 1, 5, 7\); .*in_channels=1"):
        check_image_batch(torch.zeros(2, 1, 5, 7), 3, "net")
    with pytest.raises(AicomputeError, match=r"got \(3, 5, 7\); build it with in_channels=<C>"):
        check_image_batch(torch.zeros(3, 5, 7), 3, "net")


def test_check_classifier_args_names_the_first_bad_argument():
    check_classifier_args(10, 3)  # returns without raising
    check_classifier_args(1, 1, 0.0)  # the closed end of [0, 1) is a valid dropout
    with pytest.raises(AicomputeError, match=r"^num_classes must be a positive integer, got 0$"):
        check_classifier_args(0, 0, 2.0)  # all three wrong: num_classes is reported first
    with pytest.raises(AicomputeError, match=r"^in_channels must be a positive integer, got 3\.0$"):
        check_classifier_args(10, 3.0, 2.0)
    with pytest.raises(AicomputeError, match=r"^dropout must be a probability in \[0, 1\), got 1\.0$"):
        check_classifier_args(10, 3, 1.0)
