"""The mid-sweep results rebuilt in a thread (sweeper/background_refresh.py). No torch."""
import time

import pandas as pd
import pytest

from sweeper.background_refresh import BackgroundRefresh
from test_collect import make_trial, sweep  # noqa: F401  (the fixture)


def _states(sweep_dir) -> dict:
    table = pd.read_csv(sweep_dir / "summary.csv")
    return dict(zip(table["trial"], table["state"]))


def test_an_ask_is_written_without_blocking_and_the_newest_state_wins(sweep):  # noqa: F811
    with BackgroundRefresh(sweep) as results:
        results.request({4})
        results.wait()
        assert _states(sweep)[4] == "running"  # the running set of the ask
        make_trial(sweep, 7, "complete", 0.5, 1e-2)
        results.request(set())
        results.request({4})  # asked again before the thread got to it: one refresh, the newest ask
        results.close()  # writes what is still asked
    assert _states(sweep)[7] == "complete"
    assert _states(sweep)[4] == "running"


@pytest.mark.parametrize("error,rebuilds", [(None, 1), (KeyboardInterrupt, 2)])
def test_leaving_normally_drops_an_ask_the_final_refresh_will_redo(tmp_path, monkeypatch, error, rebuilds):
    import threading

    import sweeper.background_refresh as background
    release, calls = threading.Event(), []

    def slow_refresh(sweep_dir, running, final):
        calls.append(set(running))
        release.wait(10)
    monkeypatch.setattr(background, "refresh", slow_refresh)
    monkeypatch.setattr(background, "_warm_imports", lambda: None)
    results = BackgroundRefresh(tmp_path).__enter__()
    results.request({1})
    while not calls:  # the first rebuild is running
        time.sleep(0.01)
    results.request({2})  # waits behind it
    threading.Timer(0.2, release.set).start()
    results.__exit__(error, error and error(), None)
    assert calls == [{1}, {2}][:rebuilds]


def test_the_ask_after_the_last_trial_is_left_to_the_final_refresh(tmp_path, monkeypatch):
    import sweeper.background_refresh as background
    calls = []
    monkeypatch.setattr(background, "refresh", lambda sweep_dir, running, final: calls.append(set(running)))
    monkeypatch.setattr(background, "_warm_imports", lambda: None)
    monkeypatch.setattr(background, "SETTLE_SECONDS", 5.0)  # a loaded machine's loop takes its time too
    with BackgroundRefresh(tmp_path) as results:
        results.request({1})
        time.sleep(0.05)  # the loop's own steps after a trial: progress, stale check, no trial left
    assert calls == []  # not rebuilt just before the final refresh


def test_a_refresh_that_fails_leaves_the_thread_serving(sweep, caplog):  # noqa: F811
    (sweep / "summary.csv").mkdir()  # the table cannot be written over a directory
    with BackgroundRefresh(sweep) as results:
        results.request(set())
        results.wait()
        (sweep / "summary.csv").rmdir()
        results.request(set())
        results.wait()
        assert (sweep / "summary.csv").is_file()
    assert "could not refresh" in caplog.text


def test_close_with_nothing_asked_writes_nothing(tmp_path):
    with BackgroundRefresh(tmp_path):
        pass
    assert not list(tmp_path.iterdir())


def test_a_trial_submitted_after_the_ask_shows_as_running_not_killed(sweep):  # noqa: F811
    running = {}  # the loop's own dict, handed over live
    results = BackgroundRefresh(sweep)
    results.request(running)  # asked while the thread cannot get to it yet (as when it is busy)
    make_trial(sweep, 7, None, None, 1e-2, write_result=False)  # the next trial is submitted: its dir, no result
    running[7] = "launched"
    with results:
        results.wait()
    assert _states(sweep)[7] == "running"


def test_the_results_modules_load_while_a_long_first_trial_runs(tmp_path):
    """In a fresh process (matplotlib not loaded yet): nothing asked within WARM_AFTER_SECONDS means
    the first trial is still running, and the thread loads what the final refresh will need."""
    import subprocess
    import sys
    code = f"""
import sys, time
import sweeper.background_refresh as b
b.WARM_AFTER_SECONDS = 0.2
assert "matplotlib" not in sys.modules and "pandas" not in sys.modules
import sweeper.sweep_loop  # the sweep itself starts without pandas
assert "pandas" not in sys.modules
with b.BackgroundRefresh({str(tmp_path)!r}):
    time.sleep(0.1)
    early = "matplotlib" in sys.modules
    deadline = time.time() + 20
    while "sweeper.plots" not in sys.modules and time.time() < deadline:
        time.sleep(0.05)
    print(early, "sweeper.plots" in sys.modules, "sweeper.hparams" in sys.modules, "pandas" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True", "True", "True"]
