"""The study's storage: a WAITING trial is popped by one sweeper only, and a local sqlite file keeps a write-ahead log."""
import json
import subprocess
import sys

import optuna

from conftest import ROOT
from sweeper.study import make_storage

POP = """
import json, os, sys, time, warnings
from pathlib import Path
import optuna
from optuna.trial import TrialState
from sweeper.study import make_storage
warnings.simplefilter("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="shared", storage=make_storage(sys.argv[1], heartbeat_interval=1))
ready = Path(sys.argv[2])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # both start popping together
    time.sleep(0.01)
popped = []
while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1e6)})
    popped.append(trial.number)
    study.tell(trial, 1.0)  # raises when the other process popped it too and told it first
    time.sleep(0.001)  # a trial's work: without it one process may take the whole queue
print(json.dumps(popped))
"""


def test_two_sweepers_never_pop_the_same_waiting_trial_from_sqlite(tmp_path):
    # pysqlite used to begin a transaction only at the first write: both read WAITING, both ran it
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="shared", storage=make_storage(url))
    slots = 200
    for i in range(slots):
        study.enqueue_trial({"x": float(i)})
    (tmp_path / "ready").mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", POP, url, str(tmp_path / "ready")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    # the queued trials are 0..slots-1; one asked after the other process took the last is a new trial
    popped = [[n for n in json.loads(p.communicate(timeout=300)[0]) if n < slots] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    first, second = (set(p) for p in popped)
    assert first and second  # both popped some: they did race
    assert not first & second, sorted(first & second)
    assert sorted(popped[0] + popped[1]) == list(range(slots))


def _pragma(url: str, name: str):
    import sqlite3
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_new_local_study_file_keeps_a_write_ahead_log_and_settles_into_the_file(tmp_path):
    import shutil

    from sweeper.sqlite_file import settle_file
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = make_storage(url, heartbeat_interval=10)
    assert _pragma(url, "journal_mode") == "wal"
    with storage.engine.connect() as connection:  # a commit syncs at checkpoints, not each time
        assert connection.exec_driver_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    study = optuna.create_study(study_name="s", storage=storage)
    for x in range(5):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), float(x))
    settle_file(storage)  # as the sweep does at its end
    assert (tmp_path / "study.db-wal").stat().st_size == 0  # emptied into study.db
    alone = tmp_path / "copy"
    alone.mkdir()
    shutil.copy(tmp_path / "study.db", alone / "study.db")  # the file without its -wal and -shm
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{alone / 'study.db'}").trials) == 5


def test_a_study_file_on_a_network_file_system_or_made_elsewhere_keeps_its_journal(tmp_path, monkeypatch):
    import sweeper.sqlite_file as sqlite_file
    monkeypatch.setattr(sqlite_file, "file_system_type", lambda path: "nfs4")  # sqlite: WAL does not work there
    url = f"sqlite:///{tmp_path / 'nfs.db'}"
    make_storage(url)
    assert _pragma(url, "journal_mode") == "delete"
    monkeypatch.undo()
    made = f"sqlite:///{tmp_path / 'made.db'}"
    optuna.create_study(study_name="s", storage=made)  # an existing study file, made by Optuna itself
    make_storage(made)
    assert _pragma(made, "journal_mode") == "delete"


def test_a_new_study_file_opens_and_an_existing_one_is_still_checked_against_this_optuna(tmp_path):
    import sqlite3

    import pytest

    from sweeper.core.errors import ConfigError

    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=make_storage(url)).enqueue_trial({"x": 1.0})
    assert len(optuna.load_study(study_name="s", storage=make_storage(url)).trials) == 1
    with sqlite3.connect(tmp_path / "study.db") as db:  # a file another Optuna's schema stamped
        db.execute("UPDATE alembic_version SET version_num = 'v0.9.0.a'")
    with pytest.raises(ConfigError, match="cannot open"):
        make_storage(url)


def test_a_later_storage_leaves_earlier_garbage_to_the_collector(tmp_path):
    """Only the process's first RDB storage loads its modules with the collector held off and frozen
    after; a freeze at every storage would keep whatever cycles were waiting for good."""
    import gc
    import weakref

    make_storage(f"sqlite:///{tmp_path / 'first.db'}")

    class Node:
        pass

    gc.disable()  # no automatic pass may free the cycle before the second storage is built
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        gone = weakref.ref(a)
        del a, b
        make_storage(f"sqlite:///{tmp_path / 'second.db'}")
        gc.collect()
    finally:
        gc.enable()
    assert gone() is None
