"""RNN / LSTM / GRU sequence classifiers and character language models (models/recurrent.py)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aicompute.data.info import DatasetInfo
from aicompute.errors import AicomputeError
from aicompute.models import build_for_dataset, count_params, example_input, get_model, model_spec
from aicompute.models.recurrent import CharLM, RecurrentClassifier, as_sequence

CELLS = ["rnn", "lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


# ------------------------------------------------------------- reference: the cell equations, step by step


def _step(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gi = x @ w_ih.T + b_ih  # input part of every gate, (B, G·H)
    gh = h @ w_hh.T + b_hh  # recurrent part, (B, G·H)
    if cell == "rnn":  # h' = tanh(W_ih x + W_hh h + b)
        return torch.tanh(gi + gh), c
    if cell == "lstm":  # gates in torch's order i, f, g, o
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    # GRU, gates r, z, n: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, c


def reference_last_hidden(cell, rnn, seq):
    """The last layer's final state of every direction, concatenated: (B, dirs·H)."""
    b, t, _ = seq.shape
    dirs = 2 if rnn.bidirectional else 1
    layer_in = seq
    for layer in range(rnn.num_layers):
        outs, finals = [], []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            weights = [getattr(rnn, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = c = seq.new_zeros(b, rnn.hidden_size)
            out = [None] * t
            for s in (range(t - 1, -1, -1) if d else range(t)):
                h, c = _step(cell, layer_in[:, s], h, c, *weights)
                out[s] = h
            outs.append(torch.stack(out, dim=1))
            finals.append(h)
        layer_in = torch.cat(outs, dim=-1)
    return torch.cat(finals, dim=-1)


# ------------------------------------------------------------------------------------- sequence classifiers


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_classifier_reads_the_last_hidden_state(cell, num_layers, bidirectional):
    torch.manual_seed(0)
    model = get_model(cell, input_size=3, hidden_size=5, num_layers=num_layers, bidirectional=bidirectional)
    x = torch.randn(4, 6, 3)
    expected = model.head(reference_last_hidden(cell, model.rnn, x))
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_param_count_closed_form(cell):
    # each of G gates: H·F input weights + H·H recurrent weights + 2H biases; head: H·C + C
    g, h, f, c = GATES[cell], 128, 28, 10
    assert count_params(get_model(cell)) == g * (h * f + h * h + 2 * h) + h * c + c


def test_lstm_default_param_count_by_hand():
    # 4 · (128·28 + 128·128 + 2·128) + 128·10 + 10 = 4 · 20,224 + 1,290
    assert count_params(get_model("lstm")) == 82_186


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 5))
def test_images_are_read_row_by_row(b, c, h, w):
    x = torch.randn(b, c, h, w)
    seq = as_sequence(x, c * w)
    # step r holds row r of channel 0, then row r of channel 1, ...
    expected = torch.stack([torch.cat([x[:, ch, r, :] for ch in range(c)], dim=-1) for r in range(h)], dim=1)
    assert torch.equal(seq, expected)


def test_signal_is_one_value_per_step():
    x = torch.randn(2, 9)
    assert torch.equal(as_sequence(x, 1), x[:, :, None])
    torch.manual_seed(0)
    model = get_model("gru", input_size=1, hidden_size=4)
    torch.testing.assert_close(model(x), model(x[:, :, None]), rtol=0, atol=0)


def test_image_and_sequence_layouts_agree():
    torch.manual_seed(0)
    model = get_model("lstm", hidden_size=8)
    img = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(img), model(img[:, 0]), rtol=0, atol=0)


def test_wrong_features_per_step_names_the_fix():
    model = get_model("rnn", hidden_size=4)
    with pytest.raises(AicomputeError, match="input_size=27"):
        model(torch.randn(2, 28, 27))
    with pytest.raises(AicomputeError, match="input_size=1"):
        model(torch.randn(2, 28))
    with pytest.raises(AicomputeError, match="got shape"):
        model(torch.randn(2, 2, 2, 2, 2))


def test_unknown_cell_is_rejected():
    with pytest.raises(AicomputeError, match="rnn, lstm, gru"):
        RecurrentClassifier("transformer", input_size=2, num_classes=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": 0}, "input_size must be a positive integer, got 0"),
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"hidden_size": -4}, "hidden_size must be a positive integer, got -4"),
        ({"num_layers": 0}, "num_layers must be a positive integer, got 0"),
        ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ],
)
def test_classifier_arguments_are_checked_by_name(kwargs, message):
    with pytest.raises(AicomputeError, match=message):
        get_model("gru", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embed_dim": 0}, "embed_dim must be a positive integer, got 0"),  # not "input_size", the fused name
        ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
        ({"block_size": 0}, "block_size must be a positive integer, got 0"),
        ({"dropout": -0.1}, "dropout must be a probability"),
    ],
)
def test_char_lm_arguments_are_checked_by_name(kwargs, message):
    with pytest.raises(AicomputeError, match=message):
        get_model("char-lstm", **kwargs)


