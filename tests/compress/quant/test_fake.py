"""Fake quantization against independent references: torch's ``fake_quantize_per_*_affine`` (forward and its
rounded-code STE), torch's ``_fake_quantize_learnable_per_*_affine`` (LSQ gradients), and LSQ written as a
composition of plain autograd ops (the paper's ``round_pass`` / ``grad_scale`` tricks)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aicompute.compress.quant.fake import FakeQuantizer, LSQQuantizer, fake_quantize, lsq_fake_quantize
from aicompute.compress.quant.observers import PercentileObserver
from aicompute.compress.quant.qparams import QParams, QScheme, compute_qparams
from aicompute.errors import AicomputeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's quantized-dtype deprecation notice

FLOATS = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
matrices = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 16)), elements=FLOATS)
schemes = st.builds(
    QScheme,
    bits=st.integers(2, 8),
    symmetric=st.booleans(),
    signed=st.booleans(),
    axis=st.sampled_from([None, 0]),
)
# Clip ranges tighter than the data, so that some values saturate: a fraction of the true min and max.
shrinks = st.floats(0.2, 1.0)
FAST = settings(max_examples=60, deadline=None)


def _qparams(x: torch.Tensor, scheme: QScheme, shrink: float) -> QParams:
    if scheme.axis is None:
        lo, hi = x.min(), x.max()
    else:
        lo, hi = x.amin(dim=1), x.amax(dim=1)
    return compute_qparams(lo * shrink, hi * shrink, scheme)


def _along(t: torch.Tensor, x: torch.Tensor, axis) -> torch.Tensor:
    return t if axis is None else t.reshape(-1, *([1] * (x.dim() - 1)))


def _codes(x, qp):
    """Unclamped, unrounded code x/S + Z in float64 (the reference for 'inside the range')."""
    return x.double() / _along(qp.scale.double(), x, qp.axis) + _along(qp.zero_point.double(), x, qp.axis)


# -- the clipped STE ---------------------------------------------------------------------------------------


@FAST
@given(matrices, schemes, shrinks)
def test_fake_quantize_forward_equals_torch(arr, scheme, shrink):
    x = torch.from_numpy(arr)
    qp = _qparams(x, scheme, shrink)
    if qp.axis is None:
        ref = torch.fake_quantize_per_tensor_affine(x, float(qp.scale), int(qp.zero_point), qp.qmin, qp.qmax)
    else:
        ref = torch.fake_quantize_per_channel_affine(x, qp.scale, qp.zero_point.int(), 0, qp.qmin, qp.qmax)
    assert torch.equal(fake_quantize(x, qp), ref)


@FAST
@given(matrices, schemes, shrinks)
def test_ste_gradient_is_one_inside_the_real_range_and_zero_outside(arr, scheme, shrink):
    x = torch.from_numpy(arr).requires_grad_()
    qp = _qparams(x.detach(), scheme, shrink)
    upstream = torch.linspace(-2.0, 3.0, x.numel()).reshape(x.shape)
    (fake_quantize(x, qp) * upstream).sum().backward()
    v = _codes(x.detach(), qp)
    margin = 1e-4  # values this close (in codes) to an end of the grid may round either way in float32
    inside = (v >= qp.qmin + margin) & (v <= qp.qmax - margin)
    outside = (v < qp.qmin - margin) | (v > qp.qmax + margin)
    assert torch.equal(x.grad[inside], upstream[inside])
    assert torch.all(x.grad[outside] == 0)
    assert torch.all((x.grad == 0) | (x.grad == upstream))


@FAST
@given(matrices, schemes, shrinks)
def test_ste_differs_from_torch_only_on_the_half_step_past_each_end(arr, scheme, shrink):
    """torch passes gradients where the *rounded* code is on the grid: half a step further at either end."""
    x = torch.from_numpy(arr)
    qp = _qparams(x, scheme, shrink)
    ours = x.clone().requires_grad_()
    fake_quantize(ours, qp).sum().backward()
    theirs = x.clone().requires_grad_()
    if qp.axis is None:
        ref = torch.fake_quantize_per_tensor_affine(theirs, float(qp.scale), int(qp.zero_point), qp.qmin, qp.qmax)
    else:
        ref = torch.fake_quantize_per_channel_affine(theirs, qp.scale, qp.zero_point.int(), 0, qp.qmin, qp.qmax)
    ref.sum().backward()
    v = _codes(x, qp)
    band = ((v >= qp.qmin - 0.5 - 1e-4) & (v < qp.qmin + 1e-4)) | ((v > qp.qmax - 1e-4) & (v <= qp.qmax + 0.5 + 1e-4))
    assert torch.equal(ours.grad[~band], theirs.grad[~band])
    assert torch.all(ours.grad <= theirs.grad)  # never passes where torch blocks


def test_ste_hand_computed_case():
    # int2 signed grid [-2, 1], S = 1, Z = 0: the real range is [-2, 1]
    qp = QParams(torch.tensor(1.0), torch.tensor(0), -2, 1)
    x = torch.tensor([-3.0, -2.4, -2.0, -0.6, 0.3, 1.0, 1.4, 5.0], requires_grad=True)
    y = fake_quantize(x, qp)
    y.sum().backward()
    assert y.tolist() == [-2.0, -2.0, -2.0, -1.0, 0.0, 1.0, 1.0, 1.0]
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_binary_ste_passes_where_abs_x_at_most_alpha():
    qp = QParams.for_binary(torch.tensor([0.5, 2.0]), axis=0)
    x = torch.tensor([[-0.7, -0.5, 0.2, 0.6], [-2.5, 1.9, 0.0, 3.0]], requires_grad=True)
    y = fake_quantize(x, qp)
    y.sum().backward()
    assert y.tolist() == [[-0.5, -0.5, 0.5, 0.5], [-2.0, 2.0, 2.0, 2.0]]
    assert x.grad.tolist() == [[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]


def test_fake_quantize_keeps_dtype_and_rejects_bad_input():
    qp = QParams(torch.tensor(0.1), torch.tensor(0), -128, 127)
    x = torch.randn(5, dtype=torch.float64)
    assert fake_quantize(x, qp).dtype == torch.float64
    with pytest.raises(AicomputeError, match="floating-point"):
        fake_quantize(torch.arange(3), qp)
    with pytest.raises(AicomputeError, match="needs QParams"):
        fake_quantize(x, 0.1)


# -- LSQ ---------------------------------------------------------------------------------------------------


def _scaled_grad(t, g):
    """``t`` unchanged, with its gradient multiplied by ``g`` on the way back (LSQ's grad_scale)."""
    t = t.clone()
    t.register_hook(lambda grad: grad * g)
    return t


def _lsq_reference(x, scale, zero_point, qmin, qmax, axis, g):
    """LSQ from plain autograd ops as the paper writes it: clip x/s to the grid, round with a pass-through
    gradient (round_pass), multiply by s; the step's (and zero point's) gradient scaled by g."""
    s = _along(_scaled_grad(scale, g), x, axis)
    z = _scaled_grad(zero_point, g)
    z = _along(z + (z.clamp(qmin, qmax).round() - z).detach(), x, axis)  # the forward pass rounds the zero point
    clipped = torch.minimum(torch.maximum(x * (1.0 / s), qmin - z), qmax - z)
    rounded = clipped + (clipped.round() - clipped).detach()
    return rounded * s


lsq_cases = st.tuples(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 12)), elements=st.floats(-8, 8, width=32)),
    st.sampled_from([(-8, 7), (0, 15), (-2, 1), (-128, 127)]),
    st.sampled_from([None, 0]),
    st.floats(0.05, 2.0),
    st.floats(0.01, 1.0),
    st.booleans(),
)


