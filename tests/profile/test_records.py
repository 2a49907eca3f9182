from aicompute.profile.records import CATEGORIES, OpRecord, is_tensor_category


def test_record_properties():
    r = OpRecord("aten.mm", "fc", "forward", "matmul", "float32", 10, 20, act_read=8, weight_read=4, written=8)
    assert (r.read, r.moved, r.counted, r.intensity) == (12, 20, True, 1.0)
    assert r.to_dict()["weight_read_bytes"] == 4
    uncounted = OpRecord("aten.foo", "", "forward", "uncounted", "float32", 0, None, 4, 0, 4)
    assert not uncounted.counted and uncounted.intensity == 0.0


def test_categories():
    assert is_tensor_category("conv") and not is_tensor_category("softmax")
    assert len(set(CATEGORIES)) == len(CATEGORIES)
