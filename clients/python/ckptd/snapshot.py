"""the-algorithm-ml's checkpointing API (``tml.common.checkpointing``) over ckptd.

- :class:`Snapshot` saves and restores a dict of stateful objects (``model``,
  ``optimizer``, ...: anything with ``state_dict()``/``load_state_dict()``, or a plain
  dict) as one checkpoint per global step, committed across all ranks.
- :func:`get_checkpoint` / :func:`get_checkpoints` find committed checkpoints.
- :func:`checkpoints_iterator` yields every committed checkpoint once, pushed by the
  daemon (WatchCheckpoints), resuming after a daemon restart; no polling.
- :func:`mark_done_eval` / :func:`wait_for_evaluators` connect evaluators and trainer
  (ReportEvaluation / WaitForEvaluators).

Where tml takes a directory (``save_dir``), these take the ckptd ``job``; :mod:`ckptd.tml`
has tml's own signatures instead. A checkpoint
is a :class:`CheckpointRef`: a ``str`` (``"<job>/<checkpoint_id>"``, so tml code that
passes checkpoint paths around keeps working) that also carries ``job``,
``checkpoint_id``, ``step`` and the daemon's summary. Every function accepts
``address=`` or ``client=`` (default: ``$CKPTD_ADDRESS``, else 127.0.0.1:7070).
"""

from __future__ import annotations

import logging
import posixpath
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Union

from .client import CkptdClient, default_address
from .engine import CheckpointEngine
from .errors import CheckpointNotFound, DeadlineExceeded, InvalidArgument

__all__ = [
    "CheckpointRef",
    "Snapshot",
    "StateDict",
    "checkpoints_iterator",
    "get_checkpoint",
    "get_checkpoints",
    "is_done_eval",
    "mark_done_eval",
    "step_from_checkpoint",
    "wait_for_evaluators",
]

log = logging.getLogger("ckptd")

Checkpointish = Union[int, str, "CheckpointRef"]


class CheckpointRef(str):
    """A committed checkpoint: the string ``"<job>/<checkpoint_id>"``, plus ``job``,
    ``checkpoint_id``, ``step``, ``sequence`` (its event's sequence number when it came
    from :func:`checkpoints_iterator`, else None) and ``checkpoint`` (the daemon's summary)."""

    def __new__(cls, job: str, checkpoint_id: str, step: int, checkpoint: Any = None, sequence: Optional[int] = None):
        self = super().__new__(cls, f"{job}/{checkpoint_id}")
        self.job = job
        self.checkpoint_id = checkpoint_id
        self.step = int(step)
        self.checkpoint = checkpoint
        self.sequence = sequence
        return self

    def __reduce__(self):
        return (CheckpointRef, (self.job, self.checkpoint_id, self.step, None, self.sequence))


class StateDict(dict):
    """A dict with ``state_dict()``/``load_state_dict()``, for extra state such as the step."""

    def state_dict(self) -> Dict[str, Any]:
        return dict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.clear()
        self.update(state)


@contextmanager
def _client(address: Optional[str], client: Optional[CkptdClient]):
    if client is not None:
        yield client
        return
    c = CkptdClient(address or default_address())
    try:
        yield c
    finally:
        c.close()


def step_from_checkpoint(checkpoint: Checkpointish) -> int:
    """The global step of a checkpoint (a CheckpointRef, a step, or a tml-style path ending in the step)."""
    if isinstance(checkpoint, CheckpointRef):
        return checkpoint.step
    if isinstance(checkpoint, int):
        return checkpoint
    return int(posixpath.basename(str(checkpoint).rstrip("/")))


def _ref(job: str, ckpt: Any, sequence: Optional[int] = None) -> CheckpointRef:
    return CheckpointRef(job, ckpt.checkpoint_id, ckpt.step, ckpt, sequence)


