"""profile(): totals against FlopCounterMode and closed forms, the real backward, purity, phases, errors."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.errors import AicomputeError
from aicompute.models import example_input, get_model, model_spec
from aicompute.profile import parse_shape, profile
from aicompute.profile.api import parse_input


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "mobilenet_v2", "transformer", "lstm"])
def test_params_and_macs_equal_flop_counter_mode(name):
    model = get_model(name, device="meta")
    x = example_input(model_spec(name), 2, device="meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(x)
    result = profile(name, batch_size=2)
    assert result.params == sum(p.numel() for p in model.parameters())
    # On meta, SDPA runs its math path (bmm) which FlopCounterMode counts; we see the fused kernel.
    assert 2 * result.macs == fc.get_total_flops()


def test_training_counts_the_real_backward_not_forward_times_three():
    # x -> Linear(a,b) -> Linear(b,c). Backward: layer 2 needs grad_input and grad_weight, layer 1 only
    # grad_weight (its input needs no gradient): 2·N·a·b + 3·N·b·c MACs in all. With layer 1 frozen,
    # layer 2 needs no grad_input either: N·a·b + 2·N·b·c.
    n, a, b, c = 4, 6, 5, 3
    net = nn.Sequential(nn.Linear(a, b), nn.Linear(b, c))
    result = profile(net, input_shape=(n, a), mode="training")
    assert result.macs == 2 * n * a * b + 3 * n * b * c
    frozen = copy.deepcopy(net)
    frozen[0].requires_grad_(False)  # no weight gradient for layer 1 at all
    assert profile(frozen, input_shape=(n, a), mode="training").macs == n * a * b + 2 * n * b * c
    assert profile(frozen, input_shape=(n, a), mode="training").trainable_params == b * c + c


def test_profiling_leaves_the_model_untouched():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    net[1].eval()  # a mixed-mode model: must come back exactly so
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = [id(p) for p in net.parameters()]
    hooks_before = len(nn.modules.module._global_forward_hooks)
    first = profile(net, input_shape=(2, 1, 6, 6), mode="training")
    second = profile(net, input_shape=(2, 1, 6, 6), mode="training")
    assert first.to_dict(records=True)["records"] == second.to_dict(records=True)["records"]
    assert [id(p) for p in net.parameters()] == params
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # running stats too
    assert all(p.grad is None for p in net.parameters())
    assert (net.training, net[1].training) == (True, False)
    assert len(nn.modules.module._global_forward_hooks) == hooks_before
    assert all(p.device.type == "cpu" for p in net.parameters())


class _LazyCache(nn.Module):
    """Builds a tensor cache on itself in its first forward (as lazy rotary / mask caches do)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.cache, self.calls = nn.Linear(8, 8), None, []

    def forward(self, x):
        if self.cache is None:
            self.cache = torch.ones(x.shape[0], 8)
        self.calls.append(x.shape)
        self.register_buffer("scratch", torch.zeros(1))
        return self.linear(x) + self.cache


def test_profiling_leaves_no_fake_tensor_or_attribute_on_the_model():
    net = _LazyCache()
    profile(net, input_shape=(4, 8), mode="training")
    assert net.cache is None and net.calls == [] and "scratch" not in dict(net.named_buffers())
    x = torch.randn(4, 8)
    assert torch.equal(net(x), net.linear(x) + 1)  # a real forward afterwards builds a real cache


class _Frozen(dict):
    """A mapping that refuses writes (as immutable-mapping and model-output types do)."""

    def update(self, *args, **kwargs):
        raise TypeError("immutable")

    def clear(self):
        raise TypeError("immutable")


class _WithConfig(nn.Module):
    def __init__(self, mutate: bool) -> None:
        super().__init__()
        self.linear, self.config, self.mutate = nn.Linear(4, 4), _Frozen(width=4), mutate

    def forward(self, x):
        if self.mutate:
            dict.__setitem__(self.config, "width", 5)
        return self.linear(x)


def test_an_immutable_mapping_is_left_alone_unless_the_forward_changed_it():
    net = _WithConfig(mutate=False)
    net.eval()
    profile(net, input_shape=(2, 4), mode="training")
    assert not net.training and net.config == {"width": 4}
    with pytest.raises(AicomputeError, match=r"changed _WithConfig.config and could not put them back"):
        profile(_WithConfig(mutate=True), input_shape=(2, 4))


