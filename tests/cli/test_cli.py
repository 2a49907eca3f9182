"""The CLI in-process: every command's --json record, and user mistakes as one `error:` line with exit 2."""

import json

import pytest

from aicompute.cli.main import app, main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_models_json_lists_the_zoo(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert models["alexnet"]["params"] == 61_100_840
    assert models["lenet5"]["input_shape"] == [1, 32, 32]


def test_models_table(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "61,100,840" in out and "gpt3-175b" in out


def test_train_then_eval_round_trip(capsys, tmp_path):
    ckpt = tmp_path / "mlp.pt"
    code, out, err = run(capsys, "train", "mlp", "--data", "digits", "--epochs", "1", "--max-steps", "5",
                         "--out", str(ckpt), "--json")
    assert code == 0, err
    trained = json.loads(out)
    assert trained["model"] == "mlp" and trained["checkpoint"] == str(ckpt) and ckpt.exists()
    code, out, err = run(capsys, "eval", str(ckpt), "--json")
    assert code == 0, err
    evaluated = json.loads(out)
    assert evaluated["accuracy"] == pytest.approx(trained["test_accuracy"])


def test_train_table_output(capsys):
    code, out, err = run(capsys, "train", "perceptron", "--data", "digits", "--max-steps", "2")
    assert code == 0, err
    assert "perceptron on digits" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "no_such_model", "--data", "digits"], "unknown model 'no_such_model'"),
        (["train", "mlp", "--data", "no_such_data"], "no_such_data"),
        (["train", "lenet5", "--data", "chars", "--max-steps", "1"], "data set 'chars'"),
        (["eval", "/no/such/file.pt"], "no/such/file.pt"),
        (["train", "mlp", "--data", "digits", "--out", "/"], "is a folder"),
    ],
)
def test_user_mistakes_are_one_error_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


def test_corrupt_checkpoint_is_a_user_error(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "eval", str(bad))
    assert code == 2 and err.startswith("error: ")


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "train", "mlp")  # --data missing
    assert code == 2 and "--data" in err


def test_command_and_flag_set_is_pinned():
    """Adding or renaming a flag is a deliberate change: update this list with it."""
    import typer.main

    group = typer.main.get_command(app)
    flags = {
        name: sorted(opt for p in cmd.params for opt in getattr(p, "opts", []) if opt.startswith("-"))
        for name, cmd in group.commands.items()
    }
    assert flags == {
        "models": ["--json"],
        "train": sorted(["--data", "-d", "--epochs", "-e", "--out", "-o", "--lr", "--weight-decay", "--batch-size", "--optimizer",
                         "--seed", "--max-steps", "--json"]),
        "eval": sorted(["--data", "-d", "--batch-size", "--allow-import", "--json"]),
        "demo": sorted(["--out", "-o", "--json"]),
        "profile": sorted(["--input", "--batch-size", "--dtype", "--training", "--optimizer", "--hw", "--hw-dtype", "--by",
                           "--depth", "--phase", "--kv-len", "--strict", "--csv", "--roofline", "--json"]),
        "design": sorted(["--only", "--json"]),
        "hw": [],  # groups: their subcommands are pinned in tests/cli/test_hw.py and test_parallel.py
        "parallel": [],
        "formats": sorted(["--data", "-d", "--allow-import", "--json"]),
        "quantize": sorted(["--data", "-d", "--bits", "--act-bits", "--scheme", "--granularity", "--calib",
                            "--weight-only", "--qat-epochs", "--qat-lr", "--lsq", "--mixed-precision", "--budget", "--export",
                            "--json"]),  # a group: `hw list` and `hw probe` are pinned in tests/cli/test_hw.py
    }


def small_net(num_classes: int = 10) -> "torch.nn.Module":
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))


def test_checkpoint_of_imported_code_needs_allow_import(capsys, tmp_path):
    ckpt = tmp_path / "own.pt"
    code, _, err = run(capsys, "train", f"{__name__}:small_net", "--data", "digits", "--max-steps", "2",
                       "--out", str(ckpt), "--json")
    assert code == 0, err
    code, _, err = run(capsys, "eval", str(ckpt))
    assert code == 2 and "--allow-import" in err
    code, out, err = run(capsys, "eval", str(ckpt), "--allow-import", "--json")
    assert code == 0, err
    assert json.loads(out)["examples"] == 360


def test_demo_writes_report_and_records(capsys, tmp_path, monkeypatch):
    from aicompute.demo import tour
    from aicompute.demo.foundation import perceptron_lesson
    from aicompute.report.foundation import perceptron_chapter

    fast = [tour.Step("perceptron", "perceptron", lambda: perceptron_lesson(epochs=5), perceptron_chapter)]
    monkeypatch.setattr(tour, "default_steps", lambda: fast)
    code, out, err = run(capsys, "demo", "--out", str(tmp_path / "d"), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["records"] == ["perceptron"]
    assert (tmp_path / "d" / "report.html").read_text().count("XOR") >= 1
    assert json.loads((tmp_path / "d" / "perceptron.json").read_text())["kind"] == "perceptron-lesson"
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "e"))
    assert code == 0 and "report.html" in out
