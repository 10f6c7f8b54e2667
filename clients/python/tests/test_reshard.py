"""Resharding on load: 2 saving ranks, loaded by 1, 3 and 4 ranks through
CkptdClient.load_into, CheckpointEngine.load(into=...) and Snapshot.restore, bit-exact;
and a plain load of sharded tensors into another world size failing loudly."""

import threading
from typing import Any, Dict, List, Tuple

import pytest
import torch

import ckptd

SAVED_WORLD = 2
TAG = "global_step7"


def _globals() -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    return {
        "rows": torch.randn(10, 6, generator=g),  # saved split along dim 0, unevenly (4 + 6 rows)
        "cols": torch.randn(5, 9, generator=g, dtype=torch.float64),  # saved split along dim 1 (5 + 4 columns)
        "ints": torch.randint(-2**31, 2**31 - 1, (7, 8), generator=g, dtype=torch.int32),  # rows 0:3 + 3:7
        "rep": torch.randn(3, 4, generator=g).to(torch.bfloat16),  # replicated: each rank saves it whole
        "scalar": torch.tensor(3.25, dtype=torch.float64),  # a 0-d tensor, replicated
    }


_SAVED_SPLITS = {"rows": (0, [4, 6]), "cols": (1, [5, 4]), "ints": (0, [3, 4])}


def _box(t: torch.Tensor, offsets: Tuple[int, ...], lengths: Tuple[int, ...]) -> torch.Tensor:
    for d, (o, n) in enumerate(zip(offsets, lengths)):
        t = t.narrow(d, o, n)
    return t


def _split(size: int, parts: List[int], rank: int) -> Tuple[int, int]:
    start = sum(parts[:rank])
    return start, parts[rank]


def _saved_state(rank: int) -> Dict[str, Any]:
    """What saving rank ``rank`` (of 2) holds: its shard of each sharded tensor, the
    replicated ones whole, and non-tensor values."""
    g = _globals()
    state: Dict[str, Any] = {"step": 7, "name": "run-a", "opt": {"lr": 0.5, "betas": (0.9, 0.99)}}
    for key, (dim, parts) in _SAVED_SPLITS.items():
        start, n = _split(g[key].shape[dim], parts, rank)
        offsets = [0] * g[key].dim()
        offsets[dim] = start
        local = g[key].narrow(dim, start, n).clone()
        state[key] = ckptd.Shard(local, g[key].shape, offsets)
    state["rep"] = g["rep"].clone()
    state["scalar"] = g["scalar"].clone()
    state["opt"]["rep"] = g["rep"].clone()  # a nested tensor
    return state