def test_classifier_registry_entries_and_dataset_fit():
    for name in CELLS:
        spec = model_spec(name)
        assert (spec.family, spec.input_shape) == ("sequence", (28, 28))
        assert get_model(name, hidden_size=8)(example_input(spec, 2)).shape == (2, 10)
    image = DatasetInfo(name="img", task="classification", input_shape=(3, 8, 6), num_classes=4)
    model, kwargs = build_for_dataset("lstm", image, hidden_size=8)
    assert kwargs["input_size"] == 18
    assert model(torch.randn(2, 3, 8, 6)).shape == (2, 4)
    signal = DatasetInfo(name="sig", task="classification", input_shape=(40,), num_classes=10, kind="signal")
    model, kwargs = build_for_dataset("gru", signal, hidden_size=8)
    assert kwargs["input_size"] == 1
    assert model(torch.randn(5, 40)).shape == (5, 10)


# ------------------------------------------------------------------------------------------ character LMs

TEXT = "hello world, hello recurrent nets! "


def _toy_tokens():
    vocab = sorted(set(TEXT))
    return torch.tensor([[vocab.index(ch) for ch in TEXT]]), len(vocab)


@pytest.mark.parametrize("cell", CELLS)
def test_char_lm_shapes_and_stepwise_equivalence(cell):
    torch.manual_seed(0)
    model = get_model(f"char-{cell}", vocab_size=11, embed_dim=6, hidden_size=8, num_layers=2)
    idx = torch.randint(0, 11, (3, 7))
    logits = model(idx)
    assert logits.shape == (3, 7, 11)
    state, steps = None, []
    for t in range(7):  # one token at a time, carrying the hidden state
        step_logits, state = model.forward_state(idx[:, t : t + 1], state)
        steps.append(step_logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_char_lm_overfits_a_fixed_sequence(cell, next_token_losses):
    torch.manual_seed(0)
    tokens, vocab = _toy_tokens()
    model = get_model(f"char-{cell}", vocab_size=vocab, embed_dim=16, hidden_size=32)
    losses = next_token_losses(model, tokens, torch.optim.Adam(model.parameters(), lr=0.02), 40)
    assert losses[0] > 2.0  # about ln(vocab) at the start
    assert losses[-1] < 0.1 * losses[0], losses


def test_char_lm_generation_length_and_determinism(check_seeded_generation):
    torch.manual_seed(0)
    model = get_model("char-lstm", vocab_size=13, embed_dim=8, hidden_size=16)
    prompt = torch.randint(0, 13, (2, 4))
    a = check_seeded_generation(model, prompt, 20, 13, seeds=(7, 8))
    assert a.shape == (2, 24)
    assert model.generate(prompt, 0).shape == (2, 4)


def test_char_lm_greedy_generation_matches_full_recompute():
    torch.manual_seed(0)
    model = get_model("char-gru", vocab_size=9, embed_dim=4, hidden_size=8, dropout=0.0)
    seq = torch.randint(0, 9, (2, 3))
    out = model.generate(seq, 6, temperature=0)
    for _ in range(6):  # reference: re-read the whole sequence each step, take the argmax
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    assert torch.equal(model.generate(out[:, :3], 6, top_k=1), out)


def test_char_lm_generate_restores_training_mode_and_checks_input():
    model = get_model("char-rnn", vocab_size=5, embed_dim=4, hidden_size=4, num_layers=2, dropout=0.5)
    model.train()
    model.generate(torch.zeros(1, 2, dtype=torch.long), 3)
    assert model.training and model.rnn.training
    with pytest.raises(AicomputeError, match="int64"):
        model(torch.zeros(1, 3))
    with pytest.raises(AicomputeError, match="at least one token"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(AicomputeError, match="max_new_tokens"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), -1)


def test_char_lm_token_ids_must_lie_in_the_vocabulary():
    model = get_model("char-gru", vocab_size=5, embed_dim=4, hidden_size=4)
    assert model(torch.tensor([[0, 4]])).shape == (1, 2, 5)
    with pytest.raises(AicomputeError, match=r"CharLM got token id 5 but its vocabulary has 5 ids"):
        model(torch.tensor([[0, 5]]))
    with pytest.raises(AicomputeError, match=r"CharLM.generate got token id 9 .*vocab_size >= 10"):
        model.generate(torch.tensor([[9]]), 2)


def test_char_lm_registry_entries_and_dataset_fit(chars_info):
    for cell in CELLS:
        spec = model_spec(f"char-{cell}")
        assert (spec.family, spec.input_shape, spec.input_dtype) == ("lm", (64,), "int64")
    model, kwargs = build_for_dataset("char-lstm", chars_info, hidden_size=16)
    assert isinstance(model, CharLM) and model.block_size == 32
    assert kwargs == {"vocab_size": 70, "block_size": 32, "hidden_size": 16}
    assert model(torch.randint(0, 70, (2, 32))).shape == (2, 32, 70)
