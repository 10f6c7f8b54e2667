"""torch.distributed.checkpoint (DCP) storage on ckptd: :class:`Writer` and :class:`Reader`.

Save (every rank)::

    dcp.save_state_dict(state_dict, storage_writer=ckptd.dcp.Writer(job, step))

Load (every rank, any world size)::

    dcp.load_state_dict(state_dict, storage_reader=ckptd.dcp.Reader(job, "latest"))

``dcp`` is ``torch.distributed.checkpoint`` (``torch.distributed._shard.checkpoint`` on
torch 1.13; :func:`import_dcp` imports it on every torch here).

What is stored, per checkpoint (id ``str(step)`` unless given):

- item ``<item>`` of each rank: its tensor write items, each a tensor entry keyed by its
  fully qualified name with the chunk's place in the global tensor (global shape and
  offsets), so a loader of any world size asks the daemon for exactly the boxes it needs;
- item ``<item>.objects`` of a rank that writes non-tensor values: each as an object
  entry (``torch.save`` bytes), keyed by its name;
- item ``<item>.metadata`` of the coordinator: DCP's ``Metadata``, pickled, whose
  ``storage_data`` maps each write item to ``(rank, item, key)``.

The two-phase commit: every rank votes once its items are durable. A rank other than the
coordinator has no call after ``write_data``, and the coordinator calls ``finish`` only
after every rank's ``write_data`` returned, so those ranks vote from a background thread
(``write_data`` returns at once); :meth:`Writer.result` waits for that vote, and the next
``init`` of the same writer raises its failure. The coordinator votes in ``finish``, which
returns only once the checkpoint is COMMITTED (it raises :class:`ckptd.CheckpointAborted`
otherwise), so ``save_state_dict`` returning on any rank means committed. A rank whose
``write_data`` fails votes no at once: the checkpoint aborts for every rank.
"""

from __future__ import annotations

import io
import logging
import pickle
import threading
from typing import Any, List, Optional, Tuple, Union

from ._compat import import_dcp
from .client import CkptdClient, CommitResult, ObjectEntry, TensorBox, TensorEntry, default_address
from .engine import resolve_ranks
from .errors import CheckpointAborted, CheckpointNotFound, CkptdError, InvalidArgument
from .tensors import torch

_dcp = import_dcp()
_planner = getattr(_dcp, "planner", None)
if _planner is None:  # pragma: no cover - every torch here has it
    raise ImportError("ckptd.dcp: torch's distributed checkpoint module has no planner")
StorageWriter = _dcp.StorageWriter
StorageReader = _dcp.StorageReader
WriteResult = getattr(_dcp, "WriteResult", None) or _dcp.storage.WriteResult
Metadata = _dcp.Metadata
MetadataIndex = _dcp.metadata.MetadataIndex
WriteItemType = _planner.WriteItemType
LoadItemType = _planner.LoadItemType

__all__ = ["Reader", "Writer", "import_dcp"]

log = logging.getLogger("ckptd")

#: Key of the coordinator's object entry holding the pickled Metadata.
METADATA_KEY = "metadata"
#: Format of the non-tensor values' object entries.
OBJECT_FORMAT = "torch.save"


def _completed(value: Any) -> Any:
    fut = torch.futures.Future()
    fut.set_result(value)
    return fut


def _ints(size: Any) -> Tuple[int, ...]:
    return tuple(int(d) for d in size)


class _Ranks:
    """Rank and world size: explicit, else torch.distributed's (resolved at first use)."""

    def __init__(self, rank: Optional[int], world_size: Optional[int]):
        self._explicit = (rank, world_size)
        self._resolved: Optional[Tuple[int, int]] = None

    def get(self) -> Tuple[int, int]:
        if self._resolved is None:
            r, w, _ = resolve_ranks(*self._explicit)
            self._resolved = (r, w)
        return self._resolved