def _resolve_id(client: CkptdClient, job: str, checkpoint: Checkpointish) -> str:
    """The checkpoint id of a CheckpointRef, a step (the committed checkpoint with that
    step), or an id / ``job/id`` string."""
    if isinstance(checkpoint, CheckpointRef):
        return checkpoint.checkpoint_id
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
        for ckpt in client.list_checkpoints(job):
            if ckpt.step == checkpoint:
                return ckpt.checkpoint_id
            if ckpt.step < checkpoint:
                break  # newest step first: it is not there
        raise CheckpointNotFound(f"job {job} has no committed checkpoint at step {checkpoint}")
    return posixpath.basename(str(checkpoint).rstrip("/"))


def get_checkpoints(job: str, *, address: Optional[str] = None, client: Optional[CkptdClient] = None) -> List[CheckpointRef]:
    """Every committed checkpoint of a job, oldest step first (as tml's list of paths)."""
    with _client(address, client) as c:
        refs = [_ref(job, ckpt) for ckpt in c.list_checkpoints(job)]
    refs.reverse()
    return refs


def get_checkpoint(job: str, global_step: Optional[int] = None, missing_ok: bool = False, *,
                   address: Optional[str] = None, client: Optional[CkptdClient] = None) -> Optional[CheckpointRef]:
    """The latest committed checkpoint, or the one at ``global_step``. When there is none:
    None with ``missing_ok``, else :class:`CheckpointNotFound`."""
    with _client(address, client) as c:
        try:
            if global_step is None:
                return _ref(job, c.get_checkpoint(job, "latest"))
            cid = _resolve_id(c, job, int(global_step))
            return _ref(job, c.get_checkpoint(job, cid))
        except CheckpointNotFound:
            if missing_ok:
                log.info("ckptd: no checkpoint of job %s%s", job, "" if global_step is None else f" at step {global_step}")
                return None
            raise


def checkpoints_iterator(job: str, seconds_to_sleep: Optional[float] = None, timeout: Optional[float] = 1800, *,
                         partition_name: Optional[str] = None, after_sequence: Optional[int] = None,
                         from_step: Optional[int] = None, address: Optional[str] = None,
                         client: Optional[CkptdClient] = None) -> Iterator[CheckpointRef]:
    """Yields every committed checkpoint of ``job`` once, in commit order, as the daemon
    pushes them (``seconds_to_sleep`` is accepted for tml compatibility and unused: there
    is no polling). Ends after ``timeout`` seconds without a new checkpoint (None: never).

    With ``partition_name`` (the evaluator's name) each checkpoint is leased to that
    evaluator, so retention keeps it until :func:`mark_done_eval`. It replays from the
    job's first commit unless ``after_sequence`` (a yielded ref's ``sequence``) or
    ``from_step`` is given, and survives daemon restarts by resuming after the last event.
    """
    with _client(address, client) as c:
        for ev in c.checkpoints(job, evaluator=partition_name or "", after_sequence=after_sequence,
                                from_step=from_step, timeout=timeout):
            ref = CheckpointRef(job, ev.checkpoint_id, ev.step, ev.checkpoint, ev.sequence)
            log.info("ckptd: found checkpoint %s (step %d)", ref, ref.step)
            yield ref


def mark_done_eval(job: str, checkpoint: Checkpointish, partition_name: str,
                   metrics: Optional[Mapping[str, float]] = None, *, failed: bool = False, message: str = "",
                   address: Optional[str] = None, client: Optional[CkptdClient] = None):
    """Records (durably) that evaluator ``partition_name`` is done with a checkpoint (a
    CheckpointRef, a global step, or a checkpoint id), with its metrics. Returns the report."""
    with _client(address, client) as c:
        cid = _resolve_id(c, job, checkpoint)
        return c.report_evaluation(job, cid, partition_name, metrics or {}, failed=failed, message=message)


def is_done_eval(job: str, checkpoint: Checkpointish, partition_name: str, *,
                 address: Optional[str] = None, client: Optional[CkptdClient] = None) -> bool:
    """Whether evaluator ``partition_name`` has reported on the checkpoint."""
    with _client(address, client) as c:
        cid = _resolve_id(c, job, checkpoint)
        try:
            c.wait_for_evaluators(job, cid, [partition_name], timeout=0.001)
            return True
        except DeadlineExceeded:
            return False


