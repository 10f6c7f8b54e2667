"""Saves to a daemon on this node hand their bytes over in shared memory (SaveShared), and
fall back to the gRPC stream when the daemon cannot take them that way."""

import logging
import os
import threading

import numpy as np
import torch

import ckptd
import ckptd._shm
from ckptd.client import is_local_address


def _state():
    g = torch.Generator().manual_seed(11)
    return {
        "w": torch.randn(1000, 1500, generator=g),  # ~5.7 MiB: wraps a 512 KiB ring many times
        "half": torch.zeros(300_000).to(torch.bfloat16),
        "step": torch.tensor(42),
    }


def _entries(state):
    return [ckptd.TensorEntry(k, v) for k, v in state.items()]


def _check_load(client, job, ckpt, state):
    loaded = client.load_items(job, ckpt, rank=0)
    for key, want in state.items():
        got = loaded.items["model"][key].value
        assert got.dtype == want.dtype and torch.equal(got, want), key


def test_local_addresses():
    for a in ("127.0.0.1:7070", "localhost:1", "[::1]:5", "unix:/run/ckptd.sock", "127.3.4.5:9"):
        assert is_local_address(a), a
    for a in ("10.0.0.2:7070", "node7:7070", "[fe80::1]:7070"):
        assert not is_local_address(a), a


def test_save_through_shared_memory_round_trips_and_leaves_no_file(start_daemon, tmp_path, job, monkeypatch):
    rings = []
    real_ring = ckptd._shm.Ring

    def counting_ring(*args, **kwargs):
        rings.append(kwargs.get("purpose", "save"))
        return real_ring(*args, **kwargs)

    monkeypatch.setattr(ckptd._shm, "Ring", counting_ring)
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm), "--log-level", "debug")
    state = _state()
    # 64 KiB chunks: the ring is 8 x 64 KiB, so slots are reused ~90 times per save.
    with ckptd.CkptdClient(d.address, chunk_bytes=64 << 10, shared_memory_dir=str(shm)) as client:
        assert client.shared_memory
        res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))
        nbytes = sum(t.numel() * t.element_size() for t in state.values())
        assert res.bytes_received == nbytes
        assert os.listdir(shm) == []  # the name goes once the daemon has the file open
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s1", state)
        client.verify_shared_loads = True  # every chunk checked again in the client
        _check_load(client, job, "s1", state)
        assert os.listdir(shm) == []  # load rings go the same way
        assert client.shared_memory  # no fallback happened
        assert rings == ["save", "load", "load"]
    log = d.log_path.read_text()
    assert '"shared":true' in log and '"rpc":"LoadShared"' not in log


def test_concurrent_shared_memory_saves_use_separate_rings(start_daemon, tmp_path, job):
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    states = [_state() for _ in range(3)]
    for i, s in enumerate(states):
        s["w"].add_(i)
    results = [None] * 3
    with ckptd.CkptdClient(d.address, chunk_bytes=64 << 10, shared_memory_dir=str(shm)) as client:
        def rank(i):
            res = client.save(job, "s1", 1, i, 3, "model", _entries(states[i]))
            results[i] = client.commit(job, "s1", 1, i, 3, ["model"], res.attempt, timeout=60).outcome

        threads = [threading.Thread(target=rank, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["COMMITTED"] * 3
        for i in range(3):
            loaded = client.load_items(job, "s1", rank=i)
            assert torch.equal(loaded.items["model"]["w"].value, states[i]["w"])


def test_a_daemon_without_shared_memory_gets_the_bytes_on_the_stream(start_daemon, tmp_path, job, caplog):
    d = start_daemon("--shared-memory-dir", "")
    state = _state()
    with caplog.at_level(logging.WARNING, logger="ckptd"):
        with ckptd.CkptdClient(d.address, shared_memory_dir=str(tmp_path)) as client:
            assert client.shared_memory
            res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))
            assert not client.shared_memory  # fell back, for good
            res2 = client.save(job, "s1", 1, 0, 1, "extra", [ckptd.TensorEntry("x", torch.ones(10))])
            assert client.commit(job, "s1", 1, 0, 1, ["model", "extra"], res.attempt).outcome == "COMMITTED"
            assert res2.attempt == res.attempt
            _check_load(client, job, "s1", state)
    warnings = [r.getMessage() for r in caplog.records if "go over gRPC" in r.getMessage()]
    assert len(warnings) == 1 and "shared-memory path off" in warnings[0]
    assert os.listdir(tmp_path) == [] or all(not n.startswith("ckptd-save-") for n in os.listdir(tmp_path))


