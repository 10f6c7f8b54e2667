"""A real, tiny DDP training loop (gloo, 2 ranks, ``torch.multiprocessing.spawn``) that
checkpoints through ``ckptd.tml`` with tml's own call sequence, or through
``ckptd.CheckpointEngine`` with DeepSpeed's call order; and the faults the tests inject:
SIGKILL of a trainer between its saves and its vote.

Training is deterministic (fixed init, per-step per-rank data, gloo all-reduce on CPU), so
a run resumed from a checkpoint ends with parameters bit-identical to an uninterrupted run
exactly when the checkpoint held the state at the step it was taken at.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Optional

PARTITION = "eval"


def make_model():
    """Many small tensors: 8 blocks of Linear(16, 16) + LayerNorm(16), plus a head."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i in range(8):
        layers[f"fc{i}"] = nn.Linear(16, 16)
        layers[f"ln{i}"] = nn.LayerNorm(16)
        layers[f"act{i}"] = nn.Tanh()
    layers["head"] = nn.Linear(16, 1)
    return nn.Sequential(layers)


def train_step(ddp, opt, step: int, rank: int) -> None:
    import torch

    g = torch.Generator().manual_seed(step * 1000 + rank)
    x = torch.randn(8, 16, generator=g)
    y = torch.randn(8, 1, generator=g)
    opt.zero_grad()
    torch.nn.functional.mse_loss(ddp(x), y).backward()
    opt.step()


def _init(rank: int, world: int, port: int, address: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ["CKPTD_ADDRESS"] = address
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _kill_at_commit(client, rank: int) -> None:
    """Makes this process die by SIGKILL in its next vote: rank 0 once its vote was sent
    (it is waiting for the decision), the other ranks before voting."""
    real = client.commit

    def dying_commit(*args, **kwargs):
        if rank == 0:
            threading.Thread(target=lambda: real(*args, **kwargs), daemon=True).start()
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    client.commit = dying_commit


def _finish(rank: int, model, opt, out: str, extra: Dict[str, Any]) -> None:
    import torch

    if rank == 0:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), **extra}, out)


def tml_trainer(rank: int, world: int, port: int, address: str, save_dir: str, steps: int, every: int,
                kill_at: int, evaluate: bool, out: str) -> None:
    """tml's loop: Snapshot(save_dir, state); restore the latest checkpoint if any; every
    ``every`` steps set step/walltime, wait for the previous save's handle and save."""
    _init(rank, world, port, address)
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ckptd import tml as snapshot

    model = make_model()
    ddp = DDP(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    snap = snapshot.Snapshot(save_dir=save_dir, state={"model": model, "optimizer": opt})
    start = 0
    resumed_from = snapshot.get_checkpoint(save_dir, missing_ok=True)
    if resumed_from:
        snap.restore(resumed_from)
        start = snap.step
        assert start == snapshot.step_from_checkpoint(resumed_from), (start, resumed_from)
    handle = None
    first_wait: Optional[float] = None
    for step in range(start + 1, steps + 1):
        train_step(ddp, opt, step, rank)
        if step % every:
            continue
        if handle is not None:
            handle.wait()
        snap.step = step
        snap.walltime = float(step)
        if step == kill_at:
            _kill_at_commit(snap.engine.client, rank)
        handle = snap.save(step)
        if first_wait is None:
            t0 = time.monotonic()
            handle.wait()
            first_wait = time.monotonic() - t0
        if evaluate:
            handle.wait()
            snapshot.wait_for_evaluators(save_dir, [PARTITION], step, timeout=60)
            assert snapshot.is_done_eval(os.path.join(save_dir, str(step)), PARTITION)
    if handle is not None:
        view = handle.wait()
        assert handle.done() and handle.committed and view.path == os.path.join(save_dir, str(steps))
    _finish(rank, model, opt, out, {"resumed_from": resumed_from, "first_wait": first_wait,
                                    "checkpoints": snapshot.get_checkpoints(save_dir)})


def tml_evaluator(address: str, save_dir: str, last_step: int, out: str) -> None:
    """tml's evaluator: follows checkpoints_iterator, restores each, marks it done."""
    os.environ["CKPTD_ADDRESS"] = address
    import torch

    from ckptd import tml as snapshot

    torch.set_num_threads(1)
    model = make_model()
    snap = snapshot.Snapshot(save_dir, {"model": model})
    seen = []
    for checkpoint in snapshot.checkpoints_iterator(save_dir, seconds_to_sleep=1, timeout=60):
        step = snapshot.step_from_checkpoint(checkpoint)
        assert not snapshot.is_done_eval(checkpoint, PARTITION)
        snap.restore(checkpoint)
        assert snap.step == step and snap.restored_checkpoint == checkpoint
        seen.append(step)
        snapshot.mark_done_eval(checkpoint, PARTITION)
        if step >= last_step:
            break
    torch.save({"seen": seen}, out)


class CommitInfo:
    """DeepSpeed's CheckpointCommitInfo (tag, save_dir, save_latest)."""

    def __init__(self, tag: str, save_dir: str, save_latest: bool = True):
        self.tag, self.save_dir, self.save_latest = tag, save_dir, save_latest

    def __eq__(self, other):
        return isinstance(other, CommitInfo) and vars(self) == vars(other)


def ds_trainer(rank: int, world: int, port: int, address: str, job: str, steps: int, every: int, kill_at: int,
               decoupled: bool, out: str) -> None:
    """DeepSpeed's call order: at start, load the latest checkpoint's items (the model
    states rank 0 wrote, then this rank's optimizer states); every ``every`` steps
    create(info), save x items, commit(info) - in decoupled mode the commit comes at the
    next checkpoint, and cleanup() commits the last one."""
    _init(rank, world, port, address)
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import ckptd

    model = make_model()
    ddp = DDP(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine = ckptd.CheckpointEngine(job=job, decoupled=decoupled)
    assert engine.is_decoupled() is decoupled
    save_dir = "/checkpoints"
    start = 0
    resumed_from = None
    try:
        model_states = engine.load("mp_rank_00_model_states.pt")
    except ckptd.CheckpointNotFound:
        model_states = None
    if model_states is not None:
        resumed_from = engine.resolved_latest
        optim_states = engine.load(f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
        assert engine.last_placement.checkpoint_id == resumed_from  # both items of one checkpoint
        model.load_state_dict(model_states["module"])
        opt.load_state_dict(optim_states["optimizer_state_dict"])
        start = model_states["global_steps"]
    first_commit: Optional[float] = None
    for step in range(start + 1, steps + 1):
        train_step(ddp, opt, step, rank)
        if step % every:
            continue
        if decoupled and engine.get_commit_info() is not None:
            engine.commit(engine.get_commit_info())
        tag = f"global_step{step}"
        info = CommitInfo(tag, save_dir)
        if step == kill_at:
            _kill_at_commit(engine.client, rank)
        t0 = time.monotonic()
        engine.create(info)
        if rank == 0:
            engine.save({"module": model.state_dict(), "global_steps": step},
                        f"{save_dir}/{tag}/mp_rank_00_model_states.pt")
        engine.save({"optimizer_state_dict": opt.state_dict()},
                    f"{save_dir}/{tag}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
        if not decoupled:
            engine.commit(info)
            if first_commit is None:
                first_commit = time.monotonic() - t0
    engine.cleanup()
    engine.close()
    _finish(rank, model, opt, out, {"resumed_from": resumed_from, "first_commit": first_commit})
