from aicompute.models import count_params, get_model, list_models, zoo_table

# Reference parameter counts the zoo must reproduce exactly (torchvision / the papers / GPT-2).
REFERENCE = {
    "mlp": 266_610,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "efficientnet_b4": 19_341_616,
    "gpt2-small": 124_439_808,
}


def test_zoo_table_lists_every_model_with_exact_params():
    table = zoo_table()
    by_name = {r.name: r for r in table.rows}
    assert [r.name for r in table.rows] == [s.name for s in list_models()]
    for name, params in REFERENCE.items():
        assert by_name[name].params == params, name
    assert by_name["gpt3-175b"].params > 174e9
    record = table.to_dict()
    assert record["models"][0]["name"] == table.rows[0].name
    assert "params" in record["convention"]


def test_zoo_table_params_equal_a_real_build_for_small_models():
    table = {r.name: r.params for r in zoo_table().rows}
    for name in ("perceptron", "mlp", "lenet5"):
        assert table[name] == count_params(get_model(name))


def test_every_zoo_model_builds_on_meta_without_weight_memory():
    for spec in list_models():
        model = get_model(spec.name, device="meta")
        tensors = list(model.parameters()) + list(model.buffers())
        assert tensors and all(t.is_meta for t in tensors), spec.name
