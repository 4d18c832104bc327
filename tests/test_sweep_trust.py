"""A sweep's results are never written under the wrong config, never duplicated, never lost:
changed search spaces, two workers, duplicates, journal storage, a full disk, Ctrl-C."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest

from conftest import ROOT, read_json, run_cli

pytestmark = pytest.mark.slow
TINY = ["max_steps=4", "eval_interval=2", "save_interval=4", "data.max_eval_examples=8",
        "batch_size=4", "micro_batch_size=4"]


def snapshot(d):
    """Every file's digest; sqlite's -shm is left out: an index into the write-ahead log that any
    connection rewrites as it opens, with no content of its own (sqlite's documentation)."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and not p.name.endswith("-shm")}


def one_line_error(proc, code=2):
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


def study_trials(sweep, name=None):
    storage = f"sqlite:///{sweep / 'study.db'}"
    name = name or read_json(sweep / "sweep.json")["study"]
    return optuna.load_study(study_name=name, storage=storage).trials


def test_a_changed_search_space_never_overwrites_a_sweep(tmp_path):
    sweep = tmp_path / "s"
    first = run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={sweep}", *TINY])
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(sweep)
    # the same directory, another space (a new default study name): refused
    line = one_line_error(run_cli(["-m", "lr=1e-4,1e-3", f"hydra.sweep.dir={sweep}", *TINY]))
    assert "already holds study" in line and "trials/ would be overwritten" in line
    # the same sweep.name, another space: refused too
    named = tmp_path / "n"
    assert run_cli(["-m", "lr=1e-3,1e-2", "sweep.name=N", f"hydra.sweep.dir={named}", *TINY]).returncode == 0
    named_before = snapshot(named)
    line = one_line_error(run_cli(["-m", "lr=1e-3,1e-2", "lora=r4,r8", "sweep.name=N", f"hydra.sweep.dir={named}",
                                   *TINY]))
    assert "another search space" in line and "swept lora" in line
    assert snapshot(sweep) == before and snapshot(named) == named_before
    # the same command with another storage would start an empty study numbering from 0: refused
    other = f"sqlite:///{tmp_path / 'other.db'}"
    line = one_line_error(run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={sweep}",
                                   f"hydra.sweeper.storage={other}", *TINY]))
    assert line.startswith("error: hydra.sweeper.storage:") and "study.db" in line and "other.db" in line
    assert not (tmp_path / "other.db").exists()
    # a single run into one of the sweep's trial directories would overwrite that trial: refused
    line = one_line_error(run_cli([f"hydra.run.dir={sweep / 'trials' / '0'}", *TINY]))
    assert line.startswith("error: hydra.run.dir:") and "a trial of a sweep" in line
    assert snapshot(sweep) == before and snapshot(named) == named_before
    # a copy of the sweep dir continues in its own study.db (sweep.json records the original's)
    copy = shutil.copytree(sweep, tmp_path / "copy")
    copied = run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={copy}", *TINY])
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert len(study_trials(copy)) == 2 and snapshot(sweep) == before
    # the identical command continues: nothing re-run, nothing rewritten in the trials
    again = run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={sweep}", *TINY])
    assert again.returncode == 0, again.stderr[-2000:]
    assert {k: v for k, v in snapshot(sweep).items() if k.startswith("trials/")} == \
        {k: v for k, v in before.items() if k.startswith("trials/")}


def test_two_workers_finish_the_budget_with_distinct_configs(tmp_path):
    sweep = tmp_path / "two"
    args = ["-m", "lr=tag(log,interval(1e-4,1e-2))", f"hydra.sweep.dir={sweep}", "sweep.name=two",
            "hydra.sweeper.n_trials=6", *TINY]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    done = [t for t in study_trials(sweep, "two") if t.user_attrs.get("outcome") == "complete"]
    lrs = [t.params["lr"] for t in done]
    assert len(lrs) == 6 and len(set(lrs)) == 6, lrs
    assert any("[6/6]" in out for out, _ in outs)  # progress counts the study, not one process


def test_a_config_the_study_finished_is_not_trained_again(tmp_path):
    sweep = tmp_path / "dup"
    # 4 random draws from 2 values: at least 2 are repeats of a finished config
    proc = run_cli(["-m", "lr=1e-3,1e-2", "hydra.sweeper.sampler=random", "hydra.sweeper.n_trials=4",
                    f"hydra.sweep.dir={sweep}", "sweep.name=dup", *TINY])
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = study_trials(sweep, "dup")
    trained = [t for t in trials if (sweep / "trials" / str(t.number) / "result.json").exists()]
    reused = [t for t in trials if t.system_attrs.get("lr_sweeper:duplicate_of") is not None]
    assert sorted(t.params["lr"] for t in trained) == [1e-3, 1e-2]
    assert len(trained) + len(reused) == 4 and len(reused) >= 2
    for t in reused:
        twin = next(o for o in trials if o.number == t.system_attrs["lr_sweeper:duplicate_of"])
        assert t.params == twin.params and t.value == twin.value
    assert "[4/4]" in proc.stdout


