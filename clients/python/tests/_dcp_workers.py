"""Ranks of the ShardedTensor tests (run in fresh processes by _workers.run_ranks):
torch.distributed.checkpoint with ckptd.dcp.Writer / Reader, and the CheckpointEngine
saving ShardedTensors and resharding them into ShardedTensor templates. Tensors are split
by ChunkShardingSpec; the state dicts hold plain tensors and non-tensor values too."""

from __future__ import annotations

import os
from typing import Any, Dict

#: Global shape and sharded dimension of each ShardedTensor of the state dict.
SHARDED = {"rows": ((10, 6), 0, "float32"), "cols": ((5, 10), 1, "float64")}


def globals_():
    import torch
    g = torch.Generator().manual_seed(77)
    out = {}
    for key, (shape, _, dtype) in SHARDED.items():
        out[key] = torch.randn(*shape, generator=g, dtype=getattr(torch, dtype))
    out["plain"] = torch.randn(3, 4, generator=g).to(torch.bfloat16)
    out["count"] = torch.tensor(41, dtype=torch.int64)
    return out


def _init(rank: int, world: int, port: int) -> None:
    import torch.distributed as dist
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _sharded(key: str, world: int, rank: int, fill):
    """A ShardedTensor of ``key`` split across ``world`` ranks by ChunkShardingSpec, its
    local shard filled by ``fill(global_box)``."""
    import torch
    from torch.distributed._shard import sharded_tensor
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec
    shape, dim, dtype = SHARDED[key]
    spec = ChunkShardingSpec(dim=dim, placements=[f"rank:{r}/cpu" for r in range(world)])
    st = sharded_tensor.empty(spec, *shape, dtype=getattr(torch, dtype))
    for shard in st.local_shards():
        md = shard.metadata
        box = globals_()[key]
        for d, (o, n) in enumerate(zip(md.shard_offsets, md.shard_sizes)):
            box = box.narrow(d, o, n)
        shard.tensor.copy_(fill(box))
    return st


def dcp_save(rank: int, address: str, job: str, step: int, world: int, port: int, fail_rank: int = -1) -> Dict[str, Any]:
    import ckptd.dcp
    dcp = ckptd.dcp.import_dcp()
    _init(rank, world, port)
    g = globals_()
    state = {key: _sharded(key, world, rank, lambda box: box) for key in SHARDED}
    state["plain"] = g["plain"].clone()
    state["count"] = g["count"].clone()
    state["step"] = step
    state["meta"] = {"lr": 0.5, "name": "run-a"}
    planner = None
    if rank == fail_rank:
        class FailingPlanner(dcp.default_planner.DefaultSavePlanner):
            def resolve_data(self, write_item):
                raise RuntimeError(f"injected failure resolving {write_item.index.fqn} on rank {rank}")
        planner = FailingPlanner()
    import torch.distributed as dist
    writer = ckptd.dcp.Writer(job, step, address=address)
    try:
        dcp.save_state_dict(state, storage_writer=writer, planner=planner)
    except BaseException as exc:  # noqa: BLE001 - reported to the test (CheckpointException is one)
        writer.close()
        dist.barrier()  # no rank leaves (closing its gloo connections) while another is in a collective
        return {"error": type(exc).__name__, "message": str(exc)}
    decision = writer.result(timeout=60)
    writer.close()
    dist.barrier()
    return {"committed": decision.committed, "rank": writer.rank, "world_size": writer.world_size}


def dcp_load(rank: int, address: str, job: str, world: int, port: int, checkpoint_id: Any) -> Dict[str, Any]:
    """Loads into ``world`` ranks (1: no process group, plain tensors) and returns each
    loaded tensor's box and bytes, and the non-tensor values."""
    import torch
    import ckptd.dcp
    dcp = ckptd.dcp.import_dcp()
    if world == 1:
        state: Dict[str, Any] = {key: torch.full(shape, 99, dtype=getattr(torch, dtype))
                                 for key, (shape, _, dtype) in SHARDED.items()}
    else:
        _init(rank, world, port)
        state = {key: _sharded(key, world, rank, lambda box: torch.full_like(box, 99)) for key in SHARDED}
    state["plain"] = torch.zeros(3, 4, dtype=torch.bfloat16)
    state["count"] = torch.tensor(0, dtype=torch.int64)
    state["step"] = None
    state["meta"] = None
    reader = ckptd.dcp.Reader(job, checkpoint_id, address=address)
    dcp.load_state_dict(state, storage_reader=reader, no_dist=(world == 1))
    reader.close()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    out: Dict[str, Any] = {"checkpoint_id": reader.checkpoint_id, "step": state["step"], "meta": state["meta"],
                           "plain": state["plain"].view(torch.int16).numpy().tobytes(), "count": int(state["count"])}
    for key in SHARDED:
        value = state[key]
        if not hasattr(value, "local_shards"):  # a ShardedTensor is a torch.Tensor too
            out[key] = [((0,) * value.dim(), tuple(value.shape), value.numpy().tobytes())]
        else:
            out[key] = [(tuple(s.metadata.shard_offsets), tuple(s.metadata.shard_sizes), s.tensor.numpy().tobytes())
                        for s in value.local_shards()]
    return out


def engine_save_sharded(rank: int, address: str, job: str, tag: str, world: int, port: int) -> Dict[str, Any]:
    """Saves a state dict holding ShardedTensors with the CheckpointEngine (one item per rank)."""
    import ckptd
    from ckptd._compat import import_dcp
    import_dcp()
    _init(rank, world, port)
    state = {key: _sharded(key, world, rank, lambda box: box) for key in SHARDED}
    state["plain"] = globals_()["plain"].clone()
    state["step"] = 9
    with ckptd.CheckpointEngine(job=job, address=address) as engine:
        engine.create(tag)
        engine.save(state, f"{tag}/model")
        committed = engine.commit(tag)
    import torch.distributed as dist
    dist.barrier()
    return {"committed": committed}


def engine_load_sharded(rank: int, address: str, job: str, tag: str, world: int, port: int) -> Dict[str, Any]:
    """Loads into ShardedTensor templates of another world size with CheckpointEngine.load(into=...)."""
    import torch
    import ckptd
    from ckptd._compat import import_dcp
    import_dcp()
    _init(rank, world, port)
    template = {key: _sharded(key, world, rank, lambda box: torch.full_like(box, 99)) for key in SHARDED}
    template["plain"] = torch.zeros(3, 4, dtype=torch.bfloat16)
    template["step"] = None
    with ckptd.CheckpointEngine(job=job, address=address) as engine:
        assert engine.world_size == world
        engine.load(f"{tag}/model", into=template)
    import torch.distributed as dist
    dist.barrier()
    out: Dict[str, Any] = {"step": template["step"], "plain": template["plain"].view(torch.int16).numpy().tobytes()}
    for key in SHARDED:
        out[key] = [(tuple(s.metadata.shard_offsets), tuple(s.metadata.shard_sizes), s.tensor.numpy().tobytes())
                    for s in template[key].local_shards()]
    return out
