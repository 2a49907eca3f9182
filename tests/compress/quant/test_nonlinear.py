"""Non-linear quantization: log2 levels against a brute-force log-domain search, k-means against scikit-learn."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.cluster import KMeans

from aicompute.compress.quant.nonlinear import KMeansQuantizer, kmeans_quantize, log2_quantize
from aicompute.compress.quant.qparams import QScheme, compute_qparams
from aicompute.errors import AicomputeError

FAST = settings(max_examples=40, deadline=None)
values = st.one_of(st.just(0.0), st.floats(-100, 100, allow_nan=False, width=32).filter(lambda v: abs(v) > 1e-6))


def uniform_mse(x: torch.Tensor, bits: int) -> float:
    """MSE of MinMax affine (uniform) quantization at ``bits``, from the repo's qparams."""
    qp = compute_qparams(x.min(), x.max(), QScheme(bits=bits, symmetric=False, signed=False))
    return float((qp.fake_quantize(x) - x).double().square().mean())


# --- log2 -----------------------------------------------------------------------------------------


def test_log2_hand_computed_case():
    # bits 3: n = 3 magnitudes; e_max = round(log2 5) = 2, e_min = 0: levels 1, 2, 4.
    x = torch.tensor([0.3, -0.75, 1.0, 5.0, 0.01, -1.5])
    r = log2_quantize(x, 3)
    assert r.max_exp.item() == 2 and r.min_exp.item() == 0 and r.num_levels == 3
    # 0.3: round(log2) = −2 < e_min → 0; −0.75: round(−0.415) = 0 → −1; 5: round(2.32) = 2 → 4;
    # −1.5: log2 = 0.585 rounds to 1 → −2 (the log-domain cut between 1 and 2 is √2 ≈ 1.414, not 1.5).
    assert r.dequantized.tolist() == [0.0, -1.0, 1.0, 4.0, 0.0, -2.0]
    assert r.codes.tolist() == [0, -1, 1, 3, 0, -2] and r.codes.dtype == torch.int8
    expected_mse = (0.3**2 + 0.25**2 + 0 + 1.0 + 0.01**2 + 0.5**2) / 6
    assert r.mse == pytest.approx(expected_mse, rel=1e-6)


@FAST
@given(arrays(np.float32, st.integers(1, 60), elements=values), st.integers(2, 8))
def test_log2_levels_are_powers_of_two_nearest_in_log_domain(a, bits):
    x = torch.from_numpy(a)
    r = log2_quantize(x, bits)
    q = r.dequantized.numpy().astype(np.float64)
    e_max, n = int(r.max_exp), (1 << (bits - 1)) - 1
    e_min = e_max - n + 1
    if np.abs(a).max() > 0:
        assert e_max == round(float(np.log2(np.abs(a).max().astype(np.float64))))
    levels = np.arange(e_min, e_max + 1, dtype=np.float64)  # the exponents on offer
    nz = q != 0
    # every non-zero output is ±2^e for an integer e in [e_min, e_max], with x's sign
    exps = np.log2(np.abs(q[nz]))
    assert np.array_equal(exps, np.round(exps)) and ((exps >= e_min) & (exps <= e_max)).all()
    assert (np.sign(q[nz]) == np.sign(a[nz])).all()
    # and the level nearest to log2|x| (brute force over the whole level set)
    log_a = np.log2(np.abs(a[nz]).astype(np.float64))
    best = np.abs(log_a[:, None] - levels[None, :]).min(axis=1)
    assert np.allclose(np.abs(log_a - exps), best, atol=1e-9)
    # zeros: exact zeros, or values below the flush cut 2^(e_min − ½)
    assert (np.abs(a[~nz]).astype(np.float64) <= 2.0 ** (e_min - 0.5) + 1e-12).all()
    # codes say the same thing: sign · (e − e_min + 1)
    codes = r.codes.numpy().astype(np.int64)
    assert np.array_equal(codes[nz], np.sign(q[nz]).astype(np.int64) * (exps.astype(np.int64) - e_min + 1))
    assert (codes[~nz] == 0).all() and np.abs(codes).max(initial=0) <= n
    assert r.mse == pytest.approx(float(np.mean((a.astype(np.float64) - q) ** 2)), rel=1e-9, abs=1e-30)


