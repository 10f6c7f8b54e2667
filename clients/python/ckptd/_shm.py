"""Shared-memory data path for saves to the daemon on this node.

Instead of sending a chunk's bytes on the gRPC stream, the client copies them into a slot
of a ring file in the daemon's shared-memory directory (tmpfs, ``/dev/shm``) and sends a
``SharedChunk`` naming the slot (``SaveShared`` RPC). The daemon copies the slot out,
then reports the bytes it released, and the slot is reused. That skips gRPC's framing,
HTTP/2 flow control and the copies on both sides: one memory copy into the ring, one
out of it.

Each save or load has its own ring (``slots`` x ``chunk_bytes`` bytes, 32 MiB by
default). By default it never has a name: it is a memfd (``memfd_create``) called
``ckptd-ring-<token>``, where the token is 128 fresh random bits, and the client names it
to the daemon as (its pid, the descriptor, the token) - ``SharedMemoryHandle``. The
daemon reopens ``/proc/<pid>/fd/<fd>`` and checks, before it touches a byte, that the
file it got is that very memfd of its own user (the kernel lets no other user's process
in; the token keeps other processes of the user out). Memory that has no name goes
back to the system once the last process holding it closes it or dies, so a ring
cannot leak, however the trainer or the daemon dies (SIGKILL, the OOM killer), at
whatever point of the call.

A daemon that refuses handles (another PID namespace, say) or predates them gets a
ring file in its directory instead, as before handles existed: the client creates it,
sends its path, and removes its name as soon as the daemon has opened it. Before then
the name is the only way the daemon can get at the file, so a client killed in that
window leaves the file behind. Every named ring's name therefore says whose it is -
``ckptd-<save|load>-<pid namespace>-<pid>-<random>`` - and a client's first named ring
in a directory removes the rings of processes of its own PID namespace and user that no
longer exist (:func:`sweep_stale_rings`): a restarted trainer frees what its killed
predecessor left. A PID reused by a live process keeps its (stale) ring until that
process is gone too; rings of another PID namespace are never touched, since their PIDs
mean nothing here.
"""

from __future__ import annotations

import collections
import mmap
import logging
import os
import re
import secrets
import threading
import weakref
from typing import Deque, List, Optional, Set

import numpy as np

log = logging.getLogger("ckptd")

#: Marker in the daemon's FAILED_PRECONDITION message when it cannot use a client's file.
UNAVAILABLE_MARKER = "shared memory unavailable"
#: Default size of one ring, in chunks.
DEFAULT_SLOTS = 8
#: Whether this Python and OS can make anonymous rings (``os.memfd_create``: Linux, Python 3.8+).
MEMFD = hasattr(os, "memfd_create")


_RING_NAME = re.compile(r"^ckptd-(?:save|load)-(\d+)-(\d+)-[0-9a-f]+$")
_swept: Set[str] = set()
_swept_lock = threading.Lock()


def pid_namespace() -> int:
    """The inode of this process's PID namespace (0 where /proc does not say)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_rings(directory: str) -> List[str]:
    """Removes the ring files in ``directory`` that processes of this PID namespace and
    user left behind when they died; returns their paths. Safe while other clients save:
    a live process's ring is never removed."""
    ns = pid_namespace()
    uid = os.geteuid()
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _RING_NAME.match(name)
        if m is None or int(m.group(1)) != ns or ns == 0:
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if st.st_uid != uid:
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    if removed:
        log.warning("ckptd: removed %d ring file(s) of dead processes from %s: %s", len(removed), directory,
                    ", ".join(os.path.basename(p) for p in removed))
    return removed


def _sweep_once(directory: str) -> None:
    with _swept_lock:
        if directory in _swept:
            return
        _swept.add(directory)
    sweep_stale_rings(directory)


class SharedUnavailable(Exception):
    """The daemon (or this host) cannot take bytes through shared memory. ``handle``: it
    was a ring named by a handle that was refused; a ring file may still do."""

    def __init__(self, message: str, *, handle: bool = False):
        super().__init__(message)
        self.handle = handle


def refused(code, details: str) -> bool:
    """Whether a call that failed before the daemon opened the ring failed because of the
    ring: the daemon refused the file, or predates SaveShared / LoadShared."""
    import grpc
    return code == grpc.StatusCode.UNIMPLEMENTED or (
        code == grpc.StatusCode.FAILED_PRECONDITION and UNAVAILABLE_MARKER in details)


