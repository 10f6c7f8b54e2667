"""ckptd.tml: tml's checkpointing names and signatures, called as tml calls them."""

import inspect
import signal
import threading
import time

import pytest
import torch

import ckptd
from ckptd import tml as snapshot

# tml's signatures (tml/common/checkpointing/snapshot.py): parameter names and defaults.
_ = inspect.Parameter.empty
TML_SIGNATURES = {
    "get_checkpoint": [("save_dir", _), ("global_step", None), ("missing_ok", False)],
    "get_checkpoints": [("save_dir", _)],
    "step_from_checkpoint": [("checkpoint", _)],
    "checkpoints_iterator": [("save_dir", _), ("seconds_to_sleep", 30), ("timeout", 1800)],
    "is_done_eval": [("checkpoint_path", _), ("eval_partition", _)],
    "mark_done_eval": [("checkpoint_path", _), ("eval_partition", _)],
    "wait_for_evaluators": [("save_dir", _), ("partition_names", _), ("global_step", _), ("timeout", _)],
    "Snapshot": [("save_dir", _), ("state", _)],
    "Snapshot.save": [("self", _), ("global_step", _)],
    "Snapshot.restore": [("self", _), ("checkpoint", _)],
    "Snapshot.get_torch_snapshot": [("snapshot_path", _), ("global_step", None), ("missing_ok", False)],
    "Snapshot.load_snapshot_to_weight": [("embedding_snapshot", _), ("snapshot_emb_name", _), ("weight_tensor", _)],
}


def test_the_module_has_tmls_names_and_signatures():
    for name, want in TML_SIGNATURES.items():
        obj = snapshot
        for part in name.split("."):
            obj = getattr(obj, part)
        got = [(p.name, p.default) for p in inspect.signature(obj).parameters.values()]
        assert got == want, name
    assert inspect.isgeneratorfunction(snapshot.checkpoints_iterator)
    for name in ("step", "walltime"):
        assert isinstance(getattr(snapshot.Snapshot, name), property)


def test_save_dir_maps_to_one_job_deterministically():
    assert snapshot.job_of("/data/runs/twhin") == "data-runs-twhin"
    assert snapshot.job_of("/data/runs/twhin/") == snapshot.job_of("/data/runs/twhin")
    assert snapshot.job_of("/data/runs/./twhin") == snapshot.job_of("/data/runs/twhin")
    # "-" stands for "/": a directory whose own name has a "-" (or other characters) gets a hash.
    assert snapshot.job_of("/a/b") == "a-b" and snapshot.job_of("/a-b").startswith("a-b-")
    url = snapshot.job_of("gs://bucket/runs/x/")
    assert url.startswith("gs-bucket-runs-x-") and url == snapshot.job_of("gs://bucket/runs/x")
    long = snapshot.job_of("/" + "d" * 300 + "/run-7")
    assert len(long) == 128 and long.startswith("d") and "run-7" in long
    assert snapshot.job_of("/" + "d" * 300 + "/run-8") != long


def test_save_returns_a_pending_snapshot_at_once_and_restore_loads_it_in_place(start_daemon, tmp_path, monkeypatch):
    d = start_daemon()
    monkeypatch.setenv("CKPTD_ADDRESS", d.address)
    save_dir = str(tmp_path / "run")
    assert snapshot.get_checkpoint(save_dir, missing_ok=True) == ""
    with pytest.raises(ckptd.CheckpointNotFound, match="No checkpoints found at"):
        snapshot.get_checkpoint(save_dir)

    torch.manual_seed(1)
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snap = snapshot.Snapshot(save_dir, {"model": model, "optimizer": opt})
    assert (snap.step, snap.walltime) == (0, 0.0)
    snap.step, snap.walltime = 10, 1.5
    snap.save(5).wait()  # the first save's restart fence reaches the daemon before it stops
    d.proc.send_signal(signal.SIGSTOP)
    try:
        saved = {}
        returned = threading.Event()

        def save():
            saved["handle"] = snap.save(10)
            returned.set()

        threading.Thread(target=save, daemon=True).start()
        assert returned.wait(20), "save waited for the daemon"
        assert not saved["handle"].done()
        want = model.weight.detach().clone()
        with torch.no_grad():
            model.weight.add_(1)  # changes after save returned do not reach the checkpoint
    finally:
        d.proc.send_signal(signal.SIGCONT)
    view = saved["handle"].wait()
    assert saved["handle"].done() and saved["handle"].committed
    assert view.path == f"{save_dir}/10"
    assert snapshot.get_checkpoints(save_dir) == [f"{save_dir}/5", f"{save_dir}/10"]
    assert snapshot.get_checkpoint(save_dir) == f"{save_dir}/10"
    assert snapshot.get_checkpoint(save_dir, global_step=5) == f"{save_dir}/5"
    with pytest.raises(ckptd.CheckpointNotFound, match="Desired checkpoint at 7 not found"):
        snapshot.get_checkpoint(save_dir, global_step=7)
    assert snapshot.step_from_checkpoint(snapshot.get_checkpoint(save_dir)) == 10

    fresh = torch.nn.Linear(8, 4)
    fresh_snap = snapshot.Snapshot(save_dir, {"model": fresh, "optimizer": torch.optim.SGD(fresh.parameters(), lr=1)})
    fresh_snap.restore(snapshot.get_checkpoint(save_dir))
    assert torch.equal(fresh.weight, want)
    assert (fresh_snap.step, fresh_snap.walltime) == (10, 1.5)
    assert fresh_snap.restored_checkpoint == f"{save_dir}/10"
    assert fresh_snap.state["optimizer"].state_dict()["param_groups"][0]["momentum"] == 0.9


