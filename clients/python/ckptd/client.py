"""CkptdClient: the typed client of ckptd's CheckpointService, EvaluationService and
RetentionService. One method per RPC, plus :meth:`CkptdClient.load_items`, which
assembles a Load stream into tensors, and :meth:`CkptdClient.checkpoints`, which
follows a job's commits across reconnections.

Call order for one checkpoint, per rank: ``save`` x N (one per item) -> ``commit`` (the
rank's vote) | ``abort``. The checkpoint becomes visible to ``get_checkpoint``,
``list_checkpoints``, ``load`` and ``watch`` once every rank voted and the decision is
durable. An evaluator: ``checkpoints`` -> per checkpoint ``load_items`` ->
``report_evaluation``; a trainer calls ``wait_for_evaluators`` after its commit.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import grpc

from . import _crc, _shm
from ._proto import checkpoint_service_pb2 as pb
from ._proto import checkpoint_service_pb2_grpc as pb_grpc
from ._proto import evaluation_service_pb2 as eval_pb
from ._proto import evaluation_service_pb2_grpc as eval_grpc
from ._proto import retention_service_pb2 as ret_pb
from ._proto import retention_service_pb2_grpc as ret_grpc
from .errors import CkptdError, DaemonUnavailable, DataLoss, FailedPrecondition, Internal, InvalidArgument
from .tensors import (MappedTensor, TensorAssembler, TensorFiller, TensorInfo, _Staging, dtype_name, is_wire_tensor, tensor_chunks,
                      tensor_info, tensor_spec, torch_dtype)

__all__ = [
    "CHANNEL_OPTIONS",
    "CheckpointEvent",
    "CkptdClient",
    "CommitResult",
    "DEFAULT_ADDRESS",
    "LoadedItems",
    "LoadedObject",
    "LoadedTensor",
    "MAX_CHUNK_BYTES",
    "ObjectEntry",
    "SaveResult",
    "ShardAs",
    "TensorBox",
    "TensorEntry",
    "default_address",
    "process_incarnation",
]

#: Largest data chunk either side sends in one message.
MAX_CHUNK_BYTES = 4 << 20
#: gRPC message limit: one chunk plus headroom for the envelope.
MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + (1 << 20)
#: Where the daemon listens when neither an address nor CKPTD_ADDRESS is given.
DEFAULT_ADDRESS = "127.0.0.1:7070"
#: Where saves to a local daemon put their bytes (the daemon's --shared-memory-dir default).
DEFAULT_SHARED_MEMORY_DIR = "/dev/shm"

log = logging.getLogger("ckptd")

#: Channel options: messages above the 4 MiB default, a stream window large enough that
#: a 4 MiB chunk is never split across window updates (BDP probing stays on and grows it
#: further), and quick reconnection to a restarted daemon. Each client has its own
#: connection (local subchannel pool): grpc otherwise shares one per address across
#: channels, and a new client would inherit another's reconnect backoff after a restart
#: and fail at once with UNAVAILABLE.
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.lookahead_bytes", 16 << 20),
    ("grpc.http2.bdp_probe", 1),
    # Not grpc.min_reconnect_backoff_ms: grpc core uses it as the connect timeout, 20 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.use_local_subchannel_pool", 1),
)


#: Largest incarnation the daemon accepts (it compares them as exact doubles).
MAX_INCARNATION = (1 << 53) - 1

_incarnation_lock = threading.Lock()
_incarnation: Optional[tuple] = None  # (pid, incarnation)


def process_incarnation() -> int:
    """This process's incarnation: microseconds since the epoch when it first asked, so a
    restarted trainer (a new process) has a larger one than the process it replaces. The
    daemon fences by it: the first save, commit or abort of a newer incarnation of a rank
    aborts the checkpoint's undecided attempt the older one took part in, and the older
    one's late messages are refused. One value per process, not per client, so several
    clients of one rank (an engine and a Snapshot) never fence each other; a forked child
    picks its own."""
    global _incarnation
    pid = os.getpid()
    with _incarnation_lock:
        if _incarnation is None or _incarnation[0] != pid:
            _incarnation = (pid, time.time_ns() // 1000)
        return _incarnation[1]


def default_address() -> str:
    """``$CKPTD_ADDRESS``, else 127.0.0.1:7070."""
    return os.environ.get("CKPTD_ADDRESS") or DEFAULT_ADDRESS


def is_local_address(address: str) -> bool:
    """True for a loopback TCP address or a Unix socket: a daemon on this node."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address
    if host.startswith("dns:///"):
        host = host[len("dns:///"):]
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass
class TensorEntry:
    """A tensor entry to save: a torch tensor (any device) or numpy array.

    ``device`` overrides the device recorded in the checkpoint (default: the tensor's
    own, ``cpu`` for numpy); ``dtype`` reinterprets the bytes as another dtype of the
    same width (e.g. a uint16 array holding bfloat16 bits).
    """

    key: str
    tensor: Any
    device: Optional[str] = None
    dtype: Optional[str] = None
    global_shape: Sequence[int] = ()
    global_offsets: Sequence[int] = ()


@dataclass
class ObjectEntry:
    """An opaque entry to save: bytes the caller serialised, and how (informational)."""

    key: str
    data: Union[bytes, bytearray, memoryview]
    format: str = ""


Entry = Union[TensorEntry, ObjectEntry]


@dataclass
class SaveResult:
    """What a save staged. Pass ``attempt`` to :meth:`CkptdClient.commit`."""

    bytes_received: int
    bytes_stored: int
    entry_count: int
    attempt: int


class PendingSave:
    """An async save (:meth:`CkptdClient.save_async`) that no longer needs the trainer's
    memory. ``result()`` waits until the daemon staged the item durably and returns its
    :class:`SaveResult`, or raises the save's error."""

    def __init__(self, future: "concurrent.futures.Future"):
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: Optional[float] = None) -> "SaveResult":
        return self._future.result(timeout=timeout)