def test_decode_of_several_new_tokens_ends_at_kv_len():
    # 3 new tokens after 7 cached: each attends over all 10 slots (the causal mask is not subtracted)
    result = profile("transformer", phase="decode", kv_len=10, input_shape=(1, 3))
    layers, d = 4, 128
    assert result.kv_cache_bytes == 2 * layers * 10 * d * 4
    assert sum(r.macs for r in result.records if r.category == "attention") == layers * 3 * 10 * 2 * d
    with pytest.raises(AicomputeError, match="decode of 3 new tokens per sequence needs kv_len of at least 3"):
        profile("transformer", phase="decode", kv_len=2, input_shape=(1, 3))


def test_meta_model_profiles_without_weights():
    result = profile("gpt2-small", input_shape=(1, 128))
    assert result.params == 124_439_808
    per_token = 2 * (124_439_808 - 1024 * 768)  # ≈ 2·N FLOPs per token, minus the position table
    matmul_flops = sum(r.flops for r in result.records if r.category == "matmul")
    assert matmul_flops == pytest.approx(128 * per_token, rel=0.01)


def test_decode_reads_the_kv_cache():
    kv_len = 33
    result = profile("transformer", phase="decode", kv_len=kv_len, batch_size=2)
    layers, d = 4, 128
    cache_bytes = 2 * layers * 2 * kv_len * d * 4  # k and v, L layers, B=2, float32
    assert result.kv_cache_bytes == cache_bytes
    attention = [r for r in result.records if r.category == "attention"]
    assert len(attention) == layers
    # every layer's attention reads the whole cache (k and v over kv_len positions) plus one query
    assert sum(r.act_read for r in attention) == cache_bytes + layers * 2 * d * 4
    assert result.inputs[0][0] == [2, 1]
    prefill = profile("transformer", phase="prefill", batch_size=2, input_shape=(2, kv_len))
    assert prefill.macs > 20 * result.macs  # prefill is compute; decode is dominated by bytes
    assert result.total.intensity < prefill.total.intensity


def test_shape_error_names_the_module():
    net = nn.Sequential(nn.Linear(8, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(AicomputeError, match=r"module '1\.1' \(Linear\)"):
        profile(net, input_shape=(2, 8))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"dtype": "fp64"}, "trace dtypes"),
        ({"mode": "eval"}, "mode must be"),
        ({"phase": "decode"}, "no KV cache"),
        ({"kv_len": 8}, "phase='decode'"),
        ({"mode": "training", "phase": "prefill"}, "drop --training"),
        ({"optimizer": "lion"}, "unknown optimizer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(AicomputeError, match=message):
        profile(nn.Linear(2, 2), input_shape=(1, 2), **kwargs)


def test_user_module_needs_a_shape_and_shapes_parse():
    with pytest.raises(AicomputeError, match="input shape is unknown"):
        profile(nn.Linear(2, 2))
    assert parse_shape("1x3x224x224") == (1, 3, 224, 224)
    with pytest.raises(AicomputeError):
        parse_shape("1x0")
    with pytest.raises(AicomputeError):
        parse_shape("axb")
    with pytest.raises(AicomputeError, match="block_size"):
        profile("transformer", phase="decode", kv_len=65)


class _TokensAndFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.proj = nn.Embedding(50, 16), nn.Linear(6, 16)

    def forward(self, idx, features):
        return self.emb(idx) + self.proj(features)


def test_several_inputs_and_integer_ones_from_shapes():
    assert parse_input("1x128:int64") == ((1, 128), torch.int64)
    assert parse_input("2x3") == parse_input("2x3:float") == ((2, 3), None)
    result = profile(_TokensAndFeatures(), input_shape=["2x5:int64", "2x5x6"])
    assert [dt for _, dt in result.inputs] == ["int64", "float32"]
    assert result.macs == 2 * 5 * 6 * 16  # the projection; the embedding is a gather
    assert profile(_TokensAndFeatures(), input_shape=["2x5:int64", (2, 5, 6)], dtype="bf16").inputs[1][1] == "bfloat16"
    with pytest.raises(AicomputeError, match="give the shape as e.g. 1x128:int64"):
        profile(_TokensAndFeatures(), input_shape=["2x5", "2x5x6"])  # float token ids
    with pytest.raises(AicomputeError, match="names dtype 'int8'"):
        parse_input("1x4:int8")
    # a zoo language model reads token ids unless the shape says otherwise
    assert profile("transformer", input_shape="1x8").inputs == [([1, 8], "int64")]
    with pytest.raises(AicomputeError, match="reads token ids as a .* int64 tensor"):
        profile("transformer", input_shape="1x8:float")
