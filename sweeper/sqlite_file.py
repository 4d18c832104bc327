"""A study's sqlite file: transactions that serialize, a write-ahead log where the disk allows
one, and the log moved into the file when the sweep ends (sweeper/study.py opens the storage)."""
from __future__ import annotations

import re
from pathlib import Path

from optuna.storages import RDBStorage


def serialized(storage: RDBStorage) -> RDBStorage:
    """Each transaction on a sqlite study starts with BEGIN IMMEDIATE (SQLAlchemy's recipe for
    pysqlite). pysqlite begins a transaction only at the first write, so Optuna's read-then-write
    steps were not atomic: two sweepers both read a WAITING trial, both set it RUNNING and both
    ran it. Now the second waits for the first's commit (the busy timeout) and sees it RUNNING."""
    from sqlalchemy import event

    event.listen(storage.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    if _journal_mode(storage.engine.url.database) == "wal":
        # with a write-ahead log, NORMAL syncs at checkpoints only: a crash of the sweeper loses nothing,
        # a power cut at most the last commits, and the file stays consistent (sqlite's documentation)
        event.listen(storage.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous=NORMAL"))
        storage.engine.dispose()  # the connections Optuna opened to create the tables: reopened with it
    return storage


def holds_study(path: Path, name: str) -> bool:
    """Whether the sqlite file at `path` holds an Optuna study of this name."""
    return path.is_file() and _read_only(path, "SELECT 1 FROM studies WHERE study_name = ?", (name,)) is not None


def settle_file(storage) -> None:
    """At the sweep's end: a write-ahead log's commits moved into the study file itself, so study.db
    alone (copied, mailed, opened by another tool) holds the whole study, and the log is emptied. It
    waits for nobody (busy timeout 0): with another sweeper's trials or a reader about, it copies what
    it can, as a PASSIVE checkpoint does, and the rest stays in the log."""
    engine = getattr(storage, "engine", None)
    if engine is None or engine.url.get_backend_name() != "sqlite" or _journal_mode(engine.url.database) != "wal":
        return
    connection = engine.raw_connection()  # outside a transaction: no BEGIN IMMEDIATE before the pragma
    db = connection.driver_connection
    try:
        timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute("PRAGMA busy_timeout=0")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute(f"PRAGMA busy_timeout={int(timeout)}")  # the connection goes back to the pool
    finally:
        connection.close()


def _journal_mode(path: str | None) -> str | None:
    if not path or path == ":memory:":
        return None
    row = _read_only(path, "PRAGMA journal_mode")
    return row[0] if row else None


def _read_only(path: str | Path, query: str, args: tuple = ()) -> tuple | None:
    """The first row of a query on a sqlite file opened read only (None: no row, or not a database)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return connection.execute(query, args).fetchone()
    except sqlite3.Error:
        return None


# Local disks, where sqlite's write-ahead log (its -shm file is shared memory) works; anything else
# (NFS, Lustre, GPFS, SMB, FUSE mounts of object stores, ...) keeps sqlite's own rollback journal.
LOCAL_FILE_SYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "reiserfs",
                      "tmpfs", "ramfs", "overlay")


def write_ahead_log(path: str) -> bool:
    """Puts a new local sqlite study file in WAL mode (it stays so): a commit then costs one sync of
    the log instead of a rollback journal's several (~0.8 ms against ~2 ms here; a sweep commits
    some 35 times a trial: asks, reports, beats, attributes, tells), and readers (optuna-dashboard,
    the table's importance) never block the trials. Only on a local disk (sqlite's documentation: WAL
    does not work over a network file system), and never for a file that already exists; a file
    that cannot be made is left for the storage to report."""
    file = Path(path)
    if file.exists() or file_system_type(file.parent) not in LOCAL_FILE_SYSTEMS:
        return False
    import sqlite3

    try:
        with sqlite3.connect(file) as connection:
            return connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    except sqlite3.Error:
        return False


def file_system_type(path: Path) -> str | None:
    """The type of the file system holding `path`, from /proc/mounts (None where there is none)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    # the kernel writes a space in a mount point as \040 (octal escapes)
    mounts = [(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), point), kind) for point, kind in mounts]
    target = str(path.resolve())
    found = [(point, kind) for point, kind in mounts
             if target == point or target.startswith(point.rstrip("/") + "/")]
    return max(found, key=lambda m: len(m[0]))[1] if found else None
