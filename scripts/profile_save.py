"""Where one rank's save goes: Save + Commit of a generated state dict, repeated, with the
client's side taken apart.

    /usr/bin/python3 scripts/bench_ranks.py gen --dir /tmp/st --ranks 1 --mib 48 --kinds transformer
    node dist/src/cli.js --listen 127.0.0.1:7070 --data-dir /tmp/ckptd-data &
    /usr/bin/python3 scripts/profile_save.py 127.0.0.1:7070 --dir /tmp/st --daemon-pid $! --repeat 5

Per save it prints: wall time of the save and of the commit; from the first stream message to
the trailer (the client streaming) and from the trailer to the reply (what the daemon had left:
its backlog, then the fsyncs); the time the request iterator (the thread that checksums, copies
into the ring and builds the messages) spent working, and in CRC-32C and ring copies; the
number of stream messages; the client's CPU time and, with --daemon-pid, the daemon's. Run it
with nothing else on the machine: the client and daemon share its cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
sys.path.insert(0, HERE)

import bench_ranks  # noqa: E402
import ckptd  # noqa: E402
import ckptd._shm  # noqa: E402
import ckptd.client as client_module  # noqa: E402


def daemon_cpu(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("--dir", required=True, help="bench_ranks.py gen --dir")
    p.add_argument("--kind", default="transformer")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--daemon-pid", type=int, default=0)
    p.add_argument("--verify-shared-saves", action="store_true", help="send a CRC with every shared chunk")
    args = p.parse_args()

    acc = {"busy": 0.0, "crc": 0.0, "put": 0.0, "msgs": 0, "first": 0.0, "last": 0.0}
    real_crc = client_module._crc.crc32c
    real_put = ckptd._shm.Ring.put
    real_messages = client_module._item_messages

    def timed_crc(data, value=0):
        t = time.perf_counter()
        try:
            return real_crc(data, value)
        finally:
            acc["crc"] += time.perf_counter() - t

    def timed_put(self, data):
        t = time.perf_counter()
        try:
            return real_put(self, data)
        finally:
            acc["put"] += time.perf_counter() - t

    def timed_messages(*a, **k):
        acc["first"] = time.monotonic()
        it = real_messages(*a, **k)
        while True:
            t = time.perf_counter()
            try:
                m = next(it)
            except StopIteration:
                return
            finally:
                acc["busy"] += time.perf_counter() - t
            acc["msgs"] += 1
            acc["last"] = time.monotonic()
            yield m

    client_module._crc.crc32c = timed_crc
    ckptd._shm.Ring.put = timed_put
    client_module._item_messages = timed_messages

    sd = bench_ranks.load_state(args.dir, args.kind, 0)
    entries = [ckptd.TensorEntry(k, v) for k, v in sd.items()]
    client = ckptd.CkptdClient(args.address)
    client.verify_shared_saves = args.verify_shared_saves
    list(client.list_checkpoints("profile"))
    job = f"profile-{os.getpid()}"
    print(f"{len(entries)} tensors, {bench_ranks.state_bytes(sd) / 2**20:.1f} MiB, shared memory: {client.shared_memory}")
    print("   save  commit  streaming  trailer→reply  iterator busy  crc  ring copy  msgs  client cpu  daemon cpu  (ms)")
    for i in range(args.repeat):
        for k in acc:
            acc[k] = 0 if k == "msgs" else 0.0
        cid = f"c{i}"
        d0 = daemon_cpu(args.daemon_pid) if args.daemon_pid else 0.0
        c0 = time.process_time()
        t0 = time.monotonic()
        res = client.save(job, cid, i + 1, 0, 1, "model", entries)
        t1 = time.monotonic()
        commit = client.commit(job, cid, i + 1, 0, 1, ["model"], res.attempt, timeout=60)
        t2 = time.monotonic()
        c1 = time.process_time()
        d1 = daemon_cpu(args.daemon_pid) if args.daemon_pid else 0.0
        if not commit.committed:
            raise SystemExit(f"commit {commit.outcome}: {commit.reason}")
        ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
        print(f"{ms(t1 - t0):>7} {ms(t2 - t1):>7} {ms(acc['last'] - acc['first']):>10} {ms(t1 - acc['last']):>14}"
              f" {ms(acc['busy']):>14} {ms(acc['crc']):>4} {ms(acc['put']):>10} {acc['msgs']:>5}"
              f" {ms(c1 - c0):>11} {ms(d1 - d0) if args.daemon_pid else '-':>11}")
    client.close()


if __name__ == "__main__":
    main()