class _OnRanks:
    """``rank`` and ``world_size`` of a Writer or Reader (its ``_ranks``)."""

    _ranks: _Ranks

    @property
    def rank(self) -> int:
        return self._ranks.get()[0]

    @property
    def world_size(self) -> int:
        return self._ranks.get()[1]


class Writer(_OnRanks, StorageWriter):
    """DCP's StorageWriter: ``save_state_dict(sd, storage_writer=Writer(job, step))`` on
    every rank writes a checkpoint of ``job`` into the node's daemon (see the module doc).

    ``checkpoint_id`` defaults to ``str(step)``; ``item`` names the items (default "dcp").
    ``rank`` / ``world_size``: default torch.distributed's (the process group DCP uses must
    be the whole job). ``address`` or a shared ``client``; timeouts in seconds (the
    commit's default waits as long as the daemon's prepare timeout lets the decision take).
    One writer per checkpoint and rank; :meth:`result` waits for this rank's decision."""

    def __init__(self, job: str, step: int, checkpoint_id: Optional[str] = None, *, item: str = "dcp",
                 client: Optional[CkptdClient] = None, address: Optional[str] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, save_timeout: Optional[float] = None,
                 commit_timeout: Optional[float] = None):
        super().__init__()
        if client is not None and address is not None:
            raise InvalidArgument("give either client or address, not both")
        self.job = job
        self.step = int(step)
        self.checkpoint_id = str(checkpoint_id) if checkpoint_id is not None else str(self.step)
        self.item = item
        self.objects_item = f"{item}.objects"
        self.metadata_item = f"{item}.metadata"
        self._owns_client = client is None
        self.client = client or CkptdClient(address or default_address())
        self._ranks = _Ranks(rank, world_size)
        self.save_timeout = save_timeout
        self.commit_timeout = commit_timeout
        self.is_coordinator = False
        self._items: List[str] = []
        self._attempt = 0
        self._vote: Optional[threading.Thread] = None
        self._decision: Optional[CommitResult] = None
        self._vote_error: Optional[BaseException] = None
        #: The committed checkpoint's summary once this rank learnt the decision.
        self.committed = None

    # -- StorageWriter ----------------------------------------------------------------

    def init(self, is_coordinator: bool) -> None:
        self._settle_previous()
        self.is_coordinator = bool(is_coordinator)
        self._items = []
        self._attempt = 0
        self._decision = None
        self._vote_error = None

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        """torch >= 2.2's name for :meth:`init`."""
        self.init(is_coordinator)

    def reset(self, checkpoint_id: Any = None) -> None:
        """torch >= 2.2: a new checkpoint with this writer (a ``checkpoint_id`` names it)."""
        self._settle_previous()
        if checkpoint_id is not None:
            self.checkpoint_id = str(checkpoint_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return checkpoint_id is None or isinstance(checkpoint_id, (str, int))

    def storage_meta(self) -> Any:
        return None

    def prepare_local_plan(self, plan: Any) -> Any:
        seen = set()
        for wi in plan.items:
            if wi.type == WriteItemType.BYTE_IO:
                continue
            fqn = wi.index.fqn
            if fqn in seen:
                raise InvalidArgument(f"ckptd.dcp: rank {self.rank} writes several chunks of {fqn}; ckptd stores one "
                                      "chunk per tensor and rank (shard each tensor once per rank)")
            seen.add(fqn)
        return plan

    def prepare_global_plan(self, plans: List[Any]) -> List[Any]:
        return plans

    def write_data(self, plan: Any, planner: Any) -> Any:
        rank, world_size = self._ranks.get()
        try:
            results = self._write(plan, planner, rank, world_size)
        except BaseException as exc:
            # This rank cannot vote yes: vote no now, so no rank waits for the prepare timeout.
            self._abort(f"rank {rank} failed to write its DCP items: {exc}")
            raise
        if not self.is_coordinator:
            self._vote = threading.Thread(target=self._cast_vote, name=f"ckptd-dcp-vote-{self.checkpoint_id}")
            self._vote.start()
        return _completed(results)

    def finish(self, metadata: Any, results: List[List[Any]]) -> None:
        rank, world_size = self._ranks.get()
        try:
            metadata.storage_data = {wr.index: wr.storage_data for per_rank in results for wr in per_rank}
            data = pickle.dumps(metadata, protocol=4)
            res = self.client.save(self.job, self.checkpoint_id, self.step, rank, world_size, self.metadata_item,
                                   [ObjectEntry(METADATA_KEY, data, "pickle")], timeout=self.save_timeout)
            self._attempt = max(self._attempt, res.attempt)
            self._items.append(self.metadata_item)
        except BaseException as exc:
            self._abort(f"the coordinator (rank {rank}) failed to store the DCP metadata: {exc}")
            raise
        decision = self.client.commit(self.job, self.checkpoint_id, self.step, rank, world_size, self._items,
                                      self._attempt, timeout=self.commit_timeout)
        self._decision = decision
        self._raise_unless_committed(decision)

    # -- this rank's vote ---------------------------------------------------------------

    def result(self, timeout: Optional[float] = None) -> CommitResult:
        """This rank's commit decision once known (a non-coordinator's background vote is
        waited for); raises the vote's failure, or :class:`ckptd.CheckpointAborted`."""
        if self._vote is not None:
            self._vote.join(timeout)
            if self._vote.is_alive():
                raise CkptdError(f"the vote of rank {self.rank} on {self.job}/{self.checkpoint_id} is still waiting "
                                 f"for the decision after {timeout}s")
        if self._vote_error is not None:
            raise self._vote_error
        if self._decision is None:
            raise CkptdError(f"rank {self.rank} has not voted on {self.job}/{self.checkpoint_id}: save_state_dict "
                             "did not reach write_data / finish")
        self._raise_unless_committed(self._decision)
        return self._decision

    def close(self) -> None:
        """Waits for a pending vote, then closes the client if this writer made it."""
        if self._vote is not None:
            self._vote.join()
        if self._owns_client:
            self.client.close()

    # -- internals ----------------------------------------------------------------------

    def _write(self, plan: Any, planner: Any, rank: int, world_size: int) -> List[Any]:
        tensors: List[TensorEntry] = []
        objects: List[ObjectEntry] = []
        results = []
        for wi in plan.items:
            fqn = wi.index.fqn
            if wi.type == WriteItemType.BYTE_IO:
                buf = planner.resolve_data(wi)
                data = buf.getvalue() if hasattr(buf, "getvalue") else bytes(buf)
                objects.append(ObjectEntry(fqn, data, OBJECT_FORMAT))
                results.append(WriteResult(index=wi.index, size_in_bytes=len(data),
                                           storage_data=(rank, self.objects_item, fqn)))
                continue
            tensor = planner.resolve_data(wi)
            td = wi.tensor_data
            sizes = _ints(td.chunk.sizes)
            if _ints(tensor.shape) != sizes:
                raise InvalidArgument(f"ckptd.dcp: {fqn}: the planner resolved a tensor of shape {list(tensor.shape)} "
                                      f"for a chunk of shape {list(sizes)}")
            global_shape = _ints(td.size)
            tensors.append(TensorEntry(fqn, tensor.detach(), global_shape=global_shape,
                                       global_offsets=_ints(td.chunk.offsets) if global_shape else ()))
            results.append(WriteResult(index=wi.index, size_in_bytes=tensor.numel() * tensor.element_size(),
                                       storage_data=(rank, self.item, fqn)))
        for item, entries in ((self.item, tensors), (self.objects_item, objects)):
            if not entries:
                continue
            res = self.client.save(self.job, self.checkpoint_id, self.step, rank, world_size, item, entries,
                                   timeout=self.save_timeout)
            self._attempt = max(self._attempt, res.attempt)
            self._items.append(item)
        return results

    def _cast_vote(self) -> None:
        rank, world_size = self._ranks.get()
        try:
            self._decision = self.client.commit(self.job, self.checkpoint_id, self.step, rank, world_size,
                                                self._items, self._attempt, timeout=self.commit_timeout)
            if self._decision.committed:
                self.committed = self._decision.checkpoint
            else:
                log.warning("ckptd: DCP checkpoint %s/%s attempt %d was aborted: %s", self.job, self.checkpoint_id,
                            self._decision.attempt, self._decision.reason)
        except BaseException as exc:  # noqa: BLE001 - raised by result() and the next init()
            self._vote_error = exc
            log.warning("ckptd: the vote of rank %d on %s/%s failed: %s", rank, self.job, self.checkpoint_id, exc)

    def _settle_previous(self) -> None:
        """Joins the previous checkpoint's vote and raises its failure (nothing else would)."""
        vote, self._vote = self._vote, None
        if vote is None:
            return
        vote.join()
        if self._vote_error is not None:
            raise self._vote_error
        if self._decision is not None:
            self._raise_unless_committed(self._decision)

    def _raise_unless_committed(self, decision: CommitResult) -> None:
        if decision.committed:
            self.committed = decision.checkpoint
            return
        raise CheckpointAborted(
            f"DCP checkpoint {self.job}/{self.checkpoint_id} attempt {decision.attempt} was aborted: "
            f"{decision.reason or 'no reason given'}",
            job=self.job, checkpoint_id=self.checkpoint_id, reason=decision.reason, attempt=decision.attempt)

    def _abort(self, reason: str) -> None:
        try:
            self.client.abort(self.job, self.checkpoint_id, self.rank, reason, self._attempt,
                              timeout=self.commit_timeout)
        except CkptdError as err:
            log.warning("ckptd: could not abort %s/%s: %s", self.job, self.checkpoint_id, err)


class Reader(_OnRanks, StorageReader):
    """DCP's StorageReader: ``load_state_dict(sd, storage_reader=Reader(job, "latest"))`` on
    every rank, of any world size, fills ``sd`` from a checkpoint :class:`Writer` saved.

    ``checkpoint_id``: an id, "latest" (resolved once, at ``read_metadata``) or a step
    (an int). Each ``read_data`` asks the daemon, in one Load, for exactly the boxes of the
    global tensors its read items need, and copies them into the planner's tensors in
    place, with the non-tensor values (object entries of the rank that wrote them)."""

    def __init__(self, job: str, checkpoint_id: Union[str, int] = "latest", *, item: str = "dcp",
                 client: Optional[CkptdClient] = None, address: Optional[str] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, timeout: Optional[float] = None):
        super().__init__()
        if client is not None and address is not None:
            raise InvalidArgument("give either client or address, not both")
        self.job = job
        self.requested = checkpoint_id
        #: The checkpoint id read (fixed at read_metadata).
        self.checkpoint_id: Optional[str] = None
        self.item = item
        self.metadata_item = f"{item}.metadata"
        self._owns_client = client is None
        self.client = client or CkptdClient(address or default_address())
        self._ranks = _Ranks(rank, world_size)
        self.timeout = timeout
        self.metadata: Any = None
        self.is_coordinator = False

    # -- StorageReader ----------------------------------------------------------------

    def read_metadata(self) -> Any:
        rank, world_size = self._ranks.get()
        cid = self._resolve()
        ckpt = self.client.get_checkpoint(self.job, cid, timeout=self.timeout)
        self.checkpoint_id = ckpt.checkpoint_id
        if not any(i.name == self.metadata_item for r in ckpt.ranks for i in r.items):
            raise CheckpointNotFound(f"checkpoint {self.job}/{ckpt.checkpoint_id} has no item {self.metadata_item}: "
                                     "it was not saved by ckptd.dcp.Writer (with this item name)")
        loaded = self.client.load_items(self.job, ckpt.checkpoint_id, rank=rank, world_size=world_size,
                                        boxes=[TensorBox(self.metadata_item, METADATA_KEY)], place=False,
                                        timeout=self.timeout)
        entry = loaded.entries[0][2] if loaded.entries else None
        if entry is None or not hasattr(entry, "data"):
            raise CheckpointNotFound(f"item {self.metadata_item} of {self.job}/{ckpt.checkpoint_id} has no object "
                                     f"{METADATA_KEY}")
        self.metadata = pickle.loads(entry.data)
        return self.metadata

    def init(self, metadata: Any, is_coordinator: bool) -> None:
        self.metadata = metadata
        self.is_coordinator = bool(is_coordinator)

    def set_up_storage_reader(self, metadata: Any, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        """torch >= 2.2's name for :meth:`init`."""
        self.init(metadata, is_coordinator)

    def reset(self, checkpoint_id: Any = None) -> None:
        if checkpoint_id is not None:
            self.requested = checkpoint_id
        self.checkpoint_id = None

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
        return checkpoint_id is None or isinstance(checkpoint_id, (str, int))

    def prepare_local_plan(self, plan: Any) -> Any:
        return plan

    def prepare_global_plan(self, plans: List[Any]) -> List[Any]:
        return plans

    def read_data(self, plan: Any, planner: Any) -> Any:
        rank, world_size = self._ranks.get()
        if self.checkpoint_id is None:
            self.checkpoint_id = self.client.get_checkpoint(self.job, self._resolve(), timeout=self.timeout).checkpoint_id
        storage = getattr(self.metadata, "storage_data", None) or {}
        boxes: List[TensorBox] = []
        dests: List[Any] = []
        tensor_items: List[Any] = []
        byte_items: List[Any] = []
        for ri in plan.items:
            if ri.type == LoadItemType.BYTE_IO:
                where = storage.get(ri.storage_index)
                if where is None:
                    raise CheckpointNotFound(f"{self.job}/{self.checkpoint_id}: the DCP metadata has no storage for "
                                             f"{ri.storage_index.fqn}")
                # Object entries come whole (empty box) from the one rank that wrote them.
                byte_items.append((ri, TensorBox(where[1], where[2])))
                continue
            fqn = ri.storage_index.fqn
            chunk = _ints(ri.storage_index.offset or ())
            offsets = tuple(c + o for c, o in zip(chunk, _ints(ri.storage_offsets))) if chunk else ()
            lengths = _ints(ri.lengths) if chunk else ()
            dest = planner.resolve_tensor(ri)
            boxes.append(TensorBox(self.item, fqn, offsets, lengths))
            dests.append(dest.detach() if hasattr(dest, "detach") else dest)
            tensor_items.append((ri, dest))
        boxes += [box for _, box in byte_items]
        dests += [None] * len(byte_items)
        if not boxes:
            return _completed(None)
        # One Load for everything this rank reads (more only past the daemon's box limits): the daemon
        # assembles each box from the saved chunks.
        entries = self.client.load_boxes(self.job, self.checkpoint_id, boxes, into=dests, rank=rank,
                                         world_size=world_size, timeout=self.timeout)
        for ri, dest in tensor_items:
            planner.commit_tensor(ri, dest)
        for (ri, box), entry in zip(byte_items, entries[len(tensor_items):]):
            if not hasattr(entry, "data"):
                raise CheckpointNotFound(f"item {box.item} of {self.job}/{self.checkpoint_id}: {box.key!r} is a "
                                         "tensor, the DCP metadata says bytes")
            planner.load_bytes(ri, io.BytesIO(entry.data))
        return _completed(None)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _resolve(self) -> str:
        if self.checkpoint_id is not None:
            return self.checkpoint_id
        if isinstance(self.requested, int) and not isinstance(self.requested, bool):
            from .snapshot import _resolve_id
            return _resolve_id(self.client, self.job, self.requested)
        return str(self.requested or "latest")