def _lsq_inputs(arr, grid, axis, s0, learn_zero):
    """x, a step per tensor or per row (rows get different steps), and a zero point: 0, or an unrounded one
    near the grid's middle (as a learned zero point is between optimizer steps)."""
    x = torch.from_numpy(arr)
    scale = torch.tensor(s0) if axis is None else s0 * torch.linspace(1.0, 1.5, x.shape[0])
    z0 = (grid[0] + grid[1] + 1) // 2 + 0.3 if learn_zero else 0.0
    return x, scale, torch.full(scale.shape, float(z0))


def _grid_codes(x, scale, zero_point, qmin, qmax, axis):
    """x·(1/s) + Z in float32, as both implementations compute it."""
    z = _along(zero_point.round().clamp(qmin, qmax), x, axis)
    return x * (1.0 / _along(scale, x, axis)) + z


@FAST
@given(lsq_cases)
def test_lsq_gradients_equal_the_autograd_reference(case):
    _check_against_reference(*case)


@pytest.mark.parametrize("grid", [(-8, 7), (0, 15), (-2, 1)])
@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("learn_zero", [False, True])
def test_lsq_gradients_equal_the_autograd_reference_on_dense_data(grid, axis, learn_zero):
    """Gaussian data at several steps: many values in every branch, the half-step bands included."""
    torch.manual_seed(0)
    arr = (torch.randn(3, 400) * 6).numpy()
    _check_against_reference(arr, grid, axis, 0.7, 0.1, learn_zero)


