"""deploy/install.sh, as the README runs it: as root without sudo, a venv from the system Python (not the
python3 first on PATH), the state directory made, and the service user able to run what was installed.
Installed into a scratch directory, never into /opt or /etc of the machine running the tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL = Path(__file__).parents[2] / "deploy" / "install.sh"
USER = "postgres"


@pytest.fixture
def scratch() -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("install.sh runs as root (runuser)")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no OS user {USER}")
    base = Path(tempfile.mkdtemp(prefix="dbmaint-install-"))
    base.chmod(0o755)  # the service user must reach the venv, as under /opt
    try:
        yield base
    finally:
        shutil.rmtree(base)


def run_install(scratch: Path) -> subprocess.CompletedProcess[str]:
    # A python3 first on PATH that the service user could not run (a pyenv shim under /root): not used.
    shims = scratch / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "python3").write_text("#!/bin/sh\necho 'not the system python' >&2\nexit 1\n")
    (shims / "python3").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shims}:{os.environ['PATH']}",
        "DBMAINT_PREFIX": str(scratch / "opt"),
        "DBMAINT_ETC": str(scratch / "etc"),
        "DBMAINT_STATE": str(scratch / "state"),
        "DBMAINT_UNIT_DIR": str(scratch),
        "DBMAINT_BIN_LINK": "",
    }
    return subprocess.run(["sh", str(INSTALL)], env=env, capture_output=True, text=True, timeout=900)


def test_install_as_root_for_the_service_user(scratch: Path) -> None:
    done = run_install(scratch)
    assert done.returncode == 0, done.stderr
    assert "systemctl enable --now dbmaint" in done.stderr
    python = (scratch / "opt" / "bin" / "python").resolve()
    assert str(python).startswith("/usr/bin/python3")
    version = subprocess.run(
        ["runuser", "-u", USER, "--", str(scratch / "opt" / "bin" / "dbmaint"), "--version"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "dbmaint" in version.stdout
    state = (scratch / "state").stat()
    assert pwd.getpwuid(state.st_uid).pw_name == USER and state.st_mode & 0o777 == 0o750
    assert (scratch / "etc" / "config.toml").stat().st_mode & 0o777 == 0o640
    assert (scratch / "dbmaint.service").read_text() == (INSTALL.parent / "dbmaint.service").read_text()

    # Again, as an upgrade: the edited config survives.
    (scratch / "etc" / "config.toml").write_text("# edited\n")
    again = run_install(scratch)
    assert again.returncode == 0, again.stderr
    assert (scratch / "etc" / "config.toml").read_text() == "# edited\n"
