"""CheckpointEngine: DeepSpeed's checkpoint engine interface over ckptd.

Call order, per rank: ``create(tag)`` -> ``save(state_dict, path)`` x N -> ``commit(tag)``;
then, in a later run, ``load(path, map_location)``. Every rank of the job does the same
with the same tag; the checkpoint becomes visible once all of them have committed.

Duck-typed: DeepSpeed is not imported. Give an instance to a DeepSpeed engine after
``deepspeed.initialize`` (``engine.checkpoint_engine = ckptd.CheckpointEngine(job=...)``).
Both DeepSpeed interfaces are accepted: ``create(tag)``/``commit(tag)`` and the newer
``create(info)``/``commit(info)`` with a ``CheckpointCommitInfo`` (its ``.tag`` is used).

Decoupled mode (``decoupled=True``, as DeepSpeed's ``DecoupledCheckpointEngine``):
``is_decoupled()`` is True, ``save`` copies the state dict's tensors to host memory and
returns at once, a background thread uploads the copies in order, and ``commit(tag)``
waits for that tag's uploads and then votes. ``get_commit_info()`` is the created but
uncommitted checkpoint; ``cleanup()`` commits it.

Restarts: every save, commit and abort carries the process's incarnation
(:func:`ckptd.process_incarnation`), so the daemon aborts the attempt a killed predecessor
of this rank left open at this process's first message and refuses the dead process's late
ones. That alone does not cover a rank whose new process saves into the open attempt
before a peer's new process has fenced the items its dead predecessor staged there: the
peer's fence then aborts the attempt under the first rank. So the first ``create`` of an
engine still aborts the tag's open attempt and waits at a barrier of all ranks (see
``restart_fence``): by then every stale attempt is gone and no rank has saved yet.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

from .client import CkptdClient, ObjectEntry, TensorEntry, default_address
from .errors import (CheckpointAborted, CheckpointNotFound, CkptdError, DaemonUnavailable, FailedPrecondition,
                     InvalidArgument)
from .outage import DaemonErrorPolicy
from .state import MapLocation, flatten, placement, request_map_location, unflatten
from .tensors import torch

__all__ = ["CheckpointEngine", "Placement", "local_devices", "resolve_ranks", "step_of_tag"]

log = logging.getLogger("ckptd")


def step_of_tag(tag: str) -> int:
    """The last integer in a tag (``global_step1000`` -> 1000), else 0."""
    m = re.search(r"(\d+)\D*$", str(tag))
    return int(m.group(1)) if m else 0


def _env_int(name: str) -> Optional[int]:
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"environment variable {name}={v!r} is not an integer") from None


def resolve_ranks(rank: Optional[int] = None, world_size: Optional[int] = None,
                  local_rank: Optional[int] = None) -> "tuple[int, int, int]":
    """(rank, world_size, local_rank): explicit arguments win; then torch.distributed when
    it is initialised; then the RANK / WORLD_SIZE / LOCAL_RANK environment variables
    (set by torchrun, deepspeed and most launchers); else a single process (0, 1, 0)."""
    d_rank = d_world = None
    if torch is not None:
        dist = getattr(torch, "distributed", None)
        if dist is not None and dist.is_available() and dist.is_initialized():
            d_rank, d_world = dist.get_rank(), dist.get_world_size()
    r = rank if rank is not None else d_rank if d_rank is not None else _env_int("RANK")
    w = world_size if world_size is not None else d_world if d_world is not None else _env_int("WORLD_SIZE")
    lr = local_rank if local_rank is not None else _env_int("LOCAL_RANK")
    r = 0 if r is None else r
    w = 1 if w is None else w
    if lr is None:
        local_world = _env_int("LOCAL_WORLD_SIZE")
        lr = r % local_world if local_world else 0
    if not (0 <= r < w):
        raise InvalidArgument(f"rank {r} is not in [0, world size {w})")
    return r, w, lr


def local_devices() -> List[str]:
    """This process's accelerator devices as the daemon expects them: ``cuda:0``..``cuda:n-1``, or none."""
    if torch is not None and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


