"""A trainer killed while its save waits for the daemon to open the shared-memory ring
cannot leave the ring behind for good: the next client on the node removes it."""

import os
import signal
import subprocess
import sys
import time

import ckptd
import ckptd._shm
from conftest import PY_ROOT

# A trainer's save through shared memory into a daemon that is stopped: it creates its
# ring, sends the header and waits for the daemon to open the ring. With a ring file
# (what a client uses when the daemon refuses anonymous rings) unless "anonymous".
_STUCK_SAVER = """
import sys, torch, ckptd
address, shm, job = sys.argv[1:4]
client = ckptd.CkptdClient(address, shared_memory_dir=shm)
client._shm_anonymous = sys.argv[4:] == ["anonymous"]
client.save(job, "s1", 1, 0, 1, "model", [ckptd.TensorEntry("w", torch.ones(1 << 16))])
"""

# A fresh trainer process on the node: its first save sweeps, then saves.
_SAVER = """
import sys, torch, ckptd
address, shm, job = sys.argv[1:4]
with ckptd.CkptdClient(address, shared_memory_dir=shm) as client:
    assert client.shared_memory
    client.save(job, "s2", 2, 0, 1, "model", [ckptd.TensorEntry("w", torch.ones(1 << 16))])
    client.commit(job, "s2", 2, 0, 1, ["model"])
print("saved")
"""


def _rings(shm):
    return sorted(n for n in os.listdir(shm) if n.startswith("ckptd-"))


def _python(script, *args, **kw):
    env = dict(os.environ, PYTHONPATH=str(PY_ROOT))
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, **kw)


def test_a_ring_left_by_a_killed_trainer_is_removed_by_the_next_client(start_daemon, tmp_path, job):
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    # Rings that must survive the sweep: one of a live process of this PID namespace (the
    # daemon's pid), one of a dead pid in another namespace (its pids mean nothing here).
    ns = ckptd._shm.pid_namespace()
    assert ns != 0, "this host's /proc has no PID namespace inode"
    live = shm / f"ckptd-save-{ns}-{d.proc.pid}-aaaaaaaaaaaa"
    foreign = shm / f"ckptd-save-{ns + 1}-999999-bbbbbbbbbbbb"
    live.write_bytes(b"x")
    foreign.write_bytes(b"x")

    d.proc.send_signal(signal.SIGSTOP)
    try:
        stuck = _python(_STUCK_SAVER, d.address, shm, job)
        deadline = time.monotonic() + 30
        leaked = []
        while not leaked and time.monotonic() < deadline and stuck.poll() is None:
            leaked = [n for n in _rings(shm) if n.startswith(f"ckptd-save-{ns}-{stuck.pid}-")]
            time.sleep(0.05)
        assert leaked, f"the saver made no ring (exit {stuck.poll()})"
        stuck.kill()
        stuck.wait()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    # Killed before the daemon opened it: nothing but a sweep removes it.
    assert (shm / leaked[0]).exists()
    size = (shm / leaked[0]).stat().st_size
    assert size == ckptd.MAX_CHUNK_BYTES * ckptd._shm.DEFAULT_SLOTS  # the 32 MiB the issue saw

    fresh = _python(_SAVER, d.address, shm, job, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = fresh.communicate(timeout=60)
    assert fresh.returncode == 0 and b"saved" in out, err.decode()
    assert leaked[0].encode() in err, "the sweep says what it removed"
    assert _rings(shm) == sorted([live.name, foreign.name])


def test_the_sweep_leaves_rings_of_live_processes_and_other_users_alone(tmp_path):
    ns = ckptd._shm.pid_namespace()
    mine = tmp_path / f"ckptd-load-{ns}-{os.getpid()}-cccccccccccc"
    parent = tmp_path / f"ckptd-load-{ns}-{os.getppid()}-dddddddddddd"
    other_tool = tmp_path / "ckptd-save-1234-eeeeeeeeeeee"  # not a name of this client: not ours to judge
    for p in (mine, parent, other_tool):
        p.write_bytes(b"x")
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"ckptd-load-{ns}-{dead.pid}-ffffffffffff"
    gone.write_bytes(b"x")
    assert ckptd._shm.sweep_stale_rings(str(tmp_path)) == [str(gone)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, parent.name, other_tool.name])