class Ring:
    """A ring of fixed-size slots in a shared-memory file.

    The writer (a Save stream's request iterator) calls :meth:`put` per chunk; chunks
    smaller than a slot share the slot being filled while they fit (a state dict's
    hundreds of 100 KiB tensors would otherwise hold a 4 MiB slot each, and the hand-off
    would wait for the daemon every few tensors). It blocks while every slot holds chunks
    the daemon has not released. :meth:`release` (from the
    thread reading the daemon's progress messages) frees slots; :meth:`fail` wakes a
    blocked writer when the call ends.
    """

    def __init__(self, directory: str, slot_bytes: int, slots: int, *, purpose: str = "save", anonymous: bool = False):
        """``anonymous``: a memfd named to the daemon by :attr:`handle` (``path`` is None);
        else a file in ``directory`` named ``ckptd-<purpose>-…`` (``purpose``: save or
        load), sent by its :attr:`path`. The pages are allocated up front either way: a
        full tmpfs (a container's 64 MiB /dev/shm, say) or memory cgroup then fails here
        with ENOSPC, and the client falls back to the stream, instead of failing mid-way
        (SIGBUS in a save's mapping, ENOSPC in the daemon's writes of a load)."""
        self.slot_bytes = slot_bytes
        self.slots = slots
        size = slot_bytes * slots
        #: (pid, fd, token) of an anonymous ring, for SharedMemoryHandle; None for a ring file.
        self.handle: Optional[tuple] = None
        self.path: Optional[str] = None
        self._fd: Optional[int] = None
        _sweep_once(directory)  # rings of dead processes, left by ring files of this or older clients
        if anonymous:
            token = secrets.token_hex(16)
            fd = os.memfd_create(f"ckptd-ring-{token}", os.MFD_CLOEXEC)
            try:
                os.posix_fallocate(fd, 0, size)
                self._mm = mmap.mmap(fd, size)
            except BaseException:
                os.close(fd)
                raise
            # The descriptor stays open until the ring is closed: the daemon reopens it
            # through /proc/<pid>/fd/<fd>, and must find this ring there.
            self._fd = fd
            self.handle = (os.getpid(), fd, token)
        else:
            self.path = os.path.join(directory, f"ckptd-{purpose}-{pid_namespace()}-{os.getpid()}-{secrets.token_hex(6)}")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
                self._mm = mmap.mmap(fd, size)
            except BaseException:
                os.close(fd)
                _unlink(self.path)
                raise
            os.close(fd)
        self._view = memoryview(self._mm)
        self._finalizer = weakref.finalize(self, _cleanup, self.path, self._fd, self._view, self._mm)
        self._cond = threading.Condition()
        self._reset()

    def _reset(self) -> None:
        self._next = 0  # slots opened so far
        # Per slot not yet released, in order: [slot number, bytes of its chunks].
        self._pending: Deque[List[int]] = collections.deque()
        self._fill: Optional[int] = None  # bytes used in the slot being filled (the last pending), if open
        self._sent_bytes = 0
        self._released_bytes = 0  # bytes of pending chunks released so far
        self._failed: Optional[BaseException] = None

    def view(self, offset: int, length: int) -> memoryview:
        """A view of ``length`` bytes at ``offset`` (for chunks the daemon wrote)."""
        if offset < 0 or offset + length > len(self._view):
            raise ValueError(f"a slice [{offset}, {offset + length}) outside the {len(self._view)}-byte ring")
        return self._view[offset:offset + length]

    def unlink(self) -> None:
        """Removes the file's name (the daemon holds it open); nothing for an anonymous ring."""
        if self.path is not None:
            _unlink(self.path)

    def put(self, data) -> int:
        """Copies ``data`` (at most one slot) into the next free slot; returns its offset."""
        n = len(data)
        with self._cond:
            if self._fill is not None and self._fill + n <= self.slot_bytes and self._failed is None:
                last = self._pending[-1]
                off = (last[0] % self.slots) * self.slot_bytes + self._fill
                last[1] += n
                self._fill += n
            else:
                while len(self._pending) >= self.slots and self._failed is None:
                    self._cond.wait()
                if self._failed is not None:
                    raise self._failed
                off = (self._next % self.slots) * self.slot_bytes
                self._pending.append([self._next, n])
                self._next += 1
                self._fill = n
            self._sent_bytes += n
        # numpy copies without the GIL (a memoryview assignment holds it): a trainer's
        # threads keep running while an async save fills the ring behind them.
        np.copyto(np.frombuffer(self._view[off:off + n], dtype=np.uint8), np.frombuffer(data, dtype=np.uint8))
        return off

    def release(self, released_total: int) -> None:
        """The daemon copied out ``released_total`` bytes of this stream's chunks so far."""
        with self._cond:
            freed = False
            while self._pending and self._released_bytes + self._pending[0][1] <= released_total:
                self._released_bytes += self._pending.popleft()[1]
                freed = True
            if freed:
                if not self._pending:
                    # The slot being filled went back whole: the next chunk opens a slot (it may be
                    # this one again, once the ring wraps), so no chunk lands in a released slot.
                    self._fill = None
                self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """Wakes a writer blocked in :meth:`put`, which raises ``exc``."""
        with self._cond:
            if self._failed is None:
                self._failed = exc
            self._cond.notify_all()

    def close(self) -> None:
        self._finalizer()


