"""A drop-in for ``tml.common.checkpointing`` (the-algorithm-ml) over ckptd.

Replace ``from tml.common.checkpointing import snapshot`` (or its names) with
``from ckptd import tml as snapshot``: the same names and signatures, the same call
sequence. Checkpoints live in the node's daemon instead of files:

- ``save_dir`` (a path or URL string) names a ckptd job, by :func:`job_of`;
- a checkpoint is the string ``f"{save_dir}/{global_step}"`` (``os.path.join``, as tml),
  stored as the job's checkpoint id ``str(global_step)``;
- ``Snapshot.save`` captures the state (tensors copied to host memory) and returns a
  :class:`PendingSnapshot` at once; a background thread uploads and votes, and the
  checkpoint exists for ``get_checkpoint`` & co. only once every rank voted;
- ``checkpoints_iterator`` is pushed by the daemon (no polling); ``mark_done_eval`` /
  ``is_done_eval`` / ``wait_for_evaluators`` are the daemon's evaluation reports.

The daemon is ``$CKPTD_ADDRESS`` (default 127.0.0.1:7070) unless :func:`configure` says
otherwise; ``configure`` also sets the daemon-error policy (:mod:`ckptd.outage`) and any
:class:`ckptd.CheckpointEngine` option of the snapshots made afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import threading
import time
from concurrent.futures import Future
from typing import Any, Dict, Generator, List, Optional, Tuple

from .client import CkptdClient, default_address
from .engine import CheckpointEngine
from .errors import CheckpointNotFound, DeadlineExceeded, InvalidArgument
from .snapshot import ExtraState, StateDict, restore_items
from .snapshot import wait_for_evaluators as _wait_for_evaluators
from .state import unflatten

__all__ = [
    "DONE_EVAL_SUBDIR",
    "PendingSnapshot",
    "Snapshot",
    "SnapshotView",
    "checkpoints_iterator",
    "configure",
    "get_checkpoint",
    "get_checkpoints",
    "is_done_eval",
    "job_of",
    "mark_done_eval",
    "step_from_checkpoint",
    "wait_for_evaluators",
]

log = logging.getLogger("ckptd")

#: tml's name, kept for code that imports it; evaluations are reports in the daemon, not files.
DONE_EVAL_SUBDIR = "evaled_by"

_JOB_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_JOB = 128  # the daemon's limit on names
_HASH_LEN = 10

_settings: Dict[str, Any] = {"address": None, "engine_options": {}}
_clients: Dict[Tuple[int, str], CkptdClient] = {}
_clients_lock = threading.Lock()


def configure(address: Optional[str] = None, *, on_daemon_error: Optional[str] = None,
              daemon_retries: Optional[int] = None, **engine_options: Any) -> None:
    """Sets the daemon's address for every call of this module (default
    ``$CKPTD_ADDRESS``, else 127.0.0.1:7070), the daemon-error policy of snapshots made
    afterwards (``"raise"``, ``"retry"`` or ``"skip"``, see :mod:`ckptd.outage`), and other
    :class:`ckptd.CheckpointEngine` options for them (``rank=``, ``devices=``, ...)."""
    if address is not None:
        _settings["address"] = address
    opts = dict(_settings["engine_options"])
    if on_daemon_error is not None:
        opts["on_daemon_error"] = on_daemon_error
    if daemon_retries is not None:
        opts["daemon_retries"] = daemon_retries
    opts.update(engine_options)
    _settings["engine_options"] = opts


def _address() -> str:
    return _settings["address"] or default_address()


def _client() -> CkptdClient:
    """One client per process and address (grpc must not cross a fork: keyed by pid)."""
    key = (os.getpid(), _address())
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = CkptdClient(key[1])
        return c


def _normalise_dir(save_dir: str) -> str:
    s = os.fspath(save_dir)
    if not isinstance(s, str) or not s:
        raise InvalidArgument(f"save_dir must be a non-empty path or URL, got {save_dir!r}")
    if "://" in s:
        scheme, rest = s.split("://", 1)
        return f"{scheme}://{rest.rstrip('/')}"
    # A local path: two spellings of one directory ("runs/x/", "./runs/x") are one job.
    return os.path.abspath(s)


def job_of(save_dir: str) -> str:
    """The ckptd job of a tml ``save_dir``, the same on every node and in every process.

    Local paths are made absolute and normalised; URLs lose their trailing slashes. Every
    run of characters other than letters, digits, ``.``, ``_`` and ``-`` becomes one ``-``
    (``/data/runs/twhin`` -> ``data-runs-twhin``). When that changed anything but the
    slashes, when the string had a ``-`` of its own (``/a-b`` and ``/a/b`` must differ), or
    when the name would exceed the daemon's 128 characters, 10 hex digits of the SHA-256 of
    the whole normalised string are appended (and a long name keeps its end, the most specific part),
    so two different directories never share a job.
    """
    norm = _normalise_dir(save_dir)
    name = _JOB_CHARS.sub("-", norm).strip("-.") or "root"
    # "-" stands for "/": a name is taken as is only when that reads back unambiguously.
    bare = norm.strip("/")
    lossless = "-" not in bare and name == bare.replace("/", "-")
    if lossless and len(name) <= _MAX_JOB:
        return name
    digest = hashlib.sha256(norm.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    keep = _MAX_JOB - _HASH_LEN - 1
    head = name[-keep:].lstrip("-.") if len(name) > keep else name
    return f"{head}-{digest}" if head else digest


def _split(checkpoint: str) -> Tuple[str, str, int]:
    """(save_dir, checkpoint id, step) of a checkpoint path ``f"{save_dir}/{step}"``."""
    path = os.fspath(checkpoint)
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"a checkpoint is a path '<save_dir>/<global_step>', got {checkpoint!r}")
    path = path.rstrip("/")
    base = posixpath.basename(path)
    if not base.isdigit():
        raise InvalidArgument(f"checkpoint {checkpoint!r} does not end in a global step ('<save_dir>/<step>')")
    return posixpath.dirname(path), str(int(base)), int(base)


def _path(save_dir: str, checkpoint_id: str) -> str:
    return os.path.join(save_dir, checkpoint_id)


def step_from_checkpoint(checkpoint: str) -> int:
    """The global step of a checkpoint path (its last component)."""
    return int(os.path.basename(checkpoint))


def get_checkpoints(save_dir: str) -> List[str]:
    """Every committed checkpoint of ``save_dir``, oldest step first (only committed ones
    exist: what tml checks with the snapshot's metadata file)."""
    job = job_of(save_dir)
    ids = [c.checkpoint_id for c in _client().list_checkpoints(job)]
    steps = sorted(int(i) for i in ids if i.isdigit() and str(int(i)) == i)
    return [_path(save_dir, str(s)) for s in steps]


def get_checkpoint(save_dir: str, global_step: Optional[int] = None, missing_ok: bool = False) -> str:
    """The latest checkpoint of ``save_dir``, or the one at ``global_step``. When there is
    no checkpoint at all: "" with ``missing_ok``, else :class:`ckptd.CheckpointNotFound`
    (an ``Exception``, as tml raises); a missing ``global_step`` always raises."""
    checkpoints = get_checkpoints(save_dir)
    if not checkpoints:
        if not missing_ok:
            raise CheckpointNotFound(f"No checkpoints found at {save_dir} (ckptd job {job_of(save_dir)})")
        log.info("ckptd: no checkpoints found for restoration at %s", save_dir)
        return ""
    if global_step is None:
        return checkpoints[-1]
    for checkpoint in checkpoints:
        if step_from_checkpoint(checkpoint) == int(global_step):
            return checkpoint
    raise CheckpointNotFound(f"Desired checkpoint at {global_step} not found in {save_dir} (ckptd job {job_of(save_dir)})")


def checkpoints_iterator(save_dir: str, seconds_to_sleep: int = 30, timeout: int = 1800) -> Generator[str, None, None]:
    """Yields the latest checkpoint of ``save_dir`` (if any), then every newer one once, in
    commit order, as the daemon commits them; ends after ``timeout`` seconds without a new
    one. ``seconds_to_sleep`` is accepted and unused: the daemon pushes (no polling).

    Unlike tml's poller, checkpoints committed while the consumer was busy are all yielded
    (oldest first) rather than only the newest; a checkpoint older than one already
    yielded never is. A daemon restart is ridden out (it resumes after the last event)."""
    job = job_of(save_dir)
    client = _client()
    latest = get_checkpoint(save_dir, missing_ok=True)
    last = -1
    if latest:
        last = step_from_checkpoint(latest)
        log.info("ckptd: found latest checkpoint %s", latest)
        yield latest
    for ev in client.checkpoints(job, from_step=last + 1 if last >= 0 else None, timeout=timeout):
        if not (ev.checkpoint_id.isdigit() and str(int(ev.checkpoint_id)) == ev.checkpoint_id) or ev.step <= last:
            continue
        last = ev.step
        path = _path(save_dir, ev.checkpoint_id)
        log.info("ckptd: found checkpoint %s", path)
        yield path
    log.info("ckptd: timed out waiting for the next checkpoint of %s after %ss", save_dir, timeout)


def is_done_eval(checkpoint_path: str, eval_partition: str) -> bool:
    """Whether evaluator ``eval_partition`` reported on the checkpoint (:func:`mark_done_eval`)."""
    save_dir, cid, _ = _split(checkpoint_path)
    try:
        _client().wait_for_evaluators(job_of(save_dir), cid, [eval_partition], timeout=0.001)
        return True
    except DeadlineExceeded:
        return False


def mark_done_eval(checkpoint_path: str, eval_partition: str) -> Any:
    """Records (durably, in the daemon) that evaluator ``eval_partition`` is done with the checkpoint."""
    save_dir, cid, _ = _split(checkpoint_path)
    _client().report_evaluation(job_of(save_dir), cid, eval_partition)


def wait_for_evaluators(save_dir: str, partition_names: List[str], global_step: int, timeout: int) -> None:
    """Blocks until every evaluator in ``partition_names`` marked the checkpoint at
    ``global_step`` done, waiting for that checkpoint to be committed first; after
    ``timeout`` seconds it logs a warning and returns, as tml does. ``partition_names`` is
    left as given (tml's version empties the list)."""
    log.info("ckptd: waiting for evaluators %s of %s at step %d", list(partition_names), save_dir, global_step)
    _wait_for_evaluators(job_of(save_dir), list(partition_names), int(global_step), timeout, client=_client())


class PendingSnapshot:
    """A save in flight (torchsnapshot's ``PendingSnapshot``): the state was captured when
    :meth:`Snapshot.save` returned; ``wait()`` blocks until the checkpoint is committed
    on every rank (or raises why not) and returns a :class:`SnapshotView` of it;
    ``done()`` says whether that happened. ``committed`` is False after ``wait()`` when
    the daemon-error policy skipped the checkpoint."""

    def __init__(self, path: str, future: "Future"):
        self.path = path
        self._future = future
        self.committed: Optional[bool] = None

    def wait(self) -> "SnapshotView":
        self.committed = bool(self._future.result())
        return SnapshotView(self.path)

    def done(self) -> bool:
        return self._future.done()


class SnapshotView:
    """A committed checkpoint, not loaded (what tml's ``get_torch_snapshot`` returns, a
    torchsnapshot ``Snapshot``): ``path``, ``get_manifest()``, ``read_object(path,
    obj_out)`` and ``restore(app_state)``. Manifest keys are ``<rank>/<item>/<key>``, as
    torchsnapshot's (``0/model/emb.weight``)."""

    def __init__(self, path: str):
        self.path = path
        self._manifest: Optional[Dict[str, Any]] = None

    def _where(self) -> Tuple[str, str]:
        if not self.path:
            raise CheckpointNotFound("this snapshot names no checkpoint (get_torch_snapshot(missing_ok=True) found none)")
        save_dir, cid, _ = _split(self.path)
        return job_of(save_dir), cid

    def get_manifest(self) -> Dict[str, Any]:
        """``{"<rank>/<item>/<key>": EntryManifest}`` for every saved tensor and object."""
        if self._manifest is None:
            job, cid = self._where()
            ckpt = _client().get_checkpoint(job, cid, full=True)
            self._manifest = {f"{r.rank}/{i.name}/{e.key}": e for r in ckpt.ranks for i in r.items for e in i.entries}
        return self._manifest

    def read_object(self, path: str, obj_out: Any = None) -> Any:
        """The tensor at manifest key ``path`` (on the host); copied into ``obj_out`` in
        place when given (a partial load into a live model's weight)."""
        job, cid = self._where()
        parts = path.split("/", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            raise InvalidArgument(f"{path!r} is not a manifest key '<rank>/<item>/<key>'")
        rank, item, key = int(parts[0]), parts[1], parts[2]
        loaded = _client().load_items(job, cid, items=[item], source_rank=rank, place=False)
        entry = loaded.items.get(item, {}).get(key)
        if entry is None:
            raise CheckpointNotFound(f"checkpoint {self.path} has no entry {path}")
        value = getattr(entry, "value", None)
        if value is None:
            value = unflatten({key: entry})
        if obj_out is None:
            return value
        with _no_grad():
            obj_out.copy_(value)
        return obj_out

    def restore(self, app_state: Dict[str, Any]) -> None:
        """Loads every object of ``app_state`` in place from this checkpoint."""
        job, cid = self._where()
        engine = CheckpointEngine(job=job, client=_client(), **_settings["engine_options"])
        restore_items(engine, cid, app_state)


def _no_grad():
    from .tensors import torch
    return torch.no_grad()


class Snapshot(ExtraState):
    """tml's ``Snapshot(save_dir, state)``: checkpoints ``state`` (objects with
    ``state_dict()``/``load_state_dict()``, or dicts) as one checkpoint per global step,
    each rank saving its own ``state_dict()`` of each object as one item.

    ``state["extra_state"]`` is set to a :class:`ckptd.snapshot.StateDict` holding ``step``
    and ``walltime``, as tml does. Rank and world size come from torch.distributed (or
    RANK/WORLD_SIZE); every rank of the job must save every checkpoint.
    """

    def __init__(self, save_dir: str, state: Dict[str, Any]) -> None:
        self.save_dir = save_dir
        self.state = state
        self.state["extra_state"] = StateDict(step=0, walltime=0.0)
        self.job = job_of(save_dir)
        #: The checkpoint path the last restore() loaded (restore resolves it once).
        self.restored_checkpoint: Optional[str] = None
        self._engine: Optional[CheckpointEngine] = None
        self._last: Optional[Future] = None

    @property
    def engine(self) -> CheckpointEngine:
        """The decoupled engine this snapshot saves with (made at first use, so the
        snapshot may be built before ``init_process_group``)."""
        if self._engine is None:
            opts = dict(_settings["engine_options"])
            opts.setdefault("decoupled", True)
            self._engine = CheckpointEngine(job=self.job, client=_client(), **opts)
        return self._engine

    def save(self, global_step: int) -> PendingSnapshot:
        """Captures every object's state (later changes do not reach this checkpoint) and
        returns; the upload and the commit run in the background."""
        path = os.path.join(self.save_dir, str(global_step))
        tag = str(int(global_step))
        log.info("ckptd: saving snapshot global_step %s to %s (job %s)", global_step, path, self.job)
        start = time.monotonic()
        engine = self.engine
        engine.create(tag, step=int(global_step))
        for name, obj in self.state.items():
            engine.save(obj.state_dict() if hasattr(obj, "state_dict") else obj, f"{tag}/{name}")
        future: Future = Future()

        def commit(previous: Optional[Future]) -> None:
            try:
                if previous is not None:
                    previous.exception()  # votes go in save order; an earlier failure was its own handle's
                future.set_result(engine.commit(tag))
                log.info("ckptd: committed snapshot %s (%.2fs after save)", path, time.monotonic() - start)
            except BaseException as exc:  # noqa: BLE001 - raised by PendingSnapshot.wait()
                future.set_exception(exc)

        # Not a daemon thread: a script that ends right after save still casts its vote
        # (as the upload thread still finishes its uploads) instead of leaving the
        # checkpoint to abort at the daemon's prepare timeout.
        threading.Thread(target=commit, args=(self._last,), name=f"ckptd-commit-{tag}").start()
        self._last = future
        log.info("ckptd: captured snapshot %s in %.3fs", path, time.monotonic() - start)
        return PendingSnapshot(path, future)

    def restore(self, checkpoint: str) -> None:
        """Loads every object of ``state`` in place from ``checkpoint`` (a path from
        :func:`get_checkpoint`). The checkpoint is resolved once, so every object comes
        from the same one; ``restored_checkpoint`` says which."""
        save_dir, cid, _ = _split(checkpoint)
        job = job_of(save_dir)
        if job != self.job:
            log.info("ckptd: restoring %s from another save_dir than %s (job %s)", checkpoint, self.save_dir, job)
        start = time.monotonic()
        engine = CheckpointEngine(job=job, client=_client(), **_settings["engine_options"]) if job != self.job \
            else self.engine
        restore_items(engine, cid, self.state)
        if "walltime" not in self.state["extra_state"]:
            self.state["extra_state"] = StateDict(step=self.step, walltime=0.0)
        self.restored_checkpoint = checkpoint
        log.info("ckptd: restored snapshot from %s (%.2fs)", checkpoint, time.monotonic() - start)

    @classmethod
    def get_torch_snapshot(cls, snapshot_path: str, global_step: Optional[int] = None,
                           missing_ok: bool = False) -> SnapshotView:
        """The checkpoint of ``snapshot_path`` (a save_dir) at ``global_step`` (default: the
        latest), without loading it."""
        path = get_checkpoint(snapshot_path, global_step, missing_ok)
        log.info("ckptd: loading snapshot from %s", path)
        return SnapshotView(path)

    @classmethod
    def load_snapshot_to_weight(cls, embedding_snapshot: SnapshotView, snapshot_emb_name: str,
                                weight_tensor: Any) -> None:
        """Copies rank 0's entry whose manifest key contains ``snapshot_emb_name`` (the last
        such, as tml picks) into ``weight_tensor`` in place."""
        start = time.monotonic()
        chosen = None
        for path in embedding_snapshot.get_manifest():
            if path.startswith("0") and snapshot_emb_name in path:
                chosen = path
        if chosen is None:
            raise CheckpointNotFound(f"snapshot {embedding_snapshot.path} has no rank-0 entry named like {snapshot_emb_name!r}")
        embedding_snapshot.read_object(chosen, weight_tensor)
        log.info("ckptd: loaded embedding snapshot from %s: %.3fs", chosen, time.monotonic() - start)
