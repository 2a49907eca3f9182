"""``profile(model, ...)``: trace one forward (and for training the real backward) on fake tensors.

The model's weights are never read or copied: every parameter and buffer is replaced, for the duration
of one ``torch.func.functional_call``, by a fake tensor of the same shape at the profiled dtype, on the
model's device (the CPU for a meta model), so the ops run are the kernels that device would pick — on
CPU, ``scaled_dot_product_attention`` is the fused flash kernel, not the T×T math path. Nothing is left
on the model: no hooks, no moved parameters, the train/eval flags as they were, and every module's
attributes restored (a forward that caches a tensor on itself would otherwise keep a fake one).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from aicompute.checks import did_you_mean, positive_int
from aicompute.errors import AicomputeError
from aicompute.logs import quiet_logger
from aicompute.profile.counter import ModuleStack, OpCounter
from aicompute.profile.ops import output_tensors
from aicompute.profile.memory import check_optimizer, model_states
from aicompute.profile.result import ProfileResult

__all__ = ["profile", "DTYPES", "parse_dtype", "parse_shape", "parse_input"]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}
"""Dtypes a model can be traced in (the storage formats fp8/int8/int4 appear in the weight-bytes table)."""
MODES = ("inference", "training")
PHASES = ("prefill", "decode")


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        if name in DTYPES.values():
            return name
        name = str(name).removeprefix("torch.")
    dtype = DTYPES.get(str(name).lower())
    if dtype is None:
        raise AicomputeError(
            f"cannot profile in dtype {name!r}{did_you_mean(str(name), DTYPES)}; trace dtypes are "
            "float32/fp32, bfloat16/bf16, float16/fp16 (fp8/int8/int4 weight sizes are in every result)"
        )
    return dtype


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1x3x224x224"`` (or a sequence) → ``(1, 3, 224, 224)``; every size a positive integer."""
    parts = text.lower().replace(",", "x").split("x") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise AicomputeError(f"input shape {text!r} is not sizes joined by 'x', e.g. 1x3x224x224") from None
    if not shape or any(s < 1 for s in shape):
        raise AicomputeError(f"input shape {text!r} needs positive sizes, e.g. 1x3x224x224")
    return shape


INPUT_DTYPES: dict[str, torch.dtype] = {"int64": torch.int64, "long": torch.int64, "int32": torch.int32,
                                        "int": torch.int32, "bool": torch.bool}
"""Dtypes an input can name after a colon (``1x128:int64``); a float input takes the profiled dtype."""


def parse_input(text: str | Sequence[int]) -> tuple[tuple[int, ...], torch.dtype | None]:
    """``"1x128:int64"`` → ``((1, 128), torch.int64)``; without a dtype (or ``:float``) the input is
    floating point, traced at the profiled dtype (``None``)."""
    if not isinstance(text, str):
        return parse_shape(text), None
    shape_text, _, dtype_text = text.partition(":")
    key = dtype_text.strip().lower()
    if key in ("", "float"):
        return parse_shape(shape_text), None
    if key not in INPUT_DTYPES:
        raise AicomputeError(f"input {text!r} names dtype {dtype_text!r}{did_you_mean(key, INPUT_DTYPES)}; an input "
                             f"is float (the profiled dtype) or one of {', '.join(INPUT_DTYPES)}, e.g. 1x128:int64")
    return parse_shape(shape_text), INPUT_DTYPES[key]


def _input_list(input_shape: Any) -> list[Any]:
    """One input (``"1x3x8x8"``, ``(1, 3, 8, 8)``) or several (a list or tuple of those) → a list of them."""
    if isinstance(input_shape, str):
        return [input_shape]
    items = list(input_shape)
    if items and all(isinstance(i, (str, Sequence)) for i in items):
        return items
    return [input_shape]


def _resolve(model: nn.Module | str, kwargs: dict[str, Any]) -> tuple[nn.Module, str, Any]:
    if isinstance(model, nn.Module):
        return model, type(model).__name__, None
    if not isinstance(model, str):
        raise AicomputeError(f"profile takes an nn.Module or a model name, got {type(model).__name__}")
    from aicompute.models.registry import get_model, resolve_model

    _, spec = resolve_model(model)
    return get_model(model, device="meta", **kwargs), model, spec


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return torch.device("cpu") if t.is_meta else t.device
    return torch.device("cpu")


