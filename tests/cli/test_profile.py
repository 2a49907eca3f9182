"""`aicompute profile` in-process: JSON record, tables, CSV and PNG artifacts, and user mistakes."""

import csv
import json

import pytest

from aicompute.cli.main import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_profile_json_matches_the_library(capsys):
    from aicompute.profile import profile

    code, out, err = run(capsys, "profile", "lenet5", "--json", "--input", "2x1x32x32", "--training")
    assert code == 0, err
    record = json.loads(out)
    expected = profile("lenet5", input_shape=(2, 1, 32, 32), mode="training")
    assert record["summary"]["macs"] == expected.macs
    assert record["summary"]["params"] == 61_706
    assert record["mode"] == "training" and record["memory"]["optimizer"] == "adam"


def test_profile_table_csv_and_roofline_png(capsys, tmp_path):
    table = tmp_path / "ops.csv"
    png = tmp_path / "roof.png"
    code, out, err = run(capsys, "profile", "mlp", "--by", "op", "--csv", str(table), "--roofline", str(png))
    assert code == 0, err
    assert "aten.addmm" in out and "roofline on" in out and "memory-bound" in out
    rows = list(csv.DictReader(table.open()))
    assert {r["op"] for r in rows} >= {"aten.addmm", "aten.relu"}
    assert "est. ms" in rows[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_decode_phase(capsys):
    code, out, err = run(capsys, "profile", "transformer", "--phase", "decode", "--kv-len", "16", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["phase"] == "decode" and record["memory"]["kv_cache_bytes"] == 2 * 4 * 16 * 128 * 4


def test_module_csv_names_each_module_by_its_path(capsys, tmp_path):
    table = tmp_path / "modules.csv"
    code, _, err = run(capsys, "profile", "transformer", "--depth", "3", "--csv", str(table))
    assert code == 0, err
    rows = list(csv.DictReader(table.open()))
    paths = [r["module"] for r in rows]
    assert paths[0] == "(model)" and len(set(paths)) == len(paths)  # blocks.0.ln_1 and blocks.1.ln_1 apart
    assert {"blocks.0.ln_1", "blocks.1.ln_1"} <= set(paths)
    assert int(rows[0]["output bytes"]) == 1 * 64 * 100 * 4  # the logits: batch 1 × 64 tokens × 100 symbols


def test_integer_and_several_inputs_from_the_cli(capsys):
    code, out, err = run(capsys, "profile", "tests.profile.test_api:_TokensAndFeatures", "--input", "2x5:int64",
                         "--input", "2x5x6", "--json")
    assert code == 0, err
    assert [i["dtype"] for i in json.loads(out)["inputs"]] == ["int64", "float32"]


def test_tf32_pricing_is_reachable_from_the_cli(capsys):
    def latency(*extra):
        code, out, err = run(capsys, "profile", "gpt2-small", "--hw", "a100", "--json", *extra)
        assert code == 0, err
        return json.loads(out)["roofline"]["totals"]["latency_ms"]

    assert latency("--hw-dtype", "tf32") < latency() / 2  # A100: 156 TF32 vs 19.5 FP32 TFLOP/s


@pytest.mark.parametrize(
    "argv,message",
    [
        (["profile", "lenet5", "--input", "1x3x32x32"], "failed in the model itself (LeNet5)"),
        (["profile", "lenet5", "--input", "1x1x20x20"], "failed in module 'fc1' (Linear)"),
        (["profile", "lenet5", "--input", "1xfoo"], "not sizes joined by 'x'"),
        (["profile", "lenet5", "--dtype", "int3"], "trace dtypes"),
        (["profile", "lenet5", "--by", "layer"], "--by takes"),
        (["profile", "lenet5", "--hw", "tpu9"], "tpu9"),
        (["profile", "mlp", "--phase", "decode"], "no KV cache"),
        (["profile", "resnet18", "--training", "--optimizer", "lamb"], "unknown optimizer"),
        (["profile", "lenet5", "--input", "2x1x28x28", "--batch-size", "4"], "put the batch in the shape"),
        (["profile", "lenet5", "--optimizer", "sgd"], "add --training"),
        (["profile", "lenet5", "--hw-dtype", "tf32"], "add --hw"),
        (["profile", "lenet5", "--hw", "v100", "--hw-dtype", "bf16"], "lists no tensor rate for bfloat16"),
    ],
)
def test_profile_user_mistakes(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err

