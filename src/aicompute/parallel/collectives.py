"""The seed's collectives written on point-to-point send/recv, with exact byte accounting and an α-β model.

Every function here is collective: each rank of ``group`` calls it with a tensor of the same shape and
dtype. Conventions:

* **Chunks.** A flat tensor of ``n`` elements is cut into ``p`` contiguous chunks the way
  ``torch.tensor_split`` cuts it: the first ``n % p`` chunks hold one element more (``chunk_bounds``).
  Rank ``r`` ends a reduce-scatter owning chunk ``r``, as ``dist.reduce_scatter_tensor`` does, so any
  ``n`` works, divisible by ``p`` or not.
* **The ring** (``ring_*``). At step ``s`` rank ``r`` sends chunk ``(r-s-1) % p`` to ``r+1`` and receives
  chunk ``(r-s-2) % p`` from ``r-1``. Steps ``0 … p-2`` are the reduce-scatter (the received piece is
  reduced into the chunk), steps ``p-1 … 2p-3`` the all-gather (the received piece overwrites it). Each
  rank sends and receives ``(p-1)V/p`` per phase, ``2(p-1)V/p`` for an all-reduce of ``V`` bytes.
* **Pipelining.** Each chunk is cut into segments of ``segment_bytes``; a received segment is reduced
  and forwarded to the next rank at once, while the following segments are still in flight, so the
  reduction of one segment overlaps the transfer of the next (and the ring never drains between steps).
  ``segment_bytes=None`` sends whole chunks: the plain blocking ring (send, receive, wait, reduce),
  kept for comparison.
* **Parameter server** (``ps_*``). One rank (``server``) receives every other rank's full tensor,
  reduces, and sends the result back: ``(p-1)V`` in and ``(p-1)V`` out at the server, ``V`` each way at a
  worker. Its link is the bottleneck the seed describes.
* **Recursive doubling.** ``log2 p`` rounds of full-vector exchange with partner ``r XOR 2^k``; a ``p``
  that is not a power of two first folds the extra ranks into their neighbours (one more round before,
  one after), as MPICH does.
* **Bytes** in ``CommStats`` are payload bytes (``numel * element_size``) of each message this rank
  posted: no headers, no reduction traffic.

On gloo, messages are plain ``dist.isend`` / ``dist.irecv`` matched by tag; on other backends each send and
its receive go out together through ``dist.batch_isend_irecv`` (NCCL needs them issued as one group).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from aicompute.checks import did_you_mean, positive_int
from aicompute.errors import AicomputeError

__all__ = [
    "CommStats", "chunk_bounds", "ring_bytes_sent", "ring_workspace", "ring_reduce_scatter", "ring_all_gather", "ring_all_reduce_",
    "ps_reduce_",
    "ps_broadcast_", "ps_all_reduce_", "recursive_doubling_all_reduce_", "ALL_REDUCE", "all_reduce_with",
    "CostTerms", "cost_terms", "AlphaBeta", "REDUCE_OPS", "DEFAULT_SEGMENT_BYTES",
]

DEFAULT_SEGMENT_BYTES = 1 << 20
"""1 MiB: small enough that a 16 MiB all-reduce on 2-4 ranks has several segments in flight per chunk,
large enough that gloo's per-message cost (tens of µs) stays a few percent of the transfer."""


def _combine_max(acc: torch.Tensor, x: torch.Tensor) -> None:
    torch.maximum(acc, x, out=acc)


def _combine_min(acc: torch.Tensor, x: torch.Tensor) -> None:
    torch.minimum(acc, x, out=acc)


REDUCE_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "sum": torch.Tensor.add_, "avg": torch.Tensor.add_, "max": _combine_max, "min": _combine_min,
}
"""Reduction name → in-place ``combine(acc, x)``; ``avg`` sums, then divides by ``p`` once at the end."""


