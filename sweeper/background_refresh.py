"""The results (table, best.yaml, HParams, pictures) rebuilt in a thread, off the trials' critical path.

After each trial the loop asks for a refresh and goes straight on to its next trial; the thread
rebuilds the results from the trial directories (collect.refresh, mid-sweep form). Asks that
arrive while a refresh runs are merged into one more: only the newest state matters. The final
refresh stays in the loop, after the thread has stopped, so the two never overlap; leaving the
`with` block normally drops an ask not yet started, which the final refresh would redo. A rebuild
starts half a second after its ask, so the ask after the last trial is dropped, not run just
before the final refresh. While the first trial runs (after WARM_AFTER_SECONDS) the thread loads
the results' modules (pandas, matplotlib, TensorBoard's writer), so neither the sweep's start nor its
final refresh waits on them.

    with BackgroundRefresh(sweep_dir) as results:
        ...; results.request(running)   # the loop's own dict of running trials, read when the table is built
    refresh(sweep_dir)   # the final one
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)
SETTLE_SECONDS = 0.5
WARM_AFTER_SECONDS = 2.0


class BackgroundRefresh:
    def __init__(self, sweep_dir: str | Path):
        self.sweep_dir = Path(sweep_dir)
        self._wanted: Collection[int] | None = None  # the running trials of the newest ask; None: nothing asked
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="lr-sweeper-results", daemon=True)

    def __enter__(self) -> "BackgroundRefresh":
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # the sweep's final refresh follows a normal exit and rewrites everything: a rebuild still
        # asked for would be done twice; an error leaving the loop gets the asked one written
        self.close(flush=exc_type is not None)

    def request(self, running: Collection[int]) -> None:
        """`running`: the loop's live collection of running trials, not a copy: it is read when the
        table is built, so a trial submitted since the ask (its directory made, no result.json yet)
        shows as running, not as killed. (set() of an int-keyed dict runs without releasing the GIL.)"""
        with self._cond:
            self._wanted = running
            self._cond.notify()

    def wait(self) -> None:
        """Until every ask so far is written (tests, and an interrupted sweep before it exits)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._thread.is_alive() or (self._wanted is None and not self._busy))

    def close(self, flush: bool = True) -> None:
        """Writes what is still asked (flush=False: drops it), then stops the thread."""
        with self._cond:
            self._closing = True
            if not flush:
                self._wanted = None
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _work(self) -> None:
        with self._cond:
            asked = self._cond.wait_for(lambda: self._wanted is not None or self._closing, timeout=WARM_AFTER_SECONDS)
        warm = not asked  # the first trial is still running: while it trains (in a child process the sweeper
        if warm:  # is idle), the final refresh's modules load here instead of after the last trial
            _warm_imports()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted is not None or self._closing)
                # a moment for the loop to say it is ending (after its last trial it closes within
                # milliseconds): the final refresh redoes this one, which would only delay it
                self._cond.wait_for(lambda: self._closing, timeout=SETTLE_SECONDS)
                if self._wanted is None:
                    return  # closing, nothing left to write
                running, self._wanted, self._busy = self._wanted, None, True
            try:
                if not warm:  # after a first trial shorter than WARM_AFTER_SECONDS
                    _warm_imports()
                    warm = True
                refresh(self.sweep_dir, running=set(running), final=False)
            except Exception as err:  # a table that cannot be built now must not stop the sweep
                log.warning("could not refresh the results in %s: %s", self.sweep_dir, err)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def refresh(sweep_dir: Path, running: set[int], final: bool):
    """collect.refresh, imported on first use: pandas loads in this thread, not at the sweep's start."""
    from sweeper.collect import refresh as rebuild

    return rebuild(sweep_dir, running=running, final=final)


def _warm_imports() -> None:
    try:
        from sweeper import best_config, best_model, collect, hparams, importance, plots  # noqa: F401
    except Exception as err:  # the refresh that needs the module says what is wrong
        log.debug("results modules not loaded ahead: %s", err)
