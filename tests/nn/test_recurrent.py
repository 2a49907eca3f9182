"""Recurrent cells and layers against torch's (same weights, float64) and the seed's equations by hand."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.errors import AicomputeError
from aicompute.models.registry import count_params
from aicompute.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

f64 = torch.float64
TOL = {"rtol": 0.0, "atol": 1e-6}
CELLS = {"rnn": (RNNCell, torch.nn.RNNCell), "lstm": (LSTMCell, torch.nn.LSTMCell), "gru": (GRUCell, torch.nn.GRUCell)}
LAYERS = {"rnn": (RNN, torch.nn.RNN), "lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU)}


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _bias_grads_match(ours, b_ih, b_hh, hidden, kind):
    """Our single bias b = b_ih + b_hh gets the gradient of either; a reset-after GRU's b_hn is apart."""
    if kind == "gru":
        torch.testing.assert_close(ours.bias.grad[: 2 * hidden], b_hh.grad[: 2 * hidden], **TOL)
        torch.testing.assert_close(ours.bias.grad[2 * hidden:], b_ih.grad[2 * hidden:], **TOL)
        torch.testing.assert_close(ours.bias_hn.grad, b_hh.grad[2 * hidden:], **TOL)
    else:
        torch.testing.assert_close(ours.bias.grad, b_ih.grad, **TOL)
        torch.testing.assert_close(ours.bias.grad, b_hh.grad, **TOL)


@settings(deadline=None, max_examples=12)
@given(kind=st.sampled_from(sorted(CELLS)), batch=st.integers(1, 4), steps=st.integers(1, 6), seed=st.integers(0, 99))
def test_cells_equal_torch_cells_over_steps_with_gradients(kind, batch, steps, seed):
    torch.manual_seed(seed)
    ours_cls, torch_cls = CELLS[kind]
    ref = torch_cls(3, 5).double()
    ours = ours_cls.from_torch(ref)
    xs = torch.randn(steps, batch, 3, dtype=f64, requires_grad=True)
    s_ref, s_ours = None, None
    for t in range(steps):
        s_ref = ref(xs[t], s_ref)
        s_ours = ours(xs[t], s_ours)
        for a, b in zip(_as_tuple(s_ours), _as_tuple(s_ref)):
            torch.testing.assert_close(a, b, **TOL)
    loss_ref = sum((s * torch.linspace(-1, 1, 5, dtype=f64)).sum() for s in _as_tuple(s_ref))
    loss_ours = sum((s * torch.linspace(-1, 1, 5, dtype=f64)).sum() for s in _as_tuple(s_ours))
    (gx_ref,) = torch.autograd.grad(loss_ref, xs, retain_graph=True)
    (gx_ours,) = torch.autograd.grad(loss_ours, xs, retain_graph=True)
    torch.testing.assert_close(gx_ours, gx_ref, **TOL)
    loss_ref.backward()
    loss_ours.backward()
    torch.testing.assert_close(ours.weight_ih.grad, ref.weight_ih.grad, **TOL)
    torch.testing.assert_close(ours.weight_hh.grad, ref.weight_hh.grad, **TOL)
    _bias_grads_match(ours, ref.bias_ih, ref.bias_hh, 5, kind)


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize(("batch_first", "batch", "with_state"), [(True, 3, False), (False, 1, True), (True, 2, True)])
def test_two_layer_networks_equal_torch_with_gradients(kind, batch_first, batch, with_state):
    torch.manual_seed(7)
    ours_cls, torch_cls = LAYERS[kind]
    ref = torch_cls(4, 6, num_layers=2, batch_first=batch_first, dropout=0.25).double().eval()
    ours = ours_cls.from_torch(ref).eval()
    assert (ours.batch_first, ours.num_layers, ours.dropout) == (batch_first, 2, 0.25)
    x = torch.randn(*((batch, 5) if batch_first else (5, batch)), 4, dtype=f64, requires_grad=True)
    state = None
    if with_state:
        h0 = torch.randn(2, batch, 6, dtype=f64)
        state = (h0, torch.randn(2, batch, 6, dtype=f64)) if kind == "lstm" else h0
    out_ref, s_ref = ref(x, state)
    out_ours, s_ours = ours(x, state)
    torch.testing.assert_close(out_ours, out_ref, **TOL)
    for a, b in zip(_as_tuple(s_ours), _as_tuple(s_ref)):
        torch.testing.assert_close(a, b, **TOL)
    w = torch.randn_like(out_ref)
    loss_ref = (out_ref * w).sum() + _as_tuple(s_ref)[-1].sum()  # through the outputs and the last state
    loss_ours = (out_ours * w).sum() + _as_tuple(s_ours)[-1].sum()
    (gx_ref,) = torch.autograd.grad(loss_ref, x, retain_graph=True)
    (gx_ours,) = torch.autograd.grad(loss_ours, x, retain_graph=True)
    torch.testing.assert_close(gx_ours, gx_ref, **TOL)
    loss_ref.backward()
    loss_ours.backward()
    for layer, cell in enumerate(ours.cells):
        torch.testing.assert_close(cell.weight_ih.grad, getattr(ref, f"weight_ih_l{layer}").grad, **TOL)
        torch.testing.assert_close(cell.weight_hh.grad, getattr(ref, f"weight_hh_l{layer}").grad, **TOL)
        _bias_grads_match(cell, getattr(ref, f"bias_ih_l{layer}"), getattr(ref, f"bias_hh_l{layer}"), 6, kind)


