"""The study's storage under sweepers that share it: a WAITING trial is popped by one of them only."""
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
