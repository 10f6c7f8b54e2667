"""Async saves: the trainer gets its memory back before the item is durable; commit still means durable."""

import torch

import ckptd


def _entries(state):
    return [ckptd.TensorEntry(k, v) for k, v in state.items()]


def _save_commit_load(client, job, step, pending, state_at_save):
    res = pending.result(timeout=60)
    assert res.bytes_received == sum(t.numel() * t.element_size() for t in state_at_save.values())
    commit = client.commit(job, f"step{step}", step, 0, 1, ["model"], res.attempt)
    assert commit.outcome == "COMMITTED"
    loaded = client.load_items(job, f"step{step}", rank=0)
    for key, want in state_at_save.items():
        got = loaded.items["model"][key].value
        assert got.dtype == want.dtype and torch.equal(got, want), key


def test_async_save_in_snapshot_mode_keeps_the_values_at_the_call(daemon, job):
    state = {"w": torch.randn(512, 1024), "b": torch.randn(1024).to(torch.bfloat16), "step": torch.tensor(7)}
    at_save = {k: v.clone() for k, v in state.items()}
    buffers = ckptd.SnapshotBuffers(budget_bytes=64 << 20)
    with ckptd.CkptdClient(daemon, chunk_bytes=64 << 10) as client:
        pending = client.save_async(job, "step1", 1, 0, 1, "model", _entries(state), snapshot=buffers)
        # The trainer moves on at once: the snapshot, not its tensors, is what gets saved.
        for t in state.values():
            t.add_(1)
        _save_commit_load(client, job, 1, pending, at_save)
        # The buffers are reused by the next save, without a new allocation.
        reused = dict(buffers._buffers)
        pending = client.save_async(job, "step2", 2, 0, 1, "model", _entries(state), snapshot=buffers)
        assert all(buffers._buffers[k] is reused[k] for k in reused)
        _save_commit_load(client, job, 2, pending, {k: v.clone() for k, v in state.items()})


def test_async_save_in_hand_off_mode_returns_once_the_daemon_has_every_byte(daemon, job):
    state = {"w": torch.randn(256, 1024)}
    with ckptd.CkptdClient(daemon) as client:
        pending = client.save_async(job, "step3", 3, 0, 1, "model", _entries(state))
        _save_commit_load(client, job, 3, pending, {k: v.clone() for k, v in state.items()})


def test_an_async_save_that_fails_raises_from_result(daemon, job):
    with ckptd.CkptdClient(daemon) as client:
        pending = client.save_async(job, "../bad", 1, 0, 1, "model", _entries({"w": torch.zeros(4)}))
        try:
            pending.result(timeout=30)
        except ckptd.InvalidArgument as err:
            assert "checkpoint_id" in str(err)
        else:
            raise AssertionError("a save into an invalid checkpoint id must fail")


def test_snapshot_saves_describe_a_reshaped_or_retyped_tensor_afresh(daemon, job):
    """Entries of snapshot buffers reuse the last save's description only while the buffer,
    its dtype and shape, and the entry's options are the same."""
    buffers = ckptd.SnapshotBuffers(budget_bytes=64 << 20)
    # Back to back in one buffer, as flattened parameters are: captured with one copy.
    flat = torch.randn(300_000)
    state = {"a": flat[:100_000].view(100, 1000), "b": flat[100_000:].view(2000, 100), "c": torch.randn(77)}
    buffers.prepare(_entries(state))
    with ckptd.CkptdClient(daemon) as client:
        pending = client.save_async(job, "step1", 1, 0, 1, "model", _entries(state), snapshot=buffers)
        _save_commit_load(client, job, 1, pending, {k: v.clone() for k, v in state.items()})
        state["b"] = torch.randn(100, 2000).to(torch.bfloat16)  # a new shape and dtype under the same key
        state["a"].mul_(2)
        pending = client.save_async(job, "step2", 2, 0, 1, "model", _entries(state), snapshot=buffers)
        _save_commit_load(client, job, 2, pending, {k: v.clone() for k, v in state.items()})
        entries = _entries(state)
        entries[2] = ckptd.TensorEntry("c", state["c"], device="cuda:1")  # another recorded device
        pending = client.save_async(job, "step3", 3, 0, 1, "model", entries, snapshot=buffers)
        res = pending.result(timeout=60)
        assert client.commit(job, "step3", 3, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        loaded = client.load_items(job, "step3", rank=0)
        assert loaded.items["model"]["c"].saved_device == "cuda:1"
        for key, want in state.items():
            assert torch.equal(loaded.items["model"][key].value, want), key
