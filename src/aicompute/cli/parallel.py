"""``aicompute parallel`` — run jobs on torch.distributed ranks and benchmark the collectives.

    aicompute parallel run --nproc 4 allreduce-check --steps 8            # launcher options, then JOB and its own
    aicompute parallel run --nproc 4 ddp --model lenet5 --data mnist --epochs 2
    aicompute parallel run --nproc 2 --checkpoint-dir ck fsdp --epochs 3 --checkpoint-every 10 \
        --fail-rank 1 --fail-step 25 --fail-mode kill                     # dies in step 25: ck holds 10, 20
    aicompute parallel run --nproc 2 --checkpoint-dir ck --resume fsdp --epochs 3 --checkpoint-every 10
    aicompute parallel jobs                                               # registered jobs and their options
    aicompute parallel bench-comm --nproc 2 --sizes 64KiB,1MiB,16MiB --plot busbw.png

Under ``torchrun`` the same ``run`` command uses the ranks torchrun started (``--nproc`` may be left out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aicompute.cli.output import JSON_HELP, binary_size, console, print_json, print_table
from aicompute.errors import AicomputeError

parallel_app = typer.Typer(
    name="parallel",
    help="Distributed runs on torch.distributed: launch jobs on ranks, benchmark the collectives.",
    no_args_is_help=True,
    add_completion=False,
)


@parallel_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)
def run(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A registered job (`aicompute parallel jobs`) or path/to/file.py:function."),
    nproc: Optional[int] = typer.Option(None, "--nproc", "-n",
                                        help="Ranks to spawn (default: 1 per GPU with nccl, else 2)."),
    backend: Optional[str] = typer.Option(None, "--backend",
                                          help="gloo (CPU) or nccl (a GPU per rank); default: nccl if it fits."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds a collective may wait before the run fails."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", help="Folder for the job's checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run JOB on every rank. Launcher options go before JOB; everything after it is the job's (--name VALUE)."""
    from aicompute.parallel.jobs import get_job, parse_job_options
    from aicompute.parallel.launch import launch

    spec = get_job(job)
    _refuse_misplaced_launcher_flags(job, spec.options(), ctx.args)
    options = parse_job_options(spec, ctx.args)
    result = launch(job, nproc=nproc, backend=backend, timeout=timeout, options=options,
                    checkpoint_dir=checkpoint_dir, resume=resume)
    record = result.to_dict()
    if json:
        print_json(record)
        return
    value = record["value"]
    title = f"{result.job} on {result.world_size} {result.backend} ranks ({result.wall_s:.2f} s)"
    if isinstance(value, dict) and value.get("kind") == "data-parallel":
        _print_data_parallel(title, value)
        return
    rows = value.items() if isinstance(value, dict) else [("value", value)]
    print_table(title, ["rank 0 returned", "value"], [(k, v) for k, v in rows])


_LAUNCHER_FLAGS = ("--nproc", "-n", "--backend", "--timeout", "--checkpoint-dir", "--resume", "--json")


def _refuse_misplaced_launcher_flags(job: str, job_options: dict, args: list[str]) -> None:
    """``run``'s own flags after JOB would be read as the job's: say where they go instead."""
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in _LAUNCHER_FLAGS and flag.lstrip("-").replace("-", "_") not in job_options:
            raise AicomputeError(f"{flag} is an option of `aicompute parallel run`, not of job {job!r}: put it "
                                 f"before the job name (aicompute parallel run {flag} ... {job} ...)")


def _print_data_parallel(title: str, record: dict) -> None:
    """A training job's record (``DataParallelResult.to_dict()``) as one summary table."""
    config, losses, state = record["config"], record["losses"], record["model_state"]
    resumed = f" (resumed after step {record['resumed_from']})" if record["resumed_from"] else ""
    how = "counted per message" if record["bytes_measured"] else (
        "all-gather model of the payload" if config["hook"] == "topk" else "ring model of the payload")
    rows = [
        ("model / data", f"{config['model']} on {config['data']}, {record['params']:,} params"),
        ("steps", f"{record['steps']}{resumed}, global batch {record['global_batch']}"),
        ("train loss (first → last step)", f"{losses[0]:.4f} → {losses[-1]:.4f}"),
        ("test loss / accuracy", f"{record['test_loss']:.4f} / {record['test_accuracy']:.2%}"),
        ("payload to the wire (rank 0)", binary_size(record["payload_bytes"])),
        (f"sent / received by rank 0 ({how})",
         f"{binary_size(record['bytes_sent'])} / {binary_size(record['bytes_recv'])}"),
        ("synchronisations", record["syncs"]),
        ("model state on rank 0 (params + grads + optimizer)",
         f"{binary_size(state['total'])} = {binary_size(state['params'])} + {binary_size(state['grads'])} + "
         f"{binary_size(state['optimizer'])}"),
        ("ZeRO model for it", binary_size(record["zero_model"]["total_bytes"])),
    ]
    print_table(title, ["data-parallel run", "value"], rows)


