"""Tensors and state dicts on the wire, in one process against a real daemon."""

from collections import OrderedDict

import numpy as np
import torch

import ckptd
from ckptd import _crc
from ckptd.client import _encode_chunk
from ckptd._proto import checkpoint_service_pb2 as pb
from ckptd.tensors import tensor_chunks
from _workers import assert_same, tensor_bytes


def test_crc32c_matches_the_check_value_and_combines():
    assert _crc.crc32c(b"123456789") == 0xE3069283
    a, b = bytes(range(256)) * 7, bytes(range(255, -1, -1)) * 1000
    assert _crc.combine(_crc.crc32c(a), _crc.crc32c(b), len(b)) == _crc.crc32c(a + b)
    assert _crc.crc32c(b, _crc.crc32c(a)) == _crc.crc32c(a + b)
    assert _crc.combine(0, _crc.crc32c(b), len(b)) == _crc.crc32c(b)


def test_a_pre_encoded_chunk_parses_as_a_save_request():
    data = memoryview(bytes(range(200)) * 1000)
    msg = pb.SaveRequest.FromString(_encode_chunk(data, 12345))
    assert msg.WhichOneof("msg") == "chunk"
    assert msg.chunk.data == bytes(data) and msg.chunk.crc32c == 12345


def test_cpu_tensor_chunks_are_views_of_its_memory():
    t = torch.arange(1 << 20, dtype=torch.float32)
    arr = t.numpy()
    chunks = list(tensor_chunks(t, 1 << 20))
    assert [len(c) for c in chunks] == [1 << 20] * 4
    assert all(np.shares_memory(np.frombuffer(c, np.uint8), arr) for c in chunks)
    bf = torch.randn(1000).to(torch.bfloat16)
    assert b"".join(bytes(c) for c in tensor_chunks(bf, 333)) == bf.view(torch.int16).numpy().tobytes()


ALL_TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32,
                    torch.int64, torch.uint8, torch.bool, torch.complex64, torch.complex128]


def _sample(dtype, shape=(37, 11)):
    g = torch.Generator().manual_seed(5)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_complex:
        return torch.randn(shape, dtype=dtype, generator=g)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g) * 100).to(dtype)
    return torch.randint(-100 if dtype != torch.uint8 else 0, 100, shape, generator=g).to(dtype)


def test_every_dtype_shape_and_layout_round_trips(daemon, job):
    state = OrderedDict()
    for dt in ALL_TORCH_DTYPES:
        name = str(dt).replace("torch.", "")
        state[name] = _sample(dt)
        state[f"{name}_scalar"] = _sample(dt, ())
    state["empty"] = torch.empty(0, 3)
    state["strided"] = torch.randn(40, 30)[::3, 1::2]
    state["transposed_bf16"] = _sample(torch.bfloat16, (16, 24)).t()
    state["param"] = torch.nn.Parameter(torch.randn(3, 3))
    state["frozen"] = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    shared = torch.randn(5)
    state["tied"] = {"a": shared, "b": shared}
    state["numpy"] = {dt: (np.arange(10) % 3).astype(dt) for dt in ("float32", "uint16", "uint32", "uint64", "int8", "bool", "complex64")}
    state["numpy_big_endian"] = np.arange(6, dtype=">i4").reshape(2, 3)
    state["python"] = {"int": 7, "float": 0.1, "none": None, "tuple": (1, (2, "x")), "set": {1, 2}, 3: "int key",
                       "bytes": b"\x00\xff", "list": [torch.ones(2), 4.5]}
    with ckptd.CkptdClient(daemon, chunk_bytes=4096) as client:  # small chunks: many per tensor, odd boundaries
        engine = ckptd.CheckpointEngine(job=job, client=client, rank=0, world_size=1)
        engine.create("step3")
        engine.save(state, "step3/state")
        assert engine.commit("step3") is True
        loaded = engine.load("step3/state")
    big_endian = state.pop("numpy_big_endian")
    got_big_endian = loaded.pop("numpy_big_endian")
    assert_same(loaded, state)
    assert got_big_endian.tolist() == big_endian.tolist() and got_big_endian.dtype == np.dtype("<i4")
    assert loaded["tied"]["a"] is loaded["tied"]["b"], "one tensor object at two paths stays one object"
    assert isinstance(loaded["param"], torch.nn.Parameter) and loaded["param"].requires_grad
    assert not loaded["frozen"].requires_grad
    assert loaded["strided"].is_contiguous()


def test_entries_are_flattened_with_slash_keys_and_one_structure_entry(daemon, job):
    opt_state = {"state": {0: {"exp_avg": torch.ones(4), "step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    with ckptd.CkptdClient(daemon) as client:
        engine = ckptd.CheckpointEngine(job=job, client=client, rank=0, world_size=1)
        engine.create("global_step1")
        engine.save({"optimizer": opt_state}, "/x/global_step1/optim.pt")
        engine.commit("global_step1")
        ckpt = client.get_checkpoint(job, "global_step1", full=True)
    entries = {e.key: e for e in ckpt.ranks[0].items[0].entries}
    assert set(entries) == {"optimizer/state/0/exp_avg", "optimizer/state/0/step", ckptd.STRUCTURE_KEY}
    assert entries[ckptd.STRUCTURE_KEY].WhichOneof("kind") == "object"
    assert ckpt.step == 1


def test_a_large_tensor_streams_in_4_mib_chunks(daemon, job):
    t = torch.randn(6 << 20)  # 24 MiB
    with ckptd.CkptdClient(daemon) as client:
        res = client.save(job, "s1", 1, 0, 1, "big", [ckptd.TensorEntry("w", t)])
        assert res.bytes_received == t.numel() * 4
        assert client.commit(job, "s1", 1, 0, 1, ["big"], res.attempt).committed
        ckpt = client.get_checkpoint(job, "s1", full=True)
        assert ckpt.ranks[0].items[0].entries[0].chunk_count == 6
        loaded = client.load_items(job, "s1")
    assert tensor_bytes(loaded.items["big"]["w"].value) == tensor_bytes(t)


def test_the_device_assembly_path_fills_a_device_tensor_chunk_by_chunk():
    # "cpu:0" takes the path used for accelerators (a device tensor filled through a
    # staging buffer), which this machine without a GPU can run.
    from ckptd.tensors import TensorAssembler, TensorInfo

    t = _sample(torch.bfloat16, (10, 100))
    assembler = TensorAssembler(TensorInfo("bfloat16", t.shape, "cuda:1"), "cpu:0")
    assert assembler.device == "cpu:0"
    for chunk in tensor_chunks(t, 300):
        assembler.add(bytes(chunk))
    assert assembler.complete and torch.equal(assembler.torch(), t)
