"""Claim: on the same model and the same meta inputs, our full profile (per-op bytes, module tree, roofline)
takes at most 2× the time of `FlopCounterMode`, which only counts FLOPs, for ResNet-50 at 224×224 and for
`gpt3-175b`; the `gpt3-175b` preset (96 layers, 12,288 hidden, 2,048 tokens) profiles forward + backward in
≤ 15 s with < 1 GiB peak resident memory.

Usage: .venv/bin/python benchmarks/profile_speed.py [--repeats 5] [--no-rss]

Each model is built once on meta, outside every timing, with its default input at batch 1 (also on meta).
Then, per case, one untimed warm-up of each side and ``--repeats`` timed runs of each, alternating which side
goes first, after a ``gc.collect()``; the table gives the medians (wall clock, seconds), their ratio (the
claim's), and the ratio of the fastest runs, which is less sensitive to other work on a shared machine.
Every time is in the JSON record.

* **FlopCounterMode**: ``with FlopCounterMode(display=False)`` around the forward (and, for training, the
  backward of a gradient of ones on the outputs) on the meta model, then ``get_total_flops()``.
* **ours**: ``profile(model, x, mode=...)`` (a fake-CPU trace pricing every op's FLOPs and bytes, the module
  tree, live memory), then ``.by_module()``, ``.by_op()``, ``.to_dict()`` and, when
  ``aicompute.profile.roofline`` exists, ``roofline(result, get_hardware("h100")).to_dict()``.

fvcore is timed too where it is installed (``FlopCountAnalysis(model, x).total()``; it traces with
``torch.jit``, which may refuse meta tensors: then its error is printed).

The peak resident memory of the ``gpt3-175b`` forward + backward profile is measured in a fresh Python
process, before this one does any work, so nothing done here inflates it. It reads the process's own
high-water mark, ``VmHWM`` in ``/proc/self/status``, and also ``resource.getrusage(...).ru_maxrss``: the
latter is kept across ``execve``, so it starts from the RSS of the spawning process (this one, having
imported torch) and can only read higher. That process also reports its peak right after
``import torch, aicompute`` (the floor any run pays) and the cold, first-call time of the profile.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import report
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aicompute.models import example_input, get_model, model_spec
from aicompute.profile.api import output_tensors, profile

try:
    from aicompute.profile.hardware import get_hardware
    from aicompute.profile.roofline import roofline
except ImportError:  # the roofline is another piece of the profiler; time without it until it lands
    roofline = None

CASES = (("resnet50", "inference"), ("resnet50", "training"), ("gpt3-175b", "inference"), ("gpt3-175b", "training"))
CLAIM_RATIO = 2.0
CLAIM_SECONDS = 15.0
CLAIM_RSS = 2**30
RSS_MODEL = "gpt3-175b"

_CHILD = """
import json, resource, sys, time
def peak():
    # bytes: VmHWM (this process's own high-water mark) where /proc has it, and ru_maxrss (KiB on Linux),
    # which survives execve and so starts at the RSS of the process that spawned this one
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with open("/proc/self/status") as f:
            hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        hwm = maxrss
    return hwm, maxrss
import torch, aicompute
baseline = peak()
from aicompute.models import example_input, get_model, model_spec
from aicompute.profile.api import profile
name = sys.argv[1]
started = time.perf_counter()
model = get_model(name, device="meta")
built = time.perf_counter() - started
x = example_input(model_spec(name), 1, device="meta")
started = time.perf_counter()
result = profile(model, x, mode="training")
profiled = time.perf_counter() - started
result.by_module(); result.by_op(); result.to_dict()
try:
    from aicompute.profile.hardware import get_hardware
    from aicompute.profile.roofline import roofline
    roofline(result, get_hardware("h100")).to_dict()
except ImportError:
    pass
full = time.perf_counter() - started
print(json.dumps({"baseline_rss": baseline, "peak_rss": peak(), "build_s": built, "profile_s": profiled,
                  "full_s": full, "records": len(result.records)}))
