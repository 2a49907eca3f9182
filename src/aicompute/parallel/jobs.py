"""The job registry: what ``aicompute parallel run NAME`` runs, and its ``--option VALUE`` parsing.

A **job** is ``fn(ctx, **options)``: ``ctx`` is the rank's ``aicompute.parallel.launch.RankContext`` and the
keyword parameters after it are the job's options. ``@register_job(name)`` puts it in the registry; a
spawned rank starts bare and re-imports the registering module (``job_function``), so registering the same
function twice is a no-op. ``path/to/file.py:function`` names a job without registering it: each rank loads
that file by path.

Options from the command line are converted by the function's type annotations (``parse_job_options``):
int, float, str, bool, Path and ``T | None``; ``--no-flag`` for a False bool; an unannotated option gets
the text. ``register_job(name, check=fn)`` gives a job a pre-flight check: ``check_options`` (which the
launcher calls before it spawns anything) calls ``fn(world=..., **options)`` with the :class:`World` the
job will run in (its size, the launcher's checkpoint folder and resume flag; only if ``fn`` has a
``world`` parameter) and every option, defaults filled in, so a bad combination (a model that does not
fit the data set, a rank that does not exist, a checkpoint of another run) fails in the launching
process, once.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicompute.checks import did_you_mean
from aicompute.errors import AicomputeError

__all__ = ["Job", "World", "register_job", "get_job", "list_jobs", "parse_job_options", "check_options",
           "job_function"]

_JOBS: dict[str, Job] = {}


@dataclass(frozen=True)
class World:
    """What a pre-flight check knows of the run before any rank starts."""

    size: int
    """Ranks in the whole run (all nodes)."""
    checkpoint_dir: Path | None = None
    resume: bool = False


@dataclass(frozen=True)
class Job:
    """A registered job: ``fn(ctx, **options)``; its keyword parameters are its options."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    module: str = ""
    file: str | None = None  # set for a ``path/to/file.py:function`` job, which each rank loads by path
    check: Callable[..., None] | None = None  # pre-flight check([world=], **options) (module docstring)

    def options(self) -> dict[str, inspect.Parameter]:
        params = list(inspect.signature(self.fn).parameters.values())[1:]  # the first is ctx
        return {p.name: p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def register_job(name: str, *, description: str | None = None,
                 check: Callable[..., None] | None = None) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn(ctx, **options)`` runnable as ``aicompute parallel run NAME``. Registering the
    same function again is a no-op (a spawned rank re-imports its module); another under a taken name is
    an error. ``check(world=..., **options)`` (or ``check(**options)``) raises ``AicomputeError`` for
    options the job cannot run with in that :class:`World`."""

    def register(fn: Callable) -> Callable:
        old = _JOBS.get(name)
        if old is not None and (old.module, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise RuntimeError(f"job {name!r} is already registered by {old.module}.{old.fn.__qualname__}")
        doc = description if description is not None else (inspect.getdoc(fn) or "").split("\n")[0]
        _JOBS[name] = Job(name, fn, doc, fn.__module__, check=check)
        return fn

    return register


def list_jobs() -> list[Job]:
    return sorted(_JOBS.values(), key=lambda job: job.name)


def get_job(name: str) -> Job:
    """A registered job by name, or ``path/to/file.py:function`` loaded from that file."""
    if name in _JOBS:
        return _JOBS[name]
    if ":" in name and name.rsplit(":", 1)[0].endswith(".py"):
        path, fn_name = name.rsplit(":", 1)
        fn = getattr(_load_file(path), fn_name, None)
        if not callable(fn):
            raise AicomputeError(f"{path} has no function {fn_name!r}; name a function fn(ctx, **options) in it")
        return Job(name, fn, (inspect.getdoc(fn) or "").split("\n")[0], fn.__module__, str(Path(path).resolve()))
    raise AicomputeError(f"unknown job {name!r}{did_you_mean(name, _JOBS)}; registered jobs: {sorted(_JOBS)} "
                         "(or give path/to/file.py:function)")


def job_function(name: str, module: str, file: str | None) -> Callable[..., Any]:
    """The function of job ``name`` in a rank that may start bare: load ``file`` (a file job), or import
    ``module``, the module that registers it."""
    if file is not None:
        loaded = _load_file(file)
        return _JOBS[name].fn if name in _JOBS else getattr(loaded, name.rsplit(":", 1)[1])
    if name not in _JOBS:
        importlib.import_module(module)
    return _JOBS[name].fn


def _load_file(path: str) -> Any:
    file = Path(path).resolve()
    if not file.is_file():
        raise AicomputeError(f"job file {path!r} does not exist; give path/to/file.py:function")
    module_name = "_aicompute_job_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def check_options(job: Job, options: Mapping[str, Any], world: World) -> dict[str, Any]:
    """``options`` as a dict, after checking each is one of the job's, none it requires is missing, and the
    job's own ``check`` accepts them all (defaults filled in) in ``world``."""
    known = job.options()
    for key in options:
        if key not in known:
            raise AicomputeError(f"job {job.name!r} has no option {key!r}{did_you_mean(key, known)}; "
                                 f"its options: {sorted(known) or 'none'}")
    missing = [k for k, p in known.items() if p.default is inspect.Parameter.empty and k not in options]
    if missing:
        flag = "--" + missing[0].replace("_", "-")
        raise AicomputeError(f"job {job.name!r} needs option(s) {missing}; pass them as {flag} VALUE")
    if job.check is not None:
        defaults = {k: p.default for k, p in known.items() if p.default is not inspect.Parameter.empty}
        filled = {**defaults, **options}
        if "world" in inspect.signature(job.check).parameters:
            job.check(world=world, **filled)
        else:  # a check that does not need the world (the older signature, check(**options))
            job.check(**filled)
    return dict(options)


def parse_job_options(job: Job, argv: Sequence[str]) -> dict[str, Any]:
    """``["--steps", "3", "--fail-rank", "1", "--verbose"]`` → ``{"steps": 3, "fail_rank": 1, "verbose": True}``,
    converted with the job's type annotations (int, float, str, bool, Path; ``--no-flag`` for False; an
    option without annotation gets the text)."""
    known = job.options()
    try:
        hints = typing.get_type_hints(job.fn)
    except Exception:  # noqa: BLE001 — an annotation that does not resolve: take the values as text
        hints = {}
    options: dict[str, Any] = {}
    args = list(argv)
    while args:
        token = args.pop(0)
        if not token.startswith("--"):
            raise AicomputeError(f"unexpected argument {token!r} for job {job.name!r}; pass options as --name VALUE")
        key = token[2:].replace("-", "_")
        negated = key.startswith("no_") and key[3:] in known and _kind(hints.get(key[3:])) is bool
        key = key[3:] if negated else key
        if key not in known:
            raise AicomputeError(f"job {job.name!r} has no option {token}{did_you_mean(key, known)}; "
                                 f"its options: {['--' + k.replace('_', '-') for k in known]}")
        kind = _kind(hints.get(key))
        if kind is bool and (negated or not args or args[0].startswith("--")):
            options[key] = not negated
            continue
        if not args:
            raise AicomputeError(f"option {token} of job {job.name!r} needs a value")
        options[key] = _convert(token, args.pop(0), kind)
    return options


def _kind(hint: Any) -> Any:
    """The plain type behind ``T`` or ``T | None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _convert(token: str, text: str, kind: Any) -> Any:
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise AicomputeError(f"option {token} takes true or false, got {text!r}")
    if kind is None or kind is Any:  # not annotated: the text as it is
        return text
    if kind in (int, float, str, Path):
        try:
            return kind(text)
        except ValueError:
            raise AicomputeError(f"option {token} takes {kind.__name__}, got {text!r}") from None
    raise AicomputeError(f"option {token} takes a {kind}, which cannot be given on the command line; "
                         "call aicompute.parallel.launch from Python")
