"""Hydra's run mode from -m alone, unless the user's own config could set it (sweeper/hydra_mode.py)."""
from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from sweeper import hydra_mode
from sweeper.core.layout import CONF_DIR


@pytest.fixture(autouse=True)
def hydra_get_mode_restored(monkeypatch):
    monkeypatch.setattr(hydra_mode.Hydra, "get_mode", hydra_mode._HYDRA_GET_MODE)  # undone after each test


def get_mode(config_dir, config_name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return GlobalHydra.instance().hydra.get_mode(config_name=config_name, overrides=overrides)


def test_our_configs_leave_the_mode_to_the_command_line():
    """What the shortcut relies on: Hydra's own look into lr-sweeper's configs finds no mode."""
    assert get_mode(CONF_DIR, "config", []) is None
    assert get_mode(CONF_DIR, "config", ["scheduler=linear", "trainer=command", "lora=r16"]) is None


def test_a_user_config_that_sets_the_mode_is_still_read(tmp_path):
    (tmp_path / "mine.yaml").write_text("lr: 0.001\nhydra:\n  mode: MULTIRUN\n")
    hydra_mode.read_mode_from_flags(["--config-dir", str(tmp_path), "--config-name", "mine"])
    assert get_mode(tmp_path, "mine", []) == RunMode.MULTIRUN


def test_a_mode_on_the_command_line_is_still_read():
    hydra_mode.read_mode_from_flags(["hydra.mode=MULTIRUN", "lr=1e-3"])
    assert get_mode(CONF_DIR, "config", ["hydra.mode=MULTIRUN", "lr=1e-3"]) == RunMode.MULTIRUN


def test_our_own_configs_are_not_composed_for_the_mode(tmp_path):
    # a config that sets the mode, reached without a flag that names it: the shortcut does not look
    (tmp_path / "mine.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    hydra_mode.read_mode_from_flags(["lr=1e-3"])
    assert get_mode(tmp_path, "mine", ["lr=1e-3"]) is None


@pytest.mark.parametrize("argv, ours", [
    (["-m", "lr=1e-3,3e-4"], True),
    (["--config-name", "config", "seed=1"], True),  # a pool or SLURM trial's own command
    (["-cn", "config", "--cfg", "job"], True),
    (["--config-dir", "results/x", "--config-name", "best"], False),
    (["--config-dir=results/x"], False),
    (["--config-d", "results/x"], False),  # argparse takes a flag's prefix
    (["--config-n=best"], False),
    (["-cn", "other"], False),
    (["-cp", "elsewhere"], False),
    (["hydra.mode=RUN"], False),
    (["hydra={mode:MULTIRUN}"], False),
    (["hydra.searchpath=[file:///tmp/mine]"], False),
])
def test_which_command_lines_are_ours(argv, ours):
    assert hydra_mode.only_our_configs(argv) is ours
