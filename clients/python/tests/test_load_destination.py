"""LoadShared destination mode: the daemon writes every entry at its place in the load's
layout in one destination file, and host tensors are views of that file's mapping. The
daemon picks every offset; a client only names a file, checked like a ring file, and a
file that cannot hold the layout is refused before any byte is written. A client whose
rings are anonymous names an anonymous destination (a memfd, by handle), which nothing
outlives: no name in the directory, no descriptor in the daemon after the stream."""

import ctypes
import os

import grpc
import numpy as np
import pytest
import torch

import ckptd
import ckptd._shm
from ckptd._proto import checkpoint_service_pb2 as pb
from ckptd.client import DESTINATION_ALIGN, load_request
from ckptd.tensors import MappedTensor, TensorInfo

#: A byte the daemon never writes here (the saved data is random): a file still full of it was not written.
FILL = 0xA5


def _state():
    g = torch.Generator().manual_seed(5)
    return {
        "w": torch.randn(1100, 1300, generator=g),  # ~5.5 MiB: entries of several chunks
        "b": torch.randn(7, generator=g).to(torch.bfloat16),  # 14 bytes: the next entry starts 64-aligned
        "i": torch.arange(1000, dtype=torch.int64),
        "empty": torch.empty(0, 3),
        "step": torch.tensor(3),
    }


def _save(client, job, ckpt, state, *, world_size=1, rank=0, sharded=None):
    entries = [ckptd.TensorEntry(k, v) for k, v in state.items()] + [ckptd.ObjectEntry("meta", b"\x00obj" * 40_000)]
    if sharded:
        entries = [ckptd.TensorEntry(k, v, global_shape=sharded[k][0], global_offsets=sharded[k][1]) for k, v in state.items()]
    res = client.save(job, ckpt, 1, rank, world_size, "model", entries)
    return res


def _commit(client, job, ckpt, world_size, attempts):
    """Every rank votes at once (a vote waits for the others)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(world_size) as pool:
        outcomes = list(pool.map(lambda r: client.commit(job, ckpt, 1, r, world_size, ["model"], attempts[r], timeout=30).outcome,
                                 range(world_size)))
    assert outcomes == ["COMMITTED"] * world_size


@pytest.fixture
def shm(tmp_path):
    d = tmp_path / "shm"
    d.mkdir()
    return d


@pytest.fixture
def made(monkeypatch):
    """The destinations the client makes, in order (ckptd._shm.Destination, recorded)."""
    out = []
    real = ckptd._shm.Destination

    def recording(directory, size, **kw):
        d = real(directory, size, **kw)
        out.append(d)
        return d

    monkeypatch.setattr(ckptd._shm, "Destination", recording)
    return out


def _ours_in_dev_shm():
    """Names in /dev/shm that this process made (a named destination or ring says its pid)."""
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return []
    return [n for n in names if f"-{os.getpid()}-" in n]


def _daemon_destinations(d):
    """The daemon's open descriptors of destination memfds."""
    fds = f"/proc/{d.proc.pid}/fd"
    found = []
    for n in os.listdir(fds):
        try:
            link = os.readlink(f"{fds}/{n}")
        except OSError:
            continue
        if link.startswith("/memfd:ckptd-dest-"):
            found.append(link)
    return found


def _mapped(t: torch.Tensor, mappings) -> bool:
    """True when the tensor's bytes lie inside one of the destination mappings."""
    p = t.data_ptr()
    for mm in mappings:
        base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
        if base <= p and p + t.numel() * t.element_size() <= base + len(mm):
            return True
    return False


