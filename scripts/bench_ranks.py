"""The Python side of `npm run bench`: generates the data and runs R trainer ranks per case.

    python3 scripts/bench_ranks.py MODE --dir DATA --kind dense|bf16|sparse|transformer --ranks R [...]

Modes (each prints one JSON line on stdout; scripts/bench.ts orchestrates them):

    gen           writes DATA/<kind>/rank-NNNNN.bin (raw tensor bytes, concatenated) and
                  DATA/<kind>/layout.json for each of --kinds, R ranks x S MiB each (transformer:
                  at most S MiB, the hidden size that fits)
    ckptd-save    R processes load their tensors, meet at a barrier, then each saves one item
                  through the ckptd Python client and votes (Commit: durable)
    ckptd-load    R processes load their item back into CPU tensors
    torch-save    R processes torch.save their state dict to OUT/rank-N.pt, flush + fsync
                  (DeepSpeed's TorchCheckpointEngine)
    torch-load    R processes torch.load those files
    dcp-save      torch's sharded checkpoint: save_state_dict(FileSystemWriter(sync_files=True)),
                  R ranks on gloo, started with torch.multiprocessing.spawn
    dcp-load      load_state_dict(FileSystemReader) of that checkpoint
    ckptd-steps   R processes time CPU training steps, then start an async save (snapshot mode:
                  it returns after a copy and uploads behind) and keep stepping until it is
                  durable: the steps' slow-down while it uploads
    ckptd-tiny    one process saves 1 and then 1,000 one-element tensors (Save + Commit): the
                  fixed cost per tensor
    evict         posix_fadvise(DONTNEED) on every file under the given paths (after an fsync),
                  so a load reads from the disk, not the page cache

Times are CLOCK_MONOTONIC (system-wide on Linux), so the spans of separate processes compare:
a case's time is the last rank's end minus the first rank's start, after a barrier.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

KINDS = ("dense", "bf16", "sparse", "transformer")
#: Each rank's state dict is split into tensors of this many MiB (the last may be smaller).
TENSOR_MIB = 32
#: Rows of the 2-D tensors, in elements; sparse state zeroes whole rows (untouched embedding rows).
ROW = 1024


#: The transformer kind: GPT-2 small's depth, vocabulary and positions; the hidden size is
#: scaled down to fit --mib.
GPT2_LAYERS = 12
GPT2_VOCAB = 8192
GPT2_POSITIONS = 1024


def gpt2_shapes(h: int):
    """GPT-2's parameters at hidden size h, in its state dict's order."""
    shapes = [("wte.weight", [GPT2_VOCAB, h]), ("wpe.weight", [GPT2_POSITIONS, h])]
    for i in range(GPT2_LAYERS):
        p = f"h.{i}."
        shapes += [(p + "ln_1.weight", [h]), (p + "ln_1.bias", [h]), (p + "attn.c_attn.weight", [h, 3 * h]),
                   (p + "attn.c_attn.bias", [3 * h]), (p + "attn.c_proj.weight", [h, h]), (p + "attn.c_proj.bias", [h]),
                   (p + "ln_2.weight", [h]), (p + "ln_2.bias", [h]), (p + "mlp.c_fc.weight", [h, 4 * h]),
                   (p + "mlp.c_fc.bias", [4 * h]), (p + "mlp.c_proj.weight", [4 * h, h]), (p + "mlp.c_proj.bias", [h])]
    return shapes + [("ln_f.weight", [h]), ("ln_f.bias", [h])]


def transformer_layout(mib: int):
    """A GPT-2-shaped model and its AdamW state (exp_avg, exp_avg_sq and step per parameter:
    4 x 148 = 592 float32 tensors), at the largest hidden size (a multiple of 16) that fits in
    mib MiB. AdamW's step is stored as a 1-element tensor (not 0-d) so DCP can shard it too."""
    def size(h):
        return sum(3 * 4 * _numel(s) + 4 for _, s in gpt2_shapes(h))
    h = 16
    while size(h + 16) <= mib << 20:
        h += 16
    out = []
    off = 0
    for name, shape in gpt2_shapes(h):
        for key, sh in ((f"model.{name}", shape), (f"optim.{name}.exp_avg", shape), (f"optim.{name}.exp_avg_sq", shape),
                        (f"optim.{name}.step", [1])):
            n = 4 * _numel(sh)
            out.append((key, "float32", sh, off, n))
            off += n
    return out


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def layout(kind: str, mib: int):
    """The tensors of one rank: [(name, dtype, shape, offset, nbytes)]; the same for every rank."""
    if kind == "transformer":
        return transformer_layout(mib)
    elem = 2 if kind == "bf16" else 4
    total = mib << 20
    out = []
    off = 0
    i = 0
    while off < total:
        n = min(TENSOR_MIB << 20, total - off)
        rows = n // (ROW * elem)
        out.append((f"layer{i:03d}.weight" if kind != "sparse" else f"state.{i:03d}.exp_avg_sq", "bfloat16" if kind == "bf16" else "float32",
                    [rows, ROW], off, rows * ROW * elem))
        off += rows * ROW * elem
        i += 1
    return out