def _save_two_ranks(address: str, job: str) -> None:
    """Two ranks (threads, one engine each) save item "model" and commit."""
    errors: List[BaseException] = []

    def rank_main(rank: int) -> None:
        try:
            with ckptd.CheckpointEngine(job=job, address=address, rank=rank, world_size=SAVED_WORLD) as engine:
                engine.create(TAG)
                engine.save(_saved_state(rank), f"{TAG}/model")
                assert engine.commit(TAG)
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(SAVED_WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def _even(size: int, parts: int, i: int) -> Tuple[int, int]:
    """torch.chunk's split: parts of ceil(size / parts), the last ones shorter or empty."""
    step = -(-size // parts)
    start = min(size, i * step)
    return start, min(size, start + step) - start


def _template(world: int, rank: int) -> Tuple[Dict[str, Any], Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]]]:
    """Loading rank ``rank`` of ``world``: a template with garbage in every tensor, and the
    box each sharded key must hold. 1 rank: plain tensors (whole); 3 ranks: rows and ints
    split along dim 0, cols along dim 1; 4 ranks: rows along dim 0, cols and ints on a 2x2
    grid (2-D boxes)."""
    g = _globals()
    boxes: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {}
    t: Dict[str, Any] = {"step": -1, "name": None, "opt": {"lr": 0.0, "betas": None, "rep": torch.zeros(3, 4).to(torch.bfloat16)}}
    for key in _SAVED_SPLITS:
        shape = tuple(g[key].shape)
        if world == 1:
            offsets, lengths = (0, 0), shape
        elif world == 3:
            dim = 1 if key == "cols" else 0
            start, n = _even(shape[dim], 3, rank)
            offsets = (start, 0) if dim == 0 else (0, start)
            lengths = (n, shape[1]) if dim == 0 else (shape[0], n)
        elif key == "rows":
            start, n = _even(shape[0], 4, rank)
            offsets, lengths = (start, 0), (n, shape[1])
        else:
            r0, n0 = _even(shape[0], 2, rank // 2)
            c0, n1 = _even(shape[1], 2, rank % 2)
            offsets, lengths = (r0, c0), (n0, n1)
        boxes[key] = (offsets, lengths)
        garbage = torch.full(lengths, 99, dtype=g[key].dtype)
        t[key] = garbage if world == 1 else ckptd.Shard(garbage, shape, offsets)
    t["rep"] = torch.full((3, 4), 7.0).to(torch.bfloat16)
    t["scalar"] = torch.tensor(0.0, dtype=torch.float64)
    return t, boxes


def _check_filled(t: Dict[str, Any], boxes, world: int, rank: int) -> None:
    g = _globals()
    for key, (offsets, lengths) in boxes.items():
        got = t[key] if world == 1 else t[key].tensor
        want = _box(g[key], offsets, lengths)
        assert got.dtype == want.dtype and got.shape == want.shape, (world, rank, key)
        assert torch.equal(got, want), f"world {world} rank {rank}: {key} box {offsets} {lengths}"
    assert torch.equal(t["rep"], g["rep"]) and torch.equal(t["opt"]["rep"], g["rep"])
    assert t["scalar"].dtype == torch.float64 and t["scalar"].item() == 3.25
    assert (t["step"], t["name"], t["opt"]["lr"], t["opt"]["betas"]) == (7, "run-a", 0.5, (0.9, 0.99))


@pytest.mark.parametrize("world", [1, 3, 4])
def test_load_into_reshards_two_saved_ranks_into_any_world_size_bit_exact(daemon, job, world):
    _save_two_ranks(daemon, job)
    # World size 3 loads on the gRPC stream, the others through the shared-memory ring (LoadShared).
    with ckptd.CkptdClient(daemon, shared_memory=world != 3) as client:
        assert client.shared_memory == (world != 3)
        for rank in range(world):
            template, boxes = _template(world, rank)
            tensors_before = {k: (v.tensor if isinstance(v, ckptd.Shard) else v) for k, v in template.items()
                              if isinstance(v, (torch.Tensor, ckptd.Shard))}
            out = client.load_into(job, "latest", template, item="model", rank=rank, world_size=world)
            assert out is template
            for k, tensor in tensors_before.items():  # filled in place: the caller's own tensors
                assert (template[k].tensor if isinstance(template[k], ckptd.Shard) else template[k]) is tensor
            _check_filled(template, boxes, world, rank)


def test_load_into_splits_boxes_past_the_daemon_limit_into_several_loads(daemon, job, monkeypatch):
    _save_two_ranks(daemon, job)
    monkeypatch.setattr(ckptd.client, "MAX_LOAD_BOXES", 2)
    with ckptd.CkptdClient(daemon) as client:
        calls = []
        real = client.load_items

        def counting(*args, **kwargs):
            calls.append(len(kwargs["boxes"]))
            return real(*args, **kwargs)

        client.load_items = counting
        template, boxes = _template(3, 1)
        client.load_into(job, TAG, template, item="model", rank=1, world_size=3)
        _check_filled(template, boxes, 3, 1)
        # rows, cols, ints, opt/rep, rep, scalar and the structure: 7 boxes, at most 2 per Load, in order.
        assert calls == [2, 2, 2, 1]


def test_engine_load_into_reshards_and_a_plain_load_into_another_world_size_fails_loudly(daemon, job):
    _save_two_ranks(daemon, job)
    for rank in range(4):
        with ckptd.CheckpointEngine(job=job, address=daemon, rank=rank, world_size=4) as engine:
            template, boxes = _template(4, rank)
            assert engine.load(f"{TAG}/model", into=template) is template
            _check_filled(template, boxes, 4, rank)
            with pytest.raises(ckptd.FailedPrecondition) as err:
                engine.load(f"{TAG}/model")
            assert "load_into" in err.value.message and "into=" in err.value.message, err.value.message
    # The saving world size still loads each rank's own shard, exactly as saved.
    with ckptd.CheckpointEngine(job=job, address=daemon, rank=1, world_size=SAVED_WORLD) as engine:
        state = engine.load(f"{TAG}/model")
        assert isinstance(state["rows"], ckptd.Shard) and state["rows"].offsets == (4, 0)
        assert torch.equal(state["rows"].tensor, _globals()["rows"][4:10])


def test_load_into_checks_dtype_shape_and_keys(daemon, job):
    _save_two_ranks(daemon, job)
    with ckptd.CkptdClient(daemon) as client:
        template, _ = _template(1, 0)
        template["rows"] = torch.zeros(10, 6, dtype=torch.float64)
        with pytest.raises(ckptd.InvalidArgument, match="rows.*float32.*float64"):
            client.load_into(job, TAG, template, item="model", world_size=1)
        template, _ = _template(1, 0)
        template["cols"] = torch.zeros(5, 8, dtype=torch.float64)
        with pytest.raises(ckptd.InvalidArgument, match=r"cols.*\[5, 9\].*\[5, 8\]"):
            client.load_into(job, TAG, template, item="model", world_size=1)
        template, _ = _template(1, 0)
        template["missing"] = torch.zeros(2)
        with pytest.raises(ckptd.CheckpointNotFound, match="missing"):
            client.load_into(job, TAG, template, item="model", world_size=1)
        template, _ = _template(3, 0)
        template["rows"] = ckptd.Shard(torch.zeros(4, 6), (10, 7), (0, 0))
        with pytest.raises(ckptd.InvalidArgument, match=r"rows.*\[10, 6\].*global shape.*\[10, 7\]"):
            client.load_into(job, TAG, template, item="model", world_size=3)
        template, _ = _template(1, 0)
        template["opt"] = None  # the saved "opt" holds the tensor "opt/rep"
        with pytest.raises(ckptd.InvalidArgument, match="opt.*holds tensor entry 'opt/rep'"):
            client.load_into(job, TAG, template, item="model", world_size=1)
        template, _ = _template(1, 0)
        template["rows"] = 5  # a tensor in the checkpoint
        with pytest.raises(ckptd.InvalidArgument, match="'rows' is a tensor in the checkpoint"):
            client.load_into(job, TAG, template, item="model", world_size=1)
    with pytest.raises(ckptd.InvalidArgument, match="does not fit"):
        ckptd.Shard(torch.zeros(4, 6), (10, 6), (8, 0))  # rows 8..12 of 10


class _Holder:
    """An app-state object with state_dict()/load_state_dict(), holding Shards."""

    def __init__(self, state: Dict[str, Any]):
        self.state = state
        self.loaded: Any = None

    def state_dict(self) -> Dict[str, Any]:
        return self.state

    def load_state_dict(self, sd: Dict[str, Any]) -> None:
        self.loaded = sd


def test_snapshot_restore_reshards_when_the_world_size_differs(daemon, job):
    errors: List[BaseException] = []

    def save(rank: int) -> None:
        try:
            opt = ckptd.StateDict(state={0: {"momentum": torch.arange(4.0)}}, lr=0.1)  # replicated, unsharded
            snap = ckptd.Snapshot(job, {"model": _Holder(_saved_state(rank)), "opt": opt}, address=daemon,
                                  rank=rank, world_size=SAVED_WORLD)
            snap.step = 7
            snap.save(7)
            snap.close()
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(r,)) for r in range(SAVED_WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for rank in range(3):
        template, boxes = _template(3, rank)
        holder = _Holder(template)
        fresh_opt = ckptd.StateDict()  # as a fresh optimizer: no tensors to fill, restored as saved
        snap = ckptd.Snapshot(job, {"model": holder, "opt": fresh_opt}, address=daemon, rank=rank, world_size=3)
        snap.restore(7)
        assert holder.loaded is template, "load_state_dict got the template, filled"
        _check_filled(template, boxes, 3, rank)
        assert fresh_opt["lr"] == 0.1 and torch.equal(fresh_opt["state"][0]["momentum"], torch.arange(4.0))
        assert snap.step == 7 and snap.restored_checkpoint == "7"
        snap.close()


@pytest.mark.parametrize("shared_memory", [True, False])
def test_load_items_shard_as_streams_every_entry_as_a_rank_of_the_new_sharding(daemon, job, shared_memory):
    _save_two_ranks(daemon, job)
    g = _globals()
    with ckptd.CkptdClient(daemon, shared_memory=shared_memory) as client:
        for rank in range(3):
            loaded = client.load_items(job, TAG, rank=rank, world_size=3, items=["model"],
                                       shard_as=ckptd.ShardAs(rank, 3), place=False)
            assert loaded.plan.resharded
            entries = loaded.items["model"]
            for key, (dim, _) in _SAVED_SPLITS.items():  # split along the dimension it was saved split along
                start, n = _even(g[key].shape[dim], 3, rank)
                want = g[key].narrow(dim, start, n)
                got = entries[key]
                assert torch.equal(got.value, want), (rank, key)
                offsets = [0, 0]
                offsets[dim] = start
                assert (list(got.global_shape), list(got.global_offsets)) == (list(g[key].shape), offsets)
            assert torch.equal(entries["rep"].value, g["rep"]) and torch.equal(entries["scalar"].value, g["scalar"])
            assert ckptd.STRUCTURE_KEY in entries  # objects stream whole
        with pytest.raises(ckptd.InvalidArgument, match="either by boxes or by shard_as"):
            client.load_items(job, TAG, boxes=[ckptd.TensorBox("model", "rows")], shard_as=ckptd.ShardAs(0, 3))
        with pytest.raises(ckptd.InvalidArgument, match=r"shard_as: rank 3 is not in \[0, world size 3\)"):
            client.load_items(job, TAG, shard_as=ckptd.ShardAs(3, 3))