def test_log2_fixed_max_exp_saturates_and_per_channel_matches_slices():
    r = log2_quantize(torch.tensor([10.0, -40.0, 0.5]), 4, max_exp=2)
    assert r.dequantized.tolist() == [4.0, -4.0, 0.5]
    torch.manual_seed(0)
    w = torch.randn(3, 5, 2) * torch.tensor([0.01, 1.0, 50.0]).reshape(3, 1, 1)
    per_channel = log2_quantize(w, 4, axis=0)
    assert per_channel.max_exp.shape == (3,)
    for c in range(3):
        alone = log2_quantize(w[c], 4)
        assert per_channel.max_exp[c] == alone.max_exp
        assert torch.equal(per_channel.dequantized[c], alone.dequantized)
        assert torch.equal(per_channel.codes[c], alone.codes)
    assert log2_quantize(w, 4, axis=1).dequantized.shape == w.shape
    zeros = log2_quantize(torch.zeros(4), 3)
    assert zeros.dequantized.tolist() == [0.0] * 4 and zeros.mse == 0.0
    assert per_channel.to_dict()["max_exp"] == per_channel.max_exp.tolist()


def test_log2_user_errors():
    x = torch.randn(4)
    with pytest.raises(AicomputeError, match="1 bit is binary"):
        log2_quantize(x, 1)
    with pytest.raises(AicomputeError, match="bits from 2"):
        log2_quantize(x, 9)
    with pytest.raises(AicomputeError, match="not both"):
        log2_quantize(x, 4, axis=0, max_exp=1)
    with pytest.raises(AicomputeError, match="NaN"):
        log2_quantize(torch.tensor([1.0, float("nan")]), 4)


# --- k-means --------------------------------------------------------------------------------------