def test_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(5)
    x = torch.randn(4, 2, 3)
    one, two = LSTM(3, 8, dropout=0.5), LSTM(3, 8, num_layers=2, dropout=0.5)
    torch.testing.assert_close(one.train()(x)[0], one.eval()(x)[0])  # nothing between layers to drop
    assert (two.train()(x)[0] - two.eval()(x)[0]).abs().max() > 1e-3


def test_lstm_follows_the_seed_equations_by_hand():
    torch.manual_seed(0)
    cell = LSTMCell(3, 4).double()
    W = dict(zip("ifco", cell.weight_ih.detach().chunk(4)))  # torch's block order i, f, c̃, o
    U = dict(zip("ifco", cell.weight_hh.detach().chunk(4)))
    b = dict(zip("ifco", cell.bias.detach().chunk(4)))
    h, c = torch.randn(2, 4, dtype=f64), torch.randn(2, 4, dtype=f64)
    x = torch.randn(2, 3, dtype=f64)

    def gate(k, act):
        return act(x @ W[k].T + h @ U[k].T + b[k])

    f, i, o = gate("f", torch.sigmoid), gate("i", torch.sigmoid), gate("o", torch.sigmoid)
    c_new = f * c + i * gate("c", torch.tanh)
    h_new, c_out = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_new, o * torch.tanh(c_new), rtol=0, atol=1e-12)


