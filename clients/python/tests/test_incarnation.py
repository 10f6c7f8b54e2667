"""Incarnation fencing from the Python client: every save, commit and abort carries the
process's incarnation, so a trainer SIGKILLed between its save and its vote is replaced
by a process that saves the same item of the same checkpoint at once (the daemon aborts
the dead process's attempt), and a late message of the dead process changes nothing."""

import os
import subprocess
import sys
import time

import pytest
import torch

import ckptd
from conftest import PY_ROOT

# Far longer than the test: a restart that had to wait for it would time out.
PREPARE_TIMEOUT_MS = "600000"

_DIE_BETWEEN_SAVE_AND_COMMIT = """
import os, signal, sys, torch, ckptd
address, job = sys.argv[1], sys.argv[2]
with ckptd.CkptdClient(address) as client:
    client.save(job, "global_step3", 3, 0, 1, "model", [ckptd.TensorEntry("w", torch.full((4096,), 1.0))])
    print(client.incarnation, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

_PRINT_INCARNATION = "import ckptd; print(ckptd.process_incarnation())"


def _python(code, *args):
    env = dict(os.environ, PYTHONPATH=str(PY_ROOT))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_process_killed_between_save_and_commit_is_replaced_by_one_that_saves_the_same_item_at_once(
        start_daemon, job):
    d = start_daemon("--prepare-timeout-ms", PREPARE_TIMEOUT_MS)
    dead = _python(_DIE_BETWEEN_SAVE_AND_COMMIT, d.address, job)
    assert dead.returncode == -9, dead.stderr
    dead_incarnation = int(dead.stdout.strip())
    new = torch.arange(4096, dtype=torch.float32)
    # The replacement: a process started after the dead one. This test process may have
    # taken its own incarnation earlier (another test's client), so it says what a fresh
    # process would.
    with ckptd.CkptdClient(d.address, incarnation=time.time_ns() // 1000) as client:
        assert client.incarnation > dead_incarnation
        started = time.monotonic()
        res = client.save(job, "global_step3", 3, 0, 1, "model", [ckptd.TensorEntry("w", new)])
        assert time.monotonic() - started < 30
        assert res.attempt == 2
        # Durable before the new save went on (the COMMIT of attempt 2 prunes this record).
        decision = (d.data_dir / "jobs" / job / "decisions" / "global_step3@1.json").read_text()
        assert f"rank 0 restarted (incarnation {dead_incarnation} \u2192" in decision
        commit = client.commit(job, "global_step3", 3, 0, 1, ["model"], res.attempt)
        assert commit.outcome == "COMMITTED", commit.reason
        got = client.load_items(job, "global_step3", rank=0).items["model"]["w"].value
        assert torch.equal(got, new)


def test_late_messages_of_an_older_incarnation_are_refused_and_change_nothing(start_daemon, job):
    d = start_daemon("--prepare-timeout-ms", PREPARE_TIMEOUT_MS)
    old_state = [ckptd.TensorEntry("w", torch.zeros(1024))]
    new_state = [ckptd.TensorEntry("w", torch.ones(1024))]
    with ckptd.CkptdClient(d.address, incarnation=5) as old, ckptd.CkptdClient(d.address, incarnation=6) as new:
        assert old.save(job, "s1", 1, 0, 1, "model", old_state).attempt == 1
        assert new.save(job, "s1", 1, 0, 1, "model", new_state).attempt == 2
        with pytest.raises(ckptd.FailedPrecondition, match="superseded by a newer incarnation of rank 0"):
            old.commit(job, "s1", 1, 0, 1, ["model"])
        with pytest.raises(ckptd.FailedPrecondition, match="superseded"):
            old.abort(job, "s1", 0, "late")
        with pytest.raises(ckptd.FailedPrecondition, match="superseded"):
            old.save(job, "s1", 1, 0, 1, "optim", old_state)
        assert new.commit(job, "s1", 1, 0, 1, ["model"]).outcome == "COMMITTED"
        got = new.load_items(job, "s1", rank=0).items["model"]["w"].value
        assert torch.equal(got, torch.ones(1024))


def test_the_default_incarnation_is_one_per_process_and_grows_with_each_new_process():
    here = ckptd.process_incarnation()
    assert ckptd.process_incarnation() == here
    assert ckptd.CkptdClient("127.0.0.1:1").incarnation == here
    child = _python(_PRINT_INCARNATION)
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) > here
    with pytest.raises(ckptd.InvalidArgument, match="incarnation"):
        ckptd.CkptdClient("127.0.0.1:1", incarnation=1 << 53)
