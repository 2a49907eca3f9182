"""Observers against independent references: ``torch.ao.quantization``'s MinMax / moving-average observers,
``torch.quantile``, a NumPy transcription of the published KL-divergence calibration, and a brute-force
MSE grid evaluated with torch's own fake quantization."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.ao import quantization as tq

from aicompute.compress.quant.observers import (
    OBSERVERS,
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
    entropy_threshold_bins,
    make_observer,
)
from aicompute.compress.quant.qparams import QScheme
from aicompute.errors import AicomputeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantized-dtype deprecation notice

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
batches_1d = st.lists(hnp.arrays(np.float32, st.integers(1, 40), elements=FLOATS), min_size=1, max_size=4)


@st.composite
def batches_2d(draw):
    """1–4 batches of shape (C, n) with one C."""
    channels = draw(st.integers(1, 4))
    shape = st.tuples(st.just(channels), st.integers(1, 10))
    return draw(st.lists(hnp.arrays(np.float32, shape, elements=FLOATS), min_size=1, max_size=4))


def _torch_observer(kind: str, signed: bool, symmetric: bool, axis, constant=0.01):
    dtype = torch.qint8 if signed else torch.quint8
    if axis is None:
        qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        if kind == "minmax":
            return tq.MinMaxObserver(dtype=dtype, qscheme=qscheme)
        return tq.MovingAverageMinMaxObserver(averaging_constant=constant, dtype=dtype, qscheme=qscheme)
    qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    if kind == "minmax":
        return tq.PerChannelMinMaxObserver(ch_axis=axis, dtype=dtype, qscheme=qscheme)
    return tq.MovingAveragePerChannelMinMaxObserver(
        averaging_constant=constant, ch_axis=axis, dtype=dtype, qscheme=qscheme
    )


def _ours(kind: str, axis, constant=0.01):
    return MinMaxObserver(axis=axis) if kind == "minmax" else MovingAverageMinMaxObserver(constant, axis=axis)


def _assert_same_qparams(batches, kind, signed, symmetric, axis, constant=0.01):
    ref, ours = _torch_observer(kind, signed, symmetric, axis, constant), _ours(kind, axis, constant)
    for b in batches:
        ref(torch.from_numpy(b))
        ours.observe(torch.from_numpy(b))
    scale, zp = ref.calculate_qparams()
    qp = ours.qparams(QScheme(bits=8, symmetric=symmetric, signed=signed, axis=axis))
    assert torch.equal(qp.scale.reshape(-1), scale)
    assert torch.equal(qp.zero_point.reshape(-1), zp.long())


# -- MinMax and moving average against torch.ao.quantization ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batches=batches_1d,
    kind=st.sampled_from(["minmax", "moving_average"]),
    signed=st.booleans(),
    symmetric=st.booleans(),
)
def test_per_tensor_observers_equal_torch(batches, kind, signed, symmetric):
    _assert_same_qparams(batches, kind, signed, symmetric, axis=None)


@settings(max_examples=40, deadline=None)
@given(
    batches=batches_2d(),
    kind=st.sampled_from(["minmax", "moving_average"]),
    signed=st.booleans(),
    symmetric=st.booleans(),
    axis=st.sampled_from([0, 1]),
)
def test_per_channel_observers_equal_torch(batches, kind, signed, symmetric, axis):
    if axis == 1 and len({b.shape[1] for b in batches}) > 1:
        batches = [b[:, :1] for b in batches]  # channels along axis 1 must not change between batches
    _assert_same_qparams(batches, kind, signed, symmetric, axis=axis)


@settings(max_examples=20, deadline=None)
@given(batches=batches_1d, constant=st.sampled_from([0.3, 1.0]))
def test_moving_average_constant_equals_torch(batches, constant):
    # torch updates min + c·(new_min − min) in float32: with c = 1 and a last batch whose min equals its max,
    # that can land one rounding step above the max and trip torch's own min <= max assertion.
    assume(constant != 1.0 or float(batches[-1].min()) < float(batches[-1].max()))
    _assert_same_qparams(batches, "moving_average", True, False, axis=None, constant=constant)


def test_moving_average_hand_case():
    # batch mins −1, −3: m = −1 + 0.5·(−3 − (−1)) = −2; maxes 1, 5: 1 + 0.5·4 = 3.
    obs = MovingAverageMinMaxObserver(0.5)
    obs.observe(torch.tensor([-1.0, 1.0])).observe(torch.tensor([-3.0, 5.0]))
    lo, hi = obs.clip_range(QScheme())
    assert (lo.item(), hi.item()) == (-2.0, 3.0)


def test_minmax_on_conv_weights_per_output_channel():
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    qp = MinMaxObserver(axis=0).observe(w).qparams(QScheme(axis=0))
    torch.testing.assert_close(qp.scale, w.abs().amax(dim=(1, 2, 3)) / 127.5, rtol=0, atol=0)
    assert qp.quantize(w).shape == w.shape


# -- binary -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_every_observer_gives_binary_alpha_as_mean_abs(name):
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(50, generator=g), torch.randn(70, generator=g) * 2
    qp = make_observer(name).observe(a).observe(b).qparams(QScheme(bits=1))
    assert qp.binary
    torch.testing.assert_close(qp.scale, torch.cat([a, b]).abs().mean())


def test_binary_per_channel_alpha_over_batches():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(4, 3, generator=g), torch.randn(5, 3, generator=g)
    qp = MinMaxObserver(axis=1).observe(a).observe(b).qparams(QScheme(bits=1, axis=1))
    torch.testing.assert_close(qp.scale, torch.cat([a, b]).abs().mean(dim=0))


# -- percentile ---------------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(batches=batches_1d, pct=st.floats(50.5, 100.0))
def test_percentile_equals_torch_quantile(batches, pct):
    obs = PercentileObserver(pct)
    for b in batches:
        obs.observe(torch.from_numpy(b))
    x = torch.from_numpy(np.concatenate(batches))
    lo, hi = obs.clip_range(QScheme(symmetric=True))
    t = torch.quantile(x.abs(), pct / 100)
    assert (lo.item(), hi.item()) == (-t.item(), t.item())
    lo, hi = obs.clip_range(QScheme(symmetric=False))
    assert (lo.item(), hi.item()) == (torch.quantile(x, 1 - pct / 100).item(), torch.quantile(x, pct / 100).item())


def test_sample_over_the_cap_is_uniform_subset():
    # 1,000 zeros then 9,000 ones, 1,000 kept: about 90 % ones whatever the batch sizes.
    obs = PercentileObserver(99.0, max_samples=1000, seed=7)
    obs.observe(torch.zeros(1000))
    for _ in range(9):
        obs.observe(torch.ones(1000))
    sample = obs.sample()
    assert sample.numel() == 1000
    assert set(sample.unique().tolist()) <= {0.0, 1.0}
    assert 0.86 <= float(sample.mean()) <= 0.94  # binomial sd ≈ 0.0095
    again = PercentileObserver(99.0, max_samples=1000, seed=7).observe(torch.zeros(1000))
    for _ in range(9):
        again.observe(torch.ones(1000))
    assert torch.equal(torch.sort(again.sample()).values, torch.sort(sample).values)  # same seed, same sample
    assert (obs.min_val.item(), obs.max_val.item()) == (0.0, 1.0)  # exact even when subsampled


def test_sampled_observer_copies_the_batch():
    x = torch.randn(100)
    obs = PercentileObserver(100.0).observe(x)
    before = obs.clip_range(QScheme())[1].item()
    x.mul_(10)  # the caller reuses its buffer
    assert obs.clip_range(QScheme())[1].item() == before


# -- entropy (KL divergence) -------------------------------------------------------------------------------------


def _smooth(p: np.ndarray, eps: float = 1e-4):
    """Move ``eps`` mass into every empty bin, taken evenly from the others (MXNet / ONNX Runtime)."""
    zeros = p == 0
    if zeros.all():
        return None
    out = p.astype(np.float64).copy()
    out[zeros] = eps
    out[~zeros] -= eps * zeros.sum() / (~zeros).sum()
    return out


def reference_kl_bins(hist: np.ndarray, num_quantized_bins: int) -> int:
    """TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017), transcribed from
    its open re-implementations, MXNet's ``contrib.quantization._get_optimal_threshold`` and ONNX Runtime's
    ``quantization.calibrate.HistogramCollector.get_entropy_threshold``, in TensorRT's one-sided form over a
    histogram of |x|: for i = num_quantized_bins .. len(hist) the reference P is the first i bins with the
    outliers added to the last, the candidate Q merges those bins (without outliers) into
    num_quantized_bins groups and spreads each group evenly over P's non-empty bins; both are smoothed and
    KL(P‖Q) taken. Returns the i of least divergence."""
    hist = np.asarray(hist, dtype=np.float64)
    divergences = []
    for i in range(num_quantized_bins, hist.size + 1):
        sliced = hist[:i]
        p = sliced.copy()
        p[-1] += hist[i:].sum()
        nonzero = (p != 0).astype(np.int64)
        merged = i // num_quantized_bins
        starts = np.arange(num_quantized_bins) * merged  # the last group runs to the end of the slice
        quantized = np.add.reduceat(sliced, starts)
        norms = np.add.reduceat(nonzero, starts)
        lengths = np.diff(np.append(starts, i))
        q = np.repeat(np.divide(quantized, norms, out=np.zeros_like(quantized), where=norms != 0), lengths)
        q[p == 0] = 0
        p, q = _smooth(p), _smooth(q)
        if p is None or q is None:
            divergences.append(np.inf)
            continue
        p, q = p / p.sum(), q / q.sum()
        divergences.append(float(np.sum(p * np.log(p / q))))
    return num_quantized_bins + int(np.argmin(divergences))


def _distribution(name: str, n: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(12)
    if name == "gaussian":
        return rng.normal(0.0, 1.0, n)
    if name == "laplace":
        return rng.laplace(0.0, 1.0, n)
    if name == "gaussian+outliers":
        x = rng.normal(0.0, 1.0, n)
        x[:50] = rng.uniform(15.0, 30.0, 50) * rng.choice([-1, 1], 50)
        return x
    if name == "relu":
        return np.maximum(rng.normal(0.5, 1.0, n), 0.0)
    raise ValueError(name)


DISTRIBUTIONS = ["gaussian", "laplace", "gaussian+outliers", "relu"]


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize(("num_bins", "levels"), [(2048, 128), (512, 8)])
def test_kl_threshold_matches_reference_within_one_bin(name, num_bins, levels):
    a = np.abs(_distribution(name))
    hist, _ = np.histogram(a, bins=num_bins, range=(0.0, a.max()))
    ours = entropy_threshold_bins(torch.from_numpy(hist), levels)
    assert abs(ours - reference_kl_bins(hist, levels)) <= 1


@pytest.mark.parametrize("name", ["gaussian", "gaussian+outliers"])
def test_entropy_observer_threshold_matches_reference(name):
    x = torch.from_numpy(_distribution(name)).float()
    obs = EntropyObserver()
    for batch in x.chunk(4):
        obs.observe(batch)
    t = obs.threshold(QScheme(bits=8)).item()
    a = x.abs().double().numpy()
    hist, _ = np.histogram(a, bins=2048, range=(0.0, a.max()))
    width = a.max() / 2048
    assert abs(t - reference_kl_bins(hist, 128) * width) <= width * 1.001
    if name == "gaussian+outliers":
        assert t < 10  # the 15–30σ outliers are clipped away
    lo, hi = obs.clip_range(QScheme(bits=8))
    assert (lo.item(), hi.item()) == (-t, t)


def test_entropy_affine_range_is_clamped_to_the_data():
    x = torch.from_numpy(_distribution("relu")).float()
    obs = EntropyObserver().observe(x)
    lo, hi = obs.clip_range(QScheme(symmetric=False, signed=False))
    assert lo.item() == 0.0 and 0.0 < hi.item() <= x.max().item()
    # non-negative data on an affine grid uses all 256 levels; a symmetric signed grid has 128 for [0, t].
    # The first bin (the ReLU's zeros) is flattened to the second's count, as NVIDIA's calibrator does.
    a = x.abs().double().numpy()
    hist, _ = np.histogram(a, bins=2048, range=(0.0, a.max()))
    hist[0] = hist[1]
    assert abs(hi.item() - reference_kl_bins(hist, 256) * a.max() / 2048) <= a.max() / 2048 * 1.001


def test_entropy_affine_search_starts_at_the_minimum():
    # a normalized image: 80 % background at its minimum −0.42, strokes up to ~2.8
    rng = np.random.default_rng(5)
    x = np.full(100_000, -0.4242)
    strokes = rng.uniform(-0.4242, 2.8215, 20_000)
    x[:20_000] = strokes
    lo, hi = EntropyObserver().observe(torch.from_numpy(x).float()).clip_range(QScheme(symmetric=False, signed=False))
    assert lo.item() == pytest.approx(-0.4242)
    shifted = x - x.min()
    hist, _ = np.histogram(shifted, bins=2048, range=(0.0, shifted.max()))
    hist[0] = hist[1]
    width = shifted.max() / 2048
    assert abs(hi.item() - (x.min() + reference_kl_bins(hist, 256) * width)) <= width * 1.001
    assert hi.item() > np.quantile(strokes, 0.99)  # the strokes are kept, not clipped to the background's scale


@pytest.mark.parametrize("zeros", [0.5, 0.8])
def test_entropy_ignores_the_zero_spike_of_a_relu_output(zeros):
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(0.0, 1.0, 100_000))
    a[: int(zeros * a.size)] = 0.0  # a ReLU output: half or more exactly zero
    unsigned = QScheme(symmetric=False, signed=False)
    t = EntropyObserver().observe(torch.from_numpy(a).float()).clip_range(unsigned)[1].item()
    hist, _ = np.histogram(a, bins=2048, range=(0.0, a.max()))
    width = a.max() / 2048
    p99 = np.quantile(a[a > 0], 0.99)
    # searched on the raw histogram, the spike drags the threshold below the 99th percentile of the real values
    assert reference_kl_bins(hist, 256) * width < p99
    hist[0] = hist[1]
    assert abs(t - reference_kl_bins(hist, 256) * width) <= width * 1.001
    assert t > p99


def test_kl_search_edge_cases():
    assert entropy_threshold_bins(torch.ones(64), 128) == 64  # fewer bins than levels: nothing clipped
    assert entropy_threshold_bins(torch.ones(256), 8) == 256  # uniform: clipping only loses
    assert entropy_threshold_bins(torch.zeros(256), 8) == 256  # no divergence is defined: nothing clipped
    # empty bins past the data leave the divergence unchanged; the tightest threshold wins
    assert entropy_threshold_bins(torch.cat([torch.ones(16), torch.zeros(240)]), 8) == 16
    assert EntropyObserver().observe(torch.zeros(10)).threshold(QScheme()).item() == 0.0
    with pytest.raises(AicomputeError, match="non-negative counts"):
        entropy_threshold_bins(torch.tensor([1.0, -1.0]), 1)


# -- MSE ------------------------------------------------------------------------------------------------------------


def _torch_mse(x: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int) -> float:
    y = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)
    return float(((y - x) ** 2).double().mean())


@pytest.mark.parametrize("name", ["laplace", "gaussian+outliers"])
@pytest.mark.parametrize("bits", [4, 8])
def test_mse_threshold_is_as_good_as_a_brute_force_grid(name, bits):
    x = torch.from_numpy(_distribution(name, 20_000)).float()
    obs = MSEObserver().observe(x)
    qp = obs.qparams(QScheme(bits=bits))
    ours = _torch_mse(x, qp.scale.item(), 0, qp.qmin, qp.qmax)
    # Brute force: 1,000 thresholds t on (0, max|x|], symmetric scale t / ((qmax − qmin) / 2), Z = 0.
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    amax = x.abs().max().item()
    grid = [_torch_mse(x, amax * k / 1000 / ((qmax - qmin) / 2), 0, qmin, qmax) for k in range(1, 1001)]
    assert ours <= min(grid) * 1.005
    full = _torch_mse(x, amax / ((qmax - qmin) / 2), 0, qmin, qmax)
    assert ours < full  # clipping the tails beats MinMax on heavy-tailed data


def test_mse_affine_beats_minmax_on_skewed_data():
    x = torch.from_numpy(np.abs(_distribution("laplace", 20_000))).float()
    scheme = QScheme(symmetric=False, signed=False)
    mse_qp = MSEObserver().observe(x).qparams(scheme)
    minmax_qp = MinMaxObserver().observe(x).qparams(scheme)
    err = lambda qp: _torch_mse(x, qp.scale.item(), qp.zero_point.item(), qp.qmin, qp.qmax)  # noqa: E731
    assert err(mse_qp) < err(minmax_qp)


# -- construction and bad input -------------------------------------------------------------------------------------


def test_make_observer_by_name():
    assert isinstance(make_observer("percentile", percentile=99.9), PercentileObserver)
    assert make_observer("moving_average", averaging_constant=0.1, axis=0).axis == 0
    with pytest.raises(AicomputeError, match="did you mean 'entropy'"):
        make_observer("entropi")
    with pytest.raises(AicomputeError, match="not \\['pct'\\]"):
        make_observer("percentile", pct=99)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PercentileObserver(40.0), "percentile must be in"),
        (lambda: PercentileObserver(max_samples=2**25), "at most 2\\^24"),
        (lambda: MovingAverageMinMaxObserver(0.0), "averaging_constant"),
        (lambda: EntropyObserver(num_bins=0), "num_bins"),
        (lambda: MSEObserver(seed=-1), "seed must be in"),
        (lambda: make_observer("entropy", axis=0), "for per-channel ranges use \\['minmax', 'moving_average'\\]"),
    ],
)
def test_bad_options_are_rejected(build, message):
    with pytest.raises(AicomputeError, match=message):
        build()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.empty(0), "is empty"),
        (torch.tensor([1.0, float("nan")]), "NaN/inf"),
        (torch.tensor([1, 2]), "floating-point"),
    ],
)
@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_observe_rejects_bad_data(name, x, message):
    with pytest.raises(AicomputeError, match=message):
        make_observer(name).observe(x)


def test_qparams_needs_data_and_a_matching_granularity():
    with pytest.raises(AicomputeError, match="has seen no data"):
        MinMaxObserver().qparams(QScheme())
    per_tensor = MinMaxObserver().observe(torch.ones(2, 3))
    with pytest.raises(AicomputeError, match="build the observer with axis=0"):
        per_tensor.qparams(QScheme(axis=0))
    per_channel = MinMaxObserver(axis=0).observe(torch.ones(2, 3))
    with pytest.raises(AicomputeError, match="observed per channel along axis 0"):
        per_channel.qparams(QScheme())
    with pytest.raises(AicomputeError, match="2 channel\\(s\\) along axis 0 before and 4 now"):
        per_channel.observe(torch.ones(4, 3))
