"""Code that runs in the tests' child processes (trainer ranks, evaluators), and the
helpers to start them and to compare state dicts bit for bit."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Tuple

import numpy as np


# -- running ranks ---------------------------------------------------------------------

def _child(fn: Callable, rank: int, args: tuple, results, env: Dict[str, str]) -> None:
    # The forkserver's environment is the test process's when the first rank of the session
    # started: a variable a later test set (MASTER_PORT) comes from the caller instead.
    os.environ.update(env)
    try:
        import torch

        torch.set_num_threads(1)
        results.put((rank, "ok", fn(rank, *args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put((rank, "error", (type(exc).__name__, str(exc), getattr(exc, "code", None) and str(exc.code),
                                     traceback.format_exc())))


_CTX = None


def _context():
    """A forkserver that has imported torch once: each rank is a fresh process forked
    from it (no state of the test process, no CUDA) without paying torch's import time
    per rank. grpc is deliberately not preloaded: a process must not fork with grpc
    initialised, so each rank imports it itself."""
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["torch", "numpy"])
    return _CTX


def run_ranks(fn: Callable, world_size: int, *args: Any, timeout: float = 120.0) -> Tuple[Dict[int, Any], Dict[int, int]]:
    """Runs ``fn(rank, *args)`` in ``world_size`` fresh processes (as a launcher does).
    Returns ({rank: ("ok", value) or ("error", (type, message, code, traceback))},
    {rank: exit code}). A rank that dies without reporting has only an exit code."""
    return run_processes([(fn, args)] * world_size, timeout=timeout)


def run_processes(jobs: List[Tuple[Callable, tuple]], timeout: float = 120.0) -> Tuple[Dict[int, Any], Dict[int, int]]:
    """Runs ``fn(i, *args)`` for each (fn, args) of ``jobs`` in its own process, concurrently."""
    ctx = _context()
    results = ctx.Queue()
    env = dict(os.environ)
    procs = [ctx.Process(target=_child, args=(fn, i, args, results, env)) for i, (fn, args) in enumerate(jobs)]
    for p in procs:
        p.start()
    out: Dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(out) < len(procs) and time.monotonic() < deadline:
        if all(not p.is_alive() for p in procs) and results.empty():
            break
        try:
            i, status, value = results.get(timeout=0.2)
            out[i] = (status, value)
        except Exception:  # queue.Empty
            pass
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
    return out, {i: p.exitcode for i, p in enumerate(procs)}


def _spawned(rank: int, fn: Callable, args: tuple, results, env: Dict[str, str]) -> None:
    _child(fn, rank, args, results, env)


def spawn_ranks(fn: Callable, world_size: int, *args: Any, timeout: float = 120.0) -> Dict[int, Any]:
    """Runs ``fn(rank, *args)`` on ``world_size`` ranks started by torch.multiprocessing.spawn,
    as DDP and DCP examples launch them. Returns {rank: ("ok", value) or ("error", ...)} as
    run_ranks does; ranks still running at the timeout are killed."""
    import torch.multiprocessing as tmp

    results = tmp.get_context("spawn").SimpleQueue()
    procs = tmp.spawn(_spawned, args=(fn, args, results, dict(os.environ)), nprocs=world_size, join=False)
    out: Dict[int, Any] = {}

    def drain() -> None:
        while not results.empty():
            i, status, value = results.get()
            out[i] = (status, value)

    deadline = time.monotonic() + timeout
    try:
        # Results are read while the ranks run: a rank blocks on a full pipe otherwise.
        while not procs.join(timeout=0.2):
            drain()
            if time.monotonic() > deadline:
                break
    except tmp.ProcessExitedException:
        pass  # a rank that died without reporting is missing from the results
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.kill()
                p.join()
    drain()
    return out


def ok(results: Dict[int, Any], rank: int) -> Any:
    status, value = results.get(rank, ("missing", None))
    assert status == "ok", f"rank {rank}: {status}: {value[3] if isinstance(value, tuple) else value}"
    return value


# -- bit-exact comparison ----------------------------------------------------------------

def tensor_bytes(t) -> bytes:
    from ckptd.tensors import tensor_chunks

    return b"".join(bytes(c) for c in tensor_chunks(t, 1 << 20))


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """``a`` and ``b`` are the same state dict: same types, keys in the same order, same
    python values, tensors of the same class, dtype, shape and device with identical bytes."""
    import torch

    where = path or "<root>"
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {tuple(a.shape)} != {tuple(b.shape)}"
        assert a.device == b.device, f"{where}: device {a.device} != {b.device}"
        assert a.requires_grad == b.requires_grad, f"{where}: requires_grad differs"
        assert tensor_bytes(a) == tensor_bytes(b), f"{where}: bytes differ"
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: bytes differ"
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{where}: keys {list(a.keys())} != {list(b.keys())}"
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), f"{where}: _metadata differs"
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}/{i}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# -- a DeepSpeed-like training state -------------------------------------------------------

def make_training_state(rank: int) -> Dict[str, Any]:
    """A rank's model and optimizer states, the same every time for the same rank:
    float32, bfloat16, int64, a 0-d tensor, python scalars, nested dicts, lists and tuples,
    a non-contiguous tensor, a set, None. About 2.5 MiB."""
    import torch
    from torch import nn

    torch.manual_seed(1000 + rank)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(256, 512), fc2=nn.Linear(512, 128)))
    model.register_buffer("counter", torch.arange(100, dtype=torch.int64) * (rank + 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x = torch.randn(8, 256)
    model(x).pow(2).mean().backward()
    opt.step()
    emb = (torch.randn(512, 64) * (rank + 1)).to(torch.bfloat16)
    base = torch.randn(64, 96)
    model_states = {
        "module": model.state_dict(),
        "embedding_bf16": emb,
        "global_steps": 100,
        "skipped_steps": 0,
        "loss_scale": 65536.0,
        "lr_scheduler": None,
        "sparse_tensor_module_names": set(),
        "buffer_names": ["counter"],
        "dp_world_size": 4,
        "scalar": torch.tensor(2.5 + rank),
        "nested": {"a": {"b": [torch.arange(12, dtype=torch.int32).reshape(3, 4), (1, 2.0, "three", None)]}},
        "noncontiguous": base[:, ::3],  # a strided view: 64 x 32 out of 64 x 96
        "transposed": base.t(),
        "ds_version": "0.14.0",
    }
    optim_states = {
        "optimizer_state_dict": opt.state_dict(),
        "ds_config": {"train_batch_size": 32, "bf16": {"enabled": True}},
        "zero_stage": 0,
        "partition_count": [4],
        "rank": rank,
    }
    return {"model": model_states, "optim": optim_states}


SHARED_ITEM = "mp_rank_00_model_states.pt"


def save_training_state(rank: int, address: str, job: str, tag: str, world_size: int, die_before_commit: int = -1,
                        init_process_group: bool = True) -> Any:
    """A rank of a 4-rank job: saves its states through CheckpointEngine (rank 0 also the
    model states every rank loads, as DeepSpeed does) and commits. Rank/world size come
    from torch.distributed (gloo)."""
    import torch.distributed as dist

    import ckptd

    if init_process_group:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    engine = ckptd.CheckpointEngine(job=job, address=address)
    if not init_process_group:
        engine = ckptd.CheckpointEngine(job=job, address=address, rank=rank, world_size=world_size)
    state = make_training_state(rank)
    engine.create(tag)
    engine.makedirs(f"/checkpoints/{tag}", exist_ok=True)
    if engine.rank == 0:
        engine.save(make_training_state(0)["model"], f"/checkpoints/{tag}/{SHARED_ITEM}")
    engine.save(state["model"], f"/checkpoints/{tag}/rank_{rank:02d}_model_states.pt")
    engine.save(state["optim"], f"/checkpoints/{tag}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    if rank == die_before_commit:
        os._exit(3)  # a crash after saving, before voting
    try:
        result = engine.commit(tag)
        return {"committed": result, "rank": engine.rank, "world_size": engine.world_size}
    except ckptd.CheckpointAborted as exc:
        return {"aborted": exc.reason, "message": str(exc), "code": exc.code.name}
    finally:
        if init_process_group:
            dist.destroy_process_group()


def load_training_state(rank: int, address: str, job: str, tag: str, world_size: int) -> Dict[str, Any]:
    """A fresh rank (RANK/WORLD_SIZE from the environment) loads its items back and
    compares them with the state it would have built."""
    os.environ["RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(world_size)
    os.environ["LOCAL_RANK"] = str(rank)
    import ckptd

    engine = ckptd.CheckpointEngine(job=job, address=address)
    expected = make_training_state(rank)
    model = engine.load(f"/checkpoints/{tag}/rank_{rank:02d}_model_states.pt")
    optim = engine.load(f"/checkpoints/{tag}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt", map_location="cpu")
    shared = engine.load(f"{tag}/{SHARED_ITEM}", map_location=lambda storage, loc: storage)
    assert_same(model, expected["model"])
    assert_same(optim, expected["optim"])
    assert_same(shared, make_training_state(0)["model"])
    # A fresh model and optimizer accept the loaded state dicts.
    import torch
    from torch import nn

    fresh = nn.Sequential(OrderedDict(fc1=nn.Linear(256, 512), fc2=nn.Linear(512, 128)))
    fresh.register_buffer("counter", torch.zeros(100, dtype=torch.int64))
    fresh.load_state_dict(model["module"])
    torch.optim.AdamW(fresh.parameters()).load_state_dict(optim["optimizer_state_dict"])
    return {"rank": engine.rank, "shared_from": engine.last_placement.source_rank,
            "noncontiguous_is_contiguous": model["noncontiguous"].is_contiguous()}


# -- evaluator and trainer -------------------------------------------------------------------

def evaluator_process(_rank: int, address: str, job: str, steps: int, partition: str) -> List[int]:
    """Follows the job with checkpoints_iterator, restores each checkpoint, reports it."""
    import torch

    import ckptd

    seen: List[int] = []
    model = torch.nn.Linear(16, 4)
    for ckpt in ckptd.checkpoints_iterator(job, timeout=60, partition_name=partition, address=address):
        snap = ckptd.Snapshot(job, {"model": model}, address=address, rank=0, world_size=1)
        snap.restore(ckpt)
        assert snap.step == ckpt.step, (snap.step, ckpt.step)
        seen.append(ckpt.step)
        time.sleep(0.5)  # "evaluating": the trainer must be blocked meanwhile
        ckptd.mark_done_eval(job, ckpt, partition, {"loss": float(model.weight.sum()), "step": ckpt.step},
                             address=address)
        snap.close()
        if ckpt.step >= steps:
            break
    return seen


def trainer_process(_rank: int, address: str, job: str, steps: int, partition: str) -> List[Dict[str, Any]]:
    """Saves a snapshot per step and waits for the evaluator before going on."""
    import torch

    import ckptd

    torch.manual_seed(7)
    model = torch.nn.Linear(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    snap = ckptd.Snapshot(job, {"model": model, "optimizer": opt}, address=address, rank=0, world_size=1)
    log = []
    for step in range(1, steps + 1):
        model(torch.randn(2, 16)).sum().backward()
        opt.step()
        snap.step = step
        snap.save(step)
        t0 = time.monotonic()
        metrics = ckptd.wait_for_evaluators(job, [partition], step, timeout=60, strict=True, address=address)
        log.append({"step": step, "waited": time.monotonic() - t0, "metrics": metrics,
                    "weight_sum": float(model.weight.sum())})
    snap.close()
    return log