def test_kmeans_equals_sklearn_lloyd_from_the_same_start():
    """Same initial centroids, plain Lloyd, no tolerance: the same fixed point as scikit-learn's."""
    torch.manual_seed(1)
    x = torch.randn(3000)
    quantizer = KMeansQuantizer(4, init="density", iters=300).fit(x)
    start = quantizer.initial_centroids(x).numpy()[:, None]
    ref = KMeans(16, init=start, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(x.double().numpy()[:, None])
    assert quantizer.converged_
    np.testing.assert_allclose(quantizer.codebook_.numpy(), np.sort(ref.cluster_centers_[:, 0]), atol=1e-6)
    assert quantizer.apply(x).mse * x.numel() == pytest.approx(ref.inertia_, rel=1e-6)


@pytest.mark.parametrize(("bits", "tolerance"), [(2, 1.01), (3, 1.01), (4, 1.05)])
def test_kmeans_objective_close_to_sklearn_best_of_ten(bits, tolerance):
    """Linear-init Lloyd reaches a local optimum; sklearn's best of 10 k-means++ starts is the yardstick."""
    torch.manual_seed(2)
    x = torch.randn(20_000) * 0.05  # weight-like scale
    ours = kmeans_quantize(x, bits).mse * x.numel()
    ref = KMeans(2**bits, n_init=10, random_state=0).fit(x.double().numpy()[:, None]).inertia_
    assert ours <= tolerance * ref, f"k-means SSE {ours:.6g} vs sklearn {ref:.6g} ({ours / ref:.4f}×)"


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_kmeans_beats_uniform_on_gaussian_weights(bits):
    torch.manual_seed(3)
    x = torch.randn(5000) * 0.1
    km = kmeans_quantize(x, bits)
    assert km.mse <= uniform_mse(x, bits), f"k-means {km.mse:.3g} vs uniform {uniform_mse(x, bits):.3g}"


@FAST
@given(arrays(np.float32, st.integers(2, 200), elements=st.floats(-10, 10, width=32)), st.integers(1, 6))
def test_kmeans_assigns_nearest_centroid_and_reconstructs(a, k):
    x = torch.from_numpy(a)
    r = kmeans_quantize(x, k=k, iters=20)
    cb = r.codebook.numpy().astype(np.float64)
    assert r.codebook.numel() == k and (np.diff(cb) >= 0).all()
    dist = np.abs(a.astype(np.float64)[:, None] - cb[None, :])
    chosen = dist[np.arange(a.size), r.indices.numpy().astype(np.int64)]
    assert np.allclose(chosen, dist.min(axis=1), atol=1e-6)  # nearest (ties may go either way by rounding)
    assert torch.equal(r.dequantized, r.codebook[r.indices.long()])
    assert r.mse == pytest.approx(float(np.mean(np.min(dist, axis=1) ** 2)), rel=1e-5, abs=1e-9)


def test_kmeans_fixed_point_codebook_and_records():
    torch.manual_seed(4)
    w = torch.randn(8, 16)
    q = KMeansQuantizer(3).fit(w)
    r = q.apply(w)
    assert q.converged_ and r.indices.dtype == torch.uint8 and r.indices.shape == w.shape
    for i in range(8):  # converged Lloyd: every used centroid is the mean of its values
        members = w.reshape(-1)[r.indices.reshape(-1) == i]
        if members.numel():
            assert r.codebook[i].item() == pytest.approx(members.double().mean().item(), abs=1e-6)
    assert r.k == 8 and r.bits == 3
    assert r.to_dict()["codebook"] == r.codebook.tolist() and r.to_dict()["k"] == 8
    one = kmeans_quantize(w, k=1)
    assert one.codebook.item() == pytest.approx(w.double().mean().item(), abs=1e-6) and one.bits == 0
    # a fitted codebook quantizes other tensors too
    other = torch.tensor([-100.0, 0.0, 100.0])
    assert q.dequantize(q.quantize(other))[[0, 2]].tolist() == [r.codebook[0].item(), r.codebook[-1].item()]


def test_kmeans_determinism_by_seed():
    torch.manual_seed(5)
    x = torch.randn(2000)
    a = kmeans_quantize(x, 3, init="random", seed=7)
    b = kmeans_quantize(x, 3, init="random", seed=7)
    assert torch.equal(a.codebook, b.codebook) and torch.equal(a.indices, b.indices)
    starts = {tuple(KMeansQuantizer(3, init="random", seed=s).initial_centroids(x).tolist()) for s in range(3)}
    assert len(starts) == 3  # the seed picks the Forgy start
    lin = KMeansQuantizer(2).initial_centroids(torch.tensor([-1.0, 0.5, 2.0]))
    assert lin.tolist() == [-1.0, 0.0, 1.0, 2.0]  # Deep Compression's linear start: evenly over [min, max]


def test_kmeans_user_errors():
    x = torch.randn(10)
    with pytest.raises(AicomputeError, match="exactly one of bits"):
        KMeansQuantizer(2, k=4)
    with pytest.raises(AicomputeError, match="exactly one of bits"):
        KMeansQuantizer()
    with pytest.raises(AicomputeError, match="bits must be an integer from 1"):
        KMeansQuantizer(0)
    with pytest.raises(AicomputeError, match="init must be one of"):
        KMeansQuantizer(2, init="kmeans++")
    with pytest.raises(AicomputeError, match="distinct values"):
        kmeans_quantize(torch.zeros(10), 2, init="random")
    with pytest.raises(AicomputeError, match="call fit"):
        KMeansQuantizer(2).quantize(x)
    q = KMeansQuantizer(2).fit(x)
    with pytest.raises(AicomputeError, match="integer indices"):
        q.dequantize(x)
    with pytest.raises(AicomputeError, match=r"\[0, 3\]"):
        q.dequantize(torch.tensor([4]))