def gen_rank(args, kind: str, rank: int) -> None:
    d = os.path.join(args.dir, kind)
    rng = np.random.default_rng([7, KINDS.index(kind), rank])
    path = os.path.join(d, f"rank-{rank:05d}.bin")
    if kind == "transformer":
        with open(path, "wb") as f:
            for name, _dtype, shape, _off, nbytes in layout(kind, args.mib):
                if name.endswith(".step"):
                    a = np.full(shape, 1000.0, dtype=np.float32)
                elif name.endswith(".exp_avg_sq"):
                    a = np.square(rng.standard_normal(shape, dtype=np.float32) * 1e-3)
                elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                    a = 1 + rng.standard_normal(shape, dtype=np.float32) * 0.02
                else:
                    a = rng.standard_normal(shape, dtype=np.float32) * 0.02
                assert a.nbytes == nbytes
                a.tofile(f)
        return
    with open(path, "wb") as f:
        for _name, _dtype, shape, _off, nbytes in layout(kind, args.mib):
            rows, cols = shape
            if kind == "dense":
                a = rng.standard_normal((rows, cols), dtype=np.float32)
                a *= 0.02
            elif kind == "bf16":
                w = rng.standard_normal((rows, cols), dtype=np.float32)
                w *= 0.02
                # bfloat16 = the upper half of a float32 (round to nearest even).
                u = w.view(np.uint32)
                u += 0x7FFF + ((u >> 16) & 1)
                a = (u >> 16).astype(np.uint16)
            else:
                # Adam's exp_avg_sq of an embedding table: rows never touched stay exactly zero.
                a = rng.standard_normal((rows, cols), dtype=np.float32)
                a *= 1e-3
                np.square(a, out=a)
                a[rng.random(rows) < 0.5] = 0
            assert a.nbytes == nbytes
            a.tofile(f)


def cmd_gen(args) -> None:
    import multiprocessing as mp
    kinds = args.kinds.split(",")
    for kind in kinds:
        d = os.path.join(args.dir, kind)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "layout.json"), "w") as f:
            json.dump([{"name": n, "dtype": dt, "shape": s, "offset": o, "nbytes": b} for n, dt, s, o, b in layout(kind, args.mib)], f)
    jobs = [(kind, r) for kind in kinds for r in range(args.ranks)]
    with mp.get_context("fork").Pool(min(len(jobs), os.cpu_count() or 2)) as pool:
        pool.starmap(_gen_one, [(args, k, r) for k, r in jobs])
    print(json.dumps({"bytes": sum(os.path.getsize(os.path.join(args.dir, k, f"rank-{r:05d}.bin")) for k, r in jobs)}))


def _gen_one(args, kind, rank):
    gen_rank(args, kind, rank)


def load_state(data_dir: str, kind: str, rank: int):
    """The rank's state dict as CPU torch tensors, read from the generated file (untimed)."""
    import torch
    d = os.path.join(data_dir, kind)
    with open(os.path.join(d, "layout.json")) as f:
        lay = json.load(f)
    raw = np.fromfile(os.path.join(d, f"rank-{rank:05d}.bin"), dtype=np.uint8)
    sd = {}
    for t in lay:
        b = raw[t["offset"]:t["offset"] + t["nbytes"]]
        if t["dtype"] == "bfloat16":
            v = torch.from_numpy(b.view(np.int16)).view(torch.bfloat16)
        else:
            v = torch.from_numpy(b.view(np.float32))
        sd[t["name"]] = v.reshape(t["shape"])
    return sd


def state_bytes(sd) -> int:
    return sum(v.numel() * v.element_size() for v in sd.values())


# -- rank processes ----------------------------------------------------------------------