def test_host_loads_are_views_of_one_destination_and_bit_exact(start_daemon, shm, job, monkeypatch):
    made = []
    real = ckptd._shm.Destination

    def recording(directory, size, **kw):
        d = real(directory, size, **kw)
        made.append(d)
        # A memfd (the client's rings are anonymous): no name, here or in /dev/shm.
        assert d.handle is not None and d.path is None
        assert os.listdir(shm) == [] and _ours_in_dev_shm() == []
        return d

    monkeypatch.setattr(ckptd._shm, "Destination", recording)
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        res = _save(client, job, "c1", state)
        _commit(client, job, "c1", 1, [res.attempt])
        for verify in (False, True):
            client.verify_shared_loads = verify
            loaded = client.load_items(job, "c1", place=False)
            got = loaded.items["model"]
            for k, want in state.items():
                assert got[k].value.dtype == want.dtype and got[k].value.shape == want.shape, k
                assert torch.equal(got[k].value, want), k
            assert got["meta"].data == b"\x00obj" * 40_000
            mm = made[-1].mm
            for k in ("w", "b", "i"):
                assert _mapped(got[k].value, [mm]), f"{k} was copied, not loaded in place"
            # The layout: every entry starts at a multiple of 64 bytes, in stream order.
            offsets = [got[k].value.data_ptr() - ctypes.addressof(ctypes.c_char.from_buffer(mm)) for k in ("w", "b", "i")]
            assert all(o % DESTINATION_ALIGN == 0 for o in offsets) and offsets == sorted(offsets)
            assert loaded.plan.destination_bytes >= loaded.plan.total_bytes
            # A loaded tensor is the caller's: writable, and writes stay in it.
            got["i"].value[0] = 77
            assert got["i"].value[0] == 77
            assert _daemon_destinations(d) == []  # closed before the stream ended
        assert len(made) == 2
        assert os.listdir(shm) == [] and _ours_in_dev_shm() == []
        # Without destinations (a client that turns them off): the ring, same bytes.
        client.load_destinations = False
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
        assert not _mapped(got["w"].value, [m.mm for m in made])
        assert len(made) == 2


def test_a_resharded_load_lands_in_place_bit_exact(start_daemon, shm, job):
    d = start_daemon("--shared-memory-dir", str(shm))
    g = torch.Generator().manual_seed(9)
    whole = torch.randn(2000, 700, generator=g)
    halves = [whole[:1000], whole[1000:]]
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        atts = []
        for r in range(2):
            entries = [ckptd.TensorEntry("w", halves[r].clone(), global_shape=[2000, 700], global_offsets=[1000 * r, 0])]
            atts.append(client.save(job, "c1", 1, r, 2, "model", entries).attempt)
        _commit(client, job, "c1", 2, atts)
        for rank, (lo, hi) in enumerate([(0, 667), (667, 1334), (1334, 2000)]):
            got = client.load_items(job, "c1", rank=rank, items=["model"], world_size=3,
                                    shard_as=ckptd.ShardAs(rank, 3, dim=0), place=False)
            assert got.plan.resharded and got.plan.destination_bytes > 0
            assert torch.equal(got.items["model"]["w"].value, whole[lo:hi])


def _raw(client, shm, req, destination_path, *, message=None):
    """A LoadShared call in destination mode that answers the plan with `message` (default: a
    LoadDestination naming `destination_path`). Returns (plan, error or None, messages)."""
    ring = ckptd._shm.Ring(str(shm), 4 << 20, 1, purpose="load")
    plan_seen = []
    import queue
    q = queue.SimpleQueue()

    def requests():
        yield pb.LoadSharedRequest(start=pb.LoadSharedStart(request=req, shared_memory_path=ring.path, destination=True))
        m = q.get()
        for one in (m if isinstance(m, list) else [m] if m is not None else []):
            yield one
        q.get()  # hold the stream open until the response ends

    call = client._load_shared_rpc(requests(), timeout=10)
    msgs = []
    err = None
    try:
        for resp in call:
            msg = resp.response
            if msg.WhichOneof("msg") == "plan":
                plan_seen.append(msg.plan)
                q.put(message if message is not None else
                      pb.LoadSharedRequest(destination=pb.LoadDestination(shared_memory_path=destination_path)))
            else:
                msgs.append(msg)
    except grpc.RpcError as e:
        err = e
    finally:
        q.put(None)
        q.put(None)
        ring.close()
    return (plan_seen[0] if plan_seen else None), err, msgs


def _filled(path, size):
    with open(path, "wb") as f:
        f.write(bytes([FILL]) * size)


