"""Heartbeats of running trials and the stale ones of sweepers that died, on a real sqlite study."""
import json
import sqlite3
import time

import optuna
from optuna.trial import TrialState

from sweeper.core.record import RESULT_FILE
from sweeper.heartbeat import Heartbeat, StaleTrials
from sweeper.study import grace_period, make_storage
from sweeper.tell import record_finished


def heartbeat_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = make_storage(url, heartbeat_interval=1)
    return optuna.create_study(study_name="beats", storage=storage), storage, tmp_path / "study.db"


def beats(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from trial_heartbeats").fetchone()[0]


def test_a_trial_has_its_first_beat_when_start_returns(tmp_path):
    study, storage, db = heartbeat_study(tmp_path)
    trial = study.ask()
    beat = Heartbeat(storage, "beats", trial.number).start()
    try:
        assert beats(db) == 1  # not left to the thread: a kill right after the launch leaves a beat
    finally:
        beat.stop()


def test_a_trial_left_running_without_a_beat_goes_stale_and_is_retried(tmp_path):
    # a sweeper killed between its ask and the trial's first beat: Optuna alone never calls it stale
    study, storage, _ = heartbeat_study(tmp_path)
    orphan = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)})
    stale = StaleTrials(study, storage)
    stale.check()
    assert study.trials[0].state == TrialState.RUNNING  # within the grace period: maybe alive
    time.sleep(grace_period(1) + 1.5)  # sqlite's clock counts whole seconds
    stale.check()
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.WAITING], states
    assert study.trials[1].params == orphan.params  # Optuna's retry, same config


def test_a_finished_trial_that_another_sweeper_failed_meanwhile_is_left_to_its_retry(tmp_path):
    study, storage, _ = heartbeat_study(tmp_path)
    trial = study.ask()
    trial_dir = tmp_path / "trials" / "0"
    trial_dir.mkdir(parents=True)
    (trial_dir / RESULT_FILE).write_text(json.dumps({"state": "complete", "value": 1.5, "steps": 10}))
    study.tell(trial, state=TrialState.FAIL)  # what the other sweeper's stale check does
    assert record_finished(study, storage, trial, trial_dir, 0, ["eval_loss"], tmp_path) is None
    assert study.trials[0].state == TrialState.FAIL