def run_ranks(args) -> dict:
    """Starts R processes running rank_entry(args, rank, barrier, queue); gathers their reports."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(args.ranks)
    q = ctx.Queue()
    procs = [ctx.Process(target=rank_entry, args=(args, r, barrier, q)) for r in range(args.ranks)]
    for p in procs:
        p.start()
    reports = []
    for _ in procs:
        reports.append(q.get(timeout=1800))
    for p in procs:
        p.join()
    failed = [r for r in reports if "error" in r]
    if failed:
        raise SystemExit(f"{args.mode}: rank {failed[0]['rank']} failed: {failed[0]['error']}")
    reports.sort(key=lambda r: r["rank"])
    start = min(r["t0"] for r in reports)
    end = max(r["t_end"] for r in reports)
    out = {"mode": args.mode, "kind": args.kind, "ranks": args.ranks, "seconds": end - start,
           "bytes": sum(r["bytes"] for r in reports)}
    for key in ("stall", "stored", "save", "cpu", "step_base", "step_during", "steps_during"):
        vals = [r[key] for r in reports if key in r]
        if vals:
            out[key + "_max"] = max(vals)
            out[key + "_mean"] = sum(vals) / len(vals)
            out[key + "_sum"] = sum(vals)
    return out


def rank_entry(args, rank, barrier, q):
    """A rank process: runs the mode's function and reports to the parent."""
    fn = {"ckptd-save": ckptd_save_rank, "ckptd-load": ckptd_load_rank, "torch-save": torch_save_rank,
          "torch-load": torch_load_rank, "ckptd-steps": ckptd_steps_rank,
          "ckptd-reshard-load": ckptd_reshard_load_rank}[args.mode]
    try:
        q.put(fn(args, rank, barrier))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        q.put({"rank": rank, "error": f"{type(exc).__name__}: {exc}"})


def ckptd_save_rank(args, rank, barrier):
    import ckptd
    sd = load_state(args.dir, args.kind, rank)
    if args.sharded:
        # Each rank's tensor is its row block of one global tensor per key (as FSDP / row-parallel
        # layers shard), saved with its place so that another world size can load it resharded.
        entries = [ckptd.TensorEntry(k, v, global_shape=[args.ranks * v.shape[0], *v.shape[1:]],
                                     global_offsets=[rank * v.shape[0]] + [0] * (v.dim() - 1)) for k, v in sd.items()]
    else:
        entries = [ckptd.TensorEntry(k, v) for k, v in sd.items()]
    client = ckptd.CkptdClient(args.address)
    list(client.list_checkpoints(args.job))  # connect before the clock starts
    staging = None
    if args.snapshot_budget_mib:
        # A trainer that snapshots keeps its staging buffers from one checkpoint to the next
        # (first-touched memory is what it reuses): allocate and touch them before the clock.
        staging = ckptd.SnapshotBuffers(args.snapshot_budget_mib << 20)
        staging.prepare(entries)
    barrier.wait()
    t0 = time.monotonic()
    c0 = time.process_time()
    if args.async_save:
        pending = client.save_async(args.job, args.ckpt, 1, rank, args.ranks, "model", entries, snapshot=staging)
        t_ret = time.monotonic()
        res = pending.result()
    else:
        res = client.save(args.job, args.ckpt, 1, rank, args.ranks, "model", entries)
        t_ret = time.monotonic()
    t_saved = time.monotonic()
    c = client.commit(args.job, args.ckpt, 1, rank, args.ranks, ["model"], res.attempt, timeout=600)
    t_end = time.monotonic()
    if not c.committed:
        raise RuntimeError(f"commit {c.outcome}: {c.reason}")
    client.close()
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": state_bytes(sd), "stall": t_ret - t0,
            "save": t_saved - t0, "stored": res.bytes_stored, "cpu": time.process_time() - c0}


def training_step(work):
    """A CPU training step's stand-in: matmuls on one thread (a trainer's compute), ~20-50 ms."""
    a, b = work
    for _ in range(4):
        a = (a @ b).tanh_()
    return a


