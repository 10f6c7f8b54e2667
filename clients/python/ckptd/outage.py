"""What a trainer does when its daemon cannot be reached: the ``on_daemon_error`` policy.

- ``"raise"`` (default): the call raises :class:`ckptd.DaemonUnavailable`, which names the
  address, the operation and whether the checkpoint was committed.
- ``"retry"``: each call to the daemon is retried with exponential backoff (``retries``
  times, 5 by default), then raises as above. It rides out a daemon being restarted.
- ``"skip"``: after the retries (none by default) the checkpoint is given up: a warning
  says which one and why, nothing of it is committed, and training goes on.

``$CKPTD_ON_DAEMON_ERROR`` sets the default mode for code that does not pass one (a tml
job run unchanged, say).
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from .errors import DaemonUnavailable, InvalidArgument

__all__ = ["DaemonErrorPolicy", "MODES"]

log = logging.getLogger("ckptd")

MODES = ("raise", "retry", "skip")
T = TypeVar("T")


@dataclass(frozen=True)
class DaemonErrorPolicy:
    """``mode`` (one of :data:`MODES`), ``retries`` after the first try, and the backoff
    between tries in seconds (doubling from ``backoff`` up to ``max_backoff``, jittered)."""

    mode: str = "raise"
    retries: int = 0
    backoff: float = 0.5
    max_backoff: float = 8.0

    @classmethod
    def of(cls, on_daemon_error: Optional[str] = None, daemon_retries: Optional[int] = None,
           daemon_backoff: Optional[float] = None) -> "DaemonErrorPolicy":
        mode = on_daemon_error or os.environ.get("CKPTD_ON_DAEMON_ERROR") or "raise"
        if mode not in MODES:
            raise InvalidArgument(f"on_daemon_error must be one of {', '.join(MODES)}, got {mode!r}")
        retries = daemon_retries if daemon_retries is not None else (5 if mode == "retry" else 0)
        if retries < 0:
            raise InvalidArgument(f"daemon_retries must be >= 0, got {retries}")
        return cls(mode, int(retries), 0.5 if daemon_backoff is None else float(daemon_backoff))

    @property
    def skips(self) -> bool:
        return self.mode == "skip"

    def call(self, fn: Callable[[], T], operation: str) -> T:
        """``fn()``, tried again on :class:`DaemonUnavailable` as the policy allows; the
        last failure is raised (the caller skips the checkpoint when the mode says so)."""
        wait = self.backoff
        tries = 0
        while True:
            try:
                return fn()
            except DaemonUnavailable as err:
                if tries >= self.retries:
                    raise
                tries += 1
                # Jitter keeps the ranks of a node from hammering a restarting daemon in lockstep.
                pause = wait * (0.5 + random.random() / 2)
                log.warning("ckptd: %s: the daemon at %s is unavailable (%s); retry %d of %d in %.1fs",
                            operation, err.address, err.detail, tries, self.retries, pause)
                time.sleep(pause)
                wait = min(wait * 2, self.max_backoff)