def test_a_ring_outside_the_daemons_directory_is_refused_and_the_save_still_lands(start_daemon, tmp_path, job):
    daemon_dir = tmp_path / "daemon-shm"
    client_dir = tmp_path / "client-shm"
    daemon_dir.mkdir()
    client_dir.mkdir()
    d = start_daemon("--shared-memory-dir", str(daemon_dir))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(client_dir)) as client:
        client._shm_anonymous = False  # ring files, whose directory is what this checks
        res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))
        assert not client.shared_memory
        assert os.listdir(client_dir) == []  # the refused ring was removed
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s1", state)


def test_async_hand_off_through_shared_memory(start_daemon, tmp_path, job):
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    at_save = {k: v.clone() for k, v in state.items()}
    with ckptd.CkptdClient(d.address, chunk_bytes=64 << 10, shared_memory_dir=str(shm)) as client:
        pending = client.save_async(job, "s1", 1, 0, 1, "model", _entries(state))
        # Hand-off returned: every byte is in the ring, so the trainer may write its tensors.
        for t in state.values():
            t.add_(1)
        res = pending.result(timeout=60)
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s1", at_save)


def test_a_failed_shared_memory_save_raises_the_daemons_error(start_daemon, tmp_path, job):
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        client.save(job, "s1", 1, 0, 2, "model", [ckptd.TensorEntry("x", np.ones(4, dtype=np.float32))])
        try:
            # world size disagrees with the open attempt: FAILED_PRECONDITION, but not a shared-memory refusal
            client.save(job, "s1", 1, 1, 3, "model", [ckptd.TensorEntry("x", np.ones(4, dtype=np.float32))])
        except ckptd.CkptdError as err:
            assert "world" in str(err)
        else:
            raise AssertionError("a save with a mismatched world size succeeded")
        assert client.shared_memory
        assert os.listdir(shm) == []
        client.abort(job, "s1", 0, "test over")  # or the daemon's drain waits for the staged rank