def _untouched(path, size):
    with open(path, "rb") as f:
        data = f.read()
    return len(data) == size and data == bytes([FILL]) * size


def test_hostile_destinations_are_refused_before_any_byte_is_written(start_daemon, shm, tmp_path, job):
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        req = load_request(job, "c1")
        need = client.load_items(job, "c1", place=False).plan.destination_bytes
        assert need > 0

        # A destination one byte too small.
        small = shm / "small"
        _filled(small, need - 1)
        _, err, msgs = _raw(client, shm, req, str(small))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "destination_bytes" in err.details()
        assert not any(m.WhichOneof("msg") == "shared_chunk" for m in msgs)
        assert _untouched(small, need - 1)

        # A file outside the daemon's directory.
        outside = tmp_path / "outside"
        _filled(outside, need)
        _, err, _ = _raw(client, shm, req, str(outside))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "shared memory unavailable" in err.details()
        assert _untouched(outside, need)

        # A symlink in the directory to a file elsewhere, and a path that climbs out.
        link = shm / "link"
        os.symlink(outside, link)
        for p in (str(link), str(shm / ".." / "outside")):
            _, err, _ = _raw(client, shm, req, p)
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, p
        assert _untouched(outside, need)

        # A second link to a file: refused (a hard link could name a file from elsewhere).
        hard = shm / "hard"
        os.link(outside, hard)
        _, err, _ = _raw(client, shm, req, str(hard))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _untouched(outside, need)
        os.unlink(hard)

        # Something else than a destination after the plan; a path past the length limit.
        _, err, _ = _raw(client, shm, req, "", message=pb.LoadSharedRequest(progress=pb.LoadProgress(shared_bytes_released=1)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "destination" in err.details()
        _, err, _ = _raw(client, shm, req, str(shm / ("x" * 5000)))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT

        # Anything after the destination (there are no slots to release) ends the load.
        late = shm / "late"
        _filled(late, need)
        _, err, _ = _raw(client, shm, req, "", message=[
            pb.LoadSharedRequest(destination=pb.LoadDestination(shared_memory_path=str(late))),
            pb.LoadSharedRequest(progress=pb.LoadProgress(shared_bytes_released=1))])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "after its destination" in err.details()

        # A file exactly the size asked: every slice the daemon names lies inside it, entry after entry.
        exact = shm / "exact"
        _filled(exact, need)
        plan, err, msgs = _raw(client, shm, req, str(exact))
        assert err is None
        at, end = 0, 0
        for m in msgs:
            if m.WhichOneof("msg") == "entry":
                at = -(-end // DESTINATION_ALIGN) * DESTINATION_ALIGN
                end = at + m.entry.size_bytes
            elif m.WhichOneof("msg") == "shared_chunk":
                c = m.shared_chunk
                assert c.offset == at and c.offset + c.length <= end <= need
                at += c.length
        with open(exact, "rb") as f:
            data = f.read()
        w = state["w"].numpy().tobytes()
        assert data[: len(w)] == w and len(data) == need


def test_a_mapped_tensor_takes_only_its_next_slice():
    buf = bytearray(256)
    t = MappedTensor(TensorInfo("float32", [4], "cpu"), buf, 64)
    with pytest.raises(ValueError):
        t.place(0, 4)  # not where the tensor lies
    t.place(64, 8)
    with pytest.raises(ValueError):
        t.place(64, 8)  # not the next bytes
    with pytest.raises(ValueError):
        t.place(72, 16)  # past the tensor's 16 bytes
    t.place(72, 8)
    assert t.complete
    buf[64:80] = np.arange(4, dtype=np.float32).tobytes()
    assert torch.equal(t.torch(), torch.arange(4, dtype=torch.float32))


def test_a_destination_the_directory_has_no_room_for_falls_back_to_the_ring(start_daemon, shm, job, monkeypatch):
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()

    def no_room(directory, size, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckptd._shm, "Destination", no_room)
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
        assert client.shared_memory


def test_a_client_with_ring_files_gets_a_destination_file_removed_after_the_load(start_daemon, shm, job, made):
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        client._shm_anonymous = False  # as after a daemon refused a ring's handle
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
        assert len(made) == 1 and made[0].handle is None and made[0].path.startswith(str(shm))
        assert _mapped(got["w"].value, [made[0].mm])
        assert os.listdir(shm) == []


def _memfd(name, size, fill=FILL):
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, bytes([fill]) * size)
    return fd


def _fd_untouched(fd, size):
    return os.fstat(fd).st_size == size and os.pread(fd, size + 1, 0) == bytes([FILL]) * size


def _handle_message(pid, fd, token, path=""):
    return pb.LoadSharedRequest(destination=pb.LoadDestination(
        shared_memory_path=path, shared_memory_handle=pb.SharedMemoryHandle(pid=pid, fd=fd, token=token)))


def test_hostile_destination_handles_are_refused_before_any_byte_is_written(start_daemon, shm, tmp_path, job):
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    unavailable = grpc.StatusCode.FAILED_PRECONDITION
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        req = load_request(job, "c1")
        need = client.load_items(job, "c1", place=False).plan.destination_bytes
        assert need > 0
        token, other = "a1" * 16, "b2" * 16
        fds = []
        try:
            good = _memfd(f"ckptd-dest-{token}", need)
            fds.append(good)
            refusals = [
                ("a wrong token", _handle_message(os.getpid(), good, other), unavailable),
                ("a token not of 32 hex", _handle_message(os.getpid(), good, token.upper()), unavailable),
                # The daemon's own descriptor of that number is not this memfd.
                ("another process", _handle_message(d.proc.pid, good, token), unavailable),
                ("no such process", _handle_message(1 << 22, good, token), unavailable),
                ("both a path and a handle", _handle_message(os.getpid(), good, token, path=str(shm / "x")),
                 grpc.StatusCode.INVALID_ARGUMENT),
            ]
            for why, message, code in refusals:
                _, err, msgs = _raw(client, shm, req, "", message=message)
                assert err is not None and err.code() == code, why
                if code == unavailable:
                    assert "shared memory unavailable" in err.details(), why
                    assert token not in err.details(), why  # a refusal repeats no token
                assert not any(m.WhichOneof("msg") == "shared_chunk" for m in msgs), why
                assert _fd_untouched(good, need), why

            # A regular file, named or removed, and a memfd of another name: not a destination.
            named = tmp_path / f"ckptd-dest-{token}"
            _filled(named, need)
            plain = os.open(named, os.O_RDWR)
            fds.append(plain)
            _, err, _ = _raw(client, shm, req, "", message=_handle_message(os.getpid(), plain, token))
            assert err.code() == unavailable
            os.unlink(named)
            _, err, _ = _raw(client, shm, req, "", message=_handle_message(os.getpid(), plain, token))
            assert err.code() == unavailable and _fd_untouched(plain, need)
            foreign = _memfd(f"ckptd-other-{token}", need)
            fds.append(foreign)
            _, err, _ = _raw(client, shm, req, "", message=_handle_message(os.getpid(), foreign, token))
            assert err.code() == unavailable and _fd_untouched(foreign, need)

            # One byte too small: INVALID_ARGUMENT; one byte more than the plan: refused too.
            small = _memfd(f"ckptd-dest-{token}", need - 1)
            fds.append(small)
            _, err, msgs = _raw(client, shm, req, "", message=_handle_message(os.getpid(), small, token))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "destination_bytes" in err.details()
            assert not any(m.WhichOneof("msg") == "shared_chunk" for m in msgs)
            assert _fd_untouched(small, need - 1)
            big = _memfd(f"ckptd-dest-{token}", need + 1)
            fds.append(big)
            _, err, _ = _raw(client, shm, req, "", message=_handle_message(os.getpid(), big, token))
            assert err.code() == unavailable and _fd_untouched(big, need + 1)
            assert _daemon_destinations(d) == []

            # The right memfd (a destination or a ring name): every byte lands at its place.
            ring_named = _memfd(f"ckptd-ring-{token}", need)
            fds.append(ring_named)
            w = state["w"].numpy().tobytes()
            for fd in (good, ring_named):
                _, err, msgs = _raw(client, shm, req, "", message=_handle_message(os.getpid(), fd, token))
                assert err is None
                assert any(m.WhichOneof("msg") == "shared_chunk" for m in msgs)
                data = os.pread(fd, need + 1, 0)
                assert len(data) == need and data[: len(w)] == w
            assert _daemon_destinations(d) == []
            assert os.listdir(shm) == []
        finally:
            for fd in fds:
                os.close(fd)


# A loader whose daemon is stopped after the plan: it makes its destination, says so, and
# waits for the daemon (which never answers) until it is killed. With a named destination
# when "named".
_STUCK_LOADER = """
import sys, time, ckptd
from ckptd.client import CkptdClient
address, shm, job = sys.argv[1:4]
client = ckptd.CkptdClient(address, shared_memory_dir=shm)
client._shm_anonymous = sys.argv[4:] != ["named"]
real = CkptdClient._destination

def destination(*args, **kw):
    print("plan", flush=True)
    sys.stdin.readline()  # the test stops the daemon meanwhile
    dest = real(*args, **kw)
    print("made", dest.path or "", flush=True)
    return dest

CkptdClient._destination = staticmethod(destination)
client.load_items(job, "c1", place=False)
"""


def test_a_loader_killed_while_the_daemon_writes_its_destination_leaves_nothing(start_daemon, shm, job):
    import signal
    import subprocess
    import sys
    import time
    from conftest import PY_ROOT

    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
    env = dict(os.environ, PYTHONPATH=str(PY_ROOT))
    left = {}
    for mode in ("anonymous", "named"):
        loader = subprocess.Popen([sys.executable, "-c", _STUCK_LOADER, d.address, str(shm), job, mode], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        stopped = False
        try:
            assert loader.stdout.readline().strip() == "plan"
            d.proc.send_signal(signal.SIGSTOP)
            stopped = True
            loader.stdin.write("go\n")
            loader.stdin.flush()
            made = loader.stdout.readline().split()
            assert made[0] == "made"
            time.sleep(0.3)  # the destination goes out to the stopped daemon
            if mode == "anonymous":
                links = [os.readlink(f"/proc/{loader.pid}/fd/{n}") for n in os.listdir(f"/proc/{loader.pid}/fd")]
                assert any(x.startswith("/memfd:ckptd-dest-") for x in links), links
            else:
                assert os.path.exists(made[1])
        finally:
            loader.kill()
            loader.wait(timeout=30)
            if stopped:
                d.proc.send_signal(signal.SIGCONT)
        left[mode] = sorted(n for n in os.listdir(shm) if f"-{loader.pid}-" in n) + \
            [n for n in os.listdir("/dev/shm") if f"-{loader.pid}-" in n]
        for n in os.listdir(shm):  # what a named destination left: the next client's sweep would remove it
            os.unlink(shm / n)
    assert left["anonymous"] == []
    assert len(left["named"]) == 1  # what the memfd avoids: the named file outlived its process
    # The daemon lives on, holds nothing of the dead loader, and loads again.
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
    assert _daemon_destinations(d) == []
    assert os.listdir(shm) == []


def test_a_daemon_that_takes_no_destination_handle_gets_a_destination_file(start_daemon, shm, job, made):
    """A plan without destination_handle (a daemon whose destination mode predates handles, which
    would take a handle-only LoadDestination for none): the destination is a file even though the
    ring is a memfd, and the load is still in place and bit-exact."""
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        rpc = client._load_shared_rpc

        class OlderDaemon:
            def __init__(self, call):
                self.call = call

            def __iter__(self):
                for resp in self.call:
                    if resp.response.WhichOneof("msg") == "plan":
                        assert resp.response.plan.destination_handle
                        resp.response.plan.destination_handle = False
                    yield resp

            def cancel(self):
                self.call.cancel()

        client._load_shared_rpc = lambda *a, **kw: OlderDaemon(rpc(*a, **kw))
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
        assert len(made) == 1 and made[0].handle is None and made[0].path is not None
        assert _mapped(got["w"].value, [made[0].mm])
        assert os.listdir(shm) == []