def wait_for_evaluators(job: str, partition_names: Sequence[str], global_step: Checkpointish,
                        timeout: Optional[float] = None, *, strict: bool = False, address: Optional[str] = None,
                        client: Optional[CkptdClient] = None) -> Optional[Dict[str, Dict[str, float]]]:
    """Blocks until every evaluator in ``partition_names`` reported on the checkpoint at
    ``global_step`` (or a CheckpointRef / id); returns ``{partition: metrics}``.

    Like tml, a timeout logs a warning and returns None; with ``strict`` it raises
    :class:`DeadlineExceeded` naming the evaluators still missing. A checkpoint not yet
    committed is waited for within the same timeout.
    """
    names = list(partition_names)
    if not names:
        raise InvalidArgument("wait_for_evaluators: name at least one partition")
    deadline = None if timeout is None else time.monotonic() + timeout
    with _client(address, client) as c:
        try:
            cid = _wait_for_checkpoint(c, job, global_step, deadline)
            remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
            reports = c.wait_for_evaluators(job, cid, names, timeout=remaining)
        except DeadlineExceeded as err:
            if strict:
                raise
            log.warning("ckptd: stopped waiting for evaluators of %s at %s: %s", job, global_step, err.message)
            return None
    log.info("ckptd: every evaluator (%s) reported on %s/%s", ", ".join(names), job, cid)
    return {r.evaluator: dict(r.metrics) for r in reports}


def _wait_for_checkpoint(c: CkptdClient, job: str, checkpoint: Checkpointish, deadline: Optional[float]) -> str:
    try:
        return _resolve_id(c, job, checkpoint)
    except CheckpointNotFound:
        if not isinstance(checkpoint, int):
            raise
    # Not committed yet: follow the job's commits from that step on.
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    for ev in c.checkpoints(job, from_step=checkpoint, timeout=timeout):
        if ev.step == checkpoint:
            return ev.checkpoint_id
    raise DeadlineExceeded(f"job {job} committed no checkpoint at step {checkpoint} in time")


def restore_items(engine: CheckpointEngine, cid: str, state: Dict[str, Any], map_location: Any = None,
                  reshard: Optional[bool] = None) -> None:
    """Loads each object of ``state`` from item ``<cid>/<name>``, in place.

    Resharding fills each object's own ``state_dict()`` (or the dict itself) in place from
    the global tensors (:meth:`CheckpointEngine.load` with ``into``): plain tensors get the
    whole global tensor, :class:`ckptd.Shard` / ``ShardedTensor`` leaves their box, whatever
    world size saved; the object's ``load_state_dict`` then gets the filled state dict.
    ``reshard`` True reshards every item; by default an item is resharded when it holds
    sharded tensors and the checkpoint's world size is not the engine's (an item of
    replicated state, such as a fresh optimizer's, loads as saved, from the lowest rank
    that has it when this rank did not exist)."""
    sharded_items: Set[str] = set()
    if reshard is None:
        saved = engine.client.get_checkpoint(engine.job, cid, timeout=engine.load_timeout)
        if saved.world_size != engine.world_size:
            full = engine.client.get_checkpoint(engine.job, cid, full=True, timeout=engine.load_timeout)
            sharded_items = {i.name for r in full.ranks for i in r.items
                             if any(e.WhichOneof("kind") == "tensor" and len(e.tensor.global_shape) > 0
                                    for e in i.entries)}
            log.info("ckptd: %s/%s was saved by %d ranks, this job has %d: resharding %s", engine.job, cid,
                     saved.world_size, engine.world_size, sorted(sharded_items & set(state)) or "no item")
    for name, obj in state.items():
        if reshard or (reshard is None and name in sharded_items):
            template = obj.state_dict() if hasattr(obj, "state_dict") else obj
            if not isinstance(template, dict):
                raise InvalidArgument(f"state[{name!r}] ({type(obj).__name__}) has no state_dict and is not a dict")
            loaded = engine.load(f"{cid}/{name}", into=template)
            if hasattr(obj, "load_state_dict") and template is not obj:
                obj.load_state_dict(loaded)
            continue
        loaded = engine.load(f"{cid}/{name}", map_location)
        if hasattr(obj, "load_state_dict"):
            obj.load_state_dict(loaded)
        elif isinstance(obj, dict):
            obj.clear()
            obj.update(loaded)
        else:
            raise InvalidArgument(f"state[{name!r}] ({type(obj).__name__}) has no load_state_dict and is not a dict")


