"""Run a job on N ranks of ``torch.distributed``: spawned here, or the ranks an outer ``torchrun`` started.

    aicompute parallel run --nproc 4 allreduce-check --steps 8          # 4 gloo ranks on this machine
    torchrun --nnodes 2 --nproc-per-node 8 ... -m aicompute.cli.main parallel run allreduce-check

A **job** is ``fn(ctx, **options)`` registered with ``@register_job(name)`` (``aicompute.parallel.jobs``); it
runs on every rank with a ``RankContext`` (or give ``path/to/file.py:function``). Ranks find each other the way torchrun's ranks
do: ``env://`` rendezvous from ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``.

**Spawning here** mirrors torchrun's elastic agent. The parent hosts the rendezvous ``TCPStore`` on port 0
(the OS picks a free port, so no race between choosing and binding it) and sets
``TORCHELASTIC_USE_AGENT_STORE=True`` so each rank connects to it as a client, exactly as under torchrun.
Each rank is a fresh Python process (``subprocess``) that waits for the others to start (start-up skew is not a
hang), initialises its process group with ``timeout`` (so a collective waiting on a dead or stuck peer raises
instead of hanging) and, if its job raises, writes a per-rank error file (type, message, where, traceback,
time) and exits at once. The parent watches the processes; on the
first failure it names the root cause (a rank that died without a report, e.g. killed; else the earliest
report; later reports are peers seeing the connection drop), kills the rest (SIGTERM, then SIGKILL), and
raises ``RankFailedError``: ``rank R failed: <error>``. A rank still running ``timeout`` seconds after
another one finished is reported stuck. In every case the children are reaped and the store is closed
(its port released) before ``launch`` returns; ranks also exit if the parent dies.

**Under an outer launcher** (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set), ``launch``
runs the job in this process as that rank; the outer launcher handles failures.

``launch(..., checkpoint_dir=, resume=)`` hands both to the job in its ``RankContext``; the job saves and
loads with ``aicompute.parallel.checkpoint`` (atomic ``torch.distributed.checkpoint`` directories).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from aicompute.checks import positive_int, positive_number
from aicompute.errors import AicomputeError
from aicompute.fileio import atomic_write, atomic_write_text
from aicompute.parallel.jobs import World, check_options, get_job, job_function

__all__ = ["RankContext", "LaunchResult", "RankFailedError", "launch", "resolve_backend", "under_outer_launcher"]

_GRACE_S = 2.0  # SIGTERM → SIGKILL grace when stopping ranks
_JOIN_TIMEOUT_S = 300.0  # how long spawned ranks wait for each other to start (see _wait_for_every_rank)


@dataclass(frozen=True)
class RankContext:
    """What a job sees on each rank. ``group`` is the default process group (``None`` in a single process
    without ``torch.distributed``, see ``single_process``); ``log`` prints progress on rank 0 only, to
    stderr (as ``aicompute.train.progress`` does), so a command's ``--json`` record on stdout stays clean."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    group: dist.ProcessGroup | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (a no-op without a process group)."""
        if dist.is_initialized():
            dist.barrier(group=self.group, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def log(self, *parts: object) -> None:
        if self.is_main:
            print(*parts, file=sys.stderr, flush=True)

    @classmethod
    def single_process(cls, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> RankContext:
        """A world of one on the CPU without a process group: the checkpoint helpers and ``barrier`` work
        (collectives need launched ranks, even a single one: ``launch(job, nproc=1)``)."""
        return cls(0, 1, 0, torch.device("cpu"), None, None, Path(checkpoint_dir) if checkpoint_dir else None, resume)


@dataclass(frozen=True)
class LaunchResult:
    """One launch: rank 0's return value (this rank's, under an outer launcher) and how it ran."""

    job: str
    world_size: int
    backend: str
    wall_s: float
    value: Any = None
    spawned: bool = True
    master_port: int | None = None
    pids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        value = self.value.to_dict() if hasattr(self.value, "to_dict") else self.value
        return {"kind": "parallel-run", "job": self.job, "world_size": self.world_size, "backend": self.backend,
                "wall_s": self.wall_s, "spawned": self.spawned, "value": value}


class RankFailedError(AicomputeError):
    """A rank raised, was killed, or got stuck: ``rank R failed: <error>``; ``traceback`` is its own."""

    def __init__(self, rank: int, error: str, *, traceback: str | None = None, exitcode: int | None = None,
                 pids: tuple[int, ...] = ()):
        super().__init__(f"rank {rank} failed: {error}")
        self.rank, self.error, self.traceback, self.exitcode, self.pids = rank, error, traceback, exitcode, pids


def under_outer_launcher() -> bool:
    """True when torchrun (or any ``env://`` launcher) started this process as one rank."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def resolve_backend(backend: str | None, nproc: int) -> str:
    """``backend``, checked; ``None`` picks NCCL when there is a GPU per rank, else gloo."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend is None:
        return "nccl" if gpus >= nproc and dist.is_nccl_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise AicomputeError(f"unknown backend {backend!r}; use gloo (CPU) or nccl (one CUDA GPU per rank)")
    if backend == "nccl" and (gpus == 0 or not dist.is_nccl_available()):
        raise AicomputeError("backend nccl needs CUDA GPUs and torch sees none here; use --backend gloo")
    if backend == "nccl" and gpus < nproc:
        raise AicomputeError(f"backend nccl needs one GPU per rank: --nproc {nproc} but {gpus} GPU(s) visible; "
                             f"use --nproc {gpus} or --backend gloo")
    if backend == "gloo" and not dist.is_gloo_available():
        raise AicomputeError("this torch build has no gloo backend; use --backend nccl on GPUs")
    return backend


@dataclass(frozen=True)
class _Spec:
    """Everything a rank needs, pickled to each spawned process."""

    job: str
    module: str
    file: str | None
    options: dict[str, Any]
    backend: str
    timeout_s: float
    checkpoint_dir: str | None
    resume: bool


def launch(job: str, *, nproc: int | None = None, backend: str | None = None, timeout: float = 60.0,
           options: Mapping[str, Any] | None = None, checkpoint_dir: str | os.PathLike | None = None,
           resume: bool = False) -> LaunchResult:
    """Run ``job`` on ``nproc`` ranks and return rank 0's value (module docstring).

    ``timeout`` (seconds) bounds every collective and rendezvous, and how long a rank may outlive a finished
    one. ``nproc`` defaults to one rank per GPU with NCCL, else 2; under an outer launcher it must be that
    launcher's processes per node, or ``None``. ``resume`` needs ``checkpoint_dir``."""
    spec_job = get_job(job)
    positive_number("timeout", timeout)
    if resume and checkpoint_dir is None:
        raise AicomputeError("--resume needs --checkpoint-dir: the folder the job saved its checkpoints to")
    if nproc is not None:
        positive_int("nproc", nproc)
    outer = under_outer_launcher()
    if outer:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        if nproc is not None and nproc != local:
            raise AicomputeError(f"started under torchrun with {local} processes per node; "
                                 f"drop --nproc or make it {local}")
        world_size, backend = int(os.environ["WORLD_SIZE"]), resolve_backend(backend, local)
    else:
        if nproc is None:
            nproc = max(1, torch.cuda.device_count()) if resolve_backend(backend, 1) == "nccl" else 2
        world_size, backend = nproc, resolve_backend(backend, nproc)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    opts = check_options(spec_job, options or {}, World(world_size, folder, resume))
    file = spec_job.file
    if file is None and spec_job.module == "__main__":  # a script's job: each rank loads the script as a module
        file = getattr(sys.modules["__main__"], "__file__", None)
        if file is None:
            raise AicomputeError(f"job {spec_job.name!r} was defined interactively; spawned ranks cannot see it. "
                                 "Put it in a file and pass path/to/file.py:function")
    spec = _Spec(spec_job.name, spec_job.module, file, opts, backend, float(timeout),
                 str(folder) if folder is not None else None, resume)
    if outer:
        start = time.perf_counter()
        value = _run_in_place(spec)
        return LaunchResult(spec.job, world_size, spec.backend, time.perf_counter() - start, value, spawned=False)
    return _spawn(spec, world_size)


def _spawn(spec: _Spec, nproc: int) -> LaunchResult:
    """Start ``nproc`` fresh Python processes as ranks (``subprocess``: nothing of this process is re-imported,
    so a script calling ``launch`` needs no ``__main__`` guard), watch them, and always clean up."""
    run_dir = Path(tempfile.mkdtemp(prefix="aicompute-run-"))
    store = dist.TCPStore("127.0.0.1", 0, nproc, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=spec.timeout_s))
    port = store.port
    atomic_write(run_dir / "spec.pkl", lambda f: pickle.dump(spec, f))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(nproc),
           "LOCAL_WORLD_SIZE": str(nproc), "TORCHELASTIC_USE_AGENT_STORE": "True",
           # one intra-op thread pool per rank, sharing the cores (torchrun sets OMP_NUM_THREADS=1)
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc)),
           # the ranks import what this process can (as multiprocessing's spawn does)
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}
    entry = "import sys; from aicompute.parallel.launch import _rank_main; _rank_main(sys.argv[1], int(sys.argv[2]))"
    procs: list[subprocess.Popen] = []
    start = time.perf_counter()
    try:
        for rank in range(nproc):
            procs.append(subprocess.Popen([sys.executable, "-c", entry, str(run_dir), str(os.getpid())],
                                          env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}))
        _monitor(procs, run_dir, spec.timeout_s)
        with open(run_dir / "result.pkl", "rb") as f:
            value = pickle.load(f)
        return LaunchResult(spec.job, nproc, spec.backend, time.perf_counter() - start, value, True, port,
                            tuple(p.pid for p in procs))
    finally:
        _stop(procs)
        del store  # the last reference: its server socket closes, the port is free again
        shutil.rmtree(run_dir, ignore_errors=True)


