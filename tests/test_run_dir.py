"""What a single run's directory may hold (sweeper/run_dir.py), from the command its result records.
No torch: the directories are written by hand."""
import json

import pytest

from sweeper.core.errors import ConfigError
from sweeper.run_dir import check_single_run_dir, record_command


def finished(d, state="complete", command=("lr=1e-3",), checkpoint=False):
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"state": state, "reason": "", "value": 1.0}))
    if command is not None:
        record_command(d, list(command))
    if checkpoint:
        (d / "checkpoint-4").mkdir()
        (d / "checkpoint-4" / "lr_sweeper_config.json").write_text("{}")
    return d


def test_a_finished_run_takes_only_its_own_command(tmp_path):
    d = finished(tmp_path / "a")
    check_single_run_dir(d, ["lr=1e-3"])  # the same command: it runs again
    check_single_run_dir(tmp_path / "nothing-yet", ["lr=1e-2"])
    with pytest.raises(ConfigError, match=r"holds a complete run of `lr=1e-3`; this command would overwrite it"):
        check_single_run_dir(d, ["lr=1e-2"])


def test_a_failed_run_may_be_run_again_with_a_fix(tmp_path):
    check_single_run_dir(finished(tmp_path / "f", state="failed"), ["micro_batch_size=4"])


def test_a_checkpoint_that_records_its_config_decides_for_itself(tmp_path):
    check_single_run_dir(finished(tmp_path / "c", checkpoint=True), ["lr=1e-3", "log_interval=2"])


def test_a_sweeps_trial_and_a_run_without_a_record_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a trial of a sweep"):
        check_single_run_dir(finished(tmp_path / "t", command=["lr=1e-3", "trial.number=0"], checkpoint=True),
                             ["lr=1e-3", "trial.number=0"])
    with pytest.raises(ConfigError, match="a command it kept no record of"):
        check_single_run_dir(finished(tmp_path / "n", command=None), ["lr=1e-3"])
