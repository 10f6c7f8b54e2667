"""State dicts of hundreds of small tensors (layer norms, biases, optimizer steps) save in
EntryBatch messages into one pack file per item, and come back bit for bit, through both
clients, with shared memory on or off, synchronously and asynchronously."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch

import ckptd
from ckptd import client as client_mod
from _workers import tensor_bytes

SCRIPT = Path(__file__).with_name("ts_interop.mjs")


def _state():
    """A GPT-2-shaped model in miniature with AdamW state: 4 layers x 12 parameters, each with
    exp_avg, exp_avg_sq and step (196 tensors), in several dtypes, a 0-d and an empty tensor,
    and one weight larger than BATCH_ENTRY_BYTES so the item mixes batched and chunked entries."""
    g = torch.Generator().manual_seed(5)
    h = 48
    shapes = {"wte.weight": (1 << 20) // (4 * h) * 2, "wpe.weight": 64}
    state = {}
    for i in range(4):
        for name, shape in {"ln_1.weight": (h,), "ln_1.bias": (h,), "attn.c_attn.weight": (h, 3 * h),
                            "attn.c_attn.bias": (3 * h,), "attn.c_proj.weight": (h, h), "attn.c_proj.bias": (h,),
                            "ln_2.weight": (h,), "ln_2.bias": (h,), "mlp.c_fc.weight": (h, 4 * h),
                            "mlp.c_fc.bias": (4 * h,), "mlp.c_proj.weight": (4 * h, h), "mlp.c_proj.bias": (h,)}.items():
            key = f"h.{i}.{name}"
            state[key] = torch.randn(shape, generator=g).to(torch.bfloat16 if "ln" in name else torch.float32)
            state[key + ".exp_avg"] = torch.randn(shape, generator=g)
            state[key + ".exp_avg_sq"] = torch.rand(shape, generator=g).double()
            state[key + ".step"] = torch.tensor(1000 + i, dtype=torch.int64)
    for name, rows in shapes.items():
        state[name] = torch.randn(rows, h, generator=g)
    state["empty"] = torch.empty(0)
    state["flag"] = torch.tensor(True)
    return state


def _entries(state):
    return [ckptd.TensorEntry(k, v) for k, v in state.items()]


def _check(got, state):
    assert list(got) == list(state), "entries come back in the order they were saved"
    for k, v in state.items():
        t = got[k].value
        assert t.dtype == v.dtype and t.shape == v.shape, k
        assert tensor_bytes(t) == tensor_bytes(v), f"{k}: bytes differ"


@pytest.mark.parametrize("shared_memory", [True, False])
def test_hundreds_of_small_tensors_round_trip_bit_exact_in_one_pack_file(start_daemon, job, shared_memory):
    d = start_daemon()
    state = _state()
    assert len(state) > 190
    assert max(t.numel() * t.element_size() for t in state.values()) > client_mod.BATCH_ENTRY_BYTES
    with ckptd.CkptdClient(d.address, shared_memory=shared_memory) as c:
        res = c.save(job, "s1", 1, 0, 1, "model", _entries(state))
        assert res.entry_count == len(state)
        assert c.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        files = sorted(p.name for p in (d.data_dir / "jobs" / job / "checkpoints" / "s1" / "rank-00000" / "model").iterdir())
        # Every entry of at most 1 MiB shares pack.lz4; the larger embedding has a file of its own.
        assert files == [f"{list(state).index('wte.weight'):06d}.lz4", "pack.lz4"]
        _check(c.load_items(job, "s1", place=False).items["model"], state)

        pending = c.save_async(job, "s2", 2, 0, 1, "model", _entries(state))
        res = pending.result(timeout=60)
        assert c.commit(job, "s2", 2, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        _check(c.load_items(job, "s2", place=False).items["model"], state)


def test_typescript_loads_a_python_state_of_hundreds_of_small_tensors_bit_exact(daemon, job):
    state = _state()
    with ckptd.CkptdClient(daemon) as c:
        res = c.save(job, "s1", 1, 0, 1, "model", _entries(state))
        assert c.commit(job, "s1", 1, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
    out = subprocess.run(["node", str(SCRIPT), "load", daemon, job, "s1", "model"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout.strip().splitlines()[-1])["entries"]
    assert set(entries) == set(state)
    for k, v in state.items():
        assert entries[k]["sha256"] == hashlib.sha256(tensor_bytes(v)).hexdigest(), f"{k}: bytes differ"
