"""`pip install .` (not editable) into a fresh environment runs a sweep from any directory:
configs and the embedded model and tasks are package data."""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_a_wheel_installed_in_a_fresh_venv_sweeps_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    # built offline with this environment's setuptools; the wheel holds only the project
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
         str(ROOT)])
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # the heavy dependencies (torch, transformers, ...) are borrowed from this environment by path;
    # a plain path in a .pth does not run this environment's editable-install hooks
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(next(wheels.glob("lr_sweeper-*.whl")))])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", LR_SWEEPER_QUIET="1")
    where = run([str(py), "-c", "import sweeper.core.layout as p; print(p.CONF_DIR)"], cwd=work, env=env).stdout
    assert str(site) in where and str(ROOT) not in where
    run([str(py), "-m", "sweeper", "-m", "lr=1e-4,1e-3", "max_steps=10"], cwd=work, env=env)
    [sweep] = (work / "results").iterdir()
    states = [json.loads((t / "result.json").read_text())["state"] for t in (sweep / "trials").iterdir()]
    assert states == ["complete", "complete"]
    assert (sweep / "best.yaml").is_file() and (sweep / "summary.md").is_file()


def test_the_development_install_sweeps_outside_the_checkout(tmp_path):
    """`make setup`'s editable install must keep hydra_plugins discoverable from any directory."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LR_SWEEPER_QUIET": "1"}
    run([sys.executable, "-m", "sweeper", "-m", "lr=1e-4,1e-3", "max_steps=2", "eval_interval=1",
         "save_interval=2", "data.max_eval_examples=8"], cwd=tmp_path, env=env)
    [sweep] = (tmp_path / "results").iterdir()
    assert len(list((sweep / "trials").glob("*/result.json"))) == 2
