"""``aicompute quantize CKPT`` — PTQ / QAT / mixed precision, then a receipt measured in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from aicompute.cli.output import JSON_HELP, binary_size, console, print_json, print_table


def quantize(
    checkpoint: Path = typer.Argument(..., help="A checkpoint from `aicompute train` (only read)."),
    data: str = typer.Option(None, "--data", "-d", help="Data set (default: the checkpoint's); train split calibrates."),
    bits: int = typer.Option(8, "--bits", help="Weight bits, 1-16 (1 = binary)."),
    act_bits: int = typer.Option(8, "--act-bits", help="Activation bits (ignored with --weight-only)."),
    scheme: str = typer.Option("sym", "--scheme", help="Weights: sym or asym."),
    granularity: str = typer.Option("channel", "--granularity", help="Weights: channel or tensor."),
    calib: str = typer.Option("minmax", "--calib", help="minmax, percentile, entropy or mse (activations)."),
    weight_only: bool = typer.Option(False, "--weight-only", help="Quantize weights only."),
    qat_epochs: int = typer.Option(0, "--qat-epochs", help="Fine-tune with quantization-aware training."),
    qat_lr: float = typer.Option(3e-5, "--qat-lr", help="QAT learning rate (small: the model is trained already)."),
    learnable: bool = typer.Option(False, "--lsq", help="QAT with learnable scales (LSQ)."),
    mixed: bool = typer.Option(False, "--mixed-precision", help="Keep the most sensitive layers at 8 bits."),
    budget: float = typer.Option(0.5, "--budget", help="Accuracy drop allowed, in percentage points."),
    export: Path = typer.Option(None, "--export", help="Keep the int8 ONNX model here (float one beside it)."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Quantize a trained checkpoint and show what it costs and gains, measured now."""
    from aicompute.compress.quant.api import quantize_checkpoint
    from aicompute.compress.quant.ptq import QuantConfig

    config = QuantConfig(bits=bits, act_bits=None if weight_only else act_bits, scheme=scheme,
                         granularity=granularity, calib=calib, learnable=learnable)
    run = quantize_checkpoint(checkpoint, data, config, qat_epochs=qat_epochs, qat_lr=qat_lr, mixed=mixed,
                              budget_pt=budget, export=export)
    if json:
        print_json(run.to_dict())
        return
    r = run.result
    print_table(
        f"{run.model} on {run.data}: {config.label} {r.method}, {config.granularity}-wise weights, {config.calib} calibration",
        ["layer", "type", "weight bits", "act bits", "weight rel. error"],
        [(layer.name, layer.type, layer.weight_bits, layer.act_bits, layer.weight_rel_error) for layer in r.layers],
        caption=f"kept float: {', '.join(r.to_dict()['kept_float']) or 'none'}",
    )
    if run.receipt is not None:
        rc = run.receipt
        rows = [(what, binary_size(a) if "bytes" in what else a, binary_size(b) if "bytes" in what and b else b, ratio)
                for what, a, b, ratio in rc.rows()]
        print_table("receipt (measured now)", ["", "float", "quantized", ""], rows,
                    caption=f"integer kernels in ORT's optimized graph: {rc.integer_ops or 'none'}")
        for warning in rc.warnings:
            console.print(f"warning: {warning}")
        if rc.path:
            console.print(f"wrote {rc.path}")


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)
