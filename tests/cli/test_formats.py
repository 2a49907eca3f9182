"""`aicompute formats` in-process: the table, and a checkpoint's cost per format."""

import json

import pytest

from aicompute.cli.main import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_formats_table_and_checkpoint_effects(capsys, tmp_path):
    ckpt = tmp_path / "mlp.pt"
    code, _, err = run(capsys, "train", "mlp", "--data", "digits", "--max-steps", "5", "--out", str(ckpt))
    assert code == 0, err
    code, out, err = run(capsys, "formats", str(ckpt), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert {f["name"] for f in record["formats"]} >= {"fp32", "bf16", "fp8_e4m3", "int4", "binary"}
    assert [e["format"] for e in record["effects"]["effects"]][:2] == ["fp32", "tf32"]
    code, out, _ = run(capsys, "formats")
    assert code == 0 and "65504" in out.replace(",", "").replace("6.55e+04", "65504")
