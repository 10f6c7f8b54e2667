"""Measures how fast one Python rank uploads a tensor to a daemon.

    /usr/bin/python3 clients/python/bench_upload.py [--address HOST:PORT] [--mib 256] [--data randn|zeros] [--repeat 3]

Without --address it starts a daemon from dist/ (``npm run build`` first) on a free port
with a temporary data directory. Reports, per run, the upload rate (the whole Save:
streaming, the daemon's LZ4 and fsync) and the client's CPU time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import ckptd  # noqa: E402


def start_daemon(data_dir: str) -> "tuple[subprocess.Popen, str]":
    cli = HERE.parents[1] / "dist" / "src" / "cli.js"
    proc = subprocess.Popen(["node", str(cli), "--listen", "127.0.0.1:0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        m = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        if m:
            # Keep draining the log so the daemon never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError("the daemon exited before listening")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--data", choices=("randn", "zeros"), default="randn")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    proc = None
    tmp = None
    address = args.address
    if address is None:
        tmp = tempfile.TemporaryDirectory(prefix="ckptd-bench-")
        proc, address = start_daemon(tmp.name)
    try:
        n = args.mib * (1 << 20) // 4
        x = torch.randn(n) if args.data == "randn" else torch.zeros(n)
        job = f"bench-{os.getpid()}"
        with ckptd.CkptdClient(address) as client:
            for i in range(args.repeat):
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.perf_counter()
                res = client.save(job, f"run{i}", i, 0, 1, "x", [ckptd.TensorEntry("x", x)])
                dt = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                gb = res.bytes_received / 1e9
                print(f"run {i}: {args.mib} MiB {args.data} in {dt:.3f}s = {gb / dt:.3f} GB/s "
                      f"(client CPU {cpu:.3f}s, stored {res.bytes_stored / 2**20:.1f} MiB)", flush=True)
                client.abort(job, f"run{i}", 0, "benchmark")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
