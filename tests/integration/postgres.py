"""A throwaway PostgreSQL server for integration tests (starts in about a second).

Uses the PostgreSQL server binaries from the machine (Debian's ``postgresql``
package, which ``.ci/run`` installs). ``initdb`` refuses to run as root, so under
root the cluster is created and run as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_server(
    base: Path, *, user: str = "flowehr", password: str | None = None
) -> Iterator[str]:
    """Start a PostgreSQL cluster under ``base``; yield a SQLAlchemy URL; stop it after.

    With ``password``, TCP connections must authenticate with it (SCRAM), so a client
    given the wrong credentials fails as it would against a real server; without it,
    every connection is trusted.
    """
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    data = base / "pgdata"
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        base.chmod(0o777)
    port = _free_port()
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = base / "pwfile"
        pwfile.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, user="postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(
        _as_owner([str(pg_bin / "initdb"), "-D", str(data), "-U", user, *auth, "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    if password is not None:
        pwfile.unlink()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_owner(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(base / "server.log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        login = user if password is None else f"{user}:{quote(password, safe='')}"
        yield f"postgresql+psycopg2://{login}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_owner([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
