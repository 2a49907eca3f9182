"""The classic-CNN table against torch's FlopCounterMode, the published parameter counts and the seed's
printed figures."""

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.models.registry import get_model
from aicompute.profile.cnn_table import SEED_CNN_TABLE, SeedCNN, cnn_table


@pytest.fixture(scope="module")
def cnns():
    return cnn_table()


def torch_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """torch's own count (FLOPs = 2 × MACs for conv/matmul) on a meta forward."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops() // 2


PUBLISHED_PARAMS = {  # torchvision's published counts (LeNet-5: the seed's layer table, 10 classes)
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet50": 25_557_032,
    "efficientnet_b4": 19_341_616,
}


def test_seed_table_is_parsed_as_printed():
    assert [s.label for s in SEED_CNN_TABLE] == ["LeNet-5", "AlexNet", "VGG16", "GoogLeNet", "ResNet50",
                                                 "EfficientNet-B4"]
    assert [s.year for s in SEED_CNN_TABLE] == [1998, 2012, 2015, 2015, 2016, 2019]
    assert [s.image_size for s in SEED_CNN_TABLE] == [28, 227, 224, 224, 224, 380]
    assert (SeedCNN.value("341k"), SeedCNN.value("25.5M"), SeedCNN.value("1.43G")) == (341e3, 25.5e6, 1.43e9)


def test_cnn_params_are_the_published_counts(cnns):
    assert {r.seed.zoo_name: r.params for r in cnns.entries} == PUBLISHED_PARAMS
    for r in cnns.entries:
        assert r.params_ratio == pytest.approx(1.0, abs=0.06), r.seed.label  # the seed rounds (7M, 60k)


def test_cnn_macs_equal_torch_flop_counter(cnns):
    for r in cnns.entries:
        model = get_model(r.seed.zoo_name, device="meta", image_size=r.seed.image_size,
                          in_channels=r.seed.in_channels)
        assert r.macs == torch_macs(model, r.input_shape), r.seed.label


def test_cnn_macs_close_to_the_seed_where_the_layouts_agree(cnns):
    for name in ("alexnet", "vgg16", "efficientnet_b4"):
        assert cnns[name].macs_ratio == pytest.approx(1.0, abs=0.015), name
    # ResNet-50: torchvision v1.5 (4.09G) is ~5 % above the seed's 3.9G; v1 (stride on the 1×1) is 3.86G
    resnet = cnns["resnet50"]
    assert resnet.macs_ratio == pytest.approx(1.05, abs=0.01)
    assert resnet.note_figures["v1_macs"] / 3.9e9 == pytest.approx(1.0, abs=0.015)
    # AlexNet as built on two GPUs is exactly the seed's 61M / 724M
    alex = cnns["alexnet"].note_figures
    assert (round(alex["two_gpu_params"], -6), round(alex["two_gpu_macs"], -6)) == (61e6, 724e6)
    # GoogLeNet with the paper's 5×5 branch has the seed's 7M params
    assert cnns["googlenet"].note_figures["paper_params"] / 7e6 == pytest.approx(1.0, abs=0.005)
    # LeNet-5 after the seed's layer table: conv1 6·25·28·28, conv2 16·150·10·10, FC 400·120 + 120·84 + 84·10
    lenet = cnns["lenet5"]
    assert lenet.note_figures == {"conv_macs": 6 * 25 * 784 + 16 * 150 * 100, "fc_macs": 48_000 + 10_080 + 840}
    assert lenet.macs == sum(lenet.note_figures.values())


def test_resnet50_v1_figure_matches_a_real_v1_model(cnns):
    model = get_model("resnet50", device="meta")
    for stage in (model.layer2, model.layer3, model.layer4):  # move the stride from the 3×3 to the first 1×1
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    assert torch_macs(model, (1, 3, 224, 224)) == cnns["resnet50"].note_figures["v1_macs"]


def test_cnn_table_record(cnns):
    record = cnns.to_dict()
    assert record["kind"] == "cnn-table" and len(record["rows"]) == 6
    row = record["rows"][4]
    assert (row["model"], row["seed_params"], row["seed_macs"], row["params"]) == ("ResNet50", "25.5M", "3.9G",
                                                                                   25_557_032)
    json.dumps(record)
    assert len(cnns.rows()[0]) == len(cnns.COLUMNS) and len(cnns.notes()) == 4
