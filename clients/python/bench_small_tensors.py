"""Measures the fixed cost per tensor of a save: many tiny tensors, and a real state dict.

    /usr/bin/python3 clients/python/bench_small_tensors.py [--address HOST:PORT] [--tensors 1000]
        [--repeat 3] [--no-shm] [--profile OUT.pstats]

Without --address it starts a daemon from dist/ (``npm run build`` first) on a free port
with a temporary data directory (under $TMPDIR). Cases, each saved through the Python
client as one item and committed, against torch.save of the same dict + flush + fsync:

    tiny         --tensors one-element float32 tensors (the fixed cost per tensor)
    transformer  a GPT-2-small-shaped model and its AdamW state (see ``transformer_state``)

Prints one JSON line per case: best-of-repeat seconds of each, and µs per tensor.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import ckptd  # noqa: E402
from bench_upload import start_daemon  # noqa: E402


def transformer_state(layers: int = 12, hidden: int = 128, vocab: int = 8192, positions: int = 1024, seed: int = 0):
    """A GPT-2-small-shaped state dict with the hidden size scaled down (42 MiB at the
    defaults): token and position embeddings, per layer two layer norms (weight and bias of
    ``hidden`` elements), attention c_attn/c_proj and MLP c_fc/c_proj weights and biases,
    a final layer norm; and for each parameter AdamW's exp_avg, exp_avg_sq and step, as a
    flat {name: tensor} dict of 4 x 148 = 592 tensors."""
    g = torch.Generator().manual_seed(seed)
    h = hidden
    shapes = {"wte.weight": (vocab, h), "wpe.weight": (positions, h)}
    for i in range(layers):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": (h,), p + "ln_1.bias": (h,),
            p + "attn.c_attn.weight": (h, 3 * h), p + "attn.c_attn.bias": (3 * h,),
            p + "attn.c_proj.weight": (h, h), p + "attn.c_proj.bias": (h,),
            p + "ln_2.weight": (h,), p + "ln_2.bias": (h,),
            p + "mlp.c_fc.weight": (h, 4 * h), p + "mlp.c_fc.bias": (4 * h,),
            p + "mlp.c_proj.weight": (4 * h, h), p + "mlp.c_proj.bias": (h,),
        })
    shapes.update({"ln_f.weight": (h,), "ln_f.bias": (h,)})
    state = {}
    for name, shape in shapes.items():
        state["model." + name] = torch.randn(shape, generator=g) * 0.02
        state["optim." + name + ".exp_avg"] = torch.randn(shape, generator=g) * 1e-3
        state["optim." + name + ".exp_avg_sq"] = torch.rand(shape, generator=g) * 1e-6
        state["optim." + name + ".step"] = torch.tensor(1000.0)
    return state


def tiny_state(n: int):
    return {f"t{i:05d}": torch.tensor([float(i)]) for i in range(n)}


def state_bytes(state) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def torch_save_fsync(state, path: str) -> float:
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0


def ckptd_save(client, state, job: str, ckpt: str) -> float:
    entries = [ckptd.TensorEntry(k, v) for k, v in state.items()]
    t0 = time.perf_counter()
    res = client.save(job, ckpt, 1, 0, 1, "state", entries)
    out = client.commit(job, ckpt, 1, 0, 1, ["state"], res.attempt)
    dt = time.perf_counter() - t0
    if out.outcome != "COMMITTED":
        raise RuntimeError(f"{ckpt}: {out.outcome} {out.reason}")
    return dt


def ckptd_load(client, state, job: str, ckpt: str) -> float:
    t0 = time.perf_counter()
    got = client.load_items(job, ckpt, place=False).items["state"]
    dt = time.perf_counter() - t0
    for k, v in state.items():
        if not torch.equal(got[k].value, v):
            raise RuntimeError(f"{ckpt}: entry {k} came back different")
    return dt


def run_case(client, name: str, state, tmp: str, repeat: int, prof) -> dict:
    best = {"torch_save_fsync_s": 1e9, "ckptd_save_s": 1e9, "ckptd_load_s": 1e9}
    for r in range(repeat):
        best["torch_save_fsync_s"] = min(best["torch_save_fsync_s"], torch_save_fsync(state, os.path.join(tmp, f"{name}.pt")))
        ckpt = f"{name}-{r}"
        if prof is not None:
            prof.enable()
        best["ckptd_save_s"] = min(best["ckptd_save_s"], ckptd_save(client, state, "bench-small", ckpt))
        if prof is not None:
            prof.disable()
        best["ckptd_load_s"] = min(best["ckptd_load_s"], ckptd_load(client, state, "bench-small", ckpt))
        client.delete_checkpoint("bench-small", ckpt)
    n = len(state)
    return {
        "case": name,
        "tensors": n,
        "bytes": state_bytes(state),
        **{k: round(v, 4) for k, v in best.items()},
        "ckptd_save_us_per_tensor": round(best["ckptd_save_s"] / n * 1e6, 1),
        "save_speedup_vs_torch": round(best["torch_save_fsync_s"] / best["ckptd_save_s"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address")
    ap.add_argument("--tensors", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="tiny,transformer")
    ap.add_argument("--no-shm", action="store_true", help="send the bytes on the gRPC stream, not through shared memory")
    ap.add_argument("--profile", help="write a cProfile of the client's saves here")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="ckptd-bench-small-")
    proc = None
    address = args.address
    if address is None:
        proc, address = start_daemon(os.path.join(tmp.name, "data"))
    prof = cProfile.Profile() if args.profile else None
    try:
        with ckptd.CkptdClient(address, shared_memory=not args.no_shm) as client:
            for case in args.cases.split(","):
                state = tiny_state(args.tensors) if case == "tiny" else transformer_state()
                print(json.dumps(run_case(client, case, state, tmp.name, args.repeat, prof)), flush=True)
    finally:
        if prof is not None:
            prof.dump_stats(args.profile)
        if proc is not None:
            proc.terminate()
            proc.wait()
        tmp.cleanup()


if __name__ == "__main__":
    main()
