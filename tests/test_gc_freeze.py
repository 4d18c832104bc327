"""sweeper/core/gc_freeze.py: the cycle collector waits while long-lived imports load, then skips them."""
import gc
import subprocess
import sys

import pytest
from conftest import ROOT

from sweeper.core.gc_freeze import long_lived_imports


@pytest.fixture
def collector_state():
    was = gc.isenabled()
    yield  # what a test froze stays frozen: unfreezing would hand torch's objects back to the collector too
    gc.enable() if was else gc.disable()


def test_collection_waits_inside_and_resumes_after(collector_state):
    gc.enable()
    with long_lived_imports():
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)  # loaded inside: out of every later collection's sight


def test_an_error_inside_still_resumes_collection(collector_state):
    gc.enable()
    with pytest.raises(ImportError):
        with long_lived_imports():
            import not_a_module_anywhere  # noqa: F401
    assert gc.isenabled()


def test_a_collector_already_off_stays_off(collector_state):
    gc.disable()
    with long_lived_imports():
        pass
    assert not gc.isenabled()


def test_importing_the_trainer_leaves_collection_on_and_torch_frozen():
    probe = ("import gc, trainers.train, torch; "
             "print(gc.isenabled(), gc.get_freeze_count(), len(gc.get_objects()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()  # conftest set HF_HUB_OFFLINE for children too
    enabled, frozen, tracked = out[0] == "True", int(out[1]), int(out[2])
    assert enabled
    assert frozen > 10 * tracked  # torch, transformers and peft: frozen, not left for full collections