@dataclass
class _Pending:
    step: int
    items: Set[str] = field(default_factory=set)
    attempt: int = 0
    #: Uploads of a decoupled engine still running or not yet collected by commit.
    uploads: List["Future"] = field(default_factory=list)
    #: The daemon could not be reached and the policy gave this checkpoint up.
    skipped: Optional[DaemonUnavailable] = None
    #: The daemon was unreachable at some point of this checkpoint (it may have restarted).
    outage: bool = False


def _capture(entries: list) -> list:
    """The entries with every tensor copied to host memory, so the caller may change or
    free its tensors as soon as ``save`` returns. The device recorded is the original's."""
    out = []
    for e in entries:
        if isinstance(e, TensorEntry) and torch is not None and isinstance(e.tensor, torch.Tensor):
            t = e.tensor.detach()
            copy = t.to("cpu", copy=True)
            if not copy.is_contiguous():
                copy = copy.contiguous()
            out.append(TensorEntry(e.key, copy, e.device if e.device is not None else str(t.device), e.dtype,
                                   e.global_shape, e.global_offsets))
        elif isinstance(e, TensorEntry) and hasattr(e.tensor, "copy"):  # numpy
            out.append(TensorEntry(e.key, e.tensor.copy(), e.device, e.dtype, e.global_shape, e.global_offsets))
        elif isinstance(e, ObjectEntry):
            out.append(ObjectEntry(e.key, bytes(e.data), e.format))  # pickled at flatten: already a copy
        else:
            out.append(e)
    return out


@dataclass
class Placement:
    """What the daemon suggested for the last load: its ``map_location`` table, and per
    key the saved and target device (for checking and logging)."""

    checkpoint_id: str
    source_rank: int
    map_location: Dict[str, str]
    targets: Dict[str, "tuple[str, str]"]


def _tag_of(tag_or_info: Any) -> str:
    tag = getattr(tag_or_info, "tag", tag_or_info)
    if tag is None or str(tag) == "":
        raise InvalidArgument("a checkpoint tag is required")
    return str(tag)


def _strip(path: str) -> str:
    path = str(path)
    return path.rstrip("/") if len(path) > 1 else path


def parse_load_path(path: str) -> "tuple[str, str]":
    """(tag, item) of a load path: ``a/b/tag/item``, ``tag/item``, or ``item`` (the latest checkpoint)."""
    p = _strip(os.fspath(path))
    item = posixpath.basename(p)
    if not item:
        raise InvalidArgument(f"load path {path!r} names no item")
    parent = posixpath.dirname(p)
    tag = "latest" if parent in ("", ".", "/") else posixpath.basename(parent)
    return tag, item


