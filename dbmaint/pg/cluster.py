"""Throwaway local PostgreSQL clusters, for `dbmaint demo` and the test suite.

A cluster lives in its own temporary directory with its own port. PostgreSQL refuses to run as root,
so when dbmaint runs as root the server processes run as the unprivileged ``postgres`` OS user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dbmaint.errors import ClusterError

SERVER_USER = "postgres"

# Throwaway clusters trade durability for speed: nothing here has to survive a crash.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "max_wal_senders": "5",
    "wal_level": "replica",
}


def find_bindir() -> Path:
    """The server binaries: $DBMAINT_PG_BINDIR, the newest /usr/lib/postgresql/N/bin, or PATH."""
    explicit = os.environ.get("DBMAINT_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise ClusterError(
        "PostgreSQL server binaries not found (install the 'postgresql-15' package or set DBMAINT_PG_BINDIR)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The OS user to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ClusterError(
            "running as root, and there is no 'postgres' OS user to run the server as "
            "(install the 'postgresql-15' package, or run as an ordinary user)"
        ) from None
    return SERVER_USER


@dataclass
class Cluster:
    """One throwaway cluster. ``start()`` creates it, ``destroy()`` stops it and removes its files."""

    settings: Mapping[str, str] = field(default_factory=dict)
    hba: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    bindir: Path = field(default_factory=find_bindir)
    base: Path | None = None
    from_primary: Cluster | None = None
    # Reachable only through its Unix socket, in a directory only the server's user (and root) may enter:
    # no TCP port, so its passwordless superuser is nobody else's (the demo's server, kept or not).
    private: bool = False
    _owned_base: bool = False

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def dsn(self, dbname: str = "postgres", user: str = SERVER_USER, password: str | None = None) -> str:
        auth = f" password={password}" if password is not None else ""
        host = str(self.base) if self.private else "127.0.0.1"
        return f"host={host} port={self.port} dbname={dbname} user={user}{auth}"

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.base is not None
        try:
            return subprocess.run(
                args,
                user=_run_as(),
                cwd=self.base,
                check=check,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stderr or exc.stdout or "").strip().splitlines()
            reason = self.fatal_log_line() or (output[-1] if output else str(exc))
            raise ClusterError(f"{Path(args[0]).name} failed: {reason}") from None

    def fatal_log_line(self) -> str | None:
        """The server log's last FATAL or PANIC line: pg_ctl itself only says "examine the log output"."""
        if self.base is None or not self.logfile.exists():
            return None
        lines = self.logfile.read_text(errors="replace").splitlines()
        fatal = [line[line.index(level) :] for line in lines for level in ("FATAL:", "PANIC:") if level in line]
        return fatal[-1] if fatal else None

    def _make_base(self) -> None:
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="dbmaint-pg-"))
            self._owned_base = True
        user = _run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def start(self) -> Cluster:
        try:
            return self._start()
        except BaseException:
            self.destroy()
            raise

    def _start(self) -> Cluster:
        self._make_base()
        if self.from_primary is not None:
            self._cmd(
                str(self.bindir / "pg_basebackup"),
                "-h", "127.0.0.1", "-p", str(self.from_primary.port), "-U", SERVER_USER,
                # --checkpoint=fast: the default spread checkpoint made a busy primary's copy wait minutes.
                "-D", str(self.datadir), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
            )  # fmt: skip
        else:
            self._cmd(
                str(self.bindir / "initdb"),
                "-D", str(self.datadir), "-U", SERVER_USER, "-A", "trust",
                "--encoding", "UTF8", "--locale", "C", "--no-sync",
            )  # fmt: skip
            hba = [*self.hba, "local all all trust", "local replication all trust"]
            if not self.private:
                hba += ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]
            self._write("pg_hba.conf", "\n".join(hba) + "\n")
        conf = {**FAST_SETTINGS, **self.settings, "port": str(self.port),
                "unix_socket_directories": f"'{self.base}'"}  # fmt: skip
        if self.private:
            self.base.chmod(0o700)  # type: ignore[union-attr]
            conf |= {"listen_addresses": "''", "unix_socket_permissions": "0700"}
        # Appended to postgresql.conf (the last value wins): postgresql.auto.conf holds the
        # primary_conninfo that pg_basebackup -R wrote for a standby.
        with (self.datadir / "postgresql.conf").open("a") as conf_file:
            conf_file.write("".join(f"{k} = {v}\n" for k, v in conf.items()))
        self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                  "-t", "120", "start")  # fmt: skip
        return self

    def _write(self, name: str, text: str) -> None:
        path = self.datadir / name
        path.write_text(text)
        user = _run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def stop(self) -> None:
        if self.base is not None and (self.datadir / "postmaster.pid").exists():
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop",
                      check=False)  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                  "-t", "120", "start")  # fmt: skip

    def destroy(self) -> None:
        """Stop the server and remove the directory it created (a base given to it is left)."""
        self.stop()
        if self._owned_base and self.base is not None:
            remove_tree(self.base)

    def standby(self, settings: Mapping[str, str] | None = None) -> Cluster:
        """A streaming standby of this cluster, made with pg_basebackup and started.

        It inherits the primary's settings: a hot standby refuses to start with, for example, a lower
        max_prepared_transactions than its primary.
        """
        merged = {**self.settings, **(settings or {})}
        return Cluster(settings=merged, bindir=self.bindir, from_primary=self).start()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def remove_tree(path: Path) -> None:
    """rmtree, tried a few times: an interrupted initdb's helper process may still be writing there."""
    for _ in range(10):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.2)
