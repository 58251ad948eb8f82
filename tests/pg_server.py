"""A throwaway PostgreSQL server that a test may stop, start and restart.

The shared server of TEST_POSTGRES_URL must stay up for every other test, so tests of database
faults get their own: `initdb` in a temporary folder, on a free loopback port, run by the
`postgres` system account (PostgreSQL refuses to run as root). Skipped where the binaries or that
account are missing; CI installs both.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    versions = sorted(
        (p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name) if p.name.isdigit() else 0,
    )
    return versions[-1] / "bin" if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster: `url` for SQLAlchemy, and stop/start/restart for faults."""

    def __init__(self, bindir: Path, folder: Path) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -k {self.folder}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for fault tests (only where TEST_POSTGRES_URL is set)."""
    bindir = _bindir()
    if not os.environ.get("TEST_POSTGRES_URL") or bindir is None:
        pytest.skip("needs TEST_POSTGRES_URL and PostgreSQL's server binaries")
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("needs the postgres system account")
    folder = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    if os.geteuid() == 0:
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = PgServer(bindir, folder)
    server.init()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(folder, ignore_errors=True)