def test_a_daemon_without_save_shared_gets_the_bytes_on_the_stream(tmp_path):
    """A daemon older than SaveShared answers UNIMPLEMENTED: the client streams instead."""
    from concurrent import futures

    import grpc

    from ckptd._proto import checkpoint_service_pb2 as pb
    from ckptd._proto import checkpoint_service_pb2_grpc as pb_grpc

    class SaveOnly(pb_grpc.CheckpointServiceServicer):
        def Save(self, request_iterator, context):
            n = sum(len(r.chunk.data) for r in request_iterator if r.WhichOneof("msg") == "chunk")
            return pb.SaveResponse(bytes_received=n, bytes_stored=n, entry_count=1, attempt=1)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CheckpointServiceServicer_to_server(SaveOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with ckptd.CkptdClient(f"127.0.0.1:{port}", shared_memory_dir=str(tmp_path)) as client:
            assert client.shared_memory
            # Larger than BATCH_ENTRY_BYTES: an item of small entries only skips the ring anyway, and
            # on the stream a small entry would travel in an EntryBatch, which this stand-in ignores.
            res = client.save("j", "c", 1, 0, 1, "model", [ckptd.TensorEntry("x", np.ones(1 << 19, dtype=np.float32))])
            assert res.bytes_received == 4 << 19
            assert not client.shared_memory
            assert os.listdir(tmp_path) == []
    finally:
        server.stop(None)


def test_a_full_shared_memory_directory_falls_back_to_the_stream(start_daemon, tmp_path, job, monkeypatch):
    """A ring that does not fit (ENOSPC, e.g. a container's small /dev/shm) fails before the
    call, so saves and loads go over the stream instead of failing mid-way."""
    import errno

    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))  # through the ring
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"

        def no_space(fd, offset, length):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", no_space)
        _check_load(client, job, "s1", state)  # the load ring does not fit: over the stream
        assert not client.shared_memory
        assert os.listdir(shm) == []
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        res = client.save(job, "s2", 2, 0, 1, "model", _entries(state))
        assert not client.shared_memory
        assert client.commit(job, "s2", 2, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s2", state)


def test_small_chunks_share_a_ring_slot_and_a_slot_is_reused_only_once_all_its_chunks_are_released(tmp_path):
    ring = ckptd._shm.Ring(str(tmp_path), 4096, 2)
    try:
        assert [ring.put(b"a" * 1024) for _ in range(3)] == [0, 1024, 2048]  # one slot, back to back
        assert ring.put(b"b" * 3072) == 4096  # does not fit the rest of slot 0: slot 1
        got = []
        t = threading.Thread(target=lambda: got.append(ring.put(b"c" * 3072)))
        t.start()
        t.join(0.3)
        assert t.is_alive(), "both slots hold unreleased chunks: the writer waits"
        ring.release(2048)  # two of slot 0's three chunks: the slot is still in use
        t.join(0.3)
        assert t.is_alive()
        ring.release(3072)  # slot 0 whole
        t.join(5)
        assert got == [0]
        assert bytes(ring.view(0, 3072)) == b"c" * 3072 and bytes(ring.view(4096, 3072)) == b"b" * 3072
    finally:
        ring.close()


def _daemon_ring_fds(pid, shm):
    """The rings (memfds, files of ``shm``) process ``pid`` holds open."""
    names = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            name = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if "ckptd-ring-" in name or name.startswith(str(shm) + "/"):
            names.append(name)
    return names


def test_rings_are_anonymous_memfds_and_the_daemon_keeps_none_of_them(start_daemon, tmp_path, job, monkeypatch):
    made = []
    real_ring = ckptd._shm.Ring

    def recording_ring(*args, **kwargs):
        ring = real_ring(*args, **kwargs)
        made.append((kwargs.get("purpose"), ring.handle, ring.path, os.readlink(f"/proc/self/fd/{ring.handle[1]}")))
        return ring

    monkeypatch.setattr(ckptd._shm, "Ring", recording_ring)
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    state = _state()
    with ckptd.CkptdClient(d.address, chunk_bytes=64 << 10, shared_memory_dir=str(shm)) as client:
        res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))
        assert _daemon_ring_fds(d.proc.pid, shm) == []  # closed before the result was sent
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s1", state)
        assert _daemon_ring_fds(d.proc.pid, shm) == []  # closed before the stream ended
        assert client.shared_memory and client._shm_anonymous  # no fallback of either kind
    assert [m[0] for m in made] == ["save", "load"]
    for purpose, handle, path, name in made:
        pid, fd, token = handle
        assert pid == os.getpid() and path is None and len(token) == 32 and int(token, 16) >= 0
        assert name == f"/memfd:ckptd-ring-{token} (deleted)"
    assert made[0][1][2] != made[1][1][2]  # a fresh token per ring
    assert os.listdir(shm) == []  # never a name


