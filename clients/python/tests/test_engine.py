"""CheckpointEngine (DeepSpeed's interface): multi-process saves and restores, device
hints, the two-phase commit when a rank dies, and errors."""

import json
import socket
import threading

import grpc
import pytest
import torch

import ckptd
from _workers import SHARED_ITEM, load_training_state, ok, run_ranks, save_training_state

WORLD = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_four_ranks_save_and_fresh_ranks_restore_bit_exact(daemon, job, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    tag = "global_step100"
    results, codes = run_ranks(save_training_state, WORLD, daemon, job, tag, WORLD)
    for r in range(WORLD):
        # Rank and world size came from torch.distributed (gloo), not from arguments.
        assert ok(results, r) == {"committed": True, "rank": r, "world_size": WORLD}

    ckpt = ckptd.get_checkpoint(job, address=daemon)
    assert (ckpt.checkpoint_id, ckpt.step, ckpt.checkpoint.world_size) == (tag, 100, WORLD)
    items = {r.rank: sorted(i.name for i in r.items) for r in ckpt.checkpoint.ranks}
    assert items[0] == sorted([SHARED_ITEM, "rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"])
    assert items[3] == sorted(["rank_03_model_states.pt", "zero_pp_rank_3_mp_rank_00_optim_states.pt"])

    results, codes = run_ranks(load_training_state, WORLD, daemon, job, tag, WORLD)
    for r in range(WORLD):
        got = ok(results, r)
        assert got["rank"] == r
        assert got["shared_from"] == 0, "every rank reads the item only rank 0 wrote"
        assert got["noncontiguous_is_contiguous"] is True


def test_rank_dying_before_commit_aborts_the_checkpoint_for_the_others(start_daemon, job, monkeypatch):
    address = start_daemon("--prepare-timeout-ms", "2000").address
    results, _ = run_ranks(save_training_state, WORLD, address, job, "global_step1", WORLD, -1, False)
    assert all(ok(results, r)["committed"] for r in range(WORLD))

    results, codes = run_ranks(save_training_state, WORLD, address, job, "global_step2", WORLD, 2, False)
    assert codes[2] == 3 and 2 not in results, "rank 2 died before voting"
    for r in (0, 1, 3):
        got = ok(results, r)
        assert got["code"] == "ABORTED" and got["aborted"], got
        assert "global_step2" in got["message"]

    latest = ckptd.get_checkpoint(job, address=address)
    assert (latest.checkpoint_id, latest.step) == ("global_step1", 1)
    assert ckptd.get_checkpoint(job, 2, missing_ok=True, address=address) is None
    with pytest.raises(ckptd.CheckpointNotFound):
        ckptd.get_checkpoint(job, 2, address=address)
    engine = ckptd.CheckpointEngine(job=job, address=address, rank=0, world_size=WORLD)
    assert engine.load(SHARED_ITEM)["global_steps"] == 100  # "latest" is still global_step1
    assert engine.last_placement.checkpoint_id == "global_step1"
    engine.close()


def _save_on_fake_gpus(address, job, tag="global_step5"):
    """Saves tensors recorded as living on cuda:1 (no GPU here: the device is overridden)."""
    state = {"w": torch.randn(64, 32), "b": torch.randn(32).to(torch.bfloat16), "step": torch.tensor(5), "lr": 0.1}
    engine = ckptd.CheckpointEngine(job=job, address=address, rank=0, world_size=1, devices=[])
    engine.create(tag)
    engine.save(state, f"{tag}/model", device="cuda:1")
    engine.commit(tag)
    return engine, state


def test_load_follows_the_daemon_hint_without_map_location(daemon, job):
    engine, state = _save_on_fake_gpus(daemon, job)
    ckpt = engine.client.get_checkpoint(job, "global_step5", full=True)
    assert {e.key: e.tensor.device for e in ckpt.ranks[0].items[0].entries if e.WhichOneof("kind") == "tensor"} == \
        {"w": "cuda:1", "b": "cuda:1", "step": "cuda:1"}

    loaded = engine.load("global_step5/model")  # a CPU-only loader: devices=[]
    assert all(loaded[k].device.type == "cpu" for k in ("w", "b", "step"))
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"]) and loaded["lr"] == 0.1
    assert engine.last_placement.map_location == {"cuda:1": "cpu"}
    assert engine.last_placement.targets["w"] == ("cuda:1", "cpu")
    engine.close()


def test_the_daemon_maps_saved_gpus_onto_the_loaders_devices(daemon, job):
    engine, _ = _save_on_fake_gpus(daemon, job)
    # What a loader with two GPUs and local rank 0 would be told (the plan only: there is no GPU to load onto).
    stream = engine.client.load(job, "global_step5", rank=0, local_rank=0, devices=["cuda:0", "cuda:1"], items=["model"])
    plan = next(iter(stream)).plan
    stream.close()
    assert dict(plan.map_location) == {"cuda:1": "cuda:0"}
    assert {p.key: p.target_device for p in plan.placements} == {"w": "cuda:0", "b": "cuda:0", "step": "cuda:0"}
    engine.close()


def test_an_explicit_map_location_overrides_the_hints(daemon, job):
    engine, state = _save_on_fake_gpus(daemon, job)
    # Claims a GPU, so the hint alone would be cuda:0; each explicit mapping wins.
    gpu_engine = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1, devices=["cuda:0"])

    loaded = gpu_engine.load("global_step5/model", map_location={"cuda:1": "cpu"})
    assert loaded["w"].device.type == "cpu" and torch.equal(loaded["w"], state["w"])
    assert gpu_engine.last_placement.map_location == {"cuda:1": "cpu"}

    for where in ("cpu", torch.device("cpu")):
        loaded = gpu_engine.load("global_step5/model", map_location=where)
        assert loaded["b"].device.type == "cpu" and torch.equal(loaded["b"], state["b"])

    calls = []

    def to_cpu(tensor, location):
        calls.append((location, tensor.device.type))
        return tensor.clone()

    loaded = gpu_engine.load("global_step5/model", map_location=to_cpu)
    assert sorted(calls) == [("cuda:1", "cpu")] * 3
    assert torch.equal(loaded["w"], state["w"]) and loaded["w"].device.type == "cpu"
    assert gpu_engine.last_placement.map_location == {"cuda:1": "cuda:0"}, "the daemon's hint is still reported"
    gpu_engine.close()
    engine.close()


