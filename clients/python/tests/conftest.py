"""Test infrastructure: real ckptd daemons (``node dist/src/cli.js``) on free ports.

``npm run build`` must have compiled dist/; when dist/ is missing it is built once here.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
PY_ROOT = REPO / "clients" / "python"
if str(PY_ROOT) not in sys.path:
    sys.path.insert(0, str(PY_ROOT))

CLI = REPO / "dist" / "src" / "cli.js"
TS_INDEX = REPO / "dist" / "clients" / "ts" / "src" / "index.js"
_LISTENING = re.compile(r"listening on (127\.0\.0\.1:\d+)")


class Daemon:
    """One ckptd process. ``address`` is where it listens; ``restart()`` brings it back
    on the same port and data directory after ``stop()``."""

    def __init__(self, data_dir: Path, flags: List[str], log_path: Path):
        self.data_dir = data_dir
        self.flags = list(flags)
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self.address: Optional[str] = None

    def start(self, listen: str = "127.0.0.1:0", timeout: float = 30.0) -> str:
        cmd = ["node", str(CLI), "--listen", listen, "--data-dir", str(self.data_dir), *self.flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(REPO))
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump(proc=self.proc) -> None:
            # Keeps reading after the address is found, so a chatty daemon never blocks on a full pipe.
            with open(self.log_path, "ab") as log:
                for raw in proc.stdout:
                    log.write(raw)
                    log.flush()
                    lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"ckptd did not report its address within {timeout}s; log: {self.log_path}")
            if line is None:
                raise RuntimeError(f"ckptd exited with {self.proc.wait()} before listening:\n{self.log_path.read_text()}")
            m = _LISTENING.search(line)
            if m:
                self.address = m.group(1)
                return self.address

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (drain), then SIGKILL if it is still running after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> str:
        assert self.address is not None
        self.stop()
        return self.start(listen=self.address)


def _ensure_built() -> None:
    if CLI.exists() and TS_INDEX.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"{CLI} is missing and npm is not installed: run `npm ci && npm run build` first")
    subprocess.run([npm, "run", "build"], cwd=str(REPO), check=True)


@pytest.fixture(scope="session")
def built() -> None:
    _ensure_built()


@pytest.fixture
def start_daemon(built, tmp_path):
    """A factory: ``start_daemon(*flags)`` starts a daemon on a free port with a fresh
    data directory and returns its :class:`Daemon`; every one is stopped afterwards."""
    daemons: List[Daemon] = []

    def start(*flags: str) -> Daemon:
        n = len(daemons)
        data_dir = tmp_path / f"ckptd-data-{n}"
        data_dir.mkdir()
        d = Daemon(data_dir, list(flags), tmp_path / f"ckptd-{n}.log")
        daemons.append(d)
        d.start()
        return d

    yield start
    for d in daemons:
        d.stop()


@pytest.fixture
def daemon(start_daemon) -> str:
    """The address of a fresh daemon (``127.0.0.1:PORT``), SIGTERMed after the test."""
    return start_daemon().address


_job_counter = 0


@pytest.fixture
def job(request) -> str:
    """A job name unique to the test."""
    global _job_counter
    _job_counter += 1
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:80]
    return f"{name}-{os.getpid()}-{_job_counter}"