def _check_against_reference(arr, grid, axis, s0, g, learn_zero):
    qmin, qmax = grid
    x, scale, zero_point = _lsq_inputs(arr, (qmin, qmax), axis, s0, learn_zero)
    v = _grid_codes(x, scale, zero_point, qmin, qmax, axis)
    # exactly at an end of the grid the two one-sided derivatives differ (autograd's clamp takes their mean)
    at_end = (v == qmin) | (v == qmax)
    upstream = torch.linspace(-1.0, 2.0, x.numel()).reshape(x.shape) * ~at_end
    results = []
    for reference in (False, True):
        xs, ss, zs = (t.clone().requires_grad_() for t in (x, scale, zero_point))
        if reference:
            out = _lsq_reference(xs, ss, zs, qmin, qmax, axis, g)
        else:
            out = lsq_fake_quantize(xs, ss, zs, qmin, qmax, axis=axis, grad_scale=g)
        (out * upstream).sum().backward()
        results.append((out.detach(), xs.grad, ss.grad, zs.grad))
    (out, gx, gs, gz), (ref_out, ref_gx, ref_gs, ref_gz) = results
    assert torch.equal(out, ref_out)
    assert torch.allclose(gx, ref_gx, rtol=1e-6, atol=1e-6)
    assert torch.allclose(gs, ref_gs, rtol=1e-4, atol=1e-5)
    assert torch.allclose(gz, ref_gz, rtol=1e-4, atol=1e-5)