@parallel_app.command("jobs")
def jobs(json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the registered jobs and their options (with defaults)."""
    from aicompute.parallel.jobs import list_jobs

    listing = [{"name": j.name, "description": j.description,
                "options": {k: repr(p.default) for k, p in j.options().items()}} for j in list_jobs()]
    if json:
        print_json({"kind": "parallel-jobs", "jobs": listing})
        return
    print_table("jobs (aicompute parallel run ... JOB --option VALUE)", ["job", "options (default)", "what it does"],
                [(j["name"], " ".join(f"--{k.replace('_', '-')} {v}" for k, v in j["options"].items()),
                  j["description"]) for j in listing])


@parallel_app.command("bench-comm")
def bench_comm(
    nproc: int = typer.Option(2, "--nproc", "-n", min=2, help="Ranks to spawn on this machine."),
    backend: Optional[str] = typer.Option(None, "--backend", help="gloo or nccl (default: nccl if a GPU per rank)."),
    sizes: str = typer.Option("4KiB,64KiB,1MiB,4MiB,16MiB", "--sizes", help="Comma-separated message sizes."),
    algorithms: str = typer.Option("ring,ring-blocking,ps,recursive-doubling,backend", "--algorithms",
                                   help="Comma-separated all-reduce algorithms."),
    repeats: int = typer.Option(10, "--repeats", min=1, help="Timed calls per point (the median is kept)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed calls first."),
    segment: str = typer.Option("1MiB", "--segment", help="Pipeline segment of the ring."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds a collective may wait before the run fails."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of busbw vs size here."),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Time each all-reduce algorithm over a size sweep: algbw, busbw (nccl-tests), and the α-β model's time."""
    from aicompute.parallel.comm_bench import CommBenchConfig, bench_comm as run_bench, parse_size

    config = CommBenchConfig(sizes_bytes=tuple(parse_size(s) for s in sizes.split(",") if s.strip()),
                             algorithms=tuple(a.strip() for a in algorithms.split(",") if a.strip()),
                             repeats=repeats, warmup=warmup, segment_bytes=parse_size(segment))
    result = run_bench(config, nproc=nproc, backend=backend, timeout=timeout)
    if plot is not None:
        from aicompute.fileio import atomic_write_bytes
        from aicompute.report.plots import line_plot

        png = line_plot({name: ([x / 2**20 for x in xs], ys) for name, (xs, ys) in result.series().items()},
                        title=f"all-reduce busbw, {result.world_size} {result.backend} ranks",
                        xlabel="message size (MiB)", ylabel="busbw (GB/s)", logx=True)
        atomic_write_bytes(plot, png)
    if json:
        print_json(result.to_dict())
        return
    backend_bw = {r.nbytes: r.busbw_gbps for r in result.rows if r.algorithm == "backend"}
    print_table(
        f"all-reduce on {result.world_size} {result.backend} ranks ({result.device}, {result.threads} thread(s) each)",
        ["algorithm", "size", "time ms", "algbw GB/s", "busbw GB/s", "× backend", "model ms", "sent/rank"],
        [(r.algorithm, binary_size(r.nbytes), r.time_ms, r.algbw_gbps, r.busbw_gbps,
          r.busbw_gbps / backend_bw[r.nbytes] if r.nbytes in backend_bw else None, r.model_ms,
          binary_size(r.bytes_sent) if r.algorithm != "backend" else None) for r in result.rows],
        caption=f"busbw = algbw·2(p−1)/p (nccl-tests); {_model_note(result.model)}; median of the slowest "
                "rank's time per call",
    )
    if plot is not None:
        console.print(f"plot: {plot}")


def _model_note(model) -> str:
    if model is None:
        return "model: not fitted (ping-pong times did not grow with size: machine too busy)"
    return (f"model: steps·α + bytes/β with α = {model.alpha_s * 1e6:.1f} µs, "
            f"β = {model.beta_bytes_per_s / 1e9:.2f} GB/s from a ping-pong")


def register(app: typer.Typer) -> None:
    app.add_typer(parallel_app, name="parallel")