def _example_shapes(spec: Any, batch_size: int, phase: str | None) -> list[tuple[tuple[int, ...], torch.dtype | None]]:
    shape = (batch_size, *spec.input_shape)
    if phase == "decode":
        shape = (batch_size, 1)
    return [(shape, torch.int64 if spec.input_dtype == "int64" else None)]


def _input_specs(inputs: Any, input_shape: Any, spec: Any, batch_size: int, phase: str | None,
                 label: str) -> list[tuple[tuple[int, ...], torch.dtype | None]]:
    """(shape, dtype or None = the profiled float dtype) of each positional input."""
    if inputs is not None:
        tensors = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise AicomputeError("inputs must be a tensor or a sequence of tensors (only shapes are used)")
        return [(tuple(t.shape), None if t.is_floating_point() else t.dtype) for t in tensors]
    if input_shape is not None:
        ints = spec is not None and spec.input_dtype == "int64"  # a zoo language model reads token ids
        out = []
        for one in _input_list(input_shape):
            shape, dtype = parse_input(one)
            named = isinstance(one, str) and ":" in one  # "1x8:float" asks for a float input on purpose
            out.append((shape, torch.int64 if ints and dtype is None and not named else dtype))
        return out
    if spec is None:
        raise AicomputeError(
            f"{label} is not a zoo model, so its input shape is unknown; pass input_shape "
            "(CLI: --input 1x3x224x224) or example inputs"
        )
    return _example_shapes(spec, batch_size, phase)