@FAST
@given(lsq_cases)
def test_lsq_gradients_equal_torch_learnable_fake_quantize_off_the_half_step_band(case):
    arr, (qmin, qmax), axis, s0, g, learn_zero = case
    x, scale, zero_point = _lsq_inputs(arr, (qmin, qmax), axis, s0, learn_zero)
    v = _grid_codes(x, scale, zero_point, qmin, qmax, axis)
    # torch tests the rounded code: on the half step past each end its gradients follow the inside branch
    band = ((v >= qmin - 0.5) & (v < qmin)) | ((v > qmax) & (v <= qmax + 0.5))
    upstream = torch.linspace(-1.0, 2.0, x.numel()).reshape(x.shape) * ~band
    ours = [t.clone().requires_grad_() for t in (x, scale, zero_point)]
    out = lsq_fake_quantize(*ours, qmin, qmax, axis=axis, grad_scale=g)
    (out * upstream).sum().backward()
    theirs = [x.clone().requires_grad_(), *(t.reshape(-1).clone().requires_grad_() for t in (scale, zero_point))]
    if axis is None:
        ref = torch._fake_quantize_learnable_per_tensor_affine(*theirs, qmin, qmax, g)
    else:
        ref = torch._fake_quantize_learnable_per_channel_affine(*theirs, axis, qmin, qmax, g)
    (ref * upstream).sum().backward()
    assert torch.equal(out.detach(), ref.detach())
    assert torch.equal(ours[0].grad, theirs[0].grad)
    assert torch.allclose(ours[1].grad.reshape(-1), theirs[1].grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(ours[2].grad.reshape(-1), theirs[2].grad, rtol=1e-4, atol=1e-5)


def test_lsq_scale_gradient_hand_computed():
    # int2 [-2, 1], s = 1, Z = 0; per element ∂x̂/∂s: clipped low → -2, inside → round(v) - v, high → 1
    x = torch.tensor([-3.0, -2.4, -1.0, 0.3, 0.75, 1.26, 5.0], requires_grad=True)
    s = torch.tensor(1.0, requires_grad=True)
    z = torch.tensor(0.0, requires_grad=True)
    lsq_fake_quantize(x, s, z, -2, 1, grad_scale=0.5).sum().backward()
    per_element = [-2.0, -2.0, 0.0, -0.3, 0.25, 1.0, 1.0]
    assert s.grad.item() == pytest.approx(0.5 * sum(per_element))
    assert z.grad.item() == pytest.approx(0.5 * -1.0 * 4)  # -s for each of the 4 clipped values
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_lsq_forward_equals_qparams_fake_quantize():
    x = torch.randn(4, 30) * 3
    scale, zero_point = torch.tensor([0.1, 0.2, 0.05, 0.3]), torch.tensor([3.0, -2.0, 0.0, 7.0])
    qp = QParams(scale, zero_point, -8, 7, axis=0)
    assert torch.equal(lsq_fake_quantize(x, scale, zero_point, -8, 7, axis=0), qp.fake_quantize(x))


def test_lsq_rejects_mismatched_parameters():
    with pytest.raises(AicomputeError, match="one element per channel"):
        lsq_fake_quantize(torch.randn(3, 4), torch.ones(4), 0.0, -8, 7, axis=0)
    with pytest.raises(AicomputeError, match="qmin < qmax"):
        lsq_fake_quantize(torch.randn(3), torch.tensor(1.0), 0.0, 7, -8)


# -- LSQQuantizer ------------------------------------------------------------------------------------------


def test_lsq_quantizer_initialises_with_the_paper_rule():
    torch.manual_seed(0)
    w = torch.randn(6, 5, 3, 3)
    per_tensor = LSQQuantizer(QScheme(bits=4))
    per_tensor(w)  # calibrate: observes, passes through
    per_tensor.freeze()
    assert per_tensor.scale.item() == pytest.approx(2 * w.abs().mean().item() / math.sqrt(7), rel=1e-6)
    per_channel = LSQQuantizer(QScheme(bits=4, axis=0), channels=6)
    per_channel.observe(w).freeze()
    expected = 2 * w.abs().reshape(6, -1).mean(dim=1) / math.sqrt(7)
    assert torch.allclose(per_channel.scale.detach(), expected, rtol=1e-6)
    assert per_channel.qparams.axis == 0
    assert torch.equal(per_channel.qparams.zero_point, torch.zeros(6, dtype=torch.int64))


def test_lsq_quantizer_affine_init_maps_the_minimum_to_qmin():
    x = torch.rand(64, 10) * 4  # non-negative, like a ReLU output
    q = LSQQuantizer(QScheme(symmetric=False, signed=False), learn_zero_point=True, activation=True)
    q.observe(x).freeze()
    assert int(q.qparams.zero_point) == 0
    assert q.scale.item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(255), rel=1e-6)


def test_lsq_quantizer_from_an_observer_takes_its_qparams():
    x = torch.randn(200)
    scheme = QScheme(symmetric=False)
    q = LSQQuantizer(scheme, init="minmax")
    q.observe(x).freeze()
    expected = compute_qparams(x.min(), x.max(), scheme)
    assert torch.equal(q.qparams.scale, expected.scale) and torch.equal(q.qparams.zero_point, expected.zero_point)


def test_lsq_quantizer_gradient_scale_is_one_over_sqrt_n_qmax():
    x = torch.randn(8, 3, 5)
    for activation, n in ((False, x.numel()), (True, 15)):
        q = LSQQuantizer(QScheme(bits=4), activation=activation)
        q.observe(x).freeze()
        assert q.grad_scale(x) == pytest.approx(1 / math.sqrt(n * 7))
        q(x).sum().backward()
        plain = q.scale.detach().clone().requires_grad_()
        lsq_fake_quantize(x, plain, 0.0, -8, 7).sum().backward()
        assert q.scale.grad.item() == pytest.approx(plain.grad.item() / math.sqrt(n * 7), rel=1e-5)


