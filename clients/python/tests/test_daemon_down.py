"""A daemon that is down, dies or restarts: a clear error naming ckptd, the address, the
operation and whether the checkpoint was committed; and the opt-in policies that keep
training going (retry with backoff, skip the checkpoint)."""

import logging
import socket
import threading
import time

import grpc
import pytest
import torch

import ckptd
from ckptd import tml as snapshot


def _dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _state():
    return {"w": torch.arange(6, dtype=torch.float32), "step": 3}


def test_a_daemon_that_is_not_running_is_a_clear_error(job):
    address = _dead_address()
    engine = ckptd.CheckpointEngine(job=job, address=address, rank=0, world_size=1)
    with pytest.raises(ckptd.DaemonUnavailable) as caught:
        engine.create("global_step1")  # the restart fence's abort is the first call
    err = caught.value
    assert isinstance(err, ckptd.Unavailable) and isinstance(err, ConnectionError)
    text = str(err)
    assert "ckptd daemon at " + address in text and f"Checkpoint {job}/global_step1 was not committed" in text
    assert "on_daemon_error" in text and "failed to connect" in err.detail
    assert (err.address, err.checkpoint, err.committed) == (address, f"{job}/global_step1", False)

    engine = ckptd.CheckpointEngine(job=job, address=address, rank=0, world_size=1, restart_fence=False)
    engine.create("global_step1")
    with pytest.raises(ckptd.DaemonUnavailable, match="Save of item model of .*was not committed"):
        engine.save(_state(), "global_step1/model")
    with pytest.raises(ckptd.DaemonUnavailable, match=f"GetCheckpoint of {job}/latest failed"):
        engine.load("model")


def test_a_daemon_killed_during_the_vote_leaves_the_outcome_unknown(start_daemon, job):
    d = start_daemon()
    engine = ckptd.CheckpointEngine(job=job, address=d.address, rank=0, world_size=2, restart_fence=False)
    engine.create("global_step1")
    engine.save(_state(), "global_step1/model")
    failure = []

    def vote():
        try:
            engine.commit("global_step1")  # waits for rank 1, which never votes
        except ckptd.CkptdError as exc:
            failure.append(exc)

    t = threading.Thread(target=vote)
    t.start()
    time.sleep(0.5)
    d.kill()
    t.join(30)
    assert len(failure) == 1 and isinstance(failure[0], ckptd.DaemonUnavailable), failure
    err = failure[0]
    assert err.committed is None and "is unknown until the daemon is back" in str(err), str(err)
    # Back, the daemon presumed the undecided checkpoint aborted.
    d.start(listen=d.address)
    assert ckptd.get_checkpoint(job, missing_ok=True, address=d.address) is None


def test_retry_rides_out_a_daemon_restart(start_daemon, job, caplog):
    d = start_daemon()
    d.stop()
    threading.Timer(1.5, lambda: d.start(listen=d.address)).start()
    engine = ckptd.CheckpointEngine(job=job, address=d.address, rank=0, world_size=1, on_daemon_error="retry",
                                    daemon_retries=12, daemon_backoff=0.2)
    with caplog.at_level(logging.WARNING, logger="ckptd"):
        engine.create("global_step1")
        engine.save(_state(), "global_step1/model")
        assert engine.commit("global_step1") is True
    assert "is unavailable" in caplog.text and "retry 1 of 12" in caplog.text
    assert engine.load("global_step1/model")["step"] == 3
    engine.close()


def test_retry_gives_up_after_its_retries(job):
    engine = ckptd.CheckpointEngine(job=job, address=_dead_address(), rank=0, world_size=1,
                                    on_daemon_error="retry", daemon_retries=2, daemon_backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(ckptd.DaemonUnavailable):
        engine.create("global_step1")
    assert time.monotonic() - t0 < 10


def test_skip_gives_the_checkpoint_up_and_training_goes_on(start_daemon, job, caplog):
    d = start_daemon()
    d.stop()
    engine = ckptd.CheckpointEngine(job=job, address=d.address, rank=0, world_size=1, on_daemon_error="skip")
    with caplog.at_level(logging.WARNING, logger="ckptd"):
        engine.create("global_step1")
        engine.save(_state(), "global_step1/model")
        engine.save(_state(), "global_step1/optim")
        assert engine.commit("global_step1") is False
    assert f"skipped checkpoint {job}/global_step1 on rank 0" in caplog.text
    assert "was not committed" in caplog.text

    d.start(listen=d.address)
    # The channel retries connecting with a backoff of up to 2 s (CHANNEL_OPTIONS); the
    # next checkpoint of a real job is further away than that.
    grpc.channel_ready_future(engine.client.channel).result(timeout=15)
    engine.create("global_step2")
    engine.save(_state(), "global_step2/model")
    assert engine.commit("global_step2") is True
    with ckptd.CkptdClient(d.address) as c:
        assert [x.checkpoint_id for x in c.list_checkpoints(job)] == ["global_step2"]


def test_the_policy_is_checked_and_may_come_from_the_environment(job, monkeypatch):
    with pytest.raises(ckptd.InvalidArgument, match="on_daemon_error must be one of raise, retry, skip"):
        ckptd.CheckpointEngine(job=job, on_daemon_error="ignore")
    monkeypatch.setenv("CKPTD_ON_DAEMON_ERROR", "skip")
    assert ckptd.CheckpointEngine(job=job).policy.mode == "skip"


def test_tml_snapshots_raise_clearly_or_skip_by_policy(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CKPTD_ADDRESS", _dead_address())
    model = torch.nn.Linear(4, 2)
    save_dir = str(tmp_path / "run")
    with pytest.raises(ckptd.DaemonUnavailable, match="was not committed"):
        snapshot.Snapshot(save_dir, {"model": model}).save(1).wait()
    with pytest.raises(ckptd.DaemonUnavailable, match="ListCheckpoints"):
        snapshot.get_checkpoint(save_dir, missing_ok=True)

    monkeypatch.setitem(snapshot._settings, "engine_options", {"on_daemon_error": "skip"})
    with caplog.at_level(logging.WARNING, logger="ckptd"):
        handle = snapshot.Snapshot(save_dir, {"model": model}).save(2)
        handle.wait()
    assert handle.done() and handle.committed is False
    assert f"skipped checkpoint {snapshot.job_of(save_dir)}/2" in caplog.text