def test_wire_level_entries_carry_any_device_string(daemon, job):
    with ckptd.CkptdClient(daemon) as client:
        res = client.save(job, "s7", 7, 0, 1, "shard", [
            ckptd.TensorEntry("x", torch.arange(8, dtype=torch.int16), device="cuda:3",
                              global_shape=[16], global_offsets=[8]),
            ckptd.ObjectEntry("meta", b'{"a": 1}', "json"),
        ])
        client.commit(job, "s7", 7, 0, 1, ["shard"], res.attempt)
        loaded = client.load_items(job, "s7", devices=[], local_rank=0)
    x = loaded.items["shard"]["x"]
    assert (x.saved_device, x.target_device, x.value.device.type) == ("cuda:3", "cpu", "cpu")
    assert (list(x.global_shape), list(x.global_offsets)) == ([16], [8])
    assert ckptd.unflatten(loaded.items["shard"]) == {"x": x.value, "meta": {"a": 1}}


def test_daemon_statuses_become_exceptions_with_the_daemons_message(daemon, job):
    with ckptd.CkptdClient(daemon) as client:
        with pytest.raises(ckptd.CheckpointNotFound) as e:
            client.get_checkpoint(job, "latest")
        assert e.value.code == grpc.StatusCode.NOT_FOUND and job in e.value.message

        with pytest.raises(ckptd.InvalidArgument) as e:
            client.save("../etc", "s1", 1, 0, 1, "m", [])
        assert "job" in e.value.message and isinstance(e.value, ValueError)

        with pytest.raises(ckptd.InvalidArgument):
            client.save(job, "s1", 1, 4, 2, "m", [])  # rank >= world size

        res = client.save(job, "s1", 1, 0, 1, "m", [ckptd.TensorEntry("t", torch.ones(3))])
        with pytest.raises(ckptd.AlreadyExists):
            client.save(job, "s1", 1, 0, 1, "m", [ckptd.TensorEntry("t", torch.ones(3))])
        client.commit(job, "s1", 1, 0, 1, ["m"], res.attempt)
        with pytest.raises(ckptd.FailedPrecondition) as e:
            client.save(job, "s1", 1, 0, 1, "m2", [])
        assert "committed" in e.value.message

        # A vote naming an item that was never staged aborts, and the engine raises.
        engine = ckptd.CheckpointEngine(job=job, client=client, rank=0, world_size=1)
        engine.create("s2")
        engine._pending["s2"].items.add("never-saved")
        with pytest.raises(ckptd.CheckpointAborted) as e:
            engine.commit("s2")
        assert e.value.checkpoint_id == "s2" and e.value.reason

        with pytest.raises(ckptd.InvalidArgument):
            client.save(job, "s3", 3, 0, 1, "m", [ckptd.TensorEntry("t", torch.ones(2)), ckptd.TensorEntry("t", torch.ones(2))])
        engine.create("s4")
        with pytest.raises(ckptd.InvalidArgument):
            engine.save({"f": lambda: 0}, "s4/m")  # not picklable: refused before sending
        with pytest.raises(ckptd.FailedPrecondition):
            ckptd.CheckpointEngine(job=job, client=client, rank=0, world_size=1).save({}, "nowhere/x")


