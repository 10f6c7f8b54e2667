"""LoadShared destination mode: the daemon writes every entry at its place in the load's
layout in one destination file, and host tensors are views of that file's mapping. The
daemon picks every offset; a client only names a file, checked like a ring file, and a
file that cannot hold the layout is refused before any byte is written."""

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

    def recording(directory, size):
        d = real(directory, size)
        made.append(d)
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
        assert len(made) == 2
        assert os.listdir(shm) == []  # names go once the daemon has the files open
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

    def no_room(directory, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckptd._shm, "Destination", no_room)
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        _commit(client, job, "c1", 1, [_save(client, job, "c1", state).attempt])
        got = client.load_items(job, "c1", place=False).items["model"]
        assert all(torch.equal(got[k].value, v) for k, v in state.items())
        assert client.shared_memory