def profile(
    model: nn.Module | str,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    *,
    input_shape: str | Sequence[int] | Sequence[str | Sequence[int]] | None = None,
    batch_size: int = 1,
    dtype: str | torch.dtype = "float32",
    mode: str = "inference",
    optimizer: str = "adam",
    phase: str | None = None,
    kv_len: int | None = None,
    strict: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> ProfileResult:
    """Count what ``model`` computes for one batch: per op call, per module, totals and memory.

    ``model`` is an ``nn.Module`` (on any device, or meta) or a zoo / ``pkg.module:factory`` name, built
    on meta with ``model_kwargs``. The input is ``inputs`` (only shapes and integer dtypes are used),
    else ``input_shape`` (with the batch dim; ``"1x128:int64"`` for token ids; a list of shapes for several
    inputs), else the zoo entry's shape with ``batch_size``.
    ``mode="training"`` traces forward and the real backward (gradient of ones on the outputs) and adds
    parameter, gradient and ``optimizer`` state memory. ``phase`` (``"prefill"``/``"decode"``) profiles a
    model with a KV cache (``new_kv_cache`` + ``forward(idx, kv_cache=...)``, as the zoo's GPT models):
    decode is one new token per sequence (or as many as the input has) attending over ``kv_len``
    positions, ``kv_len - 1`` (``kv_len - T``) of them read from the cache. ``strict`` turns any
    uncounted op into an error listing them.
    """
    if mode not in MODES:
        raise AicomputeError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if phase is not None and phase not in PHASES:
        raise AicomputeError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    if phase is not None and mode == "training":
        raise AicomputeError("--phase profiles inference with a KV cache; drop --training (or --phase)")
    if kv_len is not None and phase != "decode":
        raise AicomputeError("kv_len is the decode context length; use it with phase='decode'")
    positive_int("batch_size", batch_size)
    optimizer = check_optimizer(optimizer)
    float_dtype = parse_dtype(dtype)
    net, label, spec = _resolve(model, model_kwargs or {})
    if phase is not None and not hasattr(net, "new_kv_cache"):
        raise AicomputeError(
            f"{label} has no KV cache (it needs new_kv_cache(...) and forward(idx, kv_cache=...), as the "
            "zoo's GPT models have); profile it without --phase"
        )
    input_specs = _input_specs(inputs, input_shape, spec, batch_size, phase, label)
    if phase == "decode":
        kv_len = _decode_len(net, kv_len)
    device = _model_device(net)
    started = time.perf_counter()
    with untouched(net):
        net.train(mode == "training")
        trace = _trace(net, label, input_specs, float_dtype, device, mode, phase, kv_len)
    counter, params, kv_bytes, saved = trace
    result = ProfileResult.build(
        model=net,
        label=label,
        counter=counter,
        input_specs=[(shape, dt or float_dtype) for shape, dt in input_specs],
        dtype=float_dtype,
        mode=mode,
        phase=phase,
        kv_len=kv_len,
        device=device,
        states=model_states(params, optimizer) if mode == "training" else None,
        saved_activation_bytes=saved,
        kv_cache_bytes=kv_bytes,
        seconds=time.perf_counter() - started,
    )
    if strict:
        result.check_strict()
    return result


@contextlib.contextmanager
def untouched(net: nn.Module) -> Iterator[nn.Module]:
    """Restore every module's attributes on exit, whatever the block did to them: values set, added or
    deleted, and the contents of its dicts, sets and lists (parameters, buffers, submodules, hooks, caches)
    — the train/eval flags too. A container is written back only if its contents changed (some mappings
    refuse writes); one level deep: objects inside containers are not copied."""
    saved = []
    for module in net.modules():
        attrs = dict(module.__dict__)
        contents = {k: copy.copy(v) for k, v in attrs.items() if isinstance(v, (dict, list, set))}
        saved.append((module, attrs, contents))
    try:
        yield net
    finally:
        failed = [f"{type(module).__name__}.{key}" for module, attrs, contents in saved
                  for key in _restore(module, attrs, contents)]
    if failed:
        raise AicomputeError(f"profiling changed {', '.join(failed)} and could not put them back; they refuse "
                             "writes (an immutable mapping?). The profile is fine, the model is not as it was")


def _restore(module: nn.Module, attrs: dict[str, Any], contents: dict[str, Any]) -> list[str]:
    """Put ``module``'s attributes back as ``attrs`` (``contents``: its containers' old contents); the
    names of the containers that refused."""
    now = module.__dict__
    for key in [k for k in now if k not in attrs]:
        del now[key]
    now.update(attrs)
    failed = []
    for key, old in contents.items():  # the same objects (others may hold them), their old contents
        container = attrs[key]
        if _same(container, old):
            continue
        try:
            if isinstance(container, list):
                container[:] = old
            else:
                container.clear()
                container.update(old)
        except Exception:  # noqa: BLE001 - any refusal: report the attribute, restore the rest
            failed.append(key)
    return failed


def _same(now: Any, old: Any) -> bool:
    """Same contents, by identity (``==`` on tensors would compare elements)."""
    if len(now) != len(old):
        return False
    if isinstance(now, set):
        return now == old
    if isinstance(now, list):
        return all(a is b for a, b in zip(now, old))
    return all(a is b and now[a] is old[b] for a, b in zip(now, old))


def _decode_len(net: nn.Module, kv_len: int | None) -> int:
    limit = getattr(net, "block_size", None)
    if kv_len is None:
        if limit is None:
            raise AicomputeError("decode needs kv_len (CLI: --kv-len N), the context the new token attends to")
        return int(limit)
    positive_int("kv_len", kv_len)
    if limit is not None and kv_len > limit:
        raise AicomputeError(f"kv_len {kv_len} exceeds the model's block_size {limit}; use at most {limit}")
    return kv_len


def _trace(net: nn.Module, label: str, input_specs: list, float_dtype: torch.dtype, device: torch.device,
           mode: str, phase: str | None, kv_len: int | None) -> tuple[OpCounter, list[torch.Tensor], int, int | None]:
    training = mode == "training"
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    with fake_mode:
        params = {name: _fake_like(p, float_dtype, device, p.requires_grad and training)
                  for name, p in net.named_parameters()}
        buffers = {name: _fake_like(b, float_dtype, device, False) for name, b in net.named_buffers()}
        args = [torch.empty(shape, dtype=dt or float_dtype, device=device) for shape, dt in input_specs]
        cache, kv_bytes = _kv_cache(net, phase, args, kv_len, float_dtype, device)
    state = list(params.values()) + list(buffers.values())
    modules = ModuleStack(net)
    counter = OpCounter(list(params.values()), state, modules)
    for p in params.values():  # the fake copies, not the model's parameters: nothing is left on the model
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda p: counter.memory.as_gradient(p.grad))
    counter.memory.track(args)
    if cache is not None:
        counter.memory.track(cache)
    kwargs = {"kv_cache": cache} if phase is not None else {}
    saved = None
    grad = contextlib.nullcontext() if training else torch.no_grad()
    try:
        # FakeTensorMode logs a traceback before re-raising a shape error; the error itself is what we report
        with quiet_logger("torch._subclasses.fake_tensor", logging.CRITICAL), fake_mode, modules, counter, grad:
            out = torch.func.functional_call(net, {**params, **buffers}, tuple(args), kwargs, strict=False)
            modules.add_output("", out)
            if training:
                saved = counter.memory.live
                _backward(out, label, counter)
    except AicomputeError as e:
        raise AicomputeError(_where(net, modules.where(e), label, input_specs) + str(e)) from None
    except Exception as e:  # the model's own error on these shapes: say where it happened
        raise AicomputeError(
            f"{_where(net, modules.where(e), label, input_specs)}{type(e).__name__}: {_first_line(e)}"
        ) from None
    return counter, list(params.values()), kv_bytes, saved


