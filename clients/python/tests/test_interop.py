"""Python and TypeScript clients read each other's checkpoints bit for bit
(the TypeScript side is driven by ts_interop.mjs through node)."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

import ckptd
from _workers import tensor_bytes

SCRIPT = Path(__file__).with_name("ts_interop.mjs")


def _node(*args: str) -> dict:
    res = subprocess.run(["node", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def _sha(t) -> str:
    return hashlib.sha256(tensor_bytes(t)).hexdigest()


def test_python_saves_and_typescript_loads_bit_exact(daemon, job):
    g = torch.Generator().manual_seed(11)
    state = {
        "model": {
            "fc": {"weight": torch.randn(300, 200, generator=g), "bias": torch.randn(200, generator=g).half()},
            "emb": torch.randn(128, 64, generator=g).to(torch.bfloat16),
            "ids": torch.randint(-(2 ** 40), 2 ** 40, (513,), generator=g),
            "mask": torch.rand(77, generator=g) > 0.5,
            "z": torch.randn(5, dtype=torch.complex64, generator=g),
        },
        "strided": torch.randn(50, 40, generator=g)[::2, ::4],
        "step": torch.tensor(42),
        "lr": 0.01,
    }
    engine = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1)
    engine.create("global_step42")
    engine.save(state, "/ckpt/global_step42/mp_rank_00_model_states.pt", device="cuda:0")
    engine.commit("global_step42")
    engine.close()

    out = _node("load", daemon, job, "global_step42", "mp_rank_00_model_states.pt")
    assert (out["checkpointId"], out["step"]) == ("global_step42", 42)
    entries = out["entries"]
    expected = {
        "model/fc/weight": state["model"]["fc"]["weight"], "model/fc/bias": state["model"]["fc"]["bias"],
        "model/emb": state["model"]["emb"], "model/ids": state["model"]["ids"], "model/mask": state["model"]["mask"],
        "model/z": state["model"]["z"], "strided": state["strided"], "step": state["step"],
    }
    assert set(entries) == set(expected) | {ckptd.STRUCTURE_KEY}
    for key, t in expected.items():
        e = entries[key]
        assert e["kind"] == "tensor" and e["dtype"] == str(t.dtype).replace("torch.", ""), key
        assert e["shape"] == list(t.shape) and e["savedDevice"] == "cuda:0", key
        assert e["device"] == "cpu", "the TypeScript loader lists no devices: the hint is cpu"
        assert e["sha256"] == _sha(t), f"{key}: bytes differ"
    assert entries[ckptd.STRUCTURE_KEY]["format"] == "ckptd-structure+pickle"


def _expected_ts_state():
    f32 = (np.arange(3000, dtype=np.float32) * 0.25 - 100).reshape(60, 50)
    bf16_bits = ((0x3F80 + np.arange(1024) * 7) & 0xFFFF).astype(np.uint16).view(np.int16)
    i64 = np.arange(257, dtype=np.int64) * 1099511627776 - 5
    u8 = ((np.arange(300) * 13) & 0xFF).astype(np.uint8)
    return {
        "layers/0/weight": torch.from_numpy(f32),
        "layers/0/bias": torch.from_numpy(u8),
        "embedding": torch.from_numpy(bf16_bits.copy()).view(torch.bfloat16).reshape(32, 32),
        "counter": torch.from_numpy(i64),
        "scalar": torch.tensor(6.25, dtype=torch.float64),
        "complex": torch.tensor([1 - 1j, 2.5 + 0.5j, -3 + 4j], dtype=torch.complex64),
    }


def test_typescript_saves_and_python_loads_bit_exact(daemon, job):
    described = _node("save", daemon, job, "global_step9", "model.pt")
    engine = ckptd.CheckpointEngine(job=job, address=daemon, rank=0, world_size=1)
    state = engine.load("global_step9/model.pt")
    assert engine.last_placement.map_location.get("cuda:2") == "cpu"
    engine.close()

    flat = {
        "layers/0/weight": state["layers"]["0"]["weight"], "layers/0/bias": state["layers"]["0"]["bias"],
        "embedding": state["embedding"], "counter": state["counter"], "scalar": state["scalar"], "complex": state["complex"],
    }
    for key, want in _expected_ts_state().items():
        got = flat[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert tensor_bytes(got) == tensor_bytes(want), f"{key}: bytes differ"
        assert _sha(got) == described[key]["sha256"], key
        assert got.device.type == "cpu"
    assert state["hyper"] == {"lr": 0.125, "name": "ts", "betas": [0.9, 0.999]}