def _cleanup(path: Optional[str], fd: Optional[int], view: memoryview, mm: mmap.mmap) -> None:
    if path is not None:
        _unlink(path)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        view.release()
        mm.close()
    except (BufferError, ValueError):  # a view still exported: the mapping goes with the process
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Destination:
    """The destination of a LoadShared in destination mode: the daemon writes every entry's
    bytes at its place in the load's layout (``LoadDestination`` in the proto), and the
    loaded tensors are views of this mapping, so nothing is copied on this side.

    ``anonymous`` (when the load's ring is one, so the daemon takes handles): a memfd
    ``ckptd-dest-<token>`` named to the daemon by :attr:`handle`, like an anonymous ring;
    nothing of it is ever left behind, however this process dies. Its descriptor is closed
    once the daemon has it open (:meth:`unlink`): the mapping keeps the memory as long as a
    tensor views it. Otherwise a file named like a load ring (``ckptd-load-…``, swept the
    same way when its process died before the daemon opened it), whose name goes once the
    daemon has it open.

    Unlike a ring's, the pages are not allocated up front: the daemon's writes allocate
    them, and allocating first would zero every page once before the daemon overwrites it
    (a tenth of a load's time). A directory without room for the whole file (a container's
    64 MiB /dev/shm, say) is refused here instead (the client then asks for no destination).
    """

    def __init__(self, directory: str, size: int, *, anonymous: bool = False):
        self.size = size
        #: (pid, fd, token) of an anonymous destination, for SharedMemoryHandle; None for a file.
        self.handle: Optional[tuple] = None
        self.path: Optional[str] = None
        self._fd: Optional[int] = None
        if anonymous:
            token = secrets.token_hex(16)
            fd = os.memfd_create(f"ckptd-dest-{token}", os.MFD_CLOEXEC)
            try:
                # mmap refuses an empty mapping: a load of empty entries only maps one byte.
                os.ftruncate(fd, max(size, 1))
                self.mm = mmap.mmap(fd, max(size, 1))
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self.handle = (os.getpid(), fd, token)
            return
        st = os.statvfs(directory)
        if st.f_bavail * st.f_frsize < size:
            raise OSError(f"{directory} has {st.f_bavail * st.f_frsize} bytes free, less than {size}")
        _sweep_once(directory)
        self.path = os.path.join(directory, f"ckptd-load-{pid_namespace()}-{os.getpid()}-{secrets.token_hex(6)}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # mmap refuses an empty mapping: a load of empty entries only maps one byte.
            os.ftruncate(fd, max(size, 1))
            self.mm = mmap.mmap(fd, max(size, 1))
        except BaseException:
            os.close(fd)
            _unlink(self.path)
            raise
        os.close(fd)

    def unlink(self) -> None:
        """Removes the file's name, or closes the memfd's descriptor (the daemon holds it
        open, the mapping keeps the pages). Idempotent."""
        if self.path is not None:
            _unlink(self.path)
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
