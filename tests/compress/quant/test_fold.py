"""BatchNorm folding: outputs equal to the conv + BN they replace, on hand-built nets and zoo models."""

import pytest
import torch
from torch import nn

from aicompute.compress.quant.fold import conv_bn_pairs, fold_batchnorm
from aicompute.errors import AicomputeError
from aicompute.models import get_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so folding changes the weights."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g))
                m.bias.data.copy_(torch.randn(n, generator=g))
    return model


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


class AttributeBlock(nn.Module):
    """conv → bn used through attributes, and a second conv whose BN is applied after a ReLU (not foldable)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)  # registered right after conv2 but fed relu(conv2(x))
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        return self.bn2(self.relu(self.conv2(x)))


class SharedOutput(nn.Module):
    """The conv's output feeds the BN and the residual sum: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def _conv_bn_net() -> nn.Module:
    return nn.Sequential(
        AttributeBlock(),
        nn.Sequential(nn.Conv2d(8, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU()),
        nn.Conv2d(6, 4, 1),
        nn.BatchNorm2d(4, affine=False),
        SharedOutput(),
        nn.Flatten(),
    )


# -- BatchNorm folding -------------------------------------------------------------------------------------


def test_fold_batchnorm_on_a_random_conv_bn_net():
    torch.manual_seed(0)
    model = _randomise_batchnorm(_conv_bn_net()).eval()
    before = _snapshot(model)
    x = torch.randn(2, 3, 10, 10)
    folded = fold_batchnorm(model)
    assert sorted(conv_bn_pairs(model)) == [("0.conv", "0.bn"), ("1.0", "1.1"), ("2", "3")]
    assert torch.allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(isinstance(m, nn.Identity) for m in (folded[0].bn, folded[1][1], folded[3]))
    assert isinstance(folded[0].bn2, nn.BatchNorm2d) and isinstance(folded[4].bn, nn.BatchNorm2d)  # not foldable
    assert folded[1][0].bias is not None  # a conv without bias gets BN's shift as its bias
    assert _state_equal(model.state_dict(), before)  # the input model is untouched
    assert isinstance(model[0].bn, nn.BatchNorm2d)


def test_fold_batchnorm_matches_the_closed_form():
    conv, bn = nn.Conv1d(2, 3, 3), _randomise_batchnorm(nn.BatchNorm1d(3), seed=1)
    folded = fold_batchnorm(nn.Sequential(conv, bn).eval())
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(folded[0].weight, conv.weight * factor[:, None, None], rtol=1e-6)
    assert torch.allclose(folded[0].bias, (conv.bias - bn.running_mean) * factor + bn.bias, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape", "pairs"),
    [
        ("lenet5", {"num_classes": 10, "in_channels": 1, "image_size": 28}, (2, 1, 28, 28), 0),
        # 1 stem + 8 blocks × 2 + 3 downsample projections
        ("resnet18", {"num_classes": 10, "image_size": 32, "width": 8}, (2, 3, 32, 32), 20),
    ],
)
def test_fold_batchnorm_on_zoo_models(name, kwargs, shape, pairs):
    torch.manual_seed(0)
    model = _randomise_batchnorm(get_model(name, **kwargs)).eval()
    before = _snapshot(model)
    x = torch.randn(shape)
    folded = fold_batchnorm(model)
    assert len(conv_bn_pairs(model)) == pairs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert _state_equal(model.state_dict(), before)


def test_fold_batchnorm_leaves_reused_and_unknown_modules_alone():
    bn = nn.BatchNorm2d(3)
    reused = nn.Sequential(nn.Conv2d(3, 3, 1), bn, nn.Conv2d(3, 3, 1), bn)  # one BN registered twice
    assert conv_bn_pairs(reused) == []

    class WeightStandardisedConv(nn.Conv2d):  # a subclass may compute differently: never folded
        pass

    assert conv_bn_pairs(nn.Sequential(WeightStandardisedConv(3, 3, 1), nn.BatchNorm2d(3))) == []
    assert conv_bn_pairs(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(3))) == []  # channel mismatch
    with pytest.raises(AicomputeError, match="takes an nn.Module"):
        fold_batchnorm("model")