def test_a_corrupted_stored_chunk_is_data_loss_naming_the_chunk(start_daemon, job):
    d = start_daemon()
    with ckptd.CkptdClient(d.address) as client:
        t = torch.arange(1 << 16, dtype=torch.float32)
        res = client.save(job, "s1", 1, 0, 1, "m", [ckptd.TensorEntry("weights", t)])
        client.commit(job, "s1", 1, 0, 1, ["m"], res.attempt)
        files = sorted((d.data_dir / "jobs" / job / "checkpoints" / "s1").rglob("*.lz4"))
        assert files, "no stored entry file found"
        raw = bytearray(files[0].read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        files[0].write_bytes(bytes(raw))
        with pytest.raises(ckptd.DataLoss) as e:
            client.load_items(job, "s1")
        assert "weights" in e.value.message


def test_a_rank_that_saved_nothing_votes_and_loads_what_another_rank_saved(daemon, job):
    # DeepSpeed with ZeRO off: only the data-parallel writer saves, every rank commits and loads.
    writer = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=2)
    reader = ckptd.CheckpointEngine(job=job, address=daemon, rank=1, world_size=2)
    assert writer.is_data_parallel_writer(0) and not reader.is_data_parallel_writer(1)
    for engine in (writer, reader):
        engine.create(_CommitInfo("global_step1"))  # the newer interface passes a CheckpointCommitInfo
    writer.save({"w": torch.arange(3.0)}, "/ckpt/global_step1/mp_rank_00_model_states.pt")
    votes = {}
    thread = threading.Thread(target=lambda: votes.setdefault(1, reader.commit(_CommitInfo("global_step1"))))
    thread.start()
    assert writer.commit("global_step1") is True
    thread.join(30)
    assert votes == {1: True}
    loaded = reader.load("/ckpt/global_step1/mp_rank_00_model_states.pt")
    assert torch.equal(loaded["w"], torch.arange(3.0)) and reader.last_placement.source_rank == 0
    writer.close()
    reader.close()


class _CommitInfo:
    def __init__(self, tag):
        self.tag, self.save_dir, self.save_latest = tag, "/ckpt", True


def test_stub_files_mark_each_saved_item_for_file_based_discovery(daemon, job, tmp_path):
    engine = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1, stub_files=True)
    engine.create("global_step3")
    engine.makedirs(str(tmp_path / "ckpt" / "global_step3"), exist_ok=True)
    engine.save({"w": torch.ones(2)}, str(tmp_path / "ckpt" / "global_step3" / "mp_rank_00_model_states.pt"))
    engine.commit("global_step3")
    stub = json.loads((tmp_path / "ckpt" / "global_step3" / "mp_rank_00_model_states.pt").read_text())["ckptd"]
    assert (stub["job"], stub["checkpoint_id"], stub["item"], stub["rank"]) == (job, "global_step3", "mp_rank_00_model_states.pt", 0)
    # A load by the same path reads the data from the daemon, not from the marker.
    assert torch.equal(engine.load(str(tmp_path / "ckpt" / "global_step3" / "mp_rank_00_model_states.pt"))["w"], torch.ones(2))
    engine.close()


def test_rank_and_world_size_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ckptd.resolve_ranks() == (3, 8, 1)
    assert ckptd.resolve_ranks(rank=2) == (2, 8, 1)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("LOCAL_RANK")
    assert ckptd.resolve_ranks() == (0, 1, 0)
    with pytest.raises(ckptd.InvalidArgument):
        ckptd.resolve_ranks(rank=4, world_size=4)
    assert ckptd.step_of_tag("global_step1000") == 1000 and ckptd.step_of_tag("final") == 0
