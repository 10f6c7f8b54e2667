"""CheckpointEngine's decoupled mode (DeepSpeed's DecoupledCheckpointEngine): save
captures the state and returns at once, commit waits for that tag's uploads and votes;
and the engine's resume semantics: "latest" resolved once, abort reasons said once."""

import signal
import threading

import pytest
import torch

import ckptd
from _workers import assert_same


def _engines(address, job, world=2, **kw):
    # Two ranks in one process: no barrier, so no restart fence (it needs one above 1 rank).
    return [ckptd.CheckpointEngine(job=job, address=address, rank=r, world_size=world, **kw) for r in range(world)]


def test_a_decoupled_save_returns_while_the_daemon_is_stopped_and_keeps_the_values_it_was_given(start_daemon, job):
    d = start_daemon()
    engine = ckptd.CheckpointEngine(job=job, address=d.address, rank=0, world_size=1, decoupled=True)
    assert engine.is_decoupled()
    state = {"w": torch.arange(1000, dtype=torch.float32), "nested": {"b": torch.ones(3, 5)[:, ::2]}, "step": 7}
    want = {"w": state["w"].clone(), "nested": {"b": state["nested"]["b"].clone()}, "step": 7}
    engine.create("global_step7")  # the fence's abort reaches the daemon before it stops
    d.proc.send_signal(signal.SIGSTOP)
    try:
        done = threading.Event()

        def save():
            engine.save(state, "/ckpt/global_step7/model")
            done.set()

        threading.Thread(target=save, daemon=True).start()
        assert done.wait(20), "a decoupled save waited for the daemon"
        state["w"].add_(1)  # training goes on and changes the tensors in place
        state["nested"]["b"].zero_()
        assert engine.get_commit_info() == "global_step7"
    finally:
        d.proc.send_signal(signal.SIGCONT)
    assert engine.commit("global_step7") is True
    assert engine.get_commit_info() is None
    assert_same(engine.load("global_step7/model"), want)
    engine.close()


def test_a_failed_decoupled_save_raises_at_commit_and_aborts_for_every_rank(daemon, job):
    r0, r1 = _engines(daemon, job, decoupled=True)
    for e in (r0, r1):
        e.create("global_step1")
        e.save({"w": torch.ones(4)}, "global_step1/model")
    r0.save({"w": torch.ones(4)}, "global_step1/model")  # the same item twice: the daemon refuses it
    with pytest.raises(ckptd.AlreadyExists):
        r0.commit("global_step1")
    with pytest.raises(ckptd.CheckpointAborted) as caught:
        r1.commit("global_step1")
    assert caught.value.reason.startswith("rank 0 aborted: a save failed: ALREADY_EXISTS")


def test_cleanup_commits_the_checkpoint_left_uncommitted(daemon, job):
    engine = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1, decoupled=True)
    engine.create("global_step3")
    engine.save({"w": torch.ones(2)}, "global_step3/model")
    engine.cleanup()
    assert ckptd.get_checkpoint(job, address=daemon).checkpoint_id == "global_step3"
    engine.close()


def test_abort_reasons_are_said_once(daemon, job):
    r0, r1 = _engines(daemon, job)
    for tag, reason, want in (("global_step1", "disk full", "rank 0 aborted: disk full"),
                              ("global_step2", "", "rank 0 aborted")):
        for e in (r0, r1):
            e.create(tag)
            e.save({"w": torch.ones(2)}, f"{tag}/model")
        r0.abort(tag, reason)
        with pytest.raises(ckptd.CheckpointAborted) as caught:
            r1.commit(tag)
        assert caught.value.reason == want
        assert str(caught.value).count("rank 0 aborted") == 1, str(caught.value)


def test_latest_is_resolved_once_per_engine_so_a_resume_never_mixes_checkpoints(daemon, job, caplog):
    writer = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1)

    def checkpoint(tag, value):
        writer.create(tag)
        writer.save({"v": torch.full((3,), float(value))}, f"{tag}/model")
        writer.save({"v": torch.full((3,), float(value))}, f"{tag}/optim")
        writer.commit(tag)

    checkpoint("global_step1", 1)
    loader = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1)
    with caplog.at_level("INFO", logger="ckptd"):
        model = loader.load("model")  # DeepSpeed's path without a tag: the latest
    assert loader.resolved_latest == "global_step1"
    assert f"'latest' of job {job} is global_step1" in caplog.text
    checkpoint("global_step2", 2)  # committed between the two loads of one resume
    optim = loader.load("optim")
    assert loader.last_placement.checkpoint_id == "global_step1"
    assert torch.equal(model["v"], optim["v"])
    # Loading an item again starts the next resume: "latest" is looked up again.
    assert loader.load("model")["v"][0] == 2 and loader.resolved_latest == "global_step2"
    # An engine that commits a newer checkpoint itself moves on to it.
    assert writer.load("model")["v"][0] == 2
    assert writer.resolved_latest == "global_step2"
