"""The mid-sweep results rebuilt in a thread (sweeper/background_refresh.py). No torch."""
import pandas as pd

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
    assert _states(sweep)[7] == "complete"  # close() wrote what was still asked
    assert _states(sweep)[4] == "running"


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
