"""torch.distributed.checkpoint on ckptd (ckptd.dcp.Writer / Reader): 2 ranks (gloo,
torch.multiprocessing.spawn) save ShardedTensors (ChunkShardingSpec), a plain tensor and
non-tensor values; 1 and 4 ranks load them back bit-exact; a save where one rank fails does
not commit."""

import socket

import pytest
import torch

import ckptd
from _dcp_workers import SHARDED, dcp_load, dcp_save, engine_load_sharded, engine_save_sharded, globals_
from _workers import ok, run_ranks, spawn_ranks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_loaded(got, world: int) -> None:
    g = globals_()
    assert got["step"] == 5 and got["meta"] == {"lr": 0.5, "name": "run-a"}
    assert got["plain"] == g["plain"].view(torch.int16).numpy().tobytes()
    assert got["count"] == 41
    for key, (shape, dim, _) in SHARDED.items():
        for offsets, sizes, data in got[key]:
            box = g[key]
            for d, (o, n) in enumerate(zip(offsets, sizes)):
                box = box.narrow(d, o, n)
            assert box.contiguous().numpy().tobytes() == data, f"world {world}: {key} box {offsets} {sizes}"


def test_dcp_two_ranks_save_one_and_four_ranks_load_bit_exact(daemon, job):
    # Ranks started by torch.multiprocessing.spawn, as DCP users launch them.
    results = spawn_ranks(dcp_save, 2, daemon, job, 5, 2, _free_port())
    for r in range(2):
        assert ok(results, r) == {"committed": True, "rank": r, "world_size": 2}
    ckpt = ckptd.get_checkpoint(job, address=daemon)
    assert (ckpt.checkpoint_id, ckpt.step, ckpt.checkpoint.world_size) == ("5", 5, 2)
    items = {r.rank: sorted(i.name for i in r.items) for r in ckpt.checkpoint.ranks}
    assert items[0] == ["dcp", "dcp.metadata", "dcp.objects"], items
    assert items[1] == ["dcp"], items

    results = spawn_ranks(dcp_load, 1, daemon, job, 1, _free_port(), "latest")
    got = ok(results, 0)
    assert got["checkpoint_id"] == "5"
    assert [s[:2] for s in got["rows"]] == [((0, 0), (10, 6))]
    _check_loaded(got, 1)

    results = spawn_ranks(dcp_load, 4, daemon, job, 4, _free_port(), 5)
    boxes = {}
    for r in range(4):
        got = ok(results, r)
        _check_loaded(got, 4)
        boxes[r] = {k: [s[:2] for s in got[k]] for k in SHARDED}
    # ChunkShardingSpec over 4 ranks: 10 rows as 3+3+3+1, 10 columns as 3+3+3+1.
    assert [boxes[r]["rows"] for r in range(4)] == [[((0, 0), (3, 6))], [((3, 0), (3, 6))], [((6, 0), (3, 6))],
                                                    [((9, 0), (1, 6))]]
    assert [boxes[r]["cols"] for r in range(4)] == [[((0, 0), (5, 3))], [((0, 3), (5, 3))], [((0, 6), (5, 3))],
                                                    [((0, 9), (5, 1))]]


def test_dcp_save_where_one_rank_fails_does_not_commit(daemon, job):
    results, _ = run_ranks(dcp_save, 2, daemon, job, 6, 2, _free_port(), 1)
    for r in range(2):
        got = ok(results, r)
        assert got.get("error") == "CheckpointException", got
        assert "injected failure" in got["message"], got
    with pytest.raises(ckptd.CheckpointNotFound):
        ckptd.get_checkpoint(job, address=daemon)
    # The id is free again: the same checkpoint saved again commits.
    results, _ = run_ranks(dcp_save, 2, daemon, job, 6, 2, _free_port())
    assert all(ok(results, r)["committed"] for r in range(2))


def test_engine_saves_sharded_tensors_and_reshards_them_into_three_ranks(daemon, job):
    results, _ = run_ranks(engine_save_sharded, 2, daemon, job, "global_step9", 2, _free_port())
    assert all(ok(results, r) == {"committed": True} for r in range(2))
    results, _ = run_ranks(engine_load_sharded, 3, daemon, job, "global_step9", 3, _free_port())
    g = globals_()
    for r in range(3):
        got = ok(results, r)
        assert got["step"] == 9 and got["plain"] == g["plain"].view(torch.int16).numpy().tobytes()
        for key, (shape, dim, _) in SHARDED.items():
            ((offsets, sizes, data),) = got[key]
            # ChunkShardingSpec over 3 ranks: 10 as 4+4+2.
            assert offsets[dim] == 4 * r and sizes[dim] == (4 if r < 2 else 2), (key, r, offsets, sizes)
            box = g[key]
            for d, (o, n) in enumerate(zip(offsets, sizes)):
                box = box.narrow(d, o, n)
            assert box.contiguous().numpy().tobytes() == data, f"rank {r}: {key}"
