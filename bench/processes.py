"""The app's processes, started as the platform starts them, and watched while the burst runs.

The Procfile is read with honcho (the Python foreman), so its lines mean here what they mean to
Heroku. The processes themselves are started here rather than by honcho's manager: the bench
kills one worker with `kill -9` mid-burst, restarts the worker process as the platform would,
samples each process's memory and threads, and keeps each process's output in its own log; a
manager that multiplexes output and restarts nothing would hide all of that.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from honcho.environ import parse_procfile


def read_procfile(root: Path) -> dict[str, str]:
    """The Procfile's process types and their commands (release, web, worker)."""
    return dict(parse_procfile((root / "Procfile").read_text()).processes)


class Processes:
    """Everything this run starts, each in its own process group, so cleanup finds it all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[subprocess.Popen] = []

    def start(self, command: str, env: dict[str, str], log: Path) -> subprocess.Popen:
        # `exec` so that the Popen's pid is the command itself (kill -9 hits the real process).
        shell = command if re.search(r"[;&|]", command) else "exec " + command
        out = log.open("ab")
        process = subprocess.Popen(
            ["bash", "-c", shell],
            cwd=self.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.started.append(process)
        return process

    def stop_all(self, grace: float = 10.0) -> None:
        for process in self.started:
            if process.poll() is None:
                signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.started:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            signal_group(process, signal.SIGKILL)  # stragglers, and children left behind
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                pass


def signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def proc_status(pid: int) -> dict[str, float] | None:
    """RSS (MB) and thread count of a process, from /proc/<pid>/status."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return {
            "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            "threads": int(fields["Threads"]),
        }
    except (KeyError, ValueError):
        return None


def free_port() -> int:
    """A free port below Linux's ephemeral range, which outgoing connections (the app's to
    PostgreSQL, other sessions' on this box) draw from: a port from there may be taken before
    gunicorn binds it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port between 20000 and 32000")


def wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {seconds:g} s")
        time.sleep(0.1)


class Monitor:
    """Samples RSS and threads of gunicorn's master, its workers and the worker process
    (`processes()` gives the current web and worker Popen: a fault may replace the worker)."""

    def __init__(
        self,
        processes: Callable[[], tuple[subprocess.Popen | None, subprocess.Popen | None]],
    ) -> None:
        self.processes = processes
        self.peak: dict[str, dict[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def snapshot(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {"master": [], "web": [], "worker": []}
        web, worker = self.processes()
        if web and web.poll() is None:
            status = proc_status(web.pid)
            if status:
                out["master"].append({"pid": web.pid, **status})
            for pid in children(web.pid):
                status = proc_status(pid)
                if status:
                    out["web"].append({"pid": pid, **status})
        if worker and worker.poll() is None:
            for pid in [worker.pid, *children(worker.pid)]:
                status = proc_status(pid)
                if status:
                    out["worker"].append({"pid": pid, **status})
        return out

    def loop(self) -> None:
        while not self.stop.wait(0.5):
            for role, items in self.snapshot().items():
                for item in items:
                    peak = self.peak.setdefault(role, {"rss_mb": 0, "threads": 0})
                    peak["rss_mb"] = max(peak["rss_mb"], item["rss_mb"])
                    peak["threads"] = max(peak["threads"], item["threads"])