def _seed_gru_step(cell, x, h):
    """The seed's GRU written out: reset before U_h, h = z ⊙ h_prev + (1 − z) ⊙ h̃."""
    W = dict(zip("rzh", cell.weight_ih.detach().chunk(3)))
    U = dict(zip("rzh", cell.weight_hh.detach().chunk(3)))
    b = dict(zip("rzh", cell.bias.detach().chunk(3)))
    z = torch.sigmoid(x @ W["z"].T + h @ U["z"].T + b["z"])
    r = torch.sigmoid(x @ W["r"].T + h @ U["r"].T + b["r"])
    h_tilde = torch.tanh(x @ W["h"].T + (r * h) @ U["h"].T + b["h"])
    return z * h + (1 - z) * h_tilde


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 999), steps=st.integers(1, 5))
def test_seed_gru_follows_the_seed_equations_by_hand(seed, steps):
    torch.manual_seed(seed)
    layer = GRU(3, 4, batch_first=True).double()
    assert layer.cells[0].reset_after is False and layer.cells[0].bias_hn is None
    x = torch.randn(2, steps, 3, dtype=f64)
    h = torch.zeros(2, 4, dtype=f64)
    outputs = []
    for t in range(steps):
        h = _seed_gru_step(layer.cells[0], x[:, t], h)
        outputs.append(h)
    out, h_n = layer(x)
    torch.testing.assert_close(out, torch.stack(outputs, dim=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n[0], h, rtol=0, atol=1e-12)


def test_seed_and_torch_gru_agree_only_when_the_reset_gate_is_open():
    torch.manual_seed(1)
    seed_form, torch_form = GRUCell(3, 4).double(), GRUCell(3, 4, reset_after=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias"):
            getattr(torch_form, name).copy_(getattr(seed_form, name))
        torch_form.bias_hn.zero_()
    x, h = torch.randn(5, 3, dtype=f64), torch.randn(5, 4, dtype=f64)
    assert (seed_form(x, h) - torch_form(x, h)).abs().max() > 1e-3  # r ⊙ (U h) != U (r ⊙ h)
    with torch.no_grad():
        for cell in (seed_form, torch_form):  # r = σ(50) = 1 in float64: the reset gate never resets
            cell.weight_ih[:4].zero_()
            cell.weight_hh[:4].zero_()
            cell.bias[:4].fill_(50.0)
    torch.testing.assert_close(seed_form(x, h), torch_form(x, h), rtol=0, atol=1e-12)


def test_update_gate_convention_maps_by_negating_z_rows():
    """A GRU written h = (1 − z')h_prev + z'h̃ equals ours with the z rows of W, U, b negated."""
    torch.manual_seed(2)
    theirs = GRUCell(3, 4).double()  # parameters read in the other convention by the step below
    x, h = torch.randn(2, 3, dtype=f64), torch.randn(2, 4, dtype=f64)
    W, U, b = (p.detach().chunk(3) for p in (theirs.weight_ih, theirs.weight_hh, theirs.bias))
    z_other = torch.sigmoid(x @ W[1].T + h @ U[1].T + b[1])
    r = torch.sigmoid(x @ W[0].T + h @ U[0].T + b[0])
    h_tilde = torch.tanh(x @ W[2].T + (r * h) @ U[2].T + b[2])
    want = (1 - z_other) * h + z_other * h_tilde
    ours = GRUCell(3, 4).double()
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        for p in (ours.weight_ih, ours.weight_hh, ours.bias):
            p[4:8].neg_()  # rows of the update gate (block order r, z, h̃)
    torch.testing.assert_close(ours(x, h), want, rtol=0, atol=1e-12)


def test_rnn_readout_is_v_times_h():
    torch.manual_seed(3)
    plain = RNN(3, 5, num_layers=2, batch_first=True).double()
    with_v = RNN(3, 5, num_layers=2, batch_first=True, output_size=2).double()
    with_v.load_state_dict(plain.state_dict(), strict=False)  # same cells; V is extra
    x = torch.randn(4, 6, 3, dtype=f64)
    h_seq, h_n = plain(x)
    y_seq, h_n2 = with_v(x)
    V = with_v.cells[-1].V.weight  # (2, 5)
    assert y_seq.shape == (4, 6, 2)
    torch.testing.assert_close(y_seq, h_seq @ V.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n2, h_n, rtol=0, atol=1e-12)
    assert with_v.cells[0].V is None


def test_relu_rnn_matches_torch():
    torch.manual_seed(4)
    ref = torch.nn.RNN(3, 4, nonlinearity="relu").double()
    x = torch.randn(5, 2, 3, dtype=f64)
    torch.testing.assert_close(RNN.from_torch(ref)(x)[0], ref(x)[0], **TOL)


def test_single_bias_saves_parameters():
    # torch: G·H·(I + H) + 2·G·H per layer; ours: one bias (G·H), plus b_hn (H) for a reset-after GRU.
    i, hs = 4, 6
    assert count_params(torch.nn.LSTM(i, hs)) - count_params(LSTM(i, hs)) == 4 * hs
    assert count_params(torch.nn.RNN(i, hs)) - count_params(RNN(i, hs)) == hs
    assert count_params(torch.nn.GRU(i, hs)) - count_params(GRU(i, hs, reset_after=True)) == 2 * hs
    assert count_params(LSTM(i, hs, num_layers=2)) == 4 * hs * (i + hs + 1) + 4 * hs * (hs + hs + 1)


def test_float32_defaults_and_init_range():
    layer = LSTM(3, 16)
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    assert max(p.abs().max().item() for p in layer.parameters()) <= 1 / 16**0.5  # U(−1/√H, 1/√H)


def test_bad_inputs_are_user_errors():
    with pytest.raises(AicomputeError, match="reset_after=True"):
        GRU(3, 4).cells[0].copy_from_torch_(torch.nn.GRUCell(3, 4))
    with pytest.raises(AicomputeError, match="bidirectional"):
        LSTM.from_torch(torch.nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(AicomputeError, match="takes a LSTM, not GRU"):
        LSTM.from_torch(torch.nn.GRU(3, 4))
    with pytest.raises(AicomputeError, match=r"expects input \(batch, seq_len, 3\)"):
        GRU(3, 4, batch_first=True)(torch.randn(2, 5, 4))
    with pytest.raises(AicomputeError, match=r"\(num_layers, batch, hidden\) = \(2, 2, 4\)"):
        RNN(3, 4, num_layers=2)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(AicomputeError, match=r"tuple \(h, c\)"):
        LSTM(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(AicomputeError, match=r"expects input \(batch, 3\)"):
        LSTMCell(3, 4)(torch.randn(3))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RNNCell(0, 4), "input_size must be a positive integer, got 0"),
        (lambda: GRUCell(3, -1), "hidden_size must be a positive integer, got -1"),
        (lambda: LSTM(3, 4, num_layers=0), "num_layers must be a positive integer, got 0"),
        (lambda: GRU(3, 4, num_layers=2, dropout=1.0), r"dropout must be a probability in \[0, 1\), got 1.0"),
    ],
)
def test_bad_sizes_are_named(build, message):
    with pytest.raises(AicomputeError, match=message):
        build()