@dataclass
class CommStats:
    """What one rank put on the wire and took off it: payload bytes and message counts (accumulates)."""

    bytes_sent: int = 0
    bytes_recv: int = 0
    messages_sent: int = 0
    messages_recv: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def chunk_bounds(numel: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each of ``parts`` contiguous chunks of ``numel`` elements, as ``tensor_split``
    cuts them: the first ``numel % parts`` chunks are one element longer. ``chunk_bounds(10, 4)`` is
    ``[(0, 3), (3, 6), (6, 8), (8, 10)]``."""
    positive_int("parts", parts)
    base, extra = divmod(numel, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def ring_bytes_sent(numel: int, element_size: int, world_size: int, rank: int) -> int:
    """Bytes ``rank`` sends in one ring all-reduce of ``numel`` elements (chunks as ``chunk_bounds``): every
    chunk but its own while reducing, every chunk but its successor's while gathering — ``2(p-1)V/p`` when p
    divides V. The closed form the ring's counted bytes (``CommStats``) are checked against."""
    sizes = [hi - lo for lo, hi in chunk_bounds(numel, world_size)]
    return (2 * numel - sizes[rank] - sizes[(rank + 1) % world_size]) * element_size


_TAGS = 1 << 30  # gloo takes a non-negative C int


class _P2P:
    """The sends and receives of one collective call: posts them, counts their bytes."""

    def __init__(self, group: dist.ProcessGroup | None, stats: CommStats | None):
        self.group = group
        self.stats = stats if stats is not None else CommStats()
        self.tagged = dist.get_backend(group) == "gloo"  # gloo matches messages on tags; NCCL has none

    def post(self, sends: list[tuple[torch.Tensor, int, int]], recvs: list[tuple[torch.Tensor, int, int]]
             ) -> tuple[list[dist.Work], list[dist.Work]]:
        """Issue ``(tensor, group_peer, tag)`` sends and receives together; return (send works, recv works).
        Other backends than gloo get one ``batch_isend_irecv`` (NCCL must see a send and its matching
        receive together); if it coalesces the batch into one work, that work stands for all of them."""
        for t, _, _ in sends:
            self.stats.bytes_sent += t.numel() * t.element_size()
        for t, _, _ in recvs:
            self.stats.bytes_recv += t.numel() * t.element_size()
        self.stats.messages_sent += len(sends)
        self.stats.messages_recv += len(recvs)
        if self.tagged:  # gloo: plain isend/irecv (a third cheaper to post than a batch); works are per message
            # tags only need to tell apart messages in flight; equal tags between two ranks match in order
            return ([dist.isend(t, group=self.group, group_dst=peer, tag=tag % _TAGS) for t, peer, tag in sends],
                    [dist.irecv(t, group=self.group, group_src=peer, tag=tag % _TAGS) for t, peer, tag in recvs])
        ops = [dist.P2POp(dist.isend, t, group=self.group, group_peer=peer) for t, peer, _ in sends]
        ops += [dist.P2POp(dist.irecv, t, group=self.group, group_peer=peer) for t, peer, _ in recvs]
        if not ops:
            return [], []
        works = dist.batch_isend_irecv(ops)
        if len(works) == len(ops):
            return works[:len(sends)], works[len(sends):]
        return works, works  # coalesced (NCCL): one work completes the whole batch


def _check_op(op: str, tensor: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], object]:
    if op not in REDUCE_OPS:
        raise AicomputeError(f"unknown reduction {op!r}{did_you_mean(op, REDUCE_OPS)}; use one of {sorted(REDUCE_OPS)}")
    if op == "avg" and not tensor.is_floating_point():
        raise AicomputeError(f"op='avg' needs a floating-point tensor, got {tensor.dtype}; use op='sum'")
    return REDUCE_OPS[op]