def _fake_like(t: torch.Tensor, float_dtype: torch.dtype, device: torch.device, requires_grad: bool) -> torch.Tensor:
    dtype = float_dtype if t.is_floating_point() else t.dtype
    return torch.empty(t.shape, dtype=dtype, device=device).requires_grad_(requires_grad)


def _kv_cache(net: nn.Module, phase: str | None, args: list[torch.Tensor], kv_len: int | None,
              dtype: torch.dtype, device: torch.device) -> tuple[Any, int]:
    """The model's KV cache for ``phase`` (fake) and its bytes; decode of T new tokens starts ``kv_len - T``
    tokens in, so the last new token attends over ``kv_len`` positions."""
    if phase is None:
        return None, 0
    batch, tokens = args[0].shape[0], args[0].shape[1]
    max_len = tokens if phase == "prefill" else kv_len
    if phase == "decode" and tokens > kv_len:
        raise AicomputeError(f"decode of {tokens} new tokens per sequence needs kv_len of at least {tokens} "
                             f"(the last one attends over kv_len positions, its own included), got {kv_len}")
    cache = net.new_kv_cache(batch, max_len, dtype=dtype, device=device)
    if phase == "decode":
        cache.length = kv_len - tokens
    tensors = [t for layer in cache.layers for t in (layer.k, layer.v)]
    return cache, sum(t.numel() * t.element_size() for t in tensors)


def _backward(out: Any, label: str, counter: OpCounter) -> None:
    """Backward from a gradient of ones on every output that needs one (the seeds are not the model's ops,
    but their memory counts: a loss's gradient with respect to the outputs has that size)."""
    tensors = [t for t in output_tensors(out) if t.requires_grad]
    if not tensors:
        raise AicomputeError(f"{label}'s outputs need no gradient (are all parameters frozen?); nothing to train")
    with counter.paused():
        seeds = [torch.ones_like(t) for t in tensors]
    torch.autograd.backward(tensors, seeds)


def _where(net: nn.Module, path: str, label: str, input_specs: list) -> str:
    named = dict(net.named_modules())
    kind = type(named[path]).__name__ if path in named else "?"
    shapes = ", ".join("x".join(map(str, shape)) for shape, _ in input_specs)
    where = f"module '{path}' ({kind})" if path else f"the model itself ({kind})"
    return f"{label} does not run on input {shapes}: failed in {where}: "


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    if type(e).__name__ in ("DataDependentOutputException", "DynamicOutputShapeException"):
        return (f"{text[0] if text else ''} — the forward reads tensor values (data-dependent control "
                "flow or .item()), which a shape-only trace cannot follow")
    first = text[0] if text else ""
    if "Long, Int" in first and "float" in first.lower():  # an embedding given float input
        first += " (token ids are an integer input: give the shape as e.g. 1x128:int64)"
    return first