def test_a_daemon_that_predates_handles_gets_the_bytes_on_the_stream_then_ring_files(tmp_path):
    """A daemon older than SharedMemoryHandle ignores the handle and never says it opened it:
    the save sends its bytes in Chunk messages on the same stream, and the next one names a
    ring file. Its LoadShared refuses a start without a path: the load names a ring file."""
    from concurrent import futures

    import grpc

    from ckptd._proto import checkpoint_service_pb2 as pb
    from ckptd._proto import checkpoint_service_pb2_grpc as pb_grpc

    saves = []
    loads = []

    class BeforeHandles(pb_grpc.CheckpointServiceServicer):
        def SaveShared(self, request_iterator, context):
            it = iter(request_iterator)
            header = next(it).request.header
            ring = open(header.shared_memory_path, "rb") if header.shared_memory_path else None
            yield pb.SaveSharedResponse(progress=pb.SaveProgress(shared_bytes_released=0))
            data, kinds, released = [], [], 0
            for r in it:
                kind = r.request.WhichOneof("msg")
                kinds.append(kind)
                if kind == "chunk":
                    data.append(r.request.chunk.data)
                elif kind == "shared_chunk":
                    if ring is None:
                        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a shared_chunk arrived but the header named no shared_memory_path")
                    c = r.request.shared_chunk
                    ring.seek(c.offset)
                    data.append(ring.read(c.length))
                    released += c.length
                    yield pb.SaveSharedResponse(progress=pb.SaveProgress(shared_bytes_released=released))
            saves.append((header.shared_memory_path, set(kinds), b"".join(data)))
            n = sum(map(len, data))
            yield pb.SaveSharedResponse(result=pb.SaveResponse(bytes_received=n, bytes_stored=n, entry_count=1, attempt=1))

        def LoadShared(self, request_iterator, context):
            # Sees neither a path nor the (unknown) handle: refused, as before handles.
            start = next(iter(request_iterator)).start
            loads.append(start.shared_memory_path)
            if not start.shared_memory_path:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              '"" is not a file directly in /dev/shm; shared memory unavailable')
            data = saves[0][2]
            with open(start.shared_memory_path, "r+b") as ring:
                ring.write(data)
            yield pb.LoadSharedResponse(response=pb.LoadResponse(plan=pb.LoadPlan(total_bytes=len(data))))
            yield pb.LoadSharedResponse(response=pb.LoadResponse(entry=pb.LoadEntry(
                item="model", key="x", tensor=pb.TensorSpec(dtype=pb.DTYPE_FLOAT32, shape=[len(data) // 4]),
                size_bytes=len(data), target_device="cpu")))
            yield pb.LoadSharedResponse(response=pb.LoadResponse(shared_chunk=pb.SharedChunk(offset=0, length=len(data))))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CheckpointServiceServicer_to_server(BeforeHandles(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    x = np.arange(1 << 19, dtype=np.float32)  # over BATCH_ENTRY_BYTES: in chunks, not in an EntryBatch
    try:
        with ckptd.CkptdClient(f"127.0.0.1:{port}", chunk_bytes=64 << 10, shared_memory_dir=str(tmp_path)) as client:
            assert client._shm_anonymous
            assert client.save("j", "c", 1, 0, 1, "model", [ckptd.TensorEntry("x", x)]).bytes_received == x.nbytes
            assert client.shared_memory and not client._shm_anonymous
            assert client.save("j", "c", 1, 0, 1, "more", [ckptd.TensorEntry("x", x + 1)]).bytes_received == x.nbytes
            assert client.shared_memory and not client._shm_anonymous
        with ckptd.CkptdClient(f"127.0.0.1:{port}", shared_memory_dir=str(tmp_path)) as client:
            loaded = client.load_items("j", "c", rank=0)  # a memfd ring refused, then a ring file
            assert np.array_equal(loaded.items["model"]["x"].value.numpy(), x)
            assert client.shared_memory and not client._shm_anonymous
    finally:
        server.stop(None)
    assert len(loads) == 2 and loads[0] == "" and loads[1].startswith(str(tmp_path))
    assert saves[0][0] == "" and "shared_chunk" not in saves[0][1] and saves[0][2] == x.tobytes()
    assert saves[1][0].startswith(str(tmp_path)) and "chunk" not in saves[1][1] and saves[1][2] == (x + 1).tobytes()
    assert os.listdir(tmp_path) == []


def _counting_crc(monkeypatch):
    """Counts the bytes the client checksums (ckptd._crc.crc32c)."""
    import ckptd._crc
    import ckptd.client

    counted = [0]
    real = ckptd._crc.crc32c

    def crc32c(data, value=0):
        counted[0] += len(memoryview(data).cast("B"))
        return real(data, value)

    monkeypatch.setattr(ckptd.client._crc, "crc32c", crc32c)
    return counted


def test_shared_chunks_go_without_a_client_crc_and_load_bit_exact(start_daemon, tmp_path, job, monkeypatch):
    """The daemon checksums what it copies out of the ring and says so: the client skips its
    CRC pass over the bytes it puts there (a trainer's CPU), and the data loads bit-exact."""
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    counted = _counting_crc(monkeypatch)
    g = torch.Generator().manual_seed(5)
    # Entries of every daemon path: small (batched), packed raw / compressible, large.
    state = {"w": torch.randn(1000, 1500, generator=g), "packed": torch.randn(150_000, generator=g),
             "zeros": torch.zeros(200_000), "step": torch.tensor(3), "bias": torch.randn(100, generator=g)}
    shared = sum(t.numel() * t.element_size() for t in state.values() if t.numel() * t.element_size() > 64 << 10)
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        res = client.save(job, "s1", 1, 0, 1, "model", _entries(state))
        assert counted[0] < 4096  # the batched entries' bytes only
        assert client.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s1", state)
        # Asked for, the client checksums every chunk again, and the daemon verifies each.
        client.verify_shared_saves = True
        counted[0] = 0
        res = client.save(job, "s2", 2, 0, 1, "model", _entries(state))
        assert counted[0] >= shared
        assert client.commit(job, "s2", 2, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check_load(client, job, "s2", state)
        assert client.shared_memory


def test_a_daemon_that_predates_unchecked_shared_chunks_gets_a_crc_with_each(tmp_path):
    """A daemon whose progress does not set shared_chunk_crc_optional expects a CRC of every
    shared chunk and every byte in the trailer's CRC: the client sends them."""
    from concurrent import futures

    import grpc

    import ckptd._crc
    from ckptd._proto import checkpoint_service_pb2 as pb
    from ckptd._proto import checkpoint_service_pb2_grpc as pb_grpc

    seen = {"shared": 0, "checked": 0, "trailer_ok": False}

    class OlderDaemon(pb_grpc.CheckpointServiceServicer):
        def SaveShared(self, request_iterator, context):
            ring = None
            running = 0
            released = 0
            for wrapped in request_iterator:
                r = wrapped.request
                kind = r.WhichOneof("msg")
                if kind == "header":
                    ring = open(r.header.shared_memory_path, "rb")
                    yield pb.SaveSharedResponse(progress=pb.SaveProgress(shared_bytes_released=0))
                elif kind == "shared_chunk":
                    c = r.shared_chunk
                    ring.seek(c.offset)
                    data = ring.read(c.length)
                    seen["shared"] += 1
                    if c.HasField("crc32c") and ckptd._crc.crc32c(data) == c.crc32c:
                        seen["checked"] += 1
                    running = ckptd._crc.crc32c(data, running)
                    released += c.length
                    yield pb.SaveSharedResponse(progress=pb.SaveProgress(shared_bytes_released=released))
                elif kind == "entry_batch":
                    for e in r.entry_batch.entries:
                        running = ckptd._crc.crc32c(e.data, running)
                elif kind == "trailer":
                    seen["trailer_ok"] = r.trailer.crc32c == running
                    yield pb.SaveSharedResponse(result=pb.SaveResponse(
                        bytes_received=r.trailer.byte_count, bytes_stored=r.trailer.byte_count,
                        entry_count=r.trailer.entry_count, attempt=1))
            ring.close()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CheckpointServiceServicer_to_server(OlderDaemon(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with ckptd.CkptdClient(f"127.0.0.1:{port}", chunk_bytes=256 << 10, shared_memory_dir=str(tmp_path)) as client:
            client._shm_anonymous = False  # this stand-in opens ring files by path
            state = {"w": torch.randn(300_000), "b": torch.randn(10)}
            res = client.save("j", "c", 1, 0, 1, "model", _entries(state))
            assert res.bytes_received == 4 * 300_010
            assert client.shared_memory
    finally:
        server.stop(None)
    assert seen["shared"] == 5 and seen["checked"] == 5 and seen["trailer_ok"]