def _ring(flat: torch.Tensor, steps: range, combine: Callable, group: dist.ProcessGroup | None,
          stats: CommStats | None, segment_bytes: int | None, workspace: torch.Tensor | None) -> None:
    """Run ``steps`` of the ring (module docstring) on ``flat`` in place; steps below ``p-1`` reduce.

    Segment ``j`` of a chunk is its elements ``[j·seg, (j+1)·seg)`` (the last one shorter, or empty in a chunk
    one element short), so it lands in the same place of a chunk-sized scratch buffer whatever the chunk:
    step ``s+1``'s receive of segment ``j`` is posted only after step ``s``'s segment ``j`` was reduced."""
    p, r = dist.get_world_size(group), dist.get_rank(group)
    comm = _P2P(group, stats)
    bounds = chunk_bounds(flat.numel(), p)
    longest = bounds[0][1] - bounds[0][0]  # chunk 0 is never shorter than the others
    seg_numel = longest if segment_bytes is None else max(1, segment_bytes // flat.element_size())
    nseg = max(1, math.ceil(longest / seg_numel))
    segs = [[(min(lo + j * seg_numel, hi), min(lo + (j + 1) * seg_numel, hi)) for j in range(nseg)]
            for lo, hi in bounds]  # segs[chunk][j] = (start, stop) in flat
    right, left = (r + 1) % p, (r - 1) % p
    reduce_steps = p - 1
    scratch = None
    if steps.start < reduce_steps:
        scratch = _scratch(workspace, longest, flat)
    sending: dict[tuple[int, int], list[dist.Work]] = {}  # (chunk, segment) → its in-flight send

    def send_of(s: int, j: int) -> tuple[torch.Tensor, int, int] | None:
        lo, hi = segs[(r - s - 1) % p][j]
        return (flat[lo:hi], right, s * nseg + j) if hi > lo else None

    def recv_of(s: int, j: int) -> tuple[torch.Tensor, int, int] | None:
        c = (r - s - 2) % p
        lo, hi = segs[c][j]
        if hi == lo:
            return None
        if s < reduce_steps:  # reduce-scatter: land in slot j of the scratch, reduce into the chunk afterwards
            return scratch[j * seg_numel:j * seg_numel + hi - lo], left, s * nseg + j
        for work in sending.pop((c, j), ()):  # all-gather overwrites the chunk: its old send must be done
            work.wait()
        return flat[lo:hi], left, s * nseg + j

    def post(s: int, j: int) -> list[dist.Work]:
        """Post step ``s``'s send and receive of segment ``j``; return the receive's works."""
        send, recv = send_of(s, j), recv_of(s, j)
        send_works, recv_works = comm.post([send] if send else [], [recv] if recv else [])
        if send:
            sending[((r - s - 1) % p, j)] = send_works
        return recv_works

    last = steps.stop - 1
    inbox = [post(steps.start, j) for j in range(nseg)]
    for s in steps:
        c = (r - s - 2) % p
        for j in range(nseg):
            for work in inbox[j]:
                work.wait()
            lo, hi = segs[c][j]
            if s < reduce_steps and hi > lo:
                combine(flat[lo:hi], scratch[j * seg_numel:j * seg_numel + hi - lo])
            # what just arrived is step s+1's send: forward it now, while later segments are still in flight
            inbox[j] = post(s + 1, j) if s < last else []
    for works in sending.values():
        for work in works:
            work.wait()


def _scratch(workspace: torch.Tensor | None, numel: int, like: torch.Tensor) -> torch.Tensor:
    if workspace is None:
        return like.new_empty(numel)
    if workspace.dtype != like.dtype or workspace.device != like.device or workspace.numel() < numel:
        raise AicomputeError(f"workspace must be a {like.dtype} tensor on {like.device} with at least {numel} "
                             f"elements (a chunk; see ring_workspace), got {workspace.dtype} on "
                             f"{workspace.device} with {workspace.numel()}")
    return workspace.view(-1)[:numel]


def ring_workspace(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """A scratch buffer for ``tensor``'s ring reduce-scatter / all-reduce, to pass as ``workspace=`` call
    after call: one chunk (``⌈n/p⌉`` elements). Without it each call allocates one, and fresh memory
    costs page faults as the received data lands in it (measured: ~15 % of a 16 MiB all-reduce on gloo)."""
    start, stop = chunk_bounds(tensor.numel(), world_size)[0]
    return tensor.new_empty(stop - start)


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.view(-1) if tensor.is_contiguous() else tensor.contiguous().view(-1)


def _write_back(tensor: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    if flat.data_ptr() != tensor.data_ptr() or not tensor.is_contiguous():
        tensor.copy_(flat.view(tensor.shape))
    return tensor


def ring_all_reduce_(tensor: torch.Tensor, *, op: str = "sum", group: dist.ProcessGroup | None = None,
                     stats: CommStats | None = None, segment_bytes: int | None = DEFAULT_SEGMENT_BYTES,
                     workspace: torch.Tensor | None = None) -> torch.Tensor:
    """All-reduce ``tensor`` in place (as ``dist.all_reduce``) by ring reduce-scatter + ring all-gather.
    ``workspace``: a reusable scratch buffer from ``ring_workspace`` (else one is allocated per call)."""
    combine = _check_op(op, tensor)
    p = dist.get_world_size(group)
    flat = _flat(tensor)
    if p > 1 and flat.numel():
        _ring(flat, range(0, 2 * p - 2), combine, group, stats, segment_bytes, workspace)
    if op == "avg":
        flat.div_(p)
    return _write_back(tensor, flat)


def ring_reduce_scatter(tensor: torch.Tensor, *, op: str = "sum", group: dist.ProcessGroup | None = None,
                        stats: CommStats | None = None, segment_bytes: int | None = DEFAULT_SEGMENT_BYTES,
                        workspace: torch.Tensor | None = None) -> torch.Tensor:
    """This rank's reduced chunk of ``tensor`` (flattened; chunks as ``chunk_bounds``). ``tensor`` is not
    changed. With ``numel`` divisible by ``p`` this is ``dist.reduce_scatter_tensor``'s output."""
    combine = _check_op(op, tensor)
    p, r = dist.get_world_size(group), dist.get_rank(group)
    work = tensor.detach().reshape(-1).clone()
    if p > 1 and work.numel():
        _ring(work, range(0, p - 1), combine, group, stats, segment_bytes, workspace)
    lo, hi = chunk_bounds(work.numel(), p)[r]
    out = work[lo:hi].clone()
    return out.div_(p) if op == "avg" else out


def ring_all_gather(chunk: torch.Tensor, *, numel: int | None = None, group: dist.ProcessGroup | None = None,
                    stats: CommStats | None = None, segment_bytes: int | None = DEFAULT_SEGMENT_BYTES
                    ) -> torch.Tensor:
    """Every rank's ``chunk`` concatenated in rank order, as a flat tensor of ``numel`` elements.

    ``numel`` defaults to ``p * chunk.numel()`` (equal chunks, as ``dist.all_gather_into_tensor``); pass it
    when the chunks are uneven, and give each rank the chunk ``chunk_bounds(numel, p)`` assigns it."""
    p, r = dist.get_world_size(group), dist.get_rank(group)
    numel = p * chunk.numel() if numel is None else numel
    lo, hi = chunk_bounds(numel, p)[r]
    if chunk.numel() != hi - lo:
        raise AicomputeError(f"rank {r} holds {chunk.numel()} elements but chunk {r} of {numel} over {p} ranks "
                             f"has {hi - lo}; split the tensor with chunk_bounds({numel}, {p})")
    out = chunk.new_empty(numel)
    out[lo:hi] = chunk.reshape(-1)
    if p > 1 and numel:
        _ring(out, range(p - 1, 2 * p - 2), REDUCE_OPS["sum"], group, stats, segment_bytes, None)
    return out


def ps_reduce_(tensor: torch.Tensor, *, server: int = 0, op: str = "sum", group: dist.ProcessGroup | None = None,
               stats: CommStats | None = None) -> torch.Tensor:
    """Every worker sends its whole tensor to ``server`` (a group rank), which reduces them in rank order into
    its own ``tensor``; other ranks' tensors are unchanged. The server takes in ``(p-1)V`` bytes."""
    combine = _check_op(op, tensor)
    p, r = dist.get_world_size(group), dist.get_rank(group)
    if not 0 <= server < p:
        raise AicomputeError(f"server must be a rank in [0, {p - 1}], got {server}")
    comm = _P2P(group, stats)
    flat = _flat(tensor)
    if r == server:
        peers = [q for q in range(p) if q != server]
        inbox = [flat.new_empty(flat.numel()) for _ in peers]
        recv_works = [comm.post([], [(buf, q, 0)])[1] for buf, q in zip(inbox, peers)]
        for buf, works in zip(inbox, recv_works):
            for work in works:
                work.wait()
            combine(flat, buf)
        if op == "avg":
            flat.div_(p)
        return _write_back(tensor, flat)
    for work in comm.post([(flat, server, 0)], [])[0]:
        work.wait()
    return tensor


def ps_broadcast_(tensor: torch.Tensor, *, server: int = 0, group: dist.ProcessGroup | None = None,
                  stats: CommStats | None = None) -> torch.Tensor:
    """``server`` sends its tensor to every other rank, one message each: ``(p-1)V`` bytes out of the server."""
    p, r = dist.get_world_size(group), dist.get_rank(group)
    comm = _P2P(group, stats)
    flat = _flat(tensor)
    if r == server:
        works = [w for q in range(p) if q != server for w in comm.post([(flat, q, 1)], [])[0]]
    else:
        works = comm.post([], [(flat, server, 1)])[1]
    for work in works:
        work.wait()
    return _write_back(tensor, flat)


def ps_all_reduce_(tensor: torch.Tensor, *, server: int = 0, op: str = "sum", group: dist.ProcessGroup | None = None,
                   stats: CommStats | None = None) -> torch.Tensor:
    """Naive parameter-server all-reduce: ``ps_reduce_`` to ``server``, then ``ps_broadcast_`` from it."""
    ps_reduce_(tensor, server=server, op=op, group=group, stats=stats)
    return ps_broadcast_(tensor, server=server, group=group, stats=stats)


def recursive_doubling_all_reduce_(tensor: torch.Tensor, *, op: str = "sum", group: dist.ProcessGroup | None = None,
                                   stats: CommStats | None = None) -> torch.Tensor:
    """All-reduce in ``log2 p`` rounds of full-vector exchange (plus a fold and an unfold round when ``p`` is
    not a power of two). Latency-optimal, but each round moves all ``V`` bytes. Both partners compute
    ``a + b`` on the same two operands, and IEEE addition is commutative, so every rank ends bit-identical."""
    combine = _check_op(op, tensor)
    p, r = dist.get_world_size(group), dist.get_rank(group)
    comm = _P2P(group, stats)
    flat = _flat(tensor)
    pow2 = 1 << (p.bit_length() - 1)
    extra = p - pow2  # ranks 0 … 2·extra-1 pair up: the even one hands its vector to the odd one and sits out

    def wait(works: list[dist.Work]) -> None:
        for work in works:
            work.wait()

    if p > 1 and flat.numel():
        inbox = flat.new_empty(flat.numel())
        if r < 2 * extra:
            if r % 2 == 0:
                wait(comm.post([(flat, r + 1, 0)], [])[0])
            else:
                wait(comm.post([], [(inbox, r - 1, 0)])[1])
                combine(flat, inbox)
        if r >= 2 * extra or r % 2 == 1:
            me = r // 2 if r < 2 * extra else r - extra  # rank among the pow2 participants
            mask = 1
            while mask < pow2:
                partner_id = me ^ mask
                partner = partner_id * 2 + 1 if partner_id < extra else partner_id + extra
                sends, recvs = comm.post([(flat, partner, mask)], [(inbox, partner, mask)])
                wait(sends + recvs)
                combine(flat, inbox)
                mask <<= 1
        if r < 2 * extra:  # unfold: the odd rank hands the result back
            if r % 2 == 1:
                wait(comm.post([(flat, r - 1, pow2)], [])[0])
            else:
                wait(comm.post([], [(flat, r + 1, pow2)])[1])
    if op == "avg":
        flat.div_(p)
    return _write_back(tensor, flat)


def _backend_all_reduce_(tensor: torch.Tensor, *, op: str = "sum", group: dist.ProcessGroup | None = None,
                         stats: CommStats | None = None) -> torch.Tensor:
    """The backend's own ``dist.all_reduce`` (gloo/NCCL's algorithm); its bytes are not visible to us."""
    _check_op(op, tensor)
    reduce_op = {"sum": dist.ReduceOp.SUM, "avg": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                 "min": dist.ReduceOp.MIN}[op]
    dist.all_reduce(tensor, op=reduce_op, group=group)
    return tensor.div_(dist.get_world_size(group)) if op == "avg" else tensor


def _blocking_ring_all_reduce_(tensor: torch.Tensor, **kw) -> torch.Tensor:
    return ring_all_reduce_(tensor, segment_bytes=None, **kw)


ALL_REDUCE: dict[str, Callable[..., torch.Tensor]] = {
    "ring": ring_all_reduce_,
    "ring-blocking": _blocking_ring_all_reduce_,
    "ps": ps_all_reduce_,
    "recursive-doubling": recursive_doubling_all_reduce_,
    "backend": _backend_all_reduce_,
}
"""All-reduce algorithms by name; each is ``fn(tensor, *, op, group, stats) -> tensor`` (in place)."""


def all_reduce_with(algorithm: str, tensor: torch.Tensor, **kw) -> torch.Tensor:
    """``ALL_REDUCE[algorithm](tensor, **kw)``, with a clear error for an unknown name."""
    if algorithm not in ALL_REDUCE:
        raise AicomputeError(f"unknown all-reduce algorithm {algorithm!r}{did_you_mean(algorithm, ALL_REDUCE)}; "
                             f"use one of {list(ALL_REDUCE)}")
    return ALL_REDUCE[algorithm](tensor, **kw)


@dataclass(frozen=True)
class CostTerms:
    """The critical path of one collective: ``steps`` messages one after another, ``bytes`` through the
    busiest link (a ring rank's, the parameter server's)."""

    steps: int
    bytes: float


def cost_terms(algorithm: str, nbytes: int, world_size: int) -> CostTerms | None:
    """α-β terms of an all-reduce of ``nbytes`` over ``world_size`` ranks (``None`` for ``backend``: its
    algorithm is not ours to model). Also ``ring-reduce-scatter`` and ``ring-all-gather``.

    ring: 2(p-1) steps, 2(p-1)V/p bytes; one ring phase: half of that. ps: the server takes p-1 messages
    in, then sends p-1 out, one at a time (single-port model): 2(p-1) steps of V. recursive doubling:
    log2 p rounds of V, plus a fold and an unfold round when p is not a power of two."""
    p, v = world_size, float(nbytes)
    if p == 1:
        return CostTerms(0, 0.0)
    if algorithm in ("ring", "ring-blocking"):
        return CostTerms(2 * (p - 1), 2 * (p - 1) * v / p)
    if algorithm in ("ring-reduce-scatter", "ring-all-gather"):
        return CostTerms(p - 1, (p - 1) * v / p)
    if algorithm == "ps":
        return CostTerms(2 * (p - 1), 2 * (p - 1) * v)
    if algorithm == "recursive-doubling":
        rounds = (p.bit_length() - 1) + (0 if p & (p - 1) == 0 else 2)
        return CostTerms(rounds, rounds * v)
    if algorithm == "backend":
        return None
    known = [*ALL_REDUCE, "ring-reduce-scatter", "ring-all-gather"]
    raise AicomputeError(f"no cost model for {algorithm!r}{did_you_mean(algorithm, known)}; use one of {known}")


@dataclass(frozen=True)
class AlphaBeta:
    """The α-β model: a message of ``m`` bytes takes ``alpha_s + m / beta_bytes_per_s`` seconds, and a
    collective takes ``steps·α + bytes/β`` over its critical path (``cost_terms``). It ignores the time
    spent reducing (a γ·bytes term), which on CPUs is not small: measured times exceed it by that much."""

    alpha_s: float
    beta_bytes_per_s: float

    @classmethod
    def fit(cls, nbytes: list[int] | tuple[int, ...], seconds: list[float] | tuple[float, ...]) -> AlphaBeta:
        """Least-squares line through one-way message times (from a ping-pong): intercept α, slope 1/β.
        A negative intercept (noise at small sizes) is clipped to 0."""
        if len(nbytes) != len(seconds) or len(set(nbytes)) < 2:
            raise AicomputeError("fitting α and β needs times for at least two different message sizes")
        n = len(nbytes)
        mx, my = sum(nbytes) / n, sum(seconds) / n
        sxx = sum((x - mx) ** 2 for x in nbytes)
        slope = sum((x - mx) * (y - my) for x, y in zip(nbytes, seconds)) / sxx
        if slope <= 0:
            raise AicomputeError("message time did not grow with size; measure larger messages to fit β")
        return cls(alpha_s=max(0.0, my - slope * mx), beta_bytes_per_s=1.0 / slope)

    def predict_s(self, algorithm: str, nbytes: int, world_size: int) -> float | None:
        """Predicted seconds of ``algorithm`` on ``nbytes`` over ``world_size`` ranks (``None``: no model)."""
        terms = cost_terms(algorithm, nbytes, world_size)
        return None if terms is None else terms.steps * self.alpha_s + terms.bytes / self.beta_bytes_per_s

    def to_dict(self) -> dict[str, float]:
        return {"alpha_s": self.alpha_s, "beta_bytes_per_s": self.beta_bytes_per_s}
