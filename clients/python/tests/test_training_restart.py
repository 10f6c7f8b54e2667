"""Real DDP training (gloo, 2 ranks, torch.multiprocessing.spawn) checkpointing through
ckptd.tml with tml's call sequence and through CheckpointEngine with DeepSpeed's (sync
and decoupled): the trainers are SIGKILLed between their saves and their votes, restarted
at once, save the same checkpoint again without waiting for the daemon's prepare timeout,
and end bit-identical to an uninterrupted run."""

import multiprocessing
import socket

import pytest
import torch
import torch.multiprocessing as tmp

import ckptd
from _training import ds_trainer, tml_evaluator, tml_trainer
from _workers import assert_same

WORLD = 2
STEPS = 12
EVERY = 3
KILL_AT = 9
# Long enough that a restart which had to wait for it would blow the test's time limit.
PREPARE_TIMEOUT_MS = "300000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, *args):
    """Runs ``fn(rank, WORLD, port, *args)`` on WORLD ranks; returns the exception that
    ended a killed run (None when every rank finished)."""
    try:
        tmp.spawn(fn, args=(WORLD, _free_port(), *args), nprocs=WORLD, join=True)
    except tmp.ProcessExitedException as exc:
        return exc
    return None


def _same_training_state(got_path, want_path):
    got, want = torch.load(got_path), torch.load(want_path)
    assert_same(got["model"], want["model"])
    assert_same(got["optimizer"], want["optimizer"])
    return got


def test_tml_loop_killed_between_save_and_commit_resumes_bit_exact(start_daemon, tmp_path, monkeypatch):
    d = start_daemon("--prepare-timeout-ms", PREPARE_TIMEOUT_MS)
    monkeypatch.setenv("CKPTD_ADDRESS", d.address)
    from ckptd import tml as snapshot

    # Uninterrupted, with an evaluator the trainers wait for at every checkpoint.
    ref_dir = str(tmp_path / "ref")
    ctx = multiprocessing.get_context("spawn")
    evaluator = ctx.Process(target=tml_evaluator, args=(d.address, ref_dir, STEPS, str(tmp_path / "eval.pt")))
    evaluator.start()
    assert _spawn(tml_trainer, d.address, ref_dir, STEPS, EVERY, -1, True, str(tmp_path / "ref.pt")) is None
    evaluator.join(60)
    assert evaluator.exitcode == 0
    assert torch.load(tmp_path / "eval.pt")["seen"] == [3, 6, 9, 12]
    ref = torch.load(tmp_path / "ref.pt")
    assert ref["resumed_from"] == ""
    assert ref["checkpoints"] == [f"{ref_dir}/{s}" for s in (3, 6, 9, 12)]

    # Killed while checkpoint 9 is staged on both ranks and voted by rank 0 only.
    run_dir = str(tmp_path / "run")
    died = _spawn(tml_trainer, d.address, run_dir, STEPS, EVERY, KILL_AT, False, str(tmp_path / "run.pt"))
    assert died is not None and "SIGKILL" in str(died), died
    assert snapshot.get_checkpoints(run_dir) == [f"{run_dir}/3", f"{run_dir}/6"]
    assert snapshot.get_checkpoint(run_dir) == f"{run_dir}/6"

    # Restarted at once: resumes from 6 and saves 9 again without waiting.
    assert _spawn(tml_trainer, d.address, run_dir, STEPS, EVERY, -1, False, str(tmp_path / "run.pt")) is None
    got = _same_training_state(tmp_path / "run.pt", tmp_path / "ref.pt")
    assert got["resumed_from"] == f"{run_dir}/6"
    assert got["first_wait"] < 30, "the re-save of checkpoint 9 waited for the dead attempt"
    assert got["checkpoints"] == [f"{run_dir}/{s}" for s in (3, 6, 9, 12)]


@pytest.mark.parametrize("decoupled", [False, True], ids=["sync", "decoupled"])
def test_deepspeed_order_killed_between_save_and_commit_resumes_bit_exact(start_daemon, tmp_path, job, decoupled):
    d = start_daemon("--prepare-timeout-ms", PREPARE_TIMEOUT_MS)
    assert _spawn(ds_trainer, d.address, f"{job}-ref", STEPS, EVERY, -1, decoupled, str(tmp_path / "ref.pt")) is None

    died = _spawn(ds_trainer, d.address, job, STEPS, EVERY, KILL_AT, decoupled, str(tmp_path / "run.pt"))
    assert died is not None and "SIGKILL" in str(died), died
    with ckptd.CkptdClient(d.address) as c:
        assert [x.checkpoint_id for x in c.list_checkpoints(job)] == ["global_step6", "global_step3"]

    assert _spawn(ds_trainer, d.address, job, STEPS, EVERY, -1, decoupled, str(tmp_path / "run.pt")) is None
    got = _same_training_state(tmp_path / "run.pt", tmp_path / "ref.pt")
    assert got["resumed_from"] == "global_step6"
    if not decoupled:
        assert got["first_commit"] < 30, "the re-save of global_step9 waited for the dead attempt"
    with ckptd.CkptdClient(d.address) as c:
        ids = [x.checkpoint_id for x in c.list_checkpoints(job)]
    assert ids == ["global_step12", "global_step9", "global_step6", "global_step3"]