"""


def flop_counter(model: nn.Module, x: torch.Tensor, mode: str) -> int:
    training = mode == "training"
    model.train(training)
    with FlopCounterMode(display=False) as fc, contextlib.nullcontext() if training else torch.no_grad():
        out = model(x)
        if training:
            outs = [t for t in output_tensors(out) if t.requires_grad]
            torch.autograd.backward(outs, [torch.ones_like(t) for t in outs])
    return fc.get_total_flops()


def full_profile(model: nn.Module, x: torch.Tensor, mode: str) -> int:
    result = profile(model, x, mode=mode)
    result.by_module()
    result.by_op()
    result.to_dict()
    if roofline is not None:
        roofline(result, get_hardware("h100")).to_dict()
    return result.flops


def fvcore_total(model: nn.Module, x: torch.Tensor, mode: str) -> int:
    from fvcore.nn import FlopCountAnalysis

    model.train(mode == "training")
    return int(FlopCountAnalysis(model, x).total())


def _timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def time_case(model: nn.Module, x: torch.Tensor, mode: str, repeats: int,
              sides: dict[str, Callable]) -> dict[str, list[float]]:
    """Times of each side over ``repeats`` rounds after one warm-up each; the first side rotates per round."""
    for fn in sides.values():
        fn(model, x, mode)
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(_timed(lambda: sides[name](model, x, mode)))
    return times


def fvcore_available() -> str | None:
    """``None`` when fvcore imports, else why not."""
    try:
        import fvcore.nn  # noqa: F401
    except ImportError as e:
        return f"not installed ({e})"
    return None


def fresh_rss(name: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, name], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the fresh-process profile of {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_note(child: dict[str, Any]) -> str:
    (base, base_maxrss), (peak, peak_maxrss) = child["baseline_rss"], child["peak_rss"]
    return (f"fresh process, {RSS_MODEL} training: peak RSS after `import torch, aicompute` {base / 2**20:.0f} MiB; "
            f"after build + forward/backward profile + roll-ups + roofline {peak / 2**20:.0f} MiB "
            f"({peak / 2**30:.3f} GiB; claim < 1 GiB: {'pass' if peak < CLAIM_RSS else 'FAIL'}) "
            f"[ru_maxrss: {base_maxrss / 2**20:.0f} / {peak_maxrss / 2**20:.0f} MiB]; build {child['build_s']:.2f} s; "
            f"cold profile() {child['profile_s']:.2f} s, with roll-ups + roofline {child['full_s']:.2f} s "
            f"(claim ≤ {CLAIM_SECONDS:.0f} s: {'pass' if child['full_s'] <= CLAIM_SECONDS else 'FAIL'}); "
            f"{child['records']} op records")


def main() -> None:
    os.environ.setdefault("COLUMNS", "160")  # rich takes the table width from here when piped
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-rss", action="store_true", help="skip the fresh-process memory measurement")
    args = ap.parse_args()
    fvcore_missing = fvcore_available()
    print("fvcore: " + (fvcore_missing or "installed, timed below"))
    if roofline is None:
        print("roofline: aicompute.profile.roofline not importable; timed without it")
    sides: dict[str, Callable] = {"FlopCounterMode": flop_counter, "ours": full_profile}
    if fvcore_missing is None:
        sides["fvcore"] = fvcore_total
    child = None if args.no_rss else fresh_rss(RSS_MODEL)  # first, while this process is still small
    rows, notes, models, all_times = [], [], {}, {}
    for name, mode in CASES:
        if name not in models:
            started = time.perf_counter()
            models[name] = (get_model(name, device="meta"), example_input(model_spec(name), 1, device="meta"))
            notes.append(f"{name} built on meta in {time.perf_counter() - started:.2f} s (outside the timing)")
        model, x = models[name]
        case_sides = dict(sides)
        if "fvcore" in case_sides:
            try:
                fvcore_total(model, x, mode)
            except Exception as e:  # jit tracing on meta tensors: report, don't time
                notes.append(f"fvcore on {name} {mode}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                del case_sides["fvcore"]
        times = time_case(model, x, mode, args.repeats, case_sides)
        all_times[f"{name} {mode}"] = times
        fc, ours = statistics.median(times["FlopCounterMode"]), statistics.median(times["ours"])
        ratio = ours / fc
        min_ratio = min(times["ours"]) / min(times["FlopCounterMode"])
        fv = f"{statistics.median(times['fvcore']):.3f}" if "fvcore" in times else "—"
        fv_ratio = f"{ours / statistics.median(times['fvcore']):.2f}" if "fvcore" in times else "—"
        within = ratio <= CLAIM_RATIO
        seconds_ok = "" if not (name == RSS_MODEL and mode == "training") else (
            "pass" if ours <= CLAIM_SECONDS else "FAIL")
        rows.append((name, mode, f"{fc:.3f}", f"{ours:.3f}", f"{ratio:.2f}", f"{min_ratio:.2f}",
                     "pass" if within else "FAIL", fv, fv_ratio, seconds_ok))
    if child is not None:
        notes.append(_rss_note(child))
    report("profile_speed", f"Full profile vs FlopCounterMode, seconds (median of {args.repeats}, after a warm-up)",
           ["model", "mode", "FlopCounterMode s", "ours s", "ours ÷ FC", "min ÷ min", "≤ 2×",
            "fvcore s", "ours ÷ fvcore", "≤ 15 s"], rows,
           times=all_times,
           notes=notes, rss=child, fvcore=fvcore_missing or "installed", roofline=roofline is not None,
           repeats=args.repeats)
    for note in notes:
        print("  " + note)


if __name__ == "__main__":
    main()
