"""A trainer killed while its save waits for the daemon to open the shared-memory ring
cannot leave the ring behind: an anonymous ring (memfd, the default) has no name to
leave, and a ring file (the fallback) is removed by the next client on the node."""

import os
import signal
import subprocess
import sys
import time

import ckptd
import ckptd._shm
import torch
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

# The same with an anonymous ring (the default), over a connection made before the test
# pauses the daemon (it says "connected", then saves once it reads a line), so the header
# reaches the paused daemon's socket.
_CONNECTED_SAVER = """
import sys, grpc, torch, ckptd
address, shm, job = sys.argv[1:4]
client = ckptd.CkptdClient(address, shared_memory_dir=shm)
grpc.channel_ready_future(client.channel).result(timeout=30)
print("connected", flush=True)
sys.stdin.readline()
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


def _ring_fds(pid):
    """The ring descriptors (``ckptd-ring-…`` memfds and files) process ``pid`` holds."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return found
    for fd in fds:
        try:
            name = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if "ckptd-ring-" in name:
            found.append(name)
    return found


def _holders(name):
    """The processes that hold ``name`` open or mapped (of those /proc lets this user see)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if name in _ring_fds(pid):
            pids.append(int(pid))
            continue
        try:
            with open(f"/proc/{pid}/maps") as maps:
                if name.split(" (deleted)")[0] in maps.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_a_trainer_killed_while_the_daemon_is_paused_leaves_no_ring_and_no_memory(start_daemon, tmp_path, job):
    """The default ring has no name: a trainer SIGKILLed while it waits for a paused daemon
    to open it leaves nothing in the directory, and once the daemon is back its memory is
    held by no process at all."""
    shm = tmp_path / "shm"
    shm.mkdir()
    d = start_daemon("--shared-memory-dir", str(shm))
    dev_shm_before = set(os.listdir("/dev/shm"))
    stuck = _python(_CONNECTED_SAVER, d.address, shm, job, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert stuck.stdout.readline() == b"connected\n"
    d.proc.send_signal(signal.SIGSTOP)
    try:
        stuck.stdin.write(b"save\n")
        stuck.stdin.flush()
        deadline = time.monotonic() + 30
        rings = []
        while not rings and time.monotonic() < deadline and stuck.poll() is None:
            rings = _ring_fds(stuck.pid)
            time.sleep(0.05)
        assert rings, f"the saver made no ring (exit {stuck.poll()})"
        assert rings[0].startswith("/memfd:ckptd-ring-") and rings[0].endswith(" (deleted)"), rings
        # The header is on its way: the saver waits for the daemon's answer (its call is open).
        time.sleep(0.5)
        assert stuck.poll() is None
        assert _rings(shm) == []  # no name, even while the save waits
        stuck.kill()
        stuck.wait()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    # The daemon, back, reads the header of a dead process: its ring is gone with it.
    with ckptd.CkptdClient(d.address, shared_memory_dir=str(shm)) as client:
        res = client.save(job, "s2", 2, 0, 1, "model", [ckptd.TensorEntry("w", torch.arange(1 << 18, dtype=torch.float32))])
        assert client.commit(job, "s2", 2, 0, 1, ["model"], res.attempt).outcome == "COMMITTED"
        loaded = client.load_items(job, "s2", rank=0)
        assert torch.equal(loaded.items["model"]["w"].value, torch.arange(1 << 18, dtype=torch.float32))
        assert client._shm_anonymous and client.shared_memory  # both through memfd rings
    assert _rings(shm) == []
    # Nor anywhere else (other trainers on this node may be saving meanwhile: only ours count).
    ours = (f"-{stuck.pid}-", f"-{os.getpid()}-")
    assert [n for n in set(os.listdir("/dev/shm")) - dev_shm_before if any(p in n for p in ours)] == []
    assert _ring_fds(d.proc.pid) == []  # the daemon keeps no ring once its streams ended
    # The daemon found the connection gone, or read the header and no process behind the
    # handle ("cannot open descriptor … (ENOENT"): which of the two is a race.
    log = d.log_path.read_text()
    assert f"of process {stuck.pid} (" not in log or f"of process {stuck.pid} (ENOENT" in log
    assert _holders(rings[0]) == []  # nobody holds the killed trainer's ring: the kernel freed it
