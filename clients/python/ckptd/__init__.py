"""ckptd: the Python client of ckptd, the per-node checkpoint daemon.

- :class:`CheckpointEngine`: DeepSpeed's checkpoint engine (create, save, load, commit),
  synchronous or decoupled.
- :mod:`ckptd.tml`: a drop-in for ``tml.common.checkpointing`` (the-algorithm-ml), with its
  names and signatures; ``save_dir`` names the job.
- :class:`Snapshot`, :func:`get_checkpoint`, :func:`checkpoints_iterator`,
  :func:`mark_done_eval`, :func:`wait_for_evaluators`: the same API named by job, richer.
- :class:`CkptdClient`: one method per RPC, for everything else; ``load_into`` fills a
  template of this rank's tensors from a checkpoint of any world size (resharding).
- :class:`Shard`: a state dict leaf holding this rank's box of a global tensor.
- :mod:`ckptd.dcp`: torch.distributed.checkpoint storage (``Writer``, ``Reader``) on ckptd.
- :class:`CkptdError` and its subclasses: the daemon's statuses as exceptions.

Example::

    import ckptd
    engine = ckptd.CheckpointEngine(job="pretrain")  # rank/world size from torch.distributed or env
    engine.create("global_step1000")
    engine.save(model.state_dict(), "/ckpt/global_step1000/model.pt")
    engine.commit("global_step1000")
    state = engine.load("global_step1000/model.pt")  # onto this rank's device, by the daemon's hints
"""

from .client import (
    CHANNEL_OPTIONS,
    MAX_CHUNK_BYTES,
    CheckpointEvent,
    CkptdClient,
    CommitResult,
    LoadedItems,
    LoadedObject,
    LoadedTensor,
    ObjectEntry,
    PendingSave,
    SaveResult,
    ShardAs,
    SnapshotBuffers,
    TensorBox,
    TensorEntry,
    default_address,
    process_incarnation,
)
from .engine import CheckpointEngine, Placement, local_devices, resolve_ranks, step_of_tag
from .errors import (
    AlreadyExists,
    Cancelled,
    CheckpointAborted,
    CheckpointNotFound,
    CkptdError,
    DaemonUnavailable,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from .snapshot import (
    CheckpointRef,
    Snapshot,
    StateDict,
    checkpoints_iterator,
    get_checkpoint,
    get_checkpoints,
    is_done_eval,
    mark_done_eval,
    step_from_checkpoint,
    wait_for_evaluators,
)
from .state import STRUCTURE_KEY, Shard, flatten, unflatten

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "CHANNEL_OPTIONS",
    "Cancelled",
    "CheckpointAborted",
    "CheckpointEngine",
    "CheckpointEvent",
    "CheckpointNotFound",
    "CheckpointRef",
    "CkptdClient",
    "CkptdError",
    "CommitResult",
    "DaemonUnavailable",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "LoadedItems",
    "LoadedObject",
    "LoadedTensor",
    "MAX_CHUNK_BYTES",
    "NotFound",
    "ObjectEntry",
    "Placement",
    "ResourceExhausted",
    "STRUCTURE_KEY",
    "SaveResult",
    "Shard",
    "ShardAs",
    "Snapshot",
    "StateDict",
    "TensorBox",
    "TensorEntry",
    "Unavailable",
    "checkpoints_iterator",
    "default_address",
    "flatten",
    "get_checkpoint",
    "get_checkpoints",
    "is_done_eval",
    "local_devices",
    "mark_done_eval",
    "process_incarnation",
    "resolve_ranks",
    "step_from_checkpoint",
    "step_of_tag",
    "unflatten",
    "wait_for_evaluators",
]
