import torch

from aicompute.compress.quant.ptq import QuantConfig, quantize
from aicompute.compress.quant.qat import qat


def test_qat_recovers_accuracy_that_2bit_ptq_loses(digits_mlp):
    model, train, test = digits_mlp
    config = QuantConfig(bits=2, act_bits=8)
    ptq = quantize(model, train, config, eval_data=test)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = qat(model, train, config, epochs=2, lr=1e-3, eval_data=test)
    assert tuned.method == "qat" and tuned.float_accuracy == ptq.float_accuracy
    assert tuned.accuracy > ptq.accuracy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # fixed-scale QAT keeps the calibrated scales; the weights moved onto the grid
    assert torch.equal(tuned.layers[0].weight_qparams.scale, ptq.layers[0].weight_qparams.scale)


def test_lsq_learns_its_scales(digits_mlp):
    model, train, _ = digits_mlp
    config = QuantConfig(bits=3, act_bits=8, learnable=True)
    result = qat(model, train, config, epochs=1, lr=1e-3, max_steps=10)
    scale = result.layers[0].weight_qparams.scale
    init = 2 * model.layers[0].weight.detach().abs().mean(dim=1) / (2 ** 2 - 1) ** 0.5
    assert not torch.allclose(scale.flatten(), init)