def test_get_torch_snapshot_and_load_snapshot_to_weight_load_one_embedding(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("CKPTD_ADDRESS", daemon)
    save_dir = str(tmp_path / "pretrain")
    assert snapshot.Snapshot.get_torch_snapshot(save_dir, missing_ok=True).path == ""
    torch.manual_seed(2)
    pretrained = torch.nn.ModuleDict({"emb": torch.nn.Embedding(50, 8), "head": torch.nn.Linear(8, 1)})
    snapshot.Snapshot(save_dir, {"model": pretrained}).save(100).wait()

    emb = snapshot.Snapshot.get_torch_snapshot(save_dir, global_step=100)
    assert emb.path == f"{save_dir}/100"
    assert "0/model/emb.weight" in emb.get_manifest() and "0/model/head.bias" in emb.get_manifest()
    current = torch.nn.Embedding(50, 8)
    snapshot.Snapshot.load_snapshot_to_weight(emb, "emb", current.weight)
    assert torch.equal(current.weight, pretrained["emb"].weight)
    with pytest.raises(ckptd.CheckpointNotFound, match="no rank-0 entry named like 'missing'"):
        snapshot.Snapshot.load_snapshot_to_weight(emb, "missing", current.weight)


def test_checkpoints_iterator_starts_at_the_latest_and_eval_marks_are_per_partition(daemon, tmp_path, monkeypatch):
    monkeypatch.setenv("CKPTD_ADDRESS", daemon)
    save_dir = str(tmp_path / "run")
    model = torch.nn.Linear(2, 2)
    snap = snapshot.Snapshot(save_dir, {"model": model})
    for step in (1, 2):
        snap.save(step).wait()
    seen = []
    it = snapshot.checkpoints_iterator(save_dir, seconds_to_sleep=1, timeout=3)
    seen.append(next(it))  # tml starts with the latest, not the first
    threading.Timer(0.5, lambda: snap.save(3).wait()).start()
    t0 = time.monotonic()
    seen.extend(it)  # the next one as it commits, then the end after 3 s without one
    assert seen == [f"{save_dir}/2", f"{save_dir}/3"]
    assert 3 <= time.monotonic() - t0 < 30

    cp = f"{save_dir}/3"
    assert not snapshot.is_done_eval(cp, "train_eval")
    snapshot.mark_done_eval(cp, "train_eval")
    assert snapshot.is_done_eval(cp, "train_eval") and not snapshot.is_done_eval(cp, "test_eval")
    names = ["train_eval", "test_eval"]
    t0 = time.monotonic()
    assert snapshot.wait_for_evaluators(save_dir, names, 3, timeout=1) is None  # logs and returns, as tml
    assert 1 <= time.monotonic() - t0 < 15 and names == ["train_eval", "test_eval"]
    snapshot.mark_done_eval(cp, "test_eval")
    t0 = time.monotonic()
    snapshot.wait_for_evaluators(save_dir, names, 3, timeout=30)
    assert time.monotonic() - t0 < 5
