"""A stock grpcio stub, as a user who never saw our client would write it: a channel with
default options (4 MiB receive limit), the generated messages, 4 MiB chunks on Save, and a
Load read to the end. Every message the daemon sends must fit that limit, whatever chunk
size the saver used, and every Load chunk carries a CRC-32C the stub can check."""
import os

import crc32c
import grpc

from ckptd._proto import checkpoint_service_pb2 as pb
from ckptd._proto import checkpoint_service_pb2_grpc as pb_grpc

MiB = 1 << 20
DEFAULT_RECEIVE_LIMIT = 4 * MiB


def _save_requests(job, data, chunk):
    yield pb.SaveRequest(header=pb.SaveHeader(job=job, checkpoint_id="step1", step=1, rank=0, world_size=1,
                                              item="model"))
    yield pb.SaveRequest(entry=pb.EntryHeader(key="w", tensor=pb.TensorSpec(
        dtype=pb.DTYPE_UINT8, shape=[len(data)], device="cpu")))
    for off in range(0, len(data), chunk):
        piece = data[off:off + chunk]
        yield pb.SaveRequest(chunk=pb.Chunk(data=piece, crc32c=crc32c.crc32c(piece)))
    yield pb.SaveRequest(trailer=pb.SaveTrailer(entry_count=1, byte_count=len(data), crc32c=crc32c.crc32c(data)))


def test_default_channel_saves_4mib_chunks_and_loads_them(daemon, job):
    # Incompressible, so each stored chunk is a raw 4 MiB frame: the largest a Load can send.
    data = os.urandom(10 * MiB + 123)
    with grpc.insecure_channel(daemon) as channel:
        stub = pb_grpc.CheckpointServiceStub(channel)
        res = stub.Save(_save_requests(job, data, 4 * MiB), timeout=60)
        assert res.bytes_received == len(data)
        decision = stub.Commit(pb.CommitRequest(job=job, checkpoint_id="step1", step=1, rank=0, world_size=1,
                                                items=["model"]), timeout=60)
        assert decision.outcome == pb.COMMIT_OUTCOME_COMMITTED

        got = bytearray()
        largest = 0
        for msg in stub.Load(pb.LoadRequest(job=job, checkpoint_id="latest", rank=0), timeout=60):
            largest = max(largest, msg.ByteSize())
            kind = msg.WhichOneof("msg")
            if kind == "chunk":
                assert msg.chunk.HasField("crc32c"), "every Load chunk carries its CRC-32C"
                assert crc32c.crc32c(msg.chunk.data) == msg.chunk.crc32c
                got += msg.chunk.data
        assert bytes(got) == data
        assert largest < DEFAULT_RECEIVE_LIMIT
