"""The one throwaway PostgreSQL server, for the tests of database faults and for the bench.

The shared server of TEST_POSTGRES_URL must stay up for every other test, and the bench's faults
stop and restart PostgreSQL mid-burst, so both get their own: `initdb` in a temporary folder, on a
free loopback port, run by the `postgres` system account when we are root (PostgreSQL refuses to
run as root; the tests and CI run as root). The `pg_server` fixture (conftest.py) skips where the
binaries or that account are missing; CI installs both.

Why not pytest-postgresql: its executor runs `initdb` and `pg_ctl` as the current user, with no
way to run them as another account, so as root it fails where this helper does not; and the bench
needs the same server outside pytest. What it would add (a fixture, a free port) is a few lines
here.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Unavailable(RuntimeError):
    """PostgreSQL's server binaries, or the account to run them as root, are not here."""


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

    def __init__(
        self, bindir: Path, folder: Path, port: int | None = None, fsync: bool = False
    ) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.port = port or _free_port()
        self.fsync = fsync  # off for tests; on for the bench, whose figures include it
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, port: int | None = None, fsync: bool = False) -> PgServer:
        """A new cluster, initialised and started; `remove` it when done."""
        bindir = _bindir()
        if bindir is None:
            raise Unavailable("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
        folder = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(folder, ignore_errors=True)
                raise Unavailable("the postgres system account") from None
            os.chown(folder, account.pw_uid, account.pw_gid)
        server = cls(bindir, folder, port, fsync)
        try:
            server.init()
            server.start()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return server

    def remove(self) -> None:
        """Stop the server (if it runs) and delete its files."""
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)

    def online(self) -> bool:
        """Whether the server runs (`pg_ctl status`)."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except subprocess.CalledProcessError:
            return False
        return True

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        if not self.fsync:
            options += " -c fsync=off"
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