def _monitor(procs: list[subprocess.Popen], run_dir: Path, timeout_s: float, poll_s: float = 0.02) -> None:
    """Return when every rank exited 0; raise ``RankFailedError`` for the first failure or a stuck rank."""
    noticed: dict[int, float] = {}  # rank → when the parent saw it exit
    deadline = None  # set when the first rank finishes: the others get timeout_s more
    while len(noticed) < len(procs):
        time.sleep(poll_s)
        now = time.time()
        for rank, proc in enumerate(procs):
            if rank not in noticed and proc.poll() is not None:
                noticed[rank] = now
        failed = [r for r in noticed if procs[r].returncode != 0]
        if failed:
            raise _root_cause(procs, failed, noticed, run_dir)
        if deadline is None and noticed:
            deadline = time.monotonic() + timeout_s
        if deadline is not None and time.monotonic() >= deadline and len(noticed) < len(procs):
            stuck = min(set(range(len(procs))) - noticed.keys())
            raise RankFailedError(stuck, f"still running {timeout_s:g} s after rank {min(noticed)} finished "
                                  "(a hang outside any collective?)", pids=tuple(p.pid for p in procs))


def _root_cause(procs: list[subprocess.Popen], failed: list[int], noticed: dict[int, float], run_dir: Path
                ) -> RankFailedError:
    """Pick the failure that started it: a rank that died without a report (killed, crashed) comes first,
    since its peers only report the broken connection afterwards; else the earliest report."""
    candidates = []
    for rank in failed:
        report = run_dir / f"rank{rank}.error.json"
        code = procs[rank].returncode
        if report.exists():
            info = json.loads(report.read_text())
            candidates.append((1, info["time"], rank, info["error"], info["traceback"], code))
        else:
            why = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                   else f"exited with status {code} without an error report")
            candidates.append((0, noticed[rank], rank, why, None, code))
    _, _, rank, error, tb, code = min(candidates)
    running = [r for r in range(len(procs)) if r not in noticed]
    if running and "timed out" in error.lower():  # the peer it waited for may be the real culprit
        error += f"; still running then: rank {', '.join(map(str, running))} (stuck?)"
    return RankFailedError(rank, error, traceback=tb, exitcode=code, pids=tuple(p.pid for p in procs))


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate and reap every rank still running: SIGTERM, then SIGKILL after a grace period."""
    alive = [p for p in procs if p.poll() is None]
    for proc in alive:
        proc.terminate()
    deadline = time.monotonic() + _GRACE_S
    for proc in alive:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rank_main(run_dir: str, parent_pid: int) -> None:
    """Entry point of a spawned rank (``RANK`` etc. are in its environment): run the job; on any failure
    write the error report and exit 1 at once (tearing down a group whose peer just failed can block)."""
    _exit_with_parent(parent_pid)
    rank = int(os.environ["RANK"])
    try:
        with open(Path(run_dir, "spec.pkl"), "rb") as f:
            spec = pickle.load(f)
        _wait_for_every_rank(rank, int(os.environ["WORLD_SIZE"]))
        ctx = _init_rank(spec)
        value = job_function(spec.job, spec.module, spec.file)(ctx, **spec.options)
        if rank == 0:
            atomic_write(Path(run_dir, "result.pkl"), lambda f: pickle.dump(value, f))
    except BaseException as e:  # noqa: BLE001 — every failure, KeyboardInterrupt and SystemExit included
        text = f"{type(e).__name__}: {e}" if not isinstance(e, AicomputeError) else str(e)
        report = {"rank": rank, "error": text + _where(e), "traceback": traceback.format_exc(), "time": time.time()}
        atomic_write_text(Path(run_dir, f"rank{rank}.error.json"), json.dumps(report))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    dist.destroy_process_group()


def _wait_for_every_rank(rank: int, world_size: int) -> None:
    """Block until every spawned rank's process is up (at most ``_JOIN_TIMEOUT_S``). Ranks start seconds
    apart on a busy machine (importing torch); that skew must not count against the user's ``timeout``,
    which then bounds the process group's rendezvous and collectives only. A rank that dies while starting
    is noticed by the parent, which stops the others: nobody waits the whole join timeout for it."""
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False,
                          timeout=timedelta(seconds=_JOIN_TIMEOUT_S))
    store.set(f"aicompute/started/{rank}", "1")
    store.wait([f"aicompute/started/{r}" for r in range(world_size)])


def _where(e: BaseException) -> str:
    """`` (file.py:line in function)`` of the innermost frame outside torch: the job's line, not c10d's."""
    frames = traceback.extract_tb(e.__traceback__)
    torch_dir = os.path.dirname(torch.__file__)
    ours = [f for f in frames if not f.filename.startswith(torch_dir)] or frames
    return f" ({Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name})" if ours else ""


def _exit_with_parent(parent_pid: int) -> None:
    """A daemon thread that ends this rank if the launching process dies (no orphans left behind)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="aicompute-parent-watch", daemon=True).start()


def _init_rank(spec: _Spec) -> RankContext:
    """Join the process group from the ``env://`` variables and describe this rank."""
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    device = torch.device("cpu")
    if spec.backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(spec.backend, init_method="env://", timeout=timedelta(seconds=spec.timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return RankContext(dist.get_rank(), dist.get_world_size(), local_rank, device, spec.backend,
                       dist.group.WORLD, Path(spec.checkpoint_dir) if spec.checkpoint_dir else None, spec.resume)


def _run_in_place(spec: _Spec) -> Any:
    """This process is one rank of an outer launcher: run the job here. A failure propagates (after torch's
    elastic error handler records it for torchrun's summary); the process group is torn down on success."""
    from torch.distributed.elastic.multiprocessing.errors import record

    owned = not dist.is_initialized()
    value = record(lambda: job_function(spec.job, spec.module, spec.file)(_init_rank(spec), **spec.options))()
    if owned:
        dist.destroy_process_group()
    return value