def ckptd_steps_rank(args, rank, barrier):
    """Steps before the save (the baseline), then an async save in snapshot mode (the upload
    runs behind the steps, as in a trainer that checkpoints asynchronously) and steps until it
    is durable; reports the median step before, the mean step during, and their count."""
    import torch
    import ckptd
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(rank)
    work = (torch.randn(384, 384, generator=g), torch.randn(384, 384, generator=g) / 20)
    sd = load_state(args.dir, args.kind, rank)
    if args.sharded:
        # Each rank's tensor is its row block of one global tensor per key (as FSDP / row-parallel
        # layers shard), saved with its place so that another world size can load it resharded.
        entries = [ckptd.TensorEntry(k, v, global_shape=[args.ranks * v.shape[0], *v.shape[1:]],
                                     global_offsets=[rank * v.shape[0]] + [0] * (v.dim() - 1)) for k, v in sd.items()]
    else:
        entries = [ckptd.TensorEntry(k, v) for k, v in sd.items()]
    client = ckptd.CkptdClient(args.address)
    list(client.list_checkpoints(args.job))
    staging = ckptd.SnapshotBuffers(state_bytes(sd) + (1 << 20))
    staging.prepare(entries)  # a trainer keeps these from one checkpoint to the next
    for _ in range(3):
        training_step(work)  # warm up
    barrier.wait()
    t0 = time.monotonic()
    base = []
    for _ in range(8):
        s = time.monotonic()
        training_step(work)
        base.append(time.monotonic() - s)
    barrier.wait()  # every rank saves at once, as trainers do
    t_save = time.monotonic()
    pending = client.save_async(args.job, args.ckpt, 1, rank, args.ranks, "model", entries, snapshot=staging)
    stall = time.monotonic() - t_save
    during = []
    while not pending.done() or not during:
        s = time.monotonic()
        training_step(work)
        during.append(time.monotonic() - s)
    res = pending.result()
    c = client.commit(args.job, args.ckpt, 1, rank, args.ranks, ["model"], res.attempt, timeout=600)
    t_end = time.monotonic()
    if not c.committed:
        raise RuntimeError(f"commit {c.outcome}: {c.reason}")
    client.close()
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": state_bytes(sd), "stall": stall,
            "step_base": sorted(base)[len(base) // 2], "step_during": sum(during) / len(during), "steps_during": len(during)}


def cmd_tiny(args) -> dict:
    """Save + Commit of 1 and of 1,000 one-element float32 tensors, best of 3 each: the time
    per tensor, and the marginal cost of a tensor (the difference, per added tensor)."""
    import torch
    import ckptd
    client = ckptd.CkptdClient(args.address)
    list(client.list_checkpoints(args.job))
    best = {}
    for n in (1, 1000):
        state = [ckptd.TensorEntry(f"t{i:05d}", torch.tensor([float(i)])) for i in range(n)]
        times = []
        for r in range(3):
            ckpt = f"{args.ckpt}-{n}-{r}"
            t0 = time.monotonic()
            res = client.save(args.job, ckpt, 1, 0, 1, "model", state)
            c = client.commit(args.job, ckpt, 1, 0, 1, ["model"], res.attempt, timeout=600)
            times.append(time.monotonic() - t0)
            if not c.committed:
                raise RuntimeError(f"commit {c.outcome}: {c.reason}")
            client.delete_checkpoint(args.job, ckpt)
        best[n] = min(times)
    client.close()
    return {"mode": "ckptd-tiny", "seconds_1": best[1], "seconds_1000": best[1000],
            "us_per_tensor": best[1000] / 1000 * 1e6, "us_per_added_tensor": (best[1000] - best[1]) / 999 * 1e6}


def ckptd_load_rank(args, rank, barrier):
    import ckptd
    client = ckptd.CkptdClient(args.address)
    list(client.list_checkpoints(args.job))
    barrier.wait()
    t0 = time.monotonic()
    loaded = client.load_items(args.job, args.ckpt, rank=rank, place=False)
    t_end = time.monotonic()
    tensors = loaded.items["model"]
    n = sum(t.value.numel() * t.value.element_size() for t in tensors.values())
    if args.check:
        check_state(args, rank, {k: t.value for k, t in tensors.items()})
    client.close()
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": n}


def row_block(rows: int, parts: int, part: int):
    """Rows [start, end) of part `part` when `rows` rows split in `parts` as torch.chunk does."""
    size = -(-rows // parts)
    start = min(rows, part * size)
    return start, min(rows, start + size)


def ckptd_reshard_load_rank(args, rank, barrier):
    """Rank `rank` of args.ranks loads its row block of every tensor that args.saved_ranks ranks
    saved row-sharded: the daemon assembles each box from the saved shards."""
    import ckptd
    client = ckptd.CkptdClient(args.address)
    list(client.list_checkpoints(args.job))
    barrier.wait()
    t0 = time.monotonic()
    loaded = client.load_items(args.job, args.ckpt, rank=rank, items=["model"], world_size=args.ranks,
                               shard_as=ckptd.ShardAs(rank, args.ranks, dim=0), place=False)
    t_end = time.monotonic()
    tensors = loaded.items["model"]
    n = sum(t.value.numel() * t.value.element_size() for t in tensors.values())
    if args.check:
        import torch
        saved = [load_state(args.dir, args.kind, r) for r in range(args.saved_ranks)]
        for k, t in tensors.items():
            whole = torch.cat([sd[k] for sd in saved])
            start, end = row_block(whole.shape[0], args.ranks, rank)
            if not torch.equal(t.value, whole[start:end]):
                raise RuntimeError(f"rank {rank} of {args.ranks}: resharded {k} differs")
    client.close()
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": n}


def check_state(args, rank, got) -> None:
    import torch
    want = load_state(args.dir, args.kind, rank)
    for k, v in want.items():
        if not torch.equal(got[k], v):
            raise RuntimeError(f"rank {rank} tensor {k} differs after the round trip")


def torch_save_rank(args, rank, barrier):
    import torch
    sd = load_state(args.dir, args.kind, rank)
    path = os.path.join(args.out, f"rank-{rank:05d}.pt")
    barrier.wait()
    t0 = time.monotonic()
    with open(path, "wb") as f:
        torch.save(sd, f)
        f.flush()
        os.fsync(f.fileno())
    t_end = time.monotonic()
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": state_bytes(sd), "stall": t_end - t0,
            "stored": os.path.getsize(path)}


def torch_load_rank(args, rank, barrier):
    import torch
    path = os.path.join(args.out, f"rank-{rank:05d}.pt")
    barrier.wait()
    t0 = time.monotonic()
    sd = torch.load(path, map_location="cpu")
    t_end = time.monotonic()
    if args.check:
        check_state(args, rank, sd)
    return {"rank": rank, "t0": t0, "t_end": t_end, "bytes": state_bytes(sd)}


# -- torch.distributed checkpoint -----------------------------------------------------------

def import_dcp():
    """torch's sharded checkpoint module (see ckptd._compat.import_dcp: torch 1.13 on Python 3.11)."""
    from ckptd._compat import import_dcp as ckptd_import_dcp
    return ckptd_import_dcp()


def dcp_rank(rank, args, port, q):
    try:
        import torch.distributed as dist
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
        dcp = import_dcp()
        import torch
        from torch.distributed._shard.sharded_tensor import Shard, init_from_local_shards
        local = load_state(args.dir, args.kind, rank)
        n = state_bytes(local)

        def sharded(tensors):
            # DCP writes plain tensors from the coordinator only (as replicated): each rank's
            # data is its shard of one global tensor per key, split along dim 0.
            out = {}
            for k, v in tensors.items():
                rows = v.shape[0]
                shard = Shard.from_tensor_and_offsets(v, [rank * rows] + [0] * (v.dim() - 1), rank)
                out[k] = init_from_local_shards([shard], args.ranks * rows, *v.shape[1:])
            return out

        if args.mode == "dcp-reshard-load":
            # args.ranks loaders of the state args.saved_ranks ranks saved: each rank's target is its
            # row block (torch.chunk's split) of every global tensor; DCP's planner reads the overlaps.
            import json as _json
            with open(os.path.join(args.dir, args.kind, "layout.json")) as f:
                lay = _json.load(f)
            target, n = {}, 0
            dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32}
            for t in lay:
                rows = args.saved_ranks * t["shape"][0]
                start, end = row_block(rows, args.ranks, rank)
                local_t = torch.empty([end - start, *t["shape"][1:]], dtype=dtypes.get(t["dtype"], torch.float32))
                n += local_t.numel() * local_t.element_size()
                shard = Shard.from_tensor_and_offsets(local_t, [start] + [0] * (len(t["shape"]) - 1), rank)
                target[t["name"]] = init_from_local_shards([shard], rows, *t["shape"][1:])
            dist.barrier()
            t0 = time.monotonic()
            dcp.load_state_dict(target, dcp.FileSystemReader(args.out))
            t_end = time.monotonic()
            dist.barrier()
            dist.destroy_process_group()
            q.put({"rank": rank, "t0": t0, "t_end": t_end, "bytes": n, "stall": t_end - t0})
            return
        sd = sharded(local)
        if args.mode == "dcp-load":
            target = sharded({k: torch.empty_like(v) for k, v in local.items()})
            dist.barrier()
            t0 = time.monotonic()
            dcp.load_state_dict(target, dcp.FileSystemReader(args.out))
            t_end = time.monotonic()
            if args.check:
                for k, v in local.items():
                    if not torch.equal(target[k].local_shards()[0].tensor, v):
                        raise RuntimeError(f"dcp-load: {k} differs")
        else:
            dist.barrier()
            t0 = time.monotonic()
            dcp.save_state_dict(sd, dcp.FileSystemWriter(args.out, sync_files=True))
            t_end = time.monotonic()
        dist.barrier()
        dist.destroy_process_group()
        q.put({"rank": rank, "t0": t0, "t_end": t_end, "bytes": n, "stall": t_end - t0})
    except BaseException as exc:  # noqa: BLE001
        q.put({"rank": rank, "error": f"{type(exc).__name__}: {exc}"})


