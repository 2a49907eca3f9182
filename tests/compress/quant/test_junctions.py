import copy

import pytest
import torch
from torch import nn

from aicompute.compress.quant.junctions import (
    CHILD,
    JunctionQuantizer,
    attach_junction_quantizers,
    container_problem,
    junction_quantizers,
)
from aicompute.compress.quant.qparams import QScheme, compute_qparams
from aicompute.errors import AicomputeError

UINT8 = QScheme(symmetric=False, signed=False)


class Block(nn.Module):
    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.block = Block()

    def forward(self, x):
        return self.block(torch.relu(self.stem(x)))


def calibrated(net: nn.Module, x: torch.Tensor) -> JunctionQuantizer:
    jq = attach_junction_quantizers(net, ["block"], UINT8)["block"]
    with torch.no_grad():
        net(x)
    return jq.freeze()


def test_hooks_quantize_the_block_input_for_every_reader_and_its_output():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(8, 3, 6, 6)
    with torch.no_grad():
        block_in = torch.relu(net.stem(x))
        float_out = net.block(block_in)
    jq = calibrated(net, x)
    qi, qo = jq.input_qparams(), jq.output_qparams()
    # calibrated on exactly the block's input and output: MinMax over them
    assert qi.scale.item() == pytest.approx(block_in.max().item() / 255, rel=1e-6) and qi.zero_point.item() == 0
    assert qo.scale.item() == pytest.approx(float_out.max().item() / 255, rel=1e-6)
    with torch.no_grad():
        xq = qi.fake_quantize(block_in)
        expected = qo.fake_quantize(torch.relu(net.block.conv(xq) + xq))  # the skip path sees xq too
        assert torch.equal(net(x), expected)
        assert not torch.equal(expected, float_out)


def test_deepcopy_and_state_dict_carry_the_quantizers():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(8, 3, 6, 6)
    calibrated(net, x)
    twin = copy.deepcopy(net)
    assert junction_quantizers(twin)["block"] is not junction_quantizers(net)["block"]
    with torch.no_grad():
        before = net(x)
        assert torch.equal(twin(x), before)
        # the copy's hooks run the copy's quantizers: a coarser grid there changes the copy only
        junction_quantizers(twin)["block"].output_quantizer._frozen = compute_qparams(0.0, 100.0, UINT8)
        assert not torch.equal(twin(x), before) and torch.equal(net(x), before)
    keys = [k for k in net.state_dict() if CHILD in k]
    assert keys and all(k.startswith("block.junction_quantizer.") for k in keys)


def test_junction_quantizers_are_found_by_block_name():
    net = Net()
    attach_junction_quantizers(net, ["block"], UINT8)
    assert list(junction_quantizers(net)) == ["block"]
    assert list(junction_quantizers(Net())) == []


def test_bad_blocks_and_missing_calibration_are_refused():
    net = Net()
    with pytest.raises(AicomputeError, match="no junction block 'nope'"):
        attach_junction_quantizers(net, ["nope"], UINT8)
    with pytest.raises(AicomputeError, match="no junction block ''"):
        attach_junction_quantizers(net, [""], UINT8)
    seq = nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1)))
    assert "Sequential subclass" in container_problem(seq[0])
    with pytest.raises(AicomputeError, match="Sequential subclass"):
        attach_junction_quantizers(seq, ["0"], UINT8)
    attach_junction_quantizers(net, ["block"], UINT8)
    with pytest.raises(AicomputeError, match="already has a 'junction_quantizer'"):
        attach_junction_quantizers(net, ["block"], UINT8)
    with pytest.raises(AicomputeError, match="saw no calibration data"):
        junction_quantizers(net)["block"].freeze()
    with pytest.raises(AicomputeError, match="per tensor"):
        JunctionQuantizer(QScheme(axis=0))