def test_lsq_quantizer_initialises_lazily_and_learns_a_better_step():
    torch.manual_seed(0)
    x = torch.randn(2000)
    q = LSQQuantizer(QScheme(bits=3)).freeze()  # no calibration: the first batch initialises
    q.scale.data.fill_(123.0)  # overwritten by the lazy initialisation
    first = q(x)
    assert q.scale.item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(3), rel=1e-6)
    q.scale.data.mul_(3.0)  # start from a poor step
    opt = torch.optim.Adam(q.parameters(), lr=0.02)
    start = (q(x) - x).pow(2).mean().item()
    for _ in range(150):
        opt.zero_grad()
        loss = (q(x) - x).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * start
    assert first.shape == x.shape


def test_lsq_quantizer_state_dict_round_trip():
    x = torch.randn(4, 9)
    q = LSQQuantizer(QScheme(bits=4, axis=0, symmetric=False), channels=4, learn_zero_point=True)
    q.observe(x).freeze()
    fresh = LSQQuantizer(QScheme(bits=4, axis=0, symmetric=False), channels=4, learn_zero_point=True)
    fresh.load_state_dict(q.state_dict())
    assert fresh.mode == "quantize" and torch.equal(fresh(x), q(x))


def test_lsq_quantizer_rejects_bad_settings():
    with pytest.raises(AicomputeError, match="binary"):
        LSQQuantizer(QScheme(bits=1))
    with pytest.raises(AicomputeError, match="fixes the zero point"):
        LSQQuantizer(QScheme(), learn_zero_point=True)
    with pytest.raises(AicomputeError, match="needs channels"):
        LSQQuantizer(QScheme(axis=0))
    with pytest.raises(AicomputeError, match="no scale yet"):
        LSQQuantizer(QScheme()).qparams


# -- FakeQuantizer -----------------------------------------------------------------------------------------


def test_fake_quantizer_calibrates_then_quantizes_with_frozen_qparams():
    torch.manual_seed(0)
    scheme = QScheme(symmetric=False, signed=False)
    q = FakeQuantizer(scheme)
    batches = [torch.randn(4, 8) * (i + 1) for i in range(3)]
    for b in batches:
        assert q(b) is b  # calibrate mode passes x through
    q.freeze()
    everything = torch.cat(batches)
    expected = compute_qparams(everything.min(), everything.max(), scheme)
    assert torch.equal(q.qparams.scale, expected.scale) and torch.equal(q.qparams.zero_point, expected.zero_point)
    later = torch.randn(5, 8) * 10  # not observed: quantize mode uses the frozen parameters
    assert torch.equal(q(later), expected.fake_quantize(later))
    assert torch.equal(q.qparams.scale, expected.scale)


def test_fake_quantizer_per_channel_binary_and_named_observer_options():
    w = torch.randn(3, 10)
    q = FakeQuantizer(QScheme(bits=1, axis=0)).observe(w).freeze()
    assert torch.allclose(q.qparams.scale, w.abs().mean(dim=1))
    pct = FakeQuantizer(QScheme(), "percentile", percentile=90.0)
    assert isinstance(pct.observer, PercentileObserver) and pct.observer.percentile == 90.0


def test_fake_quantizer_state_dict_carries_the_frozen_qparams():
    x = torch.randn(16, 4)
    q = FakeQuantizer(QScheme(bits=4, symmetric=False)).observe(x).freeze()
    fresh = FakeQuantizer(QScheme(bits=4, symmetric=False))
    fresh.load_state_dict(q.state_dict())
    assert fresh.mode == "quantize" and torch.equal(fresh(x), q(x))


def test_fake_quantizer_errors():
    with pytest.raises(AicomputeError, match="seen no data"):
        FakeQuantizer(QScheme()).qparams
    with pytest.raises(AicomputeError, match="observer works along axis"):
        FakeQuantizer(QScheme(axis=0), PercentileObserver())
    with pytest.raises(AicomputeError, match="unknown calibration method"):
        FakeQuantizer(QScheme(), "minmaxx")