def cmd_dcp(args) -> dict:
    import socket
    import torch.multiprocessing as tmp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = tmp.get_context("spawn")
    q = ctx.SimpleQueue()
    os.makedirs(args.out, exist_ok=True)
    # torchrun crashes with Debian's torch 1.13 on Python 3.11; spawn starts the ranks instead.
    tmp.spawn(dcp_rank, args=(args, port, q), nprocs=args.ranks, join=True)
    reports = [q.get() for _ in range(args.ranks)]
    failed = [r for r in reports if "error" in r]
    if failed:
        raise SystemExit(f"{args.mode}: rank {failed[0]['rank']} failed: {failed[0]['error']}")
    start = min(r["t0"] for r in reports)
    end = max(r["t_end"] for r in reports)
    stored = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    return {"mode": args.mode, "kind": args.kind, "ranks": args.ranks, "seconds": end - start,
            "bytes": sum(r["bytes"] for r in reports), "stored_sum": stored,
            "stall_max": max(r["stall"] for r in reports)}


def cmd_evict(paths) -> dict:
    n = 0
    for top in paths:
        for root, _dirs, files in os.walk(top):
            for f in files:
                p = os.path.join(root, f)
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                finally:
                    os.close(fd)
    return {"mode": "evict", "files": n}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["gen", "ckptd-save", "ckptd-load", "ckptd-steps", "ckptd-tiny", "torch-save", "torch-load",
                                    "dcp-save", "dcp-load", "evict", "probe", "ckptd-reshard-load", "dcp-reshard-load"])
    p.add_argument("paths", nargs="*")
    p.add_argument("--dir", default="")
    p.add_argument("--kind", default="dense", choices=KINDS)
    p.add_argument("--kinds", default=",".join(KINDS), help="gen: the kinds to generate")
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--address", default="")
    p.add_argument("--job", default="bench")
    p.add_argument("--ckpt", default="ckpt")
    p.add_argument("--out", default="")
    p.add_argument("--async-save", action="store_true")
    p.add_argument("--snapshot-budget-mib", type=int, default=0,
                   help="async save: copy up to this many MiB of tensors into reused host buffers first")
    p.add_argument("--check", action="store_true", help="compare loaded tensors with the generated ones")
    p.add_argument("--sharded", action="store_true",
                   help="ckptd-save: save each rank's tensors as its row block of one global tensor per key")
    p.add_argument("--saved-ranks", type=int, default=0,
                   help="resharded loads: the ranks that saved the state (--ranks: the ranks that load it)")
    args = p.parse_args()
    if args.mode == "gen":
        cmd_gen(args)
        return
    if args.mode == "evict":
        print(json.dumps(cmd_evict(args.paths)))
        return
    if args.mode == "probe":
        try:
            import torch
            import_dcp()
            print(json.dumps({"torch": torch.__version__, "dcp": True}))
        except Exception as exc:  # noqa: BLE001
            print(json.dumps({"torch": None, "error": str(exc)}))
        return
    if args.mode == "ckptd-tiny":
        print(json.dumps(cmd_tiny(args)))
        return
    if args.mode in ("dcp-reshard-load", "ckptd-reshard-load") and args.saved_ranks < 1:
        raise SystemExit(f"{args.mode} needs --saved-ranks")
    if args.mode in ("dcp-save", "dcp-load", "dcp-reshard-load"):
        print(json.dumps(cmd_dcp(args)))
        return
    print(json.dumps(run_ranks(args)))


if __name__ == "__main__":
    main()