class CheckpointEngine:
    """A rank's checkpoint engine (DeepSpeed's interface). One instance per rank.

    ``job`` names the training run (default ``$CKPTD_JOB``); ``address`` the node's daemon
    (default ``$CKPTD_ADDRESS``, else 127.0.0.1:7070), or pass a shared ``client``.
    ``rank`` / ``world_size`` / ``local_rank``: see :func:`resolve_ranks` (resolved at the
    first ``create``, so the engine may be built before ``init_process_group``).
    ``devices``: what this rank can load onto (default: its CUDA devices, or none).
    ``save_device``: record this device for every saved tensor instead of its own (a
    string, or a callable ``tensor -> device``), e.g. when tensors were staged on CPU.
    Timeouts are in seconds; the commit's default waits for the decision however long
    the daemon's prepare timeout lets it take.
    ``stub_files``: also write a small JSON marker file at each save path (and make its
    directories), for code that finds checkpoint files on disk - DeepSpeed's
    ``load_checkpoint`` globs for them and checks they exist. The data itself is only in
    ckptd; a marker only names where it is.
    ``decoupled``: save in the background (see the module's docstring).
    ``on_daemon_error`` / ``daemon_retries`` / ``daemon_backoff``: what to do when the
    daemon cannot be reached, see :mod:`ckptd.outage`. With ``"skip"`` a checkpoint the
    daemon could not take is given up (a warning says so), later saves into it do nothing
    and ``commit`` returns False; the other ranks' commits then abort at the daemon's
    prepare timeout, unless they skip it too (a node's ranks share its daemon).
    ``restart_fence``: at this engine's first ``create``, abort the tag's attempt left open
    by a killed earlier process of the job, then meet the other ranks at ``barrier``
    (default: ``torch.distributed.barrier`` when initialised) so no rank's abort can hit
    another's fresh save. Off without a barrier when the world size is above 1; a
    restarted rank is then still fenced by its incarnation (see the module's docstring).
    """

    def __init__(self, config_params: Any = None, *, job: Optional[str] = None, address: Optional[str] = None,
                 client: Optional[CkptdClient] = None, rank: Optional[int] = None, world_size: Optional[int] = None,
                 local_rank: Optional[int] = None, devices: Optional[Sequence[str]] = None,
                 save_device: Union[None, str, Callable[[Any], Optional[str]]] = None,
                 save_timeout: Optional[float] = None, commit_timeout: Optional[float] = None,
                 load_timeout: Optional[float] = None, stub_files: bool = False, decoupled: bool = False,
                 on_daemon_error: Optional[str] = None, daemon_retries: Optional[int] = None,
                 daemon_backoff: Optional[float] = None, restart_fence: bool = True,
                 barrier: Optional[Callable[[], None]] = None):
        self.config_params = config_params
        self.name = "ckptd"
        job = job or os.environ.get("CKPTD_JOB")
        if not job:
            raise InvalidArgument("CheckpointEngine needs a job name: pass job=... or set CKPTD_JOB")
        self.job = job
        if client is not None and address is not None:
            raise InvalidArgument("give either client or address, not both")
        self._owns_client = client is None
        self.client = client or CkptdClient(address or default_address())
        self._explicit = (rank, world_size, local_rank)
        self._ranks: Optional["tuple[int, int, int]"] = None
        self._devices = list(devices) if devices is not None else None
        self.save_device = save_device
        self.save_timeout = save_timeout
        self.commit_timeout = commit_timeout
        self.load_timeout = load_timeout
        self.stub_files = stub_files
        self._pending: Dict[str, _Pending] = {}
        self._current: Optional[str] = None
        self._lock = threading.Lock()
        self._commit_info = None
        self.decoupled = bool(decoupled)
        self.policy = DaemonErrorPolicy.of(on_daemon_error, daemon_retries, daemon_backoff)
        self.restart_fence = restart_fence
        self._barrier = barrier
        self._fenced = False
        self._uploader: Optional[ThreadPoolExecutor] = None
        #: The checkpoint id "latest" stands for in this engine's loads: fixed by a load of
        #: "latest", so the items of one resume all come from one checkpoint even when
        #: another is committed meanwhile. Resolved again when an item already loaded that
        #: way is loaded again (the next resume), and after this engine commits.
        self.resolved_latest: Optional[str] = None
        self._latest_items: Set[str] = set()
        #: The summary (pb.Checkpoint) of the last checkpoint this engine committed.
        self.last_committed = None
        #: The device hints of the last load (:class:`Placement`).
        self.last_placement: Optional[Placement] = None

    # -- ranks and devices ---------------------------------------------------------------

    def _resolve(self) -> "tuple[int, int, int]":
        if self._ranks is None:
            self._ranks = resolve_ranks(*self._explicit)
        return self._ranks

    @property
    def rank(self) -> int:
        return self._resolve()[0]

    @property
    def world_size(self) -> int:
        return self._resolve()[1]

    @property
    def local_rank(self) -> int:
        return self._resolve()[2]

    @property
    def devices(self) -> List[str]:
        return list(self._devices) if self._devices is not None else local_devices()

    # -- DeepSpeed's interface -------------------------------------------------------

    def create(self, tag: Any, step: Optional[int] = None) -> None:
        """Begins checkpoint ``tag`` on this rank; saves that follow go into it.
        ``step`` defaults to the last integer in the tag (``global_step1000`` -> 1000)."""
        info = tag  # DeepSpeed's CheckpointCommitInfo, or the tag itself
        tag = _tag_of(tag)
        self._resolve()
        if not self._fenced:
            self._fenced = True
            self._fence(tag)
        with self._lock:
            self._pending[tag] = _Pending(step=step_of_tag(tag) if step is None else int(step))
            self._current = tag
            self._commit_info = info

    def _fence(self, tag: str) -> None:
        """Aborts the attempt of ``tag`` that an earlier, killed process of this job may
        have left open, then waits for every rank to have done so. The daemon's incarnation
        fencing already frees this rank from its own predecessor's items; the abort also
        clears a dead peer's, before any rank of this job saves into that attempt."""
        barrier = self._barrier
        if barrier is None and self.world_size > 1:
            dist = getattr(torch, "distributed", None) if torch is not None else None
            if dist is not None and dist.is_available() and dist.is_initialized():
                barrier = dist.barrier
        if not self.restart_fence or (barrier is None and self.world_size > 1):
            return
        try:
            res = self.policy.call(
                lambda: self.client.abort(self.job, tag, self.rank, "a new process of the job saves this checkpoint",
                                          0, timeout=self.commit_timeout),
                f"abort of {self.job}/{tag} left by an earlier process")
            if res.reason and res.outcome == "ABORTED":
                log.info("ckptd: %s/%s before this process's first save: attempt %d %s", self.job, tag, res.attempt,
                         res.reason)
        except DaemonUnavailable as err:
            if not self.policy.skips:
                err = err.with_checkpoint(f"{self.job}/{tag}", False)
                raise err from err.__cause__
            # The save that follows meets the same outage and skips the checkpoint.
        if barrier is not None:
            barrier()

    def makedirs(self, path: str = "", exist_ok: bool = False) -> None:
        """No-op (ckptd has no directories to make), unless ``stub_files`` is set."""
        if self.stub_files and path:
            os.makedirs(path, exist_ok=exist_ok)

    def save(self, state_dict: Any, path: str, *, device: Union[None, str, Callable[[Any], Optional[str]]] = None) -> None:
        """Saves ``state_dict`` as the item named by ``path``'s basename
        (``/ckpt/global_step10/mp_rank_00_model_states.pt`` -> ``mp_rank_00_model_states.pt``)
        into the checkpoint named by ``path``'s directory when that tag was created, else
        the last created one. Returns once the daemon staged it durably. ``device``
        overrides ``save_device`` for this call."""
        p = _strip(os.fspath(path))
        item = posixpath.basename(p)
        if not item:
            raise InvalidArgument(f"save path {path!r} names no item")
        tag = self._tag_of_save_path(p)
        pending = self._pending[tag]
        if pending.skipped is not None:
            log.debug("ckptd: %s/%s was skipped: not saving %s", self.job, tag, item)
            return
        entries = flatten(state_dict, device if device is not None else self.save_device)
        if self.decoupled:
            entries = _capture(entries)
            if self._uploader is None:
                # One thread: items upload in the order saved, and at most one at a time
                # holds a connection's bandwidth and the daemon's memory budget.
                self._uploader = ThreadPoolExecutor(1, thread_name_prefix="ckptd-upload")
            pending.uploads.append(self._uploader.submit(self._upload, tag, pending, item, p, entries))
            return
        self._upload(tag, pending, item, p, entries)

    def _upload(self, tag: str, pending: _Pending, item: str, path: str, entries: list) -> None:
        """One item to the daemon, under the daemon-error policy."""
        if pending.skipped is not None:
            return
        what = f"save of item {item} of {self.job}/{tag}"
        try:
            res = self.policy.call(lambda: self._save_once(tag, pending, item, entries), what)
        except DaemonUnavailable as err:
            pending.outage = True
            err = err.with_checkpoint(f"{self.job}/{tag}", False)
            if not self.policy.skips:
                raise err from err.__cause__
            self._skip(tag, pending, err)
            return
        with self._lock:
            pending.items.add(item)
            # Items of an earlier, aborted attempt are gone; voting with the newest attempt
            # makes the daemon abort again (naming the missing item) rather than mix attempts.
            pending.attempt = max(pending.attempt, res.attempt)
        if self.stub_files:
            self._write_stub(path, tag, item, pending.step, res.attempt)

    def _save_once(self, tag: str, pending: _Pending, item: str, entries: list):
        try:
            return self.client.save(self.job, tag, pending.step, self.rank, self.world_size, item, entries,
                                    timeout=self.save_timeout)
        except DaemonUnavailable:
            pending.outage = True
            raise

    def _skip(self, tag: str, pending: _Pending, err: DaemonUnavailable) -> None:
        pending.skipped = err
        log.warning("ckptd: skipped checkpoint %s/%s on rank %d (on_daemon_error='skip'): %s", self.job, tag,
                    self.rank, err.message)

    def _write_stub(self, path: str, tag: str, item: str, step: int, attempt: int) -> None:
        stub = {"ckptd": {"address": self.client.address, "job": self.job, "checkpoint_id": tag, "step": step,
                          "rank": self.rank, "world_size": self.world_size, "item": item, "attempt": attempt}}
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(stub, f)
            f.write("\n")
        os.replace(tmp, path)

    def commit(self, tag: Any) -> bool:
        """Votes for checkpoint ``tag`` with the items saved since ``create(tag)`` and waits
        for the decision. Returns True when committed; raises :class:`CheckpointAborted`
        when the decision is ABORTED (the tag may then be created and saved again)."""
        tag = _tag_of(tag)
        with self._lock:
            pending = self._pending.get(tag)
        if pending is None:
            raise FailedPrecondition(f"checkpoint {tag} was not created on rank {self.rank}: call create(tag) first")
        try:
            return self._commit(tag, pending)
        finally:
            with self._lock:
                # Either way the decision is final for this attempt: a retry starts with create(tag).
                self._pending.pop(tag, None)
                if self._current == tag:
                    self._current = None
                if self._commit_info is not None and _tag_of(self._commit_info) == tag:
                    self._commit_info = None

    def _commit(self, tag: str, pending: _Pending) -> bool:
        failure: Optional[BaseException] = None
        for upload in pending.uploads:  # a decoupled engine's saves of this tag
            try:
                upload.result()
            except BaseException as exc:  # noqa: BLE001 - the first one is raised below
                failure = failure or exc
        if failure is not None:
            # This rank cannot vote yes: vote no at once, so the other ranks learn now
            # rather than at the prepare timeout.
            try:
                self.client.abort(self.job, tag, self.rank, f"a save failed: {failure}", pending.attempt,
                                  timeout=self.commit_timeout)
            except CkptdError as err:
                log.warning("ckptd: could not abort %s/%s after a failed save: %s", self.job, tag, err)
            raise failure
        if pending.skipped is not None:
            log.warning("ckptd: checkpoint %s/%s was skipped on rank %d: not voting", self.job, tag, self.rank)
            return False
        what = f"commit of {self.job}/{tag}"
        try:
            res = self.policy.call(
                lambda: self.client.commit(self.job, tag, pending.step, self.rank, self.world_size,
                                           sorted(pending.items), pending.attempt, timeout=self.commit_timeout), what)
        except DaemonUnavailable as err:
            # A vote that never reached the daemon cannot have completed a commit.
            err = err.with_checkpoint(f"{self.job}/{tag}", False if err.never_connected else None)
            if not self.policy.skips:
                raise err from err.__cause__
            self._skip(tag, pending, err)
            return False
        if not res.committed:
            reason = res.reason or "no reason given"
            if pending.outage:
                reason += " (the daemon was unreachable during this checkpoint; a restart aborts undecided checkpoints)"
                if self.policy.skips:
                    log.warning("ckptd: skipped checkpoint %s/%s on rank %d: attempt %d was aborted: %s", self.job,
                                tag, self.rank, res.attempt, reason)
                    return False
            raise CheckpointAborted(
                f"checkpoint {self.job}/{tag} attempt {res.attempt} was aborted: {reason}",
                job=self.job, checkpoint_id=tag, reason=res.reason, attempt=res.attempt)
        self.last_committed = res.checkpoint
        self.resolved_latest = None
        self._latest_items = set()
        log.info("ckptd: committed %s/%s (rank %d of %d)", self.job, tag, self.rank, self.world_size)
        return True

    def abort(self, tag: Any, reason: str = "") -> None:
        """Votes no on ``tag``: its current attempt aborts for every rank."""
        tag = _tag_of(tag)
        with self._lock:
            pending = self._pending.pop(tag, None)
            if self._current == tag:
                self._current = None
        for upload in pending.uploads if pending else ():
            upload.cancel()
        # The daemon says "rank N aborted: <reason>" itself: only the caller's reason goes.
        self.client.abort(self.job, tag, self.rank, reason, pending.attempt if pending else 0)

    def load(self, path: str, map_location: MapLocation = None, *, source_rank: Optional[int] = None,
             into: Any = None) -> Any:
        """Loads one item and returns its state dict, exactly as saved.

        ``into``: a template of this rank's state dict to fill in place instead, whatever
        world size saved the checkpoint (resharding, see :meth:`CkptdClient.load_into`):
        plain tensors get the whole global tensor, :class:`ckptd.Shard` and
        ``ShardedTensor`` leaves their box; non-tensor values are replaced by the saved
        ones. Returns the template. ``map_location`` does not apply: the template's
        tensors are where the bytes go. A plain load (no ``into``) of an item holding
        sharded tensors saved by another world size fails with FailedPrecondition.

        ``path`` is ``.../tag/item`` (the path given to save), ``tag/item``, or ``item`` (the
        latest committed checkpoint). This rank's own item is loaded; when this rank has no
        item of that name (DeepSpeed's ``mp_rank_00_model_states.pt`` is written by one rank
        and read by all) the one of the lowest rank that has it, or ``source_rank``'s.

        ``map_location`` as in ``torch.load``: None applies the daemon's hints (for this
        rank's devices and local rank); a str or torch.device puts everything there; a dict
        maps saved device -> target (devices it does not name follow the hints); a callable
        ``(tensor, saved_location) -> tensor or None`` is called with each tensor on the
        CPU (None: the hint).
        """
        tag, item = parse_load_path(path)
        rank, _, local_rank = self._resolve()
        if tag == "latest":
            if self.resolved_latest is not None and item not in self._latest_items:
                tag = self.resolved_latest
            self._latest_items.add(item)
        ckpt = self.client.get_checkpoint(self.job, tag, timeout=self.load_timeout)
        if tag == "latest":
            self.resolved_latest = ckpt.checkpoint_id
            self._latest_items = {item}
            log.info("ckptd: 'latest' of job %s is %s (step %d): this engine's loads of 'latest' use it",
                     self.job, ckpt.checkpoint_id, ckpt.step)
        if into is not None:
            if source_rank is not None:
                raise InvalidArgument("load: give either into (resharding) or source_rank, not both")
            self.client.load_into(self.job, ckpt.checkpoint_id, into, item=item, rank=rank,
                                  world_size=self.world_size, local_rank=local_rank, timeout=self.load_timeout)
            self.last_placement = None
            return into
        send_source: Optional[int] = source_rank  # an explicit source_rank reads that saved rank's shard as is
        if source_rank is None:
            source_rank = _rank_with_item(ckpt, item, rank)
            if source_rank is None:
                raise CheckpointNotFound(f"checkpoint {self.job}/{ckpt.checkpoint_id} has no item {item} "
                                         f"(items: {_items_of(ckpt)})")
            if source_rank != rank:
                # Another rank's item (DeepSpeed's mp_rank_00_* is written by one rank, read by all): fine when
                # replicated, wrong when it holds shards and this job has another world size.
                if ckpt.world_size != self.world_size:
                    self._refuse_shards_of_other_world(ckpt.checkpoint_id, item, ckpt.world_size)
                send_source = source_rank
        loaded = self.client.load_items(
            self.job, ckpt.checkpoint_id, rank=rank, local_rank=local_rank, devices=self.devices,
            map_location=request_map_location(map_location), items=[item], source_rank=send_source,
            world_size=self.world_size, place=placement(map_location), timeout=self.load_timeout)
        self.last_placement = Placement(
            checkpoint_id=ckpt.checkpoint_id, source_rank=loaded.plan.source_rank,
            map_location=dict(loaded.plan.map_location),
            targets={p.key: (p.saved_device, p.target_device) for p in loaded.plan.placements if p.item == item})
        entries = loaded.items.get(item)
        if entries is None:
            raise CheckpointNotFound(f"checkpoint {self.job}/{ckpt.checkpoint_id} has no item {item} for rank {source_rank}")
        return unflatten(entries, map_location)

    def _refuse_shards_of_other_world(self, checkpoint_id: str, item: str, saved_world: int) -> None:
        """FailedPrecondition when ``item`` holds sharded tensors (saved with a global shape)."""
        full = self.client.get_checkpoint(self.job, checkpoint_id, full=True, timeout=self.load_timeout)
        for r in full.ranks:
            for i in r.items:
                if i.name != item:
                    continue
                for e in i.entries:
                    if e.WhichOneof("kind") == "tensor" and len(e.tensor.global_shape) > 0:
                        raise FailedPrecondition(
                            f"item {item} of {self.job}/{checkpoint_id} holds shards saved by world size {saved_world} "
                            f"(e.g. key {e.key!r}, a shard of global shape {list(e.tensor.global_shape)}), and this "
                            f"job has world size {self.world_size} -- to load into another world size, reshard: "
                            f"CheckpointEngine.load(path, into=template) or CkptdClient.load_into(...) with this "
                            f"rank's template (ckptd.Shard or ShardedTensor leaves), or pass source_rank to read "
                            f"one saved rank's shard as is")

    # Newer DeepSpeed versions call these.

    def is_data_parallel_writer(self, dp_rank: int) -> bool:
        return dp_rank == 0

    def is_decoupled(self) -> bool:
        """True in decoupled mode: DeepSpeed then leaves ``commit`` for later (its next
        checkpoint, or ``cleanup``) while training goes on."""
        return self.decoupled

    def set_commit_info(self, info: Any) -> None:
        self._commit_info = info

    def get_commit_info(self) -> Any:
        return self._commit_info

    def cleanup(self) -> None:
        """Commits the checkpoint created and not yet committed (a decoupled engine's last
        one), as DeepSpeed's decoupled engine does at the end of training."""
        info = self._commit_info
        if info is not None and _tag_of(info) in self._pending:
            self.commit(info)

    def preserves_storage_sharing(self) -> bool:
        # Each tensor is stored as its own bytes, never its whole storage: no need to clone
        # views before saving to avoid bloat.
        return False

    def close(self) -> None:
        """Stops the upload thread (after its queued uploads) and closes the client if the
        engine created it."""
        if self._uploader is not None:
            self._uploader.shutdown(wait=True)
            self._uploader = None
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "CheckpointEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tag_of_save_path(self, path: str) -> str:
        parent = posixpath.basename(posixpath.dirname(path))
        with self._lock:
            if parent in self._pending:
                return parent
            if self._current is None:
                raise FailedPrecondition(f"no checkpoint was created on rank {self.rank}: call create(tag) before save")
            return self._current


def _items_of(ckpt) -> Dict[int, List[str]]:
    return {r.rank: [i.name for i in r.items] for r in ckpt.ranks}


def _rank_with_item(ckpt, item: str, own_rank: int) -> Optional[int]:
    holders = sorted(r.rank for r in ckpt.ranks if any(i.name == item for i in r.items))
    if not holders:
        return None
    return own_rank if own_rank in holders else holders[0]
