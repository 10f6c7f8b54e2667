"""the-algorithm-ml API: Snapshot, get_checkpoint, checkpoints_iterator (pushed by
WatchCheckpoints), mark_done_eval and wait_for_evaluators."""

import threading
import time

import pytest
import torch

import ckptd
from _workers import evaluator_process, ok, run_processes, trainer_process


def test_an_evaluator_gets_every_checkpoint_once_while_the_trainer_waits_for_it(daemon, job):
    steps = 3
    results, _ = run_processes([
        (evaluator_process, (daemon, job, steps, "eval-holdout")),
        (trainer_process, (daemon, job, steps, "eval-holdout")),
    ], timeout=150)
    seen = ok(results, 0)
    log = ok(results, 1)
    assert seen == [1, 2, 3], "each committed step once, in order"
    assert [entry["step"] for entry in log] == [1, 2, 3]
    for entry in log:
        # The trainer blocked until the evaluator reported (it takes >= 0.5 s per checkpoint) ...
        assert entry["waited"] >= 0.3, entry
        report = entry["metrics"]["eval-holdout"]
        # ... on exactly the weights the trainer saved at that step.
        assert report["step"] == entry["step"]
        assert report["loss"] == pytest.approx(entry["weight_sum"], rel=0, abs=1e-6)

    refs = ckptd.get_checkpoints(job, address=daemon)
    assert [r.step for r in refs] == [1, 2, 3] and [str(r) for r in refs] == [f"{job}/1", f"{job}/2", f"{job}/3"]
    assert ckptd.step_from_checkpoint(refs[1]) == 2 and ckptd.step_from_checkpoint(f"/ckpts/{job}/7") == 7
    assert ckptd.is_done_eval(job, 2, "eval-holdout", address=daemon)
    assert not ckptd.is_done_eval(job, 2, "eval-other", address=daemon)


def test_snapshot_save_and_restore_in_place(daemon, job):
    torch.manual_seed(0)
    model, other = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 8)).sum().backward()
    opt.step()
    snap = ckptd.Snapshot(job, {"model": model, "optimizer": opt, "data": {"epoch": 3}}, address=daemon, rank=0, world_size=1)
    snap.step, snap.walltime = 10, 12.5
    ref = snap.save(10)
    assert (ref.checkpoint_id, ref.step, str(ref)) == ("10", 10, f"{job}/10")

    opt2 = torch.optim.Adam(other.parameters())
    data = {}
    restored = ckptd.Snapshot(job, {"model": other, "optimizer": opt2, "data": data}, address=daemon, rank=0, world_size=1)
    restored.restore(ckptd.get_checkpoint(job, global_step=10, address=daemon))
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)
    assert restored.step == 10 and restored.walltime == 12.5 and data == {"epoch": 3}
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    restored.restore(10)  # by step, too
    snap.close()
    restored.close()


def test_wait_for_evaluators_times_out_like_tml_or_raises_when_strict(daemon, job):
    snap = ckptd.Snapshot(job, {"model": torch.nn.Linear(2, 2)}, address=daemon, rank=0, world_size=1)
    snap.save(1)
    t0 = time.monotonic()
    assert ckptd.wait_for_evaluators(job, ["eval-a"], 1, timeout=0.5, address=daemon) is None
    assert time.monotonic() - t0 < 5
    with pytest.raises(ckptd.DeadlineExceeded) as e:
        ckptd.wait_for_evaluators(job, ["eval-a", "eval-b"], 1, timeout=0.3, strict=True, address=daemon)
    assert "eval-a" in e.value.message
    ckptd.mark_done_eval(job, 1, "eval-a", {"auc": 0.75}, address=daemon)
    ckptd.mark_done_eval(job, "1", "eval-b", address=daemon)
    assert ckptd.wait_for_evaluators(job, ["eval-a", "eval-b"], 1, timeout=5, address=daemon) == \
        {"eval-a": {"auc": 0.75}, "eval-b": {}}
    with pytest.raises(ckptd.CheckpointNotFound):
        ckptd.mark_done_eval(job, 99, "eval-a", address=daemon)
    snap.close()


def test_the_iterator_resumes_after_a_daemon_restart_without_repeats(start_daemon, job):
    d = start_daemon()
    seen = []
    errors = []
    got_first = threading.Event()

    def follow():
        try:
            for ref in ckptd.checkpoints_iterator(job, timeout=20, address=d.address):
                seen.append((ref.step, ref.sequence))
                got_first.set()
                if ref.step == 3:
                    return
        except Exception as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    def commit(step):
        with ckptd.CkptdClient(d.address) as client:
            res = client.save(job, f"s{step}", step, 0, 1, "m", [ckptd.TensorEntry("x", torch.full((4,), float(step)))])
            assert client.commit(job, f"s{step}", step, 0, 1, ["m"], res.attempt).committed

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    commit(1)
    assert got_first.wait(20)
    d.restart()  # SIGTERM, then a new daemon on the same port and data directory
    commit(2)
    commit(3)
    thread.join(30)
    assert not thread.is_alive() and not errors, errors
    assert [s for s, _ in seen] == [1, 2, 3]
    assert [q for _, q in seen] == sorted(q for _, q in seen)


def test_the_iterator_ends_after_its_timeout_without_commits(daemon, job):
    t0 = time.monotonic()
    assert list(ckptd.checkpoints_iterator(job, timeout=0.5, address=daemon)) == []
    assert time.monotonic() - t0 < 5


def test_snapshot_restore_of_latest_resolves_it_once_and_says_which(daemon, job):
    model = torch.nn.Linear(4, 2)
    snap = ckptd.Snapshot(job, {"model": model}, address=daemon, rank=0, world_size=1)
    snap.step = 1
    snap.save(1)
    snap.step = 2
    snap.save(2)
    reader = ckptd.Snapshot(job, {"model": torch.nn.Linear(4, 2)}, address=daemon, rank=0, world_size=1)
    reader.restore("latest")
    assert reader.restored_checkpoint == "2" and reader.step == 2
    snap.step = 3
    snap.save(3)
    reader.restore("latest")  # a later restore looks again
    assert reader.restored_checkpoint == "3" and reader.step == 3
    snap.close()
    reader.close()