class SnapshotBuffers:
    """Host buffers for :meth:`CkptdClient.save_async` snapshots, reused from save to save
    (allocated and touched once, per entry key), holding at most ``budget_bytes``. Use one
    per trainer, and wait for a save's ``result()`` before the next save reuses them.

    The buffers of the entries :meth:`prepare` sees are views of one contiguous block, laid
    out in entry order, so a state dict whose tensors are themselves views of one flat
    buffer in that order (flattened parameters and optimizer state) is captured with one
    copy per contiguous run instead of one per tensor."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self._buffers = {}
        self._used = 0
        # Per key: (buffer, entry options, what _prepare_entries made of it) of the last save.
        self._prepared = {}

    def prepare(self, entries) -> None:
        """Allocates and touches the buffers for these entries ahead of the first save, so
        that save's stall is a copy into warm memory (first touch is slow on some VMs)."""
        import torch
        layout = []
        offset = 0
        for e in entries:
            t = getattr(e, "tensor", None)
            if not isinstance(t, torch.Tensor) or e.key in self._buffers:
                continue
            n = t.numel() * t.element_size()
            if self._used + offset + n > self.budget_bytes:
                continue
            # Each view starts at a multiple of its element size (what a dtype view of the
            # block needs), and no further: tightly packed sources stay adjacent here too.
            offset = -(-offset // t.element_size()) * t.element_size()
            layout.append((e.key, t, offset, n))
            offset += n
        if not layout:
            return
        block = torch.zeros(offset, dtype=torch.uint8)  # zeros: the pages are touched now
        for key, t, at, n in layout:
            self._buffers[key] = block[at:at + n].view(t.dtype).view(t.shape)
        self._used += offset

    def split(self, entries):
        """(entries streamed from the trainer's memory, entries snapshotted into buffers)."""
        import torch
        direct, staged = [], []
        copies = []
        for e in entries:
            t = getattr(e, "tensor", None)
            if not isinstance(t, torch.Tensor):
                direct.append(e)
                continue
            buf = self._buffers.get(e.key)
            if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                n = t.numel() * t.element_size()
                if buf is None and self._used + n > self.budget_bytes:
                    direct.append(e)
                    continue
                buf = torch.empty(t.shape, dtype=t.dtype, device="cpu")
                self._used += n
                self._buffers[e.key] = buf
            copies.append((buf, t))
            device = e.device if e.device is not None else str(t.device)
            staged.append(TensorEntry(e.key, buf, device, e.dtype, e.global_shape, e.global_offsets))
        _copy_runs(copies)
        return direct, staged


def _plain_bytes(t):
    """(address, byte size) of a tensor whose bytes are exactly its values, in order, in
    host memory; None for any other (device, strided, lazily conjugated or negated)."""
    if not t.is_cpu or not t.is_contiguous() or t.is_conj() or t.is_neg():
        return None
    return t.data_ptr(), t.numel() * t.element_size()


def _copy_runs(copies) -> None:
    """``dst.copy_(src)`` for each (dst, src), with one copy per run of pairs that lie back to
    back in memory on both sides (each starting where the last one ended). A run's span is
    exactly the union of its tensors' bytes, so one memmove reads and writes nothing else,
    whichever allocations the tensors belong to."""
    i = 0
    while i < len(copies):
        dst, src = copies[i]
        first_d, first_s = _plain_bytes(dst), _plain_bytes(src)
        j = i + 1
        if first_d is not None and first_s is not None and first_d[1] == first_s[1]:
            d_end = first_d[0] + first_d[1]
            s_end = first_s[0] + first_s[1]
            while j < len(copies):
                d, s = _plain_bytes(copies[j][0]), _plain_bytes(copies[j][1])
                if d is None or s is None or d[1] != s[1] or d[0] != d_end or s[0] != s_end:
                    break
                d_end += d[1]
                s_end += s[1]
                j += 1
        if j - i > 1:
            ctypes.memmove(first_d[0], first_s[0], d_end - first_d[0])  # releases the GIL
        else:
            dst.copy_(src)
        i = j


@dataclass
class CommitResult:
    """A commit decision: ``outcome`` is "COMMITTED" or "ABORTED"."""

    outcome: str
    reason: str
    attempt: int
    checkpoint: Optional[pb.Checkpoint] = None

    @property
    def committed(self) -> bool:
        return self.outcome == "COMMITTED"


@dataclass
class LoadedTensor:
    """A loaded tensor entry: ``value`` (a torch tensor, or numpy array when torch is
    absent), the device it was saved from, and the daemon's target device for it."""

    value: Any
    saved_device: str
    target_device: str
    global_shape: Sequence[int] = ()
    global_offsets: Sequence[int] = ()


@dataclass
class LoadedObject:
    """A loaded object entry: its bytes and the format it was saved with."""

    data: bytes
    format: str


@dataclass
class LoadedItems:
    """A Load stream assembled: the plan, item -> key -> entry, and ``entries``, every
    (item, key, entry) in stream order. A resharding load by boxes may stream one key
    several times (one box each): ``entries`` has them all, in the order asked, and
    ``items`` the last one."""

    plan: pb.LoadPlan
    items: Dict[str, Dict[str, Union[LoadedTensor, LoadedObject]]] = field(default_factory=dict)
    entries: List["tuple"] = field(default_factory=list)


@dataclass(frozen=True)
class TensorBox:
    """A box of a global tensor to load (resharding): the ``item`` and ``key`` the ranks
    saved its shards under, the box's start in each dimension of the global tensor and its
    length in each. Both empty: the whole tensor (a 0-d one, or an object entry whole)."""

    item: str
    key: str
    offsets: Sequence[int] = ()
    lengths: Sequence[int] = ()


@dataclass(frozen=True)
class ShardAs:
    """A rank of a target sharding to load as (resharding): every tensor saved sharded
    comes as ``rank``'s part of the global tensor split in ``world_size`` parts along
    ``dim`` (None: the dimension it was saved split along), evenly as ``torch.chunk``
    splits, or by ``sizes``; ``replicate``: every rank gets whole tensors."""

    rank: int
    world_size: int
    dim: Optional[int] = None
    sizes: Sequence[int] = ()
    replicate: bool = False


def _box_message(box: Any, i: int) -> pb.TensorBox:
    if isinstance(box, pb.TensorBox):
        return box
    if isinstance(box, (tuple, list)) and not isinstance(box, TensorBox):
        if len(box) not in (2, 4):
            raise InvalidArgument(f"boxes[{i}]: expected (item, key) or (item, key, offsets, lengths), got {box!r}")
        box = TensorBox(*box)
    if not isinstance(box, TensorBox):
        raise InvalidArgument(f"boxes[{i}]: expected a ckptd.TensorBox, got {type(box).__name__}")
    offsets = [int(x) for x in box.offsets]
    lengths = [int(x) for x in box.lengths]
    if not box.item or not box.key:
        raise InvalidArgument(f"boxes[{i}]: name the item and the key")
    if len(offsets) != len(lengths):
        raise InvalidArgument(f"boxes[{i}] ({box.item}/{box.key}): {len(offsets)} offsets for {len(lengths)} lengths; "
                              "give one of each per dimension")
    if any(x < 0 for x in offsets + lengths):
        raise InvalidArgument(f"boxes[{i}] ({box.item}/{box.key}): offsets and lengths must be >= 0, got "
                              f"offsets {offsets} lengths {lengths}")
    return pb.TensorBox(item=box.item, key=box.key, offsets=offsets, lengths=lengths)


def _shard_as_message(shard_as: Any) -> pb.ShardAs:
    if isinstance(shard_as, pb.ShardAs):
        return shard_as
    if not isinstance(shard_as, ShardAs):
        raise InvalidArgument(f"shard_as: expected a ckptd.ShardAs, got {type(shard_as).__name__}")
    if not (0 <= int(shard_as.rank) < int(shard_as.world_size)):
        raise InvalidArgument(f"shard_as: rank {shard_as.rank} is not in [0, world size {shard_as.world_size})")
    msg = pb.ShardAs(rank=int(shard_as.rank), world_size=int(shard_as.world_size),
                     sizes=[int(x) for x in shard_as.sizes], replicate=bool(shard_as.replicate))
    if shard_as.sizes and len(shard_as.sizes) != int(shard_as.world_size):
        raise InvalidArgument(f"shard_as: {len(shard_as.sizes)} sizes for world size {shard_as.world_size}")
    if shard_as.dim is not None:
        if int(shard_as.dim) < 0:
            raise InvalidArgument(f"shard_as: dim must be >= 0, got {shard_as.dim}")
        msg.dim = int(shard_as.dim)
    return msg


def load_request(job: str, checkpoint_id: str, *, rank: int = 0, local_rank: int = 0, devices: Sequence[str] = (),
                 map_location: Optional[Mapping[str, str]] = None, items: Sequence[str] = (),
                 source_rank: Optional[int] = None, world_size: Optional[int] = None, boxes: Sequence[Any] = (),
                 shard_as: Optional[Any] = None) -> pb.LoadRequest:
    """The LoadRequest for these arguments, checked (see :meth:`CkptdClient.load`)."""
    if boxes and shard_as is not None:
        raise InvalidArgument("a load reshards either by boxes or by shard_as, not both")
    if world_size is not None and int(world_size) < 0:
        raise InvalidArgument(f"world_size must be >= 0, got {world_size}")
    req = pb.LoadRequest(job=job, checkpoint_id=checkpoint_id, rank=int(rank), local_rank=int(local_rank),
                         devices=list(devices), map_location=dict(map_location or {}), items=list(items),
                         world_size=int(world_size or 0), boxes=[_box_message(b, i) for i, b in enumerate(boxes)])
    if source_rank is not None:
        req.source_rank = int(source_rank)
    if shard_as is not None:
        req.shard_as.CopyFrom(_shard_as_message(shard_as))
    return req


def _load_failure(exc: CkptdError, req: pb.LoadRequest) -> CkptdError:
    """A refused plain load of sharded tensors into another world size says what to do."""
    if isinstance(exc, FailedPrecondition) and req.world_size and not req.boxes and not req.HasField("shard_as"):
        exc.message += (" -- from Python: CkptdClient.load_into(...) or CheckpointEngine.load(path, into=template) "
                        "with this rank's template (ckptd.Shard or ShardedTensor leaves) reshard, as do boxes= / "
                        "shard_as= of load_items")
        exc.args = (exc.message,)
    return exc


@dataclass
class CheckpointEvent:
    """One entry of a job's durable event log."""

    sequence: int
    type: str  # "COMMITTED" or "DELETED"
    job: str
    checkpoint_id: str
    step: int
    reason: str
    checkpoint: Optional[pb.Checkpoint]
    commit_time: float  # seconds since the epoch
    event_time: float


_OUTCOMES = {pb.COMMIT_OUTCOME_COMMITTED: "COMMITTED", pb.COMMIT_OUTCOME_ABORTED: "ABORTED"}
_EVENT_TYPES = {eval_pb.CHECKPOINT_EVENT_TYPE_COMMITTED: "COMMITTED", eval_pb.CHECKPOINT_EVENT_TYPE_DELETED: "DELETED"}


#: Each entry's start in a LoadShared destination is a multiple of this (the daemon's layout).
DESTINATION_ALIGN = 64


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_chunk(data: memoryview, crc: int) -> bytes:
    """A serialised SaveRequest{chunk: Chunk{data, crc32c}}, built around the data view so
    the bytes are copied once (here) instead of into a message and again on serialising."""
    n = len(data)
    tail = b"\x10" + _varint(crc)  # Chunk.crc32c = 2, varint
    inner_len = 1 + len(_varint(n)) + n + len(tail)  # Chunk.data = 1, length-delimited
    head = b"\x1a" + _varint(inner_len) + b"\x0a" + _varint(n)  # SaveRequest.chunk = 3
    return b"".join((head, data, tail))


#: Most boxes one resharded Load may ask for (the daemon's limit).
MAX_LOAD_BOXES = 1 << 16
#: Boxes go in several Loads when one request would pass this size (the daemon accepts 5 MiB messages).
MAX_LOAD_REQUEST_BYTES = 2 << 20

#: Entries of at most this many bytes travel whole in EntryBatch messages (the daemon
#: stores entries up to the same size in the item's pack file).
BATCH_ENTRY_BYTES = 1 << 20
#: The same through shared memory: larger entries go through the ring, whose copy is the
#: async hand-off (a batch is handed off only once sent), and which bounds the memory.
SHARED_BATCH_ENTRY_BYTES = 64 << 10
#: An EntryBatch is sent once it holds this many bytes, or this many entries.
BATCH_BYTES = 1 << 20
BATCH_ENTRIES = 1024


def _entry_batch(parts: List[bytes]) -> bytes:
    """A serialised SaveRequest{entry_batch: EntryBatch} around serialised InlineEntry fields."""
    body = b"".join(parts)
    return b"\x32" + _varint(len(body)) + body  # SaveRequest.entry_batch = 6


def _item_messages(prepared, chunk_bytes: int, chunk_message: Callable[[Any, Optional[int]], Any],
                   handed_off: Optional[threading.Event] = None, n_direct: int = 0,
                   wrap: Callable[[bytes], Any] = lambda b: b, batch_entry_bytes: int = BATCH_ENTRY_BYTES,
                   checksum_chunks: bool = True) -> Iterator[Any]:
    """The body of a Save stream after its header: per entry its header and its chunks (as
    ``chunk_message(data, crc32c)`` makes them), then the trailer with the counts and the
    stream's CRC-32C. ``handed_off`` is set once the first ``n_direct`` entries (those read
    from the trainer's memory) are handed over, and again before the trailer.

    ``checksum_chunks`` False: chunks get no CRC (``crc32c`` None) and the trailer's CRC covers the batched bytes
    only. For shared chunks only, with a daemon that allows it: it checksums what it
    copies out of the ring itself, and the ring is memory of this node, so a CRC pass here
    would cost the trainer ~35 ms per 40 MiB (Debian's crc32c has no hardware path) to
    guard nothing a network could damage.

    Small entries (at most ``batch_entry_bytes``) go whole, copied, in EntryBatch messages
    (``wrap`` makes a stream message of one): two messages and a CRC per tiny tensor cost
    far more than its bytes. Their bytes carry no CRC of their own; the trailer's, which
    covers them, is checked before the daemon acknowledges the item."""
    running = 0
    total = 0
    batch: List[bytes] = []
    batch_bytes = 0
    batch_entries = 0
    for i, (header, chunks, nbytes) in enumerate(prepared):
        if handed_off is not None and i == n_direct:
            handed_off.set()  # what is left are snapshot copies (batched entries are copies already)
        if nbytes <= batch_entry_bytes:
            data = b"".join(chunks(chunk_bytes))
            running = _crc.crc32c(data, running)
            total += len(data)
            h = header.SerializeToString()
            inline_len = 1 + len(_varint(len(h))) + len(h) + 1 + len(_varint(len(data))) + len(data)
            # EntryBatch.entries = 1 { InlineEntry.header = 1, InlineEntry.data = 2 }
            batch += (b"\x0a", _varint(inline_len), b"\x0a", _varint(len(h)), h, b"\x12", _varint(len(data)), data)
            batch_bytes += inline_len
            batch_entries += 1
            if batch_bytes >= BATCH_BYTES or batch_entries >= BATCH_ENTRIES:
                yield wrap(_entry_batch(batch))
                batch, batch_bytes, batch_entries = [], 0, 0
            continue
        if batch:  # entries keep their order
            yield wrap(_entry_batch(batch))
            batch, batch_bytes, batch_entries = [], 0, 0
        yield pb.SaveRequest(entry=header)
        for data in chunks(chunk_bytes):
            n = len(data)
            total += n
            if not checksum_chunks:
                yield chunk_message(data, None)
                continue
            crc = _crc.crc32c(data)
            running = _crc.combine(running, crc, n)
            yield chunk_message(data, crc)
    if batch:
        yield wrap(_entry_batch(batch))
    if handed_off is not None:
        handed_off.set()
    yield pb.SaveRequest(trailer=pb.SaveTrailer(entry_count=len(prepared), byte_count=total, crc32c=running))


def rpc_error(err: grpc.RpcError, address: str, operation: str) -> CkptdError:
    """The exception for a failed call: the daemon's status as its class, and when the
    daemon could not be reached at all (UNAVAILABLE: nothing listens, the connection
    dropped, the daemon is draining) a :class:`DaemonUnavailable` naming ckptd, the address
    and the operation instead of grpc's bare "failed to connect to all addresses"."""
    exc = CkptdError.from_rpc_error(err)
    if exc.code == grpc.StatusCode.UNAVAILABLE:
        exc = DaemonUnavailable.describe(address, operation, exc.message)
        exc.__cause__ = err
    return exc


def _operation(request: Any) -> str:
    """``Commit of job/checkpoint`` for a request message (what failed, for error messages)."""
    name = type(request).__name__
    what = name[:-len("Request")] if name.endswith("Request") else name
    job = getattr(request, "job", "")
    cid = getattr(request, "checkpoint_id", "")
    return f"{what} of {job}/{cid}" if job and cid else f"{what} of job {job}" if job else what


def _serialize_save_request(msg: Union[bytes, pb.SaveRequest]) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()


def _serialize_save_shared_request(msg: Union[bytes, pb.SaveSharedRequest]) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()


def _shared_wrap(request: bytes) -> bytes:
    """A serialised SaveSharedRequest{request} around a serialised SaveRequest."""
    return b"\x0a" + _varint(len(request)) + request


def _ts_seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def _event_of(e) -> CheckpointEvent:
    kind = _EVENT_TYPES.get(e.type)
    if kind is None:
        raise Internal(f"the daemon sent event {e.sequence} of job {e.job} with unknown type {e.type}")
    return CheckpointEvent(
        sequence=e.sequence, type=kind, job=e.job, checkpoint_id=e.checkpoint_id, step=e.step, reason=e.reason,
        checkpoint=e.checkpoint if e.HasField("checkpoint") else None,
        commit_time=_ts_seconds(e.commit_time), event_time=_ts_seconds(e.event_time),
    )


class CkptdClient:
    """A client of one ckptd daemon (normally the one on the caller's node).

    Thread-safe: methods may be called concurrently. Every failure is raised as a
    :class:`ckptd.CkptdError` subclass carrying the daemon's status and message.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, address: Optional[str] = None, *, chunk_bytes: int = MAX_CHUNK_BYTES,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 channel_options: Sequence = (), shared_memory: Optional[bool] = None,
                 shared_memory_dir: str = DEFAULT_SHARED_MEMORY_DIR, incarnation: Optional[int] = None):
        """``shared_memory``: hand a save's bytes to the daemon through a ring file in
        ``shared_memory_dir`` (the daemon's ``--shared-memory-dir``) instead of the gRPC
        stream. None (default) uses it when the address is on this node (loopback or a
        Unix socket); when the daemon refuses it (another user, another /dev/shm, turned
        off), the client says so once in its log and streams the bytes instead.

        ``incarnation``: sent with every save, commit and abort so the daemon can tell a
        restarted trainer from the process it replaces (see :func:`process_incarnation`,
        the default). Override it with a number that grows across restarts of the rank
        when wall clocks may step backwards, e.g. a restart counter; 0 turns fencing off."""
        if incarnation is None:
            incarnation = process_incarnation()
        if not (0 <= int(incarnation) <= MAX_INCARNATION):
            raise InvalidArgument(f"incarnation must be in [0, 2**53 - 1], got {incarnation}")
        #: The incarnation this client sends (see ``__init__``).
        self.incarnation = int(incarnation)
        if not (0 < chunk_bytes <= MAX_CHUNK_BYTES):
            raise InvalidArgument(f"chunk_bytes must be in [1, {MAX_CHUNK_BYTES}], got {chunk_bytes}")
        self.address = address or default_address()
        self.chunk_bytes = int(chunk_bytes)
        if shared_memory is None:
            shared_memory = is_local_address(self.address) and os.path.isdir(shared_memory_dir)
        self._shm_dir: Optional[str] = shared_memory_dir if shared_memory else None
        #: Whether rings are anonymous (memfd, named to the daemon by a handle) rather than
        #: files in the directory; off for good once the daemon refused or ignored a handle.
        self._shm_anonymous = _shm.MEMFD
        #: Check every chunk a load gets through shared memory against its CRC-32C once more.
        #: Off by default: the daemon checked it against the stored CRC right before copying it
        #: into the ring, and the pure-Python builds of crc32c run at ~2 GB/s, a third of a
        #: load's client time.
        self.verify_shared_loads = False
        #: Send a CRC-32C with every chunk a save puts in shared memory, as on the stream.
        #: Off by default when the daemon allows it (it checksums what it copies out of the
        #: ring, and the ring is local memory): the pass costs the trainer ~35 ms per 40 MiB.
        #: With it on, a tensor changed between its checksum and its copy into the ring fails
        #: the save instead of being stored as copied.
        self.verify_shared_saves = False
        #: Host loads from a daemon that offers it: tensors are views of one shared mapping the
        #: daemon writes in place (LoadDestination), so this side copies nothing.
        self.load_destinations = True
        options = dict(CHANNEL_OPTIONS)
        options.update(dict(channel_options))
        options = list(options.items())
        if credentials is None:
            self.channel = grpc.insecure_channel(self.address, options=options)
        else:
            self.channel = grpc.secure_channel(self.address, credentials, options=options)
        self.checkpoints_stub = pb_grpc.CheckpointServiceStub(self.channel)
        self.evaluation_stub = eval_grpc.EvaluationServiceStub(self.channel)
        self.retention_stub = ret_grpc.RetentionServiceStub(self.channel)
        # Save takes pre-serialised chunk messages (see _encode_chunk) next to regular ones.
        self._save = self.channel.stream_unary(
            "/ckptd.v1.CheckpointService/Save",
            request_serializer=_serialize_save_request,
            response_deserializer=pb.SaveResponse.FromString,
        )
        self._load_shared_rpc = self.channel.stream_stream(
            "/ckptd.v1.CheckpointService/LoadShared",
            request_serializer=pb.LoadSharedRequest.SerializeToString,
            response_deserializer=pb.LoadSharedResponse.FromString,
        )
        self._save_shared_rpc = self.channel.stream_stream(
            "/ckptd.v1.CheckpointService/SaveShared",
            request_serializer=_serialize_save_shared_request,
            response_deserializer=pb.SaveSharedResponse.FromString,
        )

    @property
    def shared_memory(self) -> bool:
        """Whether saves currently go through shared memory."""
        return self._shm_dir is not None

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; calls in flight fail with CANCELLED."""
        self.channel.close()

    def __enter__(self) -> "CkptdClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- CheckpointService -------------------------------------------------------------

    def save(self, job: str, checkpoint_id: str, step: int, rank: int, world_size: int, item: str,
             entries: Iterable[Entry], *, timeout: Optional[float] = None) -> SaveResult:
        """Streams one item into the staging area of a checkpoint; returns once the daemon
        staged it durably. Tensor bytes are read from the tensors' memory chunk by chunk,
        as fast as the daemon takes them: do not modify the tensors until this returns.

        ``entries`` is checked whole before the first byte is sent, so a bad entry fails
        here with its key named rather than mid-stream.
        """
        prepared = _prepare_entries(entries)
        return self._save_prepared((job, checkpoint_id, step, rank, world_size, item), prepared, timeout=timeout)

    def save_async(self, job: str, checkpoint_id: str, step: int, rank: int, world_size: int, item: str,
                   entries: Iterable[Entry], *, snapshot: Optional["SnapshotBuffers"] = None,
                   timeout: Optional[float] = None) -> "PendingSave":
        """Like :meth:`save`, but returns as soon as the trainer's own memory is no longer
        needed, so training goes on while the daemon stages the item; ``result()`` of the
        returned :class:`PendingSave` waits until it is staged durably (do that before
        :meth:`commit`, which still means durable).

        Without ``snapshot`` (hand-off mode) it returns once the last byte was handed over:
        copied into the shared-memory ring, or, on the gRPC stream, sent (grpc sends a
        message only after the previous one left, within the HTTP/2 window the daemon
        grants while its ``--memory-budget-mib`` has room), so memory stays bounded at
        both ends. With ``snapshot``, the tensors its reused host buffers have room for are
        copied into them first (a memory copy, far faster than the upload) and streamed
        from there after the call returns; the others are streamed first, from the
        trainer's memory.
        """
        entries = list(entries)
        if snapshot is not None:
            direct, staged = snapshot.split(entries)
            entries = direct + staged
            n_direct = len(direct)
        else:
            n_direct = len(entries)
        prepared = _prepare_entries(entries, snapshot)
        handed_off = threading.Event()
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self._save_prepared((job, checkpoint_id, step, rank, world_size, item), prepared,
                                                      timeout=timeout, handed_off=handed_off, n_direct=n_direct))
            except BaseException as exc:  # noqa: BLE001 - raised again by PendingSave.result()
                future.set_exception(exc)
            finally:
                handed_off.set()

        threading.Thread(target=run, name=f"ckptd-save-{item}", daemon=True).start()
        if n_direct > 0:
            # Every entry staged: the trainer's memory is free already, with no need to wait
            # for the ring or the daemon.
            handed_off.wait()
        return PendingSave(future)

    def _save_prepared(self, target, prepared, *, timeout: Optional[float],
                       handed_off: Optional[threading.Event] = None, n_direct: int = 0) -> SaveResult:
        """One Save: through shared memory when on (falling back to the stream for good
        when the daemon refuses it), else on the gRPC stream."""
        shm_dir = self._shm_dir
        # An item of small entries only sends every byte inline (EntryBatch): a ring file
        # would cost its creation and a round trip for nothing.
        while shm_dir is not None and any(nbytes > SHARED_BATCH_ENTRY_BYTES for _, _, nbytes in prepared):
            try:
                return self._save_shared(shm_dir, target, prepared, timeout, handed_off, n_direct)
            except _shm.SharedUnavailable as err:
                self._shared_memory_refused(err)
            shm_dir = self._shm_dir
        failure: List[BaseException] = []
        requests = self._save_requests(*target, prepared, failure, handed_off=handed_off, n_direct=n_direct)
        try:
            res = self._save(requests, timeout=timeout)
        except grpc.RpcError as err:
            if failure:
                raise failure[0] from None
            raise rpc_error(err, self.address, f"Save of item {target[5]} of {target[0]}/{target[1]} (rank {target[3]})") from None
        return SaveResult(res.bytes_received, res.bytes_stored, res.entry_count, res.attempt)

    def _shared_memory_refused(self, err: "_shm.SharedUnavailable") -> None:
        """A refused anonymous ring turns to ring files; a refused ring file to gRPC."""
        if err.handle:
            if self._shm_anonymous:
                self._shm_anonymous = False
                log.warning("ckptd: saves and loads with %s use ring files in %s from now on: %s", self.address,
                            self._shm_dir, err)
        elif self._shm_dir is not None:
            self._shm_dir = None
            log.warning("ckptd: saves and loads with %s go over gRPC from now on: %s", self.address, err)

    def _ring(self, shm_dir: str, slot_bytes: int, purpose: str) -> "_shm.Ring":
        """A new ring: anonymous while the daemon takes handles, else a file in ``shm_dir``."""
        anonymous = self._shm_anonymous
        try:
            return _shm.Ring(shm_dir, slot_bytes, _shm.DEFAULT_SLOTS, purpose=purpose, anonymous=anonymous)
        except OSError as err:
            where = "an anonymous ring (memfd)" if anonymous else f"a ring file in {shm_dir}"
            raise _shm.SharedUnavailable(f"cannot create {where}: {err}", handle=anonymous) from None

    @staticmethod
    def _ring_fields(ring: "_shm.Ring") -> dict:
        """How a SaveHeader or LoadSharedStart names ``ring``."""
        if ring.handle is not None:
            pid, fd, token = ring.handle
            return {"shared_memory_handle": pb.SharedMemoryHandle(pid=pid, fd=fd, token=token)}
        return {"shared_memory_path": ring.path}

    def _save_shared(self, shm_dir: str, target, prepared, timeout: Optional[float],
                     handed_off: Optional[threading.Event], n_direct: int) -> SaveResult:
        """A SaveShared call: chunks go through a ring file, the stream carries where they are."""
        job, checkpoint_id, step, rank, world_size, item = target
        ring = self._ring(shm_dir, self.chunk_bytes, "save")
        ready = threading.Event()
        #: Set when the daemon opened the stream without opening the ring's handle (it
        #: predates handles): the bytes go in Chunk messages on this same stream.
        inline = threading.Event()
        # Set from the daemon's first progress message, before `ready`.
        crc_optional = [False]
        failure: List[BaseException] = []
        chunk_bytes = ring.slot_bytes
        SSR = pb.SaveSharedRequest

        def requests():
            try:
                yield SSR(request=pb.SaveRequest(header=pb.SaveHeader(
                    job=job, checkpoint_id=checkpoint_id, step=int(step), rank=int(rank),
                    world_size=int(world_size), item=item, incarnation=self.incarnation, **self._ring_fields(ring))))
                ready.wait()  # the daemon opened the ring file (or the call failed: put() raises)
                if inline.is_set():
                    for msg in _item_messages(prepared, self.chunk_bytes, _encode_chunk, handed_off, n_direct):
                        yield _shared_wrap(msg) if isinstance(msg, bytes) else SSR(request=msg)
                    return

                def shared_chunk(data, crc: Optional[int]) -> pb.SaveRequest:
                    c = pb.SharedChunk(offset=ring.put(data), length=len(data))
                    if crc is not None:
                        c.crc32c = crc
                    return pb.SaveRequest(shared_chunk=c)

                checksum = self.verify_shared_saves or not crc_optional[0]
                # Once the last chunk is in the ring, the trainer's memory is free.
                for msg in _item_messages(prepared, chunk_bytes, shared_chunk, handed_off, n_direct, _shared_wrap,
                                          SHARED_BATCH_ENTRY_BYTES, checksum):
                    yield msg if isinstance(msg, bytes) else SSR(request=msg)
            except _shm.SharedUnavailable:
                return
            except GeneratorExit:  # grpc closes the iterator when the call ended: not a failure of ours
                raise
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                failure.append(exc)
                raise

        call = self._save_shared_rpc(requests(), timeout=timeout)
        result = None
        opened = False
        ok = False
        try:
            for resp in call:
                kind = resp.WhichOneof("msg")
                if kind == "progress":
                    if not opened:
                        opened = True
                        if ring.handle is not None and not resp.progress.shared_memory_handle_open:
                            # Saves to come use ring files; this one sends its bytes on the stream.
                            self._shared_memory_refused(_shm.SharedUnavailable(
                                "the daemon predates anonymous rings (SharedMemoryHandle)", handle=True))
                            inline.set()
                        ring.unlink()  # the daemon holds the file open now
                        crc_optional[0] = resp.progress.shared_chunk_crc_optional
                        ready.set()
                    ring.release(resp.progress.shared_bytes_released)
                elif kind == "result":
                    result = resp.result
                else:
                    raise Internal("the daemon's SaveShared stream sent a message without progress or result")
            if result is None:
                raise Internal("the daemon's SaveShared stream ended without a result")
            ok = True
        except grpc.RpcError as err:
            if failure:
                raise failure[0] from None
            details = err.details() or ""
            if not opened and _shm.refused(err.code(), details):
                # UNIMPLEMENTED: no SaveShared at all, whatever the ring.
                handle = ring.handle is not None and err.code() != grpc.StatusCode.UNIMPLEMENTED
                raise _shm.SharedUnavailable(details, handle=handle) from None
            raise rpc_error(err, self.address, f"Save of item {item} of {job}/{checkpoint_id} (rank {rank})") from None
        finally:
            ring.fail(_shm.SharedUnavailable("the save ended"))
            ready.set()
            if not ok:
                call.cancel()
            ring.close()
        return SaveResult(result.bytes_received, result.bytes_stored, result.entry_count, result.attempt)

    def _save_requests(self, job: str, checkpoint_id: str, step: int, rank: int, world_size: int, item: str,
                       prepared, failure: List[BaseException], *, handed_off: Optional[threading.Event] = None,
                       n_direct: int = 0) -> Iterator[Union[bytes, pb.SaveRequest]]:
        """The Save stream: header, (entry, chunk*)*, trailer. ``handed_off`` is set once the
        first ``n_direct`` entries (those streamed from the trainer's memory) have left."""
        chunk_bytes = self.chunk_bytes
        try:
            yield pb.SaveRequest(header=pb.SaveHeader(
                job=job, checkpoint_id=checkpoint_id, step=int(step), rank=int(rank),
                world_size=int(world_size), item=item, incarnation=self.incarnation))
            # grpc asks for the next message only once the previous one was sent: when the
            # trailer is asked for, every byte is with the daemon.
            yield from _item_messages(prepared, chunk_bytes, _encode_chunk, handed_off, n_direct)
        except GeneratorExit:  # grpc closes the iterator when the call ended: not a failure of ours
            raise
        except BaseException as exc:  # noqa: BLE001 - re-raised by _save_prepared
            # grpc only logs an exception of the request iterator and cancels the call.
            failure.append(exc)
            raise

    def commit(self, job: str, checkpoint_id: str, step: int, rank: int, world_size: int, items: Sequence[str],
               attempt: int = 0, *, timeout: Optional[float] = None) -> CommitResult:
        """Votes for a checkpoint and waits for the decision. Returns ABORTED (does not
        raise) when the commit decided so; raises only on gRPC errors. Idempotent."""
        res = self._unary(self.checkpoints_stub.Commit, pb.CommitRequest(
            job=job, checkpoint_id=checkpoint_id, step=int(step), rank=int(rank), world_size=int(world_size),
            items=list(items), attempt=int(attempt), incarnation=self.incarnation), timeout)
        return CommitResult(_outcome(res.outcome), res.reason, res.attempt,
                            res.checkpoint if res.HasField("checkpoint") else None)

    def abort(self, job: str, checkpoint_id: str, rank: int, reason: str = "", attempt: int = 0, *,
              timeout: Optional[float] = None) -> CommitResult:
        """Votes no: the checkpoint's attempt aborts for every rank. Returns the decision
        (COMMITTED when it had already been made)."""
        res = self._unary(self.checkpoints_stub.Abort, pb.AbortRequest(
            job=job, checkpoint_id=checkpoint_id, rank=int(rank), reason=reason, attempt=int(attempt),
            incarnation=self.incarnation), timeout)
        return CommitResult(_outcome(res.outcome), res.reason, res.attempt)

    def get_checkpoint(self, job: str, checkpoint_id: str = "latest", *, full: bool = False,
                       timeout: Optional[float] = None) -> pb.Checkpoint:
        """One committed checkpoint, by id or "latest"; raises CheckpointNotFound when there is none."""
        view = pb.CHECKPOINT_VIEW_FULL if full else pb.CHECKPOINT_VIEW_BASIC
        res = self._unary(self.checkpoints_stub.GetCheckpoint,
                          pb.GetCheckpointRequest(job=job, checkpoint_id=checkpoint_id, view=view), timeout)
        return res.checkpoint

    def list_checkpoints(self, job: str, *, page_size: int = 0, timeout: Optional[float] = None) -> Iterator[pb.Checkpoint]:
        """Every committed checkpoint of a job, newest step first, fetching pages as it goes."""
        token = ""
        while True:
            res = self._unary(self.checkpoints_stub.ListCheckpoints,
                              pb.ListCheckpointsRequest(job=job, page_size=page_size, page_token=token), timeout)
            yield from res.checkpoints
            token = res.next_page_token
            if not token:
                return

    def delete_checkpoint(self, job: str, checkpoint_id: str, *, timeout: Optional[float] = None) -> int:
        """Deletes a committed checkpoint atomically; returns the bytes freed."""
        res = self._unary(self.checkpoints_stub.DeleteCheckpoint,
                          pb.DeleteCheckpointRequest(job=job, checkpoint_id=checkpoint_id), timeout)
        return res.freed_bytes

    def load(self, job: str, checkpoint_id: str = "latest", *, rank: int = 0, local_rank: int = 0,
             devices: Sequence[str] = (), map_location: Optional[Mapping[str, str]] = None,
             items: Sequence[str] = (), source_rank: Optional[int] = None, world_size: Optional[int] = None,
             boxes: Sequence[Any] = (), shard_as: Optional[ShardAs] = None,
             timeout: Optional[float] = None) -> Iterator[pb.LoadResponse]:
        """The raw Load stream: a plan, then per entry its header and its chunks (each
        chunk's CRC-32C is checked again here). Leaving the loop early cancels the call.

        ``world_size``: the loading job's; a plain load of an item holding sharded tensors
        saved by another world size then fails (FailedPrecondition) instead of handing this
        rank a shard of the wrong sharding. Resharding: ``boxes`` (:class:`TensorBox` or
        ``(item, key, offsets, lengths)``) streams each box of a global tensor as one
        entry, in the order given; ``shard_as`` (:class:`ShardAs`) streams every entry of
        ``items`` as that rank of a new sharding holds it."""
        req = load_request(job, checkpoint_id, rank=rank, local_rank=local_rank, devices=devices,
                           map_location=map_location, items=items, source_rank=source_rank, world_size=world_size,
                           boxes=boxes, shard_as=shard_as)
        return self._load_stream(req, timeout)

    def _load_stream(self, req: pb.LoadRequest, timeout: Optional[float]) -> Iterator[pb.LoadResponse]:
        job, checkpoint_id, rank = req.job, req.checkpoint_id, req.rank
        call = self.checkpoints_stub.Load(req, timeout=timeout)
        finished = False
        try:
            for msg in call:
                if msg.WhichOneof("msg") == "chunk" and msg.chunk.HasField("crc32c"):
                    if _crc.crc32c(msg.chunk.data) != msg.chunk.crc32c:
                        raise DataLoss(f"a chunk of {len(msg.chunk.data)} bytes failed its CRC-32C check in transit "
                                       f"(job {job}, checkpoint {checkpoint_id}, rank {rank})")
                yield msg
            finished = True
        except grpc.RpcError as err:
            raise _load_failure(rpc_error(err, self.address, f"Load of {job}/{checkpoint_id} (rank {rank})"),
                                req) from None
        finally:
            if not finished:
                call.cancel()

    def load_items(self, job: str, checkpoint_id: str = "latest", *, rank: int = 0, local_rank: int = 0,
                   devices: Sequence[str] = (), map_location: Optional[Mapping[str, str]] = None,
                   items: Sequence[str] = (), source_rank: Optional[int] = None, world_size: Optional[int] = None,
                   boxes: Sequence[Any] = (), shard_as: Optional[ShardAs] = None,
                   place: Union[bool, Callable[[str, str, str, str], Optional[str]]] = True,
                   into: Optional[Sequence[Any]] = None, timeout: Optional[float] = None) -> LoadedItems:
        """Loads one rank's items into memory. Each tensor is assembled in one buffer of
        its size, directly on its device:

        - ``place=True``: the daemon's target device for the entry (its hint);
        - ``place=False``: the host (CPU), whatever the hint;
        - a callable ``(item, key, saved_device, target_device) -> device or None``
          (None: the host).

        ``world_size``, ``boxes`` and ``shard_as`` as for :meth:`load`. ``into``: for a
        load by boxes, one destination per box (a torch tensor or numpy array of the box's
        dtype and shape, or None): the box's bytes are copied straight into it, in place,
        and its entry's ``value`` is that destination.

        From a daemon on this node the bytes come through a shared-memory ring
        (LoadShared), as for :meth:`save`; otherwise, or when the daemon refuses it, on
        the gRPC stream.
        """
        if into is not None and len(into) != len(boxes):
            raise InvalidArgument(f"into has {len(into)} destinations for {len(boxes)} boxes: give one per box (or None)")
        req = load_request(job, checkpoint_id, rank=rank, local_rank=local_rank, devices=devices,
                           map_location=map_location, items=items, source_rank=source_rank, world_size=world_size,
                           boxes=boxes, shard_as=shard_as)
        shm_dir = self._shm_dir
        while shm_dir is not None:
            # Host tensors are views of a destination mapping the daemon writes in place; tensors
            # for a device, or a caller's destinations (into), come through the ring.
            direct = into is None and (place is False or place is True) and self.load_destinations
            try:
                return self._assemble(self._load_shared_parts(shm_dir, req, timeout=timeout,
                                                              destination=direct and (place is False or "host")),
                                      job, checkpoint_id, rank, source_rank, place, into, req)
            except _shm.SharedUnavailable as err:
                self._shared_memory_refused(err)
            shm_dir = self._shm_dir
        return self._assemble(self._load_parts(req, timeout=timeout), job, checkpoint_id, rank, source_rank, place,
                              into, req)

    def load_boxes(self, job: str, checkpoint_id: str, boxes: Sequence[Any], *, into: Optional[Sequence[Any]] = None,
                   rank: int = 0, local_rank: int = 0, world_size: Optional[int] = None,
                   place: Union[bool, Callable[[str, str, str, str], Optional[str]]] = False,
                   timeout: Optional[float] = None) -> List[Union[LoadedTensor, LoadedObject]]:
        """The entries of ``boxes`` (:class:`TensorBox`), in order, as :meth:`load_items`
        streams them (``into``: each box's destination, or None). As few Loads as the
        daemon's limits allow: one, unless there are more than :data:`MAX_LOAD_BOXES` boxes
        or their request would pass :data:`MAX_LOAD_REQUEST_BYTES`."""
        if into is not None and len(into) != len(boxes):
            raise InvalidArgument(f"into has {len(into)} destinations for {len(boxes)} boxes: give one per box (or None)")
        msgs = [_box_message(b, i) for i, b in enumerate(boxes)]
        out: List[Union[LoadedTensor, LoadedObject]] = []
        start = 0
        while start < len(msgs):
            end, size = start, 0
            while end < len(msgs) and end - start < MAX_LOAD_BOXES:
                n = msgs[end].ByteSize() + 8
                if end > start and size + n > MAX_LOAD_REQUEST_BYTES:
                    break
                size += n
                end += 1
            loaded = self.load_items(job, checkpoint_id, rank=rank, local_rank=local_rank, world_size=world_size,
                                     boxes=msgs[start:end], into=None if into is None else into[start:end],
                                     place=place, timeout=timeout)
            out += [entry for _, _, entry in loaded.entries]
            start = end
        return out

    def load_into(self, job: str, checkpoint_id: str, template: Any, *, item: str, rank: int = 0,
                  world_size: Optional[int] = None, local_rank: int = 0, timeout: Optional[float] = None) -> Any:
        """Fills ``template``, a (nested) state dict of this rank's tensors, in place from
        ``item`` of a committed checkpoint saved by any world size, and returns it. Each
        tensor says what it wants: a plain tensor the whole global tensor, a
        :class:`ckptd.Shard` or a ``ShardedTensor`` its box(es) of it; the daemon assembles
        every box from the saved shards, all in one Load, and the bytes are copied straight
        into the template's tensors (dtype and shape checked). Non-tensor values are
        replaced by the saved ones. See :mod:`ckptd.reshard`."""
        from .reshard import load_into
        return load_into(self, job, checkpoint_id, template, item=item, rank=rank, world_size=world_size,
                         local_rank=local_rank, timeout=timeout)

    def _load_parts(self, req: pb.LoadRequest, *, timeout: Optional[float]) -> Iterator[tuple]:
        """(kind, payload) of a Load stream; a chunk's payload is its bytes."""
        for msg in self._load_stream(req, timeout):
            kind = msg.WhichOneof("msg")
            yield (kind, msg.chunk.data if kind == "chunk" else getattr(msg, kind) if kind else None)

    def _load_shared_parts(self, shm_dir: str, req: pb.LoadRequest, *, timeout: Optional[float],
                           destination: Union[bool, str] = False) -> Iterator[tuple]:
        """(kind, payload) of a LoadShared stream for a checked LoadRequest (see
        :func:`load_request`); a chunk's payload is a view of a ring slot, valid until the
        next part is asked for (copy it out before).

        ``destination`` (True; "host": only when every tensor's target is the host): ask
        for destination mode. When the daemon offers it, a ("destination", mapping) part
        follows the plan, and each slice the daemon wrote in place comes as ("placed",
        (offset, length)) of that mapping instead of a chunk."""
        job, checkpoint_id, rank = req.job, req.checkpoint_id, req.rank
        ring = self._ring(shm_dir, MAX_CHUNK_BYTES, "load")
        progress: "queue.SimpleQueue[Union[None, int, pb.LoadSharedRequest]]" = queue.SimpleQueue()

        def requests():
            yield pb.LoadSharedRequest(start=pb.LoadSharedStart(request=req, destination=bool(destination),
                                                                **self._ring_fields(ring)))
            while True:
                released = progress.get()
                if released is None:
                    return
                if isinstance(released, pb.LoadSharedRequest):
                    yield released
                    continue
                yield pb.LoadSharedRequest(progress=pb.LoadProgress(shared_bytes_released=released))

        call = self._load_shared_rpc(requests(), timeout=timeout)
        started = False
        finished = False
        released = 0
        dest: Optional[_shm.Destination] = None
        dest_opened = False
        try:
            for resp in call:
                msg = resp.response
                kind = msg.WhichOneof("msg")
                if not started:
                    started = True
                    ring.unlink()  # the daemon holds the file open now
                elif dest is not None and not dest_opened:
                    dest_opened = True
                    dest.unlink()  # the daemon opened it before it sent anything after the plan
                if kind == "plan" and destination:
                    # Anonymous like the ring when the daemon took the ring's handle and takes
                    # a destination's (one that predates that would see no destination at all).
                    anonymous = ring.handle is not None and msg.plan.destination_handle
                    dest = self._destination(shm_dir, msg.plan, destination, anonymous=anonymous)
                    progress.put(pb.LoadSharedRequest(destination=self._destination_message(dest)))
                    yield ("plan", msg.plan)
                    if dest is not None:
                        yield ("destination", dest.mm)
                    continue
                if kind == "shared_chunk" and dest is not None:
                    c = msg.shared_chunk
                    if c.offset + c.length > dest.size:
                        raise _protocol(f"a slice [{c.offset}, +{c.length}) outside the {dest.size}-byte destination")
                    if self.verify_shared_loads and c.HasField("crc32c"):
                        with memoryview(dest.mm)[c.offset:c.offset + c.length] as view:
                            if _crc.crc32c(view) != c.crc32c:
                                raise DataLoss(f"a chunk of {c.length} bytes failed its CRC-32C check in shared memory "
                                               f"(job {job}, checkpoint {checkpoint_id}, rank {rank})")
                    yield ("placed", (c.offset, c.length))
                    continue
                if kind == "shared_chunk":
                    c = msg.shared_chunk
                    view = ring.view(c.offset, c.length)
                    if self.verify_shared_loads and c.HasField("crc32c") and _crc.crc32c(view) != c.crc32c:
                        raise DataLoss(f"a chunk of {c.length} bytes failed its CRC-32C check in shared memory "
                                       f"(job {job}, checkpoint {checkpoint_id}, rank {rank})")
                    yield ("chunk", view)
                    view.release()
                    released += c.length
                    progress.put(released)
                else:
                    yield (kind, getattr(msg, kind) if kind else None)
            finished = True
        except grpc.RpcError as err:
            details = err.details() or ""
            if not started and _shm.refused(err.code(), details):
                handle = ring.handle is not None and err.code() != grpc.StatusCode.UNIMPLEMENTED
                raise _shm.SharedUnavailable(details, handle=handle) from None
            raise _load_failure(rpc_error(err, self.address, f"Load of {job}/{checkpoint_id} (rank {rank})"),
                                req) from None
        finally:
            progress.put(None)
            if not finished:
                call.cancel()
            ring.close()
            if dest is not None:
                dest.unlink()

    @staticmethod
    def _destination_message(dest: "Optional[_shm.Destination]") -> pb.LoadDestination:
        """How a LoadDestination names ``dest`` (nothing: no destination)."""
        if dest is None:
            return pb.LoadDestination()
        if dest.handle is not None:
            pid, fd, token = dest.handle
            return pb.LoadDestination(shared_memory_handle=pb.SharedMemoryHandle(pid=pid, fd=fd, token=token))
        return pb.LoadDestination(shared_memory_path=dest.path)

    @staticmethod
    def _destination(shm_dir: str, plan: pb.LoadPlan, destination: Union[bool, str], *,
                     anonymous: bool = False) -> "Optional[_shm.Destination]":
        """The destination for a plan that offers destination mode, or None (the ring then):
        a memfd when ``anonymous``, else a file in ``shm_dir``."""
        size = plan.destination_bytes
        if size == 0 or size < plan.total_bytes:
            return None  # a daemon without destination mode (or a layout that cannot hold the load)
        if destination == "host" and any(p.target_device not in ("", "cpu") for p in plan.placements):
            return None
        try:
            return _shm.Destination(shm_dir, size, anonymous=anonymous)
        except OSError as err:
            where = "as a memfd" if anonymous else f"in {shm_dir}"
            log.info("no load destination %s (%s): the ring instead", where, err)
            return None

    def _assemble(self, parts: Iterator[tuple], job: str, checkpoint_id: str, rank: int, source_rank: Optional[int],
                  place, into: Optional[Sequence[Any]] = None, req: Optional[pb.LoadRequest] = None) -> LoadedItems:
        """Builds tensors and objects from a load's (kind, payload) parts. ``into``: the
        destination of each entry in stream order (None: a new buffer). ``req``: the request,
        whose boxes may ask for one key several times."""
        by_boxes = req is not None and len(req.boxes) > 0
        resharding = by_boxes or (req is not None and req.HasField("shard_as"))
        loaded = LoadedItems(plan=pb.LoadPlan())
        n_entries = 0
        have_plan = False
        current: Optional[TensorAssembler] = None
        obj_parts: Optional[list] = None
        obj_size = 0
        where = ""
        total = 0
        staging = _Staging() if _has_torch() else None
        #: Destination mode: the mapping the daemon writes entries into, and where the next entry starts.
        mapping = None
        next_offset = 0

        def finish() -> None:
            nonlocal current, obj_parts
            if current is not None and not current.complete:
                raise DataLoss(f"{where}: received {current.filled} bytes, expected {current.info.nbytes}")
            if isinstance(current, TensorFiller):
                current.done()  # into the caller's tensor now: its staging buffer is freed at once
            if obj_parts is not None:
                data = b"".join(obj_parts)
                if len(data) != obj_size:
                    raise DataLoss(f"{where}: received {len(data)} bytes, expected {obj_size}")
                entry_ref.data = data
            current = None
            obj_parts = None

        entry_ref: Any = None
        for kind, payload in parts:
            if kind == "plan":
                if have_plan:
                    raise _protocol("a second plan")
                have_plan = True
                loaded.plan = payload
                if resharding and not payload.resharded:
                    # A daemon that predates resharding ignores boxes and shard_as and streams a plain load.
                    raise FailedPrecondition(f"the daemon at {self.address} does not reshard on load (its plan for "
                                             f"{job}/{checkpoint_id} is a plain load): upgrade it to load boxes or "
                                             "shard_as")
            elif kind == "entry":
                if not have_plan:
                    raise _protocol("an entry before the plan")
                finish()
                e = payload
                entry_offset = next_offset
                next_offset += -(-e.size_bytes // DESTINATION_ALIGN) * DESTINATION_ALIGN
                where = f"entry {e.item}/{e.key} of {job}/{checkpoint_id} rank {rank if source_rank is None else source_rank}"
                item = loaded.items.setdefault(e.item, {})
                if e.key in item and not by_boxes:
                    raise _protocol(f"{where} twice")
                dest = None
                if into is not None:
                    if n_entries >= len(into):
                        raise _protocol(f"{where} beyond the {len(into)} boxes asked for")
                    dest = into[n_entries]
                n_entries += 1
                if e.WhichOneof("kind") == "tensor":
                    spec = e.tensor
                    info = TensorInfo(dtype_name(spec.dtype), spec.shape, spec.device)
                    if info.nbytes != e.size_bytes:
                        raise DataLoss(f"{where}: a {info.dtype} tensor of shape {list(info.shape)} cannot have {e.size_bytes} bytes")
                    target = e.target_device or spec.device
                    if dest is not None:
                        current = TensorFiller(info, dest, where, staging)
                    elif mapping is not None:
                        if entry_offset + info.nbytes > len(mapping):
                            raise _protocol(f"{where} past the end of the {len(mapping)}-byte destination")
                        current = MappedTensor(info, mapping, entry_offset)
                    else:
                        if place is True:
                            device = target
                        elif place is False:
                            device = None
                        else:
                            device = place(e.item, e.key, spec.device, target)
                        current = TensorAssembler(info, device, staging)
                    entry_ref = LoadedTensor(current, spec.device, target, tuple(spec.global_shape), tuple(spec.global_offsets))
                elif e.WhichOneof("kind") == "object":
                    obj_parts = []
                    obj_size = e.object.size_bytes
                    entry_ref = LoadedObject(b"", e.object.format)
                else:
                    raise _protocol(f"{where} that is neither a tensor nor an object")
                item[e.key] = entry_ref
                loaded.entries.append((e.item, e.key, entry_ref))
            elif kind == "chunk":
                data = payload
                total += len(data)
                if current is not None:
                    try:
                        current.add(data)
                    except ValueError:
                        raise DataLoss(f"{where}: received more than the announced {current.info.nbytes} bytes") from None
                elif obj_parts is not None:
                    obj_parts.append(bytes(data))
                else:
                    raise _protocol("a chunk outside an entry")
            elif kind == "destination":
                if not have_plan or n_entries > 0 or mapping is not None:
                    raise _protocol("a destination after the first entry")
                mapping = payload
            elif kind == "placed":
                offset, length = payload
                total += length
                if isinstance(current, MappedTensor):
                    try:
                        current.place(offset, length)
                    except ValueError as err:
                        raise DataLoss(f"{where}: {err}") from None
                elif obj_parts is not None:
                    if offset != entry_offset + sum(len(p) for p in obj_parts) or offset + length > len(mapping):
                        raise DataLoss(f"{where}: a slice [{offset}, +{length}) that is not the object's next bytes")
                    obj_parts.append(bytes(memoryview(mapping)[offset:offset + length]))
                else:
                    raise _protocol("a placed slice outside an entry")
            else:
                raise _protocol("a message without a plan, entry or chunk")
        finish()
        if not have_plan:
            raise _protocol("no plan")
        if total != loaded.plan.total_bytes:
            raise DataLoss(f"the load of {job}/{checkpoint_id} rank {rank} streamed {total} bytes, the plan announced {loaded.plan.total_bytes}")
        if into is not None and n_entries != len(into):
            raise _protocol(f"{n_entries} entries for the {len(into)} boxes asked for")
        for _, _, entry in loaded.entries:
            if isinstance(entry, LoadedTensor):
                asm = entry.value
                if isinstance(asm, TensorFiller):
                    entry.value = asm.dest
                else:
                    # A dtype this torch lacks (uint16..64 before torch 2.3) comes back as a numpy array.
                    entry.value = asm.torch() if _has_torch() and torch_dtype(asm.info.dtype) is not None else asm.numpy()
        return loaded

    # -- EvaluationService -----------------------------------------------------------

    def watch(self, job: str, *, after_sequence: Optional[int] = None, from_step: Optional[int] = None,
              from_now: bool = False, evaluator: str = "") -> "WatchStream":
        """The job's event log (every commit and deletion, in order): a replay from the
        start position (default: the first event), then live events; it never ends on its
        own. Iterate it; ``cancel()`` (from any thread) or ``close()`` ends it."""
        if sum(x is not None and x is not False for x in (after_sequence, from_step, from_now or None)) > 1:
            raise InvalidArgument("watch: give at most one of after_sequence, from_step and from_now")
        req = eval_pb.WatchCheckpointsRequest(job=job, evaluator=evaluator)
        if after_sequence is not None:
            req.after_sequence = int(after_sequence)
        elif from_step is not None:
            req.from_step = int(from_step)
        elif from_now:
            req.from_now = True
        return WatchStream(self.evaluation_stub.WatchCheckpoints(req), self.address, f"WatchCheckpoints of job {job}")

    def checkpoints(self, job: str, *, evaluator: str = "", after_sequence: Optional[int] = None,
                    from_step: Optional[int] = None, timeout: Optional[float] = None,
                    min_backoff: float = 0.1, max_backoff: float = 5.0) -> Iterator[CheckpointEvent]:
        """Yields each COMMITTED checkpoint of a job once, in commit order, pushed by
        WatchCheckpoints (no polling). With ``evaluator`` set, each one sent holds a lease
        (retention keeps it until the evaluator reports or the lease expires).

        When the daemon goes away (UNAVAILABLE: a restart, a dropped connection) it
        reconnects with backoff and resumes after the last event seen, so nothing is
        skipped or repeated. It ends when ``timeout`` seconds pass without a new checkpoint
        while the consumer waits for one (time spent handling one does not count), or when
        the consumer stops iterating. Other errors are raised.
        """
        cursor = after_sequence
        backoff = min_backoff
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        while True:
            stream: Optional[WatchStream] = None
            timed_out = threading.Event()
            timer: Optional[threading.Timer] = None

            def arm() -> None:
                nonlocal timer
                if deadline != float("inf"):
                    def fire(s=stream):
                        timed_out.set()
                        s.cancel()
                    timer = threading.Timer(max(0.0, deadline - time.monotonic()), fire)
                    timer.daemon = True
                    timer.start()

            failure: Optional[CkptdError] = None
            try:
                # watch() waits for the daemon's start marker, so a daemon that is down fails here.
                stream = self.watch(job, evaluator=evaluator,
                                    **({"after_sequence": cursor} if cursor is not None else
                                       {"from_step": from_step} if from_step is not None else {}))
                arm()
                for event in stream:
                    backoff = min_backoff
                    # The daemon resumes strictly after the cursor; this guards "never twice" regardless.
                    if cursor is not None and event.sequence <= cursor:
                        continue
                    cursor = event.sequence
                    if event.type != "COMMITTED":
                        continue
                    if timer is not None:
                        timer.cancel()
                    yield event
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
                    arm()
            except CkptdError as err:
                failure = err
            finally:
                if timer is not None:
                    timer.cancel()
                if stream is not None:
                    stream.cancel()
            if timed_out.is_set():
                return
            if failure is not None and failure.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise failure
            wait = min(backoff, deadline - time.monotonic())
            if wait < 0:
                return
            # Jitter keeps many evaluators from reconnecting to a restarted daemon in lockstep.
            time.sleep(wait * (0.5 + random.random() / 2))
            if time.monotonic() >= deadline:
                return
            backoff = min(backoff * 2, max_backoff)

    def report_evaluation(self, job: str, checkpoint_id: str, evaluator: str,
                          metrics: Optional[Mapping[str, float]] = None, *, failed: bool = False,
                          message: str = "", timeout: Optional[float] = None) -> eval_pb.EvaluationReport:
        """Records (durably) an evaluator's report on a committed checkpoint."""
        status = eval_pb.EVALUATION_STATUS_FAILED if failed else eval_pb.EVALUATION_STATUS_SUCCEEDED
        res = self._unary(self.evaluation_stub.ReportEvaluation, eval_pb.ReportEvaluationRequest(
            job=job, checkpoint_id=checkpoint_id, evaluator=evaluator,
            metrics={k: float(v) for k, v in (metrics or {}).items()}, status=status, message=message), timeout)
        return res.report

    def wait_for_evaluators(self, job: str, checkpoint_id: str, evaluators: Sequence[str],
                            timeout: Optional[float] = None) -> List[eval_pb.EvaluationReport]:
        """Blocks until every named evaluator reported on the checkpoint; returns their
        reports in the order named. Raises DeadlineExceeded naming the missing evaluators
        once ``timeout`` seconds pass (None: no limit)."""
        timeout_ms = 0 if timeout is None else max(1, int(timeout * 1000))
        # The daemon's own timer names the missing evaluators; the call's deadline is only a
        # safety net, late enough that it never fires first.
        res = self._unary(self.evaluation_stub.WaitForEvaluators, eval_pb.WaitForEvaluatorsRequest(
            job=job, checkpoint_id=checkpoint_id, evaluators=list(evaluators), timeout_ms=timeout_ms),
            None if timeout is None else timeout + 10)
        return list(res.reports)

    # -- RetentionService ------------------------------------------------------------

    def set_retention_policy(self, job: str, *, keep_last: int = 0, keep_every_steps: int = 0, keep_best: int = 0,
                             best_metric: str = "", best_mode: Optional[str] = None,
                             timeout: Optional[float] = None) -> ret_pb.SetRetentionPolicyResponse:
        """Replaces a job's retention policy and runs garbage collection; ``best_mode`` is "min" or "max"."""
        modes = {None: ret_pb.METRIC_MODE_UNSPECIFIED, "min": ret_pb.METRIC_MODE_MIN, "max": ret_pb.METRIC_MODE_MAX}
        if best_mode not in modes:
            raise InvalidArgument(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        policy = ret_pb.RetentionPolicy(keep_last=keep_last, keep_every_steps=keep_every_steps, keep_best=keep_best,
                                        best_metric=best_metric, best_mode=modes[best_mode])
        return self._unary(self.retention_stub.SetRetentionPolicy,
                           ret_pb.SetRetentionPolicyRequest(job=job, policy=policy), timeout)

    def get_retention_policy(self, job: str, *, timeout: Optional[float] = None) -> ret_pb.GetRetentionPolicyResponse:
        return self._unary(self.retention_stub.GetRetentionPolicy, ret_pb.GetRetentionPolicyRequest(job=job), timeout)

    def pin_checkpoint(self, job: str, checkpoint_id: str, pinned: bool = True, *, timeout: Optional[float] = None) -> bool:
        res = self._unary(self.retention_stub.PinCheckpoint,
                          ret_pb.PinCheckpointRequest(job=job, checkpoint_id=checkpoint_id, pinned=pinned), timeout)
        return res.pinned

    # -- helpers -------------------------------------------------------------------------

    def _unary(self, method, request, timeout: Optional[float]):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise rpc_error(err, self.address, _operation(request)) from None


class WatchStream:
    """An open WatchCheckpoints call: iterate it for :class:`CheckpointEvent`; ``cancel()`` ends it.

    It is live once constructed: the daemon's first message (waited for here) says so,
    with ``head_sequence``, the last sequence in the job's log at that moment (0 for a job
    with no events yet). A commit made after ``watch()`` returned is never missed, even
    with ``from_now``; errors such as an invalid job name are raised by ``watch()`` itself."""

    def __init__(self, call, address: str = "", operation: str = "WatchCheckpoints"):
        self._call = call
        self._address = address
        self._operation = operation
        self._cancelled = False
        self._pending = None
        self.head_sequence = 0
        self.after_sequence = 0
        try:
            first = next(self._call)
        except StopIteration:
            return
        except grpc.RpcError as err:
            raise rpc_error(err, address, operation) from None
        if first.WhichOneof("msg") == "started":
            self.head_sequence = first.started.head_sequence
            self.after_sequence = first.started.after_sequence
        else:
            self._pending = first

    def __iter__(self) -> Iterator[CheckpointEvent]:
        try:
            if self._pending is not None:
                pending, self._pending = self._pending, None
                yield _event_of(pending.event)
            for msg in self._call:
                if msg.WhichOneof("msg") != "event":
                    continue
                yield _event_of(msg.event)
        except grpc.RpcError as err:
            if self._cancelled:
                return
            raise rpc_error(err, self._address, self._operation) from None

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()

    close = cancel


def _has_torch() -> bool:
    from . import tensors
    return tensors.torch is not None


def _outcome(outcome: int) -> str:
    name = _OUTCOMES.get(outcome)
    if name is None:
        raise Internal(f"the daemon returned no commit decision (outcome {outcome})")
    return name


def _protocol(what: str) -> Internal:
    return Internal(f"the daemon's Load stream is out of order: it sent {what}")


def _prepare_entries(entries: Iterable[Entry], snapshot: Optional[SnapshotBuffers] = None):
    """(EntryHeader, chunks(chunk_bytes), byte size) per entry, every entry checked first.

    With ``snapshot``, an entry of one of its buffers reuses what the last save prepared for
    it: the buffer is the same object only as long as its dtype and shape are the same, and
    describing a few hundred tensors again would be most of an async save's stall after
    the copy."""
    prepared = []
    seen = set()
    for entry in entries:
        key = entry.key
        if not isinstance(key, str) or not key:
            raise InvalidArgument("an entry key must be a non-empty string")
        if key in seen:
            raise InvalidArgument(f"entry key {key!r} appears twice in the item")
        seen.add(key)
        if isinstance(entry, TensorEntry):
            staged = snapshot is not None and snapshot._buffers.get(key) is entry.tensor
            if staged:
                sig = (entry.device, entry.dtype, tuple(entry.global_shape), tuple(entry.global_offsets))
                hit = snapshot._prepared.get(key)
                if hit is not None and hit[0] is entry.tensor and hit[1] == sig:
                    prepared.append(hit[2])
                    continue
            if not is_wire_tensor(entry.tensor):
                raise InvalidArgument(f"entry {key}: not a dense tensor of a supported dtype: {type(entry.tensor).__name__}"
                                      f" {getattr(entry.tensor, 'dtype', '')}")
            info = tensor_info(entry.tensor, entry.device, entry.dtype)
            header = pb.EntryHeader(key=key, tensor=tensor_spec(info, entry.global_shape, entry.global_offsets))
            prepared.append((header, lambda n, t=entry.tensor: tensor_chunks(t, n), info.nbytes))
            if staged:
                snapshot._prepared[key] = (entry.tensor, sig, prepared[-1])
        elif isinstance(entry, ObjectEntry):
            data = memoryview(entry.data).cast("B")
            header = pb.EntryHeader(key=key, object=pb.ObjectSpec(size_bytes=len(data), format=entry.format))
            prepared.append((header, lambda n, d=data: (d[i:i + n] for i in range(0, len(d), n)), len(data)))
        else:
            raise InvalidArgument(f"entry {key}: expected a TensorEntry or an ObjectEntry, got {type(entry).__name__}")
    return prepared