def test_journal_storage_one_sweeper_at_a_time_and_orphans_retried(tmp_path):
    from sweeper.study import lock_journal

    journal, sweep = tmp_path / "study.log", tmp_path / "j"
    args = ["-m", "lr=1e-3,1e-2", f"hydra.sweeper.storage={journal}", f"hydra.sweep.dir={sweep}", "sweep.name=j",
            "max_steps=24", "eval_interval=2", "save_interval=4", "data.max_eval_examples=8", "batch_size=4",
            "micro_batch_size=4"]
    held = lock_journal(str(journal))  # another sweeper is running on it
    assert "one sweeper at a time" in one_line_error(run_cli(args))
    held.close()
    # kill -9 mid-trial: a journal has no heartbeat, so only the lock says its RUNNING trial is dead
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not list((sweep / "trials" / "0").glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = run_cli(args)
    assert again.returncode == 0, again.stderr[-2000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="j", storage=storage).trials
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in trials]
    complete = [t for t in trials if t.user_attrs.get("outcome") == "complete"]
    assert sorted(t.params["lr"] for t in complete) == [1e-3, 1e-2]
    journal.write_text("garbage, not a journal\n")
    assert "cannot read the journal" in one_line_error(run_cli(args))


def test_an_empty_study_db_is_not_silently_rebuilt(tmp_path):
    sweep = tmp_path / "empty"
    sweep.mkdir()
    (sweep / "study.db").write_bytes(b"")
    line = one_line_error(run_cli(["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={sweep}", *TINY]))
    assert "0 bytes" in line and "mv " in line
    assert (sweep / "study.db").stat().st_size == 0


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a 400 KB tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_is_one_line_and_the_same_command_resumes(small_disk):
    args = ["-m", "lr=1e-3,1e-2", f"hydra.sweep.dir={small_disk / 'sweep'}", "sweep.name=full", *TINY]
    line = one_line_error(run_cli(args), code=1)
    assert "disk is full" in line and str(small_disk) in line
    subprocess.run(["mount", "-o", "remount,size=300m", str(small_disk)], check=True)
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_json(small_disk / "sweep" / "trials" / "1" / "result.json")["state"] == "complete"


def test_ctrl_c_during_the_lr_range_test_is_one_line(tmp_path):
    sweep = tmp_path / "auto"
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", "-m", "lr=auto", f"hydra.sweep.dir={sweep}",
                             "lr_find.steps=400", "lr_find.max_lr=1e-4", *TINY], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            start_new_session=True,
                            # as from a terminal: Ctrl-C not ignored, whatever this test process inherited
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (sweep / "lr_find").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    # a top lr this low never diverges, so the range test runs all 400 steps: Ctrl-C lands inside it
    assert not (sweep / "lr_find" / "lr_find.json").exists()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in out + err and "run the same command" in out
    shutil.rmtree(sweep, ignore_errors=True)


def test_a_single_run_never_overwrites_a_finished_run(tmp_path):
    """A finished run's directory takes only the command that made it, whatever Hydra rewrote in .hydra/."""
    def kept(d):  # the run's own files (Hydra rewrites .hydra/ and its log for any command it starts)
        return {k: v for k, v in snapshot(d).items() if not k.startswith(".hydra") and not k.endswith(".log")}
    run = tmp_path / "run"
    first = run_cli([f"hydra.run.dir={run}", *TINY])
    assert first.returncode == 0, first.stderr[-2000:]
    before = kept(run)
    line = one_line_error(run_cli([f"hydra.run.dir={run}", "lr=1e-2", *TINY]))  # its checkpoint refuses it
    assert "holds a checkpoint of another config" in line and kept(run) == before
    shutil.rmtree(next(run.glob("checkpoint-*")))  # what keep_checkpoints removes: the result is all that guards it
    before = kept(run)
    line = one_line_error(run_cli([f"hydra.run.dir={run}", "lr=1e-2", *TINY]))
    assert line.startswith("error: hydra.run.dir:") and "holds a complete run of `" in line, line
    assert kept(run) == before
    assert run_cli([f"hydra.run.dir={run}", "lr=1e-2", *TINY, "--cfg", "job"]).returncode == 0  # prints only
    (tmp_path / "file").write_text("x")
    line = one_line_error(run_cli([f"hydra.run.dir={tmp_path / 'file'}", *TINY]))
    assert "is a file, not a directory" in line
    again = run_cli([f"hydra.run.dir={run}", *TINY])  # its own command: allowed (it trains again)
    assert again.returncode == 0, again.stderr[-2000:]
