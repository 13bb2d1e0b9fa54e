"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory, a free port on
127.0.0.1, password authentication (so a URL's password is real), run as the ``postgres`` user when
this process is root (the server refuses to run as root).

    python tests/pgcluster.py start DIR   # prints the URL (a database the tests may create others from)
    python tests/pgcluster.py stop DIR

The tests use ``$ADV_TUI_TEST_PG_URL`` when set (``.ci/run`` starts one cluster this way), else start
their own per session (tests/conftest.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PASSWORD = "pg-s3cret-pw"  # tests check that this never reaches output, logs or the catalog
USER = "adv"


def binaries() -> Path | None:
    """The newest installed PostgreSQL bin directory (Debian: /usr/lib/postgresql/N/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-c", " ".join(cmd)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: str | None = None) -> tuple[str, Path]:
    """Start a cluster; (URL of its ``postgres`` database as user ``adv``, its directory)."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found (initdb)")
    root_dir = Path(root or tempfile.mkdtemp(prefix="adv-tui-pg-"))
    root_dir.mkdir(parents=True, exist_ok=True)
    data, sock = root_dir / "data", root_dir / "sock"
    sock.mkdir(exist_ok=True)
    pwfile = root_dir / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root_dir, "postgres")
        shutil.chown(sock, "postgres")
        shutil.chown(pwfile, "postgres")
        root_dir.chmod(0o700)
    subprocess.run(
        _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )
    port = _free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root_dir / "server.log"), "-w", "-t", "60", "start"]),
        check=True, capture_output=True, timeout=90,
    )
    (root_dir / "port").write_text(str(port))
    return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres", root_dir


def stop(root: str | Path) -> None:
    bin_dir = binaries()
    data = Path(root) / "data"
    if bin_dir is not None and data.exists():
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def _admin(url: str):  # noqa: ANN202
    import psycopg

    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, autocommit=True, connect_timeout=10)


def create_database(url: str) -> str:
    """A new empty database on the server of ``url``; its URL."""
    from sqlalchemy.engine import make_url

    name = "t_" + uuid.uuid4().hex[:12]
    with _admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, db_url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(db_url).database
    for _ in range(20):
        try:
            with _admin(url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except Exception:  # noqa: BLE001 - a connection still closing: try again shortly
            time.sleep(0.2)


if __name__ == "__main__":
    what, where = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    if what == "start":
        url, _dir = start(where)
        print(url)
    elif what == "stop" and where:
        stop(where)
    else:
        sys.exit("usage: pgcluster.py start [DIR] | stop DIR")
