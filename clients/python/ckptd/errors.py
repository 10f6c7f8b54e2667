"""The client's exceptions: every failure is a :class:`CkptdError` carrying a gRPC status.

The daemon's statuses map onto subclasses, so callers can catch what they can act on::

    try:
        engine.load("global_step100/model")
    except ckptd.CheckpointNotFound:
        ...

``CkptdError.from_rpc_error`` is the one place a ``grpc.RpcError`` becomes one of them.
"""

from __future__ import annotations

from typing import Optional

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "CheckpointAborted",
    "CheckpointNotFound",
    "CkptdError",
    "DaemonUnavailable",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "Unavailable",
]


class CkptdError(Exception):
    """A failed ckptd call: ``code`` (a ``grpc.StatusCode``) and the daemon's ``message``.

    The daemon's messages name the job, checkpoint, rank, item, key or chunk concerned.
    """

    #: The status code this class stands for (None on the base class).
    status_code: Optional[grpc.StatusCode] = None

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        self.code: grpc.StatusCode = code or self.status_code or grpc.StatusCode.UNKNOWN
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @staticmethod
    def from_rpc_error(err: grpc.RpcError) -> "CkptdError":
        """The exception for a failed gRPC call, keeping the daemon's message."""
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else None
        cls = _BY_CODE.get(code, CkptdError)
        exc = cls(details or str(err), code)
        exc.__cause__ = err
        return exc


class InvalidArgument(CkptdError, ValueError):
    """The request is malformed: a bad name, rank, dtype, size or checksum."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class CheckpointNotFound(CkptdError, LookupError):
    """An unknown job, checkpoint or item (``NOT_FOUND``)."""

    status_code = grpc.StatusCode.NOT_FOUND


#: Same class as :class:`CheckpointNotFound`.
NotFound = CheckpointNotFound


class AlreadyExists(CkptdError):
    """The thing the call would create exists, e.g. an item saved twice in one attempt."""

    status_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CkptdError):
    """Well-formed but not allowed now: ranks disagreeing on world size or step, a save into a committed checkpoint."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class DataLoss(CkptdError):
    """Stored or streamed bytes failed a checksum or size check; the message names the chunk."""

    status_code = grpc.StatusCode.DATA_LOSS


class Unavailable(CkptdError, ConnectionError):
    """The daemon is unreachable or draining; retrying later may succeed."""

    status_code = grpc.StatusCode.UNAVAILABLE


class DaemonUnavailable(Unavailable):
    """The daemon could not be reached (not running, restarting, the connection dropped) or
    is shutting down: every ``UNAVAILABLE`` the client gets is raised as this.

    Unlike a bare ``Unavailable`` from grpc ("failed to connect to all addresses", "Socket
    closed"), the message names ckptd, the ``address``, the ``operation`` that failed and,
    for a checkpoint, whether it was committed: ``committed`` is False when it certainly
    was not, None when the daemon may have decided before the connection dropped (look it
    up with ``get_checkpoint`` once the daemon is back). ``detail`` is grpc's own text.
    """

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, *, address: str = "",
                 operation: str = "", detail: str = "", checkpoint: str = "", committed: Optional[bool] = None):
        super().__init__(message, code)
        self.address = address
        self.operation = operation
        self.detail = detail
        self.checkpoint = checkpoint
        self.committed = committed

    @classmethod
    def describe(cls, address: str, operation: str, detail: str, *, checkpoint: str = "",
                 committed: Optional[bool] = None) -> "DaemonUnavailable":
        """The error for ``operation`` against the daemon at ``address`` failing with grpc's ``detail``."""
        text = f"the ckptd daemon at {address} is unavailable: {operation} failed ({detail or 'no detail'})."
        if checkpoint:
            if committed is False:
                text += f" Checkpoint {checkpoint} was not committed."
            elif committed is None:
                text += (f" Whether checkpoint {checkpoint} was committed is unknown until the daemon is back"
                         " (get_checkpoint tells; an undecided one is aborted when the daemon restarts).")
        text += (" Check that ckptd runs on this node and listens there (CKPTD_ADDRESS or address=...);"
                 " on_daemon_error='retry' or 'skip' keeps training going through an outage.")
        return cls(text, address=address, operation=operation, detail=detail, checkpoint=checkpoint,
                   committed=committed)

    def with_checkpoint(self, checkpoint: str, committed: Optional[bool]) -> "DaemonUnavailable":
        """The same failure, saying what it means for ``checkpoint``."""
        exc = DaemonUnavailable.describe(self.address, self.operation, self.detail, checkpoint=checkpoint,
                                         committed=committed)
        exc.__cause__ = self.__cause__
        return exc

    @property
    def never_connected(self) -> bool:
        """The call never reached the daemon (so it cannot have had any effect)."""
        d = self.detail.lower()
        return "failed to connect" in d or "connection refused" in d


class DeadlineExceeded(CkptdError, TimeoutError):
    """The call's deadline passed (for WaitForEvaluators: the message names the evaluators still missing)."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(CkptdError):
    """The daemon's data directory is full, or a message was too large."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Cancelled(CkptdError):
    """The call was cancelled."""

    status_code = grpc.StatusCode.CANCELLED


class Internal(CkptdError):
    """A bug or a protocol violation, on either side."""

    status_code = grpc.StatusCode.INTERNAL


class CheckpointAborted(CkptdError):
    """The two-phase commit decided ABORTED: nothing of that attempt is visible.

    The checkpoint id may be saved again (a new attempt). ``reason`` is the daemon's.
    """

    status_code = grpc.StatusCode.ABORTED

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, *, job: str = "",
                 checkpoint_id: str = "", reason: str = "", attempt: int = 0):
        super().__init__(message, code)
        self.job = job
        self.checkpoint_id = checkpoint_id
        self.reason = reason or message
        self.attempt = attempt


_BY_CODE = {
    cls.status_code: cls
    for cls in (InvalidArgument, CheckpointNotFound, AlreadyExists, FailedPrecondition, DataLoss,
                Unavailable, DeadlineExceeded, ResourceExhausted, Cancelled, Internal, CheckpointAborted)
}