class ExtraState:
    """tml's ``step`` and ``walltime`` properties, kept in ``state["extra_state"]`` so they
    are saved and restored with everything else."""

    state: Dict[str, Any]

    @property
    def step(self) -> int:
        return self.state["extra_state"]["step"]

    @step.setter
    def step(self, step: int) -> None:
        self.state["extra_state"]["step"] = step

    @property
    def walltime(self) -> float:
        return self.state["extra_state"]["walltime"]

    @walltime.setter
    def walltime(self, walltime: float) -> None:
        self.state["extra_state"]["walltime"] = walltime


class Snapshot(ExtraState):
    """Checkpoints a dict of stateful objects, one checkpoint per global step.

    ``state`` maps item names to objects with ``state_dict()``/``load_state_dict()``
    (models, optimizers, ...) or plain dicts; an ``extra_state`` :class:`StateDict` with
    ``step`` and ``walltime`` is added, as tml does. Every rank saves its own
    ``state_dict()`` of each object as one item and votes; the checkpoint (id
    ``str(global_step)``) is visible once all ranks committed. Rank, world size and devices
    as for :class:`ckptd.CheckpointEngine` (keyword arguments are passed on to it).
    """

    def __init__(self, job: str, state: Dict[str, Any], **engine_options: Any):
        self.job = job
        self.state = state
        self.state.setdefault("extra_state", StateDict(step=0, walltime=0.0))
        self.engine = CheckpointEngine(job=job, **engine_options)
        #: The checkpoint id the last restore loaded ("latest" is resolved once per restore).
        self.restored_checkpoint: Optional[str] = None

    def save(self, global_step: int) -> CheckpointRef:
        """Saves every object of ``state`` and commits; returns the committed checkpoint.
        Raises :class:`ckptd.CheckpointAborted` when any rank failed to take part."""
        tag = str(int(global_step))
        start = time.monotonic()
        self.engine.create(tag, step=int(global_step))
        for name, obj in self.state.items():
            sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
            self.engine.save(sd, f"{tag}/{name}")
        self.engine.commit(tag)
        log.info("ckptd: saved snapshot %s/%s in %.2fs", self.job, tag, time.monotonic() - start)
        return _ref(self.job, self.engine.last_committed) if self.engine.last_committed is not None else \
            CheckpointRef(self.job, tag, int(global_step))

    def restore(self, checkpoint: Checkpointish, map_location: Any = None, *, reshard: Optional[bool] = None) -> None:
        """Loads every object of ``state`` in place from a checkpoint: a global step, a
        CheckpointRef (from :func:`get_checkpoint` / :func:`checkpoints_iterator`) or an id.

        Items holding sharded tensors of a checkpoint saved by another world size (or every
        item, with ``reshard=True``) are resharded into the objects' own tensors: each
        object's ``state_dict()`` is the template, see :func:`restore_items`;
        ``map_location`` then does not apply to them."""
        cid = _resolve_id(self.engine.client, self.job, checkpoint)
        if cid == "latest":
            # Once for the whole restore: every object comes from the same checkpoint.
            cid = self.engine.client.get_checkpoint(self.job, "latest").checkpoint_id
        self.restored_checkpoint = cid
        restore_items(self.engine, cid, self.state, map_location, reshard)
        log.info("ckptd: restored %s/%s", self.job, cid)

    def close(self) -> None:
        self.engine.close()
