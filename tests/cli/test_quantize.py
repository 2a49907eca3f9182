"""`aicompute quantize` in-process: the JSON record with its receipt, the table, and one-line errors."""

import json

import pytest

from aicompute.cli.main import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from aicompute.train import train_model

    path = tmp_path_factory.mktemp("cli") / "mlp.pt"
    train_model("mlp", "digits", epochs=1, seed=0, out=path)
    return path


def test_quantize_json_and_table(capsys, checkpoint):
    code, out, err = run(capsys, "quantize", str(checkpoint), "--json", "--bits", "8", "--calib", "percentile")
    assert code == 0, err
    record = json.loads(out)
    assert record["config"]["calib"] == "percentile" and record["receipt"]["quant_bytes"] > 0
    code, out, err = run(capsys, "quantize", str(checkpoint), "--weight-only", "--bits", "4")
    assert code == 0, err
    assert "W4 ptq" in out and "receipt" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--bits", "0"], "bits must be an integer from 1 to 16"),
        (["--bits", "17"], "from 1 to 16"),
        (["--qat-epochs", "1", "--qat-lr", "0"], "lr must be > 0, got 0.0"),
        (["--calib", "kl"], "unknown calib"),
        (["--granularity", "row"], "unknown granularity"),
        (["--data", "chars"], "chars"),
    ],
)
def test_quantize_user_mistakes(capsys, checkpoint, argv, message):
    code, _, err = run(capsys, "quantize", str(checkpoint), *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], err
    assert "Traceback" not in err


def test_quantize_missing_checkpoint(capsys, tmp_path):
    code, _, err = run(capsys, "quantize", str(tmp_path / "none.pt"))
    assert code == 2 and err.startswith("error: ")
