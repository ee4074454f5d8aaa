"""Faults a service on a database host meets: the server restarted in the middle of a VACUUM pass or a
REINDEX CONCURRENTLY, and the server gone for a while under `dbmaint run`. dbmaint stays up, records what
happened, and the next run finishes the work. These tests restart and stop a cluster of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Database
from tests.db.helpers import (
    EVERY_2S,
    ServiceProcess,
    dbmaint_backends,
    dirty_table,
    service_config,
    slow_vacuums,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Database]:
    cluster = Cluster(settings={"autovacuum": "off"}).start()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        yield Database(cluster, "app")
    finally:
        cluster.destroy()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[[str], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(config_text: str) -> ServiceProcess:
        config = tmp_path / "config.toml"
        config.write_text(config_text)
        process = ServiceProcess(str(config), f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "service.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def dead_rows(database: Database, table: str) -> int:
    return int(database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,)))


def test_a_restart_in_the_middle_of_a_vacuum_pass_is_recorded_and_the_next_run_does_the_work(
    own: Database, service: Callable[[str], ServiceProcess]
) -> None:
    dirty_table(own, rows=20_000)
    slow_vacuums(own)
    running = service(service_config({"app": own.dsn}, vacuum=EVERY_2S))
    wait_for(lambda: any(q.startswith("VACUUM") for _, q in dbmaint_backends(own.cluster)), timeout=30)

    own.execute('ALTER DATABASE "app" RESET ALL')  # the next VACUUM at full speed
    own.cluster.restart()  # pg_ctl stop -m fast: the VACUUM's session is terminated

    def finished_after_the_restart() -> bool:
        runs = [r.status for r in running.runs("vacuum")]
        return "failed" in runs and runs[-1] == "ok" and runs.index("failed") < len(runs) - 1

    wait_for(finished_after_the_restart, timeout=60)
    assert running.alive()
    failed = next(r for r in running.runs("vacuum") if r.status == "failed")
    assert "connection lost" in (failed.reason or ""), failed.reason
    assert dead_rows(own, "dirty") == 0
    assert "Traceback" not in running.log


def test_a_restart_in_the_middle_of_reindex_concurrently_leaves_a_build_the_next_run_cleans_up(
    own: Database, tmp_path: Path
) -> None:
    own.execute(
        "CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL)",
        "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000000) g",
        "CREATE INDEX items_sku ON items (sku)",
        "DELETE FROM items WHERE id % 2 = 0",
        "VACUUM ANALYZE items",
    )
    config = tmp_path / "reindex.toml"
    config.write_text(
        f'[reindex]\nmin_size = "1MB"\nmin_bloat_ratio = 0.2\n[state]\nurl = "sqlite:///{tmp_path}/s.db"\n'
    )
    command = [sys.executable, "-m", "dbmaint", "reindex", "--config", str(config), "--dsn", own.dsn]

    building = threading.Event()

    def restart_once_building() -> None:
        with psycopg.connect(own.cluster.dsn("app"), autocommit=True) as conn:
            wait_for(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM pg_stat_progress_create_index WHERE phase LIKE 'building index%'"
                    ).fetchone()
                    == (1,)
                ),
                timeout=60,
            )
        building.set()
        own.cluster.restart()

    restarter = threading.Thread(target=restart_once_building, daemon=True)
    restarter.start()
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    restarter.join(120)
    assert building.is_set()
    assert first.returncode != 0
    assert "Traceback" not in first.stderr + first.stdout
    assert "reindex on app: failed (connection lost" in first.stdout
    leftovers = own.value("SELECT count(*) FROM pg_class WHERE relname LIKE %s", ("items%ccnew%",))
    assert leftovers >= 1  # the interrupted build's index, invalid

    second = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    document = json_output_of(second.stdout)
    statements = [a["statement"] for a in document["actions"] if a["status"] == "done"]
    assert any(s.startswith("DROP INDEX CONCURRENTLY") and "ccnew" in s for s in statements)
    assert 'REINDEX INDEX CONCURRENTLY "public"."items_sku"' in statements
    assert own.value("SELECT count(*) FROM pg_class WHERE relname LIKE %s", ("items%cc%",)) == 0
    assert own.value("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_sku'::regclass") is True


def json_output_of(stdout: str) -> dict[str, Any]:
    document = json.loads(stdout)
    assert isinstance(document, dict)
    return document


def test_the_server_gone_for_a_while_under_the_service(own: Database, service: Callable[[str], ServiceProcess]) -> None:
    dirty_table(own)
    running = service(service_config({"app": own.dsn}, vacuum=EVERY_2S))
    running.wait_for_runs(1, job="vacuum")
    own.cluster.stop()
    try:
        wait_for(lambda: len([r for r in running.runs("vacuum") if r.status == "failed"]) >= 3, timeout=60)
        assert running.alive()
    finally:
        own.cluster.restart()
    failures = [r for r in running.runs("vacuum") if r.status == "failed"]
    assert all("could not connect" in (r.reason or "") for r in failures), [r.reason for r in failures]
    before = len(running.runs("vacuum"))
    wait_for(lambda: any(r.status == "ok" for r in running.runs("vacuum")[before:]), timeout=60)
    assert running.alive()
    assert "Traceback" not in running.log


@pytest.fixture
def store_disk(tmp_path: Path) -> Iterator[Path]:
    """A filesystem of the state store's own, to remount read-only under the service."""
    mount_point = tmp_path / "store"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount_point)], check=False)
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def remount(mount_point: Path, mode: str) -> None:
    """Refused while a file on it is open for writing: the store is opened per transaction, so soon not."""

    def remounted() -> bool:
        command = ["mount", "-o", f"remount,{mode}", str(mount_point)]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    wait_for(remounted, timeout=20)


def test_a_read_only_state_store_disk_holds_the_records_and_the_service_goes_on(
    own: Database, store_disk: Path, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    running = ServiceProcess(
        write_config(service_config({"app": own.dsn}, vacuum=EVERY_2S)),
        f"sqlite:///{store_disk / 'state.db'}",
        tmp_path / "service.log",
    )
    try:
        running.wait_for_runs(1, job="vacuum")
        remount(store_disk, "ro")
        written = len(running.runs("vacuum"))
        went_read_only = datetime.now(UTC)
        dirty_table(own, rows=5_000)

        wait_for(lambda: dead_rows(own, "dirty") == 0, timeout=60)  # maintained, with nothing written
        wait_for(lambda: "record(s) kept in memory" in running.log, timeout=60)
        assert running.alive(), running.log
        assert len(running.runs("vacuum")) == written

        remount(store_disk, "rw")

        def vacuumed_dirty_recorded() -> bool:
            later = [r for r in running.runs("vacuum") if r.started_at > went_read_only and r.status == "ok"]
            return any(r.done for r in later)

        wait_for(vacuumed_dirty_recorded, timeout=60)
        assert running.alive(), running.log
    finally:
        code = running.stop()
    assert code == 0, running.log
    assert "Traceback" not in running.log
