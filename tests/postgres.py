"""A throwaway PostgreSQL server for the tests that need one (the arena's shared studies, the course's
store on PostgreSQL).

The server runs from a temporary directory on a free loopback port and is stopped afterwards.
PostgreSQL refuses to run as root, so when the tests run as root the data directory is given to the
``postgres`` user and the server's commands run through ``runuser``. Where no server is installed the
fixture skips with the reason (``.ci/run`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL ``bin`` folder with ``initdb`` and ``pg_ctl``, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL (database ``postgres``), stop it on exit."""
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL server is installed (initdb/pg_ctl not found)")
    root = Path(tempfile.mkdtemp(prefix="descentlab-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = _as_server_user([str(binaries / args[0]), *args[1:]])
        return subprocess.run(command, check=True, capture_output=True, text=True)

    try:
        run("initdb", "-A", "trust", "-U", "postgres", "-D", str(data))
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=60"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    except subprocess.CalledProcessError as error:
        raise RuntimeError(
            f"PostgreSQL failed: {error.cmd}\n{error.stdout}\n{error.stderr}"
        ) from error
    finally:
        shutil.rmtree(root, ignore_errors=True)
